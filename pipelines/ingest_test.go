package pipelines_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	beamrunners "github.com/apache/beam/sdks/v2/go/pkg/beam/runners"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/schema"
)

func TestMain(m *testing.M) {
	flag.Parse()
	beamlog.LogLevel = "warn" // the direct runner logs the whole plan at info
	beam.Init()
	os.Exit(m.Run())
}

const sample = "../testdata/sample"

// expected is the ground truth that bench/gen wrote beside the sample.
type expected struct {
	TotalEvents         int                       `json:"total_events"`
	ValidEvents         int                       `json:"valid_events"`
	DistinctValid       int                       `json:"distinct_valid_events"`
	Errors              map[string]int            `json:"errors"`
	ValidByTenant       map[string]int            `json:"valid_by_tenant"`
	ValidByMetric       map[string]map[string]int `json:"valid_by_metric"`
	Uncastable          int                       `json:"uncastable_values"`
	EventsWithUnknown   int                       `json:"events_with_unknown_fields"`
	EventsWithUncastble int                       `json:"events_with_uncastable"`
	Lines               int                       `json:"lines"`
}

// ErrorEvents is the number of error events in the ground truth.
func (e expected) ErrorEvents() int {
	n := 0
	for _, c := range e.Errors {
		n += c
	}
	return n
}

