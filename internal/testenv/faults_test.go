package testenv

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/logging"
)

// noRetryConfig loads the SDK configuration the stand-ins set up, with the
// SDK's retries off so that every injected fault reaches the caller.
func noRetryConfig(t *testing.T) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// dynamoClients returns a DynamoDB client of the stand-in without retries,
// and one of the same configuration through a proxy; both fail the test
// on the SDK's warnings (it only logs a response whose X-Amz-Crc32 does
// not match).
func dynamoClients(t *testing.T) (direct *dynamodb.Client, via func(*Proxy) *dynamodb.Client) {
	t.Helper()
	cfg := noRetryConfig(t)
	direct = dynamodb.NewFromConfig(cfg)
	cfg.Logger = logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		t.Errorf("SDK %s: "+format, append([]any{c}, v...)...)
	})
	return direct, func(p *Proxy) *dynamodb.Client {
		return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) })
	}
}

// wantAPIError fails the test unless err is a T (such as
// *types.ExpiredIteratorException) answered with HTTP status.
func wantAPIError[T error](t *testing.T, err error, status int) {
	t.Helper()
	var typed T
	var re *awshttp.ResponseError
	if !errors.As(err, &typed) || !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("got error %v, want %T with HTTP status %d", err, typed, status)
	}
}

// wantInjected fails the test unless p injected n faults into op.
func wantInjected(t *testing.T, p *Proxy, op string, n int) {
	t.Helper()
	if got := p.Injected(op); got != n {
		t.Errorf("Injected(%q) = %d, want %d", op, got, n)
	}
}

