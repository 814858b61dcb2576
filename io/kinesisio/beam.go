package kinesisio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/metrics"
)

// Counters of the Beam source (namespace metrics.Namespace, "fineo").
const (
	KinesisRecords   = "kinesis_records"   // records emitted
	KinesisBytes     = "kinesis_bytes"     // bytes of record data emitted
	KinesisPages     = "kinesis_pages"     // pages emitted (elements): non-empty ones, and a closed shard's end page
	KinesisThrottles = "kinesis_throttles" // GetRecords/GetShardIterator calls throttled
	KinesisErrors    = "kinesis_errors"    // reads that gave up after retries (retried later)
	// KinesisMillisBehind is a distribution of MillisBehindLatest over the
	// pages read; a gauge of the same name plus "/<shard>" holds the last
	// value per shard.
	KinesisMillisBehind = "kinesis_millis_behind_latest"
	// KinesisPagesHeld counts pages read while the runner split the
	// restriction (a checkpoint): each is kept with the shard's reader and
	// emitted by the residual, not read again.
	KinesisPagesHeld = "kinesis_pages_held"
	// KinesisLeasesHeld is a gauge per stream: the shard leases this
	// process holds (with ReadConfig.LeaseOwner).
	KinesisLeasesHeld = "kinesis_leases_held"
)

func init() {
	register.DoFn5x2[context.Context, *watermarkEstimator, *sdf.LockRTracker, []byte,
		func(beam.EventTime, shardWork), sdf.ProcessContinuation, error](&discoverFn{})
	register.DoFn5x2[context.Context, *watermarkEstimator, *sdf.LockRTracker, shardWork,
		func(beam.EventTime, ShardPage), sdf.ProcessContinuation, error](&readFn{})
	register.Emitter2[beam.EventTime, shardWork]()
	register.Emitter2[beam.EventTime, ShardPage]()
	for _, v := range []any{ShardPage{}, PageRecord{}, shardWork{}, shardRestriction{}, discoverRestriction{}} {
		beam.RegisterType(reflect.TypeOf(v))
	}
}

// ShardPage is one GetRecords page of one shard: the element the source
// emits, so that the runner's per-element cost is paid per page, not per
// record. Records are in shard order (ascending sequence number); empty
// pages are not emitted.
//
// (It is not called Page: Page is the plain reader's page, with its
// Position and ShardClosed, in reader.go.)
type ShardPage struct {
	Stream, Shard string
	// After is the sequence number of the record just before this page in
	// the shard (the last record of the previous page, or the resume
	// position); "" when the page starts at the shard's start position
	// (TRIM_HORIZON, LATEST, AT_TIMESTAMP). Pages chain: a page's After is
	// its predecessor's last Sequence, so a checkpoint store can tell
	// whether everything up to a page was committed (see
	// dynamodbio.Checkpoints).
	After   string
	Records []PageRecord
	// End: the shard is closed and this page ends it (its last records,
	// or none: a page that only says so). Committing it records the shard
	// as ended in the checkpoint table, which lets its children be read in
	// any process (dynamodbio.Checkpoints.Ended).
	End bool
}

// Last returns the sequence number of the page's last record.
func (p ShardPage) Last() string {
	if len(p.Records) == 0 {
		return p.After
	}
	return p.Records[len(p.Records)-1].Sequence
}

// PageRecord is one Kinesis record of a ShardPage. Stream, Shard and
// Sequence together identify it (its lineage); a sequence number is unique
// within a shard.
type PageRecord struct {
	Data          []byte
	Sequence      string
	PartitionKey  string
	ArrivalMillis int64 // ApproximateArrivalTimestamp, Unix milliseconds
}

// ReadConfig configures Read.
type ReadConfig struct {
	Stream string
	// Start is where shards present at start-up are read from: TrimHorizon
	// (the zero value), Latest or AtTimestamp. Shards that appear later
	// (children of splits and merges) are always read from TrimHorizon.
	Start Position
	// Resume maps shard id → sequence number to resume AFTER (from a
	// durable checkpoint store); it overrides Start for those shards, and
	// the ancestors of a resumed shard are taken as finished (not read).
	Resume map[string]string
	// StopAfterIdle, when > 0, makes the source finish once every open
	// shard has returned no records for this long (tests and bounded
	// replays); 0 = run forever.
	StopAfterIdle time.Duration
	// PollInterval is the wait after an empty page and the least time
	// between two GetRecords calls of one shard. Default 200ms (at most
	// 5 GetRecords/s/shard, the service's limit shared by all consumers).
	PollInterval time.Duration
	// DiscoverEvery is how often the shard list is read again to find the
	// children of splits and merges. Default 10s.
	DiscoverEvery time.Duration
	// CheckpointTable and Consumer name the durable checkpoint store
	// (dynamodbio.Checkpoints) that says whether a parent shard ended: a
	// child whose parents this process did not read to their end (another
	// process read them, or the job was restored from runner state) is
	// read once the store says they did. Without a table, only parents
	// read in this process count.
	CheckpointTable, Consumer string
	// LeaseOwner, with a CheckpointTable, makes the reading of each shard
	// wait for its lease (see Leaser): several jobs (processes) with the
	// same Consumer and table share the shards, one reader per shard at a
	// time. It names this job uniquely. "" = no leases: this job reads
	// every shard. LeaseDuration: default DefaultLeaseDuration.
	LeaseOwner    string
	LeaseDuration time.Duration
}

