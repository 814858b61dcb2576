package kinesisio

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fineo-io/ingest/internal/testenv"
)

// setup starts kinesalite, creates a stream with n shards and returns a
// client made by NewClient and the stream name.
func setup(t *testing.T, shards int) (*kinesis.Client, string) {
	t.Helper()
	testenv.Kinesis(t)
	client, err := NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	name := testenv.UniqueName(t, "kin")
	testenv.CreateStream(t, client, name, shards)
	return client, name
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fast reads without pacing.
var fast = ReaderOptions{MinInterval: -1}

// keyed returns n records over k partition keys, each record's data
// "<key>#<index within the key>".
func keyed(n, k int, from map[string]int) []PutRecord {
	recs := make([]PutRecord, n)
	for i := range recs {
		key := fmt.Sprintf("tenant%d/metric%02d", i%k%3, i%k)
		recs[i] = PutRecord{Data: fmt.Appendf(nil, "%s#%06d", key, from[key]), PartitionKey: key}
		from[key]++
	}
	return recs
}

func put(t *testing.T, api API, stream string, recs []PutRecord) {
	t.Helper()
	st, failed, err := PutRecords(testCtx(t), api, stream, recs, WriterOptions{})
	if err != nil || len(failed) > 0 || st.Written != int64(len(recs)) {
		t.Fatalf("PutRecords: written %d of %d, %d failed (%v), err %v", st.Written, len(recs), len(failed), failed, err)
	}
}

// drain reads r until the end of a closed shard (closed) or until an empty
// page (open shard: the current end on kinesalite).
func drain(t *testing.T, r *ShardReader, closed bool) []Record {
	t.Helper()
	ctx := testCtx(t)
	var out []Record
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatalf("shard %s: no end after %d pages", r.ShardID(), i)
		}
		p, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("shard %s: %v", r.ShardID(), err)
		}
		out = append(out, p.Records...)
		if p.ShardClosed {
			if !closed {
				t.Fatalf("shard %s reported closed", r.ShardID())
			}
			return out
		}
		if !closed && len(p.Records) == 0 {
			return out
		}
	}
}

// readAll reads every shard of stream in ReadyShards order and returns the
// records and the order in which shards were read.
func readAll(t *testing.T, api API, stream string) ([]Record, []string) {
	t.Helper()
	shards, err := ListShards(testCtx(t), api, stream)
	if err != nil {
		t.Fatal(err)
	}
	finished := map[string]bool{}
	var recs []Record
	var order []string
	for {
		ready := ReadyShards(shards, finished)
		if len(ready) == 0 {
			break
		}
		// One shard per round, the last ready one: were a child ready too
		// early, it would be read before its parents.
		s := ready[len(ready)-1]
		recs = append(recs, drain(t, NewShardReader(api, stream, s.ID, Position{}, fast), s.Closed())...)
		finished[s.ID] = true // open ones too: read to the current end
		order = append(order, s.ID)
	}
	if len(finished) != len(shards) {
		t.Fatalf("read %d of %d shards", len(finished), len(shards))
	}
	return recs, order
}

// checkExactlyOnce checks that got holds every record of want exactly once
// and, per partition key, in the order of want.
func checkExactlyOnce(t *testing.T, want []PutRecord, got []Record) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Data)]++
	}
	for _, w := range want {
		if n := seen[string(w.Data)]; n != 1 {
			t.Errorf("record %q read %d times", w.Data, n)
		}
		delete(seen, string(w.Data))
	}
	for d, n := range seen {
		t.Errorf("unexpected record %q read %d times", d, n)
	}
	wantOrder := map[string][]string{}
	for _, w := range want {
		wantOrder[w.PartitionKey] = append(wantOrder[w.PartitionKey], string(w.Data))
	}
	gotOrder := map[string][]string{}
	for _, r := range got {
		gotOrder[r.PartitionKey] = append(gotOrder[r.PartitionKey], string(r.Data))
	}
	for k, w := range wantOrder {
		if g := gotOrder[k]; strings.Join(g, ",") != strings.Join(w, ",") {
			t.Errorf("key %s: read order differs from write order:\n got %v\nwant %v", k, head(g), head(w))
		}
	}
}