func TestFaultProxyKinesis(t *testing.T) {
	target := Kinesis(t)
	cfg := noRetryConfig(t)
	direct := kinesis.NewFromConfig(cfg)
	via := func(p *Proxy) *kinesis.Client {
		return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newStream := func(t *testing.T) string {
		name := UniqueName(t, "faults")
		CreateStream(t, direct, name, 1)
		return name
	}
	// iterator returns a TRIM_HORIZON iterator of the stream's first shard.
	iterator := func(t *testing.T, c *kinesis.Client, stream string) *string {
		t.Helper()
		shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
		if err != nil {
			t.Fatal(err)
		}
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: shards.Shards[0].ShardId,
			ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		return it.ShardIterator
	}
	// records returns the data of the stream's records and their sequence
	// numbers, read from the stand-in directly.
	records := func(t *testing.T, stream string) (data, seqs []string) {
		t.Helper()
		got, err := direct.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator(t, direct, stream)})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got.Records {
			data = append(data, string(r.Data))
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
		return data, seqs
	}

	t.Run("ThrottleEveryLimit", func(t *testing.T) {
		stream := newStream(t)
		p := FaultProxy(t, target, FaultRule{Op: "PutRecord", Fault: Throttle, Every: 2, Limit: 2})
		c := via(p)
		var ok []string
		for i := range 6 {
			data := string(rune('a' + i))
			_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{
				StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: []byte(data),
			})
			if i == 1 || i == 3 {
				wantAPIError[*ktypes.ProvisionedThroughputExceededException](t, err, 400)
				continue
			}
			if err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
			ok = append(ok, data)
		}
		wantInjected(t, p, "PutRecord", 2)
		if got, _ := records(t, stream); !slices.Equal(got, ok) {
			t.Errorf("stream holds %q, want the unthrottled %q", got, ok)
		}
	})

	t.Run("ExpiredIterator", func(t *testing.T) {
		stream := newStream(t)
		if _, err := direct.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: []byte("x"),
		}); err != nil {
			t.Fatal(err)
		}
		p := FaultProxy(t, target, FaultRule{Op: "GetRecords", Fault: ExpiredIterator, Limit: 1})
		c := via(p)
		it := iterator(t, c, stream) // passes the proxy: no rule for these calls
		_, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		wantAPIError[*ktypes.ExpiredIteratorException](t, err, 400)
		got, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil {
			t.Fatalf("GetRecords past the limit: %v", err)
		}
		if len(got.Records) != 1 {
			t.Fatalf("GetRecords past the limit: %d records, want the one put", len(got.Records))
		}
		wantInjected(t, p, "GetRecords", 1)
	})

	t.Run("ServerErrorSetEnabled", func(t *testing.T) {
		stream := newStream(t)
		p := FaultProxy(t, target, FaultRule{Op: "ListShards", Fault: ServerError})
		c := via(p)
		list := func() error {
			_, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
			return err
		}
		wantAPIError[*ktypes.InternalFailureException](t, list(), 500)
		p.SetEnabled(false)
		if err := list(); err != nil {
			t.Fatalf("disabled proxy: %v", err)
		}
		p.SetEnabled(true)
		wantAPIError[*ktypes.InternalFailureException](t, list(), 500)
		wantInjected(t, p, "ListShards", 2)
	})

	t.Run("PartialFailure", func(t *testing.T) {
		stream := newStream(t)
		p := FaultProxy(t, target, FaultRule{Op: "PutRecords", Fault: PartialFailure})
		c := via(p)
		put := func(data ...string) *kinesis.PutRecordsOutput {
			t.Helper()
			in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
			for _, d := range data {
				in.Records = append(in.Records, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte(d)})
			}
			out, err := c.PutRecords(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Records) != len(data) {
				t.Fatalf("%d results for %d records", len(out.Records), len(data))
			}
			return out
		}
		// Binary data shows the base64 in the JSON goes through intact.
		out := put("r0\xff\x00", "r1\xff\x00", "r2\xff\x00", "r3\xff\x00", "r4\xff\x00")
		if aws.ToInt32(out.FailedRecordCount) != 2 {
			t.Errorf("FailedRecordCount = %d, want 2", aws.ToInt32(out.FailedRecordCount))
		}
		var seqs []string
		for i, r := range out.Records {
			switch {
			case i%2 == 1 && (aws.ToString(r.ErrorCode) != "ProvisionedThroughputExceededException" || r.ErrorMessage == nil || r.SequenceNumber != nil):
				t.Errorf("record %d: %+v, want failed with ProvisionedThroughputExceededException", i, r)
			case i%2 == 0 && (r.ErrorCode != nil || r.SequenceNumber == nil || r.ShardId == nil):
				t.Errorf("record %d: %+v, want a sequence number and shard", i, r)
			case i%2 == 0:
				seqs = append(seqs, *r.SequenceNumber)
			}
		}
		data, gotSeqs := records(t, stream)
		if want := []string{"r0\xff\x00", "r2\xff\x00", "r4\xff\x00"}; !slices.Equal(data, want) || !slices.Equal(gotSeqs, seqs) {
			t.Errorf("stream holds %q %q, want %q %q", data, gotSeqs, want, seqs)
		}
		wantInjected(t, p, "PutRecords", 1)

		p.SetEnabled(false)
		if out := put("s0", "s1"); aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Errorf("disabled proxy: FailedRecordCount = %d, want 0", aws.ToInt32(out.FailedRecordCount))
		}
		if data, _ := records(t, stream); len(data) != 5 || data[3] != "s0" || data[4] != "s1" {
			t.Errorf("stream holds %q, want both records put through the disabled proxy last", data)
		}
		wantInjected(t, p, "PutRecords", 1)
	})
}

