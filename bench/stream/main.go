// Command stream is benchmark B3: sustained events per second from a
// Kinesis stand-in (4 shards) through `fineo stream` (stage 1 fused with
// stage 2, on the embedded prism runner, with fineo stream's write
// settings) into a DynamoDB stand-in, with p50/p99 latency from PutRecords
// returning to the item being readable by Query — against each stand-in's
// own capacity, measured in the same run by a bare PutRecords loop and a
// bare BatchWriteItem loop (dynamodbio.WriteItems) of the items the
// pipeline writes.
//
// In order:
//  1. the bare PutRecords loop (its records stay: the drain's backlog) and
//     the bare BatchWriteItem loop;
//  2. a job that reads while this program puts the events (phase 1:
//     throughput with the producer on the same cores; phase 2, once every
//     phase-1 event is settled in the table (written or failed): latency
//     at half that rate, also printed as the worst latency per 2 s of
//     sending);
//  3. the tables and stream of steps 1 and 2 are deleted, and the bare
//     BatchWriteItem loop runs again into a fresh table (deleted after):
//     the stand-in slows down as it fills and speeds up as its JIT warms,
//     so this loop finds it as the drain will;
//  4. the drain: a job started now reads the backlog into a fresh table,
//     so only the pipeline loads the stand-ins, as only the bare loop did
//     in each baseline.
//
// The DynamoDB stand-in's capacity is the faster of its two bare loops.
// Where scripts/standins.sh started the stand-ins, dynalite's CPU time
// per 1,000 items is printed for both loops and the drain.
//
//	eval "$(scripts/standins.sh start)"
//	go run ./bench/stream -n 100000
//
// It refuses to run unless the Kinesis and DynamoDB endpoints are on this
// host: it creates streams and tables.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/stage1"
)

