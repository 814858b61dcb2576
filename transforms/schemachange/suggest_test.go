package schemachange

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fineo-io/ingest/schema"
)

const harborYAML = `tenant: harbor
timestamp_keys: [timestamp, ts]
metrics:
  - name: weather
    aliases: [wx]
    fields:
      - name: temperature
        type: double
        aliases: [temp_c]
        conversions:
          temp_f: {scale: 0.5555555555555556, offset: -17.77777777777778}
      - {name: pressure, type: long}
      - {name: station, type: string}
      - {name: firmware, type: string, hidden: true}
`

func parseTenant(t *testing.T, src string) *schema.Tenant {
	t.Helper()
	tn, err := schema.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.Validate(); err != nil {
		t.Fatal(err)
	}
	return tn
}

// suggestReport holds one unknown field per case of TestSuggest.
func suggestReport() *Report {
	ts := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	r := NewReport()
	add := func(metric, name string, raws ...string) {
		for i, raw := range raws {
			r.ObserveUnknown("harbor", metric, name, raw, ts+int64(i))
		}
	}
	add("weather", "humidity", "41", "42.5", "40")                                           // long+double → double
	add("weather", "battery", "87", "88")                                                    // long
	add("weather", "online", "true", "false")                                                // boolean
	add("weather", "calibrated_at", `"2024-04-01T00:00:00Z"`, `"2024-04-02T08:00:00+02:00"`) // timestamp
	add("weather", "label", `"north"`, "3")                                                  // mixed → string
	add("weather", "rare", "1")                                                              // below min count 2? (no: 1 < 2)
	add("weather", "temp_c", "12.5", "13")                                                   // alias of temperature
	add("weather", "temp_f", "55", "56")                                                     // conversion key
	add("weather", "firmware", `"1.2"`, `"1.3"`)                                             // hidden field
	add("weather", "station", `"x"`, `"y"`)                                                  // field itself (staged before it was added)
	add("weather", "ts", "1", "2")                                                           // timestamp key
	add("weather", "metrictype", `"wx"`, `"wx"`)                                             // metric key (default)
	add("weather", "event_id", `"a"`, `"b"`)                                                 // lake column
	add("weather", "Timestamp", `"a"`, `"b"`)                                                // lake column, other case
	add("weather", "Station", `"a"`, `"b"`)                                                  // case clash with a field
	add("weather", " padded", "1", "2")                                                      // validator refuses
	add("weather", "empty", "null", "null")                                                  // only nulls
	add("weather", "geo", `{"lat":1}`, `{"lat":2}`)                                          // only objects
	add("weather", "tags", `["a"]`, `"b"`, `"c"`)                                            // strings and an array
	add("wx", "gust", "3.5", "4")                                                            // metric by alias
	add("rain", "mm", "1", "2")                                                              // metric not in schema
	r.ObserveUnknown("ghost", "weather", "x", "1", ts)                                       // tenant not in the store
	r.ObserveUnknown("ghost", "weather", "x", "1", ts)
	for _, raw := range []string{"1013.25", "1014.5", `"n/a"`} {
		r.ObserveFailedCast("harbor", "weather", "pressure", "long", raw, ts)
	}
	for _, raw := range []string{`"abc"`, `"def"`} {
		r.ObserveFailedCast("harbor", "weather", "temperature", "double", raw, ts)
	}
	return r
}