func loadExpected(t *testing.T) expected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sample, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func loadTenants(t *testing.T) []*schema.Tenant {
	t.Helper()
	ctx := context.Background()
	st, err := schema.OpenStore(ctx, filepath.Join(sample, "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := schema.LoadAll(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func runIngest(t *testing.T, runner string, cfg pipelines.IngestConfig) metrics.Summary {
	t.Helper()
	old := *beamrunners.Runner
	*beamrunners.Runner = runner
	defer func() { *beamrunners.Runner = old }()
	p, s := beam.NewPipelineWithRoot()
	pipelines.Ingest(s, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pr, err := runners.Run(ctx, runners.Bounded, p)
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	return metrics.FromResult(pr)
}

// archiveContents reads an archive back with goavro's plain OCF reader and
// the JSON Lines reader.
type archiveContents struct {
	staged     []*records.Event
	stagedPath map[string]string // event id → partition it was found in (last)
	errs       []*archive.ErrorRecord
	files      []string
}

// archiveObjects opens an archive root and lists every file in it.
func archiveObjects(t *testing.T, root string) (blob.Store, []blob.Object) {
	t.Helper()
	ctx := context.Background()
	st, err := blob.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return st, objs
}

func readArchive(t *testing.T, root string) archiveContents {
	t.Helper()
	ctx := context.Background()
	st, objs := archiveObjects(t, root)
	c := archiveContents{stagedPath: map[string]string{}}
	for _, o := range objs {
		c.files = append(c.files, o.Path)
		rc, err := st.Open(ctx, o.Path)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(o.Path, ".avro"):
			err = archive.ReadStaged(rc, func(ev *records.Event) error {
				c.staged = append(c.staged, ev)
				c.stagedPath[ev.ID+"@"+ev.Source.String()] = filepath.Dir(o.Path)
				return nil
			})
		case strings.HasSuffix(o.Path, ".jsonl.gz"):
			err = archive.ReadErrors(rc, func(r *archive.ErrorRecord) error {
				r2 := *r
				c.errs = append(c.errs, &r2)
				if want := filepath.Dir(o.Path); !strings.HasPrefix(want, "errors/"+r.Class+"/date=") {
					t.Errorf("%s: error of class %s in %s", o.Path, r.Class, want)
				}
				return nil
			})
		default:
			t.Errorf("unexpected file in archive: %s", o.Path)
		}
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", o.Path, err)
		}
	}
	return c
}

func checkSample(t *testing.T, sum metrics.Summary, c archiveContents, exp expected) {
	t.Helper()
	// Conservation, from the counters and from what is actually on disk.
	if !sum.Conserved() {
		t.Errorf("counters not conserved: %v", sum)
	}
	if got := sum[metrics.EventsIn]; got != int64(exp.TotalEvents) {
		t.Errorf("events_in = %d, want %d", got, exp.TotalEvents)
	}
	if got := sum[metrics.RecordsIn]; got != int64(exp.Lines) {
		t.Errorf("records_in = %d, want %d", got, exp.Lines)
	}
	if len(c.staged) != exp.ValidEvents {
		t.Errorf("staged records in archive = %d, want %d", len(c.staged), exp.ValidEvents)
	}
	if sum[metrics.StagedWritten] != int64(len(c.staged)) {
		t.Errorf("staged_written %d != %d records read back", sum[metrics.StagedWritten], len(c.staged))
	}
	errEvents := 0
	byKind := map[string]int{}
	for _, e := range c.errs {
		errEvents += e.Events
		byKind[e.Kind] += e.Events
		if e.Class != "customer" {
			t.Errorf("unexpected %s error: %+v", e.Class, e)
		}
		if e.Stage == "" || e.Message == "" || e.Source.File == "" || e.Source.Line == 0 {
			t.Errorf("error record lacks stage/message/lineage: %+v", e)
		}
		if e.Kind != "too_large" && e.Raw == "" {
			t.Errorf("error record lacks raw: %+v", e)
		}
	}
	if len(c.staged)+errEvents != exp.TotalEvents {
		t.Errorf("archive holds %d staged + %d error events, want %d in all", len(c.staged), errEvents, exp.TotalEvents)
	}
	for k, n := range exp.Errors {
		if byKind[k] != n {
			t.Errorf("errors of kind %s = %d, want %d", k, byKind[k], n)
		}
	}
	for k := range byKind {
		if _, ok := exp.Errors[k]; !ok {
			t.Errorf("unexpected error kind %s (%d)", k, byKind[k])
		}
	}
	// Per tenant and metric, distinct ids, partitions, unknown fields.
	byTenant := map[string]int{}
	byMetric := map[string]map[string]int{}
	ids := map[string]bool{}
	withUnknown := 0
	for _, ev := range c.staged {
		byTenant[ev.Tenant]++
		if byMetric[ev.Tenant] == nil {
			byMetric[ev.Tenant] = map[string]int{}
		}
		byMetric[ev.Tenant][ev.Metric]++
		ids[ev.ID] = true
		if len(ev.Unknown) > 0 {
			withUnknown++
		}
		want := archive.StagedPartition(ev.Timestamp)
		if got := c.stagedPath[ev.ID+"@"+ev.Source.String()]; got != want {
			t.Errorf("event %s at %s is in partition %s, want %s", ev.ID, ev.Source, got, want)
		}
	}
	for tenant, n := range exp.ValidByTenant {
		if byTenant[tenant] != n {
			t.Errorf("tenant %s: %d staged, want %d", tenant, byTenant[tenant], n)
		}
		for m, n := range exp.ValidByMetric[tenant] {
			if byMetric[tenant][m] != n {
				t.Errorf("%s/%s: %d staged, want %d", tenant, m, byMetric[tenant][m], n)
			}
		}
	}
	if len(ids) != exp.DistinctValid {
		t.Errorf("distinct event ids = %d, want %d (re-deliveries must share an id, different events must not)", len(ids), exp.DistinctValid)
	}
	if want := exp.EventsWithUnknown + exp.EventsWithUncastble; withUnknown != want {
		t.Errorf("events with unknown_fields = %d, want %d", withUnknown, want)
	}
	if sum[metrics.Uncastable] != int64(exp.Uncastable) {
		t.Errorf("uncastable_values = %d, want %d", sum[metrics.Uncastable], exp.Uncastable)
	}
}

// checkKnownLines asserts the exact staged records of two sample lines: a
// flight from an old device (aliases, epoch seconds) and a daily summary in
// Fahrenheit (conversion aliases).
func checkKnownLines(t *testing.T, c archiveContents) {
	t.Helper()
	find := func(line int64) *records.Event {
		for _, ev := range c.staged {
			if ev.Source.Line == line && strings.HasSuffix(ev.Source.File, "part-00000.jsonl") {
				return ev
			}
		}
		t.Fatalf("line %d not staged", line)
		return nil
	}
	// {"tenant":"skyline","event":{"metrictype":"flt","timestamp":978307260,"dev":"skyline-las-o","sq":1,
	//  "orig":"LAS","dest":"PHL","dly":33,"dist":2176,"dep_time":978307260}}
	ev := find(1)
	wantFields := map[string]any{"device": "skyline-las-o", "seq": int64(1), "origin": "LAS", "destination": "PHL",
		"delay": int64(33), "distance": int64(2176), "departed": int64(978307260000)}
	if ev.Tenant != "skyline" || ev.Metric != "flight" || ev.MetricAlias != "flt" || ev.Timestamp != 978307260000 || len(ev.Unknown) != 0 {
		t.Errorf("line 1 staged as %+v", ev)
	}
	for k, v := range wantFields {
		if ev.Fields[k] != v {
			t.Errorf("line 1 field %s = %#v, want %#v", k, ev.Fields[k], v)
		}
	}
	if len(ev.Fields) != len(wantFields) {
		t.Errorf("line 1 fields = %v", ev.Fields)
	}
	// {"tenant":"harbor","event":{"metrictype":"daily","ts":1325376000,"stn":"seattle","dev":"harbor-seattle-o01",
	//  "sq":1,"tmax_f":55.04,"tmin_f":41,"precip":0,"wind_ms":4.7,"cond":"drizzle"}}
	ev = find(2)
	if ev.Tenant != "harbor" || ev.Metric != "daily_summary" || ev.MetricAlias != "daily" || ev.Timestamp != 1325376000000 {
		t.Errorf("line 2 staged as %+v", ev)
	}
	near := func(k string, want float64) {
		got, ok := ev.Fields[k].(float64)
		if !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("line 2 %s = %#v, want %v", k, ev.Fields[k], want)
		}
	}
	near("temp_max", (55.04-32)*5/9)
	near("temp_min", 5)
	near("precipitation", 0)
	near("wind", 4.7)
	if ev.Fields["condition"] != "drizzle" || ev.Fields["station"] != "seattle" {
		t.Errorf("line 2 fields = %v", ev.Fields)
	}
}