const (
	defaultPollInterval  = 200 * time.Millisecond
	defaultDiscoverEvery = 10 * time.Second
	// clockSkew is subtracted from local-clock watermarks: records carry
	// the service's arrival time, which may run behind our clock.
	clockSkew = time.Second
	// maxReadTime bounds one ProcessElement call that keeps finding
	// records: then it checkpoints, so that its output is committed and
	// the runner can give another shard its turn. Measured on prism with
	// 4 shards under a steady load (bench/stream phase 2, alternating
	// runs): p99 latency 0.49-0.64 s at 250 ms, 1.25-2.52 s at 1 s, with
	// no clear change in throughput.
	maxReadTime = 250 * time.Millisecond
	// retryDelay is the wait after a read that failed past its retries.
	retryDelay = 2 * time.Second
)

// Read is the unbounded Kinesis source: one ShardPage per non-empty
// GetRecords page of every shard of cfg.Stream, forever (or until
// cfg.StopAfterIdle). The element timestamp of a page is the latest
// arrival time of its records (never before the shard's watermark).
//
// Graph: Impulse → discover (unbounded SDF: lists shards every
// DiscoverEvery, emits each shard once) → Reshuffle → read (unbounded SDF,
// one restriction per shard, positioned by sequence number).
//
// Order: records of one shard come out in sequence order; a child shard of
// a split or merge is read only after its parents were read to their end
// (see readFn: the durable checkpoint table decides, a process's own
// memory of the parents it read is a shortcut).
//
// Watermark: per shard, the latest arrival time read; a shard that is
// caught up and idle moves it to now − PollInterval − 1s, so idle shards do
// not hold windows open. A shard not yet read (a child waiting for its
// parents) holds it at the time of the listing before the one that found it.
//
// Delivery: every record once in the committed output of the runner. A
// failed bundle is re-run from its restriction, so effects a downstream
// DoFn has outside Beam (writes) may repeat: make them idempotent by the
// record's lineage (stream, shard, sequence number). To restart a job
// without runner state, pass the last committed sequence number per shard
// from a durable checkpoint store in Resume.
//
// Positions are kept to the millisecond: an AtTimestamp start with finer
// precision starts at its millisecond.
func Read(s beam.Scope, cfg ReadConfig) beam.PCollection {
	s = s.Scope("kinesisio.Read")
	if cfg.Stream == "" {
		panic("kinesisio.Read: no stream")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPollInterval
	}
	if cfg.DiscoverEvery <= 0 {
		cfg.DiscoverEvery = defaultDiscoverEvery
	}
	var id [8]byte
	rand.Read(id[:])
	run := hex.EncodeToString(id[:])
	startMillis := int64(0)
	if cfg.Start.Kind == AtTimestamp {
		startMillis = cfg.Start.Timestamp.UnixMilli()
	}
	imp := beam.Impulse(s)
	shards := beam.ParDo(s, &discoverFn{
		Run: run, Stream: cfg.Stream,
		StartKind: int(cfg.Start.Kind), StartMillis: startMillis, Resume: cfg.Resume,
		StopAfterIdleMs: cfg.StopAfterIdle.Milliseconds(),
		PollMs:          cfg.PollInterval.Milliseconds(), DiscoverMs: cfg.DiscoverEvery.Milliseconds(),
	}, imp)
	shards = beam.Reshuffle(s, shards)
	return beam.ParDo(s, &readFn{
		Run: run, Stream: cfg.Stream,
		StopAfterIdleMs: cfg.StopAfterIdle.Milliseconds(),
		PollMs:          cfg.PollInterval.Milliseconds(),
		CheckpointTable: cfg.CheckpointTable, Consumer: cfg.Consumer,
		LeaseOwner: cfg.LeaseOwner, LeaseMs: cfg.LeaseDuration.Milliseconds(),
	}, shards)
}

// newAPI makes the client of the DoFns; tests replace it to inject faults.
var newAPI = func(ctx context.Context) (API, error) { return NewClient(ctx) }

