package dynamodbio

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Shard leases, after the Kinesis Client Library's lease table: a shard's
// checkpoint item also says which instance reads the shard (the lease
// owner) and carries a lease counter that its owner raises on every
// renewal. Another instance that sees the counter unchanged for a whole
// lease duration takes the lease over, by a write conditioned on that
// counter, so that of two instances racing for a lease one wins; a renewal
// is conditioned on the owner, so a lease taken over is never renewed by
// the instance that lost it. Liveness is judged from counters observed on
// one's own clock, never from clocks compared across machines.
//
// Worker items (sort key WorkerPrefix + id) are the instances' heartbeats,
// a counter raised every few seconds: they tell every instance how many
// are alive, so each can aim at its share of the shards, including one
// that holds no lease yet.
const (
	attrOwner   = "lease_owner"   // the instance that holds the lease; absent: free
	attrCounter = "lease_counter" // raised by every take, renewal and release
	attrGen     = "lease_gen"     // the counter when the lease was last taken: one holding's id
	attrTaken   = "lease_taken"   // when, for people reading the table
	attrStart   = "lease_start"   // Unix millis of the shard's first take: where LATEST starts for every holder

	// WorkerPrefix starts the sort key of a worker's heartbeat item; it
	// sorts after every shard id ("shardId-…").
	WorkerPrefix = "~worker/"
)

// ErrLeaseLost: the shard's lease is not (or no longer) held by this
// owner, so the write was refused.
var ErrLeaseLost = errors.New("lease not held")

// lease is the lease part of a checkpoint item.
type lease struct {
	owner   string
	counter int64
	gen     int64
	start   int64
}

