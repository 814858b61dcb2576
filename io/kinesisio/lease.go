package kinesisio

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/fineo-io/ingest/io/dynamodbio"
)

// LeaseTable is the part of the checkpoint table the lease holder uses
// (*dynamodbio.Checkpoints, with its Owner set, implements it).
type LeaseTable interface {
	Leases(ctx context.Context, stream string) ([]dynamodbio.Lease, []dynamodbio.Worker, error)
	TakeLease(ctx context.Context, stream string, seen dynamodbio.Lease) (dynamodbio.Lease, error)
	RenewLease(ctx context.Context, stream, shard string) (dynamodbio.Lease, error)
	ReleaseLease(ctx context.Context, stream, shard string) error
	Heartbeat(ctx context.Context, stream string) error
	RemoveWorker(ctx context.Context, stream, id string, counter int64) error
}

// DefaultLeaseDuration is how long a lease outlives its holder's last
// renewal: the time an instance's shards wait after it dies.
const DefaultLeaseDuration = 20 * time.Second

// LeaseEvent is one change of a lease this process held: what the lease
// history of a stream is made of. Acquired starts a holding (At: when the
// take was written); every other event ends one (At: when this process
// stopped reading the shard).
type LeaseEvent struct {
	Event        string // "acquired", "released", "lost", "expired"
	Stream       string
	Shard, Owner string
	Gen          int64
	At           time.Time
}

// Leaser holds this process's leases of one stream, for one owner, after
// the Kinesis Client Library's lease protocol (see dynamodbio's lease.go):
// every Duration/3 it beats its worker heartbeat, renews the leases it
// holds, reads the whole lease table, and then frees the leases above its
// fair share or takes free and expired ones up to it. The fair share is
// the shards waiting to be read over the instances alive (their
// heartbeats moved within Duration), rounded up.
//
// A shard is read only inside Begin … done, which Begin allows while the
// lease is held and its renewal is less than Duration old; a release
// waits for the read in progress to finish. An instance that takes a
// lease over does so at least Duration after the last renewal it saw, so
// two instances never read one shard at the same time, and the holder's
// checkpoint writes are conditioned on its holding (dynamodbio.Checkpoints
// with Owner).
type Leaser struct {
	table    LeaseTable
	stream   string
	owner    string
	duration time.Duration
	log      func(LeaseEvent)

	mu       sync.Mutex
	idle     *sync.Cond // signalled when a holding's reads end
	wanted   map[string]bool
	ended    map[string]bool
	held     map[string]*holding
	sighted  map[string]sighting // by shard, and WorkerPrefix+id
	started  bool
	kick     chan struct{}
	cancel   context.CancelFunc
	finished chan struct{}
}

type holding struct {
	gen        int64
	checkpoint string
	deadline   time.Time // no read starts at or after it
	releasing  bool
	busy       int
}

// sighting is a lease's (or a heartbeat's) counter as last read, and when
// it was first read at that value (this process's clock).
type sighting struct {
	owner   string
	counter int64
	since   time.Time
}

// NewLeaser returns a lease holder (not yet running: Begin starts it).
// log receives every LeaseEvent (nil: they are logged).
func NewLeaser(table LeaseTable, stream, owner string, duration time.Duration, log func(LeaseEvent)) *Leaser {
	if duration <= 0 {
		duration = DefaultLeaseDuration
	}
	if log == nil {
		log = logLeaseEvent
	}
	l := &Leaser{table: table, stream: stream, owner: owner, duration: duration, log: log,
		wanted: map[string]bool{}, ended: map[string]bool{}, held: map[string]*holding{},
		sighted: map[string]sighting{}, kick: make(chan struct{}, 1)}
	l.idle = sync.NewCond(&l.mu)
	return l
}

func logLeaseEvent(e LeaseEvent) {
	slog.Info("lease", "event", e.Event, "stream", e.Stream, "shard", e.Shard, "owner", e.Owner,
		"gen", e.Gen, "at", e.At.UTC().Format(time.RFC3339Nano))
}

