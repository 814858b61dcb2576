package kinesisio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/metrics"
)

func TestMain(m *testing.M) {
	flag.Parse()
	beamlog.LogLevel = "warn"
	beam.Init()
	os.Exit(m.Run())
}

func init() {
	register.DoFn1x0[ShardPage](&collectFn{})
	register.DoFn2x0[ShardPage, func(string, int)](&countFn{})
	register.DoFn3x0[beam.Window, string, func(*int) bool](&firedFn{})
	register.Emitter2[string, int]()
	register.Iter1[int]()
}

// collected is what collectFn saw, per test run, in arrival order. The
// prism runner runs the SDK worker in this process, and collectFn is
// fused with the reading SDF, so arrival order is emission order.
var collected = struct {
	sync.Mutex
	m      map[string][]seenRecord
	last   map[string]string   // run key/shard → last sequence seen
	broken map[string][]string // run key → pages that do not chain
}{m: map[string][]seenRecord{}, last: map[string]string{}, broken: map[string][]string{}}

type seenRecord struct {
	Shard string
	PageRecord
}

type collectFn struct{ Key string }

func (f *collectFn) ProcessElement(p ShardPage) {
	collected.Lock()
	defer collected.Unlock()
	// Pages chain: a page starts just after the previous page's last record.
	if last, ok := collected.last[f.Key+"/"+p.Shard]; ok && p.After != last {
		collected.broken[f.Key] = append(collected.broken[f.Key], fmt.Sprintf("%s: page after %q follows %q", p.Shard, p.After, last))
	}
	collected.last[f.Key+"/"+p.Shard] = p.Last()
	for _, r := range p.Records {
		collected.m[f.Key] = append(collected.m[f.Key], seenRecord{Shard: p.Shard, PageRecord: r})
	}
}

func collectedOf(key string) []seenRecord {
	collected.Lock()
	defer collected.Unlock()
	return append([]seenRecord(nil), collected.m[key]...)
}

// runRead runs Read on prism to its end (StopAfterIdle) and returns the
// records collected in arrival order and the Fineo counters. more, when
// set, adds to the pipeline.
func runRead(t *testing.T, cfg ReadConfig, during func(key string), more ...func(s beam.Scope, key string, pages beam.PCollection)) ([]seenRecord, metrics.Summary) {
	t.Helper()
	var id [8]byte
	rand.Read(id[:])
	key := hex.EncodeToString(id[:])
	p, s := beam.NewPipelineWithRoot()
	pages := Read(s, cfg)
	beam.ParDo0(s, &collectFn{Key: key}, pages)
	for _, m := range more {
		m(s, key, pages)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if during != nil {
		wg.Add(1)
		go func() { defer wg.Done(); during(key) }()
	}
	start := time.Now()
	pr, err := beam.Run(ctx, "prism", p)
	wg.Wait()
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	t.Logf("pipeline ran %v", time.Since(start).Round(time.Millisecond))
	collected.Lock()
	if b := collected.broken[key]; len(b) > 0 {
		t.Errorf("%d pages do not chain, e.g. %s", len(b), b[0])
	}
	collected.Unlock()
	return collectedOf(key), metrics.FromResult(pr)
}

func asRecords(got []seenRecord) []Record {
	out := make([]Record, len(got))
	for i, r := range got {
		out[i] = Record{Data: r.Data, Sequence: r.Sequence, PartitionKey: r.PartitionKey}
	}
	return out
}

// checkParentsFirst checks that every record of a parent shard arrived
// before any record of its children.
func checkParentsFirst(t *testing.T, api API, stream string, got []seenRecord) {
	t.Helper()
	shards, err := ListShards(testCtx(t), api, stream)
	if err != nil {
		t.Fatal(err)
	}
	first, last := map[string]int{}, map[string]int{}
	for i, r := range got {
		if _, ok := first[r.Shard]; !ok {
			first[r.Shard] = i
		}
		last[r.Shard] = i
	}
	pairs := 0
	for _, s := range shards {
		for _, p := range []string{s.ParentID, s.AdjacentParentID} {
			fc, okc := first[s.ID]
			lp, okp := last[p]
			if p == "" || !okc || !okp {
				continue
			}
			pairs++
			if lp > fc {
				t.Errorf("child %s emitted (at %d) before the last record of its parent %s (at %d)", s.ID, fc, p, lp)
			}
		}
	}
	if pairs == 0 {
		t.Errorf("no parent and child shard both had records: the test does not test order across a split")
	}
}

func checkCounters(t *testing.T, sum metrics.Summary, records int) {
	t.Helper()
	if sum[KinesisRecords] != int64(records) {
		t.Errorf("counter %s = %d, want %d", KinesisRecords, sum[KinesisRecords], records)
	}
	if sum[KinesisPages] == 0 || sum[KinesisPages] > int64(records) {
		t.Errorf("counter %s = %d for %d records", KinesisPages, sum[KinesisPages], records)
	}
	if sum[KinesisBytes] == 0 {
		t.Errorf("counter %s = 0", KinesisBytes)
	}
}

func splitShard(t *testing.T, api *kinesis.Client, stream string, s Shard) {
	t.Helper()
	ctx := testCtx(t)
	lo, _ := new(big.Int).SetString(s.HashKeyStart, 10)
	hi, _ := new(big.Int).SetString(s.HashKeyEnd, 10)
	mid := new(big.Int).Add(lo, hi)
	mid.Rsh(mid, 1)
	if _, err := api.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: aws.String(s.ID),
		NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Error(err)
		return
	}
	if err := WaitActive(ctx, api, stream); err != nil {
		t.Error(err)
	}
}

