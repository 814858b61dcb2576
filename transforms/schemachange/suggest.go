package schemachange

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fineo-io/ingest/schema"
)

// ReservedColumns are schema.ReservedColumns: Suggest never proposes a
// field of one of these names.
var ReservedColumns = schema.ReservedColumns

// Suggest proposes, for each tenant of the report that has a current schema,
// a new version of that schema with a field for every unknown field seen at
// least minCount times (values below 1 mean 1), typed with its inferred
// type. New fields are appended to their metric in name order, so existing
// columns keep their order. A field is not proposed, and a note says why,
// when its name:
//
//   - is already a field name, alias or conversion key of the metric
//     (hidden fields included: unhide them instead);
//   - equals a metric key or timestamp key of the tenant;
//   - equals, ignoring case, a reserved column (ReservedColumns) or a
//     field name of the metric (SQL engines fold column case);
//   - is refused by schema validation (empty, surrounding spaces, ...);
//
// or when it was only ever null, or only ever a JSON object or array
// (stage 1 does not cast those to string). Failed casts never change a
// schema: each gets a note suggesting a retype.
//
// Proposals are clones of the current versions (their Version is the one
// they build on) and each passes Validate. Tenants with nothing to add get no
// proposal. Notes are in report order: tenant, metric, field.
func Suggest(r *Report, current []*schema.Tenant, minCount int64) (proposals []*schema.Tenant, notes []string, err error) {
	if minCount < 1 {
		minCount = 1
	}
	byTenant := map[string]*schema.Tenant{}
	for _, t := range current {
		if t == nil {
			continue
		}
		if _, dup := byTenant[t.Tenant]; dup {
			return nil, nil, fmt.Errorf("schemachange: tenant %q is listed twice in the current schemas", t.Tenant)
		}
		byTenant[t.Tenant] = t
	}
	// Group the report's metrics by tenant (they are sorted by tenant).
	var groups [][]*MetricChanges
	for _, m := range r.Metrics {
		if n := len(groups); n > 0 && groups[n-1][0].Tenant == m.Tenant {
			groups[n-1] = append(groups[n-1], m)
		} else {
			groups = append(groups, []*MetricChanges{m})
		}
	}
	for _, g := range groups {
		s := &suggester{tenant: g[0].Tenant, minCount: minCount}
		p, err := s.run(byTenant[s.tenant], g)
		notes = append(notes, s.notes...)
		if err != nil {
			return nil, nil, err
		}
		if p != nil {
			proposals = append(proposals, p)
		}
	}
	return proposals, notes, nil
}

type suggester struct {
	tenant   string
	minCount int64
	notes    []string
}

func (s *suggester) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// run builds the proposal of one tenant, or nil when nothing is added.
func (s *suggester) run(cur *schema.Tenant, metrics []*MetricChanges) (*schema.Tenant, error) {
	if cur == nil {
		if hasChanges(metrics) {
			s.note("%s: tenant has no schema in the store; nothing proposed", s.tenant)
		}
		return nil, nil
	}
	if err := cur.Validate(); err != nil {
		s.note("%s: the current schema (version %d) does not validate, fix it first: %v", s.tenant, cur.Version, err)
		return nil, nil
	}
	next := cur.Clone()
	added := 0
	for _, mc := range metrics {
		mi := findMetric(next, mc.Metric)
		if mi < 0 {
			if len(mc.Unknown) > 0 || len(mc.FailedCasts) > 0 {
				s.note("%s: metric %q is not in the current schema (version %d); its fields are not proposed", s.tenant, mc.Metric, cur.Version)
			}
			continue
		}
		if name := next.Metrics[mi].Name; name != mc.Metric {
			s.note("%s: metric %q is now an alias of %q; its fields are proposed for %q", s.tenant, mc.Metric, name, name)
		}
		for _, name := range slices.Sorted(maps.Keys(mc.Unknown)) {
			if s.addField(next, mi, name, mc.Unknown[name]) {
				added++
			}
		}
		for _, name := range slices.Sorted(maps.Keys(mc.FailedCasts)) {
			s.failedCast(cur, mi, mc.Metric, name, mc.FailedCasts[name])
		}
	}
	if added == 0 {
		return nil, nil
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("schemachange: proposal for %s does not validate: %w", s.tenant, err)
	}
	return next, nil
}

func hasChanges(metrics []*MetricChanges) bool {
	for _, m := range metrics {
		if len(m.Unknown) > 0 || len(m.FailedCasts) > 0 {
			return true
		}
	}
	return false
}

// findMetric returns the index of the metric named (or aliased) name, or -1.
func findMetric(t *schema.Tenant, name string) int {
	for i, m := range t.Metrics {
		if m.Name == name {
			return i
		}
	}
	for i, m := range t.Metrics {
		if slices.Contains(m.Aliases, name) {
			return i
		}
	}
	return -1
}

