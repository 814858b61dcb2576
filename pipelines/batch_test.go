package pipelines_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/lake"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/schemachange"
)

// ingestSample runs the batch ingest of the sample into a fresh archive.
func ingestSample(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	files, err := blob.ExpandInput(context.Background(), filepath.Join(sample, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	runIngest(t, "direct", pipelines.IngestConfig{Files: files, Tenants: loadTenants(t), Archive: out})
	return out
}

func runBatch(t *testing.T, archiveDir, lakeDir, backupDir string, tenants []*schema.Tenant, run string) metrics.Summary {
	t.Helper()
	ctx := context.Background()
	days, err := archive.PlanDays(ctx, archiveDir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	pipelines.Batch(s, pipelines.BatchConfig{Archive: archiveDir, Lake: lakeDir, Backup: backupDir, Tenants: tenants, Days: days, Run: run, Quiet: true})
	pr, err := runners.Run(ctx, runners.Bounded, p)
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
	return metrics.FromResult(pr)
}

func lakeGlob(dir string) string { return filepath.Join(dir, "*", "*", "*", "*.parquet") }

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	if err != nil {
		t.Fatalf("not a number: %v", v)
	}
	return n
}

func TestBatchLake(t *testing.T) {
	exp := loadExpected(t)
	archiveDir := ingestSample(t)
	lakeDir, backupDir := t.TempDir(), t.TempDir()
	sum := runBatch(t, archiveDir, lakeDir, backupDir, loadTenants(t), "run1")

	if sum[pipelines.StagedRead] != int64(exp.ValidEvents) || sum[pipelines.LakeRows] != int64(exp.DistinctValid) ||
		sum[pipelines.Duplicates] != int64(exp.ValidEvents-exp.DistinctValid) || sum[pipelines.BackupItems] != int64(exp.DistinctValid) {
		t.Fatalf("counters %v; want %d read, %d rows, %d duplicates", sum, exp.ValidEvents, exp.DistinctValid, exp.ValidEvents-exp.DistinctValid)
	}

	// Independent expectation per partition, from the staged archive read
	// back with goavro and deduplicated here.
	staged := readArchive(t, archiveDir).staged
	want := map[string]map[string]bool{} // tenant/metric/date → ids
	byID := map[string]*records.Event{}
	for _, ev := range staged {
		k := ev.Tenant + "/" + ev.Metric + "/" + time.UnixMilli(ev.Timestamp).UTC().Format(time.DateOnly)
		if want[k] == nil {
			want[k] = map[string]bool{}
		}
		want[k][ev.ID] = true
		byID[ev.ID] = ev
	}
	rows := testenv.DuckDB(t, fmt.Sprintf(`SELECT tenant, metric, CAST(date AS VARCHAR) AS d, count(*) AS n, count(DISTINCT event_id) AS u
		FROM read_parquet('%s', hive_partitioning = true, union_by_name = true) GROUP BY ALL`, lakeGlob(lakeDir)))
	if len(rows) != len(want) {
		t.Errorf("DuckDB sees %d partitions, want %d", len(rows), len(want))
	}
	total := int64(0)
	for _, r := range rows {
		k := fmt.Sprintf("%v/%v/%v", r["tenant"], r["metric"], r["d"])
		n, u := num(t, r["n"]), num(t, r["u"])
		total += n
		if n != int64(len(want[k])) || u != n {
			t.Errorf("partition %s: %d rows (%d distinct ids), want %d", k, n, u, len(want[k]))
		}
	}
	if total != int64(exp.DistinctValid) {
		t.Errorf("lake rows %d, want %d", total, exp.DistinctValid)
	}

	// Typed columns, read by DuckDB.
	colTypes := map[string]string{}
	for _, r := range testenv.DuckDB(t, fmt.Sprintf(`DESCRIBE SELECT * FROM read_parquet('%s/tenant=skyline/metric=flight/*/*.parquet', hive_partitioning = true)`, lakeDir)) {
		colTypes[fmt.Sprint(r["column_name"])] = fmt.Sprint(r["column_type"])
	}
	for col, typ := range map[string]string{"event_id": "VARCHAR", "timestamp": "TIMESTAMP WITH TIME ZONE", "delay": "BIGINT",
		"distance": "BIGINT", "origin": "VARCHAR", "departed": "TIMESTAMP WITH TIME ZONE", "unknown_fields": "VARCHAR", "date": "DATE"} {
		if colTypes[col] != typ {
			t.Errorf("skyline/flight column %s is %q, want %s (all: %v)", col, colTypes[col], typ, colTypes)
		}
	}

	// Alias and conversion results in the lake: line 2 of part-00000 sent
	// tmax_f=55.04 (°F, conversion alias) and stn/cond aliases.
	var line2 *records.Event
	for _, ev := range staged {
		if ev.Source.Line == 2 && strings.HasSuffix(ev.Source.File, "part-00000.jsonl") {
			line2 = ev
		}
	}
	if line2 == nil {
		t.Fatal("line 2 not staged")
	}
	got := testenv.DuckDB(t, fmt.Sprintf(`SELECT temp_max, temp_min, station, condition, epoch_ms(timestamp) AS ts FROM read_parquet('%s/tenant=harbor/metric=daily_summary/*/*.parquet', hive_partitioning = true) WHERE event_id = '%s'`, lakeDir, line2.ID))
	if len(got) != 1 {
		t.Fatalf("line 2 event: %v", got)
	}
	if v, _ := strconv.ParseFloat(fmt.Sprint(got[0]["temp_max"]), 64); math.Abs(v-(55.04-32)*5/9) > 1e-9 {
		t.Errorf("temp_max = %v", got[0]["temp_max"])
	}
	if got[0]["station"] != "seattle" || got[0]["condition"] != "drizzle" || num(t, got[0]["ts"]) != 1325376000000 {
		t.Errorf("line 2 row = %v", got[0])
	}

	// Manifests and backup files agree with the lake.
	ctx := context.Background()
	lst, _ := blob.Open(ctx, lakeDir)
	objs, _ := lst.List(ctx, "")
	manifests := 0
	for _, o := range objs {
		if strings.HasSuffix(o.Path, "/_manifest.json") {
			manifests++
		}
	}
	if manifests != len(want) {
		t.Errorf("%d manifests for %d partitions", manifests, len(want))
	}
	items := 0
	bst, _ := blob.Open(ctx, backupDir)
	bobjs, _ := bst.List(ctx, "")
	for _, o := range bobjs {
		rc, err := bst.Open(ctx, o.Path)
		if err != nil {
			t.Fatal(err)
		}
		err = dynamodbio.ReadBackup(rc, func(item map[string]types.AttributeValue) error {
			ev, err := dynamodbio.EventFromItem(item)
			if err != nil {
				return err
			}
			if byID[ev.ID] == nil || !strings.HasPrefix(o.Path, "tenant="+ev.Tenant+"/") {
				return fmt.Errorf("backup item %s in %s", ev.ID, o.Path)
			}
			items++
			return nil
		})
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if items != exp.DistinctValid {
		t.Errorf("backup holds %d items, want %d", items, exp.DistinctValid)
	}

	// A killed run's temporary files in a partition (issue 19, defect 12):
	// the next run of the partition removes the old one, and leaves a fresh
	// one (a writer's at work) alone.
	partDirs, _ := filepath.Glob(filepath.Join(lakeDir, "tenant=harbor", "metric=weather", "date=*"))
	if len(partDirs) == 0 {
		t.Fatal("no harbor/weather partition")
	}
	oldTmp, freshTmp := filepath.Join(partDirs[0], ".blobtmp-killed"), filepath.Join(partDirs[0], ".blobtmp-fresh")
	for _, p := range []string{oldTmp, freshTmp} {
		if err := os.WriteFile(p, []byte("partial parquet"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(oldTmp, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}

	// Idempotent re-run: the same files with the same bytes.
	before := parquetDigests(t, lakeDir)
	sum2 := runBatch(t, archiveDir, lakeDir, backupDir, loadTenants(t), "run2")
	if _, err := os.Stat(oldTmp); err == nil {
		t.Error("the re-run left a killed run's temporary file in its partition")
	}
	if _, err := os.Stat(freshTmp); err != nil {
		t.Errorf("the re-run removed a fresh temporary file: %v", err)
	}
	if sum2[pipelines.LakeRows] != sum[pipelines.LakeRows] {
		t.Errorf("re-run wrote %d rows, first run %d", sum2[pipelines.LakeRows], sum[pipelines.LakeRows])
	}
	after := parquetDigests(t, lakeDir)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("re-run changed the lake: %d files before, %d after", len(before), len(after))
	}
}

func parquetDigests(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(lakeGlob(dir))
	sort.Strings(files)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %x", strings.TrimPrefix(f, dir), sha256.Sum256(b)))
	}
	return out
}

// TestBatchSchemaLoop is the "no ETL" loop: hide a field, see the
// schema-change report, let `suggest` propose the new fields, apply them,
// re-run, and get typed columns.
func TestBatchSchemaLoop(t *testing.T) {
	ctx := context.Background()
	archiveDir := ingestSample(t)
	storeDir := t.TempDir()
	for _, f := range []string{"harbor.yaml", "skyline.yaml", "quakenet.yaml"} {
		b, err := os.ReadFile(filepath.Join(sample, "schemas", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(storeDir, f), b, 0o644)
	}
	store := schema.NewDirStore(storeDir)
	harbor, err := store.Get(ctx, "harbor")
	if err != nil {
		t.Fatal(err)
	}
	for i := range harbor.Metrics[0].Fields {
		if harbor.Metrics[0].Name == "weather" && harbor.Metrics[0].Fields[i].Name == "wind" {
			harbor.Metrics[0].Fields[i].Hidden = true
		}
	}
	if _, _, err := store.Apply(ctx, harbor); err != nil {
		t.Fatal(err)
	}
	tenants, _ := schema.LoadAll(ctx, store)
	lakeDir := t.TempDir()
	runBatch(t, archiveDir, lakeDir, "", tenants, "before")

	cols := func() map[string]string {
		m := map[string]string{}
		for _, r := range testenv.DuckDB(t, fmt.Sprintf(`DESCRIBE SELECT * FROM read_parquet('%s/tenant=harbor/metric=weather/*/*.parquet', hive_partitioning = true)`, lakeDir)) {
			m[fmt.Sprint(r["column_name"])] = fmt.Sprint(r["column_type"])
		}
		return m
	}
	c := cols()
	if _, ok := c["wind"]; ok {
		t.Errorf("hidden field wind is a lake column: %v", c)
	}
	if c["temperature"] != "DOUBLE" || c["humidity"] != "" {
		t.Errorf("columns before: %v", c)
	}

	rc, err := os.Open(filepath.Join(lakeDir, pipelines.ReportPath("before")))
	if err != nil {
		t.Fatal(err)
	}
	report, err := schemachange.Read(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var humidity *schemachange.FieldStats
	for _, m := range report.Metrics {
		if m.Tenant == "harbor" && m.Metric == "weather" {
			humidity = m.Unknown["humidity"]
		}
	}
	if humidity == nil || humidity.Inferred != "double" || humidity.Count == 0 {
		t.Fatalf("report has no double humidity for harbor/weather: %+v", humidity)
	}
	proposals, _, err := schemachange.Suggest(report, tenants, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range proposals {
		if _, _, err := store.Apply(ctx, p); err != nil {
			t.Fatalf("apply proposal for %s: %v", p.Tenant, err)
		}
	}
	tenants, _ = schema.LoadAll(ctx, store)
	runBatch(t, archiveDir, lakeDir, "", tenants, "after")
	c = cols()
	if c["humidity"] != "DOUBLE" || c["battery_mv"] != "BIGINT" {
		t.Errorf("after suggest+apply, columns = %v", c)
	}
	rows := testenv.DuckDB(t, fmt.Sprintf(`SELECT count(humidity) AS n, count(*) FILTER (WHERE json_extract(unknown_fields, '$.humidity') IS NOT NULL) AS left
		FROM read_parquet('%s/tenant=harbor/metric=weather/*/*.parquet', hive_partitioning = true)`, lakeDir))
	if num(t, rows[0]["n"]) != humidity.Count || num(t, rows[0]["left"]) != 0 {
		t.Errorf("humidity typed in %v rows (report counted %d), %v left in unknown_fields", rows[0]["n"], humidity.Count, rows[0]["left"])
	}
}

// TestBatchCorruptAndEmpty: a corrupt staged file is a processing error
// naming it and the rest of the day is still built; an empty range plans nothing.
func TestBatchCorruptAndEmpty(t *testing.T) {
	ctx := context.Background()
	archiveDir := ingestSample(t)
	days, err := archive.PlanDays(ctx, archiveDir, "", "")
	if err != nil || len(days) == 0 {
		t.Fatal(days, err)
	}
	bad := filepath.Join(archiveDir, "staged", "date="+days[0].Date, "hour=23", "corrupt.avro")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte("Obj\x01 this is not avro"), 0o644)
	lakeDir := t.TempDir()
	sum := runBatch(t, archiveDir, lakeDir, "", loadTenants(t), "r")
	if sum[pipelines.UnreadableFiles] != 1 || sum[metrics.ProcessingWritten] != 1 || sum[pipelines.LakeRows] != int64(loadExpected(t).DistinctValid) {
		t.Fatalf("summary %v", sum)
	}
	var found bool
	os.Remove(bad) // so the plain reader below can read the rest
	for _, e := range readArchive(t, archiveDir).errs {
		if e.Class == "processing" && e.Kind == "read_failed" && strings.Contains(e.Message, "corrupt.avro") && strings.HasSuffix(e.Source.File, "corrupt.avro") {
			found = true
		}
	}
	if !found {
		t.Error("no processing error names the corrupt file")
	}

	empty, err := archive.PlanDays(ctx, archiveDir, "2099-01-01", "2099-12-31")
	if err != nil || len(empty) != 0 {
		t.Errorf("empty range planned %v %v", empty, err)
	}
	one, _ := archive.PlanDays(ctx, archiveDir, days[1].Date, days[1].Date)
	if len(one) != 1 || one[0].Date != days[1].Date {
		t.Errorf("one-day range planned %v", one)
	}
}

// TestREADMELakeQueries runs the README's lake queries with DuckDB on a
// lake built from the sample.
func TestREADMELakeQueries(t *testing.T) {
	archiveDir := ingestSample(t)
	lakeDir := t.TempDir()
	runBatch(t, archiveDir, lakeDir, "", loadTenants(t), "readme")
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start = "-- events per tenant and metric per day"
	i := strings.Index(string(readme), start)
	if i < 0 {
		t.Fatal("README lost its lake queries")
	}
	block := string(readme)[i:]
	block = block[:strings.Index(block, "```")]
	var stmts []string
	for _, st := range strings.Split(strings.ReplaceAll(block, "fineo-demo/lake", lakeDir), ";") {
		if strings.Contains(st, "SELECT") {
			stmts = append(stmts, st)
		}
	}
	if len(stmts) != 2 {
		t.Fatalf("want 2 lake queries in the README, found %d", len(stmts))
	}
	rows := testenv.DuckDB(t, stmts[0])
	if len(rows) != 10 {
		t.Fatalf("query 1: %d rows", len(rows))
	}
	for _, r := range rows {
		if num(t, r["events"]) <= 0 || r["tenant"] == nil || r["metric"] == nil {
			t.Errorf("query 1 row %v", r)
		}
	}
	rows = testenv.DuckDB(t, stmts[1])
	if len(rows) != 5 {
		t.Fatalf("query 2: %d rows", len(rows))
	}
	for _, r := range rows {
		v, err := strconv.ParseFloat(fmt.Sprint(r["avg_max_c"]), 64)
		if err != nil || v < -40 || v > 50 {
			t.Errorf("query 2 row %v: avg_max_c not a plausible °C value", r)
		}
	}
}

// TestBatchBackupRestore: the batch run's backup files load into a nearline
// table (dynalite over HTTP) and a range Query returns exactly the lake's rows.
func TestBatchBackupRestore(t *testing.T) {
	ctx := context.Background()
	exp := loadExpected(t)
	archiveDir := ingestSample(t)
	lakeDir, backupDir := t.TempDir(), t.TempDir()
	runBatch(t, archiveDir, lakeDir, backupDir, loadTenants(t), "bk")

	testenv.DynamoDB(t)
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	table := testenv.UniqueName(t, "nearline")
	if err := dynamodbio.CreateTable(ctx, client, table, dynamodbio.LayoutOptions{}); err != nil {
		t.Fatal(err)
	}
	st, _ := blob.Open(ctx, backupDir)
	layout, err := dynamodbio.OpenLayout(ctx, client, table, dynamodbio.LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stats, failed, err := dynamodbio.Restore(ctx, layout, st, "", dynamodbio.WriterOptions{}, dynamodbio.RestoreOptions{}, nil)
	if err != nil || len(failed) != 0 || stats.Items != int64(exp.DistinctValid) || stats.Written != int64(exp.DistinctValid) {
		t.Fatalf("restore: %+v, %d failed, %v", stats, len(failed), err)
	}
	// One lake partition, queried back from the table by tenant, metric and day.
	rows := testenv.DuckDB(t, fmt.Sprintf(`SELECT CAST(date AS VARCHAR) AS d, count(*) AS n FROM read_parquet('%s/tenant=skyline/metric=flight/*/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY n DESC LIMIT 1`, lakeDir))
	day, _ := time.Parse(time.DateOnly, fmt.Sprint(rows[0]["d"]))
	var got []*records.Event
	_, err = dynamodbio.Query(ctx, client, table, "skyline", "flight", day.UnixMilli(), day.AddDate(0, 0, 1).UnixMilli(), func(ev *records.Event) error {
		got = append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != num(t, rows[0]["n"]) {
		t.Errorf("nearline query for skyline/flight on %s: %d events, lake has %v", rows[0]["d"], len(got), rows[0]["n"])
	}
	for i := 1; i < len(got); i++ {
		if got[i].Timestamp < got[i-1].Timestamp {
			t.Fatalf("query not in time order at %d", i)
		}
	}
}

// TestBatchS3 runs ingest and batch entirely on S3 (stand-in over HTTP with
// the real SDK): staged archive in, lake and backup out; a re-run leaves
// the same objects.
func TestBatchS3(t *testing.T) {
	ctx := context.Background()
	exp := loadExpected(t)
	bucket := testenv.S3(t)
	files, err := blob.ExpandInput(ctx, filepath.Join(sample, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	archiveRoot, lakeRoot, backupRoot := bucket+"/archive", bucket+"/lake", bucket+"/backup"
	runIngest(t, "direct", pipelines.IngestConfig{Files: files, Tenants: loadTenants(t), Archive: archiveRoot})
	sum := runBatch(t, archiveRoot, lakeRoot, backupRoot, loadTenants(t), "s3run")
	if sum[pipelines.LakeRows] != int64(exp.DistinctValid) || sum[pipelines.BackupItems] != int64(exp.DistinctValid) {
		t.Fatalf("summary %v", sum)
	}
	st, err := blob.Open(ctx, lakeRoot)
	if err != nil {
		t.Fatal(err)
	}
	list := func() []string {
		objs, err := st.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range objs {
			if !strings.HasPrefix(o.Path, "_schema_changes/") {
				names = append(names, o.Path)
			}
		}
		return names
	}
	objs := list()
	rows, parts := 0, 0
	for _, p := range objs {
		if !strings.HasSuffix(p, ".parquet") {
			continue
		}
		parts++
		rc, err := st.Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		_, rs, err := lake.ReadParquet(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rows += len(rs)
	}
	if rows != exp.DistinctValid || parts == 0 {
		t.Errorf("S3 lake holds %d rows in %d files, want %d", rows, parts, exp.DistinctValid)
	}
	runBatch(t, archiveRoot, lakeRoot, backupRoot, loadTenants(t), "s3run2")
	if again := list(); fmt.Sprint(again) != fmt.Sprint(objs) {
		t.Errorf("re-run changed the S3 lake's objects: %d before, %d after", len(objs), len(again))
	}
}

// Archives written before staged partitions were daily keep their files
// under date=D/hour=H/; batch reads them as part of day D, beside daily files.
func TestBatchReadsHourlyArchive(t *testing.T) {
	archiveDir := ingestSample(t)
	staged, err := filepath.Glob(filepath.Join(archiveDir, "staged", "date=*", "*.avro"))
	if err != nil || len(staged) < 2 {
		t.Fatalf("staged files: %v, %v", staged, err)
	}
	for i, f := range staged {
		if i%2 == 1 {
			continue // half stay daily
		}
		hourDir := filepath.Join(filepath.Dir(f), fmt.Sprintf("hour=%02d", i%24))
		if err := os.MkdirAll(hourDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f, filepath.Join(hourDir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	exp := loadExpected(t)
	sum := runBatch(t, archiveDir, t.TempDir(), "", loadTenants(t), "hourly")
	if sum[pipelines.StagedRead] != int64(exp.ValidEvents) || sum[pipelines.LakeRows] != int64(exp.DistinctValid) {
		t.Errorf("staged_read %d (want %d), lake_rows %d (want %d)",
			sum[pipelines.StagedRead], exp.ValidEvents, sum[pipelines.LakeRows], exp.DistinctValid)
	}
}
