package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const npmData = "../../node_modules/vega-datasets/data"

// dataDirs are the inputs the tests run on: the embedded fallback rows
// always, and the npm data when `npm install` has been run.
func dataDirs(t *testing.T) map[string]string {
	d := map[string]string{"fallback": filepath.Join(t.TempDir(), "no-such-dir")}
	if _, err := os.Stat(filepath.Join(npmData, "flights-3m.parquet")); err == nil {
		d["npm"] = npmData
	} else {
		t.Logf("no %s (run `npm install` at the repo root): testing the embedded fallback rows only", npmData)
	}
	return d
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	for name, data := range dataDirs(t) {
		t.Run(name, func(t *testing.T) {
			var trees []map[string][]byte
			for range 2 {
				out := t.TempDir()
				c := config{n: 1200, out: out, seed: 42, data: data, files: 2, sample: true}
				if _, err := run(c); err != nil {
					t.Fatal(err)
				}
				trees = append(trees, readTree(t, out))
			}
			if len(trees[0]) != 6 { // 2 raw files, 3 schemas, expected.json
				t.Errorf("files: %v", slices(maps.Keys(trees[0])))
			}
			for k, v := range trees[0] {
				if !bytes.Equal(v, trees[1][k]) {
					t.Errorf("%s differs between two runs with the same seed", k)
				}
			}
			// Another seed gives other lines.
			out := t.TempDir()
			if _, err := run(config{n: 1200, out: out, seed: 43, data: data, files: 2, sample: true}); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(readTree(t, out)["raw/part-00000.jsonl"], trees[0]["raw/part-00000.jsonl"]) {
				t.Error("seed 43 wrote the same lines as seed 42")
			}
		})
	}
}

func slices(seq func(func(string) bool)) []string {
	var s []string
	for k := range seq {
		s = append(s, k)
	}
	return s
}

