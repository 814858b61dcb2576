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
	idle     *sync.Cond           // signalled when a holding's reads end
	asked    map[string]time.Time // when a reader last asked for each shard (Begin)
	ended    map[string]bool
	held     map[string]*holding
	sighted  map[string]sighting // by shard, and WorkerPrefix+id
	started  bool
	kick     chan struct{}
	cancel   context.CancelFunc
	finished chan struct{}
}

type holding struct {
	Holding
	deadline  time.Time // no read starts at or after it
	releasing bool
	busy      int
}

// Holding is one holding of a lease: its Gen (the same for the whole
// holding, new at every take), the checkpoint when it was taken ("" =
// none) and when the shard's lease was first taken (StartMillis, Unix
// millis: where a LATEST start begins for every holder).
type Holding struct {
	Gen         int64
	Checkpoint  string
	StartMillis int64
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
		asked: map[string]time.Time{}, ended: map[string]bool{}, held: map[string]*holding{},
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
// from the holding's checkpoint if the caller has not read under this
// holding before, and call done when the read is over. Without ok, another
// instance reads the shard (or none yet).
//
// Begin is also how the Leaser knows what this process reads: a shard is
// waiting to be read here while its reader keeps asking, and a lease is
// renewed (and this instance's heartbeat beaten) only while its reader
// keeps asking, so that a process whose runner stopped running its readers
// gives its shards up instead of holding them unread.
func (l *Leaser) Begin(ctx context.Context, shard string) (rctx context.Context, h Holding, done func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked[shard] = time.Now()
	l.start()
	hd := l.held[shard]
	if hd == nil || hd.releasing || !time.Now().Before(hd.deadline) {
		return nil, Holding{}, nil, false
	}
	hd.busy++
	rctx, cancel := context.WithDeadline(ctx, hd.deadline)
	return rctx, hd.Holding, func() {
		cancel()
		l.mu.Lock()
		hd.busy--
		l.mu.Unlock()
		l.idle.Broadcast()
	}, true
}

// recent is how long a reader may go without asking for its shard before
// the shard counts as not being read here: long enough for a reader that
// waits out a failed read (retryDelay).
func (l *Leaser) recent() time.Duration { return max(l.duration/2, retryDelay+time.Second) }

// askedRecently reports whether shard's reader asked within recent (l.mu held).
func (l *Leaser) askedRecently(shard string, now time.Time) bool {
	t, ok := l.asked[shard]
	return ok && now.Sub(t) < l.recent()
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

// start starts the rounds (l.mu held), once.
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
		l.release(ctx, s, "released", func(f func(context.Context) error) error { return f(ctx) })
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
// Every table call has a third of the lease duration: a hung call must not
// hold up the renewals.
func (l *Leaser) round(ctx context.Context) {
	call := func(f func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, l.duration/3)
		defer cancel()
		return f(cctx)
	}
	now := time.Now()
	l.mu.Lock()
	alive := false // some reader of this process asked lately: its runner runs
	for s := range l.asked {
		alive = alive || l.askedRecently(s, now)
	}
	l.mu.Unlock()
	if alive {
		if err := call(func(ctx context.Context) error { return l.table.Heartbeat(ctx, l.stream) }); err != nil && ctx.Err() == nil {
			slog.Warn("lease: heartbeat", "stream", l.stream, "err", err)
		}
	}
	l.renew(ctx, call)
	var leases []dynamodbio.Lease
	var workers []dynamodbio.Worker
	err := call(func(ctx context.Context) (err error) {
		leases, workers, err = l.table.Leases(ctx, l.stream)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			slog.Warn("lease: reading the lease table", "stream", l.stream, "err", err)
		}
		return
	}
	now = time.Now()
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
	for s := range l.asked {
		if !l.ended[s] && l.askedRecently(s, now) {
			waiting = append(waiting, s)
		}
	}
	target := (len(waiting) + live - 1) / live
	// Free: the leases of ended shards, of shards no reader here asks for
	// any more, and those above the fair share.
	var excess, keep []string
	for s := range l.held {
		if l.ended[s] || !l.askedRecently(s, now) {
			excess = append(excess, s)
		} else {
			keep = append(keep, s)
		}
	}
	if n := len(keep) - target; n > 0 {
		slices.Sort(keep)
		excess = append(excess, keep[len(keep)-n:]...)
	}
	var free []string
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
	for _, s := range excess {
		l.held[s].releasing = true // no read starts from now on
	}
	var releasable []string // releasing, and no read in progress
	for s, h := range l.held {
		if h.releasing && h.busy == 0 {
			releasable = append(releasable, s)
		}
	}
	l.mu.Unlock()

	for _, s := range releasable {
		l.release(ctx, s, "released", call)
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, s := range free {
		if want <= 0 {
			break
		}
		seen := byShard[s]
		seen.Shard = s
		start := time.Now()
		var got dynamodbio.Lease
		err := call(func(ctx context.Context) (err error) {
			got, err = l.table.TakeLease(ctx, l.stream, seen)
			return err
		})
		if err != nil {
			if !errors.Is(err, dynamodbio.ErrLeaseLost) && ctx.Err() == nil {
				slog.Warn("lease: taking", "stream", l.stream, "shard", s, "err", err)
			}
			continue
		}
		want--
		l.mu.Lock()
		l.held[s] = &holding{Holding: Holding{Gen: got.Gen, Checkpoint: got.Checkpoint, StartMillis: got.StartMillis},
			deadline: start.Add(l.duration)}
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

// renew renews the leases held whose readers keep asking for them; one
// that was lost, or has lapsed (not renewed: its reader stopped asking, or
// the renewals failed), ends.
func (l *Leaser) renew(ctx context.Context, call func(func(context.Context) error) error) {
	for _, s := range l.heldShards() {
		l.mu.Lock()
		h := l.held[s]
		asked := h != nil && !h.releasing && l.askedRecently(s, time.Now())
		l.mu.Unlock()
		start := time.Now()
		var got dynamodbio.Lease
		err := errSkipped
		if asked {
			err = call(func(ctx context.Context) (err error) {
				got, err = l.table.RenewLease(ctx, l.stream, s)
				return err
			})
		}
		l.mu.Lock()
		switch {
		case h == nil || l.held[s] != h:
		case err == nil:
			h.deadline = start.Add(l.duration)
			l.sight(s, l.owner, got.Counter, time.Now())
		case errors.Is(err, dynamodbio.ErrLeaseLost):
			delete(l.held, s)
			l.mu.Unlock()
			l.log(LeaseEvent{Event: "lost", Stream: l.stream, Shard: s, Owner: l.owner, Gen: h.Gen, At: earliest(time.Now(), h.deadline)})
			continue
		default:
			if err != errSkipped && ctx.Err() == nil {
				slog.Warn("lease: renewing", "stream", l.stream, "shard", s, "err", err)
			}
			if !time.Now().Before(h.deadline) && h.busy == 0 {
				delete(l.held, s)
				l.mu.Unlock()
				l.log(LeaseEvent{Event: "expired", Stream: l.stream, Shard: s, Owner: l.owner, Gen: h.Gen, At: h.deadline})
				continue
			}
		}
		l.mu.Unlock()
	}
}

// errSkipped: a renewal not made (the shard's reader stopped asking).
var errSkipped = errors.New("not renewed")

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

// release stops reading shard (waiting for the read in progress, if
// any) and frees its lease.
func (l *Leaser) release(ctx context.Context, shard, event string, call func(func(context.Context) error) error) {
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
	l.log(LeaseEvent{Event: event, Stream: l.stream, Shard: shard, Owner: l.owner, Gen: h.Gen, At: stopped})
	err := call(func(ctx context.Context) error { return l.table.ReleaseLease(ctx, l.stream, shard) })
	if err != nil && !errors.Is(err, dynamodbio.ErrLeaseLost) {
		slog.Warn("lease: releasing (it lapses after the lease duration)", "stream", l.stream, "shard", shard, "err", err)
	}
}
