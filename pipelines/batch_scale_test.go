package pipelines_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/lake"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/transforms/lakebuild"
)

// runBatchBudget runs the batch with a partition memory budget.
func runBatchBudget(t *testing.T, archiveRoot, lakeRoot string, budget int64, run string, maxDays int) metrics.Summary {
	t.Helper()
	ctx := context.Background()
	days, err := archive.PlanDays(ctx, archiveRoot, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(days) > maxDays {
		// The days of most staged bytes: the sample's busiest partitions.
		slices.SortFunc(days, func(a, b archive.Day) int { return int(daySize(b) - daySize(a)) })
		days = days[:maxDays]
	}
	p, s := beam.NewPipelineWithRoot()
	pipelines.Batch(s, pipelines.BatchConfig{Archive: archiveRoot, Lake: lakeRoot, Tenants: loadTenants(t), Days: days, Run: run, Budget: budget, Quiet: true})
	pr, err := runners.Run(ctx, runners.Bounded, p)
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
	return metrics.FromResult(pr)
}

func daySize(d archive.Day) (n int64) {
	for _, f := range d.Files {
		n += f.Size
	}
	return n
}

// lakeState is what a lake holds: every row (by partition and event id,
// rendered whole) as its manifests list them, and every object's digest.
type lakeState struct {
	rows      map[string]string // partition/event_id → row
	manifests map[string]lakebuild.Manifest
	objects   map[string][32]byte // path → sha256 (reports left out)
}

func readLake(t *testing.T, root string) lakeState {
	t.Helper()
	ctx := context.Background()
	st, objs := archiveObjects(t, root) // any root: the lake's here
	ls := lakeState{rows: map[string]string{}, manifests: map[string]lakebuild.Manifest{}, objects: map[string][32]byte{}}
	for _, o := range objs {
		if strings.HasPrefix(o.Path, lakebuild.ReportsDir+"/") {
			continue
		}
		b, err := blob.ReadFile(ctx, st, o.Path)
		if err != nil {
			t.Fatal(err)
		}
		if path.Base(o.Path) != lakebuild.ManifestName {
			ls.objects[o.Path] = sha256.Sum256(b)
			continue
		}
		var m lakebuild.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		ls.manifests[path.Dir(o.Path)] = m
	}
	for dir, m := range ls.manifests {
		var n int64
		for _, f := range m.Files {
			b, err := blob.ReadFile(ctx, st, dir+"/"+f)
			if err != nil {
				t.Fatalf("manifest %s names %s: %v", dir, f, err)
			}
			_, rows, err := lake.ReadParquet(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, f, err)
			}
			for _, r := range rows {
				k := dir + "/" + r.EventID
				if _, dup := ls.rows[k]; dup {
					t.Fatalf("event %s twice in %s", r.EventID, dir)
				}
				ls.rows[k] = fmt.Sprintf("%d %v %s", r.Timestamp, r.Values, r.UnknownJSON)
			}
			n += int64(len(rows))
		}
		if n != m.Rows {
			t.Fatalf("%s: manifest says %d rows, its files hold %d", dir, m.Rows, n)
		}
	}
	// Every parquet file is one its partition's manifest names.
	for p := range ls.objects {
		if strings.HasSuffix(p, ".parquet") && !slices.Contains(ls.manifests[path.Dir(p)].Files, path.Base(p)) {
			t.Fatalf("%s is in no manifest", p)
		}
	}
	return ls
}