// ---------------------------------------------------------------------------
// Watermark estimator (manual, with state that survives checkpoints).

// watermarkEstimator is a manual watermark estimator (sdf's
// ManualWatermarkEstimator with Unix-millis state) that never goes back.
type watermarkEstimator struct{ state int64 }

func (e *watermarkEstimator) CurrentWatermark() time.Time { return time.UnixMilli(e.state) }

// UpdateWatermark moves the watermark forward to t; an earlier t is ignored.
func (e *watermarkEstimator) UpdateWatermark(t time.Time) {
	if ms := t.UnixMilli(); ms > e.state {
		e.state = ms
	}
}

func (e *watermarkEstimator) eventTime() beam.EventTime { return mtime.Time(e.state) }

// ---------------------------------------------------------------------------
// Process-wide registry of shard states, per run of Read.

type shardState int

const (
	shardReading  shardState = iota + 1
	shardFinished            // closed and read to its end (or taken as finished)
	shardStopped             // stopped on StopAfterIdle while open
)

type runState struct {
	mu           sync.Mutex
	shards       map[string]shardState
	lastActivity time.Time // last record read or shard found
}

var registry sync.Map // run id → *runState

func runOf(id string) *runState {
	if r, ok := registry.Load(id); ok {
		return r.(*runState)
	}
	r, _ := registry.LoadOrStore(id, &runState{shards: map[string]shardState{}, lastActivity: time.Now()})
	return r.(*runState)
}

func (r *runState) set(shard string, st shardState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shards[shard] != shardFinished { // finished is final
		r.shards[shard] = st
	}
}

func (r *runState) get(shard string) shardState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shards[shard]
}

func (r *runState) active() {
	r.mu.Lock()
	r.lastActivity = time.Now()
	r.mu.Unlock()
}

func (r *runState) idleFor() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Since(r.lastActivity)
}

