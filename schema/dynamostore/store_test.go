package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/schema"
)

func TestDynamoStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	client, table := dynalite(t)
	clk := newClock()
	s := New(client, table, Options{Now: func() time.Time { clk.advance(time.Hour); return clk.now() }})

	if _, err := s.Tenants(ctx); err == nil || !strings.Contains(err.Error(), "does not exist (the first `fineo schema apply") {
		t.Fatalf("Tenants of a missing table: %v", err)
	}

	steps := []struct {
		name        string
		apply       *schema.Tenant
		wantVersion int // the current version of apply.Tenant afterwards
		wantChanges []string
		wantErr     string
	}{
		{"new tenant creates the table", tenant("harbor", "a"), 1, []string{"+ metric m", "+ field m.a (long)"}, ""},
		{"added field", tenant("harbor", "a", "b"), 2, []string{"+ field m.b (long)"}, ""},
		{"no-op", tenant("harbor", "a", "b"), 2, nil, ""},
		{"hidden field", hide(tenant("harbor", "a", "b"), "a"), 3, []string{"- field m.a hidden"}, ""},
		{"hidden again keeps HiddenAt", hide(tenant("harbor", "a", "b", "c"), "a"), 4, []string{"+ field m.c (long)"}, ""},
		{"removal refused", tenant("harbor", "b"), 4, nil, `field "m.a" cannot be removed`},
		{"invalid schema refused", &schema.Tenant{Tenant: "harbor", Metrics: []schema.Metric{{Name: "m", Fields: []schema.Field{{Name: "a", Type: "float"}}}}}, 4, nil, `has type "float"`},
		{"second tenant", tenant("dock", "x"), 1, []string{"+ metric m", "+ field m.x (long)"}, ""},
		{"invalid tenant id", tenant("../x"), 0, nil, "invalid tenant id"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, changes, err := s.Apply(ctx, st.apply)
			if matchError(t, err, st.wantErr); err == nil && (got.Version != st.wantVersion || !slices.Equal(changeLines(changes), st.wantChanges)) {
				t.Fatalf("Apply = v%d %q, want v%d %q", got.Version, changeLines(changes), st.wantVersion, st.wantChanges)
			}
			if st.wantVersion == 0 {
				return
			}
			// The store that applied, and a new one (no cache), agree.
			mustGet(t, s, st.apply.Tenant, st.wantVersion)
			mustGet(t, New(client, table, Options{}), st.apply.Tenant, st.wantVersion)
		})
	}

	fresh := New(client, table, Options{})
	mustTenants(t, s, "dock", "harbor")
	mustTenants(t, fresh, "dock", "harbor")
	hist, err := fresh.History(ctx, "harbor")
	if err != nil || !slices.Equal(versions(hist), []int{1, 2, 3, 4}) {
		t.Fatalf("History = %v, %v", versions(hist), err)
	}
	for i := 1; i < len(hist); i++ {
		if !hist[i].UpdatedAt.After(hist[i-1].UpdatedAt) {
			t.Errorf("UpdatedAt not increasing: v%d %v, v%d %v", i, hist[i-1].UpdatedAt, i+1, hist[i].UpdatedAt)
		}
	}
	a3, a4 := hist[2].Metrics[0].Fields[0], hist[3].Metrics[0].Fields[0]
	if a3.HiddenAt == nil || !a3.HiddenAt.Equal(hist[2].UpdatedAt) || a4.HiddenAt == nil || !a4.HiddenAt.Equal(*a3.HiddenAt) {
		t.Errorf("HiddenAt: v3 %v (updated %v), v4 %v", a3.HiddenAt, hist[2].UpdatedAt, a4.HiddenAt)
	}
	cur := mustGet(t, fresh, "harbor", 4)
	if d := schema.Diff(hist[3], cur); len(d) != 0 || !cur.UpdatedAt.Equal(hist[3].UpdatedAt) {
		t.Errorf("Get and History disagree: %q", changeLines(d))
	}
	all, err := schema.LoadAll(ctx, fresh)
	if err != nil || len(all) != 2 || all[0].Tenant != "dock" || all[1].Version != 4 {
		t.Errorf("LoadAll = %v, %v", all, err)
	}

	// Callers may modify what they get.
	cur.Metrics[0].Fields = nil
	mustGet(t, fresh, "harbor", 4)
	if got := mustGet(t, fresh, "harbor", 4); len(got.Metrics[0].Fields) != 3 {
		t.Errorf("a caller's edit reached the cache: %d fields", len(got.Metrics[0].Fields))
	}

	for name, call := range map[string]func() error{
		"Get":     func() error { _, err := fresh.Get(ctx, "nope"); return err },
		"History": func() error { _, err := fresh.History(ctx, "nope"); return err },
	} {
		if err := call(); !errors.Is(err, schema.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
			t.Errorf("%s of a missing tenant: %v, want ErrNotFound naming it", name, err)
		}
	}

	// Plan reports without recording.
	next, changes, err := schema.Plan(ctx, fresh, hide(tenant("harbor", "a", "b", "c", "d"), "a"))
	if err != nil || next.Version != 5 || !slices.Equal(changeLines(changes), []string{"+ field m.d (long)"}) {
		t.Fatalf("Plan = v%d %q %v", next.Version, changeLines(changes), err)
	}
	if hist, _ := fresh.History(ctx, "harbor"); len(hist) != 4 {
		t.Errorf("Plan recorded a version: %d versions", len(hist))
	}
}

