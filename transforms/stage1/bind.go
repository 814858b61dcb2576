package stage1

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	json "github.com/goccy/go-json"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// Binder re-resolves staged events against the tenants' CURRENT schemas:
// late binding at read time. A staged event keeps the canonical names of
// the schema version it was ingested with, and everything that version did
// not type as raw JSON in Unknown; after a schema change (a new field, a
// new alias, a retype, a rename, a hidden field) the Binder puts every
// value where the current schema says it belongs. `fineo batch` uses it to
// write typed lake columns.
type Binder struct {
	reg *registry
}

// BindObserver hears what binding could not type.
type BindObserver interface {
	// Unknown is called for a field the current schema does not know.
	Unknown(tenant, metric, name, raw string, tsMillis int64)
	// FailedCast is called for a known field whose value did not cast.
	FailedCast(tenant, metric, field, declared, raw string, tsMillis int64)
}

// NewBinder compiles the current schemas.
func NewBinder(tenants []*schema.Tenant) (*Binder, error) {
	reg, err := compile(tenants)
	if err != nil {
		return nil, err
	}
	return &Binder{reg: reg}, nil
}

// Table says which canonical metric an event's metric (a name or alias in
// the current schema) is, and returns that metric's visible fields in
// declaration order: the lake's data columns.
func (b *Binder) Table(tenant, metric string) (canonical string, columns []schema.Field, ok bool) {
	t := b.reg.tenants[tenant]
	if t == nil {
		return "", nil, false
	}
	m := t.metrics[metric]
	if m == nil {
		return "", nil, false
	}
	return m.name, m.columns, true
}

// Version returns the tenant's current schema version.
func (b *Binder) Version(tenant string) int {
	if t := b.reg.tenants[tenant]; t != nil {
		return t.version
	}
	return 0
}

// Bind returns the event's values aligned with Table's columns (nil: null)
// and the fields that stay untyped, as a JSON object text ("" when none).
// Hidden fields are left out of both (the staged archive keeps them).
// ok is false when the tenant or metric is not in the current schemas.
func (b *Binder) Bind(ev *records.Event, obs BindObserver) (values []any, unknownJSON string, ok bool) {
	st := archive.StagedOf(ev)
	values, unknownJSON, ok, err := b.BindStaged(&st, obs)
	if err != nil { // not for a decoded event's fields; kept safe all the same
		return nil, "", false
	}
	return values, unknownJSON, ok
}

// BindStaged is Bind for a staged record, whose fields are decoded as they
// are bound (no maps); err is a corrupt record's.
func (b *Binder) BindStaged(st *archive.Staged, obs BindObserver) (values []any, unknownJSON string, ok bool, err error) {
	m := b.metric(st.Tenant, st.Metric)
	if m == nil {
		return nil, "", false, nil
	}
	vs := make([]records.Value, len(m.columns))
	if unknownJSON, _, err = b.BindValues(st, obs, vs); err != nil {
		return nil, "", true, err
	}
	values = make([]any, len(vs))
	for i, v := range vs {
		values[i] = v.Any()
	}
	return values, unknownJSON, true, nil
}

func (b *Binder) metric(tenant, metric string) *cmetric {
	t := b.reg.tenants[tenant]
	if t == nil {
		return nil
	}
	return t.metrics[metric]
}