var fastRead = ReadConfig{StopAfterIdle: 2 * time.Second, PollInterval: 50 * time.Millisecond, DiscoverEvery: 300 * time.Millisecond}

func TestBeamRead(t *testing.T) {
	client, stream := setup(t, 4)
	want := keyed(2000, 20, map[string]int{})
	put(t, client, stream, want)

	cfg := fastRead
	cfg.Stream = stream
	got, sum := runRead(t, cfg, nil)
	checkExactlyOnce(t, want, asRecords(got))
	checkCounters(t, sum, len(want))
	shards := map[string]bool{}
	for _, r := range got {
		shards[r.Shard] = true
		if r.ArrivalMillis == 0 || r.Sequence == "" {
			t.Fatalf("record without arrival time or sequence: %+v", r)
		}
	}
	if len(shards) != 4 {
		t.Errorf("records from %d shards, want 4", len(shards))
	}
}

func TestBeamResume(t *testing.T) {
	client, stream := setup(t, 2)
	want := keyed(600, 10, map[string]int{})
	put(t, client, stream, want)

	// Checkpoint after the 50th record of each shard.
	shards, err := ListShards(testCtx(t), client, stream)
	if err != nil {
		t.Fatal(err)
	}
	resume := map[string]string{}
	skipped := map[string]bool{}
	for _, s := range shards {
		recs := drain(t, NewShardReader(client, stream, s.ID, Position{}, fast), false)
		if len(recs) < 60 {
			t.Fatalf("shard %s holds %d records", s.ID, len(recs))
		}
		resume[s.ID] = recs[49].Sequence
		for _, r := range recs[:50] {
			skipped[string(r.Data)] = true
		}
	}
	var later []PutRecord
	for _, w := range want {
		if !skipped[string(w.Data)] {
			later = append(later, w)
		}
	}

	cfg := fastRead
	cfg.Stream = stream
	cfg.Resume = resume
	got, sum := runRead(t, cfg, nil)
	checkExactlyOnce(t, later, asRecords(got))
	checkCounters(t, sum, len(later))
}

func TestBeamSplitBeforeStart(t *testing.T) {
	client, stream := setup(t, 2)
	from := map[string]int{}
	want := keyed(600, 20, from)
	put(t, client, stream, want)
	shards, err := ListShards(testCtx(t), client, stream)
	if err != nil {
		t.Fatal(err)
	}
	splitShard(t, client, stream, shards[0])
	more := keyed(600, 20, from) // same keys, after the split
	put(t, client, stream, more)
	want = append(want, more...)

	cfg := fastRead
	cfg.Stream = stream
	got, sum := runRead(t, cfg, nil)
	checkExactlyOnce(t, want, asRecords(got))
	checkParentsFirst(t, client, stream, got)
	checkCounters(t, sum, len(want))
}

