package schema

import (
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

// validTenant returns a small valid schema for tests to break.
func validTenant() *Tenant {
	return &Tenant{
		Tenant: "harbor",
		Metrics: []Metric{{
			Name:    "weather",
			Aliases: []string{"wx"},
			Fields: []Field{
				{Name: "temperature", Type: Double, Aliases: []string{"temp_c"},
					Conversions: map[string]Conversion{"temp_f": {Scale: 5.0 / 9, Offset: -160.0 / 9}}},
				{Name: "pressure", Type: Double, Aliases: []string{"press"}},
				{Name: "station", Type: String},
			},
		}, {
			Name:   "power",
			Fields: []Field{{Name: "watts", Type: Long}},
		}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Tenant)
		wants []string // each must appear in the error; none means valid
	}{
		{"valid", func(*Tenant) {}, nil},
		{"conversion key may repeat an alias or the name", func(t *Tenant) {
			t.Metrics[0].Fields[0].Conversions["temp_c"] = Conversion{Scale: 1}
			t.Metrics[0].Fields[0].Conversions["temperature"] = Conversion{Scale: 2}
		}, nil},
		{"tenant id with slash", func(t *Tenant) { t.Tenant = "a/b" }, []string{`invalid tenant id "a/b"`}},
		{"tenant id dot dot", func(t *Tenant) { t.Tenant = ".." }, []string{`invalid tenant id ".."`}},
		{"tenant id equals", func(t *Tenant) { t.Tenant = "a=b" }, []string{`invalid tenant id`}},
		{"tenant id upper case", func(t *Tenant) { t.Tenant = "Harbor" }, []string{`invalid tenant id`}},
		{"tenant id empty", func(t *Tenant) { t.Tenant = "" }, []string{`invalid tenant id`}},
		{"tenant id too long", func(t *Tenant) { t.Tenant = strings.Repeat("a", 64) }, []string{`invalid tenant id`}},
		{"empty metric name", func(t *Tenant) { t.Metrics[1].Name = "" }, []string{"metric #2 has an empty name"}},
		// Names reach lake paths (metric=NAME/) and columns.
		{"metric name with a path", func(t *Tenant) { t.Metrics[1].Name = "m/tenant=beta/metric=temp" }, []string{`metric name "m/tenant=beta/metric=temp" is not allowed`}},
		{"metric name dot dot", func(t *Tenant) { t.Metrics[1].Name = ".." }, []string{`metric name ".." is not allowed`}},
		{"metric name with a space", func(t *Tenant) { t.Metrics[1].Name = "po wer" }, []string{`metric name "po wer" is not allowed`}},
		{"metric name upper case", func(t *Tenant) { t.Metrics[1].Name = "Power" }, []string{`metric name "Power" is not allowed`}},
		{"metric alias with a slash", func(t *Tenant) { t.Metrics[1].Aliases = []string{"a/b"} }, []string{`alias of metric "power" "a/b" is not allowed`}},
		{"metric alias dot dot", func(t *Tenant) { t.Metrics[1].Aliases = []string{".."} }, []string{`".." is not allowed`}},
		{"metric alias upper case is fine", func(t *Tenant) { t.Metrics[1].Aliases = []string{"Power Meter"} }, nil},
		{"field name with a slash", func(t *Tenant) { t.Metrics[0].Fields[2].Name = "st/ation" }, []string{`field name "st/ation" of metric "weather" is not allowed`}},
		{"field name with a dot", func(t *Tenant) { t.Metrics[0].Fields[2].Name = "a.b" }, []string{`field name "a.b" of metric "weather" is not allowed`}},
		{"field alias with a control character", func(t *Tenant) { t.Metrics[0].Fields[1].Aliases = []string{"p\x00"} }, []string{`is not allowed: no '/', control characters`}},
		{"conversion key too long", func(t *Tenant) {
			t.Metrics[0].Fields[0].Conversions[strings.Repeat("k", 257)] = Conversion{Scale: 1}
		}, []string{"is 257 bytes, over the limit of 256"}},
		// Reserved columns: one tenant's schema must not break every lake table.
		{"field named timestamp", func(t *Tenant) { t.Metrics[0].Fields[2].Name = "timestamp" }, []string{`field name "timestamp" of metric "weather" is a column every lake table has`}},
		{"field named Event_ID", func(t *Tenant) { t.Metrics[0].Fields[2].Name = "Event_ID" }, []string{`field name "Event_ID" of metric "weather" is a column every lake table has`}},
		{"field named unknown_fields", func(t *Tenant) { t.Metrics[0].Fields[2].Name = "unknown_fields" }, []string{`"unknown_fields" of metric "weather" is a column`}},
		{"a reserved name as an alias is fine", func(t *Tenant) { t.Metrics[0].Fields[2].Aliases = []string{"source"} }, nil},
		{"metric name spaces", func(t *Tenant) { t.Metrics[1].Name = "power " }, []string{`metric #2 "power " has leading or trailing spaces`}},
		{"empty field name", func(t *Tenant) { t.Metrics[0].Fields[2].Name = "" }, []string{`field #3 of metric "weather" has an empty name`}},
		{"field alias spaces", func(t *Tenant) { t.Metrics[0].Fields[1].Aliases = []string{" p"} }, []string{`alias of field "weather.pressure" " p" has leading or trailing spaces`}},
		{"bad type", func(t *Tenant) { t.Metrics[0].Fields[2].Type = "float" }, []string{`field "weather.station" has type "float"`}},
		{"missing type", func(t *Tenant) { t.Metrics[0].Fields[2].Type = "" }, []string{`field "weather.station" has type ""`}},
		{"conversion on string", func(t *Tenant) {
			t.Metrics[0].Fields[2].Conversions = map[string]Conversion{"st": {Scale: 1}}
		}, []string{`field "weather.station" has conversions but type string`}},
		{"zero scale", func(t *Tenant) { t.Metrics[0].Fields[0].Conversions["temp_f"] = Conversion{} }, []string{`conversion "temp_f" of field "weather.temperature" has scale 0`}},
		{"infinite scale", func(t *Tenant) {
			t.Metrics[0].Fields[0].Conversions["temp_f"] = Conversion{Scale: math.Inf(1)}
		}, []string{"has scale +Inf; it must be finite"}},
		{"NaN offset", func(t *Tenant) {
			t.Metrics[0].Fields[0].Conversions["temp_f"] = Conversion{Scale: 1, Offset: math.NaN()}
		}, []string{"has offset NaN; it must be finite"}},
		{"metric declared twice", func(t *Tenant) { t.Metrics[1].Name = "weather" }, []string{`metric "weather" is declared twice`}},
		{"metric alias is another metric's name", func(t *Tenant) { t.Metrics[0].Aliases = []string{"power"} },
			[]string{`alias "power" of metric "weather" is already the name of metric "power"`}},
		{"metric alias of two metrics", func(t *Tenant) { t.Metrics[1].Aliases = []string{"wx"} },
			[]string{`alias "wx" of metric "power" is also an alias of metric "weather"`}},
		{"field declared twice", func(t *Tenant) { t.Metrics[0].Fields[2].Name = "pressure" }, []string{`field "weather.pressure" is declared twice`}},
		{"field alias of two fields", func(t *Tenant) { t.Metrics[0].Fields[1].Aliases = []string{"temp_c"} },
			[]string{`alias "temp_c" of field "weather.pressure" is also an alias of field "weather.temperature"`}},
		{"field alias is another field's name", func(t *Tenant) { t.Metrics[0].Fields[1].Aliases = []string{"station"} },
			[]string{`alias "station" of field "weather.pressure" is already the name of field "weather.station"`}},
		{"conversion key is another field's alias", func(t *Tenant) {
			t.Metrics[0].Fields[1].Conversions = map[string]Conversion{"temp_f": {Scale: 1}}
		}, []string{`conversion "temp_f" of field "weather.pressure" is also a conversion key of field "weather.temperature"`}},
		{"alias is own name", func(t *Tenant) { t.Metrics[0].Fields[2].Aliases = []string{"station"} },
			[]string{`alias "station" of field "weather.station" is also its name`}},
		{"alias listed twice", func(t *Tenant) { t.Metrics[0].Fields[2].Aliases = []string{"st", "st"} },
			[]string{`alias "st" of field "weather.station" is listed twice`}},
		{"same field name in two metrics is fine", func(t *Tenant) { t.Metrics[1].Fields[0].Name = "temperature" }, nil},
		{"timestamp key is a field alias", func(t *Tenant) { t.TimestampKeys = []string{"timestamp", "press"} },
			[]string{`timestamp_keys entry "press" is also an alias of field "weather.pressure"`}},
		{"default timestamp key is a field name", func(t *Tenant) { t.Metrics[1].Fields[0].Name = "timestamp" },
			[]string{`timestamp_keys (default) entry "timestamp" is also the name of field "power.timestamp"`}},
		{"metric key is a conversion key", func(t *Tenant) { t.MetricKeys = []string{"temp_f"} },
			[]string{`metric_keys entry "temp_f" is also a conversion key of field "weather.temperature"`}},
		{"key in both lists", func(t *Tenant) { t.MetricKeys = []string{"ts"}; t.TimestampKeys = []string{"ts"} },
			[]string{`timestamp_keys entry "ts" is also in metric_keys`}},
		{"several problems at once", func(t *Tenant) {
			t.Tenant = "../x"
			t.Metrics[0].Fields[2].Type = "text"
			t.Metrics[1].Aliases = []string{"weather"}
		}, []string{"3 problems", `invalid tenant id "../x"`, `has type "text"`, `alias "weather" of metric "power" is already the name of metric "weather"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := validTenant()
			tc.edit(tn)
			err := tn.Validate()
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded, want an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Tenant != tn.Tenant {
				t.Errorf("error %T is not a *ValidationError for %q", err, tn.Tenant)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

// TestLoadRefusesOldBadNames: a version recorded before names were checked
// (here written by hand) is refused when loaded, not used to write paths.
func TestLoadRefusesOldBadNames(t *testing.T) {
	ctx := context.Background()
	d := NewDirStore(t.TempDir())
	if _, _, err := d.Apply(ctx, validTenant()); err != nil {
		t.Fatal(err)
	}
	cur, err := d.Get(ctx, "harbor")
	if err != nil {
		t.Fatal(err)
	}
	path := d.historyPath("harbor", cur.Version)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "name: power", "name: m/tenant=beta/metric=temp", 1)
	if bad == string(b) {
		t.Fatal("the recorded version has no metric power to rename")
	}
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "harbor"); err == nil || !strings.Contains(err.Error(), "is not allowed") {
		t.Errorf("Get of a recorded version with a path in a metric name: %v", err)
	}
}
