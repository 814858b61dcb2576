package stage1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// fixedNow is the ingest time of every test processor.
var fixedNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// harborSchema mirrors the harbor example schema of the brief.
func harborSchema() *schema.Tenant {
	return &schema.Tenant{
		Tenant:        "harbor",
		Version:       3,
		TimestampKeys: []string{"timestamp", "ts"},
		Metrics: []schema.Metric{{
			Name:    "weather",
			Aliases: []string{"wx"},
			Fields: []schema.Field{
				{Name: "temperature", Type: schema.Double, Aliases: []string{"temp_c"},
					Conversions: map[string]schema.Conversion{"temp_f": {Scale: 0.5555555555555556, Offset: -17.77777777777778}}},
				{Name: "pressure", Type: schema.Double, Aliases: []string{"press"}},
				{Name: "station", Type: schema.String},
				{Name: "count", Type: schema.Long, Conversions: map[string]schema.Conversion{"count_k": {Scale: 1000}}},
				{Name: "ok", Type: schema.Boolean},
				{Name: "blob", Type: schema.Bytes},
				{Name: "seen", Type: schema.Timestamp},
				{Name: "old", Type: schema.Double, Hidden: true},
			},
		}},
	}
}

// acmeSchema is a tenant with custom metric and timestamp keys.
func acmeSchema() *schema.Tenant {
	return &schema.Tenant{
		Tenant:        "acme",
		Version:       1,
		MetricKeys:    []string{"type"},
		TimestampKeys: []string{"ts", "time"},
		Metrics: []schema.Metric{{
			Name:    "reading",
			Aliases: []string{"rd"},
			Fields:  []schema.Field{{Name: "value", Type: schema.Double, Aliases: []string{"v"}}},
		}},
	}
}

type collector struct {
	staged []*records.Event
	errs   []*records.Error
}

func (c *collector) Staged(ev *records.Event) { c.staged = append(c.staged, ev) }
func (c *collector) Error(e *records.Error)   { c.errs = append(c.errs, e) }

