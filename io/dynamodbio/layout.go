package dynamodbio

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/backoff"
)

// Key layouts of the nearline table, recorded in the table itself.
const (
	// LayoutV1 is the layout of tables written before sharding:
	// pk "<tenant>#<metric>#<bucket>". A table with no layout record is v1.
	LayoutV1 = 1
	// LayoutV2 is the sharded layout: pk "<tenant>#<metric>#<bucket>#<shard>",
	// shard = FNV-1a(event id) mod N, N recorded per tenant and metric.
	LayoutV2 = 2
)

// Sharding defaults and bounds.
const (
	// DefaultShards is N for a metric with no recorded value: 8 keys per
	// time bucket take 8,000 write units a second, 8x DynamoDB's
	// per-partition-key limit, at the price of 8 Query calls per bucket read.
	DefaultShards = 8
	// MaxShards bounds N, recorded or raised.
	MaxShards = 256
	// DefaultLayoutRefresh is how often a writer re-reads a metric's
	// recorded shard counts. A raise takes effect for event times two
	// refreshes after it is recorded, so every writer knows it before then.
	DefaultLayoutRefresh = 30 * time.Second
)

// Table records: items of the nearline table that are not events. Their
// partition keys start with metaPrefix, which no tenant id can start with
// (tenant ids start with a letter or digit).
const (
	metaPrefix = "_fineo#"
	layoutPK   = metaPrefix + "layout"
	layoutSK   = "layout"
	// Every recorded shard count is one item of this partition key (sk
	// "<tenant>#<metric>#<from, 13 digits>"), so a writer re-reads them all
	// in one paginated Query per refresh, however many metrics there are.
	shardsPK = metaPrefix + "shards"

	attrLayoutVersion = "layout_version"
	attrBucketMS      = "bucket_ms"
	attrShards        = "shards"
	attrSince         = "since"
	attrFrom          = "from"
	attrReason        = "reason"
	attrRecorded      = "recorded"
)

// IsMetaKey reports whether pk is one of the table's own records (layout and
// shard counts) rather than an event.
func IsMetaKey(pk string) bool { return strings.HasPrefix(pk, metaPrefix) }

// LayoutOptions says how a Layout is created and kept. The zero value uses
// the defaults.
type LayoutOptions struct {
	// Bucket is the time bucket recorded for a table that has no layout
	// record yet (0: DefaultBucket). For a table that has one, a non-zero
	// Bucket must equal the recorded one.
	Bucket time.Duration
	// Shards is N for metrics with no recorded value, recorded when the
	// layout record is written (0: DefaultShards).
	Shards int
	// Refresh is how often a metric's shard counts are re-read (0:
	// DefaultLayoutRefresh).
	Refresh time.Duration
	// Adaptive lets writers raise a metric's N (doubling, up to MaxShards)
	// when throttling persists for it over a refresh period.
	Adaptive bool
}

func (o LayoutOptions) refresh() time.Duration {
	if o.Refresh <= 0 {
		return DefaultLayoutRefresh
	}
	return o.Refresh
}

// Layout is a nearline table's key layout as recorded in the table: which
// partition key an event is written under, and which keys a read of a time
// bucket visits. It caches what it read from the table; the table is the
// truth, so any number of writers in any number of processes agree.
//
// A metric's N changes only by a record of (from, N) in the table, taking
// effect for event times at or after from, which is always at least two
// refresh periods in the future when it is written: every writer has re-read
// the metric by then, so an event maps to one key. Should a writer still
// use a stale N (a process stalled for longer), the event is written under
// two keys of the same bucket; reads visit every key of the bucket and merge
// by sort key, so it is still read once.
type Layout struct {
	api   API
	table string
	opts  LayoutOptions

	Version int
	Bucket  time.Duration
	// Shards is N for metrics with no recorded value.
	Shards int
	// Since is the first event time (epoch millis) written in the v2
	// layout; earlier events of a table upgraded from v1 keep v1 keys.
	Since int64

	stores stores // overflow stores of large items

	mu       sync.Mutex
	steps    map[[2]string][]shardStep // recorded counts by tenant and metric, by From
	loaded   time.Time                 // when steps were read
	adaptive map[[2]string]*adaptState
}

