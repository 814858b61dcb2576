package dynamodbio

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/backoff"
)

// CheckpointAPI is the part of the DynamoDB client the checkpoint table
// uses: checkpoints, shard leases and worker heartbeats.
// *dynamodb.Client implements it.
type CheckpointAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ CheckpointAPI = (*dynamodb.Client)(nil)

// Checkpoint-table attributes (the key is pk = "<consumer>/<stream>", sk = shard id).
const (
	attrSeq     = "seq"     // committed: every record up to this sequence number
	attrPending = "pending" // map: committed ranges not yet joined to seq (after → last)
	attrVersion = "version" // optimistic concurrency
	attrUpdated = "updated"
	attrEnd     = "end" // the shard is closed and this is its last record: read to its end

	// startKey stands for "before the shard's first record read": the
	// After of a page that starts at the shard's start position.
	startKey = "^"
	// maxPending bounds the ranges kept per shard; past it the oldest are
	// forgotten (their records are simply read again after a restart).
	maxPending = 256
)

// Checkpoints is a streaming job's durable checkpoint table: per shard of
// a stream, the sequence number up to which every record has been
// committed (written to the nearline table and the archive). A restarted
// job resumes after it (kinesisio.ReadConfig.Resume), so a job that is
// killed at any moment loses nothing; what it reads again is rewritten to
// the same keys and file names.
//
// Commits may arrive out of order (windows of one shard committed by
// parallel workers). Each commit names the range of records it covers —
// from just after the sequence number After to Last, as kinesisio pages
// chain — and the checkpoint advances only over an unbroken chain of
// committed ranges; a range committed ahead of a gap waits in the item's
// pending map until the gap is filled. Updates use optimistic concurrency
// (a version attribute and a conditional put), so writers never lose each
// other's commits.
//
// One table serves many jobs and streams: the partition key is
// "<consumer>/<stream>", the sort key the shard id. Consumer names a job
// (two jobs reading one stream keep separate checkpoints).
//
// The same item is the shard's lease (lease.go): with Owner set, a commit
// is written only while the item names Owner as the lease's holder, so an
// instance that lost a shard's lease can never move its checkpoint
// (ErrLeaseLost; the shard's new holder reads those records again).
type Checkpoints struct {
	API      CheckpointAPI
	Table    string
	Consumer string
	// Owner, when set, is the lease holder this process commits as.
	Owner string
}

// EnsureCheckpointTable creates the checkpoint table if it does not exist
// (the same key schema as the nearline table, no TTL) and waits until it
// is ACTIVE.
func EnsureCheckpointTable(ctx context.Context, api API, table string) error {
	_, _, err := ensureTable(ctx, api, table)
	return err
}

func (c *Checkpoints) pk(stream string) string { return c.Consumer + "/" + stream }

// Load returns the committed sequence number of every shard of stream that
// has one: what to pass as kinesisio.ReadConfig.Resume.
func (c *Checkpoints) Load(ctx context.Context, stream string) (map[string]string, error) {
	leases, _, err := c.Leases(ctx, stream)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range leases {
		if l.Checkpoint != "" {
			out[l.Shard] = l.Checkpoint
		}
	}
	return out, nil
}

// Ended reports whether stream/shard is closed and every record of it,
// to its end, is committed: a child shard may be read after it, in any
// process, and after any restart or restore. It is what decides parent
// before child; a reader's own memory of a parent it read is only a
// shortcut.
func (c *Checkpoints) Ended(ctx context.Context, stream, shard string) (bool, error) {
	res, err := c.API.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(c.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			AttrPK: &types.AttributeValueMemberS{Value: c.pk(stream)},
			AttrSK: &types.AttributeValueMemberS{Value: shard},
		}})
	if err != nil {
		return false, fmt.Errorf("dynamodbio: reading checkpoint %s/%s: %w", stream, shard, err)
	}
	cp := decodeCheckpoint(res.Item)
	return cp.ended(), nil
}

// Commit records that the records of stream/shard after sequence number
// after (exclusive; "" = from the shard's start position) up to last
// (inclusive) are committed, and with end that last is the shard's last
// record (the shard is closed and was read to its end). It returns the
// shard's checkpoint after the call ("" if nothing is committed up to a
// chain from the start yet).
func (c *Checkpoints) Commit(ctx context.Context, stream, shard, after, last string, end bool) (string, error) {
	if after == "" {
		after = startKey
	}
	if last == "" {
		last = startKey
	}
	key := map[string]types.AttributeValue{
		AttrPK: &types.AttributeValueMemberS{Value: c.pk(stream)},
		AttrSK: &types.AttributeValueMemberS{Value: shard},
	}
	const attempts = 20
	for attempt := 1; ; attempt++ {
		res, err := c.API.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(c.Table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			if classify(err) == errFatal || attempt == attempts {
				return "", fmt.Errorf("dynamodbio: reading checkpoint %s/%s: %w", stream, shard, err)
			}
			if err := backoff.Sleep(ctx, backoff.FullJitter(10*time.Millisecond, time.Second, attempt)); err != nil {
				return "", err
			}
			continue
		}
		cp := decodeCheckpoint(res.Item)
		if c.Owner != "" && cp.owner != c.Owner {
			return "", fmt.Errorf("dynamodbio: checkpoint %s/%s: %w (held by %q)", stream, shard, ErrLeaseLost, cp.owner)
		}
		if cp.seq == "" {
			cp.seq = startKey
		}
		changed := after != last && cp.add(after, last)
		if end && cp.end == "" {
			cp.end, changed = last, true
		}
		if !changed {
			return cp.committed(), nil // nothing new: a range committed before
		}
		_, err = c.API.UpdateItem(ctx, c.commitUpdate(key, cp, res.Item == nil))
		if err == nil {
			return cp.committed(), nil
		}
		var lost *types.ConditionalCheckFailedException
		if !errors.As(err, &lost) && classify(err) == errFatal || attempt == attempts {
			return "", fmt.Errorf("dynamodbio: writing checkpoint %s/%s: %w", stream, shard, err)
		}
		if err := backoff.Sleep(ctx, backoff.FullJitter(10*time.Millisecond, time.Second, attempt)); err != nil {
			return "", err
		}
	}
}

