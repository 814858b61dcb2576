package kinesisio

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
)

// readSpan is one stretch of reading a shard under a lease: from Begin to
// done.
type readSpan struct {
	owner      string
	from, till time.Time
}

// leaseWorld runs Leasers over one checkpoint table of the DynamoDB
// stand-in, each with a reader per shard that reads (Begin … done) every
// few milliseconds and records what it read when.
type leaseWorld struct {
	t      *testing.T
	table  string
	api    dynamodbio.CheckpointAPI
	shards []string
	d      time.Duration

	mu     sync.Mutex
	spans  map[string][]readSpan // by shard
	events []LeaseEvent
	// stopReaders stops the readers of the instance started last (its
	// Leaser runs on): a process whose runner stopped running its readers.
	stopReaders func()
}

func newLeaseWorld(t *testing.T, shards int, d time.Duration) *leaseWorld {
	testenv.DynamoDB(t)
	api, err := dynamodbio.NewClient(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	table := testenv.UniqueName(t, "leases")
	if err := dynamodbio.EnsureCheckpointTable(testCtx(t), api, table); err != nil {
		t.Fatal(err)
	}
	w := &leaseWorld{t: t, table: table, api: api, d: d, spans: map[string][]readSpan{}}
	for i := range shards {
		w.shards = append(w.shards, fmt.Sprintf("shardId-%012d", i))
	}
	return w
}

// start starts an instance; its readers stop with the returned cancel
// (the instance dying: its leases are not released).
func (w *leaseWorld) start(owner string) (*Leaser, context.CancelFunc) {
	cps := &dynamodbio.Checkpoints{API: w.api, Table: w.table, Consumer: "job", Owner: owner}
	l := NewLeaser(cps, "raw", owner, w.d, func(e LeaseEvent) {
		w.mu.Lock()
		w.events = append(w.events, e)
		w.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range w.shards {
		wg.Go(func() {
			for ctx.Err() == nil {
				if rctx, _, done, ok := l.Begin(ctx, s); ok {
					from := time.Now()
					select { // a GetRecords call
					case <-rctx.Done():
					case <-time.After(15 * time.Millisecond):
					}
					till := time.Now()
					done()
					w.mu.Lock()
					w.spans[s] = append(w.spans[s], readSpan{owner, from, till})
					w.mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	w.mu.Lock()
	w.stopReaders = func() { cancel(); wg.Wait() }
	w.mu.Unlock()
	return l, func() {
		cancel()
		wg.Wait()
		l.cancel() // its rounds stop; nothing is released
		<-l.finished
	}
}

// holders returns who read each shard last, and how many shards each
// read, over the last window.
func (w *leaseWorld) readers(window time.Duration) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	since := time.Now().Add(-window)
	out := map[string]int{}
	for _, s := range w.shards {
		sp := w.spans[s]
		if len(sp) > 0 && sp[len(sp)-1].till.After(since) {
			out[sp[len(sp)-1].owner]++
		}
	}
	return out
}

// waitFor waits until exactly the owners read shards, as many each as
// shares says (in any order).
func (w *leaseWorld) waitFor(owners []string, shares []int, limit time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	want := append([]int(nil), shares...)
	sort.Ints(want)
	for {
		got := w.readers(200 * time.Millisecond)
		var ns []int
		var who []string
		for o, n := range got {
			ns, who = append(ns, n), append(who, o)
		}
		sort.Ints(ns)
		sort.Strings(who)
		if fmt.Sprint(ns, who) == fmt.Sprint(want, owners) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			w.t.Fatalf("after %v: shards read per instance %v, want %v shares among %v", limit, got, want, owners)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkNoOverlap: no two instances read one shard at the same time.
func (w *leaseWorld) checkNoOverlap() {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for s, sp := range w.spans {
		sort.Slice(sp, func(i, j int) bool { return sp[i].from.Before(sp[j].from) })
		for i := 1; i < len(sp); i++ {
			n++
			if sp[i].owner != sp[i-1].owner && sp[i].from.Before(sp[i-1].till) {
				w.t.Errorf("shard %s read by %s from %v while %s read it until %v", s,
					sp[i].owner, sp[i].from.Format("15:04:05.000"), sp[i-1].owner, sp[i-1].till.Format("15:04:05.000"))
			}
		}
	}
	if n == 0 {
		w.t.Error("nothing was read")
	}
}

// TestLeaserShares: three instances share eight shards 3/3/2; a fourth
// that joins gets its share from the others' releases; one that dies has
// its shards taken over within the lease duration (plus a round); one that
// stops frees its shards at once. Never do two instances read one shard at
// the same time.
func TestLeaserShares(t *testing.T) {
	const d = 1500 * time.Millisecond
	w := newLeaseWorld(t, 8, d)
	a, stopA := w.start("a")
	_, stopB := w.start("b")
	_, stopC := w.start("c")
	defer stopB()
	took := w.waitFor([]string{"a", "b", "c"}, []int{3, 3, 2}, 10*d)
	t.Logf("three instances: 3/3/2 after %v", took)

	// A fourth joins: 2/2/2/2.
	dl, stopD := w.start("d")
	took = w.waitFor([]string{"a", "b", "c", "d"}, []int{2, 2, 2, 2}, 10*d)
	t.Logf("a fourth instance joined: 2/2/2/2 after %v", took)

	// c dies: its two shards go to the others (3/3/2) once its leases
	// lapse, and not before.
	stopC()
	took = w.waitFor([]string{"a", "b", "d"}, []int{3, 3, 2}, 3*d)
	t.Logf("c died: its shards taken over after %v (lease %v)", took, d)
	if took < d-d/3 {
		t.Errorf("c's shards were taken %v after it died, before its leases could lapse (%v)", took, d)
	}
	if took > d+d {
		t.Errorf("take-over took %v; want within the lease duration and a round (%v)", took, d+d)
	}

	// d stops cleanly: its shards are free at once.
	stopD()
	dl.Stop(context.Background())
	took = w.waitFor([]string{"a", "b"}, []int{4, 4}, 3*d)
	t.Logf("d stopped: its shards taken after %v", took)
	if took > d {
		t.Errorf("a stopped instance's shards waited %v; want less than the lease duration", took)
	}
	stopA()
	a.Stop(context.Background())
	w.checkNoOverlap()

	// The history: every holding starts with an acquired event.
	w.mu.Lock()
	defer w.mu.Unlock()
	acquired := 0
	for _, e := range w.events {
		if e.Event == "acquired" {
			acquired++
		}
	}
	if acquired < 8+2+2 {
		t.Errorf("%d leases acquired in all; want at least 12 (8 at first, 2 for d, 2 from c)", acquired)
	}
}

// TestLeaserGivesUpUnreadShards: an instance whose readers stop asking
// for their shards (its runner stopped running them) stops renewing their
// leases and beating its heartbeat, though its Leaser runs on, so another
// instance takes every shard over.
func TestLeaserGivesUpUnreadShards(t *testing.T) {
	const d = 1500 * time.Millisecond
	w := newLeaseWorld(t, 6, d)
	_, stopA := w.start("a")
	defer stopA()
	b, stopB := w.start("b")
	defer stopB()
	w.waitFor([]string{"a", "b"}, []int{3, 3}, 10*d)
	w.mu.Lock()
	stop := w.stopReaders // b's
	w.mu.Unlock()
	stop()
	took := w.waitFor([]string{"a"}, []int{6}, b.recent()+4*d)
	t.Logf("b's readers stopped: a reads every shard after %v", took)
	if n := b.Held(); n != 0 {
		t.Errorf("b still holds %d leases its readers no longer ask for", n)
	}
	w.checkNoOverlap()
}
