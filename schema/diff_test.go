package schema

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func changeLines(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Tenant)
		want []string
	}{
		{"no change", func(*Tenant) {}, nil},
		{"add metric", func(t *Tenant) {
			t.Metrics = append(t.Metrics, Metric{Name: "door", Aliases: []string{"d"}, Fields: []Field{{Name: "open", Type: Boolean}}})
		}, []string{"+ metric door", "+ alias door: d", "+ field door.open (boolean)"}},
		{"add field", func(t *Tenant) {
			t.Metrics[0].Fields = append(t.Metrics[0].Fields, Field{Name: "humidity", Type: Double})
		}, []string{"+ field weather.humidity (double)"}},
		{"remove field", func(t *Tenant) { t.Metrics[0].Fields = t.Metrics[0].Fields[:2] }, []string{"- field weather.station"}},
		{"remove metric", func(t *Tenant) { t.Metrics = t.Metrics[:1] }, []string{"- metric power"}},
		{"retype", func(t *Tenant) { t.Metrics[1].Fields[0].Type = Double }, []string{"~ field power.watts: type long -> double"}},
		{"hide and unhide", func(t *Tenant) { t.Metrics[0].Fields[2].Hidden = true }, []string{"- field weather.station hidden"}},
		{"aliases", func(t *Tenant) {
			t.Metrics[0].Fields[0].Aliases = []string{"t"}
			t.Metrics[0].Aliases = nil
		}, []string{"- alias weather: wx", "+ alias weather.temperature: t", "- alias weather.temperature: temp_c"}},
		{"conversions", func(t *Tenant) {
			f := &t.Metrics[0].Fields[0]
			f.Conversions = map[string]Conversion{"temp_f": {Scale: 0.5, Offset: -17}, "temp_k": {Scale: 1, Offset: -273.15}}
			t.Metrics[0].Fields[1].Conversions = nil
		}, []string{
			"~ conversion weather.temperature: temp_f: scale 0.5555555555555556, offset -17.77777777777778 -> scale 0.5, offset -17",
			"~ conversion weather.temperature: temp_k added (scale 1, offset -273.15)",
		}},
		{"keys (explicit default equals omitted)", func(t *Tenant) { t.MetricKeys = nil; t.TimestampKeys = []string{"ts"} },
			[]string{"~ timestamp_keys: [timestamp, ts] -> [ts]"}},
		{"rename field", func(t *Tenant) {
			f := &t.Metrics[0].Fields[1]
			f.Name, f.Aliases = "air_pressure", []string{"press", "pressure"}
		}, []string{"~ field weather.pressure renamed to weather.air_pressure"}},
		{"rename field via conversion key", func(t *Tenant) {
			f := &t.Metrics[1].Fields[0]
			f.Name, f.Conversions = "kilowatts", map[string]Conversion{"watts": {Scale: 0.001}}
		}, []string{"~ field power.watts renamed to power.kilowatts", "~ conversion power.kilowatts: watts added (scale 0.001, offset 0)"}},
		{"rename metric and a field in it", func(t *Tenant) {
			m := &t.Metrics[0]
			m.Name, m.Aliases = "climate", []string{"wx", "weather"}
			m.Fields[2].Name, m.Fields[2].Aliases, m.Fields[2].Type = "site", []string{"station"}, Bytes
		}, []string{"~ metric weather renamed to climate", "~ field climate.station renamed to climate.site", "~ field climate.site: type string -> bytes"}},
		{"alias to an existing field is not a rename", func(t *Tenant) {
			m := &t.Metrics[0]
			m.Fields[0].Aliases = append(m.Fields[0].Aliases, "pressure")
			m.Fields = slices.Delete(m.Fields, 1, 2)
		}, []string{"+ alias weather.temperature: pressure", "- field weather.pressure"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, next := mustParse(t, exampleYAML), mustParse(t, exampleYAML)
			old.Metrics = append(old.Metrics, Metric{Name: "power", Fields: []Field{{Name: "watts", Type: Long}}})
			next.Metrics = append(next.Metrics, Metric{Name: "power", Fields: []Field{{Name: "watts", Type: Long}}})
			tc.edit(next)
			got := changeLines(Diff(old, next))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Diff =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDiffUnhide(t *testing.T) {
	old, next := validTenant(), validTenant()
	old.Metrics[0].Fields[1].Hidden = true
	got := changeLines(Diff(old, next))
	if want := []string{"+ field weather.pressure unhidden"}; !slices.Equal(got, want) {
		t.Errorf("Diff = %q, want %q", got, want)
	}
}

func TestDiffFromNil(t *testing.T) {
	got := changeLines(Diff(nil, mustParse(t, exampleYAML)))
	want := []string{
		"~ timestamp_keys: [timestamp] -> [timestamp, ts]",
		"+ metric weather",
		"+ alias weather: wx",
		"+ field weather.temperature (double)",
		"+ alias weather.temperature: temp_c",
		"~ conversion weather.temperature: temp_f added (scale 0.5555555555555556, offset -17.77777777777778)",
		"+ field weather.pressure (double)",
		"+ alias weather.pressure: press",
		"+ field weather.station (string)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Diff(nil, example) =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPrepare(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	cur := validTenant()
	cur.Version, cur.UpdatedAt = 4, t0
	cur.Metrics[0].Fields[1].Hidden, cur.Metrics[0].Fields[1].HiddenAt = true, &t0

	t.Run("no change returns current", func(t *testing.T) {
		next := cur.Clone()
		next.Version, next.UpdatedAt = 99, t1 // store-managed: ignored
		got, changes, err := Prepare(cur, next, t1)
		if err != nil || got != cur || changes != nil {
			t.Errorf("Prepare = %v, %v, %v; want current, nil, nil", got, changes, err)
		}
	})
	t.Run("new version stamps version, time and hidden_at", func(t *testing.T) {
		next := cur.Clone()
		next.Metrics[0].Fields[2].Hidden = true               // newly hidden
		next.Metrics[0].Fields[1].HiddenAt = nil              // already hidden: keeps t0
		next.Metrics[0].Fields[0].HiddenAt = &t1              // visible: cleared
		next.Metrics[1].Fields[0].Name = "kw"                 // rename...
		next.Metrics[1].Fields[0].Aliases = []string{"watts"} // ...keeping the old name
		next.Metrics[1].Fields[0].Hidden = true               // and hide
		got, changes, err := Prepare(cur, next, t1.In(time.FixedZone("x", 3600)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 5 || !got.UpdatedAt.Equal(t1) || got.UpdatedAt.Location() != time.UTC {
			t.Errorf("version %d updated %v", got.Version, got.UpdatedAt)
		}
		f := got.Metrics[0].Fields
		if f[2].HiddenAt == nil || !f[2].HiddenAt.Equal(t1) {
			t.Errorf("newly hidden HiddenAt = %v, want %v", f[2].HiddenAt, t1)
		}
		if f[1].HiddenAt == nil || !f[1].HiddenAt.Equal(t0) {
			t.Errorf("already hidden HiddenAt = %v, want %v", f[1].HiddenAt, t0)
		}
		if f[0].HiddenAt != nil {
			t.Errorf("visible field HiddenAt = %v, want nil", f[0].HiddenAt)
		}
		if kw := got.Metrics[1].Fields[0]; kw.HiddenAt == nil || !kw.HiddenAt.Equal(t1) {
			t.Errorf("renamed+hidden HiddenAt = %v", kw.HiddenAt)
		}
		if next.Version != cur.Version || next.Metrics[0].Fields[2].HiddenAt != nil {
			t.Error("Prepare modified its argument")
		}
		if len(changes) != 3 {
			t.Errorf("changes = %q", changeLines(changes))
		}
	})
	t.Run("new tenant is version 1", func(t *testing.T) {
		got, changes, err := Prepare(nil, validTenant(), t1)
		if err != nil || got.Version != 1 || len(changes) == 0 {
			t.Errorf("Prepare(nil) = v%d, %d changes, %v", got.Version, len(changes), err)
		}
	})
	t.Run("removal refused", func(t *testing.T) {
		next := cur.Clone()
		next.Metrics[0].Fields = next.Metrics[0].Fields[:2]
		next.Metrics = next.Metrics[:1]
		_, _, err := Prepare(cur, next, t1)
		for _, w := range []string{`field "weather.station" cannot be removed`, `metric "power" cannot be removed`, "hidden: true", "rename it keeping the old name as an alias"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v does not contain %q", err, w)
			}
		}
	})
	t.Run("invalid refused", func(t *testing.T) {
		next := cur.Clone()
		next.Metrics[0].Fields[0].Type = "float"
		if _, _, err := Prepare(cur, next, t1); err == nil {
			t.Error("Prepare accepted an invalid schema")
		}
	})
	t.Run("other tenant refused", func(t *testing.T) {
		next := cur.Clone()
		next.Tenant = "other"
		if _, _, err := Prepare(cur, next, t1); err == nil {
			t.Error("Prepare applied tenant other over harbor")
		}
	})
}
