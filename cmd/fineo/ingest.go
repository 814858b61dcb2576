package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/jsonlio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/progress"
	"github.com/fineo-io/ingest/ops/redact"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/schema"
)

type ingestFlags struct {
	input, schemas, archive, tenant string
	chunkBytes                      int
	quiet                           bool
	notify                          notifyFlag
	job                             string // names the usage file and alerts; default "ingest"
}

func cmdIngest(ctx context.Context, args []string) error {
	var f ingestFlags
	err := parseBeamFlags("ingest", args, func(fs *flag.FlagSet) {
		fs.StringVar(&f.input, "input", "", "raw input: a file, directory, glob or s3://bucket/prefix (JSON Lines, optionally gzip)")
		fs.StringVar(&f.schemas, "schemas", os.Getenv("FINEO_SCHEMAS"), "schema store: a directory of tenant schema files (env FINEO_SCHEMAS)")
		fs.StringVar(&f.archive, "archive", "", "archive root: a directory or s3://bucket/prefix")
		fs.Func("tenant", "treat every line as a bare event of this tenant (no envelope)", func(s string) error {
			if err := schema.ValidateTenantID(s); err != nil {
				return err
			}
			f.tenant = s
			return nil
		})
		fs.IntVar(&f.chunkBytes, "chunk-bytes", jsonlio.DefaultChunkBytes, "bytes of input lines per pipeline element")
		fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on stderr")
		fs.Var(&f.notify, "notify", notifyUsage)
	})
	if err != nil {
		return err
	}
	if err := requireFlags("input", f.input, "schemas", f.schemas, "archive", f.archive); err != nil {
		return err
	}
	if f.chunkBytes < 1 {
		return usageError(fmt.Errorf("--chunk-bytes %d: want a positive number of bytes", f.chunkBytes))
	}
	_, err = runIngest(ctx, f, os.Stdout)
	return err
}

// runIngest runs the batch-ingest job and prints its summary.
func runIngest(ctx context.Context, f ingestFlags, out io.Writer) (metrics.Summary, error) {
	files, err := blob.ExpandInput(ctx, f.input)
	if err != nil {
		if f.job == "" {
			f.job = "ingest"
		}
		err = fmt.Errorf("input %s: %w", redact.URL(f.input), err)
		finishJob(ctx, out, jobEnd{job: f.job, run: newRunID(time.Now()), started: time.Now(), archive: f.archive, err: err, notify: f.notify})
		return nil, err
	}
	return runIngestFiles(ctx, files, f, out)
}

// ingestUsageOrder is the order of the per-tenant counts in the summary.
var ingestUsageOrder = []string{"records", "raw_bytes", "events", "staged"}

// runIngestFiles runs stage 1 over the given input locations, then writes
// the per-tenant usage file and sends the --notify alert.
func runIngestFiles(ctx context.Context, files []string, f ingestFlags, out io.Writer) (metrics.Summary, error) {
	if f.job == "" {
		f.job = "ingest"
	}
	end := jobEnd{job: f.job, run: newRunID(time.Now()), started: time.Now(), archive: f.archive, notify: f.notify, order: ingestUsageOrder}
	sum, err := runIngestJob(ctx, files, f, out)
	if runners.Name(runners.Bounded) != "dot" {
		end.sum, end.err = sum, err
		err = withUsage(err, finishJob(ctx, out, end))
	}
	return sum, err
}

func runIngestJob(ctx context.Context, files []string, f ingestFlags, out io.Writer) (metrics.Summary, error) {
	tenants, err := loadSchemas(ctx, f.schemas)
	if err != nil {
		return nil, err
	}
	if f.tenant != "" {
		if err := schema.ValidateTenantID(f.tenant); err != nil {
			return nil, err
		}
	}
	p, s := beam.NewPipelineWithRoot()
	cfg := pipelines.IngestConfig{Files: files, Tenants: tenants, Archive: f.archive, BareTenant: f.tenant}
	cfg.Read.ChunkBytes = f.chunkBytes
	cfg.Read.Progress = !f.quiet
	pipelines.Ingest(s, cfg)

	fmt.Fprintf(out, "fineo ingest: %d input file(s), %d tenant schema(s), archive %s, runner %s\n",
		len(files), len(tenants), redact.URL(f.archive), runners.Name(runners.Bounded))
	var totals progress.Totals
	if !f.quiet {
		totals = progress.Totals{Files: int64(len(files)), Bytes: inputBytes(ctx, files)}
	}
	stop := startProgress(f.quiet, "ingest", totals, map[string]progress.Field{metrics.EventsIn: progress.Events})
	start := time.Now()
	counters := runners.CountersOf(runners.Bounded)
	pr, err := runners.Run(ctx, runners.Bounded, p)
	stop()
	if err != nil {
		return nil, fmt.Errorf("pipeline failed: %w", err)
	}
	if runners.Name(runners.Bounded) == "dot" {
		fmt.Fprintln(out, "pipeline graph written (--runner=dot); nothing was run")
		return metrics.Summary{}, nil
	}
	sum := counters(pr)
	elapsed := time.Since(start)
	fmt.Fprintf(out, "done in %s (%.0f events/s)\n", elapsed.Round(time.Millisecond), float64(sum[metrics.EventsIn])/elapsed.Seconds())
	sum.Print(out)
	if !sum.Conserved() {
		return sum, &exitError{code: 1, err: errors.New("event counts do not add up (see conservation line); this is a bug, please report it")}
	}
	if n := sum[metrics.ProcessingWritten]; n > 0 {
		return sum, &exitError{code: 3, err: fmt.Errorf("%d processing error(s): see %s/errors/processing/", n, redact.URL(f.archive))}
	}
	return sum, nil
}

// inputBytes is the stored size of the input files, for the progress ETA;
// 0 when any size is unknown. S3 sizes come from one listing per bucket
// (of the inputs' common prefix).
func inputBytes(ctx context.Context, files []string) int64 {
	var total int64
	s3keys := map[string][]string{} // bucket → keys
	for _, f := range files {
		if rest, ok := strings.CutPrefix(f, "s3://"); ok {
			bucket, key, _ := strings.Cut(rest, "/")
			s3keys[bucket] = append(s3keys[bucket], key)
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return 0
		}
		total += fi.Size()
	}
	for bucket, keys := range s3keys {
		prefix := keys[0]
		for _, k := range keys[1:] {
			for !strings.HasPrefix(k, prefix) {
				prefix = prefix[:len(prefix)-1]
			}
		}
		st, err := blob.Open(ctx, "s3://"+bucket)
		if err != nil {
			return 0
		}
		objs, err := st.List(ctx, prefix)
		if err != nil {
			return 0
		}
		size := make(map[string]int64, len(objs))
		for _, o := range objs {
			size[o.Path] = o.Size
		}
		for _, k := range keys {
			n, ok := size[k]
			if !ok {
				return 0
			}
			total += n
		}
	}
	return total
}