// commitUpdate writes cp's checkpoint attributes, leaving the lease's
// alone, if the item is still at the version read (and, with an Owner,
// still held by it).
func (c *Checkpoints) commitUpdate(key map[string]types.AttributeValue, cp checkpoint, missing bool) *dynamodb.UpdateItemInput {
	names := map[string]string{"#seq": attrSeq, "#v": attrVersion, "#u": attrUpdated, "#p": attrPending}
	values := map[string]types.AttributeValue{
		":seq": &types.AttributeValueMemberS{Value: cp.seq},
		":nv":  &types.AttributeValueMemberN{Value: strconv.FormatInt(cp.version+1, 10)},
		":u":   &types.AttributeValueMemberS{Value: time.Now().UTC().Format(time.RFC3339Nano)},
	}
	set := "SET #seq = :seq, #v = :nv, #u = :u"
	if cp.end != "" {
		names["#end"] = attrEnd
		values[":end"] = &types.AttributeValueMemberS{Value: cp.end}
		set += ", #end = :end"
	}
	update := set + " REMOVE #p"
	if len(cp.pending) > 0 {
		m := make(map[string]types.AttributeValue, len(cp.pending))
		for a, l := range cp.pending {
			m[a] = &types.AttributeValueMemberS{Value: l}
		}
		values[":p"] = &types.AttributeValueMemberM{Value: m}
		update = set + ", #p = :p"
	}
	var cond string
	switch {
	case missing:
		names["#pk"] = AttrPK
		cond = "attribute_not_exists(#pk)"
	case cp.version == 0: // a lease taken before any commit
		cond = "attribute_not_exists(#v)"
	default:
		values[":v"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(cp.version, 10)}
		cond = "#v = :v"
	}
	if c.Owner != "" {
		names["#o"] = attrOwner
		values[":o"] = &types.AttributeValueMemberS{Value: c.Owner}
		cond += " AND #o = :o"
	}
	return &dynamodb.UpdateItemInput{TableName: aws.String(c.Table), Key: key, UpdateExpression: aws.String(update),
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: names, ExpressionAttributeValues: values}
}

// checkpoint is one shard's checkpoint item.
type checkpoint struct {
	shard   string
	seq     string
	version int64
	pending map[string]string
	end     string // the closed shard's last sequence number (startKey: it had none), once read to it
	lease
}

// ended reports whether the shard is closed and committed to its end.
func (cp *checkpoint) ended() bool { return cp.end != "" && cp.seq == cp.end }

func decodeCheckpoint(item map[string]types.AttributeValue) checkpoint {
	var cp checkpoint
	if v, ok := item[AttrSK].(*types.AttributeValueMemberS); ok {
		cp.shard = v.Value
	}
	if v, ok := item[attrSeq].(*types.AttributeValueMemberS); ok {
		cp.seq = v.Value
	}
	if v, ok := item[attrVersion].(*types.AttributeValueMemberN); ok {
		cp.version, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	if v, ok := item[attrEnd].(*types.AttributeValueMemberS); ok {
		cp.end = v.Value
	}
	cp.lease = decodeLease(item)
	if v, ok := item[attrPending].(*types.AttributeValueMemberM); ok {
		cp.pending = make(map[string]string, len(v.Value))
		for a, l := range v.Value {
			if s, ok := l.(*types.AttributeValueMemberS); ok {
				cp.pending[a] = s.Value
			}
		}
	}
	return cp
}

func (cp *checkpoint) committed() string {
	if cp.seq == startKey {
		return ""
	}
	return cp.seq
}

// add records the committed range (after, last] and reports whether the
// item changed.
func (cp *checkpoint) add(after, last string) bool {
	if cp.seq != startKey && !SequenceLess(cp.seq, last) {
		return false // at or before the checkpoint: committed before
	}
	if SequenceLess(cp.seq, after) {
		if l, ok := cp.pending[after]; ok && !SequenceLess(l, last) {
			return false
		}
		if cp.pending == nil {
			cp.pending = map[string]string{}
		}
		cp.pending[after] = last
		cp.trim()
		return true
	}
	// The range starts at or before the checkpoint: it moves it to last.
	// Then join the pending ranges that now touch it, and drop those behind.
	cp.seq = last
	for joined := true; joined; {
		joined = false
		for a, l := range cp.pending {
			if SequenceLess(cp.seq, a) {
				continue
			}
			delete(cp.pending, a)
			if SequenceLess(cp.seq, l) {
				cp.seq, joined = l, true
			}
		}
	}
	return true
}

// trim forgets the ranges furthest behind when there are too many.
func (cp *checkpoint) trim() {
	if len(cp.pending) <= maxPending {
		return
	}
	keys := make([]string, 0, len(cp.pending))
	for a := range cp.pending {
		keys = append(keys, a)
	}
	sort.Slice(keys, func(i, j int) bool { return SequenceLess(keys[i], keys[j]) })
	for _, a := range keys[:len(keys)-maxPending] {
		delete(cp.pending, a)
	}
}

// SequenceLess orders Kinesis sequence numbers (decimal strings of up to
// 128 bits): shorter is smaller, then lexically. startKey sorts first.
func SequenceLess(a, b string) bool {
	if a == startKey || b == startKey {
		return a == startKey && b != startKey
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
