package lakebuild

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"golang.org/x/sync/semaphore"

	"github.com/fineo-io/ingest/internal/workpool"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/lake"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/schemachange"
	"github.com/fineo-io/ingest/transforms/stage1"
)

// Batch counters.
const (
	StagedRead      = "staged_read"
	Duplicates      = "duplicates_removed"
	LakeRows        = "lake_rows"
	LakePartitions  = "lake_partitions"
	LakeFiles       = "lake_files"
	SpilledBuckets  = "spilled_buckets"
	BackupItems     = "backup_items"
	UnreadableFiles = "unreadable_files"
	Unbound         = "unbound_events"
	PartitionsDone  = "partitions_done"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*archive.StagedFile)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*archive.Range)(nil)).Elem())
	register.DoFn4x1[context.Context, archive.StagedFile, func(string, archive.Range), func(string, archive.Block), error](&planFn{})
	register.DoFn5x1[context.Context, string, func(*archive.Range) bool, func(string, []byte), func(string, archive.Block), error](&unitFn{})
	register.DoFn3x1[context.Context, string, func(*[]byte) bool, error](&reportFn{})
	register.Emitter2[string, archive.Range]()
	register.Emitter2[string, []byte]()
	register.Iter1[archive.Range]()
	register.Iter1[[]byte]()
}

// BuildConfig configures Build.
type BuildConfig struct {
	Archive string           // staged archive root
	Lake    string           // lake root
	Backup  string           // backup root; "" for none
	Tenants []*schema.Tenant // current schemas
	Run     string           // run id: names the schema-change report
	Parquet lake.Options
	Items   dynamodbio.ItemOptions
	Budget  int64 // memory budget of one partition; 0: DefaultBudget
	Quiet   bool  // no progress lines on stderr
}

// Build adds the lake build: staged files (archive.StagedFile) → their
// ranges keyed by lake partition (a small reference each: the event bytes
// never pass through the grouping) → one BuildPartition per partition →
// the schema-change report, merged into one file. It returns the
// processing errors (unreadable staged files and ranges, unbound events)
// as error blocks.
func Build(s beam.Scope, cfg BuildConfig, files beam.PCollection) (errs beam.PCollection) {
	s = s.Scope("lakebuild.Build")
	snapshot, err := json.Marshal(cfg.Tenants)
	if err != nil {
		panic(fmt.Sprintf("lakebuild: encoding schemas: %v", err))
	}
	ranges, planErrs := beam.ParDo2(s, &planFn{Archive: cfg.Archive, Schemas: snapshot}, files)
	reports, unitErrs := beam.ParDo2(s, &unitFn{
		Archive: cfg.Archive, Lake: cfg.Lake, Backup: cfg.Backup, Schemas: snapshot, Run: cfg.Run,
		Parquet: cfg.Parquet, Items: cfg.Items, Budget: cfg.Budget, Quiet: cfg.Quiet,
	}, beam.GroupByKey(s, ranges))
	beam.ParDo0(s, &reportFn{Lake: cfg.Lake, Run: cfg.Run}, beam.GroupByKey(s, reports))
	return beam.Flatten(s, planErrs, unitErrs)
}

// binderOf decodes a schema snapshot into a binder.
func binderOf(snapshot []byte) (*stage1.Binder, error) {
	var tenants []*schema.Tenant
	if err := json.Unmarshal(snapshot, &tenants); err != nil {
		return nil, err
	}
	return stage1.NewBinder(tenants)
}

// planFn reads a staged file's index and emits its ranges, each keyed by
// the lake partition it belongs to.
type planFn struct {
	Archive string
	Schemas []byte

	binder *stage1.Binder
	store  blob.Store
	// Files are planned on several goroutines: an indexed file costs one
	// small read, mostly waiting on the store.
	pool *workpool.Pool[planJob, planResult]
}

type planJob struct {
	ctx  context.Context
	file archive.StagedFile
}

type planResult struct {
	file   archive.StagedFile
	ranges []archive.Range
	err    error
}

// planWorkers plan files at once.
const planWorkers = 8

func (f *planFn) Setup(ctx context.Context) (err error) {
	if f.binder, err = binderOf(f.Schemas); err != nil {
		return err
	}
	if f.store, err = blob.Open(ctx, f.Archive); err != nil {
		return err
	}
	f.pool = workpool.New(workpool.Options{Workers: planWorkers, Depth: 4 * planWorkers}, func(_ int, j planJob) planResult {
		rs, err := archive.PlanFile(j.ctx, f.store, j.file.Path, j.file.Size)
		return planResult{file: j.file, ranges: rs, err: err}
	})
	return nil
}