func TestBeamSplitWhileRunning(t *testing.T) {
	client, stream := setup(t, 2)
	from := map[string]int{}
	want := keyed(600, 20, from)
	put(t, client, stream, want)
	more := keyed(600, 20, from) // same keys, put after the split

	cfg := fastRead
	cfg.Stream = stream
	got, sum := runRead(t, cfg, func(key string) {
		deadline := time.Now().Add(20 * time.Second)
		for len(collectedOf(key)) == 0 {
			if time.Now().After(deadline) {
				t.Error("no record read within 20s")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		shards, err := ListShards(context.Background(), client, stream)
		if err != nil {
			t.Error(err)
			return
		}
		splitShard(t, client, stream, shards[0])
		put(t, client, stream, more)
	})
	want = append(want, more...)
	checkExactlyOnce(t, want, asRecords(got))
	checkParentsFirst(t, client, stream, got)
	checkCounters(t, sum, len(want))
}

func TestShardTracker(t *testing.T) {
	start := shardRestriction{Shard: "s", Kind: int(TrimHorizon)}
	tr := newShardTracker(start)
	if !tr.TryClaim(shardClaim{Pos: After("5")}) || !tr.TryClaim(shardClaim{Pos: After("9")}) {
		t.Fatal("claims refused")
	}
	p, r, err := tr.TrySplit(0)
	if err != nil {
		t.Fatal(err)
	}
	if pr := p.(shardRestriction); !pr.Done || pr.Kind != int(TrimHorizon) {
		t.Errorf("primary %v", pr)
	}
	if rr := r.(shardRestriction); rr.Done || rr.position() != After("9") || rr.Shard != "s" {
		t.Errorf("residual %v, want after 9", rr)
	}
	if !tr.IsDone() || tr.TryClaim(shardClaim{Pos: After("10")}) {
		t.Error("tracker claims after a checkpoint")
	}

	// A checkpoint before any claim resumes at the start.
	tr = newShardTracker(shardRestriction{Shard: "s", Kind: int(AtTimestamp), Millis: 1700000000123})
	_, r, _ = tr.TrySplit(0.5)
	if rr := r.(shardRestriction); rr.position() != AtTime(time.UnixMilli(1700000000123)) {
		t.Errorf("residual %v", rr)
	}

	// The end of a closed shard: done, nothing to split off.
	tr = newShardTracker(start)
	if !tr.TryClaim(shardClaim{Pos: After("3"), End: true}) || !tr.IsDone() {
		t.Fatal("closed claim")
	}
	if _, r, _ := tr.TrySplit(0); r != nil {
		t.Errorf("residual %v after the end", r)
	}
}

func TestDiscoverTracker(t *testing.T) {
	tr := &discoverTracker{}
	if !tr.TryClaim(discoverClaim{New: []string{"a", "b"}, ListMillis: 5}) {
		t.Fatal("claim refused")
	}
	p, r, _ := tr.TrySplit(0)
	if pr := p.(discoverRestriction); !pr.Done {
		t.Errorf("primary %+v", pr)
	}
	rr := r.(discoverRestriction)
	if rr.Done || !rr.Listed || rr.ListMillis != 5 || len(rr.Seen) != 2 {
		t.Errorf("residual %+v", rr)
	}
	if tr.TryClaim(discoverClaim{New: []string{"c"}}) {
		t.Error("claim after a checkpoint")
	}
}

// countFn counts the records of a page under one key.
type countFn struct{}

func (countFn) ProcessElement(p ShardPage, emit func(string, int)) { emit("n", len(p.Records)) }

// firedFn records when each window's count came out of the GroupByKey.
type firedFn struct{ Key string }

type firing struct {
	At     time.Time
	Window beam.Window
	Count  int
}

var fired = struct {
	sync.Mutex
	m map[string][]firing
}{m: map[string][]firing{}}

func (f *firedFn) ProcessElement(w beam.Window, _ string, vals func(*int) bool) {
	n, v := 0, 0
	for vals(&v) {
		n += v
	}
	fired.Lock()
	fired.m[f.Key] = append(fired.m[f.Key], firing{At: time.Now(), Window: w, Count: n})
	fired.Unlock()
}

// TestBeamWatermark checks that the source's watermark moves while it
// runs: event-time windows over the pages close before the source ends
// (idle shards do not hold the watermark back), and no record is dropped
// as late.
func TestBeamWatermark(t *testing.T) {
	client, stream := setup(t, 2)
	want := keyed(500, 10, map[string]int{})
	put(t, client, stream, want)

	cfg := fastRead
	cfg.Stream = stream
	cfg.StopAfterIdle = 4 * time.Second
	var key string
	got, _ := runRead(t, cfg, nil, func(s beam.Scope, k string, pages beam.PCollection) {
		key = k
		w := beam.WindowInto(s, window.NewFixedWindows(500*time.Millisecond), pages)
		counts := beam.ParDo(s, countFn{}, w)
		beam.ParDo0(s, &firedFn{Key: k}, beam.GroupByKey(s, counts))
	})
	end := time.Now()
	checkExactlyOnce(t, want, asRecords(got))
	fired.Lock()
	fs := fired.m[key]
	fired.Unlock()
	total := 0
	first := end
	for _, f := range fs {
		total += f.Count
		if f.At.Before(first) {
			first = f.At
		}
	}
	if total != len(want) {
		t.Errorf("windows counted %d records, want %d (late data dropped?)", total, len(want))
	}
	if lead := end.Sub(first); lead < time.Second {
		t.Errorf("first window fired %v before the source ended, want ≥ 1s: the watermark does not advance while reading", lead)
	} else {
		t.Logf("%d window(s); the first fired %v before the end", len(fs), lead.Round(time.Millisecond))
	}
}

// flaky counts calls and throttles every third GetRecords call.
type flaky struct {
	API
	gets, iters, throttled atomic.Int64
}

func (f *flaky) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if f.gets.Add(1)%3 == 0 {
		f.throttled.Add(1)
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
	}
	return f.API.GetRecords(ctx, in, opts...)
}

func (f *flaky) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.iters.Add(1)
	return f.API.GetShardIterator(ctx, in, opts...)
}

