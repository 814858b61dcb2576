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

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/runners"
)

type replayFlags struct {
	archive, stage, table, from, to, date string
	outArchive, schemas                   string
	createTable                           bool
}

const replayHelp = `Re-runs an archived stage through the stages after it:

  --stage staged   staged archive → stage 2 → the nearline table (--table). Replays
                   overwrite by key, so re-running is safe. Use another --table to
                   dark-launch a new table beside the live one and compare.
  --stage raw      raw archive (<archive>/raw/date=D/...: the Avro files fineo stream
                   writes, keeping each record's stream, shard and sequence number, or
                   JSON Lines files) → stage 1 again with the current schemas → a
                   staged + error archive at --out-archive (a different root: a dark
                   launch to compare before switching over).
`

func cmdReplay(ctx context.Context, args []string) error {
	var f replayFlags
	err := parseBeamFlags("replay", args, func(fs *flag.FlagSet) {
		fs.StringVar(&f.archive, "archive", "", "archive root to replay from: a directory or s3://bucket/prefix")
		fs.StringVar(&f.stage, "stage", "", "which archived stage to replay: staged or raw")
		fs.StringVar(&f.table, "table", "", "--stage staged: the nearline table to write")
		fs.BoolVar(&f.createTable, "create-table", false, "--stage staged: create the table first if it is missing")
		fs.StringVar(&f.outArchive, "out-archive", "", "--stage raw: the archive root to write the new staged and error archives to")
		fs.StringVar(&f.schemas, "schemas", os.Getenv("FINEO_SCHEMAS"), "--stage raw: schema store (env FINEO_SCHEMAS)")
		fs.StringVar(&f.from, "from", "", "first date, YYYY-MM-DD (default: the oldest)")
		fs.StringVar(&f.to, "to", "", "last date, YYYY-MM-DD, inclusive (default: the newest)")
		fs.StringVar(&f.date, "date", "", "one date: YYYY-MM-DD, today or yesterday (UTC)")
	})
	if err != nil {
		return err
	}
	if f.archive == "" {
		return usageError(errors.New("--archive is required\n\n" + replayHelp))
	}
	switch f.stage {
	case "staged":
		if f.table == "" {
			return usageError(errors.New("--stage staged needs --table"))
		}
		_, err = runReplayStaged(ctx, f, os.Stdout)
		return err
	case "raw":
		if f.outArchive == "" || f.schemas == "" {
			return usageError(errors.New("--stage raw needs --out-archive and --schemas"))
		}
		if strings.TrimRight(f.outArchive, "/") == strings.TrimRight(f.archive, "/") {
			return usageError(errors.New("--out-archive must differ from --archive (a replay never writes over the archive it reads)"))
		}
		_, err = runReplayRaw(ctx, f, os.Stdout)
		return err
	}
	return usageError(fmt.Errorf("--stage %q: want staged or raw\n\n%s", f.stage, replayHelp))
}

func runReplayStaged(ctx context.Context, f replayFlags, out io.Writer) (metrics.Summary, error) {
	from, to, err := resolveDates(batchFlags{from: f.from, to: f.to, date: f.date}, time.Now())
	if err != nil {
		return nil, usageError(err)
	}
	if err := existingRoot(f.archive); err != nil {
		return nil, err
	}
	days, err := archive.PlanDays(ctx, f.archive, from, to)
	if err != nil {
		return nil, err
	}
	if len(days) == 0 {
		fmt.Fprintf(out, "fineo replay: no staged events in %s .. %s under %s; nothing to do\n", orAll(from, "oldest"), orAll(to, "newest"), f.archive)
		return metrics.Summary{}, nil
	}
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	if err := prepareTable(ctx, client, f.table, f.createTable, dynamodbio.LayoutOptions{}, out); err != nil {
		return nil, err
	}
	p, s := beam.NewPipelineWithRoot()
	pipelines.ReplayStaged(s, pipelines.ReplayStagedConfig{Archive: f.archive, Days: days, Write: dynamodbio.WriteConfig{Table: f.table}})
	fmt.Fprintf(out, "fineo replay: staged archive %s (%d day(s)) → nearline table %s, runner %s\n", f.archive, len(days), f.table, runners.Name(runners.Bounded))
	start := time.Now()
	counters := runners.CountersOf(runners.Bounded)
	pr, err := runners.Run(ctx, runners.Bounded, p)
	if err != nil {
		return nil, fmt.Errorf("pipeline failed: %w", err)
	}
	sum := counters(pr)
	fmt.Fprintf(out, "done in %s\n", time.Since(start).Round(time.Millisecond))
	sum.PrintCounters(out)
	metrics.Equation{Total: metrics.Term{Label: "staged_read", N: sum[archive.StagedRead]}, Parts: []metrics.Term{
		{Label: "nearline written", N: sum[dynamodbio.NearlineWritten]}, {Label: "same-key duplicates", N: sum[dynamodbio.NearlineDuplicates]},
		{Label: "failed", N: sum[dynamodbio.NearlineFailed]}}}.Print(out)
	if n := sum[metrics.ProcessingWritten]; n > 0 {
		return sum, &exitError{code: 3, err: fmt.Errorf("%d processing error(s): see %s/errors/processing/", n, f.archive)}
	}
	return sum, nil
}

// runReplayRaw re-runs stage 1 over the raw archive's files in the range.
func runReplayRaw(ctx context.Context, f replayFlags, out io.Writer) (metrics.Summary, error) {
	from, to, err := resolveDates(batchFlags{from: f.from, to: f.to, date: f.date}, time.Now())
	if err != nil {
		return nil, usageError(err)
	}
	st, err := blob.Open(ctx, f.archive)
	if err != nil {
		return nil, err
	}
	objs, err := st.List(ctx, "raw/")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Path, "raw/date=")
		if !ok || len(rest) < 10 {
			continue
		}
		if d := rest[:10]; (from == "" || d >= from) && (to == "" || d <= to) {
			files = append(files, st.URL(o.Path))
		}
	}
	if len(files) == 0 {
		fmt.Fprintf(out, "fineo replay: no raw records in %s .. %s under %s/raw; nothing to do\n", orAll(from, "oldest"), orAll(to, "newest"), f.archive)
		return metrics.Summary{}, nil
	}
	fmt.Fprintf(out, "fineo replay: raw archive %s (%d file(s)) → stage 1 → %s\n", f.archive, len(files), f.outArchive)
	return runIngestFiles(ctx, files, ingestFlags{schemas: f.schemas, archive: f.outArchive}, out)
}
