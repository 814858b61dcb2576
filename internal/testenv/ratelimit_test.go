package testenv

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestNewProxy(t *testing.T) {
	for _, c := range []struct {
		target string
		rules  []FaultRule
		want   string
	}{
		{"127.0.0.1:1", nil, "testenv.NewProxy: target \"127.0.0.1:1\" is not an endpoint URL"},
		{"http://127.0.0.1:1", []FaultRule{{Op: "PutRecords", Fault: Unprocessed}}, "testenv.NewProxy: invalid rule"},
		{"http://127.0.0.1:1", []FaultRule{{Op: "GetRecords", Fault: Throttle, Every: -1}}, "testenv.NewProxy: invalid rule"},
	} {
		if p, err := NewProxy(c.target, c.rules...); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("NewProxy(%q, %+v) = %v, %v; want error %q", c.target, c.rules, p, err, c.want)
		}
	}

	// A target that answers every request 200 with its X-Amz-Target.
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Header.Get("X-Amz-Target")))
	}))
	defer target.Close()
	p, err := NewProxy(target.URL, FaultRule{Op: "GetRecords", Fault: ServerError})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
		t.Errorf("URL = %q, want one on 127.0.0.1", p.URL)
	}
	call := func(op string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodPost, p.URL, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	if status, body, err := call("ListShards"); err != nil || status != 200 || body != "Kinesis_20131202.ListShards" {
		t.Errorf("ListShards through the proxy: %d %q %v, want 200 and the target's answer", status, body, err)
	}
	if status, _, err := call("GetRecords"); err != nil || status != 500 {
		t.Errorf("GetRecords through the proxy: %d %v, want the injected 500", status, err)
	}
	p.Close()
	p.Close() // a second Close does nothing
	if _, _, err := call("ListShards"); err == nil {
		t.Error("the closed proxy still answers")
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	b := newTokenBucket(t0, 10)
	for i := range 10 { // full: one second's worth
		if !b.take(t0, 1, 10) {
			t.Fatalf("take %d of a full bucket of 10 failed", i)
		}
	}
	if b.take(t0, 1, 10) {
		t.Fatal("an empty bucket gave a token")
	}
	if b.take(at(0.25), 3, 10) { // 2.5 tokens back
		t.Fatal("2.5 tokens gave 3")
	}
	if !b.take(at(0.25), 2, 10) || b.tokens != 0.5 { // the held-back 3 took nothing
		t.Fatalf("2.5 tokens did not give 2 (or left %g, want 0.5)", b.tokens)
	}
	if !b.take(at(100), 10, 10) || b.tokens != 0 { // refilled to 10, not beyond
		t.Fatalf("a refilled bucket left %g after taking 10, want 0", b.tokens)
	}
	// A cost beyond the capacity goes when the bucket is full, into debt.
	b = newTokenBucket(t0, 2)
	if !b.take(t0, 5, 2) || b.tokens != -3 {
		t.Fatalf("a full bucket of 2 did not give 5 (tokens %g, want -3)", b.tokens)
	}
	if b.take(at(1.9), 1, 2) {
		t.Fatal("a bucket in debt gave a token before the debt was paid")
	}
	if !b.take(at(2.1), 1, 2) {
		t.Fatal("a bucket whose debt was paid gave no token")
	}
}

func TestItemSize(t *testing.T) {
	item := func(js string) map[string]attrValue {
		t.Helper()
		var m map[string]attrValue
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	b64 := base64.StdEncoding.EncodeToString
	for _, c := range []struct {
		js   string
		want int
	}{
		{`{"pk":{"S":"abc"}}`, 2 + 3},
		{`{"pk":{"S":"é"}}`, 2 + 2}, // UTF-8 bytes
		{`{"n":{"N":"12345"}}`, 1 + 3},
		{`{"b":{"B":"` + b64([]byte("0123456789")) + `"}}`, 1 + 10},
		{`{"b":{"B":"` + b64([]byte("01234")) + `"}}`, 1 + 5},
		{`{"t":{"BOOL":true},"z":{"NULL":true}}`, 1 + 1 + 1 + 1},
		{`{"ss":{"SS":["ab","cde"]},"ns":{"NS":["1","22"]},"bs":{"BS":["` + b64([]byte("xyz")) + `"]}}`,
			2 + 5 + 2 + (1 + 2) + 2 + 3},
		{`{"m":{"M":{"a":{"S":"xy"},"l":{"L":[{"N":"7"},{"S":"q"}]}}}}`,
			1 + 3 + (1 + 1 + 2) + (1 + 1 + (3 + (1 + 1) + (1 + 1)))},
		{`{"e":{"M":{}},"f":{"L":[]}}`, 1 + 3 + 1 + 3},
	} {
		if got := itemSize(item(c.js)); got != c.want {
			t.Errorf("itemSize(%s) = %d, want %d", c.js, got, c.want)
		}
	}
	// One unit per started KB, at least one.
	for _, c := range []struct{ payload, want int }{{0, 1}, {1024 - 4, 1}, {1024 - 3, 2}, {3*1024 - 4, 3}, {3*1024 - 3, 4}} {
		it := item(fmt.Sprintf(`{"pk":{"S":"a"},"x":{"S":%q}}`, strings.Repeat("z", c.payload))) // 2+1+1 = 4 bytes besides
		if got := writeUnits(it); got != float64(c.want) {
			t.Errorf("writeUnits of a %d-byte item = %g, want %d", itemSize(it), got, c.want)
		}
	}
	if k, ok := keyValue(item(`{"pk":{"N":"1"}}`), "pk"); !ok || k != "N:1" {
		t.Errorf("keyValue of a number key = %q %v", k, ok)
	}
	if _, ok := keyValue(item(`{"k":{"S":"a"}}`), "pk"); ok {
		t.Error("keyValue found a key the item does not have")
	}
}

func TestHashKeyShard(t *testing.T) {
	// The MD5 of a partition key, read as a big-endian integer.
	for _, key := range []string{"", "a", "partition-key-é", strings.Repeat("k", 256)} {
		sum := md5.Sum([]byte(key))
		want := new(big.Int).SetBytes(sum[:])
		h, err := hashKey(key, nil)
		if err != nil || toBig(h).Cmp(want) != 0 {
			t.Errorf("hashKey(%q) = %v %v, want %v", key, toBig(h), err, want)
		}
	}
	maxKey := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	for _, s := range []string{"0", "1", "18446744073709551616", maxKey.String()} {
		h, err := hashKey("ignored", &s)
		if err != nil || toBig(h).String() != s {
			t.Errorf("hashKey with ExplicitHashKey %s = %v %v", s, toBig(h), err)
		}
	}
	for _, s := range []string{"-1", new(big.Int).Add(maxKey, big.NewInt(1)).String(), "0x10", ""} {
		if _, err := hashKey("k", &s); err == nil {
			t.Errorf("hashKey took ExplicitHashKey %q", s)
		}
	}
	u := func(s string) uint128 {
		x, err := parseUint128(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	open := []shardRange{ // sorted by start; a gap from 2^127+1 to 2^127+9
		{"s0", u("0"), u(new(big.Int).Sub(half, big.NewInt(1)).String())},
		{"s1", u(half.String()), u(new(big.Int).Add(half, big.NewInt(0)).String())},
		{"s2", u(new(big.Int).Add(half, big.NewInt(10)).String()), u(maxKey.String())},
	}
	for _, c := range []struct {
		h    *big.Int
		want string
	}{
		{big.NewInt(0), "s0"},
		{new(big.Int).Sub(half, big.NewInt(1)), "s0"},
		{half, "s1"},
		{new(big.Int).Add(half, big.NewInt(1)), ""},
		{new(big.Int).Add(half, big.NewInt(9)), ""},
		{new(big.Int).Add(half, big.NewInt(10)), "s2"},
		{maxKey, "s2"},
	} {
		if got := shardOf(open, u(c.h.String())); got != c.want {
			t.Errorf("shardOf(%v) = %q, want %q", c.h, got, c.want)
		}
	}
	if got := shardOf(nil, u("5")); got != "" {
		t.Errorf("shardOf with no shards = %q", got)
	}
}

func toBig(h uint128) *big.Int {
	x := new(big.Int).SetUint64(h.hi)
	return x.Lsh(x, 64).Or(x, new(big.Int).SetUint64(h.lo))
}

func TestRateLimitDynamoDB(t *testing.T) {
	target := DynamoDB(t)
	direct, via := dynamoClients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// newTable creates a table keyed on hash (a string) and sk.
	newTable := func(t *testing.T, hash string) string {
		t.Helper()
		name := UniqueName(t, "ratelimit")
		if _, err := direct.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName: aws.String(name),
			AttributeDefinitions: []dtypes.AttributeDefinition{
				{AttributeName: aws.String(hash), AttributeType: dtypes.ScalarAttributeTypeS},
				{AttributeName: aws.String("sk"), AttributeType: dtypes.ScalarAttributeTypeS},
			},
			KeySchema: []dtypes.KeySchemaElement{
				{AttributeName: aws.String(hash), KeyType: dtypes.KeyTypeHash},
				{AttributeName: aws.String("sk"), KeyType: dtypes.KeyTypeRange},
			},
			BillingMode: dtypes.BillingModePayPerRequest,
		}); err != nil {
			t.Fatal(err)
		}
		if err := dynamodb.NewTableExistsWaiter(direct, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay = 10 * time.Millisecond
		}).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		return name
	}
	s := func(v string) dtypes.AttributeValue { return &dtypes.AttributeValueMemberS{Value: v} }
	// item is an item of key pk/sk with a payload of n bytes in "data".
	item := func(pk, sk string, n int) map[string]dtypes.AttributeValue {
		return map[string]dtypes.AttributeValue{"pk": s(pk), "sk": s(sk), "data": s(strings.Repeat("x", n))}
	}
	sk := func(it map[string]dtypes.AttributeValue) string {
		return it["sk"].(*dtypes.AttributeValueMemberS).Value
	}
	// stored returns the sorted sort keys in table, read directly.
	stored := func(t *testing.T, table string) []string {
		t.Helper()
		var sks []string
		ScanItems(t, direct, table, "", func(it map[string]dtypes.AttributeValue) { sks = append(sks, sk(it)) })
		slices.Sort(sks)
		return sks
	}
	puts := func(items ...map[string]dtypes.AttributeValue) []dtypes.WriteRequest {
		var reqs []dtypes.WriteRequest
		for _, it := range items {
			reqs = append(reqs, dtypes.WriteRequest{PutRequest: &dtypes.PutRequest{Item: it}})
		}
		return reqs
	}
	// unprocessed returns the sort keys of the unprocessed items of table.
	unprocessed := func(out *dynamodb.BatchWriteItemOutput, table string) []string {
		var sks []string
		for _, r := range out.UnprocessedItems[table] {
			sks = append(sks, sk(r.PutRequest.Item))
		}
		return sks
	}
	// burst writes 300 items (500 bytes, one unit each) with key pk(i) at
	// once, in 12 concurrent BatchWriteItem calls of 25, and returns the
	// sort keys held back (unprocessed, or in a call answered
	// ProvisionedThroughputExceededException) and how long it took.
	burst := func(t *testing.T, c *dynamodb.Client, table string, pk func(i int) string) (held []string, took time.Duration) {
		t.Helper()
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for b := range 12 {
			wg.Go(func() {
				var items []map[string]dtypes.AttributeValue
				for i := b * 25; i < (b+1)*25; i++ {
					items = append(items, item(pk(i), fmt.Sprintf("%03d", i), 500))
				}
				out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{table: puts(items...)}})
				mu.Lock()
				defer mu.Unlock()
				var pt *dtypes.ProvisionedThroughputExceededException
				switch {
				case errors.As(err, &pt):
					for _, it := range items {
						held = append(held, sk(it))
					}
				case err != nil:
					t.Errorf("batch %d: %v", b, err)
				default:
					if len(out.UnprocessedItems) > 1 {
						t.Errorf("batch %d: unprocessed items of other tables: %v", b, out.UnprocessedItems)
					}
					held = append(held, unprocessed(out, table)...)
				}
			})
		}
		wg.Wait()
		took = time.Since(start)
		slices.Sort(held)
		return held, took
	}

	t.Run("HotKey", func(t *testing.T) {
		table := newTable(t, "pk")
		p := FaultProxy(t, target)
		p.LimitKeyWrites(100)
		c := via(p)
		held, took := burst(t, c, table, func(int) string { return "hot" })
		// The bucket holds 100 units and gets 100 a second back: at least
		// 100 items went, and at most 100 more per second of the burst.
		passed := 300 - len(held)
		most := 100 + int(math.Ceil(100*took.Seconds()))
		t.Logf("300 items to one key in %v: %d written, %d held back", took, passed, len(held))
		if passed < 100 || passed > most {
			t.Errorf("%d of 300 items to one key written in %v, want 100 to %d", passed, took, most)
		}
		if got := p.Limited("BatchWriteItem"); got != len(held) {
			t.Errorf("Limited(BatchWriteItem) = %d, want the %d held back", got, len(held))
		}
		var all []string
		for i := range 300 {
			all = append(all, fmt.Sprintf("%03d", i))
		}
		got := stored(t, table)
		union := append(slices.Clone(got), held...)
		slices.Sort(union)
		if len(got) != passed || !slices.Equal(slices.Compact(union), all) {
			t.Errorf("table holds %d items (%v), want exactly the %d not held back", len(got), got, passed)
		}

		// 300 items over 10 keys: 30 units a key, under its 100.
		table2 := newTable(t, "pk")
		held, took = burst(t, c, table2, func(i int) string { return fmt.Sprintf("k%d", i%10) })
		if len(held) != 0 {
			t.Errorf("300 items over 10 keys in %v: %d held back (%v), want none", took, len(held), held)
		}
		if got := stored(t, table2); !slices.Equal(got, all) {
			t.Errorf("table holds %d items, want all 300", len(got))
		}
		if got := p.Limited("BatchWriteItem"); got != 300-passed {
			t.Errorf("Limited(BatchWriteItem) = %d after the spread burst, want still %d", got, 300-passed)
		}
	})

	t.Run("ItemSize", func(t *testing.T) {
		table := newTable(t, "pk")
		p := FaultProxy(t, target)
		p.LimitKeyWrites(10)
		// One call, judged at one instant: three 3 KB items take 9 of the
		// 10 units; the fourth (3 units) is held back without taking any,
		// so the last (1 KB, 1 unit) goes.
		out, err := via(p).BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{
			table: puts(item("big", "0", 3000), item("big", "1", 3000), item("big", "2", 3000), item("big", "3", 3000), item("big", "4", 1000)),
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := unprocessed(out, table); len(out.UnprocessedItems) != 1 || !slices.Equal(got, []string{"3"}) {
			t.Errorf("unprocessed %v, want [3] of %s", out.UnprocessedItems, table)
		}
		if got := stored(t, table); !slices.Equal(got, []string{"0", "1", "2", "4"}) {
			t.Errorf("table holds %v, want [0 1 2 4]", got)
		}
		if got := p.Limited("BatchWriteItem"); got != 1 {
			t.Errorf("Limited(BatchWriteItem) = %d, want 1", got)
		}
	})

	t.Run("Throttled", func(t *testing.T) {
		table := newTable(t, "pk")
		p := FaultProxy(t, target)
		p.LimitKeyWrites(1)
		// A client with the SDK's retries; RetryMaxAttempts=1 for the
		// calls that must see the throttle.
		rcfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := dynamodb.NewFromConfig(rcfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) })
		once := func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }
		// 20 KB (20 units) goes on the full bucket of 1 and leaves it 19
		// units in debt: the key takes no write for 19 s.
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("slow", "a", 20000)}); err != nil {
			t.Fatal(err)
		}
		_, err = c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{
			table: puts(item("slow", "b", 10), item("slow", "c", 10)),
		}}, once)
		wantAPIError[*dtypes.ProvisionedThroughputExceededException](t, err, 400)
		_, err = c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("slow", "d", 10)}, once)
		wantAPIError[*dtypes.ProvisionedThroughputExceededException](t, err, 400)
		// Another key still writes; the slow one is held back.
		out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{
			table: puts(item("slow", "e", 10), item("other", "f", 10)),
		}}, once)
		if err != nil {
			t.Fatal(err)
		}
		if got := unprocessed(out, table); !slices.Equal(got, []string{"e"}) {
			t.Errorf("unprocessed %v, want [e]", got)
		}
		if got := stored(t, table); !slices.Equal(got, []string{"a", "f"}) {
			t.Errorf("table holds %v, want [a f]", got)
		}
		if b, i := p.Limited("BatchWriteItem"), p.Limited("PutItem"); b != 3 || i != 1 {
			t.Errorf("Limited: BatchWriteItem %d, PutItem %d; want 3, 1", b, i)
		}

		p.LimitKeyWrites(0) // off
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("slow", "g", 10)}, once); err != nil {
			t.Errorf("PutItem with the limit off: %v", err)
		}
	})

	t.Run("KeyAttribute", func(t *testing.T) {
		table := newTable(t, "k")
		p := FaultProxy(t, target)
		p.LimitKeyWrites(1)
		c := via(p)
		write := func(k string) []string {
			t.Helper()
			var items []map[string]dtypes.AttributeValue
			for _, sk := range []string{"0", "1", "2"} {
				items = append(items, map[string]dtypes.AttributeValue{"k": s(k), "sk": s(k + sk)})
			}
			out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{table: puts(items...)}})
			if err != nil {
				t.Fatal(err)
			}
			return unprocessed(out, table)
		}
		if got := write("x"); len(got) != 0 { // no "pk": not limited
			t.Errorf("items without pk: unprocessed %v, want none", got)
		}
		p.SetKeyAttribute("k")
		if got := write("y"); !slices.Equal(got, []string{"y1", "y2"}) {
			t.Errorf("items keyed on k: unprocessed %v, want [y1 y2]", got)
		}
	})
}