func decodeLease(item map[string]types.AttributeValue) lease {
	var l lease
	if v, ok := item[attrOwner].(*types.AttributeValueMemberS); ok {
		l.owner = v.Value
	}
	if v, ok := item[attrCounter].(*types.AttributeValueMemberN); ok {
		l.counter, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	if v, ok := item[attrGen].(*types.AttributeValueMemberN); ok {
		l.gen, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	if v, ok := item[attrStart].(*types.AttributeValueMemberN); ok {
		l.start, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	return l
}

// Lease is one shard's lease and checkpoint, as read from the table.
type Lease struct {
	Shard string
	// Owner holds the lease ("" = free); Counter is raised by its every
	// take, renewal and release; Gen is the Counter the lease was taken
	// at (the same for the whole of one holding).
	Owner        string
	Counter, Gen int64
	// Checkpoint is the committed sequence number ("" = none yet); Ended:
	// the shard is closed and committed to its end.
	Checkpoint string
	Ended      bool
	// Exists: the item exists (a lease can be taken on a missing item).
	Exists bool
	// StartMillis is when the shard's lease was first taken (Unix
	// millis): a reader that starts at LATEST with no checkpoint starts
	// AT_TIMESTAMP of it, so every holder starts where the first did.
	StartMillis int64
}

// Worker is one instance's heartbeat.
type Worker struct {
	ID      string
	Counter int64
}

func leaseOf(item map[string]types.AttributeValue) Lease {
	cp := decodeCheckpoint(item)
	return Lease{Shard: cp.shard, Owner: cp.owner, Counter: cp.counter, Gen: cp.gen,
		Checkpoint: cp.committed(), Ended: cp.ended(), Exists: item != nil, StartMillis: cp.start}
}

// Leases reads every lease and worker heartbeat of stream (one consistent
// Query of its partition).
func (c *Checkpoints) Leases(ctx context.Context, stream string) ([]Lease, []Worker, error) {
	var leases []Lease
	var workers []Worker
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(c.Table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: c.pk(stream)}},
		ConsistentRead:            aws.Bool(true),
	}
	for {
		res, err := c.API.Query(ctx, in)
		if err != nil {
			return nil, nil, fmt.Errorf("dynamodbio: reading leases of %s from %s: %w", stream, c.Table, err)
		}
		for _, it := range res.Items {
			l := leaseOf(it)
			if id, ok := strings.CutPrefix(l.Shard, WorkerPrefix); ok {
				workers = append(workers, Worker{ID: id, Counter: l.Counter})
			} else if l.Shard != "" {
				leases = append(leases, l)
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return leases, workers, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

func (c *Checkpoints) key(stream, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPK: &types.AttributeValueMemberS{Value: c.pk(stream)},
		AttrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

// update runs one conditional UpdateItem and returns the item after it;
// a failed condition is ErrLeaseLost.
func (c *Checkpoints) update(ctx context.Context, stream, sk, expr, cond string,
	names map[string]string, values map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	in := &dynamodb.UpdateItemInput{TableName: aws.String(c.Table), Key: c.key(stream, sk),
		UpdateExpression: aws.String(expr), ExpressionAttributeNames: names,
		ExpressionAttributeValues: values, ReturnValues: types.ReturnValueAllNew}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
	}
	res, err := c.API.UpdateItem(ctx, in)
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return nil, fmt.Errorf("dynamodbio: lease %s/%s: %w", stream, sk, ErrLeaseLost)
	}
	if err != nil {
		return nil, fmt.Errorf("dynamodbio: lease %s/%s: %w", stream, sk, err)
	}
	return res.Attributes, nil
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// TakeLease makes c.Owner the holder of shard's lease, if the lease is
// still as seen (its Counter; a lease that did not exist must still not
// exist). It returns the lease as taken: a new Gen, and the checkpoint to
// read on from. ErrLeaseLost: another instance changed it first.
func (c *Checkpoints) TakeLease(ctx context.Context, stream string, seen Lease) (Lease, error) {
	now := time.Now()
	names := map[string]string{"#o": attrOwner, "#c": attrCounter, "#g": attrGen, "#t": attrTaken, "#s": attrStart}
	values := map[string]types.AttributeValue{":o": str(c.Owner), ":n": num(seen.Counter + 1),
		":t": str(now.UTC().Format(time.RFC3339Nano)), ":s": num(now.UnixMilli())}
	var cond string
	switch {
	case !seen.Exists:
		names["#pk"] = AttrPK
		cond = "attribute_not_exists(#pk)"
	case seen.Counter == 0:
		cond = "attribute_not_exists(#c)" // a checkpoint from before leases
	default:
		values[":c"] = num(seen.Counter)
		cond = "#c = :c"
	}
	item, err := c.update(ctx, stream, seen.Shard, "SET #o = :o, #c = :n, #g = :n, #t = :t, #s = if_not_exists(#s, :s)", cond, names, values)
	if err != nil {
		return Lease{}, err
	}
	return leaseOf(item), nil
}

// RenewLease raises the counter of a lease c.Owner holds and returns the
// lease; ErrLeaseLost: it no longer holds it.
func (c *Checkpoints) RenewLease(ctx context.Context, stream, shard string) (Lease, error) {
	item, err := c.update(ctx, stream, shard, "ADD #c :one", "#o = :o",
		map[string]string{"#o": attrOwner, "#c": attrCounter},
		map[string]types.AttributeValue{":o": str(c.Owner), ":one": num(1)})
	if err != nil {
		return Lease{}, err
	}
	return leaseOf(item), nil
}

// ReleaseLease frees a lease c.Owner holds, so that another instance may
// take it at once; ErrLeaseLost: it did not hold it.
func (c *Checkpoints) ReleaseLease(ctx context.Context, stream, shard string) error {
	_, err := c.update(ctx, stream, shard, "REMOVE #o ADD #c :one", "#o = :o",
		map[string]string{"#o": attrOwner, "#c": attrCounter},
		map[string]types.AttributeValue{":o": str(c.Owner), ":one": num(1)})
	return err
}

// Heartbeat raises c.Owner's worker counter (creating its item).
func (c *Checkpoints) Heartbeat(ctx context.Context, stream string) error {
	_, err := c.update(ctx, stream, WorkerPrefix+c.Owner, "ADD #c :one SET #u = :u", "",
		map[string]string{"#c": attrCounter, "#u": attrUpdated},
		map[string]types.AttributeValue{":one": num(1), ":u": str(time.Now().UTC().Format(time.RFC3339Nano))})
	return err
}

// RemoveWorker deletes worker id's heartbeat item if its counter is still
// counter (id stopped, or died: a live worker's next heartbeat is not
// undone).
func (c *Checkpoints) RemoveWorker(ctx context.Context, stream, id string, counter int64) error {
	_, err := c.API.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(c.Table), Key: c.key(stream, WorkerPrefix+id),
		ConditionExpression:       aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": attrCounter},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": num(counter)}})
	var failed *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &failed) {
		return fmt.Errorf("dynamodbio: removing worker %s of %s: %w", id, stream, err)
	}
	return nil
}