func TestFaultProxyDynamoDB(t *testing.T) {
	target := DynamoDB(t)
	direct, via := dynamoClients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newTable := func(t *testing.T) string {
		t.Helper()
		name := UniqueName(t, "faults")
		if _, err := direct.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(name),
			AttributeDefinitions: []dtypes.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: dtypes.ScalarAttributeTypeS}},
			KeySchema:            []dtypes.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: dtypes.KeyTypeHash}},
			BillingMode:          dtypes.BillingModePayPerRequest,
		}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	item := func(k string) map[string]dtypes.AttributeValue {
		return map[string]dtypes.AttributeValue{"k": &dtypes.AttributeValueMemberS{Value: k}}
	}
	key := func(it map[string]dtypes.AttributeValue) string {
		s, _ := it["k"].(*dtypes.AttributeValueMemberS)
		return s.Value
	}
	// stored returns the sorted keys in table, read from the stand-in directly.
	stored := func(t *testing.T, table string) []string {
		t.Helper()
		out, err := direct.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, it := range out.Items {
			keys = append(keys, key(it))
		}
		slices.Sort(keys)
		return keys
	}

	t.Run("ThrottleLimit", func(t *testing.T) {
		table := newTable(t)
		p := FaultProxy(t, target, FaultRule{Op: "PutItem", Fault: Throttle, Limit: 1})
		c := via(p)
		for i, k := range []string{"a", "b"} {
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item(k)})
			if i == 0 {
				wantAPIError[*dtypes.ProvisionedThroughputExceededException](t, err, 400)
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if got := stored(t, table); !slices.Equal(got, []string{"b"}) {
			t.Errorf("table holds %q, want [b]", got)
		}
		wantInjected(t, p, "PutItem", 1)
	})

	t.Run("ServerError", func(t *testing.T) {
		table := newTable(t)
		p := FaultProxy(t, target, FaultRule{Op: "GetItem", Fault: ServerError})
		_, err := via(p).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: item("a")})
		wantAPIError[*dtypes.InternalServerError](t, err, 500)
		wantInjected(t, p, "GetItem", 1)
	})

	t.Run("UnprocessedEvery", func(t *testing.T) {
		a, b := newTable(t), newTable(t)
		p := FaultProxy(t, target, FaultRule{Op: "BatchWriteItem", Fault: Unprocessed, Every: 2})
		c := via(p)
		// write puts the keys per table in one BatchWriteItem and returns
		// the unprocessed keys per table.
		write := func(keys map[string][]string) map[string][]string {
			t.Helper()
			in := &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{}}
			for table, ks := range keys {
				for _, k := range ks {
					in.RequestItems[table] = append(in.RequestItems[table], dtypes.WriteRequest{PutRequest: &dtypes.PutRequest{Item: item(k)}})
				}
			}
			out, err := c.BatchWriteItem(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			un := map[string][]string{}
			for table, reqs := range out.UnprocessedItems {
				for _, r := range reqs {
					un[table] = append(un[table], key(r.PutRequest.Item))
				}
			}
			return un
		}
		check := func(un, want map[string][]string, wantA, wantB []string) {
			t.Helper()
			if len(un) != len(want) {
				t.Errorf("unprocessed %q, want %q", un, want)
			}
			for table, ks := range want {
				if !slices.Equal(un[table], ks) {
					t.Errorf("unprocessed %q, want %q", un, want)
				}
			}
			if got := stored(t, a); !slices.Equal(got, wantA) {
				t.Errorf("table a holds %q, want %q", got, wantA)
			}
			if got := stored(t, b); !slices.Equal(got, wantB) {
				t.Errorf("table b holds %q, want %q", got, wantB)
			}
		}

		// 1st request: not due, all written.
		check(write(map[string][]string{a: {"x0", "x1"}}), nil, []string{"x0", "x1"}, nil)
		// 2nd: the first half of a's five items, none of b's one.
		check(write(map[string][]string{a: {"k0", "k1", "k2", "k3", "k4"}, b: {"k0"}}),
			map[string][]string{a: {"k2", "k3", "k4"}, b: {"k0"}},
			[]string{"k0", "k1", "x0", "x1"}, nil)
		// 3rd: not due. 4th: nothing left to forward, so not forwarded.
		check(write(map[string][]string{b: {"y0", "y1"}}), nil, []string{"k0", "k1", "x0", "x1"}, []string{"y0", "y1"})
		check(write(map[string][]string{b: {"z0"}}), map[string][]string{b: {"z0"}}, []string{"k0", "k1", "x0", "x1"}, []string{"y0", "y1"})
		wantInjected(t, p, "BatchWriteItem", 2)

		p.SetEnabled(false)
		check(write(map[string][]string{b: {"z0"}}), nil, []string{"k0", "k1", "x0", "x1"}, []string{"y0", "y1", "z0"})
		check(write(map[string][]string{b: {"z1"}}), nil, []string{"k0", "k1", "x0", "x1"}, []string{"y0", "y1", "z0", "z1"})
		wantInjected(t, p, "BatchWriteItem", 2)
	})
}
