package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestKinesis(t *testing.T) {
	preset := os.Getenv("AWS_ENDPOINT_URL_KINESIS") != ""
	var endpoint string
	t.Run("serve", func(t *testing.T) {
		endpoint = Kinesis(t)
		if got := os.Getenv("AWS_ENDPOINT_URL_KINESIS"); got != endpoint {
			t.Fatalf("AWS_ENDPOINT_URL_KINESIS = %q, want %q", got, endpoint)
		}
		if !preset {
			u, err := url.Parse(endpoint)
			if err != nil || u.Hostname() != "127.0.0.1" {
				t.Fatalf("endpoint %q is not on 127.0.0.1", endpoint)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		client := KinesisClient(t)
		name := UniqueName(t, "testenv")
		CreateStream(t, client, name, 2)

		shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatalf("list shards over the SDK: %v", err)
		}
		if len(shards.Shards) != 2 {
			t.Fatalf("stream has %d shards, want 2", len(shards.Shards))
		}
		put, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte("hello"),
		})
		if err != nil {
			t.Fatalf("put record: %v", err)
		}
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(name), ShardId: put.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("get shard iterator: %v", err)
		}
		got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatalf("get records: %v", err)
		}
		if len(got.Records) != 1 || string(got.Records[0].Data) != "hello" {
			t.Fatalf("got %d records, want the one put", len(got.Records))
		}
	})
	if preset || t.Failed() {
		return
	}
	// The subtest's cleanup stopped the server.
	u, _ := url.Parse(endpoint)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("kinesalite still accepts connections on %s after cleanup", u.Host)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStandInSurvivesAbortedRequest: a client that dies with a request
// half sent (as `fineo stream` does when a test kills it) leaves the
// stand-ins serving; unguarded, kinesalite and dynalite exit with
// "Error: aborted" and every later test fails to connect.
func TestStandInSurvivesAbortedRequest(t *testing.T) {
	for _, s := range []struct {
		name     string
		endpoint func(testing.TB) string
		target   string
	}{
		{"kinesalite", func(t testing.TB) string { return Kinesis(t) }, "Kinesis_20131202.ListStreams"},
		{"dynalite", func(t testing.TB) string { return DynamoDB(t) }, "DynamoDB_20120810.ListTables"},
	} {
		t.Run(s.name, func(t *testing.T) {
			u, err := url.Parse(s.endpoint(t))
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				c, err := net.Dial("tcp", u.Host)
				if err != nil {
					t.Fatal(err)
				}
				// A body promised at 1 MB, cut off after a few bytes.
				c.Write([]byte("POST / HTTP/1.1\r\nHost: " + u.Host + "\r\nX-Amz-Target: " + s.target +
					"\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 1000000\r\n\r\n{\"a\":"))
				time.Sleep(50 * time.Millisecond)
				c.Close()
			}
			time.Sleep(200 * time.Millisecond)
			c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
			if err != nil {
				t.Fatalf("%s is gone after an aborted request: %v", s.name, err)
			}
			c.Close()
		})
	}
}
