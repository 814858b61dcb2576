package awsconf

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/fineo-io/ingest/internal/testenv"
)

// TestConnectionsReused makes rounds of concurrent calls, more than the
// SDK's 10 idle connections per host, and counts the connections the
// server accepts: the first round opens one per call, the later rounds
// reuse them. With the SDK's default pool every round after the first
// opened about concurrent-10 new connections.
func TestConnectionsReused(t *testing.T) {
	const concurrent, rounds = 32, 4
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // the round's calls overlap
		testenv.WriteJSON(w, "application/x-amz-json-1.0", http.StatusOK, []byte(`{}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")

	ctx := context.Background()
	cfg, err := Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	for range rounds {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				if _, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("t")}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	// One connection per call of the first round, and a few spare for
	// calls that start as another's connection is being returned.
	if n := opened.Load(); n > concurrent+concurrent/4 {
		t.Fatalf("%d rounds of %d concurrent calls opened %d connections; want at most %d (reuse)", rounds, concurrent, n, concurrent+concurrent/4)
	}
}
