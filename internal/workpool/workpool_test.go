package workpool

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestOrderAndBound(t *testing.T) {
	for _, tc := range []struct {
		name           string
		workers, depth int
	}{
		{"one worker", 1, 1},
		{"defaults", 0, 0},
		{"wide", 4, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inFlight, maxInFlight atomic.Int64
			busy := map[int]*atomic.Bool{}
			for w := 0; w < 64; w++ {
				busy[w] = &atomic.Bool{}
			}
			p := New(Options{Workers: tc.workers, Depth: tc.depth}, func(w int, in int) int {
				// A worker's state is its own: never two jobs at once on one index.
				if busy[w].Swap(true) {
					t.Errorf("worker %d ran two jobs at once", w)
				}
				time.Sleep(time.Duration(in%3) * time.Millisecond) // finish out of order
				busy[w].Store(false)
				return in * 10
			})
			defer p.Close()
			var got []int
			done := func(r int) error {
				got = append(got, r)
				inFlight.Add(-1)
				return nil
			}
			const n = 200
			for i := 0; i < n; i++ {
				inFlight.Add(1)
				p.Submit(i, done)
				if v := inFlight.Load(); v > maxInFlight.Load() {
					maxInFlight.Store(v)
				}
			}
			p.Drain(done)
			if len(got) != n {
				t.Fatalf("got %d results, want %d", len(got), n)
			}
			for i, r := range got {
				if r != i*10 {
					t.Fatalf("result %d = %d, want %d (out of order)", i, r, i*10)
				}
			}
			depth := tc.depth
			if depth == 0 {
				depth = 2 * runtime.GOMAXPROCS(0) // the default: two per worker, a worker per CPU
			}
			if m := maxInFlight.Load(); m > int64(depth) {
				t.Errorf("%d jobs in flight after Submit returned, bound is %d", m, depth)
			}
		})
	}
}

func TestDrainEmptyAndReuse(t *testing.T) {
	p := New(Options{Workers: 2}, func(_ int, in string) string { return in + "!" })
	defer p.Close()
	p.Drain(func(string) error { t.Fatal("nothing was submitted"); return nil })
	for round := 0; round < 3; round++ { // one pool serves many bundles
		var got []string
		for _, s := range []string{"a", "b", "c"} {
			p.Submit(s, func(r string) error { got = append(got, r); return nil })
		}
		p.Drain(func(r string) error { got = append(got, r); return nil })
		if len(got) != 3 || got[0] != "a!" || got[2] != "c!" {
			t.Fatalf("round %d: got %v", round, got)
		}
	}
}
