package dynamodbio

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/records"
)

// fast is a writer configuration with tiny backoff for tests.
var fast = WriterOptions{BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond}

// t0 is 2023-11-14T22:13:20.000Z, 13 min 20 s into an hour bucket.
const t0 = int64(1700000000000)

func TestKeys(t *testing.T) {
	h := time.Hour
	if got, want := PartitionKey("harbor", "weather", t0, 0), "harbor#weather#1699999200000"; got != want {
		t.Errorf("PartitionKey = %q, want %q", got, want)
	}
	if got, want := PartitionKey("harbor", "weather", 1699999200000, h), "harbor#weather#1699999200000"; got != want {
		t.Errorf("PartitionKey at bucket start = %q, want %q", got, want)
	}
	if got, want := PartitionKey("harbor", "weather", 1699999199999, h), "harbor#weather#1699995600000"; got != want {
		t.Errorf("PartitionKey just before = %q, want %q", got, want)
	}
	if got, want := PartitionKey("a", "m", t0, 24*time.Hour), "a#m#1699920000000"; got != want {
		t.Errorf("PartitionKey 1d bucket = %q, want %q", got, want)
	}
	if got, want := BucketStart(-1, h), int64(-3600000); got != want {
		t.Errorf("BucketStart(-1) = %d, want %d (floor)", got, want)
	}
	if got, want := SortKey(t0, "e1"), "1700000000000#e1"; got != want {
		t.Errorf("SortKey = %q, want %q", got, want)
	}
	if got, want := SortKey(42, "x"), "0000000000042#x"; got != want {
		t.Errorf("SortKey = %q, want %q", got, want)
	}
	// Time order is string order; same time, different ids never collide.
	if !(SortKey(999, "zzz") < SortKey(1000, "aaa")) || !(SortKey(9999999999, "z") < SortKey(10000000000, "a")) {
		t.Error("sort keys do not sort by time")
	}
	if SortKey(t0, "a") == SortKey(t0, "b") {
		t.Error("same time, different events: same sort key")
	}
}

func sampleEvent() *records.Event {
	return &records.Event{
		ID: "6f1e2d3c-0000-5000-8000-000000000001", Tenant: "harbor", Metric: "weather", MetricAlias: "wx",
		Timestamp: t0 + 123,
		Fields: map[string]any{
			"on": true, "off": false,
			"count": int64(42), "big": int64(1) << 62, "neg": int64(-7), "zero": int64(0),
			"temp": 21.5, "tiny": -2.25e-10, "huge": 1e100,
			"station": "KSEA", "empty": "", "unicode": "größe ☃",
			"blob": []byte{0, 1, 2, 255}, "noblob": []byte{},
			"nothing": nil,
		},
		Unknown:       map[string]string{"firmware": `"1.2.3"`, "extra": `{"a":[1,2]}`},
		SchemaVersion: 3,
		IngestTime:    t0 + 5000,
		Source:        records.Lineage{File: "/in/part-1.jsonl", Line: 17, Index: 2},
	}
}

