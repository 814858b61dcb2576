package streaming

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/typex"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/internal/backoff"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/notify"
	"github.com/fineo-io/ingest/records"
)

// Commit counters.
const (
	RawArchived       = "raw_archived"
	CheckpointCommits = "checkpoint_commits"
	PagesCommitted    = "pages_committed" // pages whose window was archived (equals pages_processed at the end of a bounded run)
	// CheckpointsRefused counts checkpoint commits refused because this
	// job no longer holds the shard's lease: the shard's new holder reads
	// those records again (the nearline writes collapse by key).
	CheckpointsRefused = "checkpoints_refused"
)

// lateness is how late a page may reach its window and still be
// committed (in a late pane: a file of its own). Pages are stamped so that
// they are not late (see commitTime); this is the second line of defence,
// so that a runner's watermark quirk can never drop a page silently.
const lateness = time.Hour

func init() {
	register.DoFn4x1[context.Context, typex.Window, string, func(*PageOut) bool, error](&commitFn{})
	register.Iter1[PageOut]()
}

// CommitConfig configures Commit.
type CommitConfig struct {
	Archive string        // archive root: a directory or s3://bucket/prefix
	Window  time.Duration // fixed window of the archive files; default 1 minute
	// CheckpointTable and Consumer name the durable checkpoint table (see
	// dynamodbio.Checkpoints); no table: no checkpoints.
	CheckpointTable, Consumer string
	// LeaseOwner: checkpoints are written only while this job holds the
	// shard's lease (kinesisio.ReadConfig.LeaseOwner); "" = always.
	LeaseOwner string
	// Notify, when set, sends one alert per shard and window that produced
	// customer or processing errors (ops/notify targets: https://...,
	// http://localhost..., sns://...). Job names the job in alerts.
	Notify []string
	Job    string
}

// DefaultWindow is the archive window when CommitConfig.Window is zero.
const DefaultWindow = time.Minute

// Commit windows the pages (KV<shard, PageOut>) into fixed windows of
// their arrival time, and for every shard and window writes the window's
// raw records, staged events and error records as whole files — one per
// archive partition — and then advances the shard's checkpoint over the
// pages it holds. Files are named by window, shard and the window's
// first and last sequence numbers (see fileName), so a window processed
// again along the same pages replaces its files rather than adding new
// ones, and files of different records never replace each other.
//
// A staged or raw file that cannot be written after retries turns into
// processing-error records (nothing is lost); if the processing-error file
// cannot be written either, the bundle fails and the checkpoint does not
// move, so a restarted job processes the window again.
func Commit(s beam.Scope, cfg CommitConfig, pages beam.PCollection) {
	s = s.Scope("streaming.Commit")
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	windowed := beam.WindowInto(s, window.NewFixedWindows(cfg.Window), pages, beam.AllowedLateness(lateness))
	grouped := beam.GroupByKey(s, windowed)
	if _, err := notify.ParseAll(cfg.Notify); err != nil {
		panic(err) // checked by the caller: a bad target is a usage error
	}
	beam.ParDo0(s, &commitFn{Archive: cfg.Archive, Table: cfg.CheckpointTable, Consumer: cfg.Consumer,
		Owner: cfg.LeaseOwner, Notify: cfg.Notify, Job: cfg.Job}, grouped)
}

type commitFn struct {
	Archive, Table, Consumer string
	Owner                    string
	Notify                   []string
	Job                      string

	store   blob.Store
	cps     *dynamodbio.Checkpoints
	targets []notify.Target
}

// newCheckpointAPI makes the checkpoint table's client; tests replace it.
var newCheckpointAPI = func(ctx context.Context) (dynamodbio.CheckpointAPI, error) {
	return dynamodbio.NewClient(ctx)
}

func (f *commitFn) Setup(ctx context.Context) error {
	st, err := blob.Open(ctx, f.Archive)
	if err != nil {
		return fmt.Errorf("streaming: opening archive %s: %w", f.Archive, err)
	}
	f.store = st
	if f.targets, err = notify.ParseAll(f.Notify); err != nil {
		return err
	}
	if f.Table != "" {
		api, err := newCheckpointAPI(ctx)
		if err != nil {
			return err
		}
		f.cps = &dynamodbio.Checkpoints{API: api, Table: f.Table, Consumer: f.Consumer, Owner: f.Owner}
	}
	return nil
}