func (f *planFn) Teardown() {
	if f.pool != nil {
		f.pool.Close()
	}
}

func (f *planFn) StartBundle(context.Context, func(string, archive.Range), func(string, archive.Block)) {
	f.pool.Discard()
}

func (f *planFn) ProcessElement(ctx context.Context, file archive.StagedFile, emit func(string, archive.Range), emitErr func(string, archive.Block)) error {
	return f.pool.Submit(planJob{ctx: ctx, file: file}, func(r planResult) error { return f.emit(ctx, r, emit, emitErr) })
}

func (f *planFn) FinishBundle(ctx context.Context, emit func(string, archive.Range), emitErr func(string, archive.Block)) error {
	return f.pool.Drain(func(r planResult) error { return f.emit(ctx, r, emit, emitErr) })
}

func (f *planFn) emit(ctx context.Context, r planResult, emit func(string, archive.Range), emitErr func(string, archive.Block)) error {
	if r.err != nil {
		if !unreadable(r.err) {
			return fmt.Errorf("planning %s: %w", f.store.URL(r.file.Path), r.err) // the runner retries
		}
		metrics.Counter(UnreadableFiles).Inc(ctx, 1)
		metrics.Counter(metrics.ProcessingErrors).Inc(ctx, 1)
		now := time.Now().UTC()
		url := f.store.URL(r.file.Path)
		emitErr(archive.ErrorPartition(records.Processing, now), archive.Block{Count: 1, Data: archive.AppendErrorJSON(nil, &records.Error{
			Kind: records.ReadFailed, Stage: "batch", Time: now, Events: 1,
			Message: fmt.Sprintf("staged archive file %s is unreadable and was left out of day %s: %v", url, r.file.Date, r.err),
			Source:  records.Lineage{File: url},
		})})
		return nil
	}
	for _, rg := range r.ranges {
		emit(UnitOf(f.binder, r.file.Date, rg).Key(), rg)
	}
	return nil
}

// unitsPerCPU bounds the partitions built at once per CPU.
const unitsPerCPU = 4

// unitFn builds one lake partition from its ranges.
type unitFn struct {
	Archive, Lake, Backup string
	Schemas               []byte
	Run                   string
	Parquet               lake.Options
	Items                 dynamodbio.ItemOptions
	Budget                int64
	Quiet                 bool

	cfg     Config
	archive blob.Store
	done    atomic.Int64
	// Partitions are built on one goroutine per CPU and emitted here in
	// order: a runner that runs this DoFn on one goroutine (the direct
	// runner, the bounded-job default) would otherwise use one core.
	pool *workpool.Pool[unitJob, unitResult]
}

type unitJob struct {
	ctx    context.Context
	unit   Unit
	ranges []archive.Range
}

type unitResult struct {
	res   *Result
	err   error
	start time.Time
	unit  Unit
}

func (f *unitFn) Setup(ctx context.Context) error {
	b, err := binderOf(f.Schemas)
	if err != nil {
		return err
	}
	f.cfg = Config{Binder: b, Parquet: f.Parquet, ItemOptions: f.Items, Run: f.Run, Budget: f.Budget}
	// Spill directories a killed run left (a worker's temp space is its own).
	if n, err := RemoveSpills(f.cfg.TempDir, tempGrace); err != nil {
		slog.Warn("lakebuild: removing old spill directories", "err", err)
	} else if n > 0 {
		slog.Info("lakebuild: removed spill directories a killed run left", "count", n)
	}
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
	if f.cfg.Budget <= 0 {
		f.cfg.Budget = DefaultBudget()
	}
	// Partitions are built by up to unitsPerCPU per CPU at once, as long as
	// their memory estimates (each at most the budget: a larger one is
	// spilled) fit one budget per CPU together. Small partitions are
	// mostly file operations (a few reads, a create, a rename, a listing),
	// and one per CPU left the cores idle while they waited (measured:
	// bench/RESULTS.md, B1).
	n := runtime.GOMAXPROCS(0)
	mem := semaphore.NewWeighted(int64(n) * f.cfg.Budget)
	f.pool = workpool.New(workpool.Options{Workers: unitsPerCPU * n}, func(_ int, j unitJob) unitResult {
		w := min(Estimate(j.ranges), f.cfg.Budget)
		if err := mem.Acquire(j.ctx, w); err != nil {
			return unitResult{err: err, unit: j.unit}
		}
		defer mem.Release(w)
		start := time.Now()
		res, err := BuildPartition(j.ctx, f.cfg, f.archive, j.unit, j.ranges)
		return unitResult{res: res, err: err, start: start, unit: j.unit}
	})
	return nil
}