func TestItemRoundTrip(t *testing.T) {
	ev := sampleEvent()
	item := Item(ev, ItemOptions{})
	want := map[string]string{
		AttrPK: "harbor#weather#1699999200000", AttrSK: "1700000000123#" + ev.ID,
	}
	for k, v := range want {
		if got := item[k].(*types.AttributeValueMemberS).Value; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got, want := item[AttrExpiresAt].(*types.AttributeValueMemberN).Value, fmt.Sprint(t0/1000+30*24*3600); got != want {
		t.Errorf("expires_at = %s, want %s (event seconds + 30 days)", got, want)
	}
	if got := item[AttrTimestamp].(*types.AttributeValueMemberN).Value; got != "1700000000123" {
		t.Errorf("ts = %s", got)
	}
	fields := item[AttrFields].(*types.AttributeValueMemberM).Value
	for name, typ := range map[string]string{"on": "BOOL", "count": "N", "temp": "N", "station": "S", "blob": "B", "nothing": "NULL"} {
		if got := typeName(fields[name]); got != typ {
			t.Errorf("field %s is %s, want %s", name, got, typ)
		}
	}
	got, err := EventFromItem(item)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, ev)
	}

	if _, ok := Item(ev, ItemOptions{Retention: -1})[AttrExpiresAt]; ok {
		t.Error("Retention<0 still sets expires_at")
	}
	if got := Item(ev, ItemOptions{Retention: time.Hour})[AttrExpiresAt].(*types.AttributeValueMemberN).Value; got != fmt.Sprint(t0/1000+3600) {
		t.Errorf("expires_at with 1h retention = %s", got)
	}
	// Integral floats come back as int64 (DynamoDB normalises numbers);
	// non-finite floats are kept as text.
	odd := &records.Event{ID: "x", Tenant: "t", Metric: "m", Timestamp: 1, Fields: map[string]any{
		"three": 3.0, "nan": math.NaN(), "inf": math.Inf(1),
	}}
	back, err := EventFromItem(Item(odd, ItemOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if back.Fields["three"] != int64(3) || back.Fields["nan"] != "NaN" || back.Fields["inf"] != "+Inf" {
		t.Errorf("odd numbers came back as %#v", back.Fields)
	}
	// Bad items are errors, not panics.
	for _, bad := range []map[string]types.AttributeValue{
		{},
		{AttrTenant: &types.AttributeValueMemberN{Value: "1"}},
		{AttrTenant: s("t"), AttrMetric: s("m"), AttrEventID: s("e"), AttrTimestamp: s("x")},
		{AttrTenant: s("t"), AttrMetric: s("m"), AttrEventID: s("e"), AttrTimestamp: n(1), AttrFields: s("x")},
	} {
		if _, err := EventFromItem(bad); err == nil {
			t.Errorf("EventFromItem(%v) = nil error", bad)
		}
	}
}

// events returns n events of tenant/metric spaced step ms apart from start;
// every 10th event shares its timestamp with the previous one.
func events(tenant, metric string, start int64, n int, step int64) []*records.Event {
	evs := make([]*records.Event, n)
	ts := start
	for i := range evs {
		if i%10 != 9 {
			ts += step
		}
		evs[i] = &records.Event{
			ID: fmt.Sprintf("ev-%s-%s-%05d", tenant, metric, i), Tenant: tenant, Metric: metric, MetricAlias: metric,
			Timestamp: ts, SchemaVersion: 1, IngestTime: t0,
			Fields: map[string]any{"i": int64(i), "v": float64(i) + 0.5},
			Source: records.Lineage{File: "f", Line: int64(i + 1)},
		}
	}
	return evs
}

// itemsOf returns the items of evs under the keys of a new table's layout
// (v2, DefaultShards for every metric).
func itemsOf(evs []*records.Event) []map[string]types.AttributeValue {
	items := make([]map[string]types.AttributeValue, len(evs))
	for i, ev := range evs {
		items[i] = Item(ev, ItemOptions{})
		items[i][AttrPK] = s(PartitionKey(ev.Tenant, ev.Metric, ev.Timestamp, 0) + "#" + strconv.Itoa(shardOf(ev.ID, DefaultShards)))
	}
	return items
}

// placed puts items under the keys of table's recorded layout.
func placed(t *testing.T, api API, table string, items []map[string]types.AttributeValue) []map[string]types.AttributeValue {
	t.Helper()
	l, err := OpenLayout(context.Background(), api, table, LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := l.Place(context.Background(), it, ""); err != nil {
			t.Fatal(err)
		}
	}
	return items
}

// setup starts dynalite and returns a real client and a fresh table.
func setup(t *testing.T) (*dynamodb.Client, func(t *testing.T) string) {
	testenv.DynamoDB(t)
	client, err := NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return client, func(t *testing.T) string {
		table := testenv.UniqueName(t, "nearline")
		if _, err := EnsureTable(context.Background(), client, table, LayoutOptions{}); err != nil {
			t.Fatal(err)
		}
		return table
	}
}

func count(t *testing.T, c *dynamodb.Client, table string) int {
	t.Helper()
	n := 0
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: aws.String(table), Select: types.SelectCount,
		FilterExpression: aws.String("NOT begins_with(pk, :meta)"), ExpressionAttributeValues: map[string]types.AttributeValue{":meta": s(metaPrefix)}})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += int(page.Count)
	}
	return n
}