func main() {
	n := flag.Int("n", 100000, "events to send")
	shards := flag.Int("shards", 4, "shards of the raw stream")
	// One goroutine polls the samples in order; at 2,000 a phase it fell
	// behind phase 2's samples and reported its own lag as latency (p99
	// 3.6 s where the pages were written within 50 ms).
	samples := flag.Int("samples", 500, "events whose latency is measured, per phase")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the pipeline phase to this file")
	conc := flag.Int("write-concurrency", 16, "BatchWriteItem calls in flight in the bare loop (the stand-in's capacity)")
	jobConc := flag.Int("job-write-concurrency", 0, "BatchWriteItem calls in flight per page write of the job; 0: fineo stream's default")
	schemas := flag.String("schemas", filepath.Join("testdata", "sample", "schemas"), "schema store (the sample's: tenant harbor)")
	stall := flag.Duration("stall", 2*time.Minute, "if no sampled event becomes readable for this long, write a goroutine dump and fail")
	b7 := flag.Bool("b7", false, "run benchmark B7 (a hot metric through per-key write limits) instead of B3")
	b7Rate := flag.Int("b7-rate", 5000, "B7: events per second offered")
	b7Duration := flag.Duration("b7-duration", time.Minute, "B7: how long they are offered")
	b7Shards := flag.Int("b7-shards", 8, "B7: shards of the raw stream")
	b7KeyWCU := flag.Int("b7-key-wcu", 1000, "B7: write units per second per DynamoDB partition key (AWS: 1,000)")
	b7TableShards := flag.Int("b7-table-shards", dynamodbio.DefaultShards, "B7: the nearline table's partition keys per metric and hour (1: as one key per bucket, the layout before sharding)")
	b7Adaptive := flag.Bool("b7-adaptive", false, "B7: the job raises a throttled metric's shard count, as fineo stream does unless --fixed-shards")
	instances := flag.Int("instances", 1, "B3: run this many `fineo stream` processes sharing the stream by leases (built from ./cmd/fineo) instead of one in-process job")
	lease := flag.Duration("lease-duration", 10*time.Second, "B3 with -instances: the instances' --lease-duration")
	flag.Parse()
	beamlog.LogLevel = "error"
	profile = *cpuprofile
	beam.Init()
	go watchdog(*stall)
	run := func() error { return run(*n, *shards, *samples, *conc, *jobConc, *schemas) }
	if *instances > 1 {
		run = func() error { return runInstances(*n, *shards, *instances, *samples, *conc, *schemas, *lease) }
	}
	if *b7 {
		run = func() error {
			tenants, err := loadTenants(*schemas)
			if err != nil {
				return err
			}
			return runB7(*b7Rate, *b7Duration, *b7Shards, *b7KeyWCU, *samples, *jobConc, tenants,
				dynamodbio.LayoutOptions{Shards: *b7TableShards, Adaptive: *b7Adaptive})
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/stream:", err)
		os.Exit(1)
	}
}

var profile string

// requireLocal refuses to run against anything but local stand-ins: the
// benchmarks create and delete streams and tables.
func requireLocal() error {
	if !local("AWS_ENDPOINT_URL_KINESIS") || !local("AWS_ENDPOINT_URL_DYNAMODB") {
		return fmt.Errorf("AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_DYNAMODB must point at local stand-ins (eval \"$(scripts/standins.sh start)\")")
	}
	return nil
}

// clients returns Kinesis and DynamoDB clients of the endpoints in the
// environment.
func clients(ctx context.Context) (*kinesis.Client, *dynamodb.Client, error) {
	kin, err := kinesisio.NewClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	ddb, err := dynamodbio.NewClient(ctx)
	return kin, ddb, err
}

func loadTenants(dir string) ([]*schema.Tenant, error) {
	st, err := schema.OpenStore(context.Background(), dir)
	if err != nil {
		return nil, err
	}
	return schema.LoadAll(context.Background(), st)
}

func local(env string) bool {
	u, err := url.Parse(os.Getenv(env))
	return err == nil && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost")
}

// event is the i-th benchmark event: harbor weather readings, each with its
// own millisecond, so that a Query for that millisecond finds exactly it.
func event(base int64, i int) []byte {
	return fmt.Appendf(nil, `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":%d,"temp_f":%d.5,"press":1013.2,"stn":"bench-%d","seq":%d}}`,
		base+int64(i), 40+i%50, i%64, i)
}

// benchRecords returns the events base+0 … base+n-1 as Kinesis records,
// partition keys spread over 64 devices.
func benchRecords(base int64, n int) []kinesisio.PutRecord {
	recs := make([]kinesisio.PutRecord, n)
	for i := range recs {
		recs[i] = kinesisio.PutRecord{Data: event(base, i), PartitionKey: fmt.Sprintf("bench-%d", i%64)}
	}
	return recs
}

// setup checks that the stand-ins are local and returns their clients and
// the tenants of schemaDir.
func setup(ctx context.Context, schemaDir string) (*kinesis.Client, *dynamodb.Client, []*schema.Tenant, error) {
	if err := requireLocal(); err != nil {
		return nil, nil, nil, err
	}
	kin, ddb, err := clients(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	tenants, err := loadTenants(schemaDir)
	return kin, ddb, tenants, err
}

func run(n, shards, samples, conc, jobConc int, schemaDir string) error {
	ctx := context.Background()
	kin, ddb, tenants, err := setup(ctx, schemaDir)
	if err != nil {
		return err
	}
	id := time.Now().UTC().Format("150405")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	recs := benchRecords(base, n)
	fmt.Printf("B3 streaming: %d events, %d shards; kinesis %s, dynamodb %s\n", n, shards, os.Getenv("AWS_ENDPOINT_URL_KINESIS"), os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"))

	// Baseline 1: a bare PutRecords loop into a fresh stream. Its records
	// stay there: they are the drain's backlog below.
	drainRaw := "bench-drain-" + id
	putRate, err := barePut(ctx, kin, drainRaw, shards, recs)
	if err != nil {
		return err
	}

	// Baseline 2: a bare BatchWriteItem loop of the items the drain job
	// will write: the same events with the same lineage (stream, shard,
	// sequence number and arrival time read back from the stream), so the
	// items are as large as the pipeline's.
	items, err := itemsOf(ctx, kin, drainRaw, tenants)
	if err != nil {
		return err
	}
	if len(items) != n {
		return fmt.Errorf("stage 1 made %d items of %d events", len(items), n)
	}
	dynCPU, kinCPU, jobCPU := standinCPU("dynalite"), standinCPU("kinesalite"), procCPU("self")
	baseTable := "bench-base-" + id
	write1, err := bareWrite(ctx, ddb, baseTable, items, conc, dynCPU)
	if err != nil {
		return err
	}
	fmt.Printf("  dynamodb stand-in, bare BatchWriteItem loop: %8.0f items/s%s\n", write1.rate, write1.cpu)

	stop, err := startProfile(profile)
	if err != nil {
		return err
	}
	defer stop()
	every := max(1, n/samples)

	// The pipeline: raw stream → stage 1 → nearline table, while a producer
	// puts the events and a sampler polls for them.
	raw, table := "bench-raw-"+id, "bench-nearline-"+id
	job, err := startOnNewStream(ctx, kin, ddb, raw, shards, table, tenants, jobConc, dynamodbio.LayoutOptions{})
	if err != nil {
		return err
	}

	// Phase 1 (throughput): put all n events as fast as the stand-in takes
	// them; the rate is n over the time until the last one is readable.
	// Phase 2 (latency): events at half that rate for 10 s, each sampled
	// one polled until readable — latency under a load the job sustains.
	first := time.Now()
	burst := sendAndWait(ctx, kin, ddb, raw, table, tenants, base, recs, every, 0)
	if burst.err != nil {
		return burst.err
	}
	rate := float64(n) / burst.lastSeen.Sub(first).Seconds()
	// Phase 2 measures latency under a load the job sustains, so it starts
	// once every phase-1 event is written, not only the sampled ones: the
	// unsampled last pages of other shards may still be in flight.
	for job.sunk() < int64(n) {
		time.Sleep(50 * time.Millisecond)
	}
	tail := time.Since(burst.lastSeen)
	paceRate := rate / 2
	m := int(paceRate * 10)
	base2 := base + int64(n)
	recs2 := benchRecords(base2, m)
	paced := sendAndWait(ctx, kin, ddb, raw, table, tenants, base2, recs2, max(1, m/samples), paceRate)
	if paced.err != nil {
		return paced.err
	}
	sum, err := job.wait()
	if err != nil {
		return err
	}

	// Drain: the bare PutRecords loop's records are a backlog; a job
	// started now reads them into a fresh table. The rate is n over the time
	// from the job's start (prism's start-up included) to the last event
	// readable. Only the pipeline loads the stand-ins, as only the bare loop
	// loaded each in its baseline. The stand-ins slow down as they fill
	// (dynalite keeps every table in one sorted store), so the tables and
	// stream of the earlier steps are deleted first, and the bare
	// BatchWriteItem loop runs a second time there, on a dynalite as warm
	// and as empty as the drain's; the capacity is the faster of the two
	// loops.
	if err := dropTables(ctx, ddb, baseTable, table, table+"-checkpoints"); err != nil {
		return err
	}
	if _, err := kin.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: &raw}); err != nil {
		return err
	}
	write2, err := bareWrite(ctx, ddb, "bench-base2-"+id, items, conc, dynCPU)
	if err != nil {
		return err
	}
	if err := dropTables(ctx, ddb, "bench-base2-"+id); err != nil {
		return err
	}
	fmt.Printf("  dynamodb stand-in, bare BatchWriteItem loop again, just before the drain: %8.0f items/s%s\n", write2.rate, write2.cpu)
	writeRate := max(write1.rate, write2.rate)
	drainTable := "bench-drain-" + id
	drainJob, err := startJob(ctx, ddb, drainRaw, drainTable, tenants, jobConc, dynamodbio.LayoutOptions{})
	if err != nil {
		return err
	}
	const dyn = 2 // cpus[dyn] is dynalite's
	cpus := []cpuMeter{{"job (this process)", jobCPU}, {"kinesalite", kinCPU}, {"dynalite", dynCPU}}
	cpu0 := readCPU(cpus)
	sm := startSampler(ctx, ddb, drainTable, tenants, base, n/every+2, 100*time.Millisecond)
	for i := range n {
		if sampled(i, n, every) {
			sm.add(i, drainJob.start)
		}
	}
	drain := sm.wait()
	cpu1 := readCPU(cpus)
	drainCPU := perThousand(cpu0[dyn], cpu1[dyn], n)
	cpuLine := cpuUse(cpus, cpu0, cpu1, time.Since(drainJob.start), n)
	drainSum, err := drainJob.wait()
	if err != nil {
		return err
	}
	drainRate := float64(n) / drain.lastSeen.Sub(drainJob.start).Seconds()
	steady, lo, hi := drain.sustained(n)

	capacity := min(putRate, writeRate)
	fmt.Printf("  fineo stream, drain (a backlog of %d events, put before the job starts): %8.0f events/s%s  (all readable %.1f s after the job started, the first after %.1f s)\n",
		n, drainRate, drainCPU, drain.lastSeen.Sub(drainJob.start).Seconds(), drain.q(0).Seconds())
	fmt.Printf("  fineo stream, drain, sustained (from %d%% to %d%% of the backlog readable, %.1f s to %.1f s): %8.0f events/s\n",
		100*lo.i/n, 100*hi.i/n, lo.lat.Seconds(), hi.lat.Seconds(), steady)
	fmt.Printf("  CPU in the drain, ms per 1,000 events: %s\n", cpuLine)
	fmt.Printf("  fineo stream, phase 1 (the producer puts while the job runs): %8.0f events/s  (%d events put in %.1f s, all readable after %.1f s)\n",
		rate, n, burst.produced.Seconds(), burst.lastSeen.Sub(first).Seconds())
	fmt.Printf("  latency PutRecords → readable by Query, phase 1 (backlog):       p50 %v  p99 %v\n", burst.q(0.5), burst.q(0.99))
	fmt.Printf("  phase 1's last items written %v after its last sampled event was readable; phase 2 began then\n", tail.Round(time.Millisecond))
	fmt.Printf("  latency PutRecords → readable by Query, phase 2 (%.0f events/s for 10 s, %d samples): p50 %v  p99 %v  max %v\n",
		paceRate, len(paced.lat), paced.q(0.5), paced.q(0.99), paced.q(1))
	fmt.Printf("  phase 2's worst latency per 2 s of sending: %s\n", paced.worstBySecond(2*time.Second))
	fmt.Printf("B3 ratio vs the slower stand-in's capacity (kinesis %.0f/s, dynamodb %.0f/s, the faster of its two bare loops): drain sustained %.2f (target ≥ 0.80), from the job's start %.2f; with the producer on the same cores %.2f; p99 at half the phase-1 rate %v (target < 2s)\n",
		putRate, writeRate, steady/capacity, drainRate/capacity, rate/capacity, paced.q(0.99))
	for _, j := range []struct {
		name string
		sum  metrics.Summary
	}{{"drain", drainSum}, {"phases 1+2", sum}} {
		for _, eq := range pipelines.StreamConservation(j.sum, pipelines.StagesAll) {
			fmt.Printf("  conservation (%s): %s\n", j.name, eq)
		}
	}
	return nil
}

// barePut creates stream with shards shards and puts recs into it with a
// bare PutRecords loop: the Kinesis stand-in's capacity, in records per
// second. The records stay in the stream.
func barePut(ctx context.Context, kin *kinesis.Client, stream string, shards int, recs []kinesisio.PutRecord) (float64, error) {
	if err := kinesisio.CreateStream(ctx, kin, stream, shards); err != nil {
		return 0, err
	}
	start := time.Now()
	if _, failed, err := kinesisio.PutRecords(ctx, kin, stream, recs, kinesisio.WriterOptions{}); err != nil || len(failed) > 0 {
		return 0, fmt.Errorf("baseline put: %v (%d failed)", err, len(failed))
	}
	rate := float64(len(recs)) / time.Since(start).Seconds()
	fmt.Printf("  kinesis stand-in, bare PutRecords loop:      %8.0f records/s\n", rate)
	return rate, nil
}

// itemsOf reads every record of the stream back and returns the nearline
// items stage 1 makes of them, with the lineage the pipeline gives them.
func itemsOf(ctx context.Context, kin kinesisio.API, stream string, tenants []*schema.Tenant) ([]map[string]types.AttributeValue, error) {
	shards, err := kinesisio.ListShards(ctx, kin, stream)
	if err != nil {
		return nil, err
	}
	b, err := stage1.NewBatch(tenants, stage1.Options{})
	if err != nil {
		return nil, err
	}
	for _, sh := range shards {
		r := kinesisio.NewShardReader(kin, stream, sh.ID, kinesisio.Position{Kind: kinesisio.TrimHorizon}, kinesisio.ReaderOptions{})
		for {
			page, err := r.Next(ctx)
			if err != nil {
				return nil, err
			}
			if len(page.Records) == 0 { // at the tip: every record put is read
				break
			}
			for _, rec := range page.Records {
				b.Add(rec.Data, records.Lineage{Stream: stream, Shard: sh.ID, Sequence: rec.Sequence}, rec.ArrivalTime)
			}
		}
	}
	staged, _, err := b.Flush(ctx)
	if err != nil {
		return nil, err
	}
	var items []map[string]types.AttributeValue
	for _, blk := range staged {
		if err := archive.DecodeBlock(blk, func(ev *records.Event) error {
			items = append(items, dynamodbio.Item(ev, dynamodbio.ItemOptions{}))
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// job is a `fineo stream` pipeline running on the embedded prism runner.
type job struct {
	start time.Time
	// counters gives the job's counters so far: it runs in this process,
	// so runners.CountersOf reads the live process-local ones.
	counters func(beam.PipelineResult) metrics.Summary
	done     chan struct{}
	waiting  atomic.Bool // wait has been called
	sum      metrics.Summary
	err      error
}

// startJob runs stage 1 fused with stage 2 from the raw stream (from its
// trim horizon) into a fresh nearline table, until the stream has been idle
// for 20 s. It exits the program if the job ends with an error, or before
// wait is called.
func startJob(ctx context.Context, ddb dynamodbio.API, raw, table string, tenants []*schema.Tenant, writeConc int, lo dynamodbio.LayoutOptions) (*job, error) {
	if err := dynamodbio.CreateTable(ctx, ddb, table, lo); err != nil {
		return nil, err
	}
	if err := dynamodbio.EnsureCheckpointTable(ctx, ddb, table+"-checkpoints"); err != nil {
		return nil, err
	}
	archiveDir, err := os.MkdirTemp("", "fineo-bench-stream-")
	if err != nil {
		return nil, err
	}
	cfg := pipelines.StreamConfig{RawStream: raw, Table: table, Archive: archiveDir, Tenants: tenants,
		// The job ends once the stream has been idle this long. 5 s was too
		// short: the last pages of phase 1's backlog (up to 10,000 records a
		// shard, written at once) can take longer than that to write after
		// the last read, and the job then ended before phase 2 began,
		// leaving phase 2 waiting for a job that was gone.
		Read:            kinesisio.ReadConfig{StopAfterIdle: 20 * time.Second},
		CheckpointTable: table + "-checkpoints", Consumer: "bench",
		Writer: dynamodbio.WriterOptions{Concurrency: writeConc}, Layout: lo}
	p, s := beam.NewPipelineWithRoot()
	pipelines.Stream(s, cfg)
	j := &job{start: time.Now(), counters: runners.CountersOf(runners.Unbounded), done: make(chan struct{})}
	go func() {
		defer close(j.done)
		defer os.RemoveAll(archiveDir)
		pr, err := runners.Run(ctx, runners.Unbounded, p)
		j.err = err
		j.sum = j.counters(pr)
	}()
	go func() {
		<-j.done // the job ends on its own only after the stream is idle (StopAfterIdle)
		if j.err != nil {
			fmt.Fprintf(os.Stderr, "bench/stream: the job ended early: %v\n", j.err)
			os.Exit(1)
		}
		if !j.waiting.Load() {
			fmt.Fprintln(os.Stderr, "bench/stream: the job ended (its stream idle) before the benchmark was done with it")
			os.Exit(1)
		}
	}()
	return j, nil
}

// startOnNewStream creates the raw stream, starts a job on it (startJob)
// and waits until the job has started and reached the empty stream's tip.
func startOnNewStream(ctx context.Context, kin kinesisio.StreamAdmin, ddb dynamodbio.API, raw string, shards int, table string, tenants []*schema.Tenant, writeConc int, lo dynamodbio.LayoutOptions) (*job, error) {
	if err := kinesisio.CreateStream(ctx, kin, raw, shards); err != nil {
		return nil, err
	}
	j, err := startJob(ctx, ddb, raw, table, tenants, writeConc, lo)
	if err == nil {
		time.Sleep(3 * time.Second)
	}
	return j, err
}

// sunk is how many staged events the job has settled in its table so far
// (written, merged with a same-key duplicate, or failed): the right side of
// its sink equation.
func (j *job) sunk() int64 {
	eqs := pipelines.StreamConservation(j.counters(nil), pipelines.StagesAll)
	return eqs[len(eqs)-1].Sum()
}

// wait waits for the job to end and returns its counters.
func (j *job) wait() (metrics.Summary, error) {
	j.waiting.Store(true)
	<-j.done
	return j.sum, j.err
}

// progress is when a sampled event was last found readable (or a phase
// began), in Unix nanoseconds; 0 until the first phase begins.
var progress atomic.Int64

// watchdog fails the benchmark with a goroutine dump of the process (the
// job's goroutines included) when nothing has progressed for stall. The
// first dump showed a phase waiting for a job that had ended on idle.
func watchdog(stall time.Duration) {
	for range time.Tick(min(5*time.Second, stall/4)) {
		if p := progress.Load(); p == 0 || time.Since(time.Unix(0, p)) < stall {
			continue
		}
		f, err := os.CreateTemp("", "fineo-bench-stream-stall-*.txt")
		if err == nil {
			// This process's counters twice, 5 s apart: whether the job
			// still moves (and where), or nothing does.
			before := metrics.Local()
			time.Sleep(5 * time.Second)
			after := metrics.Local()
			fmt.Fprintf(f, "counters of this process:\n")
			for _, k := range slices.Sorted(maps.Keys(after)) {
				fmt.Fprintf(f, "  %s %d (%+d in 5 s)\n", k, after[k], after[k]-before[k])
			}
			fmt.Fprintln(f)
			pprof.Lookup("goroutine").WriteTo(f, 2)
			f.Close()
			fmt.Fprintf(os.Stderr, "bench/stream: no progress for %v; goroutine dump in %s\n", stall, f.Name())
		} else {
			fmt.Fprintf(os.Stderr, "bench/stream: no progress for %v (no dump: %v)\n", stall, err)
		}
		os.Exit(1)
	}
}

// phase is what a sampler measured.
type phase struct {
	found    []sample        // in the order found, each with its latency
	lat      []time.Duration // their latencies, sorted
	produced time.Duration
	lastSeen time.Time
	err      error
}

// worstBySecond returns the worst latency of the samples sent in each
// span of d from the first, in order.
func (p phase) worstBySecond(d time.Duration) string {
	if len(p.found) == 0 {
		return "-"
	}
	var worst []time.Duration
	for _, sm := range p.found {
		b := int(sm.sent.Sub(p.found[0].sent) / d)
		for len(worst) <= b {
			worst = append(worst, 0)
		}
		worst[b] = max(worst[b], sm.lat)
	}
	var out []string
	for _, w := range worst {
		out = append(out, w.Round(10*time.Millisecond).String())
	}
	return strings.Join(out, " ")
}

// sustained returns the rate at which n events became readable between
// the first sample at or past 10% of them and the first at or past 90%, and
// those two samples: the steady state, without the job's start-up (prism's,
// and each shard's first GetRecords) and the shards finishing one after
// another. The poller finds samples in order, so a sample's sent time plus
// its latency is when it and every sample before it were readable (for a
// backlog, every sample's sent time is the job's start).
func (p phase) sustained(n int) (rate float64, lo, hi sample) {
	at := func(f int) sample {
		for _, sm := range p.found {
			if sm.i*10 >= f*n {
				return sm
			}
		}
		return sample{}
	}
	lo, hi = at(1), at(9)
	span := hi.sent.Add(hi.lat).Sub(lo.sent.Add(lo.lat))
	if span <= 0 {
		return 0, lo, hi
	}
	return float64(hi.i-lo.i) / span.Seconds(), lo, hi
}

func (p phase) q(f float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	return p.lat[min(len(p.lat)-1, int(f*float64(len(p.lat))))].Round(time.Millisecond)
}

// sampler polls the nearline table for sampled events (event i has the
// timestamp base+i) until each is readable: one poller, in order, every
// poll, and records each one's latency from its sent time.
type sampler struct {
	queue chan sample
	ph    phase
	wg    sync.WaitGroup
}

type sample struct {
	i    int
	sent time.Time
	lat  time.Duration // sent → readable, once found
}

// Each poll is one GetItem at the event's key: the sampler runs stage 1 on
// the event's bytes, as the job does, for its id (which depends only on its
// content), and the table's layout gives the key.
func startSampler(ctx context.Context, ddb dynamodbio.API, table string, tenants []*schema.Tenant, base int64, size int, poll time.Duration) *sampler {
	progress.Store(time.Now().UnixNano())
	s := &sampler{queue: make(chan sample, size)}
	layout, err := dynamodbio.OpenLayout(ctx, ddb, table, dynamodbio.LayoutOptions{})
	if err != nil {
		panic(err) // the table was just created
	}
	proc, err := stage1.NewProcessor(tenants, stage1.Options{})
	if err != nil {
		panic(err) // the job runs with the same schemas
	}
	s.wg.Go(func() {
		for sm := range s.queue {
			ts := base + int64(sm.i)
			id := idOf(proc, event(base, sm.i))
			for {
				ev, err := layout.Get(ctx, "harbor", "weather", ts, id)
				if err == nil && ev != nil {
					s.ph.lastSeen = time.Now()
					progress.Store(s.ph.lastSeen.UnixNano())
					sm.lat = s.ph.lastSeen.Sub(sm.sent)
					s.ph.found = append(s.ph.found, sm)
					break
				}
				time.Sleep(poll)
			}
		}
	})
	return s
}

// idOf returns the id stage 1 gives the event in data (with a plain
// Processor, which counts nothing: the job's counters are this process's).
func idOf(p *stage1.Processor, data []byte) string {
	var out idOutput
	p.Process(data, records.Lineage{}, &out)
	if out.id == "" {
		panic(fmt.Sprintf("stage 1 staged nothing of %s", data))
	}
	return out.id
}

// idOutput keeps the id of the event stage 1 staged.
type idOutput struct{ id string }

func (o *idOutput) Staged(ev *records.Event) { o.id = strings.Clone(ev.ID) }
func (o *idOutput) Error(*records.Error)     {}

// add samples event i, sent at sent.
func (s *sampler) add(i int, sent time.Time) { s.queue <- sample{i: i, sent: sent} }

// wait waits until every sampled event is readable.
func (s *sampler) wait() phase {
	close(s.queue)
	s.wg.Wait()
	for _, sm := range s.ph.found {
		s.ph.lat = append(s.ph.lat, sm.lat)
	}
	slices.Sort(s.ph.lat)
	return s.ph
}

// sampled reports whether event i of n is one whose latency is measured:
// every every-th, and the last.
func sampled(i, n, every int) bool { return i%every == 0 || i == n-1 }

// sendAndWait puts recs (the events base+0, base+1, ...) in calls of 500
// at perSec events per second (0: as fast as possible), and polls the
// nearline table for every every-th event and the last until each is
// readable.
func sendAndWait(ctx context.Context, kin kinesisio.API, ddb dynamodbio.API, stream, table string, tenants []*schema.Tenant, base int64,
	recs []kinesisio.PutRecord, every int, perSec float64) phase {
	// Polling competes with the job for the single-threaded DynamoDB
	// stand-in, which the bare loop has to itself: in the backlog phase,
	// whose latencies are tens of seconds, poll ten times less often.
	poll := 10 * time.Millisecond
	if perSec == 0 {
		poll = 100 * time.Millisecond
	}
	sm := startSampler(ctx, ddb, table, tenants, base, len(recs)/every+2, poll)
	start := time.Now()
	call := kinesisio.MaxPutRecords
	if perSec > 0 {
		call = max(1, min(call, int(perSec/10))) // ten calls a second
	}
	var err error
	for i := 0; i < len(recs); i += call {
		if perSec > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / perSec * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		end := min(i+call, len(recs))
		if _, failed, perr := kinesisio.PutRecords(ctx, kin, stream, recs[i:end], kinesisio.WriterOptions{}); perr != nil || len(failed) > 0 {
			err = fmt.Errorf("put: %v (%d failed)", perr, len(failed))
			break
		}
		sent := time.Now()
		for j := i; j < end; j++ {
			if sampled(j, len(recs), every) {
				sm.add(j, sent)
			}
		}
	}
	produced := time.Since(start)
	ph := sm.wait()
	ph.produced, ph.err = produced, err
	return ph
}

// bareRun is what a bare BatchWriteItem loop measured.
type bareRun struct {
	rate float64 // items per second
	cpu  string  // the stand-in's CPU per 1,000 items, or ""
}

// bareWrite writes items to a fresh table with dynamodbio.WriteItems and
// conc calls in flight: the DynamoDB stand-in's own capacity.
func bareWrite(ctx context.Context, ddb dynamodbio.API, table string, items []map[string]types.AttributeValue, conc int, cpu func() time.Duration) (bareRun, error) {
	if err := dynamodbio.CreateTable(ctx, ddb, table, dynamodbio.LayoutOptions{}); err != nil {
		return bareRun{}, err
	}
	cpu0, start := cpu(), time.Now()
	if _, failed, err := dynamodbio.WriteItems(ctx, ddb, table, items, dynamodbio.WriterOptions{Concurrency: conc}); err != nil || len(failed) > 0 {
		return bareRun{}, fmt.Errorf("baseline write: %v (%d failed)", err, len(failed))
	}
	rate := float64(len(items)) / time.Since(start).Seconds()
	return bareRun{rate, perThousand(cpu0, cpu(), len(items))}, nil
}

// dropTables deletes tables (dynalite drops a table's items before it
// answers).
func dropTables(ctx context.Context, ddb *dynamodb.Client, tables ...string) error {
	for _, t := range tables {
		if _, err := ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: &t}); err != nil {
			return fmt.Errorf("deleting %s: %w", t, err)
		}
	}
	return nil
}

// standinCPU returns a function that gives the CPU time (user + system)
// the named stand-in has used, from its pid file in $FINEO_STANDINS_DIR
// (scripts/standins.sh), or a function that gives -1 where that is unknown.
func standinCPU(name string) func() time.Duration {
	dir := os.Getenv("FINEO_STANDINS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "fineo-standins")
	}
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return func() time.Duration { return -1 }
	}
	return procCPU(strings.TrimSpace(string(b)))
}

// procCPU returns a function that gives the CPU time (user + system) the
// process pid ("self": this one) has used, or -1 where that is unknown.
func procCPU(pid string) func() time.Duration {
	stat := filepath.Join("/proc", pid, "stat")
	return func() time.Duration {
		b, err := os.ReadFile(stat)
		if err != nil {
			return -1
		}
		// Fields after the command (which may hold spaces) end in ')';
		// utime and stime are the 14th and 15th, in clock ticks (100 a
		// second on Linux).
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return -1
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+s) * 10 * time.Millisecond
	}
}

// perThousand describes the CPU time a stand-in used between two readings
// for n items, or "" when it is unknown.
func perThousand(before, after time.Duration, n int) string {
	if before < 0 || after < 0 || n == 0 {
		return ""
	}
	return fmt.Sprintf(" (dynalite CPU %.0f ms per 1,000 items)", msPerThousand(after-before, n))
}

// msPerThousand is d in milliseconds per 1,000 of n.
func msPerThousand(d time.Duration, n int) float64 {
	return float64(d.Milliseconds()) * 1000 / float64(n)
}

// cpuMeter names a process and reads the CPU time it has used (-1:
// unknown).
type cpuMeter struct {
	name string
	read func() time.Duration
}

func readCPU(ms []cpuMeter) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = m.read()
	}
	return out
}

// cpuUse describes the CPU each process used between two readings, per
// 1,000 of n events, and what share of the machine they used together in
// wall.
func cpuUse(ms []cpuMeter, before, after []time.Duration, wall time.Duration, n int) string {
	var parts []string
	var total time.Duration
	for i, m := range ms {
		if before[i] < 0 || after[i] < 0 {
			parts = append(parts, m.name+" ?")
			continue
		}
		d := after[i] - before[i]
		total += d
		parts = append(parts, fmt.Sprintf("%s %.0f", m.name, msPerThousand(d, n)))
	}
	return fmt.Sprintf("%s; together %.0f%% of %d cores (the CPUs this process may use)", strings.Join(parts, ", "),
		100*total.Seconds()/wall.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
}

// startProfile starts a CPU profile into path ("" for none); stop ends it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
