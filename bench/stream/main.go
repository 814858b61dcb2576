// Command stream is benchmark B3: sustained events per second from a
// Kinesis stand-in (4 shards) through `fineo stream` (stage 1 fused with
// stage 2, on the embedded prism runner) into a DynamoDB stand-in, with
// p50/p99 latency from PutRecords returning to the item being readable by
// Query — against each stand-in's own capacity, measured in the same run by
// a bare PutRecords loop and a bare BatchWriteItem loop (dynamodbio.WriteItems
// with the pipeline's concurrency).
//
//	eval "$(scripts/standins.sh start)"
//	go run ./bench/stream -n 100000
//
// It refuses to run unless the Kinesis and DynamoDB endpoints are on this
// host: it creates streams and tables.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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
	conc := flag.Int("write-concurrency", 16, "BatchWriteItem calls in flight (baseline and pipeline)")
	schemas := flag.String("schemas", filepath.Join("testdata", "sample", "schemas"), "schema store (the sample's: tenant harbor)")
	flag.Parse()
	beamlog.LogLevel = "error"
	profile = *cpuprofile
	beam.Init()
	if err := run(*n, *shards, *samples, *conc, *schemas); err != nil {
		fmt.Fprintln(os.Stderr, "bench/stream:", err)
		os.Exit(1)
	}
}

var profile string

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

func run(n, shards, samples, conc int, schemaDir string) error {
	if !local("AWS_ENDPOINT_URL_KINESIS") || !local("AWS_ENDPOINT_URL_DYNAMODB") {
		return fmt.Errorf("AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_DYNAMODB must point at local stand-ins (eval \"$(scripts/standins.sh start)\")")
	}
	ctx := context.Background()
	kin, err := kinesisio.NewClient(ctx)
	if err != nil {
		return err
	}
	ddb, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return err
	}
	st, err := schema.OpenStore(ctx, schemaDir)
	if err != nil {
		return err
	}
	tenants, err := schema.LoadAll(ctx, st)
	if err != nil {
		return err
	}
	id := time.Now().UTC().Format("150405")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	payloads := make([][]byte, n)
	recs := make([]kinesisio.PutRecord, n)
	for i := range payloads {
		payloads[i] = event(base, i)
		recs[i] = kinesisio.PutRecord{Data: payloads[i], PartitionKey: fmt.Sprintf("bench-%d", i%64)}
	}
	fmt.Printf("B3 streaming: %d events, %d shards; kinesis %s, dynamodb %s\n", n, shards, os.Getenv("AWS_ENDPOINT_URL_KINESIS"), os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"))

	// Baseline 1: a bare PutRecords loop into a fresh stream.
	baseStream := "bench-base-" + id
	if err := kinesisio.CreateStream(ctx, kin, baseStream, shards); err != nil {
		return err
	}
	start := time.Now()
	if _, failed, err := kinesisio.PutRecords(ctx, kin, baseStream, recs, kinesisio.WriterOptions{}); err != nil || len(failed) > 0 {
		return fmt.Errorf("baseline put: %v (%d failed)", err, len(failed))
	}
	putRate := float64(n) / time.Since(start).Seconds()
	fmt.Printf("  kinesis stand-in, bare PutRecords loop:      %8.0f records/s\n", putRate)

	// Baseline 2: a bare BatchWriteItem loop of the same events' items.
	b, err := stage1.NewBatch(tenants, stage1.Options{})
	if err != nil {
		return err
	}
	for i, p := range payloads {
		b.Add(p, records.Lineage{Stream: "bench", Shard: "s", Sequence: fmt.Sprint(i)}, time.Now())
	}
	staged, _, err := b.Flush(ctx)
	if err != nil {
		return err
	}
	var items []map[string]types.AttributeValue
	for _, blk := range staged {
		if err := archive.DecodeBlock(blk, func(ev *records.Event) error {
			items = append(items, dynamodbio.Item(ev, dynamodbio.ItemOptions{}))
			return nil
		}); err != nil {
			return err
		}
	}
	if len(items) != n {
		return fmt.Errorf("stage 1 made %d items of %d events", len(items), n)
	}
	baseTable := "bench-base-" + id
	if err := dynamodbio.CreateTable(ctx, ddb, baseTable); err != nil {
		return err
	}
	start = time.Now()
	if _, failed, err := dynamodbio.WriteItems(ctx, ddb, baseTable, items, dynamodbio.WriterOptions{Concurrency: conc}); err != nil || len(failed) > 0 {
		return fmt.Errorf("baseline write: %v (%d failed)", err, len(failed))
	}
	writeRate := float64(n) / time.Since(start).Seconds()
	fmt.Printf("  dynamodb stand-in, bare BatchWriteItem loop: %8.0f items/s\n", writeRate)

	// The pipeline: raw stream → stage 1 → nearline table, while a producer
	// puts the events and a sampler polls for them.
	raw, table := "bench-raw-"+id, "bench-nearline-"+id
	if err := kinesisio.CreateStream(ctx, kin, raw, shards); err != nil {
		return err
	}
	if err := dynamodbio.CreateTable(ctx, ddb, table); err != nil {
		return err
	}
	if err := dynamodbio.EnsureCheckpointTable(ctx, ddb, table+"-checkpoints"); err != nil {
		return err
	}
	archiveDir, err := os.MkdirTemp("", "fineo-bench-stream-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(archiveDir)
	cfg := pipelines.StreamConfig{RawStream: raw, Table: table, Archive: archiveDir, Tenants: tenants,
		Read:            kinesisio.ReadConfig{StopAfterIdle: 5 * time.Second},
		CheckpointTable: table + "-checkpoints", Consumer: "bench",
		Writer: dynamodbio.WriterOptions{Concurrency: conc}}
	p, s := beam.NewPipelineWithRoot()
	pipelines.Stream(s, cfg)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var sum metrics.Summary
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		counters := runners.CountersOf(runners.Unbounded)
		pr, err := runners.Run(ctx, runners.Unbounded, p)
		runErr = err
		sum = counters(pr)
	}()
	go func() {
		<-done // the job ends on its own only after phase 2 (--stop-after-idle)
		if runErr != nil {
			fmt.Fprintf(os.Stderr, "bench/stream: the job ended early: %v\n", runErr)
			os.Exit(1)
		}
	}()
	time.Sleep(3 * time.Second) // let the job start and reach the (empty) stream's tip

	// Phase 1 (throughput): put all n events as fast as the stand-in takes
	// them; the rate is n over the time until the last one is readable.
	// Phase 2 (latency): events at half that rate for 10 s, each sampled
	// one polled until readable — latency under a load the job sustains.
	every := max(1, n/samples)
	first := time.Now()
	burst := sendAndWait(ctx, kin, ddb, raw, table, base, recs, every, 0)
	if burst.err != nil {
		return burst.err
	}
	rate := float64(n) / burst.lastSeen.Sub(first).Seconds()
	paceRate := rate / 2
	m := int(paceRate * 10)
	base2 := base + int64(n)
	recs2 := make([]kinesisio.PutRecord, m)
	for i := range recs2 {
		recs2[i] = kinesisio.PutRecord{Data: event(base2, i), PartitionKey: fmt.Sprintf("bench-%d", i%64)}
	}
	paced := sendAndWait(ctx, kin, ddb, raw, table, base2, recs2, max(1, m/samples), paceRate)
	if paced.err != nil {
		return paced.err
	}
	<-done
	if runErr != nil {
		return runErr
	}
	capacity := min(putRate, writeRate)
	fmt.Printf("  fineo stream (prism, stage 1 + 2 fused):    %8.0f events/s  (phase 1: %d events put in %.1f s, all readable after %.1f s)\n",
		rate, n, burst.produced.Seconds(), burst.lastSeen.Sub(first).Seconds())
	fmt.Printf("  latency PutRecords → readable by Query, phase 1 (backlog):       p50 %v  p99 %v\n", burst.q(0.5), burst.q(0.99))
	fmt.Printf("  latency PutRecords → readable by Query, phase 2 (%.0f events/s for 10 s, %d samples): p50 %v  p99 %v  max %v\n",
		paceRate, len(paced.lat), paced.q(0.5), paced.q(0.99), paced.q(1))
	fmt.Printf("B3 ratio vs the slower stand-in's capacity: %.2f (target ≥ 0.80); p99 at half that rate %v (target < 2s)\n",
		rate/capacity, paced.q(0.99))
	fmt.Printf("  counters: events_in %d, staged_written %d, nearline_written %d, conservation ok: %v\n",
		sum[metrics.EventsIn], sum[metrics.StagedWritten], sum[dynamodbio.NearlineWritten], sum.Conserved())
	return nil
}

