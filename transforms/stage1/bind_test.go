package stage1

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

type seen struct{ unknown, failed []string }

func (s *seen) Unknown(tenant, metric, name, raw string, ts int64) {
	s.unknown = append(s.unknown, fmt.Sprintf("%s/%s.%s=%s", tenant, metric, name, raw))
}

func (s *seen) FailedCast(tenant, metric, field, declared, raw string, ts int64) {
	s.failed = append(s.failed, fmt.Sprintf("%s/%s.%s(%s)=%s", tenant, metric, field, declared, raw))
}

// The schema after a few changes since ingest: "temp" renamed to
// "temperature" (old name kept as alias), "count" retyped long → double,
// "humidity" newly declared, "firmware" hidden, metric renamed wx → weather.
func currentSchema() []*schema.Tenant {
	return []*schema.Tenant{{
		Tenant: "harbor", Version: 4,
		Metrics: []schema.Metric{{
			Name: "weather", Aliases: []string{"wx"},
			Fields: []schema.Field{
				{Name: "temperature", Type: schema.Double, Aliases: []string{"temp"},
					Conversions: map[string]schema.Conversion{"temp_f": {Scale: 0.5555555555555556, Offset: -17.77777777777778}}},
				{Name: "count", Type: schema.Double},
				{Name: "humidity", Type: schema.Long},
				{Name: "firmware", Type: schema.String, Hidden: true},
				{Name: "ok", Type: schema.Boolean},
			},
		}},
	}}
}

