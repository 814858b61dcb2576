package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/dustin/go-humanize"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/lake"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/progress"
	"github.com/fineo-io/ingest/ops/redact"
	usagefile "github.com/fineo-io/ingest/ops/usage"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/transforms/lakebuild"
	"github.com/fineo-io/ingest/transforms/schemachange"
)

type batchFlags struct {
	archive, lake, schemas, backup string
	from, to, date                 string
	compression                    string
	memoryBudget                   string
	quiet                          bool
	notify                         notifyFlag
}

func cmdBatch(ctx context.Context, args []string) error {
	var f batchFlags
	err := parseBeamFlags("batch", args, func(fs *flag.FlagSet) {
		fs.StringVar(&f.archive, "archive", "", "archive root to read staged events from (and write processing errors to): a directory or s3://bucket/prefix")
		fs.StringVar(&f.lake, "lake", "", "lake root for the Parquet tables: a directory or s3://bucket/prefix")
		fs.StringVar(&f.schemas, "schemas", os.Getenv("FINEO_SCHEMAS"), "schema store: a directory of tenant schema files (env FINEO_SCHEMAS)")
		fs.StringVar(&f.backup, "backup", "", "also write fast-restore backup files (nearline table layout) here")
		fs.StringVar(&f.from, "from", "", "first event date to process, YYYY-MM-DD (default: the oldest)")
		fs.StringVar(&f.to, "to", "", "last event date to process, YYYY-MM-DD, inclusive (default: the newest)")
		fs.StringVar(&f.date, "date", "", "process one date: YYYY-MM-DD, today or yesterday (UTC); overrides --from/--to")
		fs.StringVar(&f.compression, "compression", "zstd", "Parquet compression: zstd or snappy")
		fs.StringVar(&f.memoryBudget, "memory-budget", "", "memory one lake partition may use before it is split by event id into buckets spilled to local temp files, e.g. 256MiB (default: a share of the memory the batch may use per CPU, 32MiB-128MiB)")
		fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on stderr")
		fs.Var(&f.notify, "notify", notifyUsage)
	})
	if err != nil {
		return err
	}
	if err := requireFlags("archive", f.archive, "lake", f.lake, "schemas", f.schemas); err != nil {
		return err
	}
	if err := lake.CheckCompression(f.compression); err != nil {
		return usageError(fmt.Errorf("--compression: %w", err))
	}
	if _, err := parseBudget(f.memoryBudget); err != nil {
		return usageError(err)
	}
	_, err = runBatch(ctx, f, os.Stdout)
	return err
}

// parseBudget reads --memory-budget: "" is the default (0), else a size
// such as 256MiB or 1GB of at least 1 MiB.
func parseBudget(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n < 1<<20 || n > 1<<50 {
		return 0, fmt.Errorf("--memory-budget %q: want a size of at least 1MiB, such as 256MiB or 2GiB", s)
	}
	return int64(n), nil
}

// resolveDates turns --date/--from/--to into an inclusive range.
func resolveDates(f batchFlags, now time.Time) (from, to string, err error) {
	if f.date != "" && (f.from != "" || f.to != "") {
		return "", "", errors.New("--date names one day: give it, or --from/--to, not both")
	}
	if f.date != "" {
		d := f.date
		switch d {
		case "today":
			d = now.UTC().Format(time.DateOnly)
		case "yesterday":
			d = now.UTC().AddDate(0, 0, -1).Format(time.DateOnly)
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return "", "", fmt.Errorf("--date %q: want YYYY-MM-DD, today or yesterday", f.date)
		}
		return d, d, nil
	}
	for _, d := range []string{f.from, f.to} {
		if d == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return "", "", fmt.Errorf("date %q: want YYYY-MM-DD", d)
		}
	}
	if f.from != "" && f.to != "" && f.from > f.to {
		return "", "", fmt.Errorf("--from %s is after --to %s", f.from, f.to)
	}
	return f.from, f.to, nil
}

// batchUsageOrder is the order of the per-tenant counts in the summary.
var batchUsageOrder = []string{"staged_read", "lake_rows", "duplicates"}

