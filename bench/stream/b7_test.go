package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
)

func TestMain(m *testing.M) {
	flag.Parse()
	beamlog.LogLevel = "warn"
	beam.Init()
	os.Exit(m.Run())
}

// TestB7Small runs benchmark B7 (`go run ./bench/stream -b7`) at a small
// rate against the stand-ins: the command works end to end, and its
// 24-hour query returns exactly the events written (runB7 fails otherwise).
func TestB7Small(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", testenv.Kinesis(t))
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", testenv.DynamoDB(t))
	tenants, err := loadTenants(filepath.Join("..", "..", "testdata", "sample", "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	if err := runB7(300, 3*time.Second, 2, 1000, 20, 0, tenants, dynamodbio.LayoutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestB3InstancesSmall runs B3 with two `fineo stream` processes
// (`go run ./bench/stream -instances 2`) on a small backlog: the command
// works end to end, a killed instance's leases are taken over (runInstances
// fails otherwise) and every sampled event becomes readable.
func TestB3InstancesSmall(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", testenv.Kinesis(t))
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", testenv.DynamoDB(t))
	if err := runInstances(3000, 4, 2, 50, 16, filepath.Join("..", "..", "testdata", "sample", "schemas"), 3*time.Second); err != nil {
		t.Fatal(err)
	}
}