const writeAttempts = 5

func (f *commitFn) ProcessElement(ctx context.Context, w typex.Window, _ string, iter func(*PageOut) bool) error {
	var pages []PageOut
	var p PageOut
	for iter(&p) {
		pages = append(pages, p)
		p = PageOut{}
	}
	if len(pages) == 0 {
		return nil
	}
	slices.SortFunc(pages, func(a, b PageOut) int {
		switch {
		case dynamodbio.SequenceLess(a.Last, b.Last):
			return -1
		case dynamodbio.SequenceLess(b.Last, a.Last):
			return 1
		}
		return 0
	})
	// A page delivered twice, or a shard's end page (no records) after its
	// last page: one page, ending the shard if either did.
	pages, ends := compactPages(pages)
	first := pages[0]
	start := time.Now().UTC()
	if iw, ok := w.(window.IntervalWindow); ok {
		start = iw.Start.ToTime().UTC()
	}
	name := fileName(start, first.Stream, first.Shard, first.First, pages[len(pages)-1].Last)

	// Merge the pages' blocks by partition, in shard order.
	var raw archive.Block
	parts := map[string]archive.Block{}
	var order []string
	for i := range pages {
		raw = appendBlock(raw, pages[i].Raw)
		for _, pt := range pages[i].Parts {
			if _, ok := parts[pt.Partition]; !ok {
				order = append(order, pt.Partition)
			}
			parts[pt.Partition] = appendBlock(parts[pt.Partition], pt.Block)
		}
	}
	procPart := archive.ErrorPartition(records.Processing, start)
	var procErrs archive.Block
	if raw.Count > 0 {
		path := archive.RawPartition(start) + "/" + name + ".avro"
		if err := f.retry(ctx, func() error {
			return archive.WriteAvroFile(ctx, f.store, path, archive.RawSchema, []archive.Block{raw})
		}); err != nil {
			procErrs = appendBlock(procErrs, rawFailed(raw, path, err))
		} else {
			metrics.Counter(RawArchived).Inc(ctx, raw.Count)
			metrics.Counter(metrics.FilesWritten).Inc(ctx, 1)
		}
	}
	for _, part := range order {
		b := parts[part]
		if !strings.HasPrefix(part, archive.StagedDir+"/") {
			continue
		}
		path := part + "/" + name + ".avro"
		if err := f.retry(ctx, func() error {
			return archive.WriteStagedFile(ctx, f.store, path, []archive.Block{b})
		}); err != nil {
			procErrs = appendBlock(procErrs, archive.FailedToErrors(archive.FailedBlock{Partition: part, Reason: err.Error(), Block: b}))
			continue
		}
		metrics.Counter(metrics.StagedWritten).Inc(ctx, b.Count)
		metrics.Counter(metrics.FilesWritten).Inc(ctx, 1)
	}
	if procErrs.Count > 0 {
		metrics.Counter(metrics.ProcessingErrors).Inc(ctx, procErrs.Count)
		if _, ok := parts[procPart]; !ok {
			order = append(order, procPart)
		}
		parts[procPart] = appendBlock(parts[procPart], procErrs)
	}
	errParts, errFiles := map[string]archive.Block{}, map[string]string{}
	for _, part := range order {
		b := parts[part]
		if !strings.HasPrefix(part, archive.ErrorsDir+"/") {
			continue
		}
		path := part + "/" + name + ".jsonl.gz"
		errParts[part], errFiles[part] = b, f.store.URL(path)
		if err := f.retry(ctx, func() error { return archive.WriteJSONLFile(ctx, f.store, path, []archive.Block{b}) }); err != nil {
			// Nowhere left to put them: fail, and do not checkpoint.
			return fmt.Errorf("streaming: writing error records to %s failed after %d attempts: %w", f.store.URL(path), writeAttempts, err)
		}
		if strings.HasPrefix(part, archive.ErrorsDir+"/"+string(records.Processing)+"/") {
			metrics.Counter(metrics.ProcessingWritten).Inc(ctx, b.Count)
		} else {
			metrics.Counter(metrics.CustomerWritten).Inc(ctx, b.Count)
		}
		metrics.Counter(metrics.FilesWritten).Inc(ctx, 1)
	}
	if err := f.checkpoint(ctx, pages); err != nil {
		return err
	}
	metrics.Counter(PagesCommitted).Inc(ctx, int64(len(pages)+ends))
	if len(f.targets) > 0 && len(errParts) > 0 {
		sendAlert(ctx, f.targets, windowAlert(f.Job, name, errParts, errFiles))
	}
	return nil
}