// TestBeamThrottled reads through injected throttling, and checks that
// checkpoints (ResumeProcessingIn) keep the shard iterator: about one
// GetShardIterator call per shard, not one per poll.
func TestBeamThrottled(t *testing.T) {
	client, stream := setup(t, 2)
	want := keyed(400, 10, map[string]int{})
	put(t, client, stream, want)
	f := &flaky{API: client}
	old := newAPI
	newAPI = func(context.Context) (API, error) { return f, nil }
	defer func() { newAPI = old }()

	cfg := fastRead
	cfg.Stream = stream
	got, sum := runRead(t, cfg, nil)
	checkExactlyOnce(t, want, asRecords(got))
	if sum[KinesisThrottles] == 0 || sum[KinesisThrottles] != f.throttled.Load() {
		t.Errorf("counter %s = %d, %d throttles injected", KinesisThrottles, sum[KinesisThrottles], f.throttled.Load())
	}
	polls := f.gets.Load()
	if its := f.iters.Load(); its > 4 || polls < 10 {
		t.Errorf("%d GetShardIterator calls for %d GetRecords calls on 2 shards: iterators are not kept across checkpoints", its, polls)
	} else {
		t.Logf("%d GetShardIterator, %d GetRecords calls (%d throttled)", its, polls, f.throttled.Load())
	}
}

// splitter is the Kinesis client of a readFn whose runner splits the
// restriction (a checkpoint) while a GetRecords call is in flight, as
// prism does when a bundle shows no progress for a tick.
type splitter struct {
	API
	mu       sync.Mutex
	rt       *sdf.LockRTracker // split during the next GetRecords, then nil
	residual any
	calls    int // GetRecords calls
}

