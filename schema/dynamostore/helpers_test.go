package dynamostore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/schema"
)

// dynalite starts a DynamoDB stand-in for the test and returns a client of
// it and a fresh table name (the table is not created).
func dynalite(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	testenv.DynamoDB(t)
	s, err := Open(context.Background(), "unused", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s.api.(*dynamodb.Client), testenv.UniqueName(t, "schemas")
}

// cachedStore returns a store over a fresh table with a one-minute refresh
// interval, the API it counts scans with and its clock.
func cachedStore(t *testing.T) (*Store, *countingAPI, *clock) {
	client, table := dynalite(t)
	api := &countingAPI{API: client}
	clk := newClock()
	return New(api, table, Options{RefreshInterval: time.Minute, Now: clk.now}), api, clk
}

// clock is a test clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingAPI counts the Scans (snapshots) made through it. afterScan, if
// set, runs after each Scan call returned from the server.
type countingAPI struct {
	API
	scans     atomic.Int64
	afterScan func()
}

func (c *countingAPI) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.scans.Add(1)
	out, err := c.API.Scan(ctx, in, optFns...)
	if c.afterScan != nil {
		c.afterScan()
	}
	return out, err
}

// tenant returns a schema of tenant id with one metric "m" of long fields.
func tenant(id string, fields ...string) *schema.Tenant {
	m := schema.Metric{Name: "m", Fields: []schema.Field{}}
	for _, f := range fields {
		m.Fields = append(m.Fields, schema.Field{Name: f, Type: schema.Long})
	}
	return &schema.Tenant{Tenant: id, Metrics: []schema.Metric{m}}
}

// hide returns t with field f hidden.
func hide(t *schema.Tenant, f string) *schema.Tenant {
	t = t.Clone()
	for i := range t.Metrics[0].Fields {
		if t.Metrics[0].Fields[i].Name == f {
			t.Metrics[0].Fields[i].Hidden = true
		}
	}
	return t
}

func changeLines(cs []schema.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func versions(ts []*schema.Tenant) []int {
	var out []int
	for _, t := range ts {
		out = append(out, t.Version)
	}
	return out
}

// matchError fails t unless err is nil (want "") or contains want.
func matchError(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

func mustGet(t *testing.T, s schema.Store, tenant string, wantVersion int) *schema.Tenant {
	t.Helper()
	got, err := s.Get(context.Background(), tenant)
	if err != nil {
		t.Fatalf("Get(%s): %v", tenant, err)
	}
	if got.Version != wantVersion {
		t.Fatalf("Get(%s) = version %d, want %d", tenant, got.Version, wantVersion)
	}
	return got
}

func mustTenants(t *testing.T, s schema.Store, want ...string) {
	t.Helper()
	got, err := s.Tenants(context.Background())
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Tenants = %v, %v; want %v", got, err, want)
	}
}