// runBatch runs the batch job and prints its summary and schema-change
// report, then writes the per-tenant usage file and sends the --notify alert.
func runBatch(ctx context.Context, f batchFlags, out io.Writer) (metrics.Summary, error) {
	from, to, err := resolveDates(f, time.Now())
	if err != nil {
		return nil, usageError(err)
	}
	end := jobEnd{job: "batch", run: newRunID(time.Now()), started: time.Now(),
		archive: f.archive, lake: f.lake, notify: f.notify, order: batchUsageOrder}
	var days []archive.Day
	sum, err := runBatchJob(ctx, f, from, to, end.run, &days, out)
	if runners.Name(runners.Bounded) == "dot" || (err == nil && len(days) == 0) {
		return sum, err
	}
	end.sum, end.err = sum, err
	if sum != nil {
		end.extra = func(r *usagefile.Report) { addLakeRows(ctx, r, f.lake, end.run, days) }
	}
	return sum, withUsage(err, finishJob(ctx, out, end))
}

// addLakeRows fills in lake rows per tenant from the manifests this run
// wrote, where the pipeline did not count them per tenant (counters
// "tenant.<id>.batch.lake_rows"). It lists the lake's manifests once.
func addLakeRows(ctx context.Context, r *usagefile.Report, lakeRoot, run string, days []archive.Day) {
	for _, stages := range r.Tenants {
		if s := stages["batch"]; s != nil {
			if _, ok := s.Counts["lake_rows"]; ok {
				return // counted by the pipeline
			}
		}
	}
	st, err := blob.Open(ctx, lakeRoot)
	if err != nil {
		slog.Warn("usage: lake rows per tenant unavailable", "err", redact.Error(err))
		return
	}
	objs, err := st.List(ctx, "tenant=")
	if err != nil {
		slog.Warn("usage: lake rows per tenant unavailable", "err", redact.Error(err))
		return
	}
	dates := map[string]bool{}
	for _, d := range days {
		dates[d.Date] = true
	}
	for _, o := range objs {
		dir, name := path.Split(o.Path)
		if name != lakebuild.ManifestName {
			continue
		}
		d, ok := strings.CutPrefix(path.Base(strings.TrimSuffix(dir, "/")), "date=")
		if !ok || !dates[d] {
			continue
		}
		rc, err := st.Open(ctx, o.Path)
		if err != nil {
			slog.Warn("usage: manifest unreadable", "path", st.URL(o.Path), "err", redact.Error(err))
			continue
		}
		var m lakebuild.Manifest
		err = json.NewDecoder(rc).Decode(&m)
		rc.Close()
		if err != nil || m.Run != run {
			continue
		}
		if r.Tenants[m.Tenant] == nil {
			r.Tenants[m.Tenant] = map[string]*usagefile.Stage{}
		}
		s := r.Tenants[m.Tenant]["batch"]
		if s == nil {
			s = &usagefile.Stage{Counts: map[string]int64{}}
			r.Tenants[m.Tenant]["batch"] = s
		}
		s.Counts["lake_rows"] += m.Rows
	}
}