// BindValues is BindStaged without boxing: it puts the record's values in
// values, one per column of Table (records.Value{} is null), which must
// have exactly that length. `fineo batch` binds every lake row this way:
// a boxed value per cell was a tenth of its CPU, in allocation and
// garbage collection. A string value may be a view into the staged
// record's block, valid as long as the record is.
func (b *Binder) BindValues(st *archive.Staged, obs BindObserver, values []records.Value) (unknownJSON string, ok bool, err error) {
	tenant, ts := st.Tenant, st.Timestamp // tenant: the registry's key, its schema's name
	m := b.metric(tenant, st.Metric)
	if m == nil {
		return "", false, nil
	}
	if len(values) != len(m.columns) {
		return "", true, fmt.Errorf("stage1: BindValues given %d values for %d columns", len(values), len(m.columns))
	}
	clear(values)
	var setBuf [64]bool // no allocation for tables of up to 64 columns
	set := setBuf[:min(len(m.columns), len(setBuf))]
	if len(m.columns) > len(setBuf) {
		set = make([]bool, len(m.columns))
	}
	var unknown map[string]string
	keep := func(name, raw string) {
		if unknown == nil {
			unknown = map[string]string{}
		}
		unknown[name] = raw
	}
	// Typed values first, by their ingest-time canonical name.
	err = st.EachValue(func(name string, v records.Value) {
		f, known := m.lookup(name)
		if known && f.hidden {
			return
		}
		if !known {
			raw := valueJSON(v.Any())
			keep(name, raw)
			if obs != nil {
				obs.Unknown(tenant, m.name, name, raw, ts)
			}
			return
		}
		i := f.col
		if set[i] {
			return
		}
		if v.Kind == records.NullValue {
			set[i] = true
			return
		}
		cv, ok := retype(v, f.typ)
		if !ok {
			raw := valueJSON(v.Any())
			keep(name, raw)
			if obs != nil {
				obs.FailedCast(tenant, m.name, f.name, string(f.typ), raw, ts)
			}
			return
		}
		values[i], set[i] = cv, true
	})
	if err != nil {
		return "", true, err
	}
	// Then what ingest could not type, in name order so the outcome is
	// deterministic when two names map to one field.
	type rawField struct{ name, raw string }
	var ub [16]rawField
	untyped := ub[:0]
	if err := st.EachUnknown(func(name, raw string) { untyped = append(untyped, rawField{name, raw}) }); err != nil {
		return "", true, err
	}
	if len(untyped) > 1 {
		slices.SortFunc(untyped, func(a, b rawField) int { return strings.Compare(a.name, b.name) })
	}
	for _, u := range untyped {
		name, raw := u.name, u.raw
		f, known := m.lookup(name)
		if known && f.hidden {
			continue
		}
		if !known {
			keep(name, raw)
			if obs != nil {
				obs.Unknown(tenant, m.name, name, raw, ts)
			}
			continue
		}
		i := f.col
		// raw is immutable (a view into the record's block, or a string
		// of the event), so a cast string may stay a view into it.
		v, ok := castFlat(unsafe.Slice(unsafe.StringData(raw), len(raw)), f)
		if !ok || set[i] {
			keep(name, raw)
			if !ok && obs != nil {
				obs.FailedCast(tenant, m.name, f.name, string(f.typ), raw, ts)
			}
			continue
		}
		values[i], set[i] = v, true
	}
	return objectJSON(unknown), true, nil
}

// retype converts a typed value to another declared type (after a retype
// in the schema); a value of the declared type passes through.
func retype(v records.Value, typ schema.FieldType) (records.Value, bool) {
	switch v.Kind {
	case records.BoolValue:
		if typ == schema.Boolean {
			return v, true
		}
	case records.LongValue:
		switch typ {
		case schema.Long, schema.Timestamp:
			return v, true
		case schema.Double:
			return records.Value{Kind: records.DoubleValue, Float: float64(v.Int)}, true
		}
	case records.DoubleValue:
		switch typ {
		case schema.Double:
			return v, true
		case schema.Long:
			if x := v.Float; x == math.Trunc(x) && math.Abs(x) < 1<<62 {
				return records.Value{Kind: records.LongValue, Int: int64(x)}, true
			}
			return records.Value{}, false
		}
	case records.StringValue:
		if typ == schema.String {
			return v, true
		}
	case records.BytesValue:
		if typ == schema.Bytes {
			return v, true
		}
	}
	return castFlat([]byte(valueJSON(v.Any())), fieldRef{typ: typ})
}

// valueJSON renders a typed value as JSON text (bytes as base64 strings).
func valueJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		b, _ := json.Marshal(x)
		return string(b)
	case []byte:
		return strconv.Quote(base64.StdEncoding.EncodeToString(x))
	}
	return strconv.Quote(fmt.Sprint(v))
}

// objectJSON renders name → raw JSON text as one JSON object, keys sorted.
func objectJSON(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, m[k]...)
	}
	return string(append(b, '}'))
}
