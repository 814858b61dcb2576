package lakebuild

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/stage1"
)

// stagedBlock encodes events as stage 1 does for one (tenant, metric).
func stagedBlock(t *testing.T, evs []*records.Event) archive.Block {
	var plain []byte
	for _, ev := range evs {
		var err error
		if plain, err = archive.AppendEvent(plain, ev); err != nil {
			t.Fatal(err)
		}
	}
	data := archive.AppendSnappy(nil, plain)
	return archive.Block{Count: int64(len(evs)), Snappy: true, Data: data,
		Groups: []archive.Group{{Tenant: "acme", Metric: "temp", Count: int64(len(evs)), Plain: int64(len(plain)), Len: int64(len(data))}}}
}

// TestBuildPartitionBadRange: a range that breaks half-way (its second
// block corrupt, after the first block's records were read) contributes
// none of its records, in memory and through spill buckets alike; the
// partition holds exactly the good range's events, and the bad range is
// one FileError counting its records.
func TestBuildPartitionBadRange(t *testing.T) {
	ctx := context.Background()
	st, err := blob.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	events := func(from, n int) []*records.Event {
		out := make([]*records.Event, n)
		for i := range out {
			out[i] = &records.Event{ID: fmt.Sprintf("ev-%05d", from+i), Tenant: "acme", Metric: "temp", MetricAlias: "temp",
				Timestamp: 1700000000000 + int64(from+i), Fields: map[string]any{"celsius": float64(i)}, IngestTime: 1}
		}
		return out
	}
	// good.avro: 300 events; bad.avro: two blocks of 100, the second corrupt.
	if err := archive.WriteStagedFile(ctx, st, "staged/date=2023-11-14/good.avro", []archive.Block{stagedBlock(t, events(0, 300))}); err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteStagedFile(ctx, st, "staged/date=2023-11-14/bad.avro", []archive.Block{stagedBlock(t, events(1000, 100)), stagedBlock(t, events(1100, 100))}); err != nil {
		t.Fatal(err)
	}
	var ranges []archive.Range
	for _, f := range []string{"good.avro", "bad.avro"} {
		p := "staged/date=2023-11-14/" + f
		rs, err := archive.PlanFile(ctx, st, p, 0)
		if err != nil || len(rs) != 1 {
			t.Fatalf("plan %s: %v, %v", f, rs, err)
		}
		ranges = append(ranges, rs[0])
	}
	data, _ := blob.ReadFile(ctx, st, ranges[1].File)
	data[ranges[1].Off+ranges[1].Len-30] ^= 0xff // inside the second block's snappy data
	w, _ := st.Create(ctx, ranges[1].File)
	w.Write(data)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	binder, err := stage1.NewBinder([]*schema.Tenant{{Tenant: "acme", Metrics: []schema.Metric{{Name: "temp",
		Fields: []schema.Field{{Name: "celsius", Type: "double"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		budget int64
		split  bool
	}{{"in memory", 1 << 30, false}, {"spilled", 1 << 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			lakeStore, _ := blob.NewLocalStore(t.TempDir())
			cfg := Config{Lake: lakeStore, Binder: binder, Run: "r", Budget: tc.budget, TempDir: t.TempDir()}
			res, err := BuildPartition(ctx, cfg, st, Unit{Date: "2023-11-14", Tenant: "acme", Metric: "temp"}, ranges)
			if err != nil {
				t.Fatal(err)
			}
			if res.Read != 300 || res.Rows != 300 || res.Partition == nil || res.Partition.Rows != 300 {
				t.Fatalf("read %d, rows %d: want exactly the good range's 300", res.Read, res.Rows)
			}
			if len(res.FileErrors) != 1 || res.FileErrors[0].Events != 200 {
				t.Fatalf("file errors %+v, want one of 200 events", res.FileErrors)
			}
			if (res.Partition.Buckets > 1) != tc.split {
				t.Fatalf("%d buckets: split %v, want %v", res.Partition.Buckets, res.Partition.Buckets > 1, tc.split)
			}
		})
	}
}

// flakyStore fails every ranged read as a store would under throttling.
type flakyStore struct{ blob.Store }

func (flakyStore) ReadRange(context.Context, string, int64, int64) ([]byte, error) {
	return nil, errors.New("SlowDown: please reduce your request rate")
}

// TestBuildPartitionStoreError: a store error (not damage) fails the
// partition, so the runner retries it, instead of rebuilding it without
// the range's rows as a read_failed error would.
func TestBuildPartitionStoreError(t *testing.T) {
	ctx := context.Background()
	st, _ := blob.NewLocalStore(t.TempDir())
	ev := &records.Event{ID: "a", Tenant: "acme", Metric: "temp", MetricAlias: "temp", Timestamp: 1}
	if err := archive.WriteStagedFile(ctx, st, "staged/date=1970-01-01/a.avro", []archive.Block{stagedBlock(t, []*records.Event{ev})}); err != nil {
		t.Fatal(err)
	}
	rs, err := archive.PlanFile(ctx, st, "staged/date=1970-01-01/a.avro", 0)
	if err != nil {
		t.Fatal(err)
	}
	binder, _ := stage1.NewBinder([]*schema.Tenant{{Tenant: "acme", Metrics: []schema.Metric{{Name: "temp", Fields: []schema.Field{{Name: "celsius", Type: "double"}}}}}})
	lakeStore, _ := blob.NewLocalStore(t.TempDir())
	for _, budget := range []int64{1 << 30, 1} {
		_, err = BuildPartition(ctx, Config{Lake: lakeStore, Binder: binder, Budget: budget, TempDir: t.TempDir()}, flakyStore{st}, Unit{Date: "1970-01-01", Tenant: "acme", Metric: "temp"}, rs)
		if err == nil || !strings.Contains(err.Error(), "SlowDown") {
			t.Fatalf("budget %d: %v, want the store's error", budget, err)
		}
	}
	if objs, _ := lakeStore.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("a failed partition wrote %v", objs)
	}
}