// shardStep is a recorded N, in force for event times from From on.
type shardStep struct {
	From   int64
	Shards int
}

// adaptState is what a writer saw of one metric's throttling lately.
type adaptState struct {
	written, throttled int64
	windowStart        time.Time
	raisedUntil        int64 // no new raise before this time (epoch millis)
}

// OpenLayout reads table's layout record. A table without one is read and
// written in the v1 layout. It does not write.
func OpenLayout(ctx context.Context, api API, table string, o LayoutOptions) (*Layout, error) {
	l := &Layout{api: api, table: table, opts: o, adaptive: map[[2]string]*adaptState{}}
	rec, err := l.getLayoutRecord(ctx)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		l.Version, l.Bucket, l.Since = LayoutV1, bucketOr(o.Bucket), math.MaxInt64
		return l, nil
	}
	return l, l.apply(rec)
}

// InitLayout is OpenLayout for writers: a table without a layout record
// gets one. An empty table gets the v2 layout for all time; a table that
// already holds events (written in v1) is upgraded: events from two refresh
// periods from now on get v2 keys, earlier ones keep v1 keys, and reads
// visit both where they meet. Writers of older Fineo versions must be
// stopped first: what they write after that point is not read. Two
// processes racing to write the record agree on the one that lands first.
func InitLayout(ctx context.Context, api API, table string, o LayoutOptions) (*Layout, error) {
	l, err := OpenLayout(ctx, api, table, o)
	if err != nil || l.Version != LayoutV1 {
		return l, err
	}
	since := int64(math.MinInt64)
	empty, err := l.hasNoEvents(ctx)
	if err != nil {
		return nil, err
	}
	if !empty {
		since = time.Now().Add(2 * o.refresh()).UnixMilli()
	}
	shards := o.Shards
	if shards <= 0 {
		shards = DefaultShards
	}
	if shards > MaxShards {
		return nil, fmt.Errorf("dynamodbio: %d shards is over the most, %d", shards, MaxShards)
	}
	item := map[string]types.AttributeValue{
		AttrPK: s(layoutPK), AttrSK: s(layoutSK),
		attrLayoutVersion: n(LayoutV2), attrBucketMS: n(bucketMillis(o.Bucket)), attrShards: n(int64(shards)),
		attrSince: n(since), attrRecorded: s(time.Now().UTC().Format(time.RFC3339)),
	}
	err = retryMeta(ctx, func() error {
		_, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item,
			ConditionExpression: aws.String("attribute_not_exists(#pk)"), ExpressionAttributeNames: map[string]string{"#pk": AttrPK}})
		return err
	})
	var lost *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &lost) {
		return nil, fmt.Errorf("dynamodbio: record layout of %s: %w", table, err)
	}
	return OpenLayout(ctx, api, table, o)
}

func bucketOr(b time.Duration) time.Duration {
	if b <= 0 {
		return DefaultBucket
	}
	return b
}

func (l *Layout) getLayoutRecord(ctx context.Context) (map[string]types.AttributeValue, error) {
	var out *dynamodb.GetItemOutput
	err := retryMeta(ctx, func() (err error) {
		out, err = l.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{AttrPK: s(layoutPK), AttrSK: s(layoutSK)}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dynamodbio: read layout of %s: %w", l.table, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

func (l *Layout) apply(rec map[string]types.AttributeValue) error {
	v, err1 := numAttr(rec, attrLayoutVersion)
	b, err2 := numAttr(rec, attrBucketMS)
	sh, err3 := numAttr(rec, attrShards)
	since, err4 := numAttr(rec, attrSince)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("dynamodbio: layout record of %s: %w", l.table, err)
	}
	if v != LayoutV2 {
		return fmt.Errorf("dynamodbio: table %s has key layout version %d; this build reads versions %d and %d", l.table, v, LayoutV1, LayoutV2)
	}
	if b <= 0 || sh <= 0 || sh > MaxShards {
		return fmt.Errorf("dynamodbio: layout record of %s: bucket %d ms, %d shards", l.table, b, sh)
	}
	l.Version, l.Bucket, l.Shards, l.Since = int(v), time.Duration(b)*time.Millisecond, int(sh), since
	if l.opts.Bucket > 0 && l.opts.Bucket != l.Bucket {
		return fmt.Errorf("dynamodbio: table %s records time buckets of %s, not %s (--bucket)", l.table, l.Bucket, l.opts.Bucket)
	}
	return nil
}

func numAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("no number %q", name)
	}
	return strconv.ParseInt(v.Value, 10, 64)
}