func head(s []string) []string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func TestReadAllShards(t *testing.T) {
	client, stream := setup(t, 4)
	want := keyed(2000, 40, map[string]int{})
	put(t, client, stream, want)

	shards, err := ListShards(testCtx(t), client, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 4 {
		t.Fatalf("%d shards, want 4", len(shards))
	}
	var got []Record
	perShard := map[string]int{}
	for _, s := range shards {
		r := NewShardReader(client, stream, s.ID, Position{}, ReaderOptions{MinInterval: -1, Limit: 300})
		recs := drain(t, r, false)
		perShard[s.ID] = len(recs)
		got = append(got, recs...)
		st := r.Stats()
		if st.Records != int64(len(recs)) || st.Calls < int64(len(recs)/300+1) || st.IteratorCalls != 1 {
			t.Errorf("shard %s: stats %+v for %d records", s.ID, st, len(recs))
		}
		if len(recs) > 0 && r.Position() != After(recs[len(recs)-1].Sequence) {
			t.Errorf("shard %s: position %v, want after the last record", s.ID, r.Position())
		}
	}
	for id, n := range perShard {
		if n == 0 {
			t.Errorf("shard %s got no record: partition keys do not spread", id)
		}
	}
	checkExactlyOnce(t, want, got)
}

func TestResume(t *testing.T) {
	client, stream := setup(t, 1)
	want := keyed(300, 5, map[string]int{})
	put(t, client, stream, want)
	shard := "shardId-000000000000"

	for _, stopAfter := range []int{0, 1, 2, 4, 5, 6} { // pages of 70: 5 pages hold all 300
		t.Run(fmt.Sprintf("after %d pages", stopAfter), func(t *testing.T) {
			ctx := testCtx(t)
			r := NewShardReader(client, stream, shard, Position{}, ReaderOptions{MinInterval: -1, Limit: 70})
			var got []Record
			var pos Position
			for range stopAfter {
				p, err := r.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, p.Records...)
				pos = p.Position
				if pos != r.Position() {
					t.Fatalf("page position %v, reader position %v", pos, r.Position())
				}
			}
			// A new reader from the checkpoint continues exactly there.
			r2 := NewShardReader(client, stream, shard, pos, ReaderOptions{MinInterval: -1, Limit: 70})
			got = append(got, drain(t, r2, false)...)
			checkExactlyOnce(t, want, got)
		})
	}
}

func TestReshard(t *testing.T) {
	client, stream := setup(t, 2)
	ctx := testCtx(t)
	from := map[string]int{}
	want := keyed(400, 30, from)
	put(t, client, stream, want)

	// Split shard 0 at the middle of its hash range.
	shards, err := ListShards(ctx, client, stream)
	if err != nil {
		t.Fatal(err)
	}
	lo, _ := new(big.Int).SetString(shards[0].HashKeyStart, 10)
	hi, _ := new(big.Int).SetString(shards[0].HashKeyEnd, 10)
	mid := new(big.Int).Add(lo, hi)
	mid.Rsh(mid, 1)
	if _, err := client.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: aws.String(shards[0].ID),
		NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatal(err)
	}
	if err := WaitActive(ctx, client, stream); err != nil {
		t.Fatal(err)
	}
	more := keyed(400, 30, from) // same keys, after the split
	put(t, client, stream, more)
	want = append(want, more...)

	// Merge the upper child of the split with shard 1 (adjacent ranges).
	shards, err = ListShards(ctx, client, stream)
	if err != nil {
		t.Fatal(err)
	}
	var upper string
	for _, s := range shards {
		if s.ParentID == shards[0].ID && s.HashKeyStart == mid.String() {
			upper = s.ID
		}
	}
	if upper == "" {
		t.Fatalf("no child of the split starts at %s: %+v", mid, shards)
	}
	if _, err := client.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String(stream), ShardToMerge: aws.String(upper),
		AdjacentShardToMerge: aws.String(shards[1].ID),
	}); err != nil {
		t.Fatal(err)
	}
	if err := WaitActive(ctx, client, stream); err != nil {
		t.Fatal(err)
	}
	more = keyed(400, 30, from)
	put(t, client, stream, more)
	want = append(want, more...)

	shards, err = ListShards(ctx, client, stream)
	if err != nil {
		t.Fatal(err)
	}
	// 0, 1 (closed) → split 2, 3 (3 closed) → merge 4 (parents 3 and 1).
	if len(shards) != 5 {
		t.Fatalf("%d shards after a split and a merge, want 5: %+v", len(shards), shards)
	}
	got, order := readAll(t, client, stream)
	at := map[string]int{}
	for i, id := range order {
		at[id] = i
	}
	for _, s := range shards {
		for _, p := range []string{s.ParentID, s.AdjacentParentID} {
			if p != "" && at[p] >= at[s.ID] {
				t.Errorf("shard %s read before its parent %s (order %v)", s.ID, p, order)
			}
		}
	}
	checkExactlyOnce(t, want, got)
}