func TestRateLimitKinesis(t *testing.T) {
	target := Kinesis(t)
	cfg := noRetryConfig(t)
	direct := kinesis.NewFromConfig(cfg)
	via := func(p *Proxy) *kinesis.Client {
		return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	type shard struct {
		id         string
		start, end *big.Int
	}
	// newStream creates a stream of two shards and returns its name and
	// shards, as the stand-in lists them.
	newStream := func(t *testing.T) (string, []shard) {
		t.Helper()
		name := UniqueName(t, "ratelimit")
		CreateStream(t, direct, name, 2)
		out, err := direct.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		var shards []shard
		for _, s := range out.Shards {
			start, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
			end, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
			shards = append(shards, shard{aws.ToString(s.ShardId), start, end})
		}
		if len(shards) != 2 {
			t.Fatalf("stream has %d shards, want 2", len(shards))
		}
		return name, shards
	}
	// shardOfKey is the shard a record goes to, computed here apart from
	// the proxy's code.
	shardOfKey := func(shards []shard, pk string, explicit *string) string {
		var h *big.Int
		if explicit != nil {
			h, _ = new(big.Int).SetString(*explicit, 10)
		} else {
			sum := md5.Sum([]byte(pk))
			h = new(big.Int).SetBytes(sum[:])
		}
		for _, s := range shards {
			if h.Cmp(s.start) >= 0 && h.Cmp(s.end) <= 0 {
				return s.id
			}
		}
		return ""
	}
	// proxyShard is the shard the proxy computes for a record.
	proxyShard := func(t *testing.T, p *Proxy, stream, pk string, explicit *string) string {
		t.Helper()
		h, err := hashKey(pk, explicit)
		if err != nil {
			t.Fatal(err)
		}
		return p.shardIDs(ctx, nil, "application/x-amz-json-1.1", stream, "", []uint128{h})[0]
	}
	// keysIn returns n partition keys prefix-0, prefix-1, ... that go to shard id.
	keysIn := func(shards []shard, id, prefix string, n int) []string {
		var keys []string
		for i := 0; len(keys) < n; i++ {
			if k := fmt.Sprintf("%s-%d", prefix, i); shardOfKey(shards, k, nil) == id {
				keys = append(keys, k)
			}
		}
		return keys
	}
	entries := func(keys []string, data func(i int) string) []ktypes.PutRecordsRequestEntry {
		var es []ktypes.PutRecordsRequestEntry
		for i, k := range keys {
			es = append(es, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte(data(i))})
		}
		return es
	}
	put := func(t *testing.T, c *kinesis.Client, stream string, es []ktypes.PutRecordsRequestEntry) *kinesis.PutRecordsOutput {
		t.Helper()
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: es})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Records) != len(es) {
			t.Fatalf("%d results for %d records", len(out.Records), len(es))
		}
		return out
	}
	// checkResults checks that the records ok says succeeded did, in the
	// shard computed here and by the proxy, and that the others failed
	// with ProvisionedThroughputExceededException.
	checkResults := func(t *testing.T, p *Proxy, stream string, shards []shard, es []ktypes.PutRecordsRequestEntry, out *kinesis.PutRecordsOutput, ok func(i int) bool) {
		t.Helper()
		failed := 0
		for i, r := range out.Records {
			e := es[i]
			if !ok(i) {
				failed++
				if aws.ToString(r.ErrorCode) != "ProvisionedThroughputExceededException" || !strings.Contains(aws.ToString(r.ErrorMessage), "Rate exceeded for shard") || r.SequenceNumber != nil {
					t.Errorf("record %d: %+v, want failed with ProvisionedThroughputExceededException", i, r)
				}
				continue
			}
			want := shardOfKey(shards, *e.PartitionKey, e.ExplicitHashKey)
			if r.ErrorCode != nil || r.SequenceNumber == nil || aws.ToString(r.ShardId) != want {
				t.Errorf("record %d: %+v, want it in %s", i, r, want)
			}
			if got := proxyShard(t, p, stream, *e.PartitionKey, e.ExplicitHashKey); got != aws.ToString(r.ShardId) {
				t.Errorf("record %d: the proxy puts it in %q, the server in %q", i, got, aws.ToString(r.ShardId))
			}
		}
		if aws.ToInt32(out.FailedRecordCount) != int32(failed) {
			t.Errorf("FailedRecordCount = %d, want %d", aws.ToInt32(out.FailedRecordCount), failed)
		}
	}
	// stored returns the data of the records in a shard, read directly.
	stored := func(t *testing.T, stream, shardID string) []string {
		t.Helper()
		it, err := direct.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: aws.String(shardID), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := direct.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		var data []string
		for _, r := range got.Records {
			data = append(data, string(r.Data))
		}
		return data
	}

	t.Run("HotShard", func(t *testing.T) {
		stream, shards := newStream(t)
		p := FaultProxy(t, target)
		p.LimitShardWrites(1<<20, 50)
		c := via(p)
		hot, cold := shards[0].id, shards[1].id
		// One call of 150 records to one shard, judged at one instant:
		// the first 50 go, the rest fail.
		es := entries(keysIn(shards, hot, "hot", 150), func(i int) string { return fmt.Sprintf("h%03d", i) })
		start := time.Now()
		out := put(t, c, stream, es)
		checkResults(t, p, stream, shards, es, out, func(i int) bool { return i < 50 })
		if got := p.Limited("PutRecords"); got != 100 {
			t.Errorf("Limited(PutRecords) = %d, want 100", got)
		}
		var want []string
		for i := range 50 {
			want = append(want, fmt.Sprintf("h%03d", i))
		}
		if got := stored(t, stream, hot); !slices.Equal(got, want) {
			t.Errorf("hot shard holds %v, want %v", got, want)
		}
		// Right after: the hot shard takes only what refilled since.
		out = put(t, c, stream, es)
		took := time.Since(start)
		most := int(math.Ceil(50*took.Seconds())) + 1
		ok := 150 - int(aws.ToInt32(out.FailedRecordCount))
		t.Logf("second call, %v after the first: %d of 150 records went", took, ok)
		if ok > most {
			t.Errorf("second call, %v after the first: %d of 150 records went, want at most %d", took, ok, most)
		}
		checkResults(t, p, stream, shards, es, out, func(i int) bool { return i < ok })
		// The other shard has its own buckets: 50 records go.
		es = entries(keysIn(shards, cold, "cold", 50), func(i int) string { return "c" })
		checkResults(t, p, stream, shards, es, put(t, c, stream, es), func(int) bool { return true })
	})

	t.Run("Spread", func(t *testing.T) {
		stream, shards := newStream(t)
		p := FaultProxy(t, target)
		p.LimitShardWrites(1<<20, 50)
		c := via(p)
		// Three concurrent calls of 30 records, 15 per shard (one of each
		// placed by ExplicitHashKey against its partition key's shard):
		// 45 records a shard, under its 50.
		zero, top := "0", new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1)).String()
		var wg sync.WaitGroup
		counts := map[string]int{}
		var mu sync.Mutex
		for call := range 3 {
			var es []ktypes.PutRecordsRequestEntry
			for n, s := range shards {
				es = append(es, entries(keysIn(shards, s.id, fmt.Sprintf("spread%d", call), 15), func(i int) string { return fmt.Sprintf("%d-%d-%d", call, n, i) })...)
			}
			// es[0] goes to shards[0] by its key; es[15] to shards[1].
			// Swap them with ExplicitHashKey (0 is in the first shard of
			// the hash space, 2^128-1 in the last).
			if shardOfKey(shards, "", &zero) == shards[0].id {
				es[0].ExplicitHashKey, es[15].ExplicitHashKey = &top, &zero
			} else {
				es[0].ExplicitHashKey, es[15].ExplicitHashKey = &zero, &top
			}
			if shardOfKey(shards, *es[0].PartitionKey, es[0].ExplicitHashKey) != shards[1].id {
				t.Fatal("ExplicitHashKey does not move the record to the other shard")
			}
			wg.Go(func() {
				out := put(t, c, stream, es)
				checkResults(t, p, stream, shards, es, out, func(int) bool { return true })
				mu.Lock()
				defer mu.Unlock()
				for _, r := range out.Records {
					counts[aws.ToString(r.ShardId)]++
				}
			})
		}
		wg.Wait()
		if counts[shards[0].id] != 45 || counts[shards[1].id] != 45 {
			t.Errorf("records per shard %v, want 45 in each", counts)
		}
		if got := p.Limited("PutRecords"); got != 0 {
			t.Errorf("Limited(PutRecords) = %d, want 0", got)
		}
	})

	t.Run("Bytes", func(t *testing.T) {
		stream, shards := newStream(t)
		p := FaultProxy(t, target)
		p.LimitShardWrites(1000, 0)
		// 300 bytes each (data and key), then 50: judged at one instant,
		// the fourth 300 finds 100 left and takes none of it.
		keys := keysIn(shards, shards[0].id, "b", 5)
		size := []int{300, 300, 300, 300, 50}
		es := entries(keys, func(i int) string { return strings.Repeat("d", size[i]-len(keys[i])) })
		out := put(t, via(p), stream, es)
		checkResults(t, p, stream, shards, es, out, func(i int) bool { return i != 3 })
		if got := p.Limited("PutRecords"); got != 1 {
			t.Errorf("Limited(PutRecords) = %d, want 1", got)
		}
	})

	t.Run("PutRecordAllFailed", func(t *testing.T) {
		stream, shards := newStream(t)
		p := FaultProxy(t, target)
		p.LimitShardWrites(10, 0)
		rcfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := kinesis.NewFromConfig(rcfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL) })
		once := func(o *kinesis.Options) { o.RetryMaxAttempts = 1 }
		// 101 bytes go on the full bucket of 10 and leave it 91 in debt:
		// the shard takes no record for 9 s.
		first, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("p"), Data: []byte(strings.Repeat("d", 100))})
		if err != nil {
			t.Fatal(err)
		}
		if want := shardOfKey(shards, "p", nil); aws.ToString(first.ShardId) != want {
			t.Errorf("PutRecord went to %s, want %s", aws.ToString(first.ShardId), want)
		}
		_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("p"), Data: []byte("x")}, once)
		wantAPIError[*ktypes.ProvisionedThroughputExceededException](t, err, 400)
		// PutRecords with no record to forward: 200, every record failed.
		es := entries([]string{"p", "p", "p"}, func(i int) string { return "y" })
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: es}, once)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, p, stream, shards, es, out, func(int) bool { return false })
		if r, rs := p.Limited("PutRecord"), p.Limited("PutRecords"); r != 1 || rs != 3 {
			t.Errorf("Limited: PutRecord %d, PutRecords %d; want 1, 3", r, rs)
		}
		if got := stored(t, stream, aws.ToString(first.ShardId)); len(got) != 1 {
			t.Errorf("shard holds %d records, want the first only", len(got))
		}

		p.LimitShardWrites(0, 0) // off
		if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("p"), Data: []byte("z")}, once); err != nil {
			t.Errorf("PutRecord with the limits off: %v", err)
		}
	})
}