func runBatchJob(ctx context.Context, f batchFlags, from, to, run string, daysOut *[]archive.Day, out io.Writer) (metrics.Summary, error) {
	tenants, err := loadSchemas(ctx, f.schemas)
	if err != nil {
		return nil, err
	}
	if err := existingRoot(f.archive); err != nil {
		return nil, err
	}
	days, err := archive.PlanDays(ctx, f.archive, from, to)
	if err != nil {
		return nil, err
	}
	*daysOut = days
	rng := fmt.Sprintf("%s .. %s", orAll(from, "oldest"), orAll(to, "newest"))
	if len(days) == 0 {
		fmt.Fprintf(out, "fineo batch: no staged events in %s under %s; nothing to do\n", rng, redact.URL(f.archive))
		return metrics.Summary{}, nil
	}
	cfg := pipelines.BatchConfig{
		Archive: f.archive, Lake: f.lake, Backup: f.backup, Tenants: tenants, Days: days, Run: run, Quiet: f.quiet,
	}
	cfg.Parquet.Compression = f.compression
	flagged, _ := parseBudget(f.memoryBudget) // checked before
	cfg.Budget = batchBudget(flagged)
	fitBatchMemory(cfg.Budget)
	if runners.Name(runners.Bounded) != "dot" {
		release, err := lockLake(&ctx, f.lake, run)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	p, s := beam.NewPipelineWithRoot()
	pipelines.Batch(s, cfg)
	files := 0
	for _, d := range days {
		files += len(d.Files)
	}
	fmt.Fprintf(out, "fineo batch: %d day(s) (%s), %d staged file(s) → lake %s, runner %s\n",
		len(days), rng, files, redact.URL(f.lake), runners.Name(runners.Bounded))
	stop := startProgress(f.quiet, "batch", progress.Totals{},
		map[string]progress.Field{pipelines.PartitionsDone: progress.Partitions, pipelines.StagedRead: progress.Events})
	start := time.Now()
	counters := runners.CountersOf(runners.Bounded)
	pr, err := runners.Run(ctx, runners.Bounded, p)
	stop()
	if err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			return nil, c // the lake's lock was lost
		}
		return nil, fmt.Errorf("pipeline failed: %w", err)
	}
	if runners.Name(runners.Bounded) == "dot" {
		fmt.Fprintln(out, "pipeline graph written (--runner=dot); nothing was run")
		return metrics.Summary{}, nil
	}
	sum := counters(pr)
	elapsed := time.Since(start)
	fmt.Fprintf(out, "done in %s (%.0f staged events/s)\n", elapsed.Round(time.Millisecond), float64(sum[pipelines.StagedRead])/elapsed.Seconds())
	sum.PrintCounters(out)
	metrics.Equation{Total: metrics.Term{Label: "staged_read", N: sum[pipelines.StagedRead]}, Parts: []metrics.Term{
		{Label: "lake rows", N: sum[pipelines.LakeRows]}, {Label: "duplicates", N: sum[pipelines.Duplicates]},
		{Label: "unbound", N: sum[pipelines.Unbound]}}}.Print(out)
	if err := printReport(ctx, out, f.lake, run); err != nil {
		return sum, err
	}
	if n := sum[metrics.ProcessingWritten]; n > 0 {
		return sum, &exitError{code: 3, err: fmt.Errorf("%d processing error(s) (unreadable staged files or unbound events): see %s/errors/processing/", n, redact.URL(f.archive))}
	}
	return sum, nil
}

// lakeLockTTL is how long a batch's lease on its lake lasts unless
// renewed (every third of it): a batch that dies frees its lake this long
// after its last renewal.
const lakeLockTTL = time.Minute

// lakeLockPath is the lease file at the lake's root.
const lakeLockPath = "_lock.json"

// lockLake takes the lake's lease for this run, or refuses with who holds
// it: two batches writing one lake would remove each other's new files.
// The lease is renewed while the job runs; if it is lost, *ctx is
// cancelled and the job fails. release gives it up.
func lockLake(ctx *context.Context, lakeRoot, run string) (release func(), err error) {
	st, err := blob.Open(*ctx, lakeRoot)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	lease, err := blob.AcquireLease(*ctx, st, lakeLockPath, fmt.Sprintf("fineo batch run %s (host %s, pid %d)", run, host, os.Getpid()), lakeLockTTL)
	var held *blob.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("lake %s is being written by another batch: %s; wait for it to finish (a batch that died frees the lake %s after its last renewal)",
			redact.URL(lakeRoot), held.Owner, lakeLockTTL)
	}
	if err != nil {
		return nil, fmt.Errorf("locking lake %s: %w", redact.URL(lakeRoot), err)
	}
	jobCtx, cancel := context.WithCancelCause(*ctx)
	*ctx = jobCtx
	keepCtx, stopKeep := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		lease.Keep(keepCtx, func(err error) {
			cancel(fmt.Errorf("lost the lock on lake %s (another batch took it after this one failed to renew it): %w", redact.URL(lakeRoot), err))
		})
	}()
	return func() {
		stopKeep()
		<-done
		if err := lease.Release(context.Background()); err != nil {
			slog.Warn("batch: releasing the lake's lock", "err", redact.Error(err))
		}
		cancel(nil)
	}, nil
}

func orAll(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func printReport(ctx context.Context, out io.Writer, lakeRoot, run string) error {
	st, err := blob.Open(ctx, lakeRoot)
	if err != nil {
		return err
	}
	rc, err := st.Open(ctx, pipelines.ReportPath(run))
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(out, "\nschema-change report: none (no lake partition was built)")
		return nil
	}
	if err != nil {
		return fmt.Errorf("schema-change report: %w", err)
	}
	defer rc.Close()
	r, err := schemachange.Read(rc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nschema-change report: %s\n", st.URL(pipelines.ReportPath(run)))
	if r.Empty() {
		fmt.Fprintln(out, "  no unknown fields and no failed casts")
		return nil
	}
	r.Summary(out)
	return nil
}