func TestDynamoStoreConcurrentApply(t *testing.T) {
	ctx := context.Background()
	client, table := dynalite(t)
	if err := New(client, table, Options{}).EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("two appliers of the same version", func(t *testing.T) {
		// Both read version 1 before either writes version 2.
		api := newBarrierAPI(client, 2)
		s := New(api, table, Options{})
		if _, _, err := New(client, table, Options{}).Apply(ctx, tenant("harbor", "a")); err != nil {
			t.Fatal(err)
		}
		results := make([]error, 2)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				_, _, results[i] = s.Apply(ctx, tenant("harbor", "a", fmt.Sprintf("from%d", i)))
			})
		}
		wg.Wait()
		var won []int
		for i, err := range results {
			switch {
			case err == nil:
				won = append(won, i)
			case !errors.Is(err, ErrConflict) || err.Error() != "schema: version 2 of harbor was recorded concurrently; apply again":
				t.Errorf("applier %d: %v, want the conflict error", i, err)
			}
		}
		hist, err := s.History(ctx, "harbor")
		if len(won) != 1 || err != nil || !slices.Equal(versions(hist), []int{1, 2}) {
			t.Fatalf("winners %v, history %v, %v", won, versions(hist), err)
		}
		if f := hist[1].Metrics[0].Fields[1].Name; f != fmt.Sprintf("from%d", won[0]) {
			t.Errorf("version 2 holds %s, not the winner's field", f)
		}
	})

	t.Run("retrying appliers each get their own version", func(t *testing.T) {
		const n = 6
		base := []string{"a"}
		if _, _, err := New(client, table, Options{}).Apply(ctx, tenant("dock", base...)); err != nil {
			t.Fatal(err)
		}
		// Each applier adds its own field to whatever is current, through
		// its own Store (as separate processes do). A proposal built on a
		// version that is no longer current either conflicts (same number)
		// or is refused for removing the fields added meanwhile: both mean
		// read again and retry.
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				s := New(client, table, Options{})
				for {
					cur, err := s.History(ctx, "dock")
					if err != nil {
						errs[i] = err
						return
					}
					next := cur[len(cur)-1].Clone()
					next.Metrics[0].Fields = append(next.Metrics[0].Fields, schema.Field{Name: fmt.Sprintf("f%d", i), Type: schema.Long})
					_, _, err = s.Apply(ctx, next)
					if !errors.Is(err, ErrConflict) && (err == nil || !strings.Contains(err.Error(), "cannot be removed")) {
						errs[i] = err
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		hist, err := New(client, table, Options{}).History(ctx, "dock")
		if err != nil || !slices.Equal(versions(hist), []int{1, 2, 3, 4, 5, 6, 7}) {
			t.Fatalf("history %v, %v", versions(hist), err)
		}
		if fields := hist[n].Metrics[0].Fields; len(fields) != n+1 {
			t.Errorf("latest version has %d fields, want %d: a concurrent apply was lost", len(fields), n+1)
		}
		out, err := client.Query(ctx, New(client, table, Options{}).tenantQuery("dock"))
		if err != nil || len(out.Items) != n+1 {
			t.Errorf("the table holds %d items of dock, %v", len(out.Items), err)
		}
	})
}

// barrierAPI holds every PutItem until left of them arrived (at most 10 s).
type barrierAPI struct {
	API
	left atomic.Int32
	all  chan struct{}
}

func newBarrierAPI(api API, n int32) *barrierAPI {
	b := &barrierAPI{API: api, all: make(chan struct{})}
	b.left.Store(n)
	return b
}

func (b *barrierAPI) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if b.left.Add(-1) == 0 {
		close(b.all)
	}
	select {
	case <-b.all:
	case <-time.After(10 * time.Second):
		return nil, errors.New("barrier: the other PutItem never came")
	}
	return b.API.PutItem(ctx, in, optFns...)
}

