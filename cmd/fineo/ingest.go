package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/schema"
)

type ingestFlags struct {
	input, schemas, archive, tenant string
	chunkBytes                      int
}

func cmdIngest(ctx context.Context, args []string) error {
	var f ingestFlags
	err := parseBeamFlags("ingest", args, func(fs *flag.FlagSet) {
		fs.StringVar(&f.input, "input", "", "raw input: a file, directory, glob or s3://bucket/prefix (JSON Lines, optionally gzip)")
		fs.StringVar(&f.schemas, "schemas", os.Getenv("FINEO_SCHEMAS"), "schema store: a directory of tenant schema files (env FINEO_SCHEMAS)")
		fs.StringVar(&f.archive, "archive", "", "archive root: a directory or s3://bucket/prefix")
		fs.StringVar(&f.tenant, "tenant", "", "treat every line as a bare event of this tenant (no envelope)")
		fs.IntVar(&f.chunkBytes, "chunk-bytes", 0, "bytes of input lines per pipeline element (default 1 MiB)")
	})
	if err != nil {
		return err
	}
	switch {
	case f.input == "":
		return usageError(errors.New("--input is required"))
	case f.schemas == "":
		return usageError(errors.New("--schemas is required"))
	case f.archive == "":
		return usageError(errors.New("--archive is required"))
	}
	_, err = runIngest(ctx, f, os.Stdout)
	return err
}

// runIngest runs the batch-ingest job and prints its summary.
func runIngest(ctx context.Context, f ingestFlags, out io.Writer) (metrics.Summary, error) {
	files, err := blob.ExpandInput(ctx, f.input)
	if err != nil {
		return nil, err
	}
	return runIngestFiles(ctx, files, f, out)
}

// runIngestFiles runs stage 1 over the given input locations.
func runIngestFiles(ctx context.Context, files []string, f ingestFlags, out io.Writer) (metrics.Summary, error) {
	store, err := schema.OpenStore(ctx, f.schemas)
	if err != nil {
		return nil, err
	}
	tenants, err := schema.LoadAll(ctx, store)
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
	pipelines.Ingest(s, cfg)

	fmt.Fprintf(out, "fineo ingest: %d input file(s), %d tenant schema(s), archive %s, runner %s\n",
		len(files), len(tenants), f.archive, runners.Name(runners.Bounded))
	start := time.Now()
	pr, err := runners.Run(ctx, runners.Bounded, p)
	if err != nil {
		return nil, fmt.Errorf("pipeline failed: %w", err)
	}
	if runners.Name(runners.Bounded) == "dot" {
		fmt.Fprintln(out, "pipeline graph written (--runner=dot); nothing was run")
		return metrics.Summary{}, nil
	}
	sum := metrics.FromResult(pr)
	elapsed := time.Since(start)
	fmt.Fprintf(out, "done in %s (%.0f events/s)\n", elapsed.Round(time.Millisecond), float64(sum[metrics.EventsIn])/elapsed.Seconds())
	sum.Print(out)
	if !sum.Conserved() {
		return sum, &exitError{code: 1, err: errors.New("event counts do not add up (see conservation line); this is a bug, please report it")}
	}
	if n := sum[metrics.ProcessingWritten]; n > 0 {
		return sum, &exitError{code: 3, err: fmt.Errorf("%d processing error(s): see %s/errors/processing/", n, f.archive)}
	}
	return sum, nil
}