func newProc(t testing.TB, opts Options) *Processor {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	p, err := NewProcessor([]*schema.Tenant{harborSchema(), acmeSchema()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var testSrc = records.Lineage{File: "in/part-0.jsonl", Line: 7}

// process runs one line through a fresh processor.
func process(t testing.TB, opts Options, line string) (*collector, Stats) {
	t.Helper()
	p := newProc(t, opts)
	c := &collector{}
	p.Process([]byte(line), testSrc, c)
	checkConservation(t, p.Stats, c)
	return c, p.Stats
}

func checkConservation(t testing.TB, st Stats, c *collector) {
	t.Helper()
	if st.Events != st.Staged+st.Errors {
		t.Errorf("Stats.Events = %d, want Staged %d + Errors %d", st.Events, st.Staged, st.Errors)
	}
	if int64(len(c.staged)) != st.Staged {
		t.Errorf("got %d staged events, Stats.Staged = %d", len(c.staged), st.Staged)
	}
	var n int64
	for _, e := range c.errs {
		n += int64(e.Events)
	}
	if n != st.Errors {
		t.Errorf("error records stand for %d events, Stats.Errors = %d", n, st.Errors)
	}
}

// stageOne processes line and requires exactly one staged event.
func stageOne(t *testing.T, line string) (*records.Event, Stats) {
	t.Helper()
	c, st := process(t, Options{}, line)
	if len(c.staged) != 1 || len(c.errs) != 0 {
		for _, e := range c.errs {
			t.Logf("error: %v", e)
		}
		t.Fatalf("line %s: %d staged, %d errors; want 1 staged", line, len(c.staged), len(c.errs))
	}
	return c.staged[0], st
}

// wx wraps event fields into a harbor weather envelope.
func wx(fields string) string {
	if fields != "" {
		fields = "," + fields
	}
	return `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":1262304000` + fields + `}}`
}

func TestMetricAndFieldAliases(t *testing.T) {
	tests := []struct {
		name       string
		line       string
		tenant     string
		metric     string
		alias      string
		wantFields map[string]any
	}{
		{"canonical metric", wx(`"pressure":1000.5`), "harbor", "weather", "weather", map[string]any{"pressure": 1000.5}},
		{"metric alias wx", `{"tenant":"harbor","event":{"metrictype":"wx","ts":1262304000,"press":990}}`, "harbor", "weather", "wx", map[string]any{"pressure": 990.0}},
		{"field alias temp_c", wx(`"temp_c":21.5`), "harbor", "weather", "weather", map[string]any{"temperature": 21.5}},
		{"field canonical temperature", wx(`"temperature":21.5`), "harbor", "weather", "weather", map[string]any{"temperature": 21.5}},
		{"field alias press", wx(`"press":1001`), "harbor", "weather", "weather", map[string]any{"pressure": 1001.0}},
		{"custom keys canonical", `{"tenant":"acme","event":{"type":"reading","ts":1262304000,"value":1.5}}`, "acme", "reading", "reading", map[string]any{"value": 1.5}},
		{"custom keys alias, second timestamp key", `{"tenant":"acme","event":{"type":"rd","time":1262304000,"v":2}}`, "acme", "reading", "rd", map[string]any{"value": 2.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, _ := stageOne(t, tt.line)
			if ev.Tenant != tt.tenant || ev.Metric != tt.metric || ev.MetricAlias != tt.alias {
				t.Errorf("tenant/metric/alias = %q/%q/%q, want %q/%q/%q", ev.Tenant, ev.Metric, ev.MetricAlias, tt.tenant, tt.metric, tt.alias)
			}
			if ev.Timestamp != 1262304000000 {
				t.Errorf("Timestamp = %d, want 1262304000000", ev.Timestamp)
			}
			if !reflect.DeepEqual(ev.Fields, tt.wantFields) {
				t.Errorf("Fields = %#v, want %#v", ev.Fields, tt.wantFields)
			}
			if len(ev.Unknown) != 0 {
				t.Errorf("Unknown = %v, want none", ev.Unknown)
			}
			if ev.IngestTime != fixedNow.UnixMilli() {
				t.Errorf("IngestTime = %d, want %d", ev.IngestTime, fixedNow.UnixMilli())
			}
			if ev.Source != testSrc {
				t.Errorf("Source = %+v, want %+v", ev.Source, testSrc)
			}
			wantVersion := map[string]int{"harbor": 3, "acme": 1}[tt.tenant]
			if ev.SchemaVersion != wantVersion {
				t.Errorf("SchemaVersion = %d, want %d", ev.SchemaVersion, wantVersion)
			}
		})
	}
}

func TestCustomKeysIgnoreDefaults(t *testing.T) {
	// acme's metric key is "type": the default "metrictype" means nothing there.
	c, _ := process(t, Options{}, `{"tenant":"acme","event":{"metrictype":"reading","ts":1262304000}}`)
	if len(c.errs) != 1 || c.errs[0].Kind != records.MissingMetric {
		t.Fatalf("got %+v, want one missing_metric", c.errs)
	}
	// harbor's timestamp keys do not include "time".
	c, _ = process(t, Options{}, `{"tenant":"harbor","event":{"metrictype":"weather","time":1262304000}}`)
	if len(c.errs) != 1 || c.errs[0].Kind != records.MissingTimestamp {
		t.Fatalf("got %+v, want one missing_timestamp", c.errs)
	}
	// The first timestamp key wins when both are present.
	ev, _ := stageOne(t, `{"tenant":"acme","event":{"type":"reading","time":1262304000,"ts":1262304001}}`)
	if ev.Timestamp != 1262304001000 {
		t.Errorf("Timestamp = %d, want the first key ts (1262304001000)", ev.Timestamp)
	}
}

func TestConversions(t *testing.T) {
	tests := []struct {
		name  string
		field string
		want  any
	}{
		{"temp_f boiling", `"temp_f":212`, 100.0},
		{"temp_f freezing", `"temp_f":32`, 0.0},
		{"temp_f minus 40", `"temp_f":-40`, -40.0},
		{"temp_f string", `"temp_f":"212"`, 100.0},
		{"count_k integral", `"count_k":3`, int64(3000)},
		{"count_k rounds down", `"count_k":2.0004`, int64(2000)},
		{"count_k rounds up", `"count_k":2.0006`, int64(2001)},
		{"count_k negative rounds away", `"count_k":-2.0006`, int64(-2001)},
		{"count_k half away from zero", `"count_k":0.0025`, int64(3)},
		{"count_k numeric string", `"count_k":"1.5"`, int64(1500)},
		{"count canonical has no conversion", `"count":3`, int64(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, _ := stageOne(t, wx(tt.field))
			if len(ev.Fields) != 1 {
				t.Fatalf("Fields = %v, want one", ev.Fields)
			}
			for _, got := range ev.Fields {
				switch w := tt.want.(type) {
				case float64:
					g, ok := got.(float64)
					if !ok || math.Abs(g-w) > 1e-9 {
						t.Errorf("got %#v, want %v ± 1e-9", got, w)
					}
				default:
					if !reflect.DeepEqual(got, tt.want) {
						t.Errorf("got %#v, want %#v", got, tt.want)
					}
				}
			}
			if len(ev.Unknown) != 0 {
				t.Errorf("Unknown = %v", ev.Unknown)
			}
		})
	}
}

const y2010 = int64(1262304000000) // 2010-01-01T00:00:00Z

func TestTimestampForms(t *testing.T) {
	maxMs := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	tests := []struct {
		name string
		ts   string
		want int64 // 0: bad_timestamp
	}{
		{"epoch s", `1262304000`, y2010},
		{"fractional s", `1262304000.5`, y2010 + 500},
		{"fractional s .123", `1262304000.123`, y2010 + 123},
		{"fractional s sub-ms truncates", `1262304000.1239`, y2010 + 123},
		{"epoch ms", `1262304000123`, y2010 + 123},
		{"epoch µs", `1262304000123456`, y2010 + 123},
		{"epoch ns", `1262304000123456789`, y2010 + 123},
		{"exponent s", `1.262304e9`, y2010},
		{"RFC 3339 Z", `"2010-01-01T00:00:00Z"`, y2010},
		{"RFC 3339 with offset", `"2010-01-01T02:00:00+02:00"`, y2010},
		{"RFC 3339 negative offset", `"2009-12-31T19:00:00-05:00"`, y2010},
		{"RFC 3339 nano", `"2010-01-01T00:00:00.123456789Z"`, y2010 + 123},
		{"numeric string s", `"1262304000"`, y2010},
		{"numeric string ms", `"1262304000123"`, y2010 + 123},
		{"numeric string padded", `" 1262304000 "`, y2010},
		{"numeric string fractional", `"1262304000.25"`, y2010 + 250},
		// Magnitude boundaries (values.go): s < 1e11 ≤ ms < 1e14 ≤ µs < 1e17 ≤ ns.
		{"1 second", `1`, 1000},
		{"last second before 2200", `7258118399`, maxMs - 1000},
		{"first second of 2200", `7258118400`, 0},
		{"just below 1e11 is seconds (year 5138)", `99999999999`, 0},
		{"1e11 is milliseconds", `100000000000`, 1e11},
		{"1e11 as float is milliseconds", `1e11`, 1e11},
		{"last ms before 2200", fmt.Sprint(maxMs - 1), maxMs - 1},
		{"2200 in ms", fmt.Sprint(maxMs), 0},
		{"just below 1e14 is milliseconds (year 5138)", `99999999999999`, 0},
		{"1e14 is microseconds", `100000000000000`, 1e11},
		{"just below 1e17 is microseconds (year 5138)", `99999999999999999`, 0},
		{"1e17 is nanoseconds", `100000000000000000`, 1e11},
		{"max int64 ns (2262)", `9223372036854775807`, 0},
		{"zero", `0`, 0},
		{"negative", `-1262304000`, 0},
		{"negative ms", `-1`, 0},
		{"1e23", `1e23`, 0},
		{"1e400", `1e400`, 0},
		{"before 1970 RFC 3339", `"1969-12-31T23:59:59Z"`, 0},
		{"2200 RFC 3339", `"2200-01-01T00:00:00Z"`, 0},
		{"yesterday", `"yesterday"`, 0},
		{"empty string", `""`, 0},
		{"date only", `"2010-01-01"`, 0},
		{"true", `true`, 0},
		{"false", `false`, 0},
		{"object", `{"s":1262304000}`, 0},
		{"array", `[1262304000]`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := `{"tenant":"harbor","event":{"metrictype":"weather","ts":` + tt.ts + `}}`
			c, _ := process(t, Options{}, line)
			if tt.want == 0 {
				if len(c.staged) != 0 || len(c.errs) != 1 || c.errs[0].Kind != records.BadTimestamp {
					t.Fatalf("got %d staged (%v), errors %v; want one bad_timestamp", len(c.staged), c.staged, c.errs)
				}
				return
			}
			if len(c.staged) != 1 {
				t.Fatalf("got errors %v, want staged", c.errs)
			}
			if got := c.staged[0].Timestamp; got != tt.want {
				t.Errorf("Timestamp = %d (%s), want %d (%s)", got, time.UnixMilli(got).UTC(), tt.want, time.UnixMilli(tt.want).UTC())
			}
		})
	}
}

// A JSON null timestamp counts as absent.
func TestNullTimestampIsMissing(t *testing.T) {
	c, _ := process(t, Options{}, `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":null}}`)
	if len(c.errs) != 1 || c.errs[0].Kind != records.MissingTimestamp {
		t.Fatalf("got %v, want missing_timestamp", c.errs)
	}
	// The message says the key is null, not that there is none (issue 19, defect 13).
	if m := c.errs[0].Message; !strings.Contains(m, `"timestamp"`) || !strings.Contains(m, "is null") {
		t.Errorf("message %q does not say the timestamp key is null", m)
	}
	// A null first key falls through to the second.
	ev, _ := stageOne(t, `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":null,"ts":1262304000}}`)
	if ev.Timestamp != y2010 {
		t.Errorf("Timestamp = %d", ev.Timestamp)
	}
	if _, ok := ev.Unknown["timestamp"]; !ok {
		t.Errorf("unused null timestamp key not kept in Unknown: %v", ev.Unknown)
	}
}

func TestCastRules(t *testing.T) {
	tests := []struct {
		name  string
		key   string // device name
		value string // raw JSON
		canon string // canonical field
		want  any    // value in Fields; uncastable → kept in Unknown
	}{
		// boolean
		{"bool true", "ok", `true`, "ok", true},
		{"bool false", "ok", `false`, "ok", false},
		{"bool string TRUE", "ok", `"TRUE"`, "ok", true},
		{"bool string False", "ok", `"False"`, "ok", false},
		{"bool string yes", "ok", `"yes"`, "ok", uncastable},
		{"bool number", "ok", `1`, "ok", uncastable},
		{"bool null", "ok", `null`, "ok", nil},
		// long
		{"long int", "count", `42`, "count", int64(42)},
		{"long negative", "count", `-42`, "count", int64(-42)},
		{"long integral float", "count", `42.0`, "count", int64(42)},
		{"long exponent", "count", `1e3`, "count", int64(1000)},
		{"long numeric string", "count", `"42"`, "count", int64(42)},
		{"long integral float string", "count", `"42.0"`, "count", int64(42)},
		{"long beyond 2^53 exact", "count", `9007199254740993`, "count", int64(9007199254740993)},
		{"long max int64", "count", `9223372036854775807`, "count", int64(math.MaxInt64)},
		{"long min int64", "count", `-9223372036854775808`, "count", int64(math.MinInt64)},
		{"long overflow", "count", `9223372036854775808000`, "count", uncastable},
		{"long fraction", "count", `42.5`, "count", uncastable},
		{"long fraction string", "count", `"42.5"`, "count", uncastable},
		{"long word", "count", `"n/a"`, "count", uncastable},
		{"long bool", "count", `true`, "count", uncastable},
		{"long object", "count", `{"v":1}`, "count", uncastable},
		{"long null", "count", `null`, "count", nil},
		// double
		{"double int", "pressure", `1013`, "pressure", 1013.0},
		{"double float", "pressure", `1013.25`, "pressure", 1013.25},
		{"double exponent", "pressure", `-1.5e-3`, "pressure", -0.0015},
		{"double numeric string", "pressure", `"1013.25"`, "pressure", 1013.25},
		{"double numeric string padded", "pressure", `" 7 "`, "pressure", 7.0},
		{"double word", "pressure", `"n/a"`, "pressure", uncastable},
		{"double NaN string", "pressure", `"NaN"`, "pressure", uncastable},
		{"double Inf string", "pressure", `"Inf"`, "pressure", uncastable},
		{"double overflow", "pressure", `1e400`, "pressure", uncastable},
		{"double bool", "pressure", `false`, "pressure", uncastable},
		{"double array", "pressure", `[1]`, "pressure", uncastable},
		{"double null", "pressure", `null`, "pressure", nil},
		// string
		{"string", "station", `"SEA"`, "station", "SEA"},
		{"string escapes", "station", `"a\"b\u00e9"`, "station", "a\"bé"},
		{"string from int", "station", `12`, "station", "12"},
		{"string from float keeps text", "station", `12.50`, "station", "12.50"},
		{"string from bool", "station", `true`, "station", "true"},
		{"string object", "station", `{"a":1}`, "station", uncastable},
		{"string array", "station", `["a"]`, "station", uncastable},
		{"string null", "station", `null`, "station", nil},
		// bytes
		{"bytes base64", "blob", `"aGVsbG8="`, "blob", []byte("hello")},
		{"bytes empty", "blob", `""`, "blob", []byte{}},
		{"bytes unpadded", "blob", `"aGVsbG8"`, "blob", uncastable},
		{"bytes url alphabet", "blob", `"-_-_"`, "blob", uncastable},
		{"bytes number", "blob", `5`, "blob", uncastable},
		{"bytes null", "blob", `null`, "blob", nil},
		// timestamp
		{"timestamp epoch s", "seen", `1262304000`, "seen", y2010},
		{"timestamp epoch ns", "seen", `1262304000123456789`, "seen", y2010 + 123},
		{"timestamp RFC 3339 offset", "seen", `"2010-01-01T01:00:00+01:00"`, "seen", y2010},
		{"timestamp numeric string", "seen", `"1262304000123"`, "seen", y2010 + 123},
		{"timestamp word", "seen", `"yesterday"`, "seen", uncastable},
		{"timestamp negative", "seen", `-5`, "seen", uncastable},
		{"timestamp bool", "seen", `true`, "seen", uncastable},
		{"timestamp null", "seen", `null`, "seen", nil},
		// via alias: kept under the alias name when uncastable
		{"alias uncastable", "temp_c", `"n/a"`, "temperature", uncastable},
		{"conversion uncastable", "temp_f", `"hot"`, "temperature", uncastable},
		{"alias null", "temp_c", `null`, "temperature", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, st := stageOne(t, wx(`"`+tt.key+`":`+tt.value))
			if tt.want == uncastable {
				if _, ok := ev.Fields[tt.canon]; ok {
					t.Errorf("Fields[%q] = %#v, want absent", tt.canon, ev.Fields[tt.canon])
				}
				if got, ok := ev.Unknown[tt.key]; !ok || got != tt.value {
					t.Errorf("Unknown[%q] = %q (present %v), want %q", tt.key, got, ok, tt.value)
				}
				if st.Uncastable != 1 || st.WithUnknown != 1 {
					t.Errorf("Stats.Uncastable = %d, WithUnknown = %d, want 1, 1", st.Uncastable, st.WithUnknown)
				}
				return
			}
			got, ok := ev.Fields[tt.canon]
			if !ok {
				t.Fatalf("Fields[%q] absent; Fields %v Unknown %v", tt.canon, ev.Fields, ev.Unknown)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Fields[%q] = %#v (%T), want %#v (%T)", tt.canon, got, got, tt.want, tt.want)
			}
			if len(ev.Unknown) != 0 || st.Uncastable != 0 || st.WithUnknown != 0 {
				t.Errorf("Unknown = %v, Stats %+v; want none", ev.Unknown, st)
			}
		})
	}
}

type uncastableT struct{}

var uncastable any = uncastableT{}

func TestUnknownFields(t *testing.T) {
	nested := `{"a" : [1, {"b":"c\u00e9"}],  "d":null}`
	tests := []struct {
		name        string
		line        string
		wantUnknown map[string]string
		wantFields  map[string]any
	}{
		{"hidden field", wx(`"old":1.5`), map[string]string{"old": `1.5`}, map[string]any{}},
		{"unknown scalar", wx(`"firmware":"1.2.3"`), map[string]string{"firmware": `"1.2.3"`}, map[string]any{}},
		{"unknown number text kept", wx(`"n":1.50e+2`), map[string]string{"n": `1.50e+2`}, map[string]any{}},
		{"nested object byte for byte", wx(`"diag":` + nested), map[string]string{"diag": nested}, map[string]any{}},
		{"inner tenant key of another tenant", wx(`"tenant":"acme","station":"SEA"`), map[string]string{"tenant": `"acme"`}, map[string]any{"station": "SEA"}},
		{"field of another metric", wx(`"value":1`), map[string]string{"value": `1`}, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, st := stageOne(t, tt.line)
			if ev.Tenant != "harbor" {
				t.Errorf("Tenant = %q, want harbor (the envelope's)", ev.Tenant)
			}
			if !reflect.DeepEqual(ev.Unknown, tt.wantUnknown) {
				t.Errorf("Unknown = %q, want %q", ev.Unknown, tt.wantUnknown)
			}
			if !reflect.DeepEqual(ev.Fields, tt.wantFields) {
				t.Errorf("Fields = %#v, want %#v", ev.Fields, tt.wantFields)
			}
			if st.WithUnknown != 1 || st.Uncastable != 0 {
				t.Errorf("Stats = %+v, want WithUnknown 1, Uncastable 0", st)
			}
		})
	}
}