func TestIngestSampleLocal(t *testing.T) {
	exp := loadExpected(t)
	for _, runner := range []string{"direct", "prism"} {
		t.Run(runner, func(t *testing.T) {
			if runner == "prism" && testing.Short() {
				t.Skip("prism run skipped in -short mode; CI runs it")
			}
			out := t.TempDir()
			files, err := blob.ExpandInput(context.Background(), filepath.Join(sample, "raw"))
			if err != nil {
				t.Fatal(err)
			}
			sum := runIngest(t, runner, pipelines.IngestConfig{Files: files, Tenants: loadTenants(t), Archive: out})
			c := readArchive(t, out)
			checkSample(t, sum, c, exp)
			checkKnownLines(t, c)
			// No stray temp files: everything listed is a committed file.
			entries := 0
			filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					entries++
				}
				return nil
			})
			if entries != len(c.files) {
				t.Errorf("%d files on disk, %d committed", entries, len(c.files))
			}
		})
	}
}

// TestIngestS3 reads the raw input from S3 and writes the archive to S3,
// over HTTP with the real AWS SDK against an S3 stand-in.
func TestIngestS3(t *testing.T) {
	exp := loadExpected(t)
	bucket := testenv.S3(t)
	ctx := context.Background()
	in, err := blob.Open(ctx, bucket+"/incoming")
	if err != nil {
		t.Fatal(err)
	}
	local, _ := filepath.Glob(filepath.Join(sample, "raw", "*"))
	for _, f := range local {
		copyToStore(t, in, f, filepath.Base(f))
	}
	files, err := blob.ExpandInput(ctx, bucket+"/incoming/")
	if err != nil || len(files) != len(local) {
		t.Fatalf("ExpandInput: %v %v", files, err)
	}
	root := bucket + "/archive"
	sum := runIngest(t, "direct", pipelines.IngestConfig{Files: files, Tenants: loadTenants(t), Archive: root})
	c := readArchive(t, root)
	checkSample(t, sum, c, exp)
	for _, ev := range c.staged {
		if !strings.HasPrefix(ev.Source.File, bucket+"/incoming/") {
			t.Fatalf("lineage %q does not name the S3 input", ev.Source.File)
		}
	}
}

