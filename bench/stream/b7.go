package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// runB7 is benchmark B7, a hot metric: one tenant's one metric offered at
// rate events a second for d through proxies that enforce AWS's per-key
// write limits, which the stand-ins do not (testenv.Proxy: DynamoDB's
// keyWCU write units a second per partition key, Kinesis's 1 MiB and 1,000
// records a second per shard), into `fineo stream` (stage 1 + 2 on prism).
// It prints the sustained rate against the offered one, the throttling
// seen, write_failed (must be 0) and p50/p99 PutRecords → readable; then
// writes the same metric's events spread over 24 hours into a table of its
// own and reads them back with one query, printing the DynamoDB calls it
// took against the bound (buckets × shards, plus one per further page).
func runB7(rate int, d time.Duration, rawShards, keyWCU, samples, jobConc int, tenants []*schema.Tenant, layout dynamodbio.LayoutOptions) error {
	if err := requireLocal(); err != nil {
		return err
	}
	ctx := context.Background()
	dynProxy, err := testenv.NewProxy(os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"))
	if err != nil {
		return err
	}
	defer dynProxy.Close()
	dynProxy.LimitKeyWrites(keyWCU)
	kinProxy, err := testenv.NewProxy(os.Getenv("AWS_ENDPOINT_URL_KINESIS"))
	if err != nil {
		return err
	}
	defer kinProxy.Close()
	kinProxy.LimitShardWrites(1<<20, 1000)
	// The job's workers, the producer and the reader all go through them.
	os.Setenv("AWS_ENDPOINT_URL_DYNAMODB", dynProxy.URL)
	os.Setenv("AWS_ENDPOINT_URL_KINESIS", kinProxy.URL)
	kin, ddb, err := clients(ctx)
	if err != nil {
		return err
	}

	n := int(float64(rate) * d.Seconds())
	id := time.Now().UTC().Format("150405")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() // n events, 1 ms apart: one hour bucket
	recs := make([]kinesisio.PutRecord, n)
	for i := range recs {
		recs[i] = kinesisio.PutRecord{Data: event(base, i), PartitionKey: strconv.Itoa(i)}
	}
	fmt.Printf("B7 hot metric: %d events of harbor/weather at %d/s for %v; raw stream %d shards; nearline %d keys per metric and hour (adaptive %v); DynamoDB limited to %d write units/s per partition key, Kinesis to 1 MiB and 1,000 records/s per shard\n",
		n, rate, d, rawShards, max(layout.Shards, 1), layout.Adaptive, keyWCU)
	raw, table := "bench-hot-raw-"+id, "bench-hot-"+id
	job, err := startOnNewStream(ctx, kin, ddb, raw, rawShards, table, tenants, jobConc, layout)
	if err != nil {
		return err
	}
	every := max(1, n/samples)
	stop, err := startProfile(profile)
	if err != nil {
		return err
	}
	defer stop()
	cpus := []cpuMeter{{"this process (job, producer, proxies, sampler)", procCPU("self")}, {"kinesalite", standinCPU("kinesalite")}, {"dynalite", standinCPU("dynalite")}}
	cpu0 := readCPU(cpus)
	first := time.Now()
	ph := sendAndWait(ctx, kin, ddb, raw, table, tenants, base, recs, every, float64(rate))
	if ph.err != nil {
		return ph.err
	}
	for job.sunk() < int64(n) {
		time.Sleep(50 * time.Millisecond)
	}
	settled := time.Since(first)
	cpuLine := cpuUse(cpus, cpu0, readCPU(cpus), settled, n)
	sum, err := job.wait()
	if err != nil {
		return err
	}
	steady, lo, hi := ph.sustained(n)
	fmt.Printf("  offered %d events/s for %.1f s (the producer's own pace: %.0f/s)\n", rate, ph.produced.Seconds(), float64(n)/ph.produced.Seconds())
	fmt.Printf("  sustained (from %d%% to %d%% of the events readable, %.1f s to %.1f s after sending began): %8.0f events/s = %.2f of the offered rate (target ≥ 0.90)\n",
		100*lo.i/n, 100*hi.i/n, lo.sent.Sub(first).Seconds()+lo.lat.Seconds(), hi.sent.Sub(first).Seconds()+hi.lat.Seconds(), steady, steady/float64(rate))
	fmt.Printf("  all %d events settled in the table %.1f s after sending began: %.0f events/s = %.2f of the offered rate\n",
		n, settled.Seconds(), float64(n)/settled.Seconds(), float64(n)/settled.Seconds()/float64(rate))
	fmt.Printf("  latency PutRecords → readable by Query (%d samples): p50 %v  p99 %v  max %v (target p99 < 2s)\n", len(ph.lat), ph.q(0.5), ph.q(0.99), ph.q(1))
	fmt.Printf("  worst latency per 5 s of sending: %s\n", ph.worstBySecond(5*time.Second))
	fmt.Printf("  CPU, ms per 1,000 events: %s\n", cpuLine)
	fmt.Printf("  throttling: DynamoDB items held back by the per-key limit %d, BatchWriteItem calls throttled %d; Kinesis records held back by the per-shard limit %d\n",
		dynProxy.Limited("BatchWriteItem"), sum[dynamodbio.NearlineThrottles], kinProxy.Limited("PutRecords"))
	fmt.Printf("  write_failed (nearline_failed): %d (target 0); shard-count raises: %d; processing errors: %d\n",
		sum[dynamodbio.NearlineFailed], sum[dynamodbio.NearlineShardRaises], sum[metrics.ProcessingErrors])
	for _, eq := range pipelines.StreamConservation(sum, pipelines.StagesAll) {
		fmt.Printf("  conservation: %s\n", eq)
	}
	if err := dropTables(ctx, ddb, table, table+"-checkpoints"); err != nil {
		return err
	}
	return query24h(ctx, ddb, "bench-day-"+id)
}

// query24h writes 24 hours of one metric (an event every 2 s) into a fresh
// table and reads them back with one query.
func query24h(ctx context.Context, ddb *dynamodb.Client, table string) error {
	if err := dynamodbio.CreateTable(ctx, ddb, table, dynamodbio.LayoutOptions{}); err != nil {
		return err
	}
	l, err := dynamodbio.OpenLayout(ctx, ddb, table, dynamodbio.LayoutOptions{})
	if err != nil {
		return err
	}
	from := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
	const step, n = 2000, 24 * 3600 * 1000 / 2000
	var b archive.Block
	var want []string
	for i := range n {
		ev := &records.Event{ID: fmt.Sprintf("day-%06d", i), Tenant: "harbor", Metric: "weather", MetricAlias: "weather",
			Timestamp: from + int64(i)*step, SchemaVersion: 1, IngestTime: from, Fields: map[string]any{"temp_f": 40.5 + float64(i%50)}}
		if b.Data, err = archive.AppendEvent(b.Data, ev); err != nil {
			return err
		}
		b.Count++
		want = append(want, ev.ID)
	}
	failed, err := dynamodbio.WriteBlock(ctx, l, b, dynamodbio.ItemOptions{}, dynamodbio.WriterOptions{})
	if err != nil || failed.Count > 0 {
		return fmt.Errorf("writing the day: %v (%d failed)", err, failed.Count)
	}
	var got []string
	start := time.Now()
	st, err := l.Query(ctx, "harbor", "weather", from, from+24*3600_000, func(ev *records.Event) error {
		got = append(got, ev.ID)
		return nil
	})
	if err != nil {
		return err
	}
	took := time.Since(start)
	exact := slices.Equal(got, want)
	bound := int64(st.Keys) + st.Items/1000 // each key's first page, plus at most one more page per 1,000 items (pages hold more than that)
	fmt.Printf("  query of one metric over 24 hours: %d events (written %d, exactly those in time order: %v) in %v; %d buckets × %d shards = %d keys, %d DynamoDB Query calls (bound %d)\n",
		len(got), n, exact, took.Round(time.Millisecond), st.Buckets, l.Shards, st.Keys, st.Calls, bound)
	if !exact || st.Calls > bound {
		return fmt.Errorf("the 24-hour query returned %d events (exact %v) in %d calls", len(got), exact, st.Calls)
	}
	return dropTables(ctx, ddb, table)
}
