package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/redact"
	usagefile "github.com/fineo-io/ingest/ops/usage"
	"github.com/fineo-io/ingest/ops/watch"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/transforms/streaming"
)

type streamFlags struct {
	rawStream, stagedStream, table, archive, schemas string
	start, checkpointTable, consumer, stages         string
	window, stopAfterIdle, poll, discover            time.Duration
	retention, bucket                                time.Duration
	createTable, fixedShards                         bool
	shards                                           int
	notify                                           notifyFlag
	metricsListen                                    string
	progress, schemaRefresh                          time.Duration
	leaseDuration                                    time.Duration
}

const streamHelp = `Runs the streaming job until stopped (SIGINT/SIGTERM: a clean stop, exit 0):

  raw stream ─▶ stage 1 ─▶ nearline table (DynamoDB)      --stages all (default)
                   └────▶ staged stream (--staged-stream, optional)
  raw stream ─▶ stage 1 ─▶ staged stream                  --stages 1
  staged stream ─▶ stage 2 ─▶ nearline table              --stages 2

Every stage is archived in windows (--window): the raw records byte for byte
(raw/), the staged events (staged/), customer and processing errors (errors/).
Per shard, the checkpoint table records how far everything is committed; a
restarted job resumes after it, so a job killed at any moment loses nothing.
Start more instances with the same flags to share the shards (leases in the
checkpoint table, --lease-duration).
`

func cmdStream(ctx context.Context, args []string) error {
	var f streamFlags
	err := parseBeamFlags("stream", args, func(fs *flag.FlagSet) {
		fs.StringVar(&f.rawStream, "raw-stream", "", "Kinesis stream of raw JSON events (stages all and 1)")
		fs.StringVar(&f.stagedStream, "staged-stream", "", "Kinesis stream of staged events: written by stage 1, read by stage 2")
		fs.StringVar(&f.table, "table", "", "nearline DynamoDB table (stages all and 2); see fineo table create")
		fs.BoolVar(&f.createTable, "create-table", false, "create the nearline table if it is missing (needs dynamodb:CreateTable)")
		fs.Var(&f.notify, "notify", "send alerts (repeatable; https://..., http://127.0.0.1:PORT/... or sns://arn:...): one per shard and window with customer or processing errors, and one when the job ends")
		fs.StringVar(&f.archive, "archive", "", "archive root: a directory or s3://bucket/prefix")
		fs.StringVar(&f.schemas, "schemas", os.Getenv("FINEO_SCHEMAS"), "schema store: a directory or dynamodb://TABLE (env FINEO_SCHEMAS); stages all and 1")
		fs.StringVar(&f.stages, "stages", pipelines.StagesAll, "which stages to run: all, 1 or 2")
		fs.StringVar(&f.start, "start", "trim_horizon", "where shards without a checkpoint start: trim_horizon, latest or an RFC 3339 time")
		fs.StringVar(&f.checkpointTable, "checkpoint-table", "", "DynamoDB checkpoint table, created if missing (default: <table>-checkpoints, or <staged-stream>-checkpoints for --stages 1)")
		fs.StringVar(&f.consumer, "consumer", "fineo-stream", "this job's name in the checkpoint table: instances with the same --consumer share the stream's shards; two jobs that each read the whole stream need two names")
		fs.DurationVar(&f.leaseDuration, "lease-duration", kinesisio.DefaultLeaseDuration, "shard leases: instances with the same --consumer and --checkpoint-table share the shards, and a dead instance's shards are taken over this long after its last renewal (0: no leases; this instance reads every shard)")
		fs.DurationVar(&f.window, "window", streaming.DefaultWindow, "archive window: one file per partition and shard per window")
		fs.DurationVar(&f.stopAfterIdle, "stop-after-idle", 0, "stop once no shard had a record for this long (bounded replays, tests); 0 = run until stopped")
		fs.DurationVar(&f.poll, "poll", 200*time.Millisecond, "wait after an empty GetRecords page, and least time between two calls of a shard (5/s/shard is the service's limit)")
		fs.DurationVar(&f.discover, "discover", 10*time.Second, "how often the shard list is read to find the children of splits and merges")
		fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics while the job runs: PORT or :PORT listens on 127.0.0.1 only; give a host (0.0.0.0:PORT) to listen elsewhere")
		fs.DurationVar(&f.progress, "progress", time.Minute, "print a progress line on stderr this often (0: none)")
		fs.DurationVar(&f.schemaRefresh, "schema-refresh", streaming.DefaultSchemaRefresh, "read the schema store again this often while running: a `fineo schema apply` takes effect without a restart")
		fs.DurationVar(&f.retention, "retention", dynamodbio.DefaultRetention, "nearline TTL: items expire this long after their event time (negative: no TTL)")
		fs.DurationVar(&f.bucket, "bucket", 0, "nearline time bucket of the partition key, recorded when --create-table creates the table (0: 1h); a table's recorded bucket is used, and another --bucket is an error")
		fs.IntVar(&f.shards, "nearline-shards", dynamodbio.DefaultShards, "partition keys per metric and time bucket, recorded when --create-table creates the table (see fineo table shards)")
		fs.BoolVar(&f.fixedShards, "fixed-shards", false, "never raise a metric's shard count when DynamoDB throttles it (by default writers double it, for events a minute ahead, when throttling persists)")
	})
	if err != nil {
		return err
	}
	cfg, err := f.config(ctx)
	if err != nil {
		return err
	}
	// The signal that cancelled ctx stops the job through the Job API (exit
	// 0); the job itself runs on a context that signals do not cancel.
	for _, t := range f.notify {
		cfg.Notify = append(cfg.Notify, t.Spec())
	}
	end := jobEnd{job: "stream", run: newRunID(time.Now()), started: time.Now(), archive: cfg.Archive,
		notify: f.notify, order: ingestUsageOrder}
	stopWatch, err := startWatch(ctx, f, end, cfg.Window, os.Stdout)
	if err != nil {
		return err
	}
	end.sum, end.err = runStream(context.WithoutCancel(ctx), cfg, f.createTable, ctx.Done(), os.Stdout)
	stopWatch()
	// Per-tenant usage (<archive>/_usage/stream-<run>.json) and the
	// --notify alert, for the run that just ended, was stopped or failed.
	finishJob(context.WithoutCancel(ctx), os.Stdout, end)
	return end.err
}