// TestParquetStreams checks the first rows of flights-3m.parquet as read
// through parquet-go against the values DuckDB shows for the file.
func TestParquetStreams(t *testing.T) {
	p := filepath.Join(npmData, "flights-3m.parquet")
	if _, err := os.Stat(p); err != nil {
		t.Skip("needs the npm data (run `npm install` at the repo root); the fallback path is covered by the other tests")
	}
	f, err := openParquetFlights(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := f.next()
	if err != nil {
		t.Fatal(err)
	}
	want := flightRow{t: time.Date(2001, 1, 1, 0, 1, 0, 0, time.UTC), delay: 33, distance: 2176, origin: "LAS", dest: "PHL"}
	if r != want {
		t.Fatalf("first row %+v, want %+v", r, want)
	}
	for range 2000 { // past the first 512-row buffer
		if r, err = f.next(); err != nil {
			t.Fatal(err)
		}
	}
	if r.origin == "" || r.t.Year() != 2001 {
		t.Fatalf("row 2001: %+v", r)
	}
}

// ---- an independent recount of expected.json from the written files ----

type ySchema struct {
	Tenant        string   `yaml:"tenant"`
	MetricKeys    []string `yaml:"metric_keys"`
	TimestampKeys []string `yaml:"timestamp_keys"`
	Metrics       []struct {
		Name    string   `yaml:"name"`
		Aliases []string `yaml:"aliases"`
		Fields  []struct {
			Name        string         `yaml:"name"`
			Type        string         `yaml:"type"`
			Aliases     []string       `yaml:"aliases"`
			Conversions map[string]any `yaml:"conversions"`
		} `yaml:"fields"`
	} `yaml:"metrics"`
}

type tenantRules struct {
	metricKeys, tsKeys []string
	metricOf           map[string]string            // name or alias -> canonical metric
	fieldType          map[string]map[string]string // metric -> sent key -> type
}

func loadRules(t *testing.T, dir string) map[string]*tenantRules {
	out := map[string]*tenantRules{}
	files, _ := filepath.Glob(filepath.Join(dir, "schemas", "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s ySchema
		if err := yaml.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if strings.TrimSuffix(filepath.Base(f), ".yaml") != s.Tenant {
			t.Errorf("%s declares tenant %q", f, s.Tenant)
		}
		r := &tenantRules{metricKeys: s.MetricKeys, tsKeys: s.TimestampKeys, metricOf: map[string]string{}, fieldType: map[string]map[string]string{}}
		if len(r.metricKeys) == 0 {
			r.metricKeys = []string{"metrictype"}
		}
		if len(r.tsKeys) == 0 {
			r.tsKeys = []string{"timestamp"}
		}
		for _, m := range s.Metrics {
			r.metricOf[m.Name] = m.Name
			for _, a := range m.Aliases {
				r.metricOf[a] = m.Name
			}
			ft := map[string]string{}
			for _, fd := range m.Fields {
				ft[fd.Name] = fd.Type
				for _, a := range fd.Aliases {
					ft[a] = fd.Type
				}
				for a := range fd.Conversions {
					ft[a] = fd.Type
				}
			}
			r.fieldType[m.Name] = ft
		}
		out[s.Tenant] = r
	}
	return out
}

func depth(v any) int {
	switch v := v.(type) {
	case map[string]any:
		d := 0
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	case []any:
		d := 0
		for _, x := range v {
			d = max(d, depth(x))
		}
		return d + 1
	}
	return 0
}

// epochFormat classifies an epoch value by magnitude under one set of
// thresholds (seconds below lo, ms below lo*1e3, µs below lo*1e6).
func epochFormat(v int64, lo int64) string {
	switch {
	case v < lo:
		return "epoch_s"
	case v < lo*1000:
		return "epoch_ms"
	case v < lo*1000000:
		return "epoch_us"
	}
	return "epoch_ns"
}

type recount struct {
	e        *Expected
	seen     map[string]bool
	rules    map[string]*tenantRules
	fileLine map[string]int64
}

// classifyEvent returns "" for a valid event, or its error kind.
func (rc *recount) classifyEvent(t *testing.T, tenant string, ev map[string]any) (string, evInfo) {
	r := rc.rules[tenant]
	in := evInfo{tenant: tenant}
	mk := ""
	for _, k := range r.metricKeys {
		if _, ok := ev[k]; ok {
			mk = k
		}
	}
	if mk == "" {
		return "missing_metric", in
	}
	ms, _ := ev[mk].(string)
	metric, ok := r.metricOf[ms]
	if !ok {
		return "unknown_metric", in
	}
	in.metric = metric
	tk := ""
	for _, k := range r.tsKeys {
		if _, ok := ev[k]; ok {
			tk = k
		}
	}
	if tk == "" {
		return "missing_timestamp", in
	}
	switch ts := ev[tk].(type) {
	case json.Number:
		v, err := ts.Int64()
		if err != nil || v <= 0 {
			return "bad_timestamp", in
		}
		in.tsFormat = epochFormat(v, 1e11)
		// The same answer under the other usual thresholds: no value sits
		// on a magnitude boundary.
		if epochFormat(v, 1e10) != in.tsFormat || epochFormat(v, 1e12) != in.tsFormat {
			t.Errorf("ambiguous epoch %d", v)
		}
	case string:
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			return "bad_timestamp", in
		}
		in.tsFormat = "rfc3339"
	default:
		return "bad_timestamp", in
	}
	for k, v := range ev {
		if k == mk || k == tk {
			continue
		}
		typ, declared := r.fieldType[metric][k]
		if !declared {
			in.unknown = true
			if k == "tenant" {
				in.tenantKey = true
			}
			continue
		}
		if _, isStr := v.(string); isStr && (typ == "double" || typ == "long") {
			in.uncastable++
		}
	}
	return "", in
}

func (rc *recount) line(t *testing.T, file string, line []byte) {
	e := rc.e
	e.Lines++
	rc.fileLine[file]++
	bad := func(kind string) {
		e.TotalEvents++
		e.ErrorEvents++
		e.Errors[kind]++
	}
	if len(line) > 10<<20 {
		bad("too_large")
		return
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		bad("malformed_json")
		return
	}
	if _, err := d.Token(); err != io.EOF {
		t.Errorf("%s: trailing data after the JSON value: %.80s", file, line)
	}
	env, ok := v.(map[string]any)
	if !ok {
		bad("bad_envelope")
		return
	}
	tenant, hasTenant := env["tenant"].(string)
	if !hasTenant {
		bad("missing_tenant")
		return
	}
	var events []any
	single := false
	if ev, ok := env["event"]; ok {
		if _, isObj := ev.(map[string]any); !isObj {
			bad("bad_envelope")
			return
		}
		events, single = []any{ev}, true
	} else if evs, ok := env["events"].([]any); ok {
		events = evs
		e.MultiEventLines++
	} else {
		bad("bad_envelope")
		return
	}
	if rc.rules[tenant] == nil {
		bad("unknown_tenant")
		return
	}
	if single && depth(events[0]) > 32 {
		bad("too_deep")
		return
	}
	var infos []evInfo
	var kinds []string
	for _, x := range events {
		ev, ok := x.(map[string]any)
		if !ok {
			kinds = append(kinds, "bad_event")
			continue
		}
		if depth(ev) > 32 {
			t.Errorf("deep event inside an events array: %.80s", line)
		}
		k, in := rc.classifyEvent(t, tenant, ev)
		if k != "" {
			kinds = append(kinds, k)
		} else {
			infos = append(infos, in)
		}
	}
	for _, k := range kinds {
		bad(k)
	}
	dup := rc.seen[string(line)]
	if len(kinds) == 0 {
		rc.seen[string(line)] = true
		if dup {
			e.RedeliveredLines++
		}
	} else if dup {
		t.Errorf("a line with bad events is repeated: %.80s", line)
	}
	for _, in := range infos {
		e.TotalEvents++
		e.ValidEvents++
		e.ValidByTenant[in.tenant]++
		e.ValidByMetric[in.tenant][in.metric]++
		e.ValidByTimestampFmt[in.tsFormat]++
		e.UncastableValues += int64(in.uncastable)
		if in.uncastable > 0 {
			e.EventsWithUncastable++
			if in.unknown {
				t.Errorf("event with both uncastable and unknown fields: %.120s", line)
			}
		}
		if in.unknown {
			e.EventsWithUnknownFields++
		}
		if in.tenantKey {
			e.EventsWithTenantKey++
		}
		if !dup {
			e.DistinctValidEvents++
			e.DistinctValidByTenant[in.tenant]++
			e.DistinctValidByMetric[in.tenant][in.metric]++
			e.DistinctUncastableValues += int64(in.uncastable)
			if in.unknown {
				e.DistinctEventsWithUnknownFields++
			}
		}
	}
}

func TestExpectedMatchesLines(t *testing.T) {
	for name, data := range dataDirs(t) {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			c := config{n: 2500, out: out, seed: 3, data: data, files: 3, sample: true, tooLarge: true}
			got, err := run(c)
			if err != nil {
				t.Fatal(err)
			}
			var onDisk Expected
			b, err := os.ReadFile(filepath.Join(out, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &onDisk); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&onDisk, got) {
				t.Fatal("expected.json differs from what run returned")
			}

			rc := &recount{e: newExpected(c, got.Source), seen: map[string]bool{}, rules: loadRules(t, out), fileLine: map[string]int64{}}
			if len(rc.rules) < 3 {
				t.Fatalf("schemas: %d tenants", len(rc.rules))
			}
			for _, fc := range got.Files {
				f, err := os.Open(filepath.Join(out, fc.Name))
				if err != nil {
					t.Fatal(err)
				}
				var r io.Reader = f
				if strings.HasSuffix(fc.Name, ".gz") {
					if r, err = gzip.NewReader(f); err != nil {
						t.Fatal(err)
					}
				}
				sc := bufio.NewScanner(r)
				sc.Buffer(make([]byte, 1<<16), 16<<20)
				for sc.Scan() {
					rc.line(t, fc.Name, sc.Bytes())
				}
				if err := sc.Err(); err != nil {
					t.Fatal(err)
				}
				f.Close()
				if rc.fileLine[fc.Name] != fc.Lines {
					t.Errorf("%s: %d lines, expected.json says %d", fc.Name, rc.fileLine[fc.Name], fc.Lines)
				}
			}
			if !strings.HasSuffix(got.Files[len(got.Files)-1].Name, ".jsonl.gz") || strings.HasSuffix(got.Files[0].Name, ".gz") {
				t.Errorf("sample layout: %+v", got.Files)
			}

			// Compare everything the recount knows (files and notes aside).
			want := *got
			want.Files, rc.e.Files = nil, nil
			if !reflect.DeepEqual(rc.e, &want) {
				a, _ := json.MarshalIndent(rc.e, "", " ")
				b, _ := json.MarshalIndent(&want, "", " ")
				t.Fatalf("recount from the lines:\n%s\nexpected.json:\n%s", a, b)
			}
			if got.Lines != int64(c.n) || got.TotalEvents != got.ValidEvents+got.ErrorEvents {
				t.Errorf("lines %d, events %d = %d valid + %d errors?", got.Lines, got.TotalEvents, got.ValidEvents, got.ErrorEvents)
			}
			for _, k := range errorKinds {
				if got.Errors[k] == 0 {
					t.Errorf("no %s record in %d lines", k, c.n)
				}
			}
			if got.RedeliveredLines == 0 || got.UncastableValues == 0 || got.EventsWithUnknownFields == 0 ||
				got.EventsWithTenantKey == 0 || got.MultiEventLines == 0 {
				t.Errorf("a variation is missing: %+v", got)
			}
			for _, f := range []string{"epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "rfc3339"} {
				if got.ValidByTimestampFmt[f] == 0 {
					t.Errorf("no valid event with a %s timestamp", f)
				}
			}
			// Overflowing timestamps really overflow int64.
			if n, _ := new(big.Int).SetString("99999999999999999999999", 10); n.IsInt64() {
				t.Error("overflow value fits int64")
			}
		})
	}
}
