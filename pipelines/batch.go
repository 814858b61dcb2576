package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/internal/workpool"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/lake"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/lakebuild"
	"github.com/fineo-io/ingest/transforms/schemachange"
	"github.com/fineo-io/ingest/transforms/stage1"
)

// Batch counters.
const (
	StagedRead      = "staged_read"
	Duplicates      = "duplicates_removed"
	LakeRows        = "lake_rows"
	LakePartitions  = "lake_partitions"
	BackupItems     = "backup_items"
	UnreadableFiles = "unreadable_files"
	Unbound         = "unbound_events"
	DaysDone        = "days_done"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*lakebuild.Day)(nil)).Elem())
	register.DoFn4x1[context.Context, lakebuild.Day, func(string, []byte), func(string, archive.Block), error](&dayFn{})
	register.DoFn3x1[context.Context, string, func(*[]byte) bool, error](&reportFn{})
	register.Emitter2[string, []byte]()
	register.Iter1[[]byte]()
}

// BatchConfig configures the batch pipeline.
type BatchConfig struct {
	Archive string           // staged archive root (read) and error archive root (write)
	Lake    string           // lake root
	Backup  string           // backup root; "" for none
	Tenants []*schema.Tenant // current schemas
	Days    []lakebuild.Day  // from PlanDays
	Run     string           // run id: names the schema-change report
	Parquet lake.Options
	Items   dynamodbio.ItemOptions
	Quiet   bool // no progress lines on stderr
}

// PlanDays lists the staged archive's days in [from, to] (YYYY-MM-DD,
// inclusive; "" = open) with their files.
func PlanDays(ctx context.Context, archiveRoot, from, to string) ([]lakebuild.Day, error) {
	st, err := blob.Open(ctx, archiveRoot)
	if err != nil {
		return nil, err
	}
	objs, err := st.List(ctx, archive.StagedDir+"/")
	if err != nil {
		return nil, err
	}
	byDate := map[string][]string{}
	for _, o := range objs {
		// staged/date=YYYY-MM-DD/<file>.avro (or .../hour=HH/<file>.avro: older archives)
		rest, ok := strings.CutPrefix(o.Path, archive.StagedDir+"/date=")
		if !ok || len(rest) < 10 || !strings.HasSuffix(o.Path, ".avro") {
			continue
		}
		d := rest[:10]
		if (from != "" && d < from) || (to != "" && d > to) {
			continue
		}
		byDate[d] = append(byDate[d], o.Path)
	}
	days := make([]lakebuild.Day, 0, len(byDate))
	for d, files := range byDate {
		sort.Strings(files)
		days = append(days, lakebuild.Day{Date: d, Files: files})
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Date < days[j].Date })
	return days, nil
}

// Batch adds the batch graph: one element per staged day → lake
// partitions (+ backup) → per-day schema-change reports merged into one
// report file; unreadable staged files and unbound records become
// processing errors in the error archive.
func Batch(s beam.Scope, cfg BatchConfig) {
	s = s.Scope("Batch")
	snapshot, err := json.Marshal(cfg.Tenants)
	if err != nil {
		panic(fmt.Sprintf("batch: encoding schemas: %v", err))
	}
	days := beam.CreateList(s, cfg.Days)
	days = beam.Reshuffle(s, days)
	reports, errs := beam.ParDo2(s, &dayFn{
		Archive: cfg.Archive, Lake: cfg.Lake, Backup: cfg.Backup, Schemas: snapshot, Run: cfg.Run,
		Parquet: cfg.Parquet, Items: cfg.Items, Quiet: cfg.Quiet, TotalDays: len(cfg.Days),
	}, days)
	beam.ParDo0(s, &reportFn{Lake: cfg.Lake, Run: cfg.Run}, beam.GroupByKey(s, reports))
	archive.WriteErrors(s, cfg.Archive, archive.WriteOptions{}, errs)
}

type dayFn struct {
	Archive, Lake, Backup string
	Schemas               []byte
	Run                   string
	Parquet               lake.Options
	Items                 dynamodbio.ItemOptions
	Quiet                 bool
	TotalDays             int

	cfg     lakebuild.Config
	archive blob.Store
	done    atomic.Int64
	// Days are built on one goroutine per CPU and emitted here in order:
	// a runner that runs this DoFn on one goroutine (the direct runner,
	// the bounded-job default) would otherwise use one core (measured:
	// bench/RESULTS.md).
	pool *workpool.Pool[dayJob, dayResult]
}

type dayJob struct {
	ctx context.Context
	day lakebuild.Day
}

type dayResult struct {
	day   lakebuild.Day
	res   *lakebuild.Result
	err   error
	start time.Time
}