func queryAll(t *testing.T, api API, table, tenant, metric string, from, to int64) []*records.Event {
	t.Helper()
	var got []*records.Event
	if _, err := Query(context.Background(), api, table, tenant, metric, from, to, func(ev *records.Event) error {
		got = append(got, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func ids(evs []*records.Event) []string {
	s := make([]string, len(evs))
	for i, ev := range evs {
		s[i] = ev.ID
	}
	return s
}

func checkConserved(t *testing.T, st WriteStats, failed []FailedItem, input int) {
	t.Helper()
	if st.Written+st.Duplicates+int64(len(failed)) != int64(input) || st.Failed != int64(len(failed)) {
		t.Fatalf("not conserved: written %d + duplicates %d + failed %d (stats %d) != input %d",
			st.Written, st.Duplicates, len(failed), st.Failed, input)
	}
	for _, f := range failed {
		if f.Reason == "" || f.Item == nil {
			t.Fatalf("failed item without reason or item: %+v", f)
		}
	}
}

func TestNearline(t *testing.T) {
	ctx := context.Background()
	client, newTable := setup(t)

	t.Run("CreateTableIdempotent", func(t *testing.T) {
		table := testenv.UniqueName(t, "nearline")
		rep, err := EnsureTable(ctx, client, table, LayoutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Created || rep.Status != "ACTIVE" || rep.TTL == "" {
			t.Fatalf("first EnsureTable: %+v", rep)
		}
		t.Logf("TTL: %s", rep.TTL)
		rep, err = EnsureTable(ctx, client, table, LayoutOptions{})
		if err != nil {
			t.Fatalf("second EnsureTable: %v", err)
		}
		if rep.Created || rep.Status != "ACTIVE" {
			t.Fatalf("second EnsureTable: %+v", rep)
		}
		if err := CreateTable(ctx, client, table, LayoutOptions{}); err != nil {
			t.Fatalf("CreateTable on an existing table: %v", err)
		}
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatal(err)
		}
		if bm := out.Table.BillingModeSummary; bm == nil || bm.BillingMode != types.BillingModePayPerRequest {
			t.Errorf("billing mode = %+v, want PAY_PER_REQUEST", bm)
		}
		if err := checkKeySchema(out.Table); err != nil {
			t.Error(err)
		}
	})

	t.Run("RoundTripThroughService", func(t *testing.T) {
		table := newTable(t)
		ev := sampleEvent()
		st, failed, err := WriteItems(ctx, client, table, placed(t, client, table, []map[string]types.AttributeValue{Item(ev, ItemOptions{})}), fast)
		if err != nil || len(failed) > 0 || st.Written != 1 {
			t.Fatalf("write: %+v %v %v", st, failed, err)
		}
		got := queryAll(t, client, table, ev.Tenant, ev.Metric, ev.Timestamp, ev.Timestamp+1)
		if len(got) != 1 {
			t.Fatalf("query returned %d events", len(got))
		}
		if !reflect.DeepEqual(got[0], ev) {
			t.Errorf("through DynamoDB:\n got %#v\nwant %#v", got[0], ev)
		}
	})

	t.Run("WriteAndQueryRange", func(t *testing.T) {
		table := newTable(t)
		// 1000 events, ~17 s apart: about 4.3 hours, 5–6 buckets.
		evs := events("harbor", "weather", t0, 1000, 17_000)
		other := append(events("harbor", "weather2", t0, 50, 17_000), events("quay", "weather", t0, 50, 17_000)...)
		start := time.Now()
		st, failed, err := WriteItems(ctx, client, table, placed(t, client, table, itemsOf(append(evs, other...))), fast)
		if err != nil || len(failed) > 0 {
			t.Fatalf("write: %v, %d failed", err, len(failed))
		}
		t.Logf("wrote 1100 items in %v: %+v", time.Since(start), st)
		if st.Written != 1100 || st.Calls != 44 || st.Retries != 0 {
			t.Errorf("stats %+v, want 1100 written in 44 calls", st)
		}
		// from and to are event timestamps: from is in, to is out.
		from, to := evs[123].Timestamp, evs[877].Timestamp
		if BucketStart(from, 0) == BucketStart(to, 0) {
			t.Fatal("test range does not span buckets")
		}
		var want []*records.Event
		for _, ev := range evs {
			if ev.Timestamp >= from && ev.Timestamp < to {
				want = append(want, ev)
			}
		}
		sort.SliceStable(want, func(i, j int) bool {
			if want[i].Timestamp != want[j].Timestamp {
				return want[i].Timestamp < want[j].Timestamp
			}
			return want[i].ID < want[j].ID
		})
		start = time.Now()
		got := queryAll(t, client, table, "harbor", "weather", from, to)
		t.Logf("query of %d events over %d buckets in %v", len(got), (BucketStart(to-1, 0)-BucketStart(from, 0))/3600000+1, time.Since(start))
		if !reflect.DeepEqual(ids(got), ids(want)) {
			t.Fatalf("query returned %d events, want %d; first diff at %d", len(got), len(want), firstDiff(ids(got), ids(want)))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("event %d:\n got %#v\nwant %#v", i, got[i], want[i])
			}
		}
		if got := queryAll(t, client, table, "harbor", "weather", to, from); len(got) != 0 {
			t.Errorf("empty range returned %d events", len(got))
		}
		if got := queryAll(t, client, table, "harbor", "weather", t0-10*3600_000, t0); len(got) != 0 {
			t.Errorf("range before the data returned %d events", len(got))
		}
		stop := errors.New("stop")
		n := 0
		_, err = Query(ctx, client, table, "harbor", "weather", from, to, func(*records.Event) error {
			n++
			if n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 3 {
			t.Errorf("Query did not stop at fn's error: %v after %d", err, n)
		}
	})

	t.Run("DuplicatesInBatchAndReplay", func(t *testing.T) {
		table := newTable(t)
		evs := events("harbor", "weather", t0, 30, 1000)
		items := itemsOf(evs)
		// Same key again inside the first batch, with a different value: last wins.
		changed := *evs[3]
		changed.Fields = map[string]any{"i": int64(-1)}
		items = append(items[:10], append([]map[string]types.AttributeValue{Item(&changed, ItemOptions{})}, items[10:]...)...)
		items = append(items, Item(evs[29], ItemOptions{}))
		st, failed, err := WriteItems(ctx, client, table, placed(t, client, table, items), fast)
		if err != nil || len(failed) > 0 {
			t.Fatalf("write: %v %v", err, failed)
		}
		checkConserved(t, st, failed, len(items))
		if st.Written != 30 || st.Duplicates != 2 {
			t.Errorf("stats %+v, want 30 written, 2 duplicates", st)
		}
		got := queryAll(t, client, table, "harbor", "weather", t0, t0+3*3600_000)
		if len(got) != 30 {
			t.Fatalf("%d events in the table, want 30", len(got))
		}
		for _, ev := range got {
			if ev.ID == evs[3].ID && ev.Fields["i"] != int64(-1) {
				t.Errorf("duplicate merge kept the first item, not the last: %v", ev.Fields)
			}
		}
		// Replay: the same items again change nothing.
		if _, failed, err := WriteItems(ctx, client, table, placed(t, client, table, itemsOf(evs)), fast); err != nil || len(failed) > 0 {
			t.Fatalf("replay: %v %v", err, failed)
		}
		if n := count(t, client, table); n != 30 {
			t.Errorf("after replay the table holds %d items, want 30", n)
		}
	})

	t.Run("ValidationErrorFailsOnlyBadItems", func(t *testing.T) {
		table := newTable(t)
		evs := events("harbor", "weather", t0, 60, 1000)
		evs[7].Fields["bad"] = 1e200   // beyond DynamoDB's number range
		evs[41].Fields["bad"] = -1e300 // and another, in another batch
		items := itemsOf(evs)
		st, failed, err := WriteItems(ctx, client, table, items, fast)
		if err != nil {
			t.Fatal(err)
		}
		checkConserved(t, st, failed, len(items))
		if len(failed) != 2 {
			t.Fatalf("%d failed, want 2: %+v", len(failed), failed)
		}
		for _, f := range failed {
			id := f.Item[AttrEventID].(*types.AttributeValueMemberS).Value
			if id != evs[7].ID && id != evs[41].ID {
				t.Errorf("good item %s failed: %s", id, f.Reason)
			}
			if !strings.Contains(f.Reason, "ValidationException") {
				t.Errorf("reason %q does not name the service error", f.Reason)
			}
		}
		t.Logf("reason: %s; stats %+v", failed[0].Reason, st)
		if n := count(t, client, table); n != 58 {
			t.Errorf("table holds %d items, want 58", n)
		}
	})

	t.Run("MissingTableIsFatal", func(t *testing.T) {
		items := itemsOf(events("harbor", "weather", t0, 100, 1000))
		st, failed, err := WriteItems(ctx, client, "no-such-table", items, fast)
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Fatalf("err = %v, want ResourceNotFoundException", err)
		}
		checkConserved(t, st, failed, len(items))
		if st.Calls > 4 {
			t.Errorf("%d calls to a missing table; should stop at once", st.Calls)
		}
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// faulty wraps the real client and injects the faults no stand-in makes.
type faulty struct {
	API
	mu    sync.Mutex
	calls int
	// unprocessedCalls: the first n calls write only the first half of
	// their items and return the rest as UnprocessedItems.
	unprocessedCalls int
	// throttleCalls: the first n calls fail with a throttling error
	// (cycling through DynamoDB's three throttling codes) and write nothing.
	throttleCalls int
	// poison: items with these event ids are always returned unprocessed.
	poison map[string]bool
	// hang: every call blocks until its context ends.
	hang bool
	// unprocessedSeen counts the items returned as unprocessed.
	unprocessedSeen int
}

func (f *faulty) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	if f.hang {
		<-ctx.Done()
		return nil, &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "BatchWriteItem", Err: ctx.Err()}
	}
	if call <= f.throttleCalls {
		var err error
		switch call % 3 {
		case 0:
			err = &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
		case 1:
			err = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "injected"}
		case 2:
			err = &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "injected"}
		}
		return nil, &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "BatchWriteItem", Err: err}
	}
	var send, keep []types.WriteRequest
	for table, reqs := range in.RequestItems {
		for i, r := range reqs {
			id := r.PutRequest.Item[AttrEventID].(*types.AttributeValueMemberS).Value
			switch {
			case f.poison[id]:
				keep = append(keep, r)
			case call <= f.unprocessedCalls && i >= len(reqs)/2:
				keep = append(keep, r)
			default:
				send = append(send, r)
			}
		}
		if len(send) > 0 {
			out, err := f.API.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: send}}, o...)
			if err != nil {
				return out, err
			}
			keep = append(keep, out.UnprocessedItems[table]...)
		}
		f.mu.Lock()
		f.unprocessedSeen += len(keep)
		f.mu.Unlock()
		out := &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{}}
		if len(keep) > 0 {
			out.UnprocessedItems[table] = keep
		}
		return out, nil
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func TestWriteFaults(t *testing.T) {
	ctx := context.Background()
	client, newTable := setup(t)
	evs := events("harbor", "weather", t0, 1000, 1000)
	items := itemsOf(evs)

	t.Run("UnprocessedItems", func(t *testing.T) {
		table := newTable(t)
		f := &faulty{API: client, unprocessedCalls: 10}
		st, failed, err := WriteItems(ctx, f, table, items, fast)
		if err != nil || len(failed) > 0 {
			t.Fatalf("write: %v, %d failed", err, len(failed))
		}
		checkConserved(t, st, failed, len(items))
		// 40 batches; each of the first 10 calls leaves half its batch, which
		// costs exactly one retry (the retry itself may be among the first 10).
		if st.Retries != 10 || st.Calls != 50 || st.Unprocessed != int64(f.unprocessedSeen) || st.Written != 1000 {
			t.Errorf("stats %+v (fault saw %d unprocessed), want 10 retries, 50 calls, 1000 written", st, f.unprocessedSeen)
		}
		if n := count(t, client, table); n != 1000 {
			t.Errorf("table holds %d items, want 1000", n)
		}
	})

	t.Run("Throttling", func(t *testing.T) {
		table := newTable(t)
		f := &faulty{API: client, throttleCalls: 9}
		st, failed, err := WriteItems(ctx, f, table, items, fast)
		if err != nil || len(failed) > 0 {
			t.Fatalf("write: %v, %d failed", err, len(failed))
		}
		checkConserved(t, st, failed, len(items))
		if st.Throttles != 9 || st.Retries != 9 || st.Calls != 49 || st.Written != 1000 {
			t.Errorf("stats %+v, want 9 throttles, 9 retries, 49 calls", st)
		}
		if n := count(t, client, table); n != 1000 {
			t.Errorf("table holds %d items, want 1000", n)
		}
	})

	t.Run("BudgetExhausted", func(t *testing.T) {
		table := newTable(t)
		poison := map[string]bool{}
		for _, i := range []int{0, 1, 26, 500, 999} {
			poison[evs[i].ID] = true
		}
		f := &faulty{API: client, poison: poison}
		o := fast
		o.MaxAttempts = 4
		st, failed, err := WriteItems(ctx, f, table, items, o)
		if err != nil {
			t.Fatal(err)
		}
		checkConserved(t, st, failed, len(items))
		if len(failed) != len(poison) || st.Written != int64(len(items)-len(poison)) {
			t.Fatalf("stats %+v, %d failed; want exactly the %d poisoned items failed", st, len(failed), len(poison))
		}
		for _, fi := range failed {
			id := fi.Item[AttrEventID].(*types.AttributeValueMemberS).Value
			if !poison[id] {
				t.Errorf("item %s failed but was not poisoned", id)
			}
			if !strings.Contains(fi.Reason, "gave up after 4 attempts") || !strings.Contains(fi.Reason, "UnprocessedItems") {
				t.Errorf("reason %q", fi.Reason)
			}
		}
		// 4 batches hold poisoned items: each made 4 calls.
		if st.Calls != 40+4*3 {
			t.Errorf("%d calls, want %d", st.Calls, 40+4*3)
		}
		got := queryAll(t, client, table, "harbor", "weather", t0, t0+3*3600_000)
		if len(got) != len(items)-len(poison) {
			t.Errorf("query returned %d, want %d", len(got), len(items)-len(poison))
		}
		for _, ev := range got {
			if poison[ev.ID] {
				t.Errorf("poisoned %s is in the table", ev.ID)
			}
		}
	})

	t.Run("CancelWhileCallHangs", func(t *testing.T) {
		table := newTable(t)
		f := &faulty{API: client, hang: true}
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		st, failed, err := WriteItems(ctx, f, table, items, fast)
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("WriteItems took %v after cancel", el)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		checkConserved(t, st, failed, len(items))
		if len(failed) != len(items) {
			t.Errorf("%d failed, want all %d", len(failed), len(items))
		}
	})

	t.Run("CancelDuringBackoff", func(t *testing.T) {
		table := newTable(t)
		f := &faulty{API: client, throttleCalls: 1 << 30}
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		o := WriterOptions{BaseDelay: 10 * time.Second, MaxDelay: 10 * time.Second, MaxAttempts: 100}
		st, failed, err := WriteItems(ctx, f, table, items, o)
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("WriteItems took %v after cancel", el)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		checkConserved(t, st, failed, len(items))
	})
}