// phase is what sendAndWait measured.
type phase struct {
	lat      []time.Duration // sorted
	produced time.Duration
	lastSeen time.Time
	err      error
}

func (p phase) q(f float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	return p.lat[min(len(p.lat)-1, int(f*float64(len(p.lat))))].Round(time.Millisecond)
}

// sendAndWait puts recs (the events base+0, base+1, ...) in calls of 500
// at perSec events per second (0: as fast as possible), and polls the
// nearline table for every every-th event and the last until each is
// readable: one poller, in order, every 10 ms.
func sendAndWait(ctx context.Context, kin kinesisio.API, ddb dynamodbio.API, stream, table string, base int64,
	recs []kinesisio.PutRecord, every int, perSec float64) phase {
	type sample struct {
		i    int
		sent time.Time
	}
	// Polling competes with the job for the single-threaded DynamoDB
	// stand-in, which the bare loop has to itself: in the backlog phase,
	// whose latencies are tens of seconds, poll ten times less often.
	poll := 10 * time.Millisecond
	if perSec == 0 {
		poll = 100 * time.Millisecond
	}
	queue := make(chan sample, len(recs)/every+2)
	var ph phase
	var wg sync.WaitGroup
	wg.Go(func() {
		for sm := range queue {
			ts := base + int64(sm.i)
			for {
				found := false
				err := dynamodbio.Query(ctx, ddb, table, "harbor", "weather", ts, ts+1, 0, func(*records.Event) error {
					found = true
					return nil
				})
				if err == nil && found {
					ph.lastSeen = time.Now()
					ph.lat = append(ph.lat, ph.lastSeen.Sub(sm.sent))
					break
				}
				time.Sleep(poll)
			}
		}
	})
	start := time.Now()
	call := kinesisio.MaxPutRecords
	if perSec > 0 {
		call = max(1, min(call, int(perSec/10))) // ten calls a second
	}
	for i := 0; i < len(recs); i += call {
		if perSec > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / perSec * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		end := min(i+call, len(recs))
		if _, failed, err := kinesisio.PutRecords(ctx, kin, stream, recs[i:end], kinesisio.WriterOptions{}); err != nil || len(failed) > 0 {
			ph.err = fmt.Errorf("put: %v (%d failed)", err, len(failed))
			break
		}
		sent := time.Now()
		for j := i; j < end; j++ {
			if j%every == 0 || j == len(recs)-1 {
				queue <- sample{j, sent}
			}
		}
	}
	ph.produced = time.Since(start)
	close(queue)
	wg.Wait()
	slices.Sort(ph.lat)
	return ph
}