// compactPages merges the pages (sorted by Last) that share their Last:
// the one with records is kept, ending the shard if any of them did. It
// returns the pages and how many of those merged away were end pages of no
// records (pages in their own right, unlike a page delivered twice).
func compactPages(pages []PageOut) ([]PageOut, int) {
	out, ends := pages[:0], 0
	for _, p := range pages {
		if n := len(out); n > 0 && out[n-1].Last == p.Last {
			q := out[n-1]
			if (p.Records == 0) != (q.Records == 0) {
				ends++ // an end page and the page before it
			}
			if p.Records > q.Records {
				out[n-1] = p
			}
			out[n-1].End = p.End || q.End
			continue
		}
		out = append(out, p)
	}
	return out, ends
}

// checkpoint commits each unbroken run of pages (a page's After is the
// previous page's Last).
func (f *commitFn) checkpoint(ctx context.Context, pages []PageOut) error {
	if f.cps == nil {
		return nil
	}
	for i := 0; i < len(pages); {
		j := i + 1
		for j < len(pages) && pages[j].After == pages[j-1].Last {
			j++
		}
		_, err := f.cps.Commit(ctx, pages[i].Stream, pages[i].Shard, pages[i].After, pages[j-1].Last, pages[j-1].End)
		if errors.Is(err, dynamodbio.ErrLeaseLost) {
			// Another job holds the shard now and reads on from the
			// checkpoint: these pages are read again there.
			metrics.Counter(CheckpointsRefused).Inc(ctx, 1)
			log.Infof(ctx, "streaming: %v; its new holder reads these records again", err)
			return nil
		}
		if err != nil {
			return err
		}
		metrics.Counter(CheckpointCommits).Inc(ctx, 1)
		i = j
	}
	return nil
}

func (f *commitFn) retry(ctx context.Context, write func() error) error {
	var err error
	for attempt := 1; attempt <= writeAttempts; attempt++ {
		if attempt > 1 {
			metrics.Counter(metrics.WriteRetries).Inc(ctx, 1)
			if err := backoff.Sleep(ctx, backoff.FullJitter(100*time.Millisecond, 5*time.Second, attempt-1)); err != nil {
				return err
			}
		}
		if err = write(); err == nil {
			return nil
		}
	}
	return err
}

// rawFailed turns raw records that could not be archived into
// processing-error records that keep each record's bytes.
func rawFailed(raw archive.Block, path string, cause error) archive.Block {
	var out archive.Block
	_ = archive.DecodeRawBlock(raw, func(r *archive.RawRecord) error {
		out.Data = archive.AppendErrorJSON(out.Data, &records.Error{Kind: records.WriteFailed, Stage: "archive",
			Source: records.Lineage{Stream: r.Stream, Shard: r.Shard, Sequence: r.Sequence},
			Time:   time.UnixMilli(r.ArrivalMillis).UTC(), Events: 1, Raw: r.Data,
			Message: fmt.Sprintf("archiving raw record to %s failed: %v", path, cause)})
		out.Count++
		return nil
	})
	return out
}

// fileName names a commit's files: <window start>_<stream>_<shard>_<first
// sequence>-<8 hex digits of FNV-1a of the last sequence>. The same
// records of a window (a commit retried, a window read again along the
// same pages after a restart) get the same name and replace their files;
// different records never do. (Named by the first sequence alone, a
// window's files written by an instance that had just lost the shard's
// lease could replace the new holder's files for the same window, which
// held more records, after the new holder's checkpoint had moved past
// them: records lost from the archive.)
func fileName(window time.Time, stream, shard, first, last string) string {
	h := fnv.New32a()
	h.Write([]byte(last))
	return fmt.Sprintf("%s_%s_%s_%s-%08x", window.Format("20060102T150405Z"), safeName(stream), safeName(shard), first, h.Sum32())
}

// safeName keeps a name usable in file names.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}