func TestReadyShards(t *testing.T) {
	// 0 split into 2 and 3; 3 merged with 1 into 4. 5 is a child of a
	// parent that aged out of retention.
	all := []Shard{
		{ID: "0", EndSeq: "9"},
		{ID: "1", EndSeq: "9"},
		{ID: "2", ParentID: "0"},
		{ID: "3", ParentID: "0", EndSeq: "9"},
		{ID: "4", ParentID: "3", AdjacentParentID: "1"},
		{ID: "5", ParentID: "gone"},
	}
	ids := func(ss []Shard) string {
		var s []string
		for _, x := range ss {
			s = append(s, x.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		finished []string
		want     string
	}{
		{nil, "0,1,5"},
		{[]string{"0"}, "1,2,3,5"},
		{[]string{"1"}, "0,5"},
		{[]string{"0", "3"}, "1,2,5"}, // 4 waits for its adjacent parent 1
		{[]string{"0", "1", "3"}, "2,4,5"},
		{[]string{"0", "1", "2", "3", "4", "5"}, ""},
	} {
		fin := map[string]bool{}
		for _, id := range tc.finished {
			fin[id] = true
		}
		if got := ids(ReadyShards(all, fin)); got != tc.want {
			t.Errorf("finished %v: ready %q, want %q", tc.finished, got, tc.want)
		}
	}
}

func TestPositions(t *testing.T) {
	client, stream := setup(t, 1)
	shard := "shardId-000000000000"
	ctx := testCtx(t)
	from := map[string]int{}
	a := keyed(20, 3, from)
	put(t, client, stream, a)
	time.Sleep(5 * time.Millisecond) // arrival times are in milliseconds
	t0 := time.Now()
	time.Sleep(5 * time.Millisecond)
	b := keyed(20, 3, from)
	put(t, client, stream, b)

	t.Run("at timestamp", func(t *testing.T) {
		r := NewShardReader(client, stream, shard, AtTime(t0), fast)
		checkExactlyOnce(t, b, drain(t, r, false))
	})
	t.Run("trim horizon", func(t *testing.T) {
		r := NewShardReader(client, stream, shard, Position{Kind: TrimHorizon}, fast)
		checkExactlyOnce(t, append(append([]PutRecord{}, a...), b...), drain(t, r, false))
	})
	t.Run("latest", func(t *testing.T) {
		r := NewShardReader(client, stream, shard, Position{Kind: Latest}, fast)
		p, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != 0 {
			t.Fatalf("LATEST returned %d old records", len(p.Records))
		}
		// The checkpoint of a LATEST reader without records is pinned to
		// the time it started: resuming from it loses nothing.
		pinned := p.Position
		if pinned.Kind != AtTimestamp {
			t.Fatalf("position after an empty LATEST page is %v, want AT_TIMESTAMP", pinned)
		}
		time.Sleep(5 * time.Millisecond)
		c := keyed(10, 3, from)
		put(t, client, stream, c)
		checkExactlyOnce(t, c, drain(t, r, false))
		checkExactlyOnce(t, c, drain(t, NewShardReader(client, stream, shard, pinned, fast), false))
	})
	t.Run("unknown shard", func(t *testing.T) {
		r := NewShardReader(client, stream, "shardId-000000000099", Position{}, fast)
		if _, err := r.Next(ctx); err == nil {
			t.Fatal("reading a shard that does not exist: no error")
		}
	})
}

// faulty wraps a real client and injects faults.
type faulty struct {
	API
	mu sync.Mutex

	// getRecords, when set, is asked before GetRecords call n (from 1);
	// a non-nil error is returned instead of calling the service.
	getRecords func(n int) error
	// putRecords, when set, is asked before PutRecords call n: a non-nil
	// error fails the call; entries at the indexes of fail are not sent
	// and are answered with the error code given.
	putRecords func(n int, in *kinesis.PutRecordsInput) (fail map[int]string, err error)

	getN, putN int
	puts       [][]string // the data of the entries of every PutRecords call
}

func (f *faulty) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	f.getN++
	n := f.getN
	f.mu.Unlock()
	if f.getRecords != nil {
		if err := f.getRecords(n); err != nil {
			return nil, err
		}
	}
	return f.API.GetRecords(ctx, in, opts...)
}

func (f *faulty) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.putN++
	n := f.putN
	var data []string
	for _, e := range in.Records {
		data = append(data, string(e.Data))
	}
	f.puts = append(f.puts, data)
	f.mu.Unlock()
	if f.putRecords == nil {
		return f.API.PutRecords(ctx, in, opts...)
	}
	fail, err := f.putRecords(n, in)
	if err != nil {
		return nil, err
	}
	if len(fail) == 0 {
		return f.API.PutRecords(ctx, in, opts...)
	}
	sent := &kinesis.PutRecordsInput{StreamName: in.StreamName}
	for i, e := range in.Records {
		if _, ok := fail[i]; !ok {
			sent.Records = append(sent.Records, e)
		}
	}
	var res []types.PutRecordsResultEntry
	if len(sent.Records) > 0 {
		out, err := f.API.PutRecords(ctx, sent, opts...)
		if err != nil {
			return nil, err
		}
		res = out.Records
	}
	out := &kinesis.PutRecordsOutput{}
	for i := range in.Records {
		if code, ok := fail[i]; ok {
			out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected")})
			out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
			continue
		}
		out.Records = append(out.Records, res[0])
		res = res[1:]
	}
	return out, nil
}