func TestClassify(t *testing.T) {
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "BatchWriteItem", Err: err}
	}
	http5xx := func(code int) error {
		return op(&awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
			Err:      errors.New("injected"),
		}})
	}
	for _, c := range []struct {
		err  error
		want errClass
	}{
		{op(&types.ProvisionedThroughputExceededException{}), errThrottle},
		{op(&smithy.GenericAPIError{Code: "ThrottlingException"}), errThrottle},
		{op(&smithy.GenericAPIError{Code: "RequestLimitExceeded"}), errThrottle},
		{op(&types.RequestLimitExceeded{}), errThrottle},
		{op(&types.InternalServerError{}), errRetry},
		{http5xx(500), errRetry},
		{http5xx(503), errRetry},
		{op(&smithy.GenericAPIError{Code: "ValidationException"}), errItems},
		{op(&types.ResourceNotFoundException{}), errFatal},
		{op(&smithy.GenericAPIError{Code: "AccessDeniedException"}), errFatal},
		{http5xx(403), errFatal},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	o := WriterOptions{}.withDefaults()
	if o.MaxAttempts != 8 || o.BaseDelay != 50*time.Millisecond || o.MaxDelay != 5*time.Second {
		t.Fatalf("defaults %+v", o)
	}
	for n := 1; n <= 20; n++ {
		cap := min(o.MaxDelay, o.BaseDelay<<(n-1))
		if n > 10 {
			cap = o.MaxDelay
		}
		for range 50 {
			if d := o.backoff(n); d < 0 || d > cap {
				t.Fatalf("backoff.FullJitter(%d) = %v, want in [0, %v]", n, d, cap)
			}
		}
	}
}