// TestIngestS3WriteFailure makes every staged-archive upload fail: the
// staged events must land as processing errors, none lost, none staged.
func TestIngestS3WriteFailure(t *testing.T) {
	failStaged := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/archive/staged/") {
				http.Error(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`, http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	bucket := testenv.S3Faulty(t, failStaged)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	lines := `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":1700000000000,"temperature":21.5}}
{"tenant":"harbor","events":[{"metrictype":"wx","ts":1700000001,"temp_f":212},{"metrictype":"wx","ts":1700003600,"press":1013}]}
{"tenant":"harbor","event":{"metrictype":"nope","timestamp":1700000000000}}
not json
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	root := bucket + "/archive"
	sum := runIngest(t, "direct", pipelines.IngestConfig{Files: []string{in}, Tenants: loadTenants(t), Archive: root})
	if !sum.Conserved() || sum[metrics.EventsIn] != 5 {
		t.Fatalf("not conserved: %v", sum)
	}
	if sum[metrics.StagedWritten] != 0 || sum[metrics.ProcessingWritten] != 3 || sum[metrics.CustomerWritten] != 2 {
		t.Errorf("want 0 staged, 3 processing, 2 customer errors written; got %v", sum)
	}
	if sum[metrics.WriteRetries] == 0 {
		t.Errorf("no write retries counted")
	}
	c := readArchive(t, root)
	if len(c.staged) != 0 {
		t.Errorf("%d staged records visible after failed writes", len(c.staged))
	}
	var proc []*archive.ErrorRecord
	for _, e := range c.errs {
		if e.Class == "processing" {
			proc = append(proc, e)
		}
	}
	if len(proc) != 3 {
		t.Fatalf("%d processing error records, want 3", len(proc))
	}
	for _, e := range proc {
		if e.Kind != "write_failed" || e.Tenant != "harbor" || !strings.Contains(e.Message, "staged/date=2023-11-14") {
			t.Errorf("processing error = %+v", e)
		}
		var ev map[string]any // the staged event is kept, replayable
		if err := json.Unmarshal([]byte(e.Raw), &ev); err != nil || ev["event_id"] == "" || ev["metric"] != "weather" {
			t.Errorf("processing error raw is not the staged event: %q (%v)", e.Raw, err)
		}
	}
}

// TestIngestReadFailure: an unreadable input file becomes one processing
// error naming the file; the other file is ingested in full.
func TestIngestReadFailure(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	bad := filepath.Join(dir, "bad.jsonl.gz")
	os.WriteFile(good, []byte(`{"tenant":"harbor","event":{"metrictype":"weather","timestamp":1700000000000,"temperature":1}}`+"\n"), 0o644)
	os.WriteFile(bad, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, 0o644) // corrupt gzip
	out := t.TempDir()
	sum := runIngest(t, "direct", pipelines.IngestConfig{Files: []string{good, bad}, Tenants: loadTenants(t), Archive: out})
	if !sum.Conserved() || sum[metrics.StagedWritten] != 1 || sum[metrics.ProcessingWritten] != 1 {
		t.Fatalf("summary = %v", sum)
	}
	c := readArchive(t, out)
	if len(c.errs) != 1 || c.errs[0].Kind != "read_failed" || c.errs[0].Source.File != bad || !strings.Contains(c.errs[0].Message, bad) {
		t.Errorf("errors = %+v", c.errs)
	}
}

// TestREADMEQueryDuckDB runs the README's SQL over the error archive of the
// sample with DuckDB, an independent reader, and checks it against the
// generator's ground truth.
func TestREADMEQueryDuckDB(t *testing.T) {
	exp := loadExpected(t)
	out := t.TempDir()
	files, err := blob.ExpandInput(context.Background(), filepath.Join(sample, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	runIngest(t, "direct", pipelines.IngestConfig{Files: files, Tenants: loadTenants(t), Archive: out})
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The query as the README prints it, pointed at this test's archive.
	const from = "SELECT class, kind, tenant, count(*) AS events"
	i := strings.Index(string(readme), from)
	j := strings.Index(string(readme)[i:], ";")
	if i < 0 || j < 0 {
		t.Fatal("README has no DuckDB query over the error archive")
	}
	sql := strings.ReplaceAll(string(readme)[i:i+j], "fineo-demo/archive", out)
	rows := testenv.DuckDB(t, sql)
	byKind := map[string]int{}
	for _, r := range rows {
		if r["class"] != "customer" {
			t.Errorf("row %v: class", r)
		}
		n, err := strconv.Atoi(fmt.Sprint(r["events"]))
		if err != nil {
			t.Fatalf("row %v: %v", r, err)
		}
		byKind[fmt.Sprint(r["kind"])] += n
	}
	for k, n := range exp.Errors {
		if byKind[k] != n {
			t.Errorf("DuckDB counts %d %s errors, want %d", byKind[k], k, n)
		}
	}
	if len(byKind) != len(exp.Errors) {
		t.Errorf("DuckDB kinds %v, want %v", byKind, exp.Errors)
	}
}

func copyToStore(t *testing.T, st blob.Store, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := st.Create(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, f); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}