// sleeps records the delays asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func TestReaderFaults(t *testing.T) {
	client, stream := setup(t, 1)
	shard := "shardId-000000000000"
	want := keyed(500, 7, map[string]int{})
	put(t, client, stream, want)
	expired := &types.ExpiredIteratorException{Message: aws.String("injected")}
	throttled := &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
	internal := &types.InternalFailureException{Message: aws.String("injected")}

	for _, tc := range []struct {
		name   string
		faults map[int]error // GetRecords call number → injected error
		check  func(t *testing.T, st ReaderStats, slept []time.Duration)
	}{
		{
			name:   "expired iterator",
			faults: map[int]error{1: expired, 3: expired, 4: expired, 9: expired},
			check: func(t *testing.T, st ReaderStats, slept []time.Duration) {
				if st.ExpiredIterators != 4 || st.IteratorCalls != 5 {
					t.Errorf("stats %+v: want 4 expired iterators, 5 GetShardIterator calls", st)
				}
				if len(slept) != 0 {
					t.Errorf("backed off %v on expired iterators", slept)
				}
			},
		},
		{
			name:   "throttled",
			faults: map[int]error{2: throttled, 3: throttled, 4: throttled, 7: internal},
			check: func(t *testing.T, st ReaderStats, slept []time.Duration) {
				if st.Throttles != 3 || st.Errors != 1 || st.IteratorCalls != 1 {
					t.Errorf("stats %+v: want 3 throttles, 1 error, 1 GetShardIterator call", st)
				}
				// Backoff n is in [0, 10ms·2^(n-1)], per Next.
				bounds := []time.Duration{10, 20, 40, 10}
				if len(slept) != len(bounds) {
					t.Fatalf("backed off %d times (%v), want %d", len(slept), slept, len(bounds))
				}
				for i, d := range slept {
					if d < 0 || d > bounds[i]*time.Millisecond {
						t.Errorf("backoff %d = %v, want within [0, %v]", i+1, d, bounds[i]*time.Millisecond)
					}
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faulty{API: client, getRecords: func(n int) error { return tc.faults[n] }}
			var s sleeps
			r := NewShardReader(f, stream, shard, Position{}, ReaderOptions{MinInterval: -1, Limit: 50, BaseDelay: 10 * time.Millisecond})
			r.sleep = s.sleep
			got := drain(t, r, false)
			checkExactlyOnce(t, want, got)
			tc.check(t, r.Stats(), s.d)
		})
	}

	t.Run("budget", func(t *testing.T) {
		// Throttled on every call: Next gives up after MaxAttempts and keeps
		// its position; once the throttling ends, reading continues.
		throttle := true
		f := &faulty{API: client, getRecords: func(n int) error {
			if throttle && n > 2 {
				return throttled
			}
			return nil
		}}
		var s sleeps
		r := NewShardReader(f, stream, shard, Position{}, ReaderOptions{MinInterval: -1, Limit: 100, MaxAttempts: 4})
		r.sleep = s.sleep
		ctx := testCtx(t)
		var got []Record
		for range 2 {
			p, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Records...)
		}
		before := r.Position()
		_, err := r.Next(ctx)
		var pte *types.ProvisionedThroughputExceededException
		if !errors.As(err, &pte) || !strings.Contains(err.Error(), "gave up after 4") {
			t.Fatalf("Next under constant throttling: %v", err)
		}
		if r.Position() != before || r.Stats().Throttles != 4 || len(s.d) != 3 {
			t.Fatalf("after giving up: position %v (was %v), stats %+v, %d backoffs", r.Position(), before, r.Stats(), len(s.d))
		}
		throttle = false
		got = append(got, drain(t, r, false)...)
		checkExactlyOnce(t, want, got)
	})

	t.Run("context", func(t *testing.T) {
		f := &faulty{API: client, getRecords: func(int) error { return throttled }}
		r := NewShardReader(f, stream, shard, Position{}, fast)
		ctx, cancel := context.WithCancel(context.Background())
		r.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
		if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next with ctx cancelled during backoff: %v", err)
		}
	})
}

