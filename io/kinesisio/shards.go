package kinesisio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fineo-io/ingest/internal/backoff"
)

// Shard is one shard of a stream as ListShards reports it.
type Shard struct {
	ID string
	// ParentID and AdjacentParentID name the shard(s) this one was split
	// from or merged from; "" when none.
	ParentID, AdjacentParentID string
	// StartSeq is the first sequence number of the shard; EndSeq the last
	// one of a closed shard, "" while the shard is open.
	StartSeq, EndSeq string
	// HashKeyStart and HashKeyEnd bound the partition-key hashes of the
	// shard (decimal, inclusive).
	HashKeyStart, HashKeyEnd string
}

// Closed says whether the shard was closed by a split or a merge: it takes
// no new records, and a reader that reaches its end sees Page.ShardClosed.
func (s Shard) Closed() bool { return s.EndSeq != "" }

// ListShards returns every shard of stream, closed ones included, in the
// order the service lists them (by shard id), following NextToken pages.
// Throttling is retried with backoff, honouring ctx.
func ListShards(ctx context.Context, api API, stream string) ([]Shard, error) {
	var shards []Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		var out *kinesis.ListShardsOutput
		for attempt := 1; ; attempt++ {
			var err error
			out, err = api.ListShards(ctx, in)
			if err == nil {
				break
			}
			if c := classify(err); (c != errThrottle && c != errRetry) || attempt >= 8 {
				return nil, fmt.Errorf("kinesisio: list shards of %s: %w", stream, err)
			}
			if err := backoff.Sleep(ctx, backoff.FullJitter(50*time.Millisecond, 2*time.Second, attempt)); err != nil {
				return nil, fmt.Errorf("kinesisio: list shards of %s: %w", stream, err)
			}
		}
		for _, s := range out.Shards {
			sh := Shard{
				ID:               aws.ToString(s.ShardId),
				ParentID:         aws.ToString(s.ParentShardId),
				AdjacentParentID: aws.ToString(s.AdjacentParentShardId),
			}
			if r := s.SequenceNumberRange; r != nil {
				sh.StartSeq = aws.ToString(r.StartingSequenceNumber)
				sh.EndSeq = aws.ToString(r.EndingSequenceNumber)
			}
			if r := s.HashKeyRange; r != nil {
				sh.HashKeyStart = aws.ToString(r.StartingHashKey)
				sh.HashKeyEnd = aws.ToString(r.EndingHashKey)
			}
			shards = append(shards, sh)
		}
		if aws.ToString(out.NextToken) == "" {
			return shards, nil
		}
		// With NextToken the stream name must not be given.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// ReadyShards returns the shards of all that may be read now, in the order
// of all: those not in finished whose parents are all finished. finished
// holds the ids of shards that are closed and were read to their end
// (Page.ShardClosed). A parent that is not in all (it aged out of the
// retention period) counts as finished. Reading the children of a split
// or a merge only after their parents keeps the records of one partition
// key in order.
//
// A caller that also puts open shards it has read to the current end into
// finished gets them excluded too; they have no children yet.
func ReadyShards(all []Shard, finished map[string]bool) []Shard {
	known := make(map[string]bool, len(all))
	for _, s := range all {
		known[s.ID] = true
	}
	done := func(id string) bool { return id == "" || !known[id] || finished[id] }
	var ready []Shard
	for _, s := range all {
		if finished[s.ID] {
			continue
		}
		if done(s.ParentID) && done(s.AdjacentParentID) {
			ready = append(ready, s)
		}
	}
	return ready
}

// StreamAdmin is the part of the Kinesis client CreateStream uses.
// *kinesis.Client implements it.
type StreamAdmin interface {
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	StreamDescriber
}

// StreamDescriber is the part of the Kinesis client WaitActive uses.
type StreamDescriber interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// CreateStream creates a provisioned stream of shards shards unless it
// exists, and waits (at most ten seconds) until it is ACTIVE.
func CreateStream(ctx context.Context, api StreamAdmin, name string, shards int) error {
	_, err := api.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("kinesisio: creating stream %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return WaitActive(ctx, api, name)
}