func (s *splitter) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := s.API.GetRecords(ctx, in, opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.rt != nil {
		_, s.residual, _ = s.rt.TrySplit(0.5)
		s.rt = nil
	}
	return out, err
}

// TestReadSplitWhileReading drives readFn as a runner would: the first
// call's restriction is split while its first page is read. The page must
// not be emitted by the split call (its claim fails), nor read again by
// the residual: the residual emits it from the kept reader, so a shard
// split on every read still moves on. A split while a page is processed
// downstream ends the call without another read.
func TestReadSplitWhileReading(t *testing.T) {
	client, stream := setup(t, 1)
	want := keyed(1500, 7, map[string]int{})
	put(t, client, stream, want)
	shard := "shardId-000000000000"
	api := &splitter{API: client}
	f := &readFn{Run: "split-" + stream, Stream: stream, PollMs: 1, api: api}
	w := shardWork{Shard: shard, Kind: int(TrimHorizon)}
	var got []Record
	emit := func(_ beam.EventTime, p ShardPage) {
		for _, r := range p.Records {
			got = append(got, Record{Data: r.Data, Sequence: r.Sequence, PartitionKey: r.PartitionKey})
		}
	}
	call := func(rest shardRestriction, onEmit func(*sdf.LockRTracker)) (*sdf.LockRTracker, sdf.ProcessContinuation) {
		t.Helper()
		rt := sdf.NewLockRTracker(newShardTracker(rest))
		em := emit
		if onEmit != nil {
			em = func(et beam.EventTime, p ShardPage) { emit(et, p); onEmit(rt) }
		}
		pc, err := f.ProcessElement(testCtx(t), &watermarkEstimator{}, rt, w, em)
		if err != nil {
			t.Fatal(err)
		}
		return rt, pc
	}

	// 1. Split while the first page (1,000 records, FirstLimit) is read.
	rt := sdf.NewLockRTracker(newShardTracker(f.CreateInitialRestriction(w)))
	api.rt = rt
	if pc, err := f.ProcessElement(testCtx(t), &watermarkEstimator{}, rt, w, emit); err != nil || pc.ShouldResume() {
		t.Fatalf("split call: %v, resume %v; want it to stop", err, pc.ShouldResume())
	}
	if len(got) != 0 || api.calls != 1 {
		t.Fatalf("split call emitted %d records in %d GetRecords calls, want 0 in 1", len(got), api.calls)
	}
	// 2. The residual emits the held page without a call, and is split
	// while that page is processed: it stops without reading on.
	var residual any
	_, pc := call(api.residual.(shardRestriction), func(rt *sdf.LockRTracker) {
		if residual == nil {
			_, residual, _ = rt.TrySplit(0.5)
		}
	})
	if pc.ShouldResume() || len(got) != 1000 || api.calls != 1 {
		t.Fatalf("residual: resume %v, %d records emitted, %d GetRecords calls; want stop, 1000, 1", pc.ShouldResume(), len(got), api.calls)
	}
	// 3. Its residual reads on from the kept reader: the other 500, then
	// the tip (an empty page: resume later).
	_, pc = call(residual.(shardRestriction), nil)
	if !pc.ShouldResume() || api.calls != 3 {
		t.Errorf("last call: resume %v, %d GetRecords calls in all; want resume, 3", pc.ShouldResume(), api.calls)
	}
	checkExactlyOnce(t, want, got)
}