func TestBinder(t *testing.T) {
	b, err := NewBinder(currentSchema())
	if err != nil {
		t.Fatal(err)
	}
	metric, cols, ok := b.Table("harbor", "wx")
	if !ok || metric != "weather" || len(cols) != 4 || cols[0].Name != "temperature" || cols[3].Name != "ok" {
		t.Fatalf("Table = %q %v %v (hidden fields must not be columns, order as declared)", metric, cols, ok)
	}
	if b.Version("harbor") != 4 {
		t.Errorf("Version = %d", b.Version("harbor"))
	}
	tests := []struct {
		name        string
		ev          records.Event
		want        []any
		wantUnknown string
		unknown     int
		failed      int
	}{
		{"renamed field by its old canonical name", records.Event{Metric: "wx", Fields: map[string]any{"temp": 21.5}},
			[]any{21.5, nil, nil, nil}, "", 0, 0},
		{"retype long to double", records.Event{Metric: "weather", Fields: map[string]any{"count": int64(7)}},
			[]any{nil, 7.0, nil, nil}, "", 0, 0},
		{"new field typed from unknown_fields", records.Event{Metric: "weather", Unknown: map[string]string{"humidity": "81"}},
			[]any{nil, nil, int64(81), nil}, "", 0, 0},
		{"conversion applied to an unknown alias value", records.Event{Metric: "weather", Unknown: map[string]string{"temp_f": "212"}},
			[]any{100.0, nil, nil, nil}, "", 0, 0},
		{"hidden field left out everywhere", records.Event{Metric: "weather", Fields: map[string]any{"firmware": "1.2"}, Unknown: map[string]string{"firmware": `"1.3"`}},
			[]any{nil, nil, nil, nil}, "", 0, 0},
		{"unknown stays unknown and is observed", records.Event{Metric: "weather", Unknown: map[string]string{"battery_mv": "3300", "nested": `{"a":[1,2]}`}},
			[]any{nil, nil, nil, nil}, `{"battery_mv":3300,"nested":{"a":[1,2]}}`, 2, 0},
		{"failed cast observed and kept", records.Event{Metric: "weather", Unknown: map[string]string{"humidity": `"n/a"`}},
			[]any{nil, nil, nil, nil}, `{"humidity":"n/a"}`, 0, 1},
		{"typed value that no longer casts", records.Event{Metric: "weather", Fields: map[string]any{"ok": "maybe"}},
			[]any{nil, nil, nil, nil}, `{"ok":"maybe"}`, 0, 1},
		{"typed wins over unknown for one column", records.Event{Metric: "weather", Fields: map[string]any{"temperature": 5.0}, Unknown: map[string]string{"temp_f": "212"}},
			[]any{5.0, nil, nil, nil}, `{"temp_f":212}`, 0, 0},
		{"field dropped from schema is kept unknown", records.Event{Metric: "weather", Fields: map[string]any{"gone": int64(1), "ok": true}},
			[]any{nil, nil, nil, true}, `{"gone":1}`, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			ev.Tenant = "harbor"
			var s seen
			values, unknown, ok := b.Bind(&ev, &s)
			if !ok {
				t.Fatal("not bound")
			}
			if fmt.Sprint(values) != fmt.Sprint(tc.want) {
				t.Errorf("values = %#v, want %#v", values, tc.want)
			}
			for i, v := range values {
				if v != nil && fmt.Sprintf("%T", v) != fmt.Sprintf("%T", tc.want[i]) {
					t.Errorf("column %d is %T, want %T", i, v, tc.want[i])
				}
			}
			if unknown != tc.wantUnknown {
				t.Errorf("unknown = %s, want %s", unknown, tc.wantUnknown)
			}
			if len(s.unknown) != tc.unknown || len(s.failed) != tc.failed {
				t.Errorf("observed unknown %v failed %v", s.unknown, s.failed)
			}
			// The batch binds staged records from their encoding, without
			// maps: the same values, unknown fields and observations.
			st := stagedFromArchive(t, &ev)
			var s2 seen
			values2, unknown2, ok2, err := b.BindStaged(st, &s2)
			if err != nil || !ok2 || fmt.Sprintf("%#v", values2) != fmt.Sprintf("%#v", values) || unknown2 != unknown ||
				fmt.Sprint(s2) != fmt.Sprint(s) {
				t.Errorf("BindStaged = %#v %s %v %v (observed %v), Bind = %#v %s (observed %v)", values2, unknown2, ok2, err, s2, values, unknown, s)
			}
		})
	}
	t.Run("other Go types bound from their text", func(t *testing.T) {
		// As the boxed Binder did: an int, an int32 or a float32 (goavro's
		// generic reader) casts like the string of its text.
		var s seen
		ev := records.Event{Tenant: "harbor", Metric: "weather", Fields: map[string]any{
			"count": 7, "humidity": int32(81), "temperature": float32(1.5), "ok": true, "x": 3,
		}}
		values, unknown, ok := b.Bind(&ev, &s)
		want := []any{1.5, 7.0, int64(81), true}
		if !ok || !reflect.DeepEqual(values, want) || unknown != `{"x":"3"}` || len(s.unknown) != 1 {
			t.Errorf("Bind = %#v %s %v (observed %v), want %#v {\"x\":\"3\"}", values, unknown, ok, s, want)
		}
	})
	t.Run("BindValues wants one value per column", func(t *testing.T) {
		ev := records.Event{Tenant: "harbor", Metric: "weather", Timestamp: 1}
		st := stagedFromArchive(t, &ev)
		_, cols, _ := b.Table("harbor", "weather")
		if len(cols) == 0 {
			t.Fatal("harbor/weather has no columns")
		}
		if _, _, err := b.BindValues(st, nil, make([]records.Value, len(cols)+1)); err == nil {
			t.Error("BindValues with a value too many: no error")
		}
		vs := make([]records.Value, len(cols))
		for i := range vs {
			vs[i] = records.Value{Kind: records.LongValue, Int: 7} // left over from a previous row
		}
		if _, ok, err := b.BindValues(st, nil, vs); err != nil || !ok {
			t.Fatalf("BindValues = %v, %v", ok, err)
		}
		for i, v := range vs {
			if v.Kind != records.NullValue {
				t.Errorf("column %d of an event without fields = %#v, want null", i, v)
			}
		}
	})
	t.Run("not in current schemas", func(t *testing.T) {
		if _, _, ok := b.Bind(&records.Event{Tenant: "harbor", Metric: "rain"}, nil); ok {
			t.Error("unknown metric bound")
		}
		if _, _, ok := b.Bind(&records.Event{Tenant: "other", Metric: "weather"}, nil); ok {
			t.Error("unknown tenant bound")
		}
	})
}

// stagedFromArchive writes ev to a staged archive file and reads it back
// as the batch does: a head whose fields are decoded when bound.
func stagedFromArchive(t *testing.T, ev *records.Event) *archive.Staged {
	t.Helper()
	ctx := context.Background()
	st, err := blob.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := archive.AppendEvent(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteAvroFile(ctx, st, "f.avro", archive.StagedSchema, []archive.Block{{Count: 1, Data: data}}); err != nil {
		t.Fatal(err)
	}
	file, err := blob.ReadFile(ctx, st, "f.avro")
	if err != nil {
		t.Fatal(err)
	}
	var out *archive.Staged
	if err := archive.ReadStagedHeads(file, func(s *archive.Staged) error { out = s; return nil }); err != nil || out == nil {
		t.Fatalf("reading back: %v", err)
	}
	return out
}
