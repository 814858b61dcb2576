package dynamodbio

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/records"
)

// DefaultQueryConcurrency bounds the Query calls one query has in flight.
const DefaultQueryConcurrency = 16

// QueryStats says what a query read and what it cost.
type QueryStats struct {
	Buckets    int   // time buckets visited
	Keys       int   // partition keys queried (every shard of every bucket)
	Calls      int64 // Query calls: at least one per key, one per further page
	Items      int64 // items read
	Duplicates int64 // an event found under two keys of its bucket, passed on once
}

// Query opens table's layout (OpenLayout) and runs Layout.Query.
func Query(ctx context.Context, api API, table, tenant, metric string, from, to int64, fn func(*records.Event) error) (QueryStats, error) {
	l, err := OpenLayout(ctx, api, table, LayoutOptions{})
	if err != nil {
		return QueryStats{}, err
	}
	return l.Query(ctx, tenant, metric, from, to, fn)
}

// Query calls fn with every event of tenant and metric whose time is in
// [from, to) (epoch millis), in time order (ties by event id), each event
// once. It visits the time buckets overlapping the range one after another,
// and in each every partition key that may hold its events (ReadKeys), all
// at once with at most DefaultQueryConcurrency calls in flight, each key
// paginated; the keys' pages are merged by sort key. It never scans. Memory
// is bounded by two pages per key of one bucket. An error from fn stops the
// query and is returned.
//
// Items past their expires_at that DynamoDB has not deleted yet (that takes
// up to a few days) are returned like any other.
func (l *Layout) Query(ctx context.Context, tenant, metric string, from, to int64, fn func(*records.Event) error) (st QueryStats, err error) {
	if from >= to {
		return st, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, DefaultQueryConcurrency)
	var calls atomic.Int64
	defer func() { st.Calls = calls.Load() }()
	lo := fmt.Sprintf("%013d", from) // every sk of time from is above it
	hi := fmt.Sprintf("%013d", to)   // every sk of time to is above it; all earlier ones below
	b := bucketMillis(l.Bucket)
	for start := BucketStart(from, l.Bucket); start < to; start += b {
		keys, err := l.ReadKeys(ctx, tenant, metric, start)
		if err != nil {
			return st, err
		}
		st.Buckets++
		st.Keys += len(keys)
		if err := l.mergeKeys(ctx, keys, lo, hi, sem, &calls, &st, fn); err != nil {
			return st, err
		}
	}
	return st, nil
}

// mergeKeys reads keys (one bucket's) in parallel and passes their events
// to fn in sort-key order, once per sort key.
func (l *Layout) mergeKeys(ctx context.Context, keys []string, lo, hi string, sem chan struct{}, calls *atomic.Int64, st *QueryStats, fn func(*records.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	h := make(cursorHeap, 0, len(keys))
	cursors := make([]*cursor, len(keys))
	for i, pk := range keys {
		c := &cursor{pk: pk, pages: make(chan page, 1)}
		cursors[i] = c
		wg.Go(func() { l.readKey(ctx, c, lo, hi, sem, calls) })
	}
	for _, c := range cursors {
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	last := ""
	for len(h) > 0 {
		c := h[0]
		item, sk := c.item, c.sk
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
		st.Items++
		if sk == last {
			st.Duplicates++
			continue
		}
		last = sk
		if err := l.stores.load(ctx, item); err != nil {
			return fmt.Errorf("dynamodbio: query %s pk %s: %w", l.table, c.pk, err)
		}
		ev, err := EventFromItem(item)
		if err != nil {
			return fmt.Errorf("dynamodbio: query %s pk %s: %w", l.table, c.pk, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

// readKey pages through one key, handing pages to c until the last one or
// ctx's end. It closes c.pages when done.
func (l *Layout) readKey(ctx context.Context, c *cursor, lo, hi string, sem chan struct{}, calls *atomic.Int64) {
	defer close(c.pages)
	in := &dynamodb.QueryInput{
		TableName:                aws.String(l.table),
		KeyConditionExpression:   aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK, "#sk": AttrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(c.pk), ":lo": s(lo), ":hi": s(hi),
		},
		ScanIndexForward: aws.Bool(true),
	}
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		out, err := l.api.Query(ctx, in)
		<-sem
		calls.Add(1)
		p := page{err: err}
		if err != nil {
			p.err = fmt.Errorf("dynamodbio: query %s pk %s: %w", l.table, c.pk, err)
		} else {
			p.items = out.Items
		}
		select {
		case c.pages <- p:
		case <-ctx.Done():
			return
		}
		if err != nil || len(out.LastEvaluatedKey) == 0 {
			return
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

type page struct {
	items []map[string]types.AttributeValue
	err   error
}

// cursor is one key's position in the merge: its current item and the
// pages still to come.
type cursor struct {
	pk    string
	pages chan page
	items []map[string]types.AttributeValue
	item  map[string]types.AttributeValue
	sk    string
}

// next moves to the key's next item; false at its end.
func (c *cursor) next() (bool, error) {
	for len(c.items) == 0 {
		p, ok := <-c.pages
		if !ok {
			return false, nil
		}
		if p.err != nil {
			return false, p.err
		}
		c.items = p.items
	}
	c.item, c.items = c.items[0], c.items[1:]
	sk, ok := c.item[AttrSK].(*types.AttributeValueMemberS)
	if !ok {
		return false, fmt.Errorf("dynamodbio: item of pk %s has no string sort key", c.pk)
	}
	c.sk = sk.Value
	return true, nil
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return h[i].sk < h[j].sk }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// Get reads one event by tenant, metric, event time and id: one GetItem
// at the key the layout gives it now (nil when there is none). An event a
// writer put under the key of an N it had not yet re-read is found by
// Query, not by Get.
func (l *Layout) Get(ctx context.Context, tenant, metric string, ts int64, id string) (*records.Event, error) {
	pk, err := l.PK(ctx, tenant, metric, ts, id)
	if err != nil {
		return nil, err
	}
	out, err := l.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table),
		Key: map[string]types.AttributeValue{AttrPK: s(pk), AttrSK: s(SortKey(ts, id))}})
	if err != nil {
		return nil, fmt.Errorf("dynamodbio: get %s pk %s: %w", l.table, pk, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	if err := l.stores.load(ctx, out.Item); err != nil {
		return nil, err
	}
	return EventFromItem(out.Item)
}