// Begin asks to read shard now. With ok, the lease is held: read within
// the returned ctx (it ends when the lease's renewal would be too old),
// from after checkpoint ("" = the shard's start position) if gen is not
// the holding the caller read under before, and call done when the read
// is over. Without ok, another instance reads the shard (or none yet).
// Begin also tells the Leaser that shard waits to be read.
func (l *Leaser) Begin(ctx context.Context, shard string) (rctx context.Context, gen int64, checkpoint string, done func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.wanted[shard] {
		l.wanted[shard] = true
		l.start()
	}
	h := l.held[shard]
	if h == nil || h.releasing || !time.Now().Before(h.deadline) {
		return nil, 0, "", nil, false
	}
	h.busy++
	rctx, cancel := context.WithDeadline(ctx, h.deadline)
	return rctx, h.gen, h.checkpoint, func() {
		cancel()
		l.mu.Lock()
		h.busy--
		l.mu.Unlock()
		l.idle.Broadcast()
	}, true
}

// Ended reports whether the lease table said shard is committed to its
// end (it was read to the end of the closed shard, here or elsewhere).
func (l *Leaser) Ended(shard string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended[shard]
}

// Held returns the number of leases held.
func (l *Leaser) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// start starts the rounds (l.mu held).
func (l *Leaser) start() {
	if l.started {
		return
	}
	l.started = true
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.finished = cancel, make(chan struct{})
	go l.run(ctx)
}

func (l *Leaser) run(ctx context.Context) {
	defer close(l.finished)
	// The first round waits a moment for the other shards of the stream
	// to be asked for.
	t := time.NewTimer(min(100*time.Millisecond, l.duration/10))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.round(ctx)
		t.Reset(l.duration / 3)
	}
}

// Stop ends the rounds, frees every lease held (after the reads in
// progress) and removes this instance's heartbeat, so that other instances
// take its shards at once.
func (l *Leaser) Stop(ctx context.Context) {
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if !started {
		return
	}
	l.cancel()
	<-l.finished
	for _, s := range l.heldShards() {
		l.release(ctx, s, "released")
	}
	l.mu.Lock()
	s, ok := l.sighted[dynamodbio.WorkerPrefix+l.owner]
	l.mu.Unlock()
	if ok {
		if err := l.table.RemoveWorker(ctx, l.stream, l.owner, s.counter); err != nil {
			slog.Warn("lease: removing heartbeat", "err", err)
		}
	}
}