func TestBareTenant(t *testing.T) {
	tests := []struct {
		name        string
		line        string
		wantKind    records.Kind // Other: staged
		wantUnknown map[string]string
	}{
		{"bare event", `{"metrictype":"weather","ts":1262304000,"temp_c":3}`, records.Other, nil},
		{"bare event leading space", ` {"metrictype":"weather","ts":1262304000}`, records.Other, nil},
		{"envelope-looking event of another tenant", `{"tenant":"acme","metrictype":"weather","ts":1262304000,"event":{"type":"reading"}}`,
			records.Other, map[string]string{"tenant": `"acme"`, "event": `{"type":"reading"}`}},
		{"envelope of another tenant", `{"tenant":"acme","event":{"type":"reading","ts":1262304000,"value":1}}`, records.MissingMetric, nil},
		{"array", `[{"metrictype":"weather"}]`, records.BadEnvelope, nil},
		{"number", `42`, records.BadEnvelope, nil},
		{"malformed", `{"metrictype":`, records.MalformedJSON, nil},
		{"garbage", `not json`, records.MalformedJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := process(t, Options{BareTenant: "harbor"}, tt.line)
			if tt.wantKind == records.Other {
				if len(c.staged) != 1 {
					t.Fatalf("errors %v, want staged", c.errs)
				}
				ev := c.staged[0]
				if ev.Tenant != "harbor" || ev.Metric != "weather" || ev.Timestamp != y2010 {
					t.Errorf("got %+v", ev)
				}
				if !reflect.DeepEqual(ev.Unknown, tt.wantUnknown) {
					t.Errorf("Unknown = %q, want %q", ev.Unknown, tt.wantUnknown)
				}
				return
			}
			if len(c.errs) != 1 {
				t.Fatalf("staged %v, want error %v", c.staged, tt.wantKind)
			}
			e := c.errs[0]
			if e.Kind != tt.wantKind || e.Tenant != "harbor" || string(e.Raw) != tt.line {
				t.Errorf("got kind %v tenant %q raw %q; want %v harbor %q", e.Kind, e.Tenant, e.Raw, tt.wantKind, tt.line)
			}
		})
	}
	t.Run("unknown bare tenant", func(t *testing.T) {
		c, _ := process(t, Options{BareTenant: "nobody"}, `{"metrictype":"weather","ts":1262304000}`)
		if len(c.errs) != 1 || c.errs[0].Kind != records.UnknownTenant || c.errs[0].Tenant != "nobody" {
			t.Fatalf("got %v, want unknown_tenant for nobody", c.errs)
		}
	})
}