// allEnded says whether every shard of ids finished or stopped.
func (r *runState) allEnded(ids []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if st := r.shards[id]; st != shardFinished && st != shardStopped {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// Discovery: an unbounded SDF over the impulse that emits every shard once.

// shardWork is the element of the reading SDF: one shard, where to start,
// and the parents that must be finished before it may be read.
type shardWork struct {
	Shard    string
	Parents  []string
	Kind     int // PositionKind of the start
	Sequence string
	Millis   int64
}

// discoverRestriction is the discovery state: the shard ids already
// emitted (or taken as finished), whether the first listing happened, and
// when the last one did.
type discoverRestriction struct {
	Seen       []string
	Listed     bool
	ListMillis int64
	Done       bool
}

type discoverClaim struct {
	New        []string
	ListMillis int64
	Done       bool
}

type discoverTracker struct {
	rest    discoverRestriction
	stopped bool // split: no more claims
}

func (t *discoverTracker) TryClaim(pos any) bool {
	c := pos.(discoverClaim)
	if t.stopped || t.rest.Done {
		return false
	}
	t.rest.Seen = append(t.rest.Seen, c.New...)
	t.rest.Listed = true
	if c.ListMillis != 0 {
		t.rest.ListMillis = c.ListMillis
	}
	t.rest.Done = c.Done
	return true
}

func (t *discoverTracker) GetError() error { return nil }

// TrySplit checkpoints at any fraction: the primary is what was claimed,
// the residual continues with the same state.
func (t *discoverTracker) TrySplit(float64) (any, any, error) {
	if t.stopped || t.rest.Done {
		return t.rest, nil, nil
	}
	residual := t.rest
	residual.Seen = append([]string(nil), t.rest.Seen...)
	t.rest.Done = true
	t.stopped = true
	return t.rest, residual, nil
}

func (t *discoverTracker) GetProgress() (float64, float64) {
	if t.IsDone() {
		return 1, 0
	}
	return 0, 1
}
func (t *discoverTracker) IsDone() bool        { return t.stopped || t.rest.Done }
func (t *discoverTracker) GetRestriction() any { return t.rest }
func (t *discoverTracker) IsBounded() bool     { return t.IsDone() }

type discoverFn struct {
	Run             string
	Stream          string
	StartKind       int
	StartMillis     int64
	Resume          map[string]string
	StopAfterIdleMs int64
	PollMs          int64
	DiscoverMs      int64

	api API
}

func (f *discoverFn) Setup(ctx context.Context) error {
	api, err := newAPI(ctx)
	f.api = api
	return err
}

func (f *discoverFn) CreateInitialRestriction(_ []byte) discoverRestriction {
	return discoverRestriction{}
}

func (f *discoverFn) SplitRestriction(_ []byte, r discoverRestriction) []discoverRestriction {
	return []discoverRestriction{r}
}

func (f *discoverFn) RestrictionSize(_ []byte, _ discoverRestriction) float64 { return 1 }

func (f *discoverFn) CreateTracker(r discoverRestriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(&discoverTracker{rest: r})
}

func (f *discoverFn) InitialWatermarkEstimatorState(et beam.EventTime, _ discoverRestriction, _ []byte) int64 {
	return int64(et)
}

func (f *discoverFn) CreateWatermarkEstimator(ms int64) *watermarkEstimator {
	return &watermarkEstimator{state: ms}
}

func (f *discoverFn) WatermarkEstimatorState(e *watermarkEstimator) int64 { return e.state }

func (f *discoverFn) ProcessElement(ctx context.Context, we *watermarkEstimator, rt *sdf.LockRTracker, _ []byte,
	emit func(beam.EventTime, shardWork)) (sdf.ProcessContinuation, error) {
	rest := rt.GetRestriction().(discoverRestriction)
	run := runOf(f.Run)
	poll := time.Duration(f.PollMs) * time.Millisecond
	every := time.Duration(f.DiscoverMs) * time.Millisecond
	stopIdle := time.Duration(f.StopAfterIdleMs) * time.Millisecond

	// With StopAfterIdle, the end comes when every shard emitted has
	// ended and a listing made after that finds no new shard.
	ended := stopIdle > 0 && rest.Listed && run.allEnded(rest.Seen)
	since := time.Since(time.UnixMilli(rest.ListMillis))
	if rest.Listed && !ended && since < every {
		wait := every - since
		if stopIdle > 0 {
			wait = min(wait, max(poll, 50*time.Millisecond))
		}
		return sdf.ResumeProcessingIn(wait), nil
	}

	listed := time.Now()
	shards, err := ListShards(ctx, f.api, f.Stream)
	if err != nil {
		if ctx.Err() == nil && classify(err) != errFatal {
			log.Warnf(ctx, "kinesisio: %v (retrying)", err)
			return sdf.ResumeProcessingIn(retryDelay), nil
		}
		return sdf.StopProcessing(), err
	}
	seen := make(map[string]bool, len(rest.Seen))
	for _, id := range rest.Seen {
		seen[id] = true
	}
	known := make(map[string]Shard, len(shards))
	for _, s := range shards {
		known[s.ID] = s
	}
	// Ancestors of resumed shards were finished by the run that wrote
	// the checkpoint.
	skip := map[string]bool{}
	if !rest.Listed {
		for id := range f.Resume {
			for p := range ancestors(known, id) {
				skip[p] = true
			}
		}
	}
	var fresh []string
	var works []shardWork
	for _, s := range shards {
		if seen[s.ID] {
			continue
		}
		fresh = append(fresh, s.ID)
		w := shardWork{Shard: s.ID}
		for _, p := range []string{s.ParentID, s.AdjacentParentID} {
			if _, ok := known[p]; ok && p != "" {
				w.Parents = append(w.Parents, p)
			}
		}
		seq, resumed := f.Resume[s.ID]
		switch {
		case resumed:
			w.Kind, w.Sequence = int(AfterSequence), seq
		case skip[s.ID]:
			run.set(s.ID, shardFinished)
			continue
		case rest.Listed:
			w.Kind = int(TrimHorizon) // a new shard: all of it
		case PositionKind(f.StartKind) == Latest && s.Closed():
			// Nothing arrives after "now" in a closed shard.
			run.set(s.ID, shardFinished)
			continue
		default:
			w.Kind, w.Millis = f.StartKind, f.StartMillis
		}
		works = append(works, w)
	}
	if len(fresh) == 0 && ended {
		rt.TryClaim(discoverClaim{ListMillis: listed.UnixMilli(), Done: true})
		return sdf.StopProcessing(), nil
	}
	if !rt.TryClaim(discoverClaim{New: fresh, ListMillis: listed.UnixMilli()}) {
		return sdf.StopProcessing(), nil
	}
	if len(fresh) > 0 {
		run.active()
	}
	for _, w := range works {
		run.set(w.Shard, shardReading)
		// At the watermark: a new shard's records arrived after the
		// previous listing, which did not show it.
		emit(we.eventTime(), w)
	}
	// Any shard created from now on has records that arrive after this.
	we.UpdateWatermark(listed.Add(-clockSkew))
	wait := every
	if stopIdle > 0 {
		wait = min(wait, max(poll, 50*time.Millisecond))
	}
	return sdf.ResumeProcessingIn(wait), nil
}

// ancestors returns the parents, grandparents… of id that known holds.
func ancestors(known map[string]Shard, id string) map[string]bool {
	out := map[string]bool{}
	todo := []string{id}
	for len(todo) > 0 {
		s, ok := known[todo[0]]
		todo = todo[1:]
		if !ok {
			continue
		}
		for _, p := range []string{s.ParentID, s.AdjacentParentID} {
			if p != "" && !out[p] {
				out[p] = true
				todo = append(todo, p)
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Reading: an unbounded SDF with one restriction per shard.

// shardRestriction is where a shard's reading continues: a Position
// (kind, sequence number, timestamp in Unix millis) and whether the shard
// is done (closed and read to its end, or stopped on StopAfterIdle).
type shardRestriction struct {
	Shard    string
	Kind     int
	Sequence string
	Millis   int64
	Done     bool
	// Start is where the shard's reading started (a Position's kind,
	// sequence number and millis): where a lease holder with no
	// checkpoint in the table reads from.
	StartKind     int
	StartSequence string
	StartMillis   int64
	// Gen is the lease holding (dynamodbio.Lease.Gen) the position was
	// read under; 0 without leases.
	Gen int64
}

func (r shardRestriction) position() Position {
	p := Position{Kind: PositionKind(r.Kind), Sequence: r.Sequence}
	if p.Kind == AtTimestamp {
		p.Timestamp = time.UnixMilli(r.Millis)
	}
	return p
}

func (r shardRestriction) start() Position {
	return shardRestriction{Kind: r.StartKind, Sequence: r.StartSequence, Millis: r.StartMillis}.position()
}

// at returns r moved to p.
func (r shardRestriction) at(p Position) shardRestriction {
	r.Kind, r.Sequence, r.Millis, r.Done = int(p.Kind), p.Sequence, 0, false
	if p.Kind == AtTimestamp {
		r.Millis = p.Timestamp.UnixMilli()
	}
	return r
}

// shardClaim claims one page: the position after it, and whether it ends
// the restriction (the shard closed, or the reader stops on idle). A claim
// with a Gen moves the restriction to Pos under a new lease holding,
// without a page.
type shardClaim struct {
	Pos Position
	End bool
	Gen int64
}

// shardTracker tracks a shard restriction. TryClaim takes the Position
// after each page; TrySplit (a checkpoint, at any fraction: a shard
// cannot be split by offset) makes the primary what was claimed and the
// residual the rest of the shard from the last claimed position.
type shardTracker struct {
	rest    shardRestriction
	at      shardRestriction // the position after the last claim
	stopped bool             // split: no more claims
}

func newShardTracker(r shardRestriction) *shardTracker { return &shardTracker{rest: r, at: r} }

func (t *shardTracker) TryClaim(pos any) bool {
	c := pos.(shardClaim)
	if t.stopped || t.rest.Done {
		return false
	}
	t.at = t.at.at(c.Pos)
	if c.Gen != 0 {
		t.at.Gen = c.Gen
	}
	if c.End {
		t.rest.Done = true
		t.at.Done = true
	}
	return true
}

func (t *shardTracker) GetError() error { return nil }

func (t *shardTracker) TrySplit(float64) (any, any, error) {
	if t.stopped || t.rest.Done {
		return t.rest, nil, nil
	}
	residual := t.at
	t.rest.Done = true // the primary: what was claimed, nothing more
	t.stopped = true
	return t.rest, residual, nil
}

func (t *shardTracker) GetProgress() (float64, float64) {
	if t.IsDone() {
		return 1, 0
	}
	return 0, 1
}
func (t *shardTracker) IsDone() bool        { return t.stopped || t.rest.Done }
func (t *shardTracker) GetRestriction() any { return t.rest }
func (t *shardTracker) IsBounded() bool     { return t.IsDone() }

// readFn reads one shard per restriction with a ShardReader, one page per
// claim. Readers are kept per shard between calls (see readers) and reused
// when the restriction resumes at the reader's position, so that a resumed
// restriction keeps its shard iterator and its pacing.
//
// Parent gating: a child waits (ResumeProcessingIn) until each of its
// parents has ended, which the durable checkpoint table says
// (Checkpoints.Ended: the parent's end page, emitted when its reader
// reaches the end of the closed shard, is committed with every page before
// it). So a child starts whichever process read its parents, and after a
// restore from runner state (a Flink savepoint) in which the parents'
// restrictions are done. The reader of a shard that ends also records
// "finished" in a process-wide registry keyed by run and shard: a child in
// the same process starts on that at once, without waiting for the commit.
// The registry is a shortcut only; nothing waits on it alone when a table
// is configured.
type readFn struct {
	Run                       string
	Stream                    string
	StopAfterIdleMs           int64
	PollMs                    int64
	CheckpointTable, Consumer string
	LeaseOwner                string
	LeaseMs                   int64

	api     API
	ends    *dynamodbio.Checkpoints
	checked map[string]time.Time // when a waiting child last asked the table, by parent
	lease   *Leaser              // nil: no leases
}

// endedCheckEvery bounds how often a waiting child reads a parent's
// checkpoint.
const endedCheckEvery = time.Second

func (f *readFn) Setup(ctx context.Context) error {
	api, err := newAPI(ctx)
	f.api = api
	if err != nil || f.CheckpointTable == "" {
		return err
	}
	ddb, err := dynamodbio.NewClient(ctx)
	f.ends = &dynamodbio.Checkpoints{API: ddb, Table: f.CheckpointTable, Consumer: f.Consumer}
	f.checked = map[string]time.Time{}
	if err == nil && f.LeaseOwner != "" {
		f.lease = leaserFor(&dynamodbio.Checkpoints{API: ddb, Table: f.CheckpointTable, Consumer: f.Consumer, Owner: f.LeaseOwner},
			f.CheckpointTable, f.Consumer, f.Stream, f.LeaseOwner, time.Duration(f.LeaseMs)*time.Millisecond)
	}
	return err
}

// leasers holds the Leaser of each table, consumer, stream and owner in
// this process: the leases this process holds, shared by every readFn
// instance in it. (They are this process's by nature: the lease table
// says who holds what for every other process.)
var leasers = struct {
	sync.Mutex
	m map[string]*Leaser
}{m: map[string]*Leaser{}}

func leaserFor(t LeaseTable, table, consumer, stream, owner string, d time.Duration) *Leaser {
	leasers.Lock()
	defer leasers.Unlock()
	k := table + "\x00" + consumer + "\x00" + stream + "\x00" + owner
	l := leasers.m[k]
	if l == nil {
		l = NewLeaser(t, stream, owner, d, nil)
		leasers.m[k] = l
	}
	return l
}

// StopLeases frees every lease owner holds in this process (once the
// reads in progress end) and removes its heartbeats: the end of a job that
// read with ReadConfig.LeaseOwner, so that other instances take its shards
// without waiting for the leases to lapse.
func StopLeases(ctx context.Context, owner string) {
	leasers.Lock()
	var stop []*Leaser
	for k, l := range leasers.m {
		if l.owner == owner {
			stop = append(stop, l)
			delete(leasers.m, k)
		}
	}
	leasers.Unlock()
	for _, l := range stop {
		l.Stop(ctx)
	}
}

// parentEnded asks the checkpoint table, at most every endedCheckEvery per
// parent, whether parent ended (with leases, the Leaser's last read of the
// table first).
func (f *readFn) parentEnded(ctx context.Context, parent string) bool {
	if f.lease != nil && f.lease.Ended(parent) {
		return true // the Leaser's last read of the same table said so
	}
	if f.ends == nil || time.Since(f.checked[parent]) < endedCheckEvery {
		return false
	}
	f.checked[parent] = time.Now()
	ended, err := f.ends.Ended(ctx, f.Stream, parent)
	if err != nil {
		log.Warnf(ctx, "kinesisio: %v (asking again)", err)
	}
	return ended
}

func (f *readFn) CreateInitialRestriction(w shardWork) shardRestriction {
	return shardRestriction{Shard: w.Shard, Kind: w.Kind, Sequence: w.Sequence, Millis: w.Millis,
		StartKind: w.Kind, StartSequence: w.Sequence, StartMillis: w.Millis}
}

func (f *readFn) SplitRestriction(_ shardWork, r shardRestriction) []shardRestriction {
	return []shardRestriction{r}
}

func (f *readFn) RestrictionSize(_ shardWork, _ shardRestriction) float64 { return 1 }

func (f *readFn) CreateTracker(r shardRestriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(newShardTracker(r))
}

func (f *readFn) InitialWatermarkEstimatorState(et beam.EventTime, _ shardRestriction, _ shardWork) int64 {
	return int64(et)
}

func (f *readFn) CreateWatermarkEstimator(ms int64) *watermarkEstimator {
	return &watermarkEstimator{state: ms}
}

func (f *readFn) WatermarkEstimatorState(e *watermarkEstimator) int64 { return e.state }

// readers keeps the ShardReader of each shard between ProcessElement calls,
// process-wide (a runner may resume a restriction on another DoFn
// instance), keyed by run and shard. A call takes its shard's reader out
// and puts it back when it checkpoints, so no reader is shared.
var readers = struct {
	sync.Mutex
	m map[string]*ShardReader
}{m: map[string]*ShardReader{}}

// takeReader returns the kept reader of shard if it is at pos, else a new one.
func (f *readFn) takeReader(shard string, pos Position, poll time.Duration) *ShardReader {
	readers.Lock()
	defer readers.Unlock()
	k := f.Run + "/" + shard
	r := readers.m[k]
	delete(readers.m, k)
	if r != nil && samePosition(r.Position(), pos) && !r.Closed() {
		return r
	}
	return NewShardReader(f.api, f.Stream, shard, pos, ReaderOptions{MinInterval: poll})
}

// keepReader keeps r for the next call of its shard.
func (f *readFn) keepReader(r *ShardReader) {
	readers.Lock()
	readers.m[f.Run+"/"+r.ShardID()] = r
	readers.Unlock()
}

func samePosition(a, b Position) bool {
	return a.Kind == b.Kind && a.Sequence == b.Sequence && a.Timestamp.Equal(b.Timestamp)
}

func (f *readFn) ProcessElement(ctx context.Context, we *watermarkEstimator, rt *sdf.LockRTracker, w shardWork,
	emit func(beam.EventTime, ShardPage)) (sdf.ProcessContinuation, error) {
	rest := rt.GetRestriction().(shardRestriction)
	if rest.Done {
		return sdf.StopProcessing(), nil
	}
	run := runOf(f.Run)
	poll := time.Duration(f.PollMs) * time.Millisecond
	stopIdle := time.Duration(f.StopAfterIdleMs) * time.Millisecond

	// Children only after their parents.
	for _, p := range w.Parents {
		switch run.get(p) {
		case shardFinished:
		case shardStopped:
			// The parent stopped on idle before its end: nothing of this
			// shard may be read in order.
			if rt.TryClaim(shardClaim{Pos: rest.position(), End: true}) {
				run.set(w.Shard, shardStopped)
			}
			return sdf.StopProcessing(), nil
		default:
			if !f.parentEnded(ctx, p) {
				return sdf.ResumeProcessingIn(poll), nil
			}
			run.set(p, shardFinished)
		}
	}

	if f.lease != nil {
		c, ok := f.leaseGate(ctx, we, rt, &rest, run, stopIdle)
		if !ok {
			return c, nil
		}
	}

	var (
		records = metrics.Counter(KinesisRecords)
		bytes   = metrics.Counter(KinesisBytes)
		pages   = metrics.Counter(KinesisPages)
		thr     = metrics.Counter(KinesisThrottles)
		behind  = beam.NewDistribution(metrics.Namespace, KinesisMillisBehind)
	)
	r := f.takeReader(w.Shard, rest.position(), poll)
	deadline := time.Now().Add(maxReadTime)
	for {
		before := r.Stats()
		from := r.Position()
		rctx, done := ctx, func() {}
		if f.lease != nil {
			var h Holding
			var ok bool
			if rctx, h, done, ok = f.lease.Begin(ctx, w.Shard); !ok || h.Gen != rest.Gen {
				if ok {
					done()
				}
				// The lease ended (or changed hands) since the call began:
				// the next call sees to it.
				f.keepReader(r)
				return sdf.ResumeProcessingIn(0), nil
			}
		}
		page, err := r.Next(rctx)
		done()
		if err != nil && rctx.Err() != nil && ctx.Err() == nil {
			// The lease's time ran out during the call.
			f.keepReader(r)
			return sdf.ResumeProcessingIn(0), nil
		}
		if d := r.Stats().Throttles - before.Throttles; d > 0 {
			thr.Inc(ctx, d)
		}
		if err != nil {
			if ctx.Err() == nil && classify(err) != errFatal {
				// The reader gave up for now; its position is unchanged.
				metrics.Counter(KinesisErrors).Inc(ctx, 1)
				log.Warnf(ctx, "kinesisio: %v (retrying)", err)
				f.keepReader(r)
				return sdf.ResumeProcessingIn(retryDelay), nil
			}
			return sdf.StopProcessing(), err
		}
		n := len(page.Records)
		idle := n == 0 && !page.ShardClosed && stopIdle > 0 && run.idleFor() >= stopIdle
		if !rt.TryClaim(shardClaim{Pos: page.Position, End: page.ShardClosed || idle}) {
			// Split while the page was read: the residual starts at from,
			// and gets the page from the reader without a call. Reading it
			// again would spend a GetRecords call (five a second per
			// shard, shared by every consumer) on records already read.
			r.Unread(page, from)
			f.keepReader(r)
			metrics.Counter(KinesisPagesHeld).Inc(ctx, 1)
			return sdf.StopProcessing(), nil
		}
		behind.Update(ctx, page.MillisBehindLatest)
		metrics.SetGauge(ctx, KinesisMillisBehind, w.Shard, page.MillisBehindLatest)
		if n > 0 || page.ShardClosed {
			run.active()
			out := ShardPage{Stream: f.Stream, Shard: w.Shard, Records: make([]PageRecord, n), End: page.ShardClosed}
			if from.Kind == AfterSequence {
				out.After = from.Sequence
			}
			var size, latest int64
			for i, rec := range page.Records {
				ms := rec.ArrivalTime.UnixMilli()
				out.Records[i] = PageRecord{Data: rec.Data, Sequence: rec.Sequence, PartitionKey: rec.PartitionKey, ArrivalMillis: ms}
				size += int64(len(rec.Data))
				latest = max(latest, ms)
			}
			we.UpdateWatermark(time.UnixMilli(latest))
			emit(we.eventTime(), out)
			records.Inc(ctx, int64(n))
			bytes.Inc(ctx, size)
			pages.Inc(ctx, 1)
		}
		switch {
		case page.ShardClosed:
			run.set(w.Shard, shardFinished)
			return sdf.StopProcessing(), nil
		case idle:
			run.set(w.Shard, shardStopped)
			return sdf.StopProcessing(), nil
		case n == 0:
			if page.MillisBehindLatest == 0 {
				// Caught up: hold nothing back for an idle shard.
				we.UpdateWatermark(time.Now().Add(-poll - clockSkew))
			}
			f.keepReader(r)
			return sdf.ResumeProcessingIn(poll), nil
		case rt.IsDone():
			// Split while the page was processed downstream: the residual
			// resumes at the reader's position, with its reader.
			f.keepReader(r)
			return sdf.StopProcessing(), nil
		case time.Now().After(deadline):
			f.keepReader(r)
			return sdf.ResumeProcessingIn(0), nil
		}
	}
}

// leaseGate lets the call read only while this process holds the shard's
// lease. Not held: the shard is left to its holder, its watermark follows
// the clock as an idle shard's does, and the restriction ends once the
// lease table says the shard ended (or on StopAfterIdle).
// Held under a holding the restriction has not read under: the
// restriction moves to the lease's checkpoint (or, if there is none, to
// where the shard's reading starts: a LATEST start becomes AT_TIMESTAMP of
// the lease's first take, the same for every holder), since the previous
// holder may have read further than it committed.
func (f *readFn) leaseGate(ctx context.Context, we *watermarkEstimator, rt *sdf.LockRTracker, rest *shardRestriction, run *runState, stopIdle time.Duration) (sdf.ProcessContinuation, bool) {
	_, h, done, ok := f.lease.Begin(ctx, rest.Shard)
	metrics.SetGauge(ctx, KinesisLeasesHeld, f.Stream, int64(f.lease.Held()))
	if !ok {
		switch {
		case f.lease.Ended(rest.Shard):
			if rt.TryClaim(shardClaim{Pos: rest.position(), End: true}) {
				run.set(rest.Shard, shardFinished)
			}
			return sdf.StopProcessing(), false
		case stopIdle > 0 && run.idleFor() >= stopIdle+time.Duration(f.LeaseMs)*time.Millisecond:
			// A lease no live instance holds is taken within a lease
			// duration (a dead instance's heartbeat counts as alive until
			// then): only after that is a shard nobody reads idle.
			if rt.TryClaim(shardClaim{Pos: rest.position(), End: true}) {
				run.set(rest.Shard, shardStopped)
			}
			return sdf.StopProcessing(), false
		}
		// Nothing comes from here while another instance reads the shard:
		// hold no window of this job open (should this job take the
		// shard later, its pages are stamped at this watermark or later,
		// so none is late).
		we.UpdateWatermark(time.Now().Add(-time.Duration(f.PollMs)*time.Millisecond - clockSkew))
		return sdf.ResumeProcessingIn(f.leaseWait()), false
	}
	done()
	if h.Gen == rest.Gen {
		return nil, true
	}
	pos := rest.start()
	switch {
	case h.Checkpoint != "":
		pos = Position{Kind: AfterSequence, Sequence: h.Checkpoint}
	case pos.Kind == Latest && h.StartMillis > 0:
		// Every holder starts where the first did: LATEST asked again by
		// a later holder would skip what came in between.
		pos = Position{Kind: AtTimestamp, Timestamp: time.UnixMilli(h.StartMillis)}
	}
	if !rt.TryClaim(shardClaim{Pos: pos, Gen: h.Gen}) {
		return sdf.StopProcessing(), false
	}
	*rest = rest.at(pos)
	rest.Gen = h.Gen
	return nil, true
}

// leaseWait is how long a shard another instance holds waits before
// asking again (a lease changes hands at most every third of its duration).
func (f *readFn) leaseWait() time.Duration {
	return max(time.Duration(f.PollMs)*time.Millisecond, min(time.Second, time.Duration(f.LeaseMs)*time.Millisecond/10))
}

// String describes a shard restriction in logs.
func (r shardRestriction) String() string {
	return fmt.Sprintf("%s@%s done=%v", r.Shard, r.position(), r.Done)
}
