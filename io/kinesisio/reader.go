package kinesisio

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fineo-io/ingest/internal/backoff"
)

// PositionKind says how a Position is anchored in a shard.
type PositionKind int

// The kinds of Position. The zero value is TrimHorizon: a zero Position
// reads a shard from its oldest record, never skipping any.
const (
	TrimHorizon   PositionKind = iota // the oldest record still in the shard
	Latest                            // just after the newest record when the reader starts
	AtTimestamp                       // the first record that arrived at or after Timestamp
	AfterSequence                     // just after the record numbered Sequence
)

func (k PositionKind) String() string {
	switch k {
	case TrimHorizon:
		return "TRIM_HORIZON"
	case Latest:
		return "LATEST"
	case AtTimestamp:
		return "AT_TIMESTAMP"
	case AfterSequence:
		return "AFTER_SEQUENCE_NUMBER"
	}
	return fmt.Sprintf("PositionKind(%d)", int(k))
}

// Position is a place in one shard where reading starts. It is a plain
// value: store it as a checkpoint and hand it to NewShardReader to resume.
type Position struct {
	Kind      PositionKind
	Timestamp time.Time // AtTimestamp only
	Sequence  string    // AfterSequence only
}

// After returns the position just after the record numbered seq.
func After(seq string) Position { return Position{Kind: AfterSequence, Sequence: seq} }

// AtTime returns the position of the first record that arrived at or after t.
func AtTime(t time.Time) Position { return Position{Kind: AtTimestamp, Timestamp: t} }

func (p Position) String() string {
	switch p.Kind {
	case AtTimestamp:
		return "AT_TIMESTAMP " + p.Timestamp.UTC().Format(time.RFC3339Nano)
	case AfterSequence:
		return "AFTER_SEQUENCE_NUMBER " + p.Sequence
	}
	return p.Kind.String()
}

// ReaderOptions tunes a ShardReader. The zero value means the defaults.
type ReaderOptions struct {
	// MinInterval is the least time between the starts of two GetRecords
	// calls of one reader. Default 200ms, that is at most five calls per
	// second: the service's limit per shard, shared by every consumer of
	// the shard (give each of n consumers n·200ms). Negative: no pacing.
	MinInterval time.Duration
	// Limit is the most records one GetRecords call returns: 1 to 10000,
	// default 10000.
	Limit int32
	// FirstLimit is the most records the reader's first GetRecords call
	// returns, default 1000 (at most Limit): a reader that starts on a
	// backlog hands on a first page sooner, so a job starting on many
	// shards has output from all of them within moments rather than after
	// a full page of each in turn.
	FirstLimit int32
	// BaseDelay and MaxDelay bound the backoff before retry n after
	// throttling or a server error: a uniformly random delay in
	// [0, min(MaxDelay, BaseDelay·2^(n-1))] ("full jitter"). Defaults
	// 200ms and 5s.
	BaseDelay, MaxDelay time.Duration
	// MaxAttempts is how many failed calls one Next may meet (throttling,
	// server errors, expired iterators) before it returns the last error.
	// The reader stays usable: a later Next continues from the same
	// position. Default 10.
	MaxAttempts int
}

// MaxLimit is the most records one GetRecords call may return.
const MaxLimit = 10000

