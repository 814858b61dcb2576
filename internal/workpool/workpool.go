// Package workpool runs a DoFn's per-element work on several goroutines
// while the DoFn keeps emitting on its own goroutine, in input order.
//
// Why: the direct runner (and a fused stage on any runner) calls a DoFn on
// one goroutine, so a CPU-heavy DoFn such as stage 1 used one core of two
// (measured: bench/RESULTS.md). Beam emitters may only be called during
// ProcessElement or FinishBundle, on the calling goroutine, and never
// concurrently — which rules out pools that run callbacks on their own
// goroutine (sourcegraph/conc's stream, errgroup). Here workers only
// compute; the caller takes results back in order with Submit (as the
// queue fills) and Drain (in FinishBundle) and emits them itself.
package workpool

import "runtime"

// Pool runs work on Workers goroutines. Each worker has an index, so it can
// own state (a parser, buffers) without locks. The zero Options mean one
// worker per CPU and two jobs queued per worker.
type Pool[In, Out any] struct {
	jobs    chan job[In, Out]
	pending []chan Out // results in submission order
	depth   int
}

type job[In, Out any] struct {
	in  In
	out chan Out
}

// Options configure a Pool. The zero value means defaults.
type Options struct {
	Workers int // goroutines; default GOMAXPROCS
	Depth   int // jobs submitted but not yet handed back; default 2 × Workers
}

// New starts a pool; Close stops it.
func New[In, Out any](opts Options, work func(worker int, in In) Out) *Pool[In, Out] {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Depth <= 0 {
		opts.Depth = 2 * opts.Workers
	}
	p := &Pool[In, Out]{jobs: make(chan job[In, Out]), depth: opts.Depth}
	for w := 0; w < opts.Workers; w++ {
		go func() {
			for j := range p.jobs {
				j.out <- work(w, j.in)
			}
		}()
	}
	return p
}

// Submit queues in, then hands back to done, in order, every result that
// is ready — waiting for the oldest ones while more than Depth are queued,
// so memory stays bounded. Every result is handed back even after done
// fails; Submit returns done's first error.
func (p *Pool[In, Out]) Submit(in In, done func(Out) error) error {
	out := make(chan Out, 1)
	p.pending = append(p.pending, out)
	p.jobs <- job[In, Out]{in: in, out: out}
	var err error
	for len(p.pending) > 0 {
		var r Out
		if len(p.pending) > p.depth {
			r = <-p.pending[0]
		} else {
			select {
			case r = <-p.pending[0]:
			default:
				return err
			}
		}
		p.pending = p.pending[1:]
		if e := done(r); err == nil {
			err = e
		}
	}
	return err
}

// Drain waits for every queued job and hands its result to done, in order.
// It returns done's first error.
func (p *Pool[In, Out]) Drain(done func(Out) error) error {
	var err error
	for _, out := range p.pending {
		if e := done(<-out); err == nil {
			err = e
		}
	}
	p.pending = p.pending[:0]
	return err
}

// Discard forgets jobs not handed back (a failed bundle's); their
// workers finish them and the results are dropped.
func (p *Pool[In, Out]) Discard() { p.pending = nil }

// Close stops the workers. Jobs not drained are discarded.
func (p *Pool[In, Out]) Close() {
	close(p.jobs)
	p.pending = nil
}
