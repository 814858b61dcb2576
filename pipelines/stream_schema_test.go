package pipelines_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/streaming"
)

// TestStreamSchemaRefresh applies a schema change while the stream runs:
// events put before it keep the field in unknown_fields with the old
// version, events put after the refresh get it as a typed field with the
// new version, without a restart.
func TestStreamSchemaRefresh(t *testing.T) {
	ctx := context.Background()
	e := newStreamEnv(t, 1)
	dir := t.TempDir()
	for _, f := range []string{"harbor.yaml", "quakenet.yaml", "skyline.yaml"} {
		b, err := os.ReadFile(filepath.Join(sample, "schemas", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := schema.OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := schema.LoadAll(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Tenants, cfg.SchemaStore, cfg.SchemaRefresh = tenants, dir, 300*time.Millisecond

	ts := time.Now().Add(-time.Hour).UnixMilli()
	batch := func(from int) [][]byte {
		var lines [][]byte
		for i := from; i < from+20; i++ {
			lines = append(lines, fmt.Appendf(nil, `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":%d,"temp_c":%d.5,"gust_kt":%d}}`, ts+int64(i), i, i))
		}
		return lines
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		putLines(t, e.kin, e.raw, batch(0), 0)
		// Wait until the first batch is in the table, then apply.
		for deadline := time.Now().Add(60 * time.Second); ; {
			n := 0
			dynamodbio.Query(ctx, e.ddb, e.table, "harbor", "weather", ts, ts+20, func(*records.Event) error { n++; return nil })
			if n == 20 {
				break
			}
			if time.Now().After(deadline) {
				t.Error("the first batch never reached the table")
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		harbor, err := st.Get(ctx, "harbor")
		if err != nil {
			t.Error(err)
			return
		}
		harbor.Metrics[0].Fields = append(harbor.Metrics[0].Fields, schema.Field{Name: "gust_kt", Type: schema.Double})
		if _, _, err := st.Apply(ctx, harbor); err != nil {
			t.Error(err)
			return
		}
		time.Sleep(2 * cfg.SchemaRefresh) // the refresh period: the next page reads the store again
		putLines(t, e.kin, e.raw, batch(20), 20)
	})
	sum := e.run(t, cfg)
	wg.Wait()
	if sum[streaming.SchemaRefreshes] < 1 {
		t.Errorf("no schema refresh counted: %v", sum)
	}
	got := map[int64]*records.Event{}
	if _, err := dynamodbio.Query(ctx, e.ddb, e.table, "harbor", "weather", ts, ts+40, func(ev *records.Event) error {
		got[ev.Timestamp-ts] = ev
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 {
		t.Fatalf("%d events in the table, want 40", len(got))
	}
	var v0 int
	for i := int64(0); i < 40; i++ {
		ev := got[i]
		_, typed := ev.Fields["gust_kt"]
		_, unknown := ev.Unknown["gust_kt"]
		switch {
		case i < 20 && (typed || !unknown):
			t.Errorf("event %d (before the apply): gust_kt typed %v, unknown %v", i, typed, unknown)
		case i >= 20 && (!typed || unknown || fmt.Sprint(ev.Fields["gust_kt"]) != fmt.Sprint(i)): // DynamoDB gives an integral double back as a long
			t.Errorf("event %d (after the refresh): gust_kt %v, unknown %v", i, ev.Fields["gust_kt"], unknown)
		}
		if i == 0 {
			v0 = ev.SchemaVersion
		}
		if i >= 20 && ev.SchemaVersion <= v0 {
			t.Errorf("event %d resolved with schema version %d, want above %d", i, ev.SchemaVersion, v0)
		}
	}
}