// config checks the flags and builds the pipeline configuration (without
// touching AWS).
func (f streamFlags) config(ctx context.Context) (pipelines.StreamConfig, error) {
	cfg := pipelines.StreamConfig{
		Stages: f.stages, RawStream: f.rawStream, StagedStream: f.stagedStream, Table: f.table, Archive: f.archive,
		Window: f.window, CheckpointTable: f.checkpointTable, Consumer: f.consumer,
		Read:   kinesisio.ReadConfig{StopAfterIdle: f.stopAfterIdle, PollInterval: f.poll, DiscoverEvery: f.discover},
		Items:  dynamodbio.ItemOptions{Bucket: f.bucket, Retention: f.retention},
		Layout: dynamodbio.LayoutOptions{Bucket: f.bucket, Shards: f.shards, Adaptive: !f.fixedShards},
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError(fmt.Errorf("%w\n\n%s", err, streamHelp))
	}
	if f.window < time.Second {
		return cfg, usageError(errors.New("--window must be at least 1s"))
	}
	if f.metricsListen != "" {
		if _, err := watch.ListenAddr(f.metricsListen); err != nil {
			return cfg, usageError(err)
		}
	}
	if f.progress < 0 {
		return cfg, usageError(errors.New("--progress must not be negative"))
	}
	if f.schemaRefresh < time.Second {
		return cfg, usageError(errors.New("--schema-refresh must be at least 1s"))
	}
	if f.leaseDuration < 0 || f.leaseDuration > 0 && f.leaseDuration < 3*time.Second {
		return cfg, usageError(errors.New("--lease-duration must be 0 (no leases) or at least 3s"))
	}
	if f.leaseDuration > 0 {
		cfg.LeaseOwner, cfg.LeaseDuration = leaseOwner(), f.leaseDuration
	}
	if f.consumer == "" || strings.ContainsAny(f.consumer, "/") {
		return cfg, usageError(errors.New("--consumer must be a non-empty name without '/'"))
	}
	start, err := parseStart(f.start)
	if err != nil {
		return cfg, usageError(err)
	}
	cfg.Read.Start = start
	if cfg.CheckpointTable == "" {
		base := cfg.Table
		if cfg.Stages == pipelines.Stage1 {
			base = cfg.StagedStream
		}
		cfg.CheckpointTable = base + "-checkpoints"
	}
	if cfg.Stages != pipelines.Stage2 {
		if f.schemas == "" {
			return cfg, usageError(errors.New("--schemas is required for stage 1"))
		}
		cfg.SchemaStore, cfg.SchemaRefresh = f.schemas, f.schemaRefresh
		var err error
		if cfg.Tenants, err = loadSchemas(ctx, f.schemas); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// leaseOwner names this instance in the lease table: host, process id and
// random digits (unique however instances are started).
func leaseOwner() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// parseStart parses --start.
func parseStart(s string) (kinesisio.Position, error) {
	switch strings.ToLower(s) {
	case "", "trim_horizon":
		return kinesisio.Position{Kind: kinesisio.TrimHorizon}, nil
	case "latest":
		return kinesisio.Position{Kind: kinesisio.Latest}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return kinesisio.Position{}, fmt.Errorf("--start %q: want trim_horizon, latest or an RFC 3339 time", s)
	}
	return kinesisio.Position{Kind: kinesisio.AtTimestamp, Timestamp: t}, nil
}

// runStream prepares the tables, resumes from the checkpoints and runs the
// streaming job until it ends (--stop-after-idle) or stop is closed.
func runStream(ctx context.Context, cfg pipelines.StreamConfig, createTable bool, stop <-chan struct{}, out io.Writer) (metrics.Summary, error) {
	if err := runners.Check(runners.Unbounded); err != nil {
		return nil, usageError(err)
	}
	kin, err := kinesisio.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range []string{cfg.SourceStream(), cfg.StagedStream} {
		if s == "" {
			continue
		}
		if _, err := kinesisio.ListShards(ctx, kin, s); err != nil {
			return nil, fmt.Errorf("stream %s: %w", s, err)
		}
	}
	ddb, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.Table != "" && cfg.Stages != pipelines.Stage1 {
		if err := prepareTable(ctx, ddb, cfg.Table, createTable, cfg.Layout, out); err != nil {
			return nil, err
		}
	}
	if err := dynamodbio.EnsureCheckpointTable(ctx, ddb, cfg.CheckpointTable); err != nil {
		return nil, err
	}
	cps := &dynamodbio.Checkpoints{API: ddb, Table: cfg.CheckpointTable, Consumer: cfg.Consumer}
	if cfg.Read.Resume, err = cps.Load(ctx, cfg.SourceStream()); err != nil {
		return nil, err
	}

	p, s := beam.NewPipelineWithRoot()
	pipelines.Stream(s, cfg)
	fmt.Fprintf(out, "fineo stream: %s → stages %s → %s; archive %s; checkpoints %s (%d shard(s) resumed); %s; runner %s\n",
		cfg.SourceStream(), orAll(cfg.Stages, pipelines.StagesAll), streamSinks(cfg), redact.URL(cfg.Archive),
		cfg.CheckpointTable, len(cfg.Read.Resume), leaseLine(cfg), runners.Name(runners.Unbounded))
	slog.Info("stream started", "stream", cfg.SourceStream(), "resumed_shards", len(cfg.Read.Resume))
	start := time.Now()
	counters := runners.CountersOf(runners.Unbounded)
	pr, err := runners.RunUntil(ctx, runners.Unbounded, p, stop)
	if cfg.LeaseOwner != "" {
		// Free this instance's leases at once: the others take its shards
		// without waiting for them to lapse.
		kinesisio.StopLeases(ctx, cfg.LeaseOwner)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline failed: %w", err)
	}
	sum := counters(pr)
	how := "ended"
	select {
	case <-stop:
		how = "stopped"
	default:
	}
	fmt.Fprintf(out, "%s after %s\n", how, time.Since(start).Round(time.Millisecond))
	if how == "ended" {
		printStreamConservation(out, sum, cfg.Stages) // every window committed: the counts must conserve
	} else {
		sum.PrintCounters(out)
		fmt.Fprintln(out, "  (windows not yet committed when stopped are read again from the checkpoints on the next start)")
	}
	return sum, nil
}

// startWatch starts what shows a running stream: the metrics endpoint
// (--metrics-listen), the progress line (--progress) and the per-tenant
// usage file, rewritten every window with the counts so far (status
// "running"; the job's end writes the final one). The returned func stops
// them.
func startWatch(ctx context.Context, f streamFlags, end jobEnd, window time.Duration, out io.Writer) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var srv *watch.Server
	if f.metricsListen != "" {
		addr, err := watch.ListenAddr(f.metricsListen)
		if err == nil {
			srv, err = watch.Serve(addr)
		}
		if err != nil {
			cancel()
			return nil, err
		}
		fmt.Fprintf(out, "metrics: http://%s/metrics\n", srv.Addr)
	}
	go watch.Progress(ctx, os.Stderr, "stream", f.progress)
	before := metrics.Local()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(window)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e := end
				e.sum = metrics.Local().Since(before)
				r := usageReport(e)
				r.Status = "running"
				if _, err := usagefile.Write(ctx, end.archive, r); err != nil && ctx.Err() == nil {
					slog.Warn("usage file not written", "job", end.job, "run", end.run, "err", redact.Error(err))
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if srv != nil {
			srv.Close()
		}
	}, nil
}

func leaseLine(cfg pipelines.StreamConfig) string {
	if cfg.LeaseOwner == "" {
		return "no leases"
	}
	return fmt.Sprintf("shards shared by leases as %s (%s)", cfg.LeaseOwner, cfg.LeaseDuration)
}

func streamSinks(cfg pipelines.StreamConfig) string {
	var sinks []string
	if cfg.Stages != pipelines.Stage2 && cfg.StagedStream != "" {
		sinks = append(sinks, "staged stream "+cfg.StagedStream)
	}
	if cfg.Stages != pipelines.Stage1 {
		sinks = append(sinks, "nearline table "+cfg.Table)
	}
	return strings.Join(sinks, " + ")
}

// printStreamConservation prints the counters of a streaming run that
// ended and the equations they keep (see pipelines.StreamConservation).
func printStreamConservation(out io.Writer, sum metrics.Summary, stages string) {
	sum.PrintCounters(out)
	for _, eq := range pipelines.StreamConservation(sum, stages) {
		eq.Print(out)
	}
}
