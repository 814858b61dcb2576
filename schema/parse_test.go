package schema

import (
	"encoding/json"
	"strings"
	"testing"
)

const exampleYAML = `tenant: harbor
metric_keys: [metrictype]          # optional, default [metrictype]
timestamp_keys: [timestamp, ts]    # optional, default [timestamp]
metrics:
  - name: weather                  # canonical metric name
    aliases: [wx]                  # other metric-type values that mean this metric
    fields:
      - name: temperature          # canonical field name
        type: double               # boolean | long | double | string | bytes | timestamp
        aliases: [temp_c]
        conversions:               # per alias: canonical = value * scale + offset
          temp_f: {scale: 0.5555555555555556, offset: -17.77777777777778}
      - name: pressure
        type: double
        aliases: [press]
      - {name: station, type: string}
`

func mustParse(t *testing.T, s string) *Tenant {
	t.Helper()
	tn, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tn
}

func checkExample(t *testing.T, tn *Tenant) {
	t.Helper()
	if tn.Tenant != "harbor" || len(tn.Metrics) != 1 {
		t.Fatalf("got tenant %q with %d metrics", tn.Tenant, len(tn.Metrics))
	}
	if got := strings.Join(tn.TimestampKeys, ","); got != "timestamp,ts" {
		t.Errorf("timestamp keys = %s", got)
	}
	m := tn.Metrics[0]
	if m.Name != "weather" || len(m.Aliases) != 1 || m.Aliases[0] != "wx" || len(m.Fields) != 3 {
		t.Fatalf("metric = %+v", m)
	}
	temp := m.Fields[0]
	conv, ok := temp.Conversions["temp_f"]
	if temp.Type != Double || !ok || conv.Scale != 0.5555555555555556 || conv.Offset != -17.77777777777778 {
		t.Errorf("temperature = %+v", temp)
	}
	if st := m.Fields[2]; st.Name != "station" || st.Type != String {
		t.Errorf("station = %+v", st)
	}
	if err := tn.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestParseExample(t *testing.T) {
	yamlT := mustParse(t, exampleYAML)
	js, err := json.MarshalIndent(yamlT, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"yaml": exampleYAML, "json": string(js)} {
		t.Run(name, func(t *testing.T) { checkExample(t, mustParse(t, src)) })
	}
}

func TestParseJSONEscapes(t *testing.T) {
	src := `{"tenant": "harbor", "metrics": [{"name": "a\/b \u00e9 \ud83d\ude00", "fields": []}]}`
	tn := mustParse(t, src)
	if got, want := tn.Metrics[0].Name, "a/b é 😀"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
}

func TestParseConversionScale(t *testing.T) {
	tests := []struct {
		name      string
		conv      string
		wantScale float64
	}{
		{"omitted", "{offset: 3}", 1},
		{"explicit", "{scale: 2.5}", 2.5},
		{"explicit zero kept", "{scale: 0}", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "tenant: a\nmetrics:\n  - name: m\n    fields:\n      - name: f\n        type: long\n        conversions:\n          g: " + tc.conv + "\n"
			tn := mustParse(t, src)
			if got := tn.Metrics[0].Fields[0].Conversions["g"].Scale; got != tc.wantScale {
				t.Errorf("scale = %v, want %v", got, tc.wantScale)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "tenant: a\nmetricz: []\n", []string{`line 2: unknown key "metricz" in tenant`, "metrics"}},
		{"unknown field key", "tenant: a\nmetrics:\n  - name: m\n    fields:\n      - name: f\n        type: long\n        alias: [x]\n", []string{`line 7: unknown key "alias" in field`}},
		{"unknown conversion key", "tenant: a\nmetrics:\n  - name: m\n    fields:\n      - name: f\n        type: long\n        conversions:\n          g: {scale: 2, ofset: 1}\n", []string{`line 8: unknown key "ofset" in conversion`}},
		{"non-numeric scale", "tenant: a\nmetrics:\n  - name: m\n    fields:\n      - name: f\n        type: long\n        conversions:\n          g: {scale: two}\n", []string{"line 8: scale must be a number"}},
		{"duplicate key", "tenant: a\ntenant: b\n", []string{`"tenant" already defined`}},
		{"two documents", "tenant: a\n---\ntenant: b\n", []string{"more than one document"}},
		{"empty", "  \n", []string{"empty document"}},
		{"unknown key in JSON", `{"tenant": "a", "colour": 1}`, []string{`unknown key "colour"`}},
		{"too large", "tenant: a\n#" + strings.Repeat("x", MaxFileSize), []string{"byte limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	orig := mustParse(t, exampleYAML)
	data, err := Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	back := mustParse(t, string(data))
	if d := Diff(orig, back); len(d) != 0 {
		t.Errorf("round trip changed the schema: %v\n%s", d, data)
	}
	if !strings.Contains(string(data), "\nmetrics:\n  - name: weather\n") {
		t.Errorf("want two-space indentation:\n%s", data)
	}
}