// hasNoEvents reports whether table holds no event item (one Scan page of
// one item, records left out).
func (l *Layout) hasNoEvents(ctx context.Context) (bool, error) {
	sc, ok := l.api.(interface {
		Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	})
	if !ok {
		return true, nil
	}
	in := &dynamodb.ScanInput{TableName: aws.String(l.table), Limit: aws.Int32(25)}
	for range 8 {
		var out *dynamodb.ScanOutput
		err := retryMeta(ctx, func() (err error) { out, err = sc.Scan(ctx, in); return err })
		if err != nil {
			return false, fmt.Errorf("dynamodbio: scan %s: %w", l.table, err)
		}
		for _, it := range out.Items {
			if pk, ok := it[AttrPK].(*types.AttributeValueMemberS); ok && !IsMetaKey(pk.Value) {
				return false, nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return true, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return false, nil // many records and no answer yet: treat as written
}

// retryMeta runs a call on the table's records with a few retries on
// throttling and server errors: records are read rarely, and a writer
// cannot go on without them.
func retryMeta(ctx context.Context, call func() error) error {
	var err error
	for attempt := 1; attempt <= 6; attempt++ {
		if err = call(); err == nil {
			return nil
		}
		if c := classify(err); c != errThrottle && c != errRetry {
			return err
		}
		if serr := backoff.Sleep(ctx, backoff.FullJitter(50*time.Millisecond, 2*time.Second, attempt)); serr != nil {
			return err
		}
	}
	return err
}

// stepsOf returns tenant's metric's recorded counts, the table's records
// re-read when older than the refresh period. When a re-read fails, the
// counts read before stay in use (a raise is recorded ahead of its time);
// with none read yet it is an error.
func (l *Layout) stepsOf(ctx context.Context, tenant, metric string) ([]shardStep, error) {
	if l.Version == LayoutV1 {
		return nil, nil
	}
	l.mu.Lock()
	fresh := !l.loaded.IsZero() && time.Since(l.loaded) < l.opts.refresh()
	l.mu.Unlock()
	if !fresh {
		all, err := l.readSteps(ctx)
		l.mu.Lock()
		switch {
		case err == nil:
			l.steps, l.loaded = all, time.Now()
		case l.loaded.IsZero():
			l.mu.Unlock()
			return nil, err
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.steps[[2]string{tenant, metric}], nil
}

// readSteps reads every recorded shard count of the table.
func (l *Layout) readSteps(ctx context.Context) (map[[2]string][]shardStep, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(shardsPK)},
		ConsistentRead:            aws.Bool(true),
	}
	all := map[[2]string][]shardStep{}
	for {
		var out *dynamodb.QueryOutput
		err := retryMeta(ctx, func() (err error) { out, err = l.api.Query(ctx, in); return err })
		if err != nil {
			return nil, fmt.Errorf("dynamodbio: read shard counts of %s: %w", l.table, err)
		}
		for _, it := range out.Items {
			tenant, ok1 := it[AttrTenant].(*types.AttributeValueMemberS)
			metric, ok2 := it[AttrMetric].(*types.AttributeValueMemberS)
			from, err1 := numAttr(it, attrFrom)
			sh, err2 := numAttr(it, attrShards)
			if err := errors.Join(err1, err2); err != nil || !ok1 || !ok2 || sh <= 0 || sh > MaxShards {
				return nil, fmt.Errorf("dynamodbio: a shard record of %s is malformed (%v, %d shards)", l.table, err, sh)
			}
			k := [2]string{tenant.Value, metric.Value}
			all[k] = append(all[k], shardStep{From: from, Shards: int(sh)})
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	for _, st := range all {
		sort.Slice(st, func(i, j int) bool { return st[i].From < st[j].From })
	}
	return all, nil
}

// shardsAt returns N for an event at ts under steps; 0 means the v1 key.
func (l *Layout) shardsAt(steps []shardStep, ts int64) int {
	if l.Version == LayoutV1 || ts < l.Since {
		return 0
	}
	n := l.Shards
	for _, st := range steps {
		if st.From > ts {
			break
		}
		n = max(n, st.Shards) // N never goes down
	}
	return n
}

// shardOf is the shard of an event id among n.
func shardOf(id string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// PK returns the partition key of tenant's metric's event id at ts.
func (l *Layout) PK(ctx context.Context, tenant, metric string, ts int64, id string) (string, error) {
	steps, err := l.stepsOf(ctx, tenant, metric)
	if err != nil {
		return "", err
	}
	return l.pk(tenant, metric, ts, id, l.shardsAt(steps, ts)), nil
}

func (l *Layout) pk(tenant, metric string, ts int64, id string, shards int) string {
	base := PartitionKey(tenant, metric, ts, l.Bucket)
	if shards == 0 {
		return base
	}
	return base + "#" + strconv.Itoa(shardOf(id, shards))
}

// ReadKeys returns every partition key that may hold tenant's metric's
// events of the time bucket starting at bucketStart: the v1 key where the
// bucket reaches before Since, and shards 0..N-1 for the largest N in force
// at any time of the bucket.
func (l *Layout) ReadKeys(ctx context.Context, tenant, metric string, bucketStart int64) ([]string, error) {
	steps, err := l.stepsOf(ctx, tenant, metric)
	if err != nil {
		return nil, err
	}
	end := bucketStart + bucketMillis(l.Bucket) // exclusive
	base := tenant + "#" + metric + "#" + strconv.FormatInt(bucketStart, 10)
	var keys []string
	if l.Version == LayoutV1 || bucketStart < l.Since {
		keys = append(keys, base)
	}
	if l.Version == LayoutV1 || end <= l.Since {
		return keys, nil
	}
	n := l.shardsAt(steps, max(bucketStart, l.Since))
	for _, st := range steps {
		if st.From < end {
			n = max(n, st.Shards)
		}
	}
	for i := range n {
		keys = append(keys, base+"#"+strconv.Itoa(i))
	}
	return keys, nil
}

// ShardCount is a recorded N of one metric.
type ShardCount struct {
	From   int64 // event time (epoch millis) from which it is in force
	Shards int
}

// ShardCounts returns tenant's metric's recorded counts, oldest first, and
// the table's default for metrics without one.
func (l *Layout) ShardCounts(ctx context.Context, tenant, metric string) (def int, counts []ShardCount, err error) {
	all, err := l.readSteps(ctx)
	for _, st := range all[[2]string{tenant, metric}] {
		counts = append(counts, ShardCount(st))
	}
	return l.Shards, counts, err
}

// Raise records N = shards for tenant's metric from two refresh periods
// from now on. N never goes down: a value not above the one in force then
// is refused. reason is kept with the record.
func (l *Layout) Raise(ctx context.Context, tenant, metric string, shards int, reason string) (ShardCount, error) {
	if l.Version == LayoutV1 {
		return ShardCount{}, fmt.Errorf("dynamodbio: table %s has the v1 key layout (one key per bucket); a writer of this version upgrades it", l.table)
	}
	if shards > MaxShards {
		return ShardCount{}, fmt.Errorf("dynamodbio: %d shards is over the most, %d", shards, MaxShards)
	}
	all, err := l.readSteps(ctx)
	if err != nil {
		return ShardCount{}, err
	}
	from := time.Now().Add(2 * l.opts.refresh()).UnixMilli()
	cur := l.shardsAt(all[[2]string{tenant, metric}], math.MaxInt64)
	if shards <= cur {
		return ShardCount{}, fmt.Errorf("dynamodbio: %s of tenant %s already has %d shards in %s; N is never lowered", metric, tenant, cur, l.table)
	}
	item := map[string]types.AttributeValue{
		AttrPK: s(shardsPK), AttrSK: s(fmt.Sprintf("%s#%s#%013d", tenant, metric, max(from, 0))),
		AttrTenant: s(tenant), AttrMetric: s(metric), attrFrom: n(from), attrShards: n(int64(shards)), attrReason: s(reason),
		attrRecorded: s(time.Now().UTC().Format(time.RFC3339)),
	}
	err = retryMeta(ctx, func() error {
		_, err := l.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item})
		return err
	})
	if err != nil {
		return ShardCount{}, fmt.Errorf("dynamodbio: record %d shards for %s/%s in %s: %w", shards, tenant, metric, l.table, err)
	}
	l.mu.Lock()
	l.loaded = time.Time{} // re-read on next use
	if a := l.adaptive[[2]string{tenant, metric}]; a != nil {
		a.raisedUntil = from + l.opts.refresh().Milliseconds()
	}
	l.mu.Unlock()
	return ShardCount{From: from, Shards: shards}, nil
}

// writeCount is one write's items of one metric: written, and attempts
// throttled (an item held back twice counts twice).
type writeCount struct{ written, throttled int64 }

// observe takes one write's counts per tenant and metric. With Adaptive, a
// metric whose throttled attempts within a refresh period reach 100 and a
// tenth of its written items gets N doubled (up to MaxShards), at most once
// per refresh period after the last raise took effect. It returns the
// raises it recorded.
func (l *Layout) observe(ctx context.Context, counts map[[2]string]*writeCount) []string {
	if !l.opts.Adaptive || l.Version == LayoutV1 {
		return nil
	}
	now := time.Now()
	var due [][2]string
	l.mu.Lock()
	for tm, c := range counts {
		m := l.adaptive[tm]
		if m == nil {
			m = &adaptState{windowStart: now}
			l.adaptive[tm] = m
		}
		if now.Sub(m.windowStart) > l.opts.refresh() {
			m.written, m.throttled, m.windowStart = 0, 0, now
		}
		m.written += c.written
		m.throttled += c.throttled
		if m.throttled >= 100 && m.throttled*10 >= m.written {
			if now.UnixMilli() >= m.raisedUntil {
				due = append(due, tm)
			}
			m.written, m.throttled, m.windowStart = 0, 0, now
		}
	}
	l.mu.Unlock()
	var raised []string
	for _, tm := range due {
		// Read the records afresh: a raise another writer recorded lately
		// (pending, or in force for less than a period) is this one's too.
		all, err := l.readSteps(ctx)
		steps := all[tm]
		if err != nil || len(steps) > 0 && steps[len(steps)-1].From > now.Add(-l.opts.refresh()).UnixMilli() {
			continue
		}
		cur := l.shardsAt(steps, math.MaxInt64)
		if cur >= MaxShards {
			continue
		}
		sc, err := l.Raise(ctx, tm[0], tm[1], min(2*cur, MaxShards), "throttled")
		if err == nil {
			raised = append(raised, fmt.Sprintf("%s/%s: %d shards from %s", tm[0], tm[1], sc.Shards, time.UnixMilli(sc.From).UTC().Format(time.RFC3339)))
		}
	}
	return raised
}

// Place puts an item made elsewhere (a backup's, or Item's) under the
// partition key l gives its tenant, metric, event time and id, and makes
// it fit the item limit (an event too large even compressed goes to the
// overflow store at root). The item's own pk, whatever layout it came
// from, is replaced.
func (l *Layout) Place(ctx context.Context, item map[string]types.AttributeValue, overflow string) error {
	var tenant, metric, id string
	for name, dst := range map[string]*string{AttrTenant: &tenant, AttrMetric: &metric, AttrEventID: &id} {
		v, ok := item[name].(*types.AttributeValueMemberS)
		if !ok {
			return fmt.Errorf("item has no string %q", name)
		}
		*dst = v.Value
	}
	ts, err := numAttr(item, AttrTimestamp)
	if err != nil {
		return fmt.Errorf("item: %w", err)
	}
	pk, err := l.PK(ctx, tenant, metric, ts, id)
	if err != nil {
		return err
	}
	item[AttrPK] = s(pk)
	item[AttrSK] = s(SortKey(ts, id))
	if ItemSize(item) <= compactAbove {
		return nil
	}
	ev, err := EventFromItem(item)
	if err != nil {
		return err
	}
	return l.stores.fit(ctx, item, ev, overflow)
}
