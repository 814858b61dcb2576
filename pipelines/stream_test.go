package pipelines_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/fineo-io/ingest/internal/sampledata"
	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/notify"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/transforms/streaming"
)

// sampleRecords returns the sample's raw lines that fit in a Kinesis
// record (all but the one 10 MB line), and the ground truth adjusted for
// the lines left out (too_large events).
func sampleRecords(t *testing.T) ([][]byte, expected) {
	t.Helper()
	exp := loadExpected(t)
	lines, tooLarge, err := sampledata.KinesisLines(context.Background(), filepath.Join(sample, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	exp.TotalEvents -= tooLarge
	exp.Errors["too_large"] -= tooLarge
	return lines, exp
}

// putLines puts lines to stream, spread over its shards.
func putLines(t *testing.T, api kinesisio.API, stream string, lines [][]byte, from int) {
	t.Helper()
	recs := make([]kinesisio.PutRecord, len(lines))
	for i, l := range lines {
		recs[i] = kinesisio.PutRecord{Data: l, PartitionKey: fmt.Sprintf("device-%d", from+i)}
	}
	_, failed, err := kinesisio.PutRecords(context.Background(), api, stream, recs, kinesisio.WriterOptions{})
	if err != nil || len(failed) > 0 {
		t.Fatalf("putting %d records: %v (%d failed)", len(recs), err, len(failed))
	}
}

// streamEnv is one test's stand-ins: Kinesis, DynamoDB, a raw stream, the
// nearline and checkpoint tables.
type streamEnv struct {
	kin                     *kinesis.Client
	ddb                     *dynamodb.Client
	raw, table, checkpoints string
	archive                 string
	cfg                     pipelines.StreamConfig
}

func newStreamEnv(t *testing.T, shards int) *streamEnv {
	t.Helper()
	testenv.Kinesis(t)
	testenv.DynamoDB(t)
	ctx := context.Background()
	e := &streamEnv{kin: testenv.KinesisClient(t)}
	var err error
	if e.ddb, err = dynamodbio.NewClient(ctx); err != nil {
		t.Fatal(err)
	}
	e.raw = testenv.UniqueName(t, "raw")
	testenv.CreateStream(t, e.kin, e.raw, shards)
	e.table = testenv.UniqueName(t, "nearline")
	e.checkpoints = e.table + "-checkpoints"
	if _, err := dynamodbio.EnsureTable(ctx, e.ddb, e.table, dynamodbio.LayoutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dynamodbio.EnsureCheckpointTable(ctx, e.ddb, e.checkpoints); err != nil {
		t.Fatal(err)
	}
	e.archive = t.TempDir()
	e.cfg = pipelines.StreamConfig{
		RawStream: e.raw, Table: e.table, Archive: e.archive, Tenants: loadTenants(t),
		Read: kinesisio.ReadConfig{StopAfterIdle: 3 * time.Second, PollInterval: 100 * time.Millisecond,
			DiscoverEvery: 500 * time.Millisecond},
		Window:          2 * time.Second,
		CheckpointTable: e.checkpoints, Consumer: "test",
	}
	return e
}

// run runs the streaming pipeline on the embedded prism runner until the
// source stops on idle, resuming from the checkpoint table like `fineo
// stream` does.
func (e *streamEnv) run(t *testing.T, cfg pipelines.StreamConfig) metrics.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cps := &dynamodbio.Checkpoints{API: e.ddb, Table: cfg.CheckpointTable, Consumer: cfg.Consumer}
	resume, err := cps.Load(ctx, cfg.SourceStream())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Read.Resume = resume
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	pipelines.Stream(s, cfg)
	start := time.Now()
	counters := runners.CountersOf(runners.Unbounded) // as fineo stream reports them
	pr, err := runners.Run(ctx, runners.Unbounded, p)
	if err != nil {
		t.Fatalf("stream pipeline: %v", err)
	}
	t.Logf("stream pipeline ran %v", time.Since(start).Round(time.Millisecond))
	return counters(pr)
}

// streamArchive is what a streaming job archived.
type streamArchive struct {
	raw    []*archive.RawRecord
	staged []*records.Event
	errs   []*archive.ErrorRecord
	files  []string
}

func readStreamArchive(t *testing.T, root string) streamArchive {
	t.Helper()
	ctx := context.Background()
	st, objs := archiveObjects(t, root)
	var a streamArchive
	for _, o := range objs {
		a.files = append(a.files, o.Path)
		rc, err := st.Open(ctx, o.Path)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(o.Path, archive.RawDir+"/"):
			err = archive.ReadRawFile(data, func(r *archive.RawRecord) error { a.raw = append(a.raw, r); return nil })
		case strings.HasPrefix(o.Path, archive.StagedDir+"/"):
			err = archive.ReadStaged(bytes.NewReader(data), func(ev *records.Event) error { a.staged = append(a.staged, ev); return nil })
		case strings.HasPrefix(o.Path, archive.ErrorsDir+"/"):
			err = archive.ReadErrors(bytes.NewReader(data), func(r *archive.ErrorRecord) error { r2 := *r; a.errs = append(a.errs, &r2); return nil })
		case strings.HasPrefix(o.Path, "_"), strings.HasPrefix(o.Path, dynamodbio.OverflowDir+"/"):
		default:
			t.Errorf("unexpected archive file %s", o.Path)
		}
		if err != nil {
			t.Fatalf("%s: %v", o.Path, err)
		}
	}
	return a
}

// nearlineIDs queries the nearline table for every tenant, metric and
// time bucket the staged events fall in, and returns the event ids found
// (with how often each was found). It also counts the table's items with
// a Scan, so that an item no query would find is noticed too.
func nearlineIDs(t *testing.T, api *dynamodb.Client, table string, staged []*records.Event) (map[string]int, int) {
	t.Helper()
	ctx := context.Background()
	type bucket struct {
		tenant, metric string
		start          int64
	}
	buckets := map[bucket]bool{}
	for _, ev := range staged {
		buckets[bucket{ev.Tenant, ev.Metric, dynamodbio.BucketStart(ev.Timestamp, 0)}] = true
	}
	ids := map[string]int{}
	for b := range buckets {
		end := b.start + dynamodbio.DefaultBucket.Milliseconds()
		_, err := dynamodbio.Query(ctx, api, table, b.tenant, b.metric, b.start, end, func(ev *records.Event) error {
			if ev.Tenant != b.tenant || ev.Metric != b.metric {
				t.Errorf("query %v returned %s/%s", b, ev.Tenant, ev.Metric)
			}
			ids[ev.ID]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids, testenv.ScanItems(t, api, table, dynamodbio.AttrPK, nil)
}

// checkStream checks a streaming run against the sample's ground truth:
// the raw archive holds every input record byte for byte, the staged
// archive every valid event, the error archive every customer error by
// kind, the nearline table exactly the distinct valid events (by Query),
// the checkpoints the last sequence number of every shard, and the
// counters conserve.
func checkStream(t *testing.T, e *streamEnv, lines [][]byte, exp expected, a streamArchive) {
	t.Helper()
	// Raw: every record, byte for byte (a restart may archive a record twice).
	want := map[string]int{}
	for _, l := range lines {
		want[string(l)]++
	}
	got := map[string]int{}
	seen := map[string]bool{}
	last := map[string]string{}
	for _, r := range a.raw {
		k := r.Shard + "@" + r.Sequence
		if seen[k] {
			continue
		}
		seen[k] = true
		got[string(r.Data)]++
		if dynamodbio.SequenceLess(last[r.Shard], r.Sequence) || last[r.Shard] == "" {
			last[r.Shard] = r.Sequence
		}
	}
	missing := 0
	for l, n := range want {
		if got[l] != n {
			missing++
		}
	}
	if missing > 0 || len(seen) != len(lines) {
		t.Errorf("raw archive: %d distinct records, want %d; %d lines differ in count", len(seen), len(lines), missing)
	}

	// Staged and errors, with duplicates from re-processing collapsed by lineage.
	stagedByID := map[string]*records.Event{}
	stagedN := map[string]bool{}
	for _, ev := range a.staged {
		stagedByID[ev.ID] = ev
		stagedN[ev.Source.String()+"#"+fmt.Sprint(ev.Source.Index)] = true
		if ev.Source.Stream != e.cfg.SourceStream() || ev.Source.Shard == "" || ev.Source.Sequence == "" {
			t.Fatalf("staged event without stream lineage: %+v", ev.Source)
		}
	}
	if len(stagedN) != exp.ValidEvents {
		t.Errorf("staged archive: %d events, want %d", len(stagedN), exp.ValidEvents)
	}
	if len(stagedByID) != exp.DistinctValid {
		t.Errorf("staged archive: %d distinct ids, want %d", len(stagedByID), exp.DistinctValid)
	}
	kinds := map[string]int{}
	errSeen := map[string]bool{}
	for _, r := range a.errs {
		k := fmt.Sprintf("%s/%s@%s#%s", r.Kind, r.Source.Shard, r.Source.Sequence, r.Message)
		if errSeen[k] {
			continue
		}
		errSeen[k] = true
		if r.Class != string(records.Customer) {
			t.Errorf("processing error: %+v", r)
			continue
		}
		kinds[r.Kind] += r.Events
	}
	for k, n := range exp.Errors {
		if kinds[k] != n {
			t.Errorf("customer errors %s: %d, want %d", k, kinds[k], n)
		}
	}

	// Nearline: exactly the distinct valid events, found by Query.
	staged := make([]*records.Event, 0, len(stagedByID))
	for _, ev := range stagedByID {
		staged = append(staged, ev)
	}
	ids, items := nearlineIDs(t, e.ddb, e.table, staged)
	if len(ids) != exp.DistinctValid || items != exp.DistinctValid {
		t.Errorf("nearline: %d ids by query, %d items, want %d", len(ids), items, exp.DistinctValid)
	}
	for id, n := range ids {
		if n != 1 || stagedByID[id] == nil {
			t.Fatalf("nearline id %s found %d times (staged: %v)", id, n, stagedByID[id] != nil)
		}
	}

	// Checkpoints: every shard committed up to its last record.
	cps := &dynamodbio.Checkpoints{API: e.ddb, Table: e.checkpoints, Consumer: e.cfg.Consumer}
	committed, err := cps.Load(context.Background(), e.cfg.SourceStream())
	if err != nil {
		t.Fatal(err)
	}
	for shard, seq := range last {
		if committed[shard] != seq {
			t.Errorf("checkpoint of %s = %q, want its last sequence %q", shard, committed[shard], seq)
		}
	}
}

func TestStreamEndToEnd(t *testing.T) {
	e := newStreamEnv(t, 4)
	lines, exp := sampleRecords(t)
	half := len(lines) / 2
	putLines(t, e.kin, e.raw, lines[:half], 0)

	// Alerts: one per shard and window with errors, to a local receiver.
	var alerts struct {
		sync.Mutex
		got []notify.Notification
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n notify.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("alert: %v", err)
		}
		alerts.Lock()
		alerts.got = append(alerts.got, n)
		alerts.Unlock()
	}))
	defer hook.Close()
	e.cfg.Notify = []string{hook.URL + "/alerts?token=secret"}

	// The second half arrives while the job runs.
	var wg sync.WaitGroup
	before := metrics.Local()[kinesisio.KinesisRecords]
	wg.Go(func() {
		// Once the job has read the first half (it runs in this process),
		// well within its 3 s idle stop.
		for deadline := time.Now().Add(60 * time.Second); metrics.Local()[kinesisio.KinesisRecords]-before < int64(half) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		putLines(t, e.kin, e.raw, lines[half:], half)
	})
	sum := e.run(t, e.cfg)
	wg.Wait()

	a := readStreamArchive(t, e.archive)
	t.Logf("counters: %v", sum)
	checkStream(t, e, lines, exp, a)
	if sum[metrics.EventsIn] != int64(exp.TotalEvents) {
		t.Errorf("events_in = %d, want %d", sum[metrics.EventsIn], exp.TotalEvents)
	}
	if !sum.Conserved() {
		t.Errorf("counters do not conserve: %v", sum)
	}
	if sum[streaming.PagesProcessed] != sum[streaming.PagesCommitted] || sum[streaming.PagesCommitted] == 0 {
		t.Errorf("pages: %d processed, %d committed", sum[streaming.PagesProcessed], sum[streaming.PagesCommitted])
	}
	if sum[metrics.ProcessingErrors] != 0 {
		t.Errorf("processing errors: %d", sum[metrics.ProcessingErrors])
	}
	// Whole files per window: far fewer raw files than pages read.
	rawFiles := 0
	for _, f := range a.files {
		if strings.HasPrefix(f, archive.RawDir+"/") {
			rawFiles++
		}
	}
	if pages := sum[kinesisio.KinesisPages]; rawFiles == 0 || int64(rawFiles) > pages {
		t.Errorf("%d raw files for %d pages", rawFiles, pages)
	}
	t.Logf("%d records, %d pages, %d files", len(lines), sum[kinesisio.KinesisPages], len(a.files))

	// Every customer error is in exactly one alert (ids unique per commit:
	// shard, window and, for a late pane, its first sequence), by tenant and
	// kind.
	alerts.Lock()
	ids := map[string]bool{}
	kindsAlerted := map[string]int64{}
	for _, n := range alerts.got {
		if ids[n.ID] || n.Status != "customer_errors" || n.ErrorArchive.Customer == "" {
			t.Errorf("alert %s: duplicate id, status %q or no error file (%q)", n.ID, n.Status, n.ErrorArchive.Customer)
		}
		ids[n.ID] = true
		for _, te := range n.Tenants {
			for k, c := range te.Kinds {
				kindsAlerted[k] += c
			}
		}
	}
	alerts.Unlock()
	for k, c := range exp.Errors {
		if kindsAlerted[k] != int64(c) {
			t.Errorf("alerts report %d %s errors, want %d", kindsAlerted[k], k, c)
		}
	}
	if int64(len(ids)) != sum[streaming.AlertsSent] || len(ids) == 0 {
		t.Errorf("%d alerts received, alerts_sent = %d", len(ids), sum[streaming.AlertsSent])
	}

	// Replaying the raw archive (fineo replay --stage raw) makes the same
	// staged events, with the same stream lineage, and the same errors.
	var rawPaths []string
	for _, f := range a.files {
		if strings.HasPrefix(f, archive.RawDir+"/") {
			rawPaths = append(rawPaths, filepath.Join(e.archive, f))
		}
	}
	out := t.TempDir()
	rsum := runIngest(t, "direct", pipelines.IngestConfig{Files: rawPaths, Tenants: e.cfg.Tenants, Archive: out})
	r := readArchive(t, out)
	lineage := func(evs []*records.Event) map[string]string {
		m := map[string]string{}
		for _, ev := range evs {
			m[fmt.Sprintf("%s#%d", ev.Source, ev.Source.Index)] = ev.ID
		}
		return m
	}
	if got, want := lineage(r.staged), lineage(a.staged); fmt.Sprint(got) != fmt.Sprint(want) || len(got) != exp.ValidEvents {
		t.Errorf("raw replay: %d staged events, stream: %d (want the same events with the same ids)", len(got), len(want))
	}
	if len(r.errs) != exp.ErrorEvents() || !rsum.Conserved() {
		t.Errorf("raw replay: %d errors, want %d; conserved %v", len(r.errs), exp.ErrorEvents(), rsum.Conserved())
	}
}