// nest returns an event whose nesting (the event object counting 1) is levels deep.
func nest(levels int) string {
	inner := "1"
	for range levels - 1 {
		inner = `{"l":` + inner + `}`
	}
	return `{"metrictype":"weather","ts":1262304000,"diag":` + inner + `}`
}

func TestErrorKinds(t *testing.T) {
	valid := `{"metrictype":"weather","ts":1262304000}`
	big := `{"tenant":"harbor","event":{"metrictype":"weather","ts":1262304000,"pad":"` + strings.Repeat("x", 200) + `"}}`
	tests := []struct {
		name   string
		opts   Options
		line   string
		kind   records.Kind
		tenant string
		raw    string // "" means the whole line
	}{
		{"malformed json", Options{}, `{"tenant":"harbor",`, records.MalformedJSON, "", ""},
		{"malformed trailing", Options{}, `{"tenant":"harbor","event":` + valid + `} x`, records.MalformedJSON, "", ""},
		{"not json", Options{}, `hello`, records.MalformedJSON, "", ""},
		{"envelope array", Options{}, `[` + valid + `]`, records.BadEnvelope, "", ""},
		{"envelope string", Options{}, `"harbor"`, records.BadEnvelope, "", ""},
		{"envelope number", Options{}, `12`, records.BadEnvelope, "", ""},
		{"neither event nor events", Options{}, `{"tenant":"harbor"}`, records.BadEnvelope, "harbor", ""},
		{"null event and events", Options{}, `{"tenant":"harbor","event":null,"events":null}`, records.BadEnvelope, "harbor", ""},
		{"both event and events", Options{}, `{"tenant":"harbor","event":` + valid + `,"events":[` + valid + `]}`, records.BadEnvelope, "harbor", ""},
		{"event not object: array", Options{}, `{"tenant":"harbor","event":[` + valid + `]}`, records.BadEnvelope, "harbor", `[` + valid + `]`},
		{"event not object: string", Options{}, `{"tenant":"harbor","event":"x"}`, records.BadEnvelope, "harbor", `"x"`},
		{"events not array: object", Options{}, `{"tenant":"harbor","events":` + valid + `}`, records.BadEnvelope, "harbor", ""},
		{"events not array: number", Options{}, `{"tenant":"harbor","events":5}`, records.BadEnvelope, "harbor", ""},
		{"empty events", Options{}, `{"tenant":"harbor","events":[]}`, records.BadEnvelope, "harbor", ""},
		// A repeated envelope key leaves unclear which tenant or event is meant.
		{"tenant twice", Options{}, `{"tenant":"harbor","event":` + valid + `,"tenant":"skyline"}`, records.BadEnvelope, "", ""},
		{"tenant twice, escaped", Options{}, `{"tenant":"harbor","\u0074enant":"skyline","event":` + valid + `}`, records.BadEnvelope, "", ""},
		{"event twice", Options{}, `{"tenant":"harbor","event":` + valid + `,"event":` + valid + `}`, records.BadEnvelope, "", ""},
		{"events twice", Options{}, `{"tenant":"harbor","events":[` + valid + `],"events":[` + valid + `]}`, records.BadEnvelope, "", ""},
		{"tenant absent", Options{}, `{"event":` + valid + `}`, records.MissingTenant, "", ""},
		{"tenant null", Options{}, `{"tenant":null,"event":` + valid + `}`, records.MissingTenant, "", ""},
		{"tenant empty", Options{}, `{"tenant":"","event":` + valid + `}`, records.MissingTenant, "", ""},
		{"tenant number", Options{}, `{"tenant":7,"event":` + valid + `}`, records.MissingTenant, "", ""},
		{"tenant object", Options{}, `{"tenant":{"id":"harbor"},"event":` + valid + `}`, records.MissingTenant, "", ""},
		{"unknown tenant", Options{}, `{"tenant":"nobody","event":` + valid + `}`, records.UnknownTenant, "nobody", ""},
		{"tenant is case sensitive", Options{}, `{"tenant":"Harbor","event":` + valid + `}`, records.UnknownTenant, "Harbor", ""},
		{"missing metric", Options{}, `{"tenant":"harbor","event":{"ts":1262304000}}`, records.MissingMetric, "harbor", `{"ts":1262304000}`},
		{"null metric", Options{}, `{"tenant":"harbor","event":{"metrictype":null,"ts":1262304000}}`, records.MissingMetric, "harbor", `{"metrictype":null,"ts":1262304000}`},
		{"unknown metric", Options{}, `{"tenant":"harbor","event":{"metrictype":"rain","ts":1262304000}}`, records.UnknownMetric, "harbor", `{"metrictype":"rain","ts":1262304000}`},
		{"metric not a string", Options{}, `{"tenant":"harbor","event":{"metrictype":5,"ts":1262304000}}`, records.UnknownMetric, "harbor", `{"metrictype":5,"ts":1262304000}`},
		{"metric of another tenant", Options{}, `{"tenant":"harbor","event":{"metrictype":"reading","ts":1262304000}}`, records.UnknownMetric, "harbor", `{"metrictype":"reading","ts":1262304000}`},
		{"missing timestamp", Options{}, `{"tenant":"harbor","event":{"metrictype":"weather"}}`, records.MissingTimestamp, "harbor", `{"metrictype":"weather"}`},
		{"bad timestamp", Options{}, `{"tenant":"harbor","event":{"metrictype":"weather","ts":"yesterday"}}`, records.BadTimestamp, "harbor", `{"metrictype":"weather","ts":"yesterday"}`},
		{"too large", Options{MaxRecordBytes: 100}, big, records.TooLarge, "", ""},
		{"too deep (event form)", Options{}, `{"tenant":"harbor","event":` + nest(33) + `}`, records.TooDeep, "", ""},
		{"too deep (events form)", Options{}, `{"tenant":"harbor","events":[` + nest(33) + `]}`, records.TooDeep, "", ""},
		{"too deep (bare)", Options{BareTenant: "harbor"}, nest(33), records.TooDeep, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, st := process(t, tt.opts, tt.line)
			if len(c.staged) != 0 || len(c.errs) != 1 {
				t.Fatalf("got %d staged, errors %v; want one %v", len(c.staged), c.errs, tt.kind)
			}
			e := c.errs[0]
			if e.Kind != tt.kind {
				t.Errorf("Kind = %v (%s), want %v", e.Kind, e.Message, tt.kind)
			}
			if tt.kind != records.TooDeep && e.Tenant != tt.tenant {
				t.Errorf("Tenant = %q, want %q", e.Tenant, tt.tenant)
			}
			wantRaw := tt.raw
			if wantRaw == "" {
				wantRaw = tt.line
			}
			if string(e.Raw) != wantRaw {
				t.Errorf("Raw = %q, want %q", e.Raw, wantRaw)
			}
			if e.RawSize != len(wantRaw) {
				t.Errorf("RawSize = %d, want %d", e.RawSize, len(wantRaw))
			}
			if e.Stage != "stage1" || e.Message == "" || e.Events != 1 || e.Source != testSrc || !e.Time.Equal(fixedNow) {
				t.Errorf("error = %+v", e)
			}
			if e.Kind.Class() != records.Customer {
				t.Errorf("Class = %v, want customer", e.Kind.Class())
			}
			if st.Records != 1 || st.Events != 1 || st.Errors != 1 {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

func TestTooLargeKeepsPrefix(t *testing.T) {
	line := `{"tenant":"harbor","event":{"pad":"` + strings.Repeat("y", RawKeep+1000) + `"}}`
	c, _ := process(t, Options{MaxRecordBytes: RawKeep}, line)
	if len(c.errs) != 1 || c.errs[0].Kind != records.TooLarge {
		t.Fatalf("got %v", c.errs)
	}
	e := c.errs[0]
	if len(e.Raw) != RawKeep || !strings.HasPrefix(line, string(e.Raw)) || e.RawSize != len(line) {
		t.Errorf("Raw is %d bytes (prefix %v), RawSize %d; want a %d-byte prefix of a %d-byte line",
			len(e.Raw), strings.HasPrefix(line, string(e.Raw)), e.RawSize, RawKeep, len(line))
	}
	// Exactly at the limit is accepted.
	ok := wx("")
	c, _ = process(t, Options{MaxRecordBytes: len(ok)}, ok)
	if len(c.staged) != 1 {
		t.Errorf("a record of exactly MaxRecordBytes was rejected: %v", c.errs)
	}
}

// The depth limit is on nesting inside one event (the event object counts
// as level 1), whatever the envelope form.
func TestDepthBoundary(t *testing.T) {
	forms := []struct {
		name string
		opts Options
		wrap func(ev string) string
	}{
		{"event", Options{}, func(ev string) string { return `{"tenant":"harbor","event":` + ev + `}` }},
		{"events", Options{}, func(ev string) string {
			return `{"tenant":"harbor","events":[{"metrictype":"weather","ts":1},` + ev + `]}`
		}},
		{"bare", Options{BareTenant: "harbor"}, func(ev string) string { return ev }},
	}
	for _, f := range forms {
		for _, levels := range []int{31, 32, 33, 40} {
			t.Run(fmt.Sprintf("%s/%d", f.name, levels), func(t *testing.T) {
				line := f.wrap(nest(levels))
				c, _ := process(t, f.opts, line)
				if levels <= DefaultMaxDepth {
					if len(c.errs) != 0 {
						t.Fatalf("%d levels rejected: %v", levels, c.errs)
					}
					return
				}
				if len(c.staged) != 0 || len(c.errs) != 1 || c.errs[0].Kind != records.TooDeep {
					t.Fatalf("%d levels: staged %d, errors %v; want one too_deep", levels, len(c.staged), c.errs)
				}
				if string(c.errs[0].Raw) != line {
					t.Errorf("Raw = %q, want the whole line", c.errs[0].Raw)
				}
			})
		}
	}
	t.Run("brackets in strings do not count", func(t *testing.T) {
		ev, _ := stageOne(t, wx(`"s":"`+strings.Repeat("[{", 40)+`\"]"`))
		if ev.Unknown["s"] == "" {
			t.Errorf("Unknown = %v", ev.Unknown)
		}
	})
	t.Run("custom MaxDepth", func(t *testing.T) {
		c, _ := process(t, Options{MaxDepth: 3}, `{"tenant":"harbor","event":`+nest(3)+`}`)
		if len(c.staged) != 1 {
			t.Errorf("3 levels with MaxDepth 3: %v", c.errs)
		}
		c, _ = process(t, Options{MaxDepth: 3}, `{"tenant":"harbor","event":`+nest(4)+`}`)
		if len(c.errs) != 1 || c.errs[0].Kind != records.TooDeep {
			t.Errorf("4 levels with MaxDepth 3: staged %d errors %v", len(c.staged), c.errs)
		}
	})
	t.Run("deeper envelope key beside the event", func(t *testing.T) {
		// The envelope's own depth does not decide alone: the event's is checked.
		c, _ := process(t, Options{MaxDepth: 3}, `{"tenant":"harbor","meta":[[[[1]]]],"event":`+nest(3)+`}`)
		if len(c.staged) != 1 {
			t.Errorf("event of 3 levels beside a deeper key, MaxDepth 3: %v", c.errs)
		}
		c, _ = process(t, Options{MaxDepth: 3}, `{"tenant":"harbor","meta":[[[[1]]]],"event":`+nest(4)+`}`)
		if len(c.errs) != 1 || c.errs[0].Kind != records.TooDeep {
			t.Errorf("event of 4 levels beside a deeper key, MaxDepth 3: staged %d errors %v", len(c.staged), c.errs)
		}
	})
}

func TestBadEventInArray(t *testing.T) {
	line := `{"tenant":"harbor","events":[` + strings.Join([]string{
		`{"metrictype":"weather","ts":1262304000,"temp_c":1}`,
		`5`,
		`{"metrictype":"weather","ts":1262304001,"temp_c":2}`,
		`"text"`,
		`{"ts":1262304000}`,
		`{"metrictype":"weather","ts":"soon"}`,
		`[1,2]`,
		`null`,
		`{"metrictype":"wx","ts":1262304002}`,
	}, ",") + `]}`
	c, st := process(t, Options{}, line)
	wantErr := map[int]struct {
		kind records.Kind
		raw  string
	}{
		1: {records.BadEvent, `5`},
		3: {records.BadEvent, `"text"`},
		4: {records.MissingMetric, `{"ts":1262304000}`},
		5: {records.BadTimestamp, `{"metrictype":"weather","ts":"soon"}`},
		6: {records.BadEvent, `[1,2]`},
		7: {records.BadEvent, `null`},
	}
	if st.Events != 9 || st.Staged != 3 || st.Errors != 6 || st.Records != 1 {
		t.Fatalf("Stats = %+v, want 9 events, 3 staged, 6 errors", st)
	}
	for _, e := range c.errs {
		w, ok := wantErr[e.Source.Index]
		if !ok {
			t.Errorf("unexpected error at index %d: %v", e.Source.Index, e)
			continue
		}
		if e.Kind != w.kind || string(e.Raw) != w.raw || e.Tenant != "harbor" || e.Events != 1 ||
			e.Source.File != testSrc.File || e.Source.Line != testSrc.Line {
			t.Errorf("index %d: got %v tenant %q raw %q src %+v; want %v %q", e.Source.Index, e.Kind, e.Tenant, e.Raw, e.Source, w.kind, w.raw)
		}
		delete(wantErr, e.Source.Index)
	}
	if len(wantErr) != 0 {
		t.Errorf("missing errors for indexes %v", wantErr)
	}
	wantStaged := map[int]int64{0: y2010, 2: y2010 + 1000, 8: y2010 + 2000}
	for _, ev := range c.staged {
		if ts, ok := wantStaged[ev.Source.Index]; !ok || ts != ev.Timestamp {
			t.Errorf("staged index %d ts %d unexpected", ev.Source.Index, ev.Timestamp)
		}
		delete(wantStaged, ev.Source.Index)
	}
	if len(wantStaged) != 0 {
		t.Errorf("missing staged indexes %v", wantStaged)
	}
}

func TestConservationMixedBatch(t *testing.T) {
	lines := []string{
		wx(`"temp_c":1`),
		`{"tenant":"harbor","events":[` + wx("")[len(`{"tenant":"harbor","event":`):len(wx(""))-1] + `,5,{"metrictype":"x","ts":1}]}`,
		`not json`,
		`[]`,
		`{"tenant":"nobody","event":{}}`,
		`{"event":{}}`,
		`{"tenant":"harbor","events":[]}`,
		`{"tenant":"acme","events":[{"type":"rd","time":"2010-01-01T00:00:00Z","v":"x"},{"type":"rd"}]}`,
		`{"tenant":"harbor","event":` + nest(50) + `}`,
		"",
		"   ",
	}
	p := newProc(t, Options{})
	c := &collector{}
	for i, l := range lines {
		p.Process([]byte(l), records.Lineage{File: "f", Line: int64(i + 1)}, c)
	}
	checkConservation(t, p.Stats, c)
	want := Stats{Records: int64(len(lines)), Events: 14, Staged: 3, Errors: 11, Uncastable: 1, WithUnknown: 1}
	if p.Stats != want {
		t.Errorf("Stats = %+v, want %+v", p.Stats, want)
	}
}

func TestEventIDs(t *testing.T) {
	id := func(line string) string {
		t.Helper()
		ev, _ := stageOne(t, line)
		if ev.ID == "" {
			t.Fatal("empty ID")
		}
		return ev.ID
	}
	base := wx(`"temperature":20,"station":"SEA","extra":{"a":1}`)
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"exact re-delivery", base, base, true},
		{"key order does not matter", wx(`"station":"SEA","temperature":20`), wx(`"temperature":20,"station":"SEA"`), true},
		{"alias vs canonical field", wx(`"temp_c":20`), wx(`"temperature":20`), true},
		{"metric alias vs canonical", `{"tenant":"harbor","event":{"metrictype":"wx","ts":1262304000,"temp_c":20}}`, wx(`"temperature":20`), true},
		{"timestamp form does not matter", `{"tenant":"harbor","event":{"metrictype":"weather","ts":"2010-01-01T00:00:00Z","temp_c":20}}`, wx(`"temperature":20`), true},
		{"20 vs 20.0", wx(`"temperature":20`), wx(`"temperature":20.0`), true},
		{"different value same timestamp", wx(`"temperature":20`), wx(`"temperature":21`), false},
		{"different timestamp", wx(`"temperature":20`), `{"tenant":"harbor","event":{"metrictype":"weather","ts":1262304001,"temperature":20}}`, false},
		{"extra unknown field", wx(`"temperature":20`), wx(`"temperature":20,"x":1`), false},
		{"unknown value differs", wx(`"x":1`), wx(`"x":2`), false},
		{"field vs unknown of the same name", wx(`"station":"1"`), wx(`"station2":"1"`), false},
		{"null vs absent", wx(`"station":null`), wx(""), false},
		{"string vs bytes-looking", wx(`"station":"aGk="`), wx(`"blob":"aGk="`), false},
		{"another tenant same content", `{"tenant":"acme","event":{"type":"reading","ts":1262304000,"value":1}}`, `{"tenant":"acme","event":{"type":"reading","ts":1262304000,"value":2}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := id(tt.a), id(tt.b)
			if (a == b) != tt.same {
				t.Errorf("ids %s and %s: same = %v, want %v", a, b, a == b, tt.same)
			}
		})
	}
	t.Run("ingest time and lineage do not matter", func(t *testing.T) {
		p1 := newProc(t, Options{Now: func() time.Time { return fixedNow.Add(time.Hour) }})
		c1 := &collector{}
		p1.Process([]byte(base), records.Lineage{File: "other", Line: 99}, c1)
		if len(c1.staged) != 1 || c1.staged[0].ID != id(base) {
			t.Errorf("ID changed with ingest time / lineage")
		}
	})
}

// TestEventIDsStable pins the ids of events of every value kind, an
// escaped key, two device names for one field, a repeated unknown key and
// an events array: an archive deduplicates across runs and releases by
// id, so a change in how events are held or hashed must not change them.
// The ids were made by the release before the Processor held fields as
// typed slices, and by every one since.
func TestEventIDsStable(t *testing.T) {
	tests := []struct {
		line string
		ids  []string
	}{
		{wx(`"temperature":20,"station":"SEA","extra":{"a":1}`), []string{"afb7cf53-4712-5b94-ae0b-3f592798c6ea"}},
		{wx(`"temp_f":68,"press":1013.25,"count_k":"2.5","ok":"TRUE","blob":"aGk=","seen":"2010-01-01T00:00:01.5Z","old":1,"station":null`),
			[]string{"a47ece92-611b-55c9-8bd0-33f76296bcc8"}},
		{wx(`"temp_c":20,"temperature":21,"st\u0061tion":"n\u00e9","z":[1,2],"a":"x","a":"y"`), []string{"9fe0e08f-ab55-5aa0-8be8-775e54b853e4"}},
		{`{"tenant":"acme","events":[{"type":"rd","time":1262304000123456,"v":"1.5"},{"type":"reading","ts":1262304000,"value":-0.0,"value2":true}]}`,
			[]string{"c6c2b1db-815e-5397-822c-2d26389973fa", "249b88a8-a813-5756-9a69-6e6d3baf820d"}},
	}
	for _, tt := range tests {
		c, _ := process(t, Options{}, tt.line)
		var got []string
		for _, ev := range c.staged {
			got = append(got, ev.ID)
		}
		if !reflect.DeepEqual(got, tt.ids) {
			t.Errorf("%s: ids %q, want %q", tt.line, got, tt.ids)
		}
	}
}

func TestDuplicateDeviceNamesDeterministic(t *testing.T) {
	tests := []struct {
		name       string
		fields     string
		wantValue  float64
		loser      string
		loserValue string
	}{
		// "temp_c" < "temperature": the smaller device name wins.
		{"alias first", `"temp_c":10,"temperature":20`, 10, "temperature", "20"},
		{"canonical first", `"temperature":20,"temp_c":10`, 10, "temperature", "20"},
		{"conversion key", `"temperature":20,"temp_f":212`, 100, "temperature", "20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var firstID string
			for i := range 50 {
				ev, _ := stageOne(t, wx(tt.fields))
				got, _ := ev.Fields["temperature"].(float64)
				if math.Abs(got-tt.wantValue) > 1e-9 {
					t.Fatalf("run %d: temperature = %v, want %v", i, ev.Fields["temperature"], tt.wantValue)
				}
				if !reflect.DeepEqual(ev.Unknown, map[string]string{tt.loser: tt.loserValue}) {
					t.Fatalf("run %d: Unknown = %v, want %s=%s", i, ev.Unknown, tt.loser, tt.loserValue)
				}
				if i == 0 {
					firstID = ev.ID
				} else if ev.ID != firstID {
					t.Fatalf("run %d: ID %s differs from %s", i, ev.ID, firstID)
				}
			}
		})
	}
}

func TestNewProcessorRejectsDuplicates(t *testing.T) {
	dupMetric := harborSchema()
	dupMetric.Metrics = append(dupMetric.Metrics, schema.Metric{Name: "other", Aliases: []string{"wx"}})
	dupField := harborSchema()
	dupField.Metrics[0].Fields = append(dupField.Metrics[0].Fields, schema.Field{Name: "x", Type: schema.Double, Aliases: []string{"press"}})
	tests := []struct {
		name    string
		tenants []*schema.Tenant
	}{
		{"two schemas for one tenant", []*schema.Tenant{harborSchema(), harborSchema()}},
		{"metric alias used twice", []*schema.Tenant{dupMetric}},
		{"field alias used twice", []*schema.Tenant{dupField}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewProcessor(tt.tenants, Options{}); err == nil {
				t.Error("NewProcessor succeeded, want an error")
			}
		})
	}
}

// The error archive stores error records as JSON; make sure messages of
// every kind are plain text that survives encoding.
func TestErrorMessagesAreJSONSafe(t *testing.T) {
	c, _ := process(t, Options{}, "{\"tenant\":\"harbor\",\"event\":{\"metrictype\":\"weather\",\"ts\":\"\xff\"}}")
	if len(c.errs) != 1 {
		t.Fatalf("got %v", c.errs)
	}
	if _, err := json.Marshal(c.errs[0]); err != nil {
		t.Error(err)
	}
	if !bytes.Contains(c.errs[0].Raw, []byte{0xff}) {
		t.Errorf("Raw lost the original bytes: %q", c.errs[0].Raw)
	}
}

func TestUUIDV5MatchesLibrary(t *testing.T) {
	for _, data := range []string{"", "t\x00m\x001700000000000\x00fx\x00l42", strings.Repeat("long ", 100)} {
		b := append(append([]byte{}, idNamespace[:]...), data...)
		if got, want := uuidV5(b), uuid.NewSHA1(idNamespace, []byte(data)); got != want {
			t.Errorf("uuidV5(%q) = %s, uuid.NewSHA1 = %s", data, got, want)
		}
	}
}

// depthRef is the plain byte-at-a-time depth scan, the reference for the
// faster one.
func depthRef(raw []byte, limit int) int {
	d, maxD := 0, 0
	inStr, esc := false, false
	for _, c := range raw {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			d++
			if d > maxD {
				maxD = d
				if maxD > limit {
					return maxD
				}
			}
		case '}', ']':
			d--
		}
	}
	return maxD
}

var depthCases = []string{
	``, `{}`, `[[[]]]`, `{"a":"{[{["}`, `{"a":"\"{"}`, `{"a":"\\"}`, `{"a":"\\\"[[["}`,
	`{"a":"\\\\"}[`, `"unterminated {`, `"\`, `{"a":["x\\",{"b":[1]}]}`, `{"k\"{":[{"\\\\\\":{}}]}`,
}

func FuzzDepth(f *testing.F) {
	for _, c := range depthCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, limit := range []int{1, 3, 64} {
			want := depthRef(b, limit)
			if got := depth(b, limit); got != want {
				t.Fatalf("depth(%q, %d) = %d, reference %d", b, limit, got, want)
			}
			// nesting: the depth when over the limit, else a bound on it.
			if got := nesting(b, limit); want > limit && got != want || want <= limit && (got < want || got > limit) {
				t.Fatalf("nesting(%q, %d) = %d, depth %d", b, limit, got, want)
			}
		}
	})
}

// TestBOM: a UTF-8 byte order mark before a record is skipped, not a
// malformed_json "not an object at offset 0" (issue 19, defect 13).
func TestBOM(t *testing.T) {
	ev, _ := stageOne(t, "\xef\xbb\xbf"+`{"tenant":"harbor","event":{"metrictype":"weather","ts":1262304000}}`)
	if ev.Timestamp != y2010 || ev.Tenant != "harbor" {
		t.Errorf("event after a BOM: %+v", ev)
	}
}

// TestFieldBound: an event with more fields than MaxFields is one
// too_many_fields customer error, not a lake row of every field (issue 19,
// defect 6); at the limit it is staged.
func TestFieldBound(t *testing.T) {
	event := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"tenant":"harbor","event":{"metrictype":"weather","ts":1262304000`)
		for i := range n - 2 {
			fmt.Fprintf(&b, `,"f%d":%d`, i, i)
		}
		return b.String() + `}}`
	}
	c, _ := process(t, Options{MaxFields: 10}, event(10))
	if len(c.errs) != 0 || len(c.staged) != 1 {
		t.Errorf("10 fields at a limit of 10: %d staged, errors %v", len(c.staged), c.errs)
	}
	c, st := process(t, Options{MaxFields: 10}, event(11))
	if len(c.errs) != 1 || c.errs[0].Kind != records.TooManyFields || !strings.Contains(c.errs[0].Message, "11 fields, over the limit of 10") || st.Events != 1 {
		t.Errorf("11 fields at a limit of 10: %v (events %d)", c.errs, st.Events)
	}
	if c, _ := process(t, Options{}, event(DefaultMaxFields+1)); len(c.errs) != 1 || c.errs[0].Kind != records.TooManyFields {
		t.Errorf("the default limit: %v", c.errs)
	}
}
