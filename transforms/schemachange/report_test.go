package schemachange

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInferType(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{`true`, "boolean"},
		{`false`, "boolean"},
		{`42`, "long"},
		{`-7`, "long"},
		{`9223372036854775807`, "long"},
		{`9223372036854775808`, "double"}, // beyond int64
		{`1.5`, "double"},
		{`1e3`, "double"},
		{`-0.0`, "double"},
		{`1e400`, "string"}, // beyond float64: casts to nothing numeric
		{`"2024-05-01T12:00:00Z"`, "timestamp"},
		{`"2024-05-01T12:00:00.123+02:00"`, "timestamp"},
		{`"1960-01-01T00:00:00Z"`, "string"}, // before 1970: stage 1 refuses it
		{`"2024-05-01"`, "string"},
		{`"1700000000"`, "string"},
		{`"true"`, "string"},
		{`"hello"`, "string"},
		{`""`, "string"},
		{`{"a":1}`, "string"},
		{`[1,2]`, "string"},
		{`null`, ""},
		{` 12 `, "long"},
	}
	for _, tt := range tests {
		if got := InferType(tt.raw); got != tt.want {
			t.Errorf("InferType(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestCombineTypes(t *testing.T) {
	tests := []struct {
		types map[string]int64
		want  string
	}{
		{map[string]int64{}, ""},
		{map[string]int64{"long": 3}, "long"},
		{map[string]int64{"long": 3, "double": 1}, "double"},
		{map[string]int64{"timestamp": 3}, "timestamp"},
		{map[string]int64{"timestamp": 3, "string": 1}, "string"},
		{map[string]int64{"long": 3, "boolean": 1}, "string"},
		{map[string]int64{"long": 3, "double": 1, "string": 1}, "string"},
	}
	for _, tt := range tests {
		if got := combineTypes(tt.types); got != tt.want {
			t.Errorf("combineTypes(%v) = %q, want %q", tt.types, got, tt.want)
		}
	}
}

type obs struct {
	failed                              bool
	tenant, metric, name, declared, raw string
	ts                                  int64
}

func (o obs) apply(r *Report) {
	if o.failed {
		r.ObserveFailedCast(o.tenant, o.metric, o.name, o.declared, o.raw, o.ts)
	} else {
		r.ObserveUnknown(o.tenant, o.metric, o.name, o.raw, o.ts)
	}
}

// observations is a varied workload: several tenants, metrics, repeated
// values, more than MaxSamples distinct values and a declared type that
// changes over time.
func observations() []obs {
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var out []obs
	for i := range 60 {
		ts := base + int64((i*7919)%60)*60_000
		out = append(out,
			obs{tenant: "harbor", metric: "weather", name: "humidity", raw: fmt.Sprint(40 + i%13), ts: ts},
			obs{tenant: "harbor", metric: "weather", name: "humidity", raw: fmt.Sprintf("%d.5", i%3), ts: ts + 1},
			obs{tenant: "acme", metric: "power", name: "fw", raw: fmt.Sprintf("%q", fmt.Sprint("v", i%4)), ts: ts},
			obs{tenant: "harbor", metric: "weather", name: "note", raw: "null", ts: ts},
		)
		if i%5 == 0 {
			decl := "long" // retyped to double half-way through the hour
			if ts-base >= 30*60_000 {
				decl = "double"
			}
			out = append(out, obs{failed: true, tenant: "harbor", metric: "weather", name: "pressure", declared: decl, raw: fmt.Sprintf("%d.25", i), ts: ts})
		}
	}
	return out
}

func encode(t *testing.T, r *Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestMergeOrderIndependence(t *testing.T) {
	all := observations()
	// The whole workload observed into one report is the reference.
	whole := NewReport()
	for _, o := range all {
		o.apply(whole)
	}
	whole.Run, whole.From, whole.To = "run-1", "2024-05-01", "2024-05-01"
	want := encode(t, whole)

	// Three parts, split unevenly and interleaved.
	parts := []*Report{NewReport(), NewReport(), NewReport()}
	for i, o := range all {
		o.apply(parts[(i*i)%3])
	}
	parts[0].Run, parts[0].From, parts[0].To = "run-1", "2024-05-01", "2024-05-01"
	parts[2].Run = "run-1"

	orders := [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}}
	for _, order := range orders {
		got := NewReport()
		for _, i := range order {
			got.Merge(parts[i])
		}
		if b := encode(t, got); !bytes.Equal(b, want) {
			t.Errorf("merge order %v differs from the whole:\n%s\nwant\n%s", order, b, want)
		}
	}
	// Grouping: (2+1)+0 merged into a report that already holds part 1.
	left := NewReport()
	left.Merge(parts[2])
	left.Merge(parts[1])
	right := NewReport()
	right.Merge(parts[0])
	right.Merge(left)
	if b := encode(t, right); !bytes.Equal(b, want) {
		t.Errorf("grouped merge differs from the whole")
	}
	// Through JSON: Read of each part, merged.
	viaJSON := NewReport()
	for _, p := range parts {
		r, err := Read(bytes.NewReader(encode(t, p)))
		if err != nil {
			t.Fatal(err)
		}
		viaJSON.Merge(r)
	}
	if b := encode(t, viaJSON); !bytes.Equal(b, want) {
		t.Errorf("merge of read parts differs from the whole:\n%s", b)
	}
	// Merge does not alias its argument.
	before := encode(t, parts[1])
	m := NewReport()
	m.Merge(parts[1])
	m.ObserveUnknown("harbor", "weather", "humidity", "1", 1)
	if !bytes.Equal(before, encode(t, parts[1])) {
		t.Error("Merge shares state with its argument")
	}
}

func TestReportContents(t *testing.T) {
	r := NewReport()
	for _, o := range observations() {
		o.apply(r)
	}
	var got []string
	for _, m := range r.Metrics {
		got = append(got, m.Tenant+"/"+m.Metric)
	}
	if want := []string{"acme/power", "harbor/weather"}; !slices.Equal(got, want) {
		t.Fatalf("metrics = %v, want %v (sorted)", got, want)
	}
	w := r.Metrics[1]
	h := w.Unknown["humidity"]
	if h.Count != 120 || h.Inferred != "double" || h.Types["long"] != 60 || h.Types["double"] != 60 {
		t.Errorf("humidity = %+v", h)
	}
	if want := []string{"0.5", "1.5", "2.5", "40", "41"}; !slices.Equal(h.Samples, want) {
		t.Errorf("humidity samples = %q, want the %d smallest %q", h.Samples, MaxSamples, want)
	}
	if !h.FirstSeen.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) || h.LastSeen.Sub(h.FirstSeen) != 59*time.Minute+time.Millisecond {
		t.Errorf("humidity seen %v .. %v", h.FirstSeen, h.LastSeen)
	}
	if n := w.Unknown["note"]; n.Inferred != "" || n.Count != 60 || len(n.Types) != 0 || !slices.Equal(n.Samples, []string{"null"}) {
		t.Errorf("note (all null) = %+v", n)
	}
	p := w.FailedCasts["pressure"]
	if p.Count != 12 || p.Declared != "double" || p.Inferred != "double" {
		t.Errorf("pressure = %+v (declared should follow the latest event)", p)
	}
	if fw := r.Metrics[0].Unknown["fw"]; fw.Inferred != "string" || len(fw.Samples) != 4 {
		t.Errorf("fw = %+v", fw)
	}
	if r.Empty() || !NewReport().Empty() {
		t.Error("Empty is wrong")
	}
}

func TestSampleCapAndTruncation(t *testing.T) {
	long := `"` + strings.Repeat("é", 400) + `"`
	tests := []struct {
		name string
		raws []string
		want []string
	}{
		{"distinct and capped", []string{"9", "8", "7", "7", "6", "5", "4", "3"}, []string{"3", "4", "5", "6", "7"}},
		{"duplicates once", []string{"1", "1", "1"}, []string{"1"}},
		{"byte order", []string{`"b"`, "10", "2", `"a"`, "true", "null"}, []string{`"a"`, `"b"`, "10", "2", "null"}},
		{"long values cut", []string{long}, []string{sampleOf(long)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var results [][]string
			for _, rev := range []bool{false, true} {
				r := NewReport()
				raws := slices.Clone(tt.raws)
				if rev {
					slices.Reverse(raws)
				}
				for i, raw := range raws {
					r.ObserveUnknown("t", "m", "f", raw, int64(i+1)*1000)
				}
				results = append(results, r.Metrics[0].Unknown["f"].Samples)
			}
			if !slices.Equal(results[0], tt.want) || !slices.Equal(results[1], tt.want) {
				t.Errorf("samples = %q / %q (reversed), want %q", results[0], results[1], tt.want)
			}
		})
	}
	s := sampleOf(long)
	if len(s) > MaxSampleLen || !strings.HasSuffix(s, "…") || !utf8Valid(s) {
		t.Errorf("sampleOf cut badly: %d bytes %q", len(s), s)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestSummary(t *testing.T) {
	r := NewReport()
	r.Run = "run-7"
	for _, o := range observations() {
		o.apply(r)
	}
	var buf bytes.Buffer
	r.Summary(&buf)
	out := buf.String()
	for _, want := range []string{
		"schema-change report run-7",
		"harbor/weather", "acme/power",
		"unknown fields:", "failed casts:",
		"humidity", "120", "double", "2024-05-01T00:00:00Z", "0.5, 1.5",
		"pressure (declared double)", "12",
		"note", "null",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	NewReport().Summary(&buf)
	if !strings.Contains(buf.String(), "no unknown fields") {
		t.Errorf("empty summary: %q", buf.String())
	}
}

func TestReadRejects(t *testing.T) {
	for _, in := range []string{``, `{`, `{"metrics":[]} {}`, `[]`} {
		if _, err := Read(strings.NewReader(in)); err == nil {
			t.Errorf("Read(%q) succeeded", in)
		}
	}
	r, err := Read(strings.NewReader(`{"run":"x","metrics":[{"tenant":"b","metric":"m","unknown_fields":{"f":{"count":1,"types":{"long":1},"samples":["1"]}}},{"tenant":"a","metric":"m"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Metrics[0].Tenant != "a" || r.Metrics[1].Unknown["f"].Inferred != "long" {
		t.Errorf("Read did not normalise: %s", mustJSON(r))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestFieldBound: a device sending a new field name per event does not
// grow the report past MaxFieldsPerMetric names per metric: the smallest
// names are kept with exact counts, every other observation is counted,
// merging parts in any grouping gives the same JSON, and the summary
// prints summaryFields lines and says how many more there are (issue 19,
// defect 6).
func TestFieldBound(t *testing.T) {
	const names = 3 * MaxFieldsPerMetric
	parts := make([]*Report, 3)
	for p := range parts {
		parts[p] = NewReport()
		for i := range names {
			if (i+p)%3 != 0 { // each part sees two thirds of the names, some twice
				parts[p].ObserveUnknown("acme", "temp", fmt.Sprintf("f%05d", (i*7919)%names), "1", int64(i))
			}
		}
	}
	merge := func(order ...int) []byte {
		r := NewReport()
		for _, i := range order {
			b, _ := json.Marshal(parts[i])
			var c Report
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			r.Merge(&c)
		}
		out, _ := json.Marshal(r)
		return out
	}
	a, b := merge(0, 1, 2), merge(2, 0, 1)
	if string(a) != string(b) {
		t.Fatal("merge order changed the bounded report")
	}
	var r Report
	json.Unmarshal(a, &r)
	m := r.Metrics[0]
	if len(m.Unknown) != MaxFieldsPerMetric {
		t.Fatalf("%d names kept, want %d", len(m.Unknown), MaxFieldsPerMetric)
	}
	var kept int64
	for n, fs := range m.Unknown {
		if n >= fmt.Sprintf("f%05d", MaxFieldsPerMetric) {
			t.Fatalf("kept %s, not among the %d smallest names", n, MaxFieldsPerMetric)
		}
		if fs.Count != 2 { // every name is seen by two of the three parts
			t.Fatalf("%s counted %d, want 2", n, fs.Count)
		}
		kept += fs.Count
	}
	if total := int64(2 * names); kept+m.OtherUnknown != total {
		t.Fatalf("kept %d + other %d != %d observations", kept, m.OtherUnknown, total)
	}
	var sb strings.Builder
	r.Summary(&sb)
	lines := strings.Count(sb.String(), "\n")
	if lines > summaryFields+8 || !strings.Contains(sb.String(), fmt.Sprintf("and %d more field(s)", MaxFieldsPerMetric-summaryFields)) ||
		!strings.Contains(sb.String(), fmt.Sprintf("and %d observation(s) of further field names", m.OtherUnknown)) {
		t.Fatalf("summary of %d lines:\n%s", lines, sb.String())
	}
}