func TestReaderUnread(t *testing.T) {
	client, stream := setup(t, 1)
	put(t, client, stream, keyed(30, 3, map[string]int{}))
	r := NewShardReader(client, stream, "shardId-000000000000", Position{}, ReaderOptions{Limit: 20, MinInterval: -1})
	from := r.Position()
	p1, err := r.Next(testCtx(t))
	if err != nil || len(p1.Records) != 20 {
		t.Fatalf("first page: %d records, %v", len(p1.Records), err)
	}
	r.Unread(p1, from)
	if !samePosition(r.Position(), from) {
		t.Errorf("position after Unread %v, want %v", r.Position(), from)
	}
	calls := r.Stats().Calls
	again, err := r.Next(testCtx(t))
	if err != nil || r.Stats().Calls != calls || len(again.Records) != 20 || again.LastSequence != p1.LastSequence {
		t.Fatalf("Next after Unread: %d records to %s, %d calls, %v; want the held page (to %s) without a call",
			len(again.Records), again.LastSequence, r.Stats().Calls-calls, err, p1.LastSequence)
	}
	if !samePosition(r.Position(), p1.Position) {
		t.Errorf("position %v, want %v", r.Position(), p1.Position)
	}
	p2, err := r.Next(testCtx(t))
	if err != nil || len(p2.Records) != 10 || p2.Records[0].Sequence <= p1.LastSequence {
		t.Errorf("page after the held one: %d records, %v; want the 10 after it", len(p2.Records), err)
	}
}

// TestReadChildAfterDurableParentEnd: a reader that never saw the parent
// (another process read it, or the job was restored from runner state in
// which the parent's restriction is done) starts a child once the
// checkpoint table records that the parent ended, and not before.
func TestReadChildAfterDurableParentEnd(t *testing.T) {
	client, stream := setup(t, 1)
	put(t, client, stream, keyed(50, 3, map[string]int{}))
	shards, err := ListShards(testCtx(t), client, stream)
	if err != nil {
		t.Fatal(err)
	}
	parent := shards[0]
	splitShard(t, client, stream, parent)
	put(t, client, stream, keyed(60, 5, map[string]int{})) // into the children
	shards, err = ListShards(testCtx(t), client, stream)
	if err != nil {
		t.Fatal(err)
	}
	var child string
	for _, s := range shards {
		if s.ParentID == parent.ID && child == "" {
			child = s.ID
		}
	}
	// The parent's records, read to its end (as the job before the
	// restore did).
	r := NewShardReader(client, stream, parent.ID, Position{Kind: TrimHorizon}, fast)
	parentRecs := drain(t, r, true)

	testenv.DynamoDB(t)
	ddb, err := dynamodbio.NewClient(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	table := testenv.UniqueName(t, "ckpt")
	if err := dynamodbio.EnsureCheckpointTable(testCtx(t), ddb, table); err != nil {
		t.Fatal(err)
	}
	cps := &dynamodbio.Checkpoints{API: ddb, Table: table, Consumer: "job"}

	f := &readFn{Run: "restored-" + stream, Stream: stream, PollMs: 1, CheckpointTable: table, Consumer: "job"}
	if err := f.Setup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	w := shardWork{Shard: child, Parents: []string{parent.ID}, Kind: int(TrimHorizon)}
	read := func() (int, sdf.ProcessContinuation) {
		t.Helper()
		n := 0
		rt := sdf.NewLockRTracker(newShardTracker(f.CreateInitialRestriction(w)))
		pc, err := f.ProcessElement(testCtx(t), &watermarkEstimator{}, rt, w, func(_ beam.EventTime, p ShardPage) { n += len(p.Records) })
		if err != nil {
			t.Fatal(err)
		}
		return n, pc
	}
	// Committed, but not to the end: the child waits.
	last := parentRecs[len(parentRecs)-1].Sequence
	if _, err := cps.Commit(testCtx(t), stream, parent.ID, "", parentRecs[len(parentRecs)/2].Sequence, false); err != nil {
		t.Fatal(err)
	}
	if n, pc := read(); n != 0 || !pc.ShouldResume() {
		t.Fatalf("child read %d records before its parent ended (resume %v)", n, pc.ShouldResume())
	}
	// The rest, and the parent's end page: the child is read.
	if _, err := cps.Commit(testCtx(t), stream, parent.ID, parentRecs[len(parentRecs)/2].Sequence, last, true); err != nil {
		t.Fatal(err)
	}
	f.checked = map[string]time.Time{} // ask the table again now
	if n, _ := read(); n == 0 {
		t.Fatal("the child of an ended parent was not read")
	}
}
