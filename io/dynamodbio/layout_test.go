package dynamodbio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/records"
)

// blockOf encodes evs as one staged block, as stage 1 hands them to
// WriteBlock.
func blockOf(t *testing.T, evs []*records.Event) archive.Block {
	t.Helper()
	var b archive.Block
	for _, ev := range evs {
		var err error
		if b.Data, err = archive.AppendEvent(b.Data, ev); err != nil {
			t.Fatal(err)
		}
		b.Count++
	}
	return b
}

// pks returns the distinct event partition keys in table.
func pks(t *testing.T, c *dynamodb.Client, table string) map[string]int {
	t.Helper()
	got := map[string]int{}
	testenv.ScanItems(t, c, table, AttrPK, func(it map[string]types.AttributeValue) {
		got[it[AttrPK].(*types.AttributeValueMemberS).Value]++
	})
	return got
}

func sortedByTime(evs []*records.Event) []string {
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b *records.Event) int {
		if a.Timestamp != b.Timestamp {
			return int(a.Timestamp - b.Timestamp)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ids(evs)
}

func TestShardedLayout(t *testing.T) {
	ctx := context.Background()
	client, newTable := setup(t)

	t.Run("OneMetricSpreadsOverNKeysAndReadsBackInOrder", func(t *testing.T) {
		table := newTable(t)
		l, err := OpenLayout(ctx, client, table, LayoutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l.Version != LayoutV2 || l.Shards != DefaultShards || l.Bucket != DefaultBucket {
			t.Fatalf("new table's layout: v%d, %d shards, %s", l.Version, l.Shards, l.Bucket)
		}
		// 2,000 events of one metric within one hour: one bucket.
		evs := events("harbor", "weather", t0, 2000, 1000)
		failed, err := WriteBlock(ctx, l, blockOf(t, evs), ItemOptions{}, fast)
		if err != nil || failed.Count != 0 {
			t.Fatalf("write: %v, %d failed", err, failed.Count)
		}
		keys := pks(t, client, table)
		if len(keys) != DefaultShards {
			t.Fatalf("one metric's bucket was written under %d keys, want %d: %v", len(keys), DefaultShards, keys)
		}
		for k, n := range keys {
			if !strings.HasPrefix(k, "harbor#weather#1699999200000#") || n < 2000/DefaultShards/2 {
				t.Errorf("key %s holds %d of 2000 items: not an even spread", k, n)
			}
		}
		var got []*records.Event
		st, err := l.Query(ctx, "harbor", "weather", t0, t0+3*3600_000, func(ev *records.Event) error {
			got = append(got, ev)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids(got), sortedByTime(evs)) {
			t.Fatalf("query returned %d events, want %d in time order", len(got), len(evs))
		}
		// t0..t0+3h spans the buckets of 22:00, 23:00, 00:00 and 01:00 (t0 is 22:13).
		if st.Buckets != 4 || st.Keys != 4*DefaultShards || st.Calls < int64(st.Keys) || st.Items != 2000 || st.Duplicates != 0 {
			t.Errorf("query stats %+v, want 4 buckets × %d keys", st, DefaultShards)
		}
		// A point read finds one by its key.
		if ev, err := l.Get(ctx, "harbor", "weather", evs[7].Timestamp, evs[7].ID); err != nil || ev == nil || ev.ID != evs[7].ID {
			t.Errorf("Get: %v, %v", ev, err)
		}
		if ev, err := l.Get(ctx, "harbor", "weather", evs[7].Timestamp, "no-such-id"); err != nil || ev != nil {
			t.Errorf("Get of a missing event: %v, %v", ev, err)
		}
		// The same events written again land on the same keys.
		if failed, err := WriteBlock(ctx, l, blockOf(t, evs), ItemOptions{}, fast); err != nil || failed.Count != 0 {
			t.Fatalf("rewrite: %v, %d failed", err, failed.Count)
		}
		if n := count(t, client, table); n != 2000 {
			t.Errorf("after a rewrite the table holds %d events, want 2000", n)
		}
	})

	t.Run("V1TableReadsAndUpgrades", func(t *testing.T) {
		// A table as earlier versions made it: no layout record, one key per bucket.
		table := testenv.UniqueName(t, "nearline")
		if _, _, err := ensureTable(ctx, client, table); err != nil {
			t.Fatal(err)
		}
		old := events("quay", "tide", time.Now().Add(-time.Minute).UnixMilli(), 50, 100)
		items := make([]map[string]types.AttributeValue, len(old))
		for i, ev := range old {
			items[i] = Item(ev, ItemOptions{}) // the v1 key
		}
		if _, failed, err := WriteItems(ctx, client, table, items, fast); err != nil || len(failed) > 0 {
			t.Fatalf("v1 write: %v %v", err, failed)
		}
		l, err := OpenLayout(ctx, client, table, LayoutOptions{})
		if err != nil || l.Version != LayoutV1 {
			t.Fatalf("OpenLayout of a v1 table: v%d, %v", l.Version, err)
		}
		from, to := old[0].Timestamp, time.Now().Add(time.Hour).UnixMilli()
		if got := queryIDs(t, l, "quay", "tide", from, to); !reflect.DeepEqual(got, sortedByTime(old)) {
			t.Fatalf("v1 table read back %d events, want %d", len(got), len(old))
		}
		// A writer of this version upgrades it: v2 keys from two refreshes on.
		up, err := InitLayout(ctx, client, table, LayoutOptions{Refresh: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if up.Version != LayoutV2 || up.Since <= old[len(old)-1].Timestamp || up.Since > time.Now().Add(time.Second).UnixMilli() {
			t.Fatalf("upgraded layout: v%d since %d (last v1 event %d)", up.Version, up.Since, old[len(old)-1].Timestamp)
		}
		time.Sleep(time.Until(time.UnixMilli(up.Since)))
		newer := events("quay", "tide", up.Since, 50, 10)
		if failed, err := WriteBlock(ctx, up, blockOf(t, newer), ItemOptions{}, fast); err != nil || failed.Count != 0 {
			t.Fatalf("v2 write: %v, %d failed", err, failed.Count)
		}
		v1, v2 := 0, 0
		for k := range pks(t, client, table) {
			switch strings.Count(k, "#") {
			case 2:
				v1++
			case 3:
				v2++
			}
		}
		if v1 == 0 || v2 == 0 {
			t.Errorf("after the upgrade: %d v1 and %d v2 keys, want both", v1, v2)
		}
		// Both halves read back, in order, by a reader of the recorded layout.
		reader, err := OpenLayout(ctx, client, table, LayoutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := queryIDs(t, reader, "quay", "tide", from, to); !reflect.DeepEqual(got, sortedByTime(append(old, newer...))) {
			t.Fatalf("upgraded table read back %d events, want %d", len(got), len(old)+len(newer))
		}
		// A second InitLayout keeps the record.
		again, err := InitLayout(ctx, client, table, LayoutOptions{})
		if err != nil || again.Since != up.Since {
			t.Errorf("second InitLayout: since %d, want %d (%v)", again.Since, up.Since, err)
		}
	})

	t.Run("RaiseTakesEffectAheadAndIsNeverLowered", func(t *testing.T) {
		table := testenv.UniqueName(t, "nearline")
		if _, err := EnsureTable(ctx, client, table, LayoutOptions{Shards: 2}); err != nil {
			t.Fatal(err)
		}
		o := LayoutOptions{Refresh: 100 * time.Millisecond}
		writer, err := OpenLayout(ctx, client, table, o)
		if err != nil {
			t.Fatal(err)
		}
		stale, err := OpenLayout(ctx, client, table, LayoutOptions{Refresh: time.Hour}) // a writer that will not re-read in time
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		before := events("harbor", "hot", now, 40, 1)
		if failed, err := WriteBlock(ctx, stale, blockOf(t, before), ItemOptions{}, fast); err != nil || failed.Count != 0 {
			t.Fatalf("write: %v, %d failed", err, failed.Count)
		}
		sc, err := writer.Raise(ctx, "harbor", "hot", 16, "test")
		if err != nil {
			t.Fatal(err)
		}
		if sc.Shards != 16 || sc.From < now+200 {
			t.Fatalf("raise: %+v, want 16 shards from at least two refreshes ahead", sc)
		}
		if _, err := writer.Raise(ctx, "harbor", "hot", 8, "test"); err == nil {
			t.Error("a lower N was recorded")
		}
		def, counts, err := writer.ShardCounts(ctx, "harbor", "hot")
		if err != nil || def != 2 || len(counts) != 1 || counts[0] != sc {
			t.Errorf("ShardCounts: %d %+v %v", def, counts, err)
		}
		after := events("harbor", "hot", sc.From, 200, 1)
		time.Sleep(2 * o.Refresh)
		if failed, err := WriteBlock(ctx, writer, blockOf(t, after), ItemOptions{}, fast); err != nil || failed.Count != 0 {
			t.Fatalf("write: %v, %d failed", err, failed.Count)
		}
		// The stale writer writes some of the same events again with N=2.
		if failed, err := WriteBlock(ctx, stale, blockOf(t, after[:30]), ItemOptions{}, fast); err != nil || failed.Count != 0 {
			t.Fatalf("stale write: %v, %d failed", err, failed.Count)
		}
		shardsUsed := map[string]bool{}
		for k := range pks(t, client, table) {
			shardsUsed[k[strings.LastIndex(k, "#"):]] = true
		}
		if len(shardsUsed) <= 2 {
			t.Errorf("after the raise events still use only %d shards", len(shardsUsed))
		}
		var got []*records.Event
		st, err := writer.Query(ctx, "harbor", "hot", now, sc.From+1000, func(ev *records.Event) error {
			got = append(got, ev)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids(got), sortedByTime(append(before, after...))) {
			t.Fatalf("query returned %d events, want %d once each", len(got), len(before)+len(after))
		}
		if st.Duplicates == 0 || st.Duplicates > 30 {
			t.Errorf("query passed over %d duplicates, want the stale writer's (up to 30)", st.Duplicates)
		}
	})

	t.Run("BucketMismatchIsRefused", func(t *testing.T) {
		table := newTable(t)
		if _, err := OpenLayout(ctx, client, table, LayoutOptions{Bucket: 10 * time.Minute}); err == nil || !strings.Contains(err.Error(), "10m0s") {
			t.Errorf("a writer with another bucket was let in: %v", err)
		}
	})
}

func queryIDs(t *testing.T, l *Layout, tenant, metric string, from, to int64) []string {
	t.Helper()
	var got []*records.Event
	if _, err := l.Query(context.Background(), tenant, metric, from, to, func(ev *records.Event) error {
		got = append(got, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids(got)
}

// TestLargeEvents: an event whose item would pass DynamoDB's 400 KB is still
// served: compact when it compresses, from the overflow store when it does
// not, and a clear write_failed only when there is nowhere to put it.
func TestLargeEvents(t *testing.T) {
	ctx := context.Background()
	client, newTable := setup(t)
	table := newTable(t)
	l, err := OpenLayout(ctx, client, table, LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	random := func(n int) string {
		b := make([]byte, n*3/4)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	big := func(id, text string) *records.Event {
		ev := sampleEvent()
		ev.ID, ev.Timestamp = id, t0+int64(len(id))
		ev.Fields["payload"] = text
		ev.Unknown["blob"] = `"` + text[:1000] + `"`
		return ev
	}
	compressible := big("compressible", strings.Repeat("sensor reading 42.0; ", 900<<10/21))
	incompressible := big("incompressible-1", random(900<<10))
	small := sampleEvent()
	overflow := t.TempDir()

	// The stand-in enforces the limit as DynamoDB does: the plain item fails.
	plain := Item(incompressible, ItemOptions{})
	plain[AttrPK] = s("size-check")
	if _, failed, _ := WriteItems(ctx, client, table, []map[string]types.AttributeValue{plain}, fast); len(failed) != 1 {
		t.Fatalf("a %d-byte item was accepted; the test shows nothing", ItemSize(plain))
	}

	failed, err := WriteBlock(ctx, l, blockOf(t, []*records.Event{compressible, incompressible, small}), ItemOptions{Overflow: overflow}, fast)
	if err != nil || failed.Count != 0 {
		t.Fatalf("write: %v, %d failed: %s", err, failed.Count, failed.Data)
	}
	got := map[string]*records.Event{}
	if _, err := l.Query(ctx, "harbor", "weather", t0, t0+3600_000, func(ev *records.Event) error {
		got[ev.ID] = ev
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*records.Event{compressible, incompressible, small} {
		if !reflect.DeepEqual(got[want.ID], want) {
			t.Errorf("event %s did not come back whole", want.ID)
		}
	}
	// How each was stored.
	out, err := client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, it := range out.Items {
		id, ok := it[AttrEventID].(*types.AttributeValueMemberS)
		if !ok {
			continue
		}
		switch {
		case it[AttrOverflowPath] != nil:
			kinds[id.Value] = "overflow"
		case it[AttrStaged] != nil:
			kinds[id.Value] = "compact"
		default:
			kinds[id.Value] = "plain"
		}
	}
	if want := map[string]string{compressible.ID: "compact", incompressible.ID: "overflow", small.ID: "plain"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("stored as %v, want %v", kinds, want)
	}

	// No overflow store: a write_failed naming the size, never a silent drop.
	lone := big("incompressible-2", random(900<<10))
	failed, err = WriteBlock(ctx, l, blockOf(t, []*records.Event{lone}), ItemOptions{}, fast)
	if err != nil || failed.Count != 1 || !strings.Contains(string(failed.Data), "no overflow store") {
		t.Errorf("without an overflow store: %v, %d failed: %.300s", err, failed.Count, failed.Data)
	}

	// An item cannot point a reader at another tenant's file.
	forged := Item(small, ItemOptions{})
	forged[AttrOverflowRoot], forged[AttrOverflowPath] = s(overflow), s(overflowPath("other", small.ID))
	if err := l.stores.load(ctx, forged); err == nil {
		t.Error("an overflow reference to another tenant's file was followed")
	}
}

func TestQueryStopsOnError(t *testing.T) {
	ctx := context.Background()
	client, newTable := setup(t)
	table := newTable(t)
	l, err := OpenLayout(ctx, client, table, LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if failed, err := WriteBlock(ctx, l, blockOf(t, events("harbor", "weather", t0, 300, 10)), ItemOptions{}, fast); err != nil || failed.Count != 0 {
		t.Fatal(err, failed.Count)
	}
	stop := errors.New("stop")
	n := 0
	_, err = l.Query(ctx, "harbor", "weather", t0, t0+3600_000, func(*records.Event) error {
		if n++; n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Errorf("Query did not stop at fn's error: %v after %d", err, n)
	}
}

// proxied returns a client that writes through a proxy enforcing
// DynamoDB's per-partition-key write rate at unitsPerSecond (the stand-in
// enforces none), and the proxy.
func proxied(t *testing.T, unitsPerSecond int) (*dynamodb.Client, *testenv.Proxy) {
	t.Helper()
	p := testenv.FaultProxy(t, testenv.DynamoDB(t))
	p.LimitKeyWrites(unitsPerSecond)
	c, err := NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.New(c.Options(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) }), p
}

// TestHotMetric writes one metric's events of one hour, faster than one
// partition key takes them, through a proxy that enforces a per-key write
// rate: the v1 layout (one key per bucket) runs out of retries and fails
// events; the sharded layout writes every one.
func TestHotMetric(t *testing.T) {
	ctx := context.Background()
	client, p := proxied(t, 200)
	// A short retry budget, the same for both: about a second of backoff.
	wo := WriterOptions{MaxAttempts: 4, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	evs := events("harbor", "hot", t0, 1600, 1)

	v1 := testenv.UniqueName(t, "nearline-v1")
	if _, _, err := ensureTable(ctx, client, v1); err != nil { // as earlier versions made it: no layout record
		t.Fatal(err)
	}
	l1, err := OpenLayout(ctx, client, v1, LayoutOptions{})
	if err != nil || l1.Version != LayoutV1 {
		t.Fatalf("v%d, %v", l1.Version, err)
	}
	failed1, err := WriteBlock(ctx, l1, blockOf(t, evs), ItemOptions{}, wo)
	if err != nil {
		t.Fatal(err)
	}
	held1 := p.Limited("BatchWriteItem")
	t.Logf("v1 layout: %d of %d events failed; %d item writes held back by the per-key limit", failed1.Count, len(evs), held1)
	if failed1.Count == 0 {
		t.Fatal("the v1 layout wrote a hot metric through a 200 WCU/s key limit: the test shows nothing")
	}
	if !strings.Contains(string(failed1.Data), "ProvisionedThroughputExceeded") && !strings.Contains(string(failed1.Data), "UnprocessedItems") {
		t.Errorf("failures do not name the throttling: %.300s", failed1.Data)
	}

	v2 := testenv.UniqueName(t, "nearline-v2")
	if _, err := EnsureTable(ctx, client, v2, LayoutOptions{Shards: 16}); err != nil {
		t.Fatal(err)
	}
	l2, err := OpenLayout(ctx, client, v2, LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failed2, err := WriteBlock(ctx, l2, blockOf(t, evs), ItemOptions{}, wo)
	if err != nil || failed2.Count != 0 {
		t.Fatalf("sharded layout: %v, %d of %d events failed: %.300s", err, failed2.Count, len(evs), failed2.Data)
	}
	t.Logf("sharded layout (16 keys): every event written; %d item writes held back", p.Limited("BatchWriteItem")-held1)
	if got := queryIDs(t, l2, "harbor", "hot", t0, t0+3600_000); !reflect.DeepEqual(got, sortedByTime(evs)) {
		t.Errorf("read back %d events, want %d in order", len(got), len(evs))
	}
}

// TestAdaptiveShards: a writer that keeps being throttled on one metric
// raises its N in the table, ahead of the events it applies to, and a
// second writer (another process) follows the record.
func TestAdaptiveShards(t *testing.T) {
	ctx := context.Background()
	client, p := proxied(t, 100)
	table := testenv.UniqueName(t, "nearline")
	if _, err := EnsureTable(ctx, client, table, LayoutOptions{Shards: 1}); err != nil {
		t.Fatal(err)
	}
	o := LayoutOptions{Adaptive: true, Refresh: 300 * time.Millisecond}
	writer, err := OpenLayout(ctx, client, table, o)
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenLayout(ctx, client, table, LayoutOptions{Refresh: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wo := WriterOptions{MaxAttempts: 20, BaseDelay: 10 * time.Millisecond, MaxDelay: 300 * time.Millisecond}
	// Live events at about 600 a second against 100 write units a second
	// per key, until N has been raised to at least 4 (or 30 s).
	var all []*records.Event
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		now := time.Now().UnixMilli()
		evs := make([]*records.Event, 60)
		for j := range evs {
			evs[j] = &records.Event{ID: fmt.Sprintf("live-%05d-%02d", i, j), Tenant: "harbor", Metric: "hot", MetricAlias: "hot",
				Timestamp: now + int64(j), SchemaVersion: 1, IngestTime: now, Fields: map[string]any{"i": int64(j)}}
		}
		all = append(all, evs...)
		if failed, err := WriteBlock(ctx, writer, blockOf(t, evs), ItemOptions{}, wo); err != nil || failed.Count != 0 {
			t.Fatalf("write: %v, %d failed: %.300s", err, failed.Count, failed.Data)
		}
		_, counts, err := writer.ShardCounts(ctx, "harbor", "hot")
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) > 0 && counts[len(counts)-1].Shards >= 4 && time.Now().UnixMilli() > counts[len(counts)-1].From {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, counts, err := writer.ShardCounts(ctx, "harbor", "hot")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded: %+v; %d item writes held back; %d events", counts, p.Limited("BatchWriteItem"), len(all))
	if len(counts) < 2 || counts[0].Shards != 2 || counts[1].Shards != 4 {
		t.Fatalf("throttling did not raise N 1 → 2 → 4: %+v", counts)
	}
	for _, c := range counts {
		if c.From-time.Now().UnixMilli() > 2*o.Refresh.Milliseconds() {
			t.Errorf("a raise takes effect at %d, more than two refreshes ahead", c.From)
		}
	}
	// The other writer, which never saw throttling, keys a late event as
	// the first did.
	late := all[len(all)-1]
	time.Sleep(o.Refresh)
	a, _ := writer.PK(ctx, late.Tenant, late.Metric, late.Timestamp, late.ID)
	b, _ := other.PK(ctx, late.Tenant, late.Metric, late.Timestamp, late.ID)
	if a != b {
		t.Errorf("two writers key one event as %s and %s", a, b)
	}
	if got := queryIDs(t, other, "harbor", "hot", all[0].Timestamp, late.Timestamp+1); !reflect.DeepEqual(got, sortedByTime(all)) {
		t.Errorf("read back %d events, want %d in order", len(got), len(all))
	}
}