func TestMinInterval(t *testing.T) {
	client, stream := setup(t, 1)
	shard := "shardId-000000000000"
	put(t, client, stream, keyed(100, 3, map[string]int{}))

	for _, tc := range []struct {
		name      string
		interval  time.Duration
		between   time.Duration // fake time passing between Next calls
		wantWaits int64
		wantSleep time.Duration // each wait
	}{
		{"default paces to 5 per second", 0, 0, 9, 200 * time.Millisecond},
		{"partly elapsed", 0, 150 * time.Millisecond, 9, 50 * time.Millisecond},
		{"fully elapsed", 0, 250 * time.Millisecond, 0, 0},
		{"custom", time.Second, 0, 9, time.Second},
		{"disabled", -1, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			var slept []time.Duration
			r := NewShardReader(client, stream, shard, Position{}, ReaderOptions{MinInterval: tc.interval, Limit: 5})
			r.now = func() time.Time { return now }
			r.sleep = func(ctx context.Context, d time.Duration) error {
				slept = append(slept, d)
				now = now.Add(d)
				return nil
			}
			start := now
			ctx := testCtx(t)
			for range 10 {
				if _, err := r.Next(ctx); err != nil {
					t.Fatal(err)
				}
				now = now.Add(tc.between)
			}
			st := r.Stats()
			if st.Calls != 10 || st.Waits != tc.wantWaits || int64(len(slept)) != tc.wantWaits {
				t.Fatalf("stats %+v, slept %v: want 10 calls and %d waits", st, slept, tc.wantWaits)
			}
			for _, d := range slept {
				if d != tc.wantSleep {
					t.Fatalf("waited %v, want %v", d, tc.wantSleep)
				}
			}
			if tc.interval >= 0 {
				interval := cmpOr(tc.interval, 200*time.Millisecond)
				if elapsed := now.Sub(start); elapsed < 9*interval {
					t.Fatalf("10 calls in %v of fake time: faster than one per %v", elapsed, interval)
				}
			}
		})
	}
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