func TestDynamoStoreCacheRefresh(t *testing.T) {
	ctx := context.Background()
	reader, api, clk := cachedStore(t)
	client, table := api.API, reader.table
	writer := New(client, table, Options{Now: clk.now})

	if _, _, err := writer.Apply(ctx, tenant("harbor", "a")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, reader, "harbor", 1)
	mustTenants(t, reader, "harbor")
	if n := api.scans.Load(); n != 1 {
		t.Fatalf("%d scans for the first reads, want 1", n)
	}

	// Another process applies; the reader serves its snapshot until it is
	// RefreshInterval old.
	if _, _, err := writer.Apply(ctx, tenant("harbor", "a", "b")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := writer.Apply(ctx, tenant("dock", "x")); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute - time.Nanosecond)
	mustGet(t, reader, "harbor", 1)
	mustTenants(t, reader, "harbor")
	if _, err := reader.Get(ctx, "dock"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("Get of a tenant created since the snapshot: %v", err)
	}
	if hist, err := reader.History(ctx, "harbor"); err != nil || len(hist) != 2 {
		t.Fatalf("History reads the table: %v, %v", versions(hist), err)
	}
	if n := api.scans.Load(); n != 1 {
		t.Fatalf("%d scans within the refresh interval, want 1", n)
	}

	clk.advance(time.Nanosecond)
	// Concurrent readers of an expired snapshot share one scan.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { mustGet(t, reader, "harbor", 2) })
	}
	wg.Wait()
	mustTenants(t, reader, "dock", "harbor")
	if n := api.scans.Load(); n != 2 {
		t.Fatalf("%d scans after one expiry, want 2", n)
	}

	// The reader's own Apply is visible at once, without a scan.
	if _, _, err := reader.Apply(ctx, tenant("harbor", "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reader.Apply(ctx, tenant("quay", "q")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, reader, "harbor", 3)
	mustTenants(t, reader, "dock", "harbor", "quay")
	if n := api.scans.Load(); n != 2 {
		t.Fatalf("%d scans after the reader's own apply, want 2", n)
	}
	if err := reader.Refresh(ctx); err != nil || api.scans.Load() != 3 {
		t.Fatalf("Refresh: %v, %d scans", err, api.scans.Load())
	}

	t.Run("negative interval reads every time", func(t *testing.T) {
		api := &countingAPI{API: client}
		s := New(api, table, Options{RefreshInterval: -1, Now: clk.now})
		mustGet(t, s, "harbor", 3)
		mustGet(t, s, "harbor", 3)
		if n := api.scans.Load(); n != 2 {
			t.Errorf("%d scans, want 2", n)
		}
	})
	if s := New(client, table, Options{}); s.interval != DefaultRefreshInterval {
		t.Errorf("default interval %v", s.interval)
	}
}

// An Apply that lands while a snapshot is being taken is not hidden by it.
func TestDynamoStoreApplyDuringRefresh(t *testing.T) {
	ctx := context.Background()
	s, api, _ := cachedStore(t)
	if _, _, err := s.Apply(ctx, tenant("harbor", "a")); err != nil {
		t.Fatal(err)
	}
	scanned, release := make(chan struct{}), make(chan struct{})
	api.afterScan = func() { close(scanned); <-release }
	refreshed := make(chan error)
	go func() { refreshed <- s.Refresh(ctx) }()
	<-scanned // the scan saw version 1 only
	api.afterScan = nil
	if _, _, err := s.Apply(ctx, tenant("harbor", "a", "b")); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-refreshed; err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "harbor", 2)
}