func TestSuggest(t *testing.T) {
	cur := parseTenant(t, harborYAML)
	cur.Version = 3
	quiet := parseTenant(t, "tenant: quiet\nmetrics: [{name: m, fields: [{name: a, type: long}]}]\n")
	r := suggestReport()
	r.ObserveFailedCast("quiet", "m", "a", "long", `"x"`, 1e12) // failed casts alone: no proposal

	proposals, notes, err := Suggest(r, []*schema.Tenant{cur, quiet}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(proposals) != 1 || proposals[0].Tenant != "harbor" {
		t.Fatalf("proposals = %v, want only harbor", proposals)
	}
	p := proposals[0]
	if err := p.Validate(); err != nil {
		t.Fatalf("proposal does not validate: %v", err)
	}
	if p.Version != 3 {
		t.Errorf("proposal version = %d, want the base version 3", p.Version)
	}
	if cur.Metrics[0].Fields[len(cur.Metrics[0].Fields)-1].Name != "firmware" {
		t.Error("Suggest modified the current schema")
	}
	var got []string
	for _, f := range p.Metrics[0].Fields {
		got = append(got, f.Name+":"+string(f.Type))
	}
	want := []string{
		"temperature:double", "pressure:long", "station:string", "firmware:string", // unchanged, in order
		"battery:long", "calibrated_at:timestamp", "humidity:double", "label:string", "online:boolean", "tags:string",
		"gust:double",
	}
	if !slices.Equal(got, want) {
		t.Errorf("fields = %v\nwant     %v", got, want)
	}

	noteFor := map[string]string{
		"rare":       "fewer than --min-count 2",
		"temp_c":     "alias or conversion key of field weather.temperature",
		"temp_f":     "alias or conversion key of field weather.temperature",
		"firmware":   "hidden field",
		"ts":         "metric key or timestamp key",
		"metrictype": "metric key or timestamp key",
		"event_id":   `lake column "event_id"`,
		"Timestamp":  `lake column "timestamp"`,
		"Station":    "only in letter case",
		" padded":    "refused by schema validation",
		"empty":      "only null values",
		"geo":        "JSON object or array",
		"tags":       "will not cast and stay in unknown_fields",
		"label":      "mixed values",
	}
	all := strings.Join(notes, "\n")
	for name, frag := range noteFor {
		if !hasNote(notes, "harbor: weather."+name+":", frag) {
			t.Errorf("no note for %q containing %q in:\n%s", name, frag, all)
		}
	}
	for _, want := range []string{
		"harbor: weather.station: is already field weather.station (string) in version 3",
		`harbor: metric "wx" is now an alias of "weather"`,
		`harbor: metric "rain" is not in the current schema`,
		"ghost: tenant has no schema in the store",
		"harbor: weather.pressure: 3 value(s) failed to cast to long",
		"harbor: weather.temperature: 2 value(s) failed to cast to double",
		"quiet: m.a: 1 value(s) failed to cast to long",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("notes lack %q:\n%s", want, all)
		}
	}
	if !hasNote(notes, "harbor: weather.pressure:", "fix the device, or consider type string") {
		t.Errorf("pressure (double and string failures) should suggest string:\n%s", all)
	}

	// Only the double failures of a long field → consider double.
	r2 := NewReport()
	r2.ObserveFailedCast("harbor", "weather", "pressure", "long", "1013.25", 1e12)
	_, notes2, err := Suggest(r2, []*schema.Tenant{cur}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !hasNote(notes2, "harbor: weather.pressure:", "consider type double") {
		t.Errorf("notes = %q", notes2)
	}
	// An already retyped field says so.
	retyped := cur.Clone()
	retyped.Metrics[0].Fields[1].Type = schema.Double
	_, notes3, _ := Suggest(r2, []*schema.Tenant{retyped}, 1)
	if !hasNote(notes3, "harbor: weather.pressure:", "already declares it double") {
		t.Errorf("notes = %q", notes3)
	}
}

func hasNote(notes []string, prefix, frag string) bool {
	for _, n := range notes {
		if strings.HasPrefix(n, prefix) && strings.Contains(n, frag) {
			return true
		}
	}
	return false
}

func TestSuggestMinCountAndEmpty(t *testing.T) {
	cur := parseTenant(t, harborYAML)
	tests := []struct {
		name      string
		minCount  int64
		wantAdded []string
	}{
		{"min 0 means 1", 0, []string{"battery", "calibrated_at", "humidity", "label", "online", "rare", "tags", "gust"}},
		{"min 3", 3, []string{"humidity", "tags"}},
		{"min 100", 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, _, err := Suggest(suggestReport(), []*schema.Tenant{cur}, tt.minCount)
			if err != nil {
				t.Fatal(err)
			}
			var added []string
			for _, p := range ps {
				for _, f := range p.Metrics[0].Fields[len(cur.Metrics[0].Fields):] {
					added = append(added, f.Name)
				}
			}
			if !slices.Equal(added, tt.wantAdded) {
				t.Errorf("added %v, want %v", added, tt.wantAdded)
			}
		})
	}
	ps, notes, err := Suggest(NewReport(), []*schema.Tenant{cur}, 1)
	if err != nil || len(ps) != 0 || len(notes) != 0 {
		t.Errorf("empty report: %v %v %v", ps, notes, err)
	}
}

// TestSuggestRoundTrip writes the proposal as a file and applies it to a
// store holding the current schema: the new version has the fields.
func TestSuggestRoundTrip(t *testing.T) {
	ctx := context.Background()
	store := schema.NewDirStore(t.TempDir())
	v1, _, err := store.Apply(ctx, parseTenant(t, harborYAML))
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err := Suggest(suggestReport(), []*schema.Tenant{v1}, 2)
	if err != nil || len(ps) != 1 {
		t.Fatalf("Suggest: %v %v", ps, err)
	}
	data, err := schema.Marshal(ps[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "harbor.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := schema.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v2, changes, err := store.Apply(ctx, file)
	if err != nil {
		t.Fatalf("apply proposal: %v", err)
	}
	if v2.Version != 2 {
		t.Errorf("version = %d, want 2", v2.Version)
	}
	var adds []string
	for _, c := range changes {
		if c.Op != schema.OpAdd {
			t.Errorf("unexpected change %s", c)
		}
		adds = append(adds, c.String())
	}
	want := []string{
		"+ field weather.battery (long)", "+ field weather.calibrated_at (timestamp)", "+ field weather.humidity (double)",
		"+ field weather.label (string)", "+ field weather.online (boolean)", "+ field weather.tags (string)", "+ field weather.gust (double)",
	}
	if !slices.Equal(adds, want) {
		t.Errorf("changes = %v\nwant      %v", adds, want)
	}
	got, err := store.Get(ctx, "harbor")
	if err != nil || got.Version != 2 || len(got.Metrics[0].Fields) != 11 {
		t.Errorf("store holds %+v, %v", got, err)
	}
}