func TestPutRecordsFaults(t *testing.T) {
	client, stream := setup(t, 2)
	throttled := &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
	written := map[string]int{} // everything written to the stream by the cases

	for _, tc := range []struct {
		name  string
		n     int
		opts  WriterOptions
		fault func(n int, in *kinesis.PutRecordsInput) (map[int]string, error)
		check func(t *testing.T, recs []PutRecord, st WriteStats, failed []FailedRecord, puts [][]string, slept []time.Duration)
	}{
		{
			name: "partial failure retries only the failed entries",
			n:    20,
			fault: func(n int, in *kinesis.PutRecordsInput) (map[int]string, error) {
				if n == 1 {
					return map[int]string{1: "ProvisionedThroughputExceededException", 5: "InternalFailure", 7: "ProvisionedThroughputExceededException"}, nil
				}
				return nil, nil
			},
			check: func(t *testing.T, recs []PutRecord, st WriteStats, failed []FailedRecord, puts [][]string, slept []time.Duration) {
				if len(puts) != 2 {
					t.Fatalf("%d calls, want 2", len(puts))
				}
				want := []string{string(recs[1].Data), string(recs[5].Data), string(recs[7].Data)}
				if strings.Join(puts[1], ",") != strings.Join(want, ",") {
					t.Errorf("retry carried %v, want only the failed entries %v", puts[1], want)
				}
				if st.EntryThrottles != 2 || st.EntryErrors != 1 || st.Retries != 1 || len(failed) != 0 || st.Written != 20 {
					t.Errorf("stats %+v, %d failed", st, len(failed))
				}
			},
		},
		{
			name: "whole call throttled",
			n:    10,
			fault: func(n int, in *kinesis.PutRecordsInput) (map[int]string, error) {
				if n <= 2 {
					return nil, throttled
				}
				return nil, nil
			},
			check: func(t *testing.T, recs []PutRecord, st WriteStats, failed []FailedRecord, puts [][]string, slept []time.Duration) {
				if st.Calls != 3 || st.Throttles != 2 || st.Retries != 2 || st.Written != 10 || len(failed) != 0 {
					t.Errorf("stats %+v, %d failed", st, len(failed))
				}
				for i, d := range slept {
					if bound := 10 * time.Millisecond << i; d < 0 || d > bound {
						t.Errorf("backoff %d = %v, want within [0, %v]", i+1, d, bound)
					}
				}
			},
		},
		{
			name: "budget exhausted",
			n:    30,
			opts: WriterOptions{MaxAttempts: 3},
			fault: func(n int, in *kinesis.PutRecordsInput) (map[int]string, error) {
				fail := map[int]string{}
				for i, e := range in.Records {
					if strings.HasSuffix(string(e.Data), "0") {
						fail[i] = "ProvisionedThroughputExceededException"
					}
				}
				return fail, nil
			},
			check: func(t *testing.T, recs []PutRecord, st WriteStats, failed []FailedRecord, puts [][]string, slept []time.Duration) {
				if st.Calls != 3 || len(failed) == 0 {
					t.Fatalf("stats %+v, %d failed", st, len(failed))
				}
				for _, f := range failed {
					if !strings.HasSuffix(string(f.Record.Data), "0") || !strings.Contains(f.Reason, "gave up after 3 attempts") || !strings.Contains(f.Reason, "ProvisionedThroughputExceeded") {
						t.Errorf("failed %q: %s", f.Record.Data, f.Reason)
					}
				}
			},
		},
		{
			name: "oversized and invalid records fail at once",
			n:    10,
			check: func(t *testing.T, recs []PutRecord, st WriteStats, failed []FailedRecord, puts [][]string, slept []time.Duration) {
				if len(failed) != 2 || st.Calls != 1 || len(puts[0]) != 8 {
					t.Fatalf("stats %+v, %d failed, calls carried %d", st, len(failed), len(puts[0]))
				}
				if !strings.Contains(failed[0].Reason, "record too large") || !strings.Contains(failed[1].Reason, "empty partition key") {
					t.Errorf("reasons: %q, %q", failed[0].Reason, failed[1].Reason)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := make([]PutRecord, tc.n)
			for i := range recs {
				recs[i] = PutRecord{Data: fmt.Appendf(nil, "%s-%03d", tc.name[:5], i), PartitionKey: fmt.Sprintf("key%d", i%4)}
			}
			if strings.HasPrefix(tc.name, "oversized") {
				recs[3].Data = make([]byte, MaxRecordBytes) // plus its key: over the limit
				recs[6].PartitionKey = ""
			}
			f := &faulty{API: client, putRecords: tc.fault}
			var s sleeps
			opts := tc.opts
			opts.BaseDelay = 10 * time.Millisecond
			opts.sleep = s.sleep
			st, failed, err := PutRecords(testCtx(t), f, stream, recs, opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Written+int64(len(failed)) != int64(len(recs)) || st.Failed != int64(len(failed)) {
				t.Fatalf("written %d + failed %d != %d input records", st.Written, len(failed), len(recs))
			}
			tc.check(t, recs, st, failed, f.puts, s.d)
			isFailed := map[string]bool{}
			for _, fr := range failed {
				isFailed[string(fr.Record.Data)] = true
			}
			for _, r := range recs {
				if !isFailed[string(r.Data)] {
					written[string(r.Data)]++
				}
			}
		})
	}

	// The stream holds exactly the records reported written.
	got, _ := readAll(t, client, stream)
	for _, r := range got {
		written[string(r.Data)]--
	}
	for d, n := range written {
		if n != 0 {
			t.Errorf("record %q: written-read count %d, want 0", d, n)
		}
	}
}

func TestPutRecordsStops(t *testing.T) {
	client, _ := setup(t, 1)
	recs := keyed(50, 3, map[string]int{})
	t.Run("missing stream", func(t *testing.T) {
		st, failed, err := PutRecords(testCtx(t), client, "no-such-stream", recs, WriterOptions{})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) || st.Written != 0 || len(failed) != len(recs) || st.Calls != 1 {
			t.Fatalf("err %v, stats %+v, %d failed", err, st, len(failed))
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		st, failed, err := PutRecords(ctx, client, "no-such-stream", recs, WriterOptions{})
		if !errors.Is(err, context.Canceled) || st.Calls != 0 || len(failed) != len(recs) {
			t.Fatalf("err %v, stats %+v, %d failed", err, st, len(failed))
		}
		for _, f := range failed {
			if !strings.Contains(f.Reason, "not written") {
				t.Fatalf("reason %q", f.Reason)
			}
		}
	})
}

// fakePut answers PutRecords without a server: every entry succeeds unless
// its data is "poison", which makes the whole call invalid.
type fakePut struct {
	API
	calls [][]types.PutRecordsRequestEntry
}

func (f *fakePut) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.calls = append(f.calls, in.Records)
	for _, e := range in.Records {
		if string(e.Data) == "poison" {
			return nil, &types.InvalidArgumentException{Message: aws.String("injected")}
		}
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i := range out.Records {
		out.Records[i] = types.PutRecordsResultEntry{SequenceNumber: aws.String(fmt.Sprint(i)), ShardId: aws.String("shardId-000000000000")}
	}
	return out, nil
}

func TestPutRecordsBatching(t *testing.T) {
	big := make([]byte, 600<<10)
	for _, tc := range []struct {
		name     string
		recs     func() []PutRecord
		wantCall []int
	}{
		{"500 records per call", func() []PutRecord {
			r := make([]PutRecord, 1234)
			for i := range r {
				r[i] = PutRecord{Data: fmt.Appendf(nil, "%d", i), PartitionKey: "k"}
			}
			return r
		}, []int{500, 500, 234}},
		{"5 MiB per call", func() []PutRecord {
			r := make([]PutRecord, 30)
			for i := range r {
				r[i] = PutRecord{Data: append(fmt.Appendf(nil, "%d-", i), big...), PartitionKey: "k"}
			}
			return r
		}, []int{8, 8, 8, 6}},
		{"an invalid record is isolated", func() []PutRecord {
			r := make([]PutRecord, 10)
			for i := range r {
				r[i] = PutRecord{Data: fmt.Appendf(nil, "%d", i), PartitionKey: "k"}
			}
			r[6].Data = []byte("poison")
			return r
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := tc.recs()
			f := &fakePut{}
			st, failed, err := PutRecords(context.Background(), f, "s", recs, WriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Written+int64(len(failed)) != int64(len(recs)) {
				t.Fatalf("written %d + failed %d != %d", st.Written, len(failed), len(recs))
			}
			if tc.wantCall == nil {
				if len(failed) != 1 || string(failed[0].Record.Data) != "poison" || !strings.Contains(failed[0].Reason, "rejected") {
					t.Fatalf("failed %+v", failed)
				}
				return
			}
			var sizes []int
			next := 0
			for _, c := range f.calls {
				sizes = append(sizes, len(c))
				bytes := 0
				for _, e := range c {
					bytes += len(e.Data) + len(aws.ToString(e.PartitionKey))
					if string(e.Data) != string(recs[next].Data) {
						t.Fatalf("record %d out of order", next)
					}
					next++
				}
				if bytes > MaxPutBytes {
					t.Errorf("call of %d bytes", bytes)
				}
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.wantCall) {
				t.Errorf("call sizes %v, want %v", sizes, tc.wantCall)
			}
		})
	}
}

// TestEventPartitionKeySpreads: the staged records of one metric, keyed by
// event id, land on every shard of the stream, evenly; the same id always
// on the same shard.
func TestEventPartitionKeySpreads(t *testing.T) {
	client, stream := setup(t, 4)
	var entries []types.PutRecordsRequestEntry
	for i := range 400 {
		id := fmt.Sprintf("%08x-0000-5000-8000-%012x", i*2654435761, i) // event-id-like text
		entries = append(entries, types.PutRecordsRequestEntry{Data: []byte("harbor/weather"), PartitionKey: aws.String(EventPartitionKey(id))})
	}
	shardOf := map[string]string{}
	perShard := map[string]int{}
	for round := range 2 {
		out, err := client.PutRecords(testCtx(t), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatal(err)
		}
		for i, r := range out.Records {
			key := aws.ToString(entries[i].PartitionKey)
			if round == 1 && shardOf[key] != aws.ToString(r.ShardId) {
				t.Fatalf("id %s went to %s, then to %s", key, shardOf[key], aws.ToString(r.ShardId))
			}
			shardOf[key] = aws.ToString(r.ShardId)
			if round == 0 {
				perShard[aws.ToString(r.ShardId)]++
			}
		}
	}
	if len(perShard) != 4 {
		t.Fatalf("one metric's records used %d of 4 shards: %v", len(perShard), perShard)
	}
	for sh, n := range perShard {
		if n < 50 {
			t.Errorf("shard %s got %d of 400 records: %v", sh, n, perShard)
		}
	}
}

// TestReaderFirstLimit checks that a reader's first GetRecords call asks
// for FirstLimit records and the later ones for Limit.
func TestReaderFirstLimit(t *testing.T) {
	client, stream := setup(t, 1)
	put(t, client, stream, keyed(2500, 7, map[string]int{}))
	for _, tc := range []struct {
		name  string
		o     ReaderOptions
		pages []int
	}{
		{"default first limit", ReaderOptions{Limit: 2000}, []int{1000, 1500, 0}},
		{"first limit set", ReaderOptions{Limit: 2000, FirstLimit: 100}, []int{100, 2000, 400, 0}},
		{"first limit above the limit", ReaderOptions{Limit: 600, FirstLimit: 5000}, []int{600, 600, 600, 600, 100, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.MinInterval = -1
			r := NewShardReader(client, stream, "shardId-000000000000", Position{}, tc.o)
			var got []int
			for range tc.pages {
				p, err := r.Next(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, len(p.Records))
			}
			if !slices.Equal(got, tc.pages) {
				t.Errorf("page sizes %v, want %v", got, tc.pages)
			}
		})
	}
}