func (f *dayFn) Setup(ctx context.Context) error {
	var tenants []*schema.Tenant
	if err := json.Unmarshal(f.Schemas, &tenants); err != nil {
		return err
	}
	b, err := stage1.NewBinder(tenants)
	if err != nil {
		return err
	}
	f.cfg = lakebuild.Config{Binder: b, Parquet: f.Parquet, ItemOptions: f.Items, Run: f.Run}
	if f.archive, err = blob.Open(ctx, f.Archive); err != nil {
		return err
	}
	if f.cfg.Lake, err = blob.Open(ctx, f.Lake); err != nil {
		return err
	}
	if f.Backup != "" {
		if f.cfg.Backup, err = blob.Open(ctx, f.Backup); err != nil {
			return err
		}
	}
	f.pool = workpool.New(workpool.Options{}, func(_ int, j dayJob) dayResult {
		start := time.Now()
		res, err := lakebuild.ProcessDay(j.ctx, f.cfg, f.archive, j.day)
		return dayResult{day: j.day, res: res, err: err, start: start}
	})
	return nil
}

func (f *dayFn) Teardown() {
	if f.pool != nil {
		f.pool.Close()
	}
}

func (f *dayFn) StartBundle(context.Context, func(string, []byte), func(string, archive.Block)) {
	f.pool.Discard() // a failed bundle's days, if any
}

func (f *dayFn) ProcessElement(ctx context.Context, day lakebuild.Day, emitReport func(string, []byte), emitErr func(string, archive.Block)) error {
	return f.pool.Submit(dayJob{ctx: ctx, day: day}, func(r dayResult) error { return f.emit(ctx, r, emitReport, emitErr) })
}

func (f *dayFn) FinishBundle(ctx context.Context, emitReport func(string, []byte), emitErr func(string, archive.Block)) error {
	return f.pool.Drain(func(r dayResult) error { return f.emit(ctx, r, emitReport, emitErr) })
}

// emit counts a built day and emits its report and processing errors.
func (f *dayFn) emit(ctx context.Context, r dayResult, emitReport func(string, []byte), emitErr func(string, archive.Block)) error {
	day, res, start := r.day, r.res, r.start
	if r.err != nil {
		return fmt.Errorf("batch %s: %w", day.Date, r.err)
	}
	metrics.Counter(StagedRead).Inc(ctx, res.Read)
	metrics.Counter(Duplicates).Inc(ctx, res.Duplicates)
	metrics.Counter(LakeRows).Inc(ctx, res.Rows)
	metrics.Counter(LakePartitions).Inc(ctx, int64(len(res.Partitions)))
	metrics.Counter(BackupItems).Inc(ctx, res.BackupItems)
	metrics.Counter(Unbound).Inc(ctx, res.Unbound)
	metrics.Counter(UnreadableFiles).Inc(ctx, int64(len(res.FileErrors)))
	metrics.Counter(DaysDone).Inc(ctx, 1)

	now := time.Now().UTC()
	var blk archive.Block
	for _, fe := range res.FileErrors {
		blk.Data = archive.AppendErrorJSON(blk.Data, &records.Error{
			Kind: records.ReadFailed, Stage: "batch", Time: now, Events: 1,
			Message: fmt.Sprintf("staged archive file %s is unreadable and was left out of day %s: %v", fe.File, day.Date, fe.Err),
			Source:  records.Lineage{File: fe.File},
		})
		blk.Count++
	}
	for _, ev := range res.Unbound1 {
		blk.Data = archive.AppendErrorJSON(blk.Data, &records.Error{
			Kind: records.Internal, Stage: "batch", Tenant: ev.Tenant, Time: now, Events: 1,
			Message: fmt.Sprintf("tenant %q metric %q is not in the current schemas; event left out of the lake", ev.Tenant, ev.Metric),
			Raw:     archive.EventJSON(ev), Source: ev.Source,
		})
		blk.Count++
	}
	if blk.Count > 0 {
		metrics.Counter(metrics.ProcessingErrors).Inc(ctx, blk.Count)
		emitErr(archive.ErrorPartition(records.Processing, now), blk)
	}
	rep, err := json.Marshal(res.Report)
	if err != nil {
		return err
	}
	emitReport("report", rep)
	if !f.Quiet {
		n := f.done.Add(1)
		fmt.Fprintf(os.Stderr, "batch: day %s: %d staged → %d rows in %d partition(s), %d duplicate(s) removed (%s; %d/%d days in this worker)\n",
			day.Date, res.Read, res.Rows, len(res.Partitions), res.Duplicates, time.Since(start).Round(time.Millisecond), n, f.TotalDays)
	}
	return nil
}

type reportFn struct {
	Lake, Run string
}

func (f *reportFn) ProcessElement(ctx context.Context, _ string, parts func(*[]byte) bool) error {
	total := schemachange.NewReport()
	var b []byte
	for parts(&b) {
		r, err := schemachange.Read(strings.NewReader(string(b)))
		if err != nil {
			return err
		}
		total.Merge(r)
	}
	total.Run = f.Run
	total.Generated = time.Now().UTC()
	st, err := blob.Open(ctx, f.Lake)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(total, "", "  ")
	if err != nil {
		return err
	}
	w, err := st.Create(ctx, ReportPath(f.Run))
	if err != nil {
		return err
	}
	if _, err := w.Write(out); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// ReportPath is where a run's schema-change report lands in the lake.
func ReportPath(run string) string { return lakebuild.ReportsDir + "/" + run + ".json" }