func (f *unitFn) Teardown() {
	if f.pool != nil {
		f.pool.Close()
	}
}

func (f *unitFn) StartBundle(context.Context, func(string, []byte), func(string, archive.Block)) {
	f.pool.Discard() // a failed bundle's partitions, if any
}

func (f *unitFn) ProcessElement(ctx context.Context, key string, ranges func(*archive.Range) bool, emitReport func(string, []byte), emitErr func(string, archive.Block)) error {
	u, err := ParseUnit(key)
	if err != nil {
		return err
	}
	var rs []archive.Range
	var r archive.Range
	for ranges(&r) {
		rs = append(rs, r)
	}
	return f.pool.Submit(unitJob{ctx: ctx, unit: u, ranges: rs}, func(r unitResult) error { return f.emit(ctx, r, emitReport, emitErr) })
}

func (f *unitFn) FinishBundle(ctx context.Context, emitReport func(string, []byte), emitErr func(string, archive.Block)) error {
	return f.pool.Drain(func(r unitResult) error { return f.emit(ctx, r, emitReport, emitErr) })
}

// emit counts a built partition and emits its report and processing errors.
func (f *unitFn) emit(ctx context.Context, r unitResult, emitReport func(string, []byte), emitErr func(string, archive.Block)) error {
	u, res := r.unit, r.res
	if r.err != nil {
		return fmt.Errorf("batch %s/%s/%s: %w", u.Tenant, u.Metric, u.Date, r.err)
	}
	metrics.Counter(StagedRead).Inc(ctx, res.Read)
	metrics.Counter(Duplicates).Inc(ctx, res.Duplicates)
	metrics.Counter(LakeRows).Inc(ctx, res.Rows)
	metrics.Counter(BackupItems).Inc(ctx, res.BackupItems)
	metrics.Counter(Unbound).Inc(ctx, res.Unbound)
	metrics.Counter(UnreadableFiles).Inc(ctx, int64(len(res.FileErrors)))
	metrics.Counter(PartitionsDone).Inc(ctx, 1)
	if m := res.Partition; m != nil {
		metrics.Counter(LakePartitions).Inc(ctx, 1)
		metrics.Counter(LakeFiles).Inc(ctx, int64(len(m.Files)))
		if m.Buckets > 1 {
			metrics.Counter(SpilledBuckets).Inc(ctx, int64(m.Buckets))
		}
	}

	now := time.Now().UTC()
	var blk archive.Block
	for _, fe := range res.FileErrors {
		blk.Data = archive.AppendErrorJSON(blk.Data, &records.Error{
			Kind: records.ReadFailed, Stage: "batch", Tenant: u.Tenant, Time: now, Events: int(fe.Events),
			Message: fmt.Sprintf("staged archive file %s is unreadable: its %d record(s) of tenant %q metric %q were left out of %s: %v",
				fe.File, fe.Events, u.Tenant, u.Metric, u.Date, fe.Err),
			Source: records.Lineage{File: fe.File},
		})
		blk.Count++
	}
	for _, ev := range res.UnboundEvents {
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
		what := fmt.Sprintf("%d rows", res.Rows)
		if u.Unbound {
			what = fmt.Sprintf("%d unbound", res.Unbound)
		} else if m := res.Partition; m != nil && m.Buckets > 1 {
			what += fmt.Sprintf(" in %d buckets", m.Buckets)
		}
		fmt.Fprintf(os.Stderr, "batch: %s/%s/%s: %d staged → %s, %d duplicate(s) removed (%s; %d partitions in this worker)\n",
			u.Tenant, u.Metric, u.Date, res.Read, what, res.Duplicates, time.Since(r.start).Round(time.Millisecond), n)
	}
	return nil
}

// reportFn merges the partitions' schema-change reports into the run's
// report file.
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
func ReportPath(run string) string { return ReportsDir + "/" + run + ".json" }