func TestDynamoStoreErrors(t *testing.T) {
	ctx := context.Background()
	client, table := dynalite(t)
	s := New(client, table, Options{})
	if _, _, err := s.Apply(ctx, tenant("harbor", "a")); err != nil {
		t.Fatal(err)
	}
	put := func(item map[string]types.AttributeValue) {
		t.Helper()
		if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	num := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

	// A nearline-like table is refused by EnsureTable.
	other := table + "-other"
	if _, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(other),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}

	big := tenant("big")
	for i := range 5000 {
		big.Metrics[0].Fields = append(big.Metrics[0].Fields, schema.Field{Name: fmt.Sprintf("field_with_a_long_name_%05d", i), Type: schema.Long,
			Aliases: []string{fmt.Sprintf("alias_with_a_long_name_%05d", i)}})
	}

	tests := []struct {
		name  string
		setup func()
		call  func(*Store) error
		want  string
	}{
		{"EnsureTable is idempotent", nil, func(s *Store) error { return s.EnsureTable(ctx) }, ""},
		{"wrong key schema", nil, func(*Store) error { return New(client, other, Options{}).EnsureTable(ctx) },
			"has the key (pk S HASH), want (tenant S HASH, version N RANGE): is it a schema table?"},
		{"invalid tenant id in Get", nil, func(s *Store) error { _, err := s.Get(ctx, "../etc"); return err }, `schema: invalid tenant id "../etc"`},
		{"invalid tenant id in History", nil, func(s *Store) error { _, err := s.History(ctx, "A"); return err }, `invalid tenant id "A"`},
		{"schema too large", nil, func(s *Store) error { _, _, err := s.Apply(ctx, big); return err }, "the DynamoDB store holds at most"},
		{"corrupt schema", func() {
			put(map[string]types.AttributeValue{"tenant": str("harbor"), "version": num("2"), "schema": str("{")})
		},
			func(s *Store) error { _, err := s.Get(ctx, "harbor"); return err }, "DynamoDB table " + table + ", tenant harbor version 2: schema:"},
		{"schema of another version", func() {
			put(map[string]types.AttributeValue{"tenant": str("harbor"), "version": num("2"), "schema": str(`{"tenant": "harbor", "version": 7, "metrics": []}`)})
		}, func(s *Store) error { _, err := s.History(ctx, "harbor"); return err }, `holds tenant "harbor" version 7`},
		{"no schema attribute", func() { put(map[string]types.AttributeValue{"tenant": str("dock"), "version": num("1")}) },
			func(s *Store) error { _, err := s.History(ctx, "dock"); return err }, `tenant dock version 1: no string "schema" attribute`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			matchError(t, tc.call(New(client, table, Options{})), tc.want)
		})
	}
}

func TestDynamoStoreParseSpec(t *testing.T) {
	tests := []struct{ spec, table, want string }{
		{"dynamodb://fineo-schemas", "fineo-schemas", ""},
		{"dynamodb://a.b_C-1", "a.b_C-1", ""},
		{"dynamodb://", "", "is not a DynamoDB table name"},
		{"dynamodb://ab", "", "is not a DynamoDB table name"},
		{"dynamodb://t/x", "", `"t/x" is not a DynamoDB table name`},
		{"s3://b", "", "want dynamodb://TABLE"},
	}
	for _, tc := range tests {
		got, err := ParseSpec(tc.spec)
		if tc.want == "" && (err != nil || got != tc.table) || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ParseSpec(%q) = %q, %v; want %q or an error containing %q", tc.spec, got, err, tc.table, tc.want)
		}
	}
}