// TestBatchOverBudget: a partition forced over its memory budget (256 B
// here, so every partition is split by event id into spill buckets) gives
// exactly the rows it gives in memory, duplicates removed exactly, on a
// local lake and on S3 (the sample's six busiest days); and a re-run of unchanged input leaves every lake
// object byte for byte as it was.
func TestBatchOverBudget(t *testing.T) {
	for _, where := range []string{"local", "s3"} {
		t.Run(where, func(t *testing.T) {
			root := t.TempDir()
			if where == "s3" {
				root = testenv.S3(t)
			}
			arch := root + "/archive"
			files, err := blob.ExpandInput(context.Background(), filepath.Join(sample, "raw"))
			if err != nil {
				t.Fatal(err)
			}
			runIngest(t, "direct", pipelines.IngestConfig{Files: files, Tenants: loadTenants(t), Archive: arch})

			whole := runBatchBudget(t, arch, root+"/whole", 0, "whole", 6)
			split := runBatchBudget(t, arch, root+"/split", 256, "split", 6)
			for _, c := range []string{pipelines.StagedRead, pipelines.LakeRows, pipelines.Duplicates, pipelines.LakePartitions} {
				if whole[c] != split[c] {
					t.Errorf("%s: %d in memory, %d split", c, whole[c], split[c])
				}
			}
			if whole[pipelines.Duplicates] == 0 || whole[pipelines.LakeRows]+whole[pipelines.Duplicates] != whole[pipelines.StagedRead] {
				t.Fatalf("in memory: %v", whole) // the busiest days hold re-deliveries
			}
			if whole[lakebuild.SpilledBuckets] != 0 || split[lakebuild.SpilledBuckets] < 2*split[pipelines.LakePartitions] {
				t.Fatalf("spilled buckets: %d in memory, %d split over %d partitions", whole[lakebuild.SpilledBuckets], split[lakebuild.SpilledBuckets], split[pipelines.LakePartitions])
			}
			a, b := readLake(t, root+"/whole"), readLake(t, root+"/split")
			if int64(len(a.rows)) != whole[pipelines.LakeRows] {
				t.Fatalf("in-memory lake holds %d rows, lake_rows %d", len(a.rows), whole[pipelines.LakeRows])
			}
			for k, row := range a.rows {
				if b.rows[k] != row {
					t.Fatalf("row %s: split %q, in memory %q", k, b.rows[k], row)
				}
			}
			if len(b.rows) != len(a.rows) {
				t.Fatalf("split lake holds %d rows, in memory %d", len(b.rows), len(a.rows))
			}
			multi := 0
			for dir, m := range b.manifests {
				if m.Buckets < 2 {
					t.Errorf("%s: %d bucket(s) under a 256-byte budget", dir, m.Buckets)
				}
				if len(m.Files) > 1 {
					multi++
				}
			}
			if multi == 0 {
				t.Error("no split partition has more than one file")
			}
			runBatchBudget(t, arch, root+"/split", 256, "split2", 6)
			again := readLake(t, root+"/split")
			if len(again.objects) != len(b.objects) {
				t.Fatalf("re-run: %d objects, before %d", len(again.objects), len(b.objects))
			}
			for p, sum := range b.objects {
				if again.objects[p] != sum {
					t.Fatalf("re-run changed %s", p)
				}
			}
		})
	}
}

// TestBatchUnindexedArchive: staged files written before the index (and
// by other tools) build the same lake as indexed ones, read whole and
// filtered per partition, beside indexed files of the same day.
func TestBatchUnindexedArchive(t *testing.T) {
	ctx := context.Background()
	arch := ingestSample(t)
	want := readLake(t, func() string {
		l := t.TempDir()
		runBatchBudget(t, arch, l, 0, "indexed", 1<<20)
		return l
	}())
	st, err := blob.Open(ctx, arch)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, archive.StagedDir+"/")
	if err != nil {
		t.Fatal(err)
	}
	rewritten := 0
	for i, o := range objs {
		if i%2 == 1 {
			continue // half stay indexed
		}
		data, err := blob.ReadFile(ctx, st, o.Path)
		if err != nil {
			t.Fatal(err)
		}
		var blk archive.Block
		if err := archive.ReadStagedFile(data, func(ev *records.Event) error {
			var err error
			blk.Data, err = archive.AppendEvent(blk.Data, ev)
			blk.Count++
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := archive.WriteAvroFile(ctx, st, o.Path, archive.StagedSchema, []archive.Block{blk}); err != nil {
			t.Fatal(err)
		}
		rewritten++
	}
	if rewritten == 0 {
		t.Fatal("no staged files")
	}
	l := t.TempDir()
	runBatchBudget(t, arch, l, 0, "unindexed", 1<<20)
	got := readLake(t, l)
	if len(got.rows) != len(want.rows) {
		t.Fatalf("%d rows from a partly unindexed archive, %d from an indexed one", len(got.rows), len(want.rows))
	}
	for k, row := range want.rows {
		if got.rows[k] != row {
			t.Fatalf("row %s: %q, want %q", k, got.rows[k], row)
		}
	}
}