// addField appends the unknown field name to metric mi of next if it may be
// proposed, and notes why not otherwise.
func (s *suggester) addField(next *schema.Tenant, mi int, name string, fs *FieldStats) bool {
	m := &next.Metrics[mi]
	path := fmt.Sprintf("%s: %s.%s", s.tenant, m.Name, name)
	typed := int64(0)
	for _, n := range fs.Types {
		typed += n
	}
	switch {
	case fs.Count < s.minCount:
		s.note("%s: seen %d time(s), fewer than --min-count %d; not proposed", path, fs.Count, s.minCount)
		return false
	case fs.Inferred == "" || typed == 0:
		s.note("%s: only null values seen (%d); type unknown, not proposed", path, fs.Count)
		return false
	case fs.Structured >= typed:
		s.note("%s: every value is a JSON object or array (%d), which no field type casts; it stays in unknown_fields (query it with JSON functions)", path, fs.Structured)
		return false
	}
	if o, ok := owner(m, name); ok {
		if o.Hidden && o.Name == name {
			s.note("%s: is hidden field %s.%s; set hidden: false to type it again; not proposed", path, m.Name, o.Name)
		} else if o.Name == name {
			s.note("%s: is already field %s.%s (%s) in version %d; values staged before it was added stay in unknown_fields; not proposed", path, m.Name, o.Name, o.Type, next.Version)
		} else {
			s.note("%s: is already an alias or conversion key of field %s.%s (%s) in version %d; not proposed", path, m.Name, o.Name, o.Type, next.Version)
		}
		return false
	}
	if slices.Contains(next.MetricKeysOrDefault(), name) || slices.Contains(next.TimestampKeysOrDefault(), name) {
		s.note("%s: is a metric key or timestamp key of the tenant; not proposed", path)
		return false
	}
	for _, c := range ReservedColumns {
		if strings.EqualFold(c, name) {
			s.note("%s: clashes with the lake column %q; add it by hand under another name with %q as an alias; not proposed", path, c, name)
			return false
		}
	}
	for _, f := range m.Fields {
		if strings.EqualFold(f.Name, name) {
			s.note("%s: differs from field %s.%s only in letter case, which SQL engines fold; add %q as an alias of it instead; not proposed", path, m.Name, f.Name, name)
			return false
		}
	}
	m.Fields = append(m.Fields, schema.Field{Name: name, Type: schema.FieldType(fs.Inferred)})
	if err := next.Validate(); err != nil {
		m.Fields = m.Fields[:len(m.Fields)-1]
		s.note("%s: refused by schema validation: %v; not proposed", path, err)
		return false
	}
	switch {
	case fs.Structured > 0:
		s.note("%s: proposed as %s (%s); the %d JSON object/array value(s) will not cast and stay in unknown_fields", path, fs.Inferred, typeCounts(fs), fs.Structured)
	case fs.Inferred == TypeString && len(fs.Types) > 1:
		s.note("%s: proposed as string from mixed values (%s); pick another type by hand if the odd ones are device errors", path, typeCounts(fs))
	}
	return true
}

// owner returns the field of m whose name, alias or conversion key is name.
func owner(m *schema.Metric, name string) (schema.Field, bool) {
	for _, f := range m.Fields {
		if f.Name == name || slices.Contains(f.Aliases, name) {
			return f, true
		}
		if _, ok := f.Conversions[name]; ok {
			return f, true
		}
	}
	return schema.Field{}, false
}

// failedCast notes a field whose values failed to cast, with a retype hint.
func (s *suggester) failedCast(cur *schema.Tenant, mi int, metric, field string, fs *FieldStats) {
	m := cur.Metrics[mi]
	path := fmt.Sprintf("%s: %s.%s", s.tenant, m.Name, field)
	msg := fmt.Sprintf("%s: %d value(s) failed to cast to %s between %s and %s; samples %s",
		path, fs.Count, orUnknown(fs.Declared), fs.FirstSeen.UTC().Format("2006-01-02T15:04:05Z"),
		fs.LastSeen.UTC().Format("2006-01-02T15:04:05Z"), strings.Join(firstN(fs.Samples, 3), ", "))
	o, ok := owner(&m, field)
	switch {
	case !ok:
		msg += fmt.Sprintf(" — the field is no longer in version %d", cur.Version)
	case fs.Declared != "" && string(o.Type) != fs.Declared:
		msg += fmt.Sprintf(" — version %d already declares it %s", cur.Version, o.Type)
	default:
		msg += " — " + retypeHint(fs)
	}
	s.notes = append(s.notes, msg)
}

// retypeHint says which type would accept the values that failed.
func retypeHint(fs *FieldStats) string {
	switch {
	case fs.Structured > 0:
		return "JSON objects and arrays cast to no type; fix the device or leave them in unknown_fields"
	case fs.Inferred == "":
		return "the values are null"
	case fs.Declared == string(schema.Long) && (fs.Inferred == TypeDouble || fs.Inferred == TypeLong):
		return "consider type double"
	case fs.Declared == string(schema.Timestamp):
		return "check the device's time format (epoch s/ms/µs/ns or RFC 3339, 1970..2200), or consider type string"
	}
	return fmt.Sprintf("the values are %s; fix the device, or consider type string to keep them", typeCounts(fs))
}

func typeCounts(fs *FieldStats) string {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(fs.Types)) {
		parts = append(parts, fmt.Sprintf("%s %d", t, fs.Types[t]))
	}
	if fs.Structured > 0 {
		parts = append(parts, fmt.Sprintf("of which %d JSON objects/arrays", fs.Structured))
	}
	return strings.Join(parts, ", ")
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown type)"
	}
	return s
}