func (o ReaderOptions) withDefaults() ReaderOptions {
	if o.MinInterval == 0 {
		o.MinInterval = 200 * time.Millisecond
	}
	if o.Limit <= 0 || o.Limit > MaxLimit {
		o.Limit = MaxLimit
	}
	if o.FirstLimit <= 0 {
		o.FirstLimit = 1000
	}
	o.FirstLimit = min(o.FirstLimit, o.Limit)
	if o.BaseDelay <= 0 {
		o.BaseDelay = 200 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	if o.MaxDelay < o.BaseDelay {
		o.MaxDelay = o.BaseDelay
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	return o
}

// Record is one Kinesis record.
type Record struct {
	Data         []byte
	Sequence     string
	PartitionKey string
	ArrivalTime  time.Time // ApproximateArrivalTimestamp, set by the service
}

// Page is what one GetRecords call returned.
type Page struct {
	Records []Record
	// MillisBehindLatest is how far the page is behind the tip of the
	// shard; 0 means caught up. (kinesalite always says 0.)
	MillisBehindLatest int64
	// ShardClosed means the shard is closed and was read to its end: there
	// will be no more records, and the shard counts as finished for
	// ReadyShards.
	ShardClosed bool
	// LastSequence is the sequence number of the last record of the page,
	// "" when the page is empty.
	LastSequence string
	// Position is where a new reader must start to continue exactly after
	// this page (the reader's Position after it).
	Position Position
}

// ReaderStats counts what a ShardReader did.
type ReaderStats struct {
	Calls            int64 // GetRecords calls
	IteratorCalls    int64 // GetShardIterator calls
	Records          int64 // records returned
	Bytes            int64 // bytes of record data returned
	Throttles        int64 // calls that failed with throttling
	Errors           int64 // calls that failed with a server or other error
	ExpiredIterators int64 // GetRecords calls that found the iterator expired
	Waits            int64 // times the reader waited for MinInterval
}

// ShardReader reads one shard page by page. It is not safe for concurrent
// use; use one reader per shard.
type ShardReader struct {
	api    API
	stream string
	shard  string
	o      ReaderOptions

	pos    Position // where the next page starts
	iter   *string  // the current shard iterator; nil: get one from pos
	closed bool     // the shard was read to its closed end
	paged  bool     // a GetRecords call has returned (FirstLimit is spent)
	held   *Page    // a page given back by Unread: the next Next returns it

	lastCall time.Time // start of the last GetRecords call
	stats    ReaderStats

	// now and sleep pace the reader and time its backoff; tests fake them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// NewShardReader returns a reader of shardID of stream starting at start.
// It makes no call until Next.
func NewShardReader(api API, stream, shardID string, start Position, o ReaderOptions) *ShardReader {
	return &ShardReader{
		api: api, stream: stream, shard: shardID, o: o.withDefaults(), pos: start,
		now: time.Now, sleep: backoff.Sleep,
	}
}

// ShardID returns the id of the shard the reader reads.
func (r *ShardReader) ShardID() string { return r.shard }

// Position returns where a new reader must start to continue exactly after
// the records returned so far: after the last record returned, or the
// starting position while none was. A LATEST start is pinned when the
// reader gets its first iterator: it becomes AT_TIMESTAMP of the time just
// before that call, so a reader resumed from it loses nothing (it may
// repeat records that arrived within the clock skew to the service).
func (r *ShardReader) Position() Position { return r.pos }

// Closed says whether the reader reached the end of a closed shard.
func (r *ShardReader) Closed() bool { return r.closed }

// Stats returns the counters of the reader so far.
func (r *ShardReader) Stats() ReaderStats { return r.stats }

// Next returns the next page of records (possibly empty: the reader is at
// the tip of the shard, or the service skipped an empty stretch). It gets
// a shard iterator when it has none, waits for MinInterval since the last
// call, and retries with backoff on throttling and server errors; an
// expired iterator is replaced by one at Position, so no record is lost or
// repeated. After the end of a closed shard, Next returns an empty page
// with ShardClosed set and makes no call.
//
// On an error the position is unchanged: Next may be called again, or a
// new reader started from Position.
func (r *ShardReader) Next(ctx context.Context) (Page, error) {
	if p := r.held; p != nil {
		r.held = nil
		r.pos, r.closed = p.Position, p.ShardClosed
		return *p, nil
	}
	if r.closed {
		return Page{ShardClosed: true, Position: r.pos}, nil
	}
	failures := 0
	// again counts a failed call and waits before the next attempt; it
	// returns an error when the budget is spent or ctx ended.
	again := func(err error, wait bool) error {
		failures++
		if failures >= r.o.MaxAttempts {
			return fmt.Errorf("kinesisio: read %s/%s at %s: gave up after %d failed calls: %w", r.stream, r.shard, r.pos, failures, err)
		}
		if !wait {
			return ctx.Err()
		}
		if err := r.sleep(ctx, backoff.FullJitter(r.o.BaseDelay, r.o.MaxDelay, failures)); err != nil {
			return fmt.Errorf("kinesisio: read %s/%s: %w", r.stream, r.shard, err)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return Page{Position: r.pos}, fmt.Errorf("kinesisio: read %s/%s: %w", r.stream, r.shard, err)
		}
		if r.iter == nil {
			err := r.getIterator(ctx)
			if err != nil {
				switch classify(err) {
				case errThrottle:
					r.stats.Throttles++
				case errRetry:
					r.stats.Errors++
				default:
					r.stats.Errors++
					return Page{Position: r.pos}, fmt.Errorf("kinesisio: get shard iterator of %s/%s at %s: %w", r.stream, r.shard, r.pos, err)
				}
				if err := again(err, true); err != nil {
					return Page{Position: r.pos}, err
				}
				continue
			}
		}
		if err := r.pace(ctx); err != nil {
			return Page{Position: r.pos}, fmt.Errorf("kinesisio: read %s/%s: %w", r.stream, r.shard, err)
		}
		limit := r.o.Limit
		if !r.paged {
			limit = r.o.FirstLimit
		}
		r.lastCall = r.now()
		r.stats.Calls++
		out, err := r.api.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: r.iter,
			Limit:         aws.Int32(limit),
		}, ownRetries)
		if err != nil {
			wait := true
			switch classify(err) {
			case errExpired:
				r.stats.ExpiredIterators++
				r.iter = nil // get a new one at r.pos: nothing was returned past it
				wait = false
			case errThrottle:
				r.stats.Throttles++
			case errRetry:
				r.stats.Errors++
			default:
				r.stats.Errors++
				return Page{Position: r.pos}, fmt.Errorf("kinesisio: get records of %s/%s at %s: %w", r.stream, r.shard, r.pos, err)
			}
			if err := again(err, wait); err != nil {
				return Page{Position: r.pos}, err
			}
			continue
		}
		return r.page(out), nil
	}
}

// Unread gives back p, the page the last Next returned, which started at
// from (Position before that Next): Position is from again, and the next
// Next returns p without a call. A caller that read a page it may no
// longer use (a Beam restriction split while the page was read) keeps the
// page for whoever resumes at from, instead of reading it again.
func (r *ShardReader) Unread(p Page, from Position) {
	r.held = &p
	r.pos, r.closed = from, false
}

func (r *ShardReader) page(out *kinesis.GetRecordsOutput) Page {
	r.paged = true
	p := Page{MillisBehindLatest: aws.ToInt64(out.MillisBehindLatest)}
	if len(out.Records) > 0 {
		p.Records = make([]Record, len(out.Records))
		for i, rec := range out.Records {
			p.Records[i] = Record{
				Data:         rec.Data,
				Sequence:     aws.ToString(rec.SequenceNumber),
				PartitionKey: aws.ToString(rec.PartitionKey),
				ArrivalTime:  aws.ToTime(rec.ApproximateArrivalTimestamp),
			}
			r.stats.Bytes += int64(len(rec.Data))
		}
		r.stats.Records += int64(len(out.Records))
		p.LastSequence = p.Records[len(p.Records)-1].Sequence
		r.pos = After(p.LastSequence)
	}
	r.iter = out.NextShardIterator
	if r.iter == nil {
		r.closed = true
		p.ShardClosed = true
	}
	p.Position = r.pos
	return p
}

// getIterator gets a shard iterator at r.pos.
func (r *ShardReader) getIterator(ctx context.Context) error {
	in := &kinesis.GetShardIteratorInput{
		StreamName: aws.String(r.stream),
		ShardId:    aws.String(r.shard),
	}
	var pinned time.Time
	switch r.pos.Kind {
	case TrimHorizon:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case Latest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
		// Wall time on purpose (not r.now): it goes to the service.
		pinned = time.Now().Truncate(time.Millisecond)
	case AtTimestamp:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(r.pos.Timestamp)
	case AfterSequence:
		if r.pos.Sequence == "" {
			return fmt.Errorf("kinesisio: position %s has no sequence number", r.pos)
		}
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(r.pos.Sequence)
	default:
		return fmt.Errorf("kinesisio: unknown position kind %d", int(r.pos.Kind))
	}
	r.stats.IteratorCalls++
	out, err := r.api.GetShardIterator(ctx, in, ownRetries)
	if err != nil {
		return err
	}
	if out.ShardIterator == nil {
		return fmt.Errorf("kinesisio: GetShardIterator of %s/%s returned no iterator", r.stream, r.shard)
	}
	r.iter = out.ShardIterator
	if r.pos.Kind == Latest {
		r.pos = AtTime(pinned)
	}
	return nil
}

// pace waits until MinInterval has passed since the last GetRecords call.
func (r *ShardReader) pace(ctx context.Context) error {
	if r.o.MinInterval <= 0 || r.lastCall.IsZero() {
		return nil
	}
	wait := r.lastCall.Add(r.o.MinInterval).Sub(r.now())
	if wait <= 0 {
		return nil
	}
	r.stats.Waits++
	return r.sleep(ctx, wait)
}