// round is one heartbeat, renewal, reading and balancing of the leases.
func (l *Leaser) round(ctx context.Context) {
	if err := l.table.Heartbeat(ctx, l.stream); err != nil && ctx.Err() == nil {
		slog.Warn("lease: heartbeat", "stream", l.stream, "err", err)
	}
	l.renew(ctx)
	leases, workers, err := l.table.Leases(ctx, l.stream)
	if err != nil {
		if ctx.Err() == nil {
			slog.Warn("lease: reading the lease table", "stream", l.stream, "err", err)
		}
		return
	}
	now := time.Now()
	l.mu.Lock()
	live := 1 // this instance
	for _, w := range workers {
		s := l.sight(dynamodbio.WorkerPrefix+w.ID, "", w.Counter, now)
		switch {
		case w.ID == l.owner:
		case now.Sub(s.since) < l.duration:
			live++
		case now.Sub(s.since) > 10*l.duration: // long dead: tidy the table
			go l.table.RemoveWorker(context.WithoutCancel(ctx), l.stream, w.ID, w.Counter)
		}
	}
	byShard := make(map[string]dynamodbio.Lease, len(leases))
	for _, le := range leases {
		byShard[le.Shard] = le
		l.sight(le.Shard, le.Owner, le.Counter, now)
		if le.Ended {
			l.ended[le.Shard] = true
		}
	}
	var waiting []string
	for s := range l.wanted {
		if !l.ended[s] {
			waiting = append(waiting, s)
		}
	}
	target := (len(waiting) + live - 1) / live
	var excess, free []string
	for s := range l.held {
		if l.ended[s] {
			excess = append(excess, s)
		}
	}
	if n := len(l.held) - len(excess) - target; n > 0 {
		var keep []string
		for s := range l.held {
			if !l.ended[s] {
				keep = append(keep, s)
			}
		}
		slices.Sort(keep)
		excess = append(excess, keep[len(keep)-n:]...)
	}
	for _, s := range waiting {
		if l.held[s] != nil {
			continue
		}
		le := byShard[s]
		sg := l.sighted[s]
		if !le.Exists || le.Owner == "" || le.Owner == l.owner || now.Sub(sg.since) >= l.duration {
			free = append(free, s)
		}
	}
	want := target - (len(l.held) - len(excess))
	l.mu.Unlock()

	for _, s := range excess {
		l.release(ctx, s, "released")
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, s := range free {
		if want <= 0 {
			break
		}
		seen := byShard[s]
		seen.Shard = s
		start := time.Now()
		got, err := l.table.TakeLease(ctx, l.stream, seen)
		if err != nil {
			if !errors.Is(err, dynamodbio.ErrLeaseLost) && ctx.Err() == nil {
				slog.Warn("lease: taking", "stream", l.stream, "shard", s, "err", err)
			}
			continue
		}
		want--
		l.mu.Lock()
		l.held[s] = &holding{gen: got.Gen, checkpoint: got.Checkpoint, deadline: start.Add(l.duration)}
		l.sight(s, l.owner, got.Counter, time.Now())
		l.mu.Unlock()
		l.log(LeaseEvent{Event: "acquired", Stream: l.stream, Shard: s, Owner: l.owner, Gen: got.Gen, At: time.Now()})
	}
}

// sight records a counter read from the table (l.mu held).
func (l *Leaser) sight(key, owner string, counter int64, now time.Time) sighting {
	s, ok := l.sighted[key]
	if !ok || s.counter != counter || s.owner != owner {
		s = sighting{owner: owner, counter: counter, since: now}
		l.sighted[key] = s
	}
	return s
}

// renew renews every lease held; one that was lost or has lapsed ends.
func (l *Leaser) renew(ctx context.Context) {
	for _, s := range l.heldShards() {
		start := time.Now()
		got, err := l.table.RenewLease(ctx, l.stream, s)
		l.mu.Lock()
		h := l.held[s]
		switch {
		case h == nil:
		case err == nil:
			h.deadline = start.Add(l.duration)
			l.sight(s, l.owner, got.Counter, time.Now())
		case errors.Is(err, dynamodbio.ErrLeaseLost):
			delete(l.held, s)
			l.mu.Unlock()
			l.log(LeaseEvent{Event: "lost", Stream: l.stream, Shard: s, Owner: l.owner, Gen: h.gen, At: earliest(time.Now(), h.deadline)})
			continue
		default:
			if ctx.Err() == nil {
				slog.Warn("lease: renewing", "stream", l.stream, "shard", s, "err", err)
			}
			if !time.Now().Before(h.deadline) {
				delete(l.held, s)
				l.mu.Unlock()
				l.log(LeaseEvent{Event: "expired", Stream: l.stream, Shard: s, Owner: l.owner, Gen: h.gen, At: h.deadline})
				continue
			}
		}
		l.mu.Unlock()
	}
}

// heldShards returns the shards whose leases are held.
func (l *Leaser) heldShards() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	shards := make([]string, 0, len(l.held))
	for s := range l.held {
		shards = append(shards, s)
	}
	return shards
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// release stops reading shard (waiting for the read in progress) and
// frees its lease.
func (l *Leaser) release(ctx context.Context, shard, event string) {
	l.mu.Lock()
	h := l.held[shard]
	if h == nil {
		l.mu.Unlock()
		return
	}
	h.releasing = true
	for h.busy > 0 {
		l.idle.Wait()
	}
	delete(l.held, shard)
	stopped := earliest(time.Now(), h.deadline)
	l.mu.Unlock()
	l.log(LeaseEvent{Event: event, Stream: l.stream, Shard: shard, Owner: l.owner, Gen: h.gen, At: stopped})
	if err := l.table.ReleaseLease(ctx, l.stream, shard); err != nil && !errors.Is(err, dynamodbio.ErrLeaseLost) {
		slog.Warn("lease: releasing (it lapses after the lease duration)", "stream", l.stream, "shard", shard, "err", err)
	}
}
