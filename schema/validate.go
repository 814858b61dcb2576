package schema

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

var (
	tenantIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// A canonical metric name names lake partitions (metric=NAME/), as a
	// tenant id does: the same rule.
	metricNameRe = tenantIDRe
	// A canonical field name is a column of the lake and of SQL: letters,
	// digits and '_', not starting with a digit.
	fieldNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// maxKeyLen bounds an alias or conversion key: a name a device sends.
const maxKeyLen = 256

// ReservedColumns are the column names of a lake (and staged) record that
// are not tenant fields. A canonical field name equal to one of them, in any
// letter case, would clash with it, so Validate refuses it (and
// schemachange.Suggest never proposes it).
var ReservedColumns = []string{
	"event_id", "tenant", "metric", "metric_alias", "timestamp",
	"unknown_fields", "schema_version", "ingest_time", "source",
}

// ValidateTenantID reports whether id may name a tenant. Tenant ids are used
// in file paths and keys, so they are restricted to lower-case letters,
// digits, '_' and '-' (first character a letter or digit, at most 63).
func ValidateTenantID(id string) error {
	if !tenantIDRe.MatchString(id) {
		return fmt.Errorf("invalid tenant id %q: want 1-63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// ValidationError lists every problem found in one tenant schema.
type ValidationError struct {
	Tenant   string
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("invalid schema for tenant %q: %s", e.Tenant, e.Problems[0])
	}
	return fmt.Sprintf("invalid schema for tenant %q (%d problems):\n  %s",
		e.Tenant, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Validate checks the schema and returns a *ValidationError listing all of
// its problems, or nil.
func (t *Tenant) Validate() error {
	v := &validator{}
	if err := ValidateTenantID(t.Tenant); err != nil {
		v.add("%v", err)
	}
	v.checkMetricNames(t.Metrics)
	for _, m := range t.Metrics {
		v.checkMetric(m)
	}
	v.checkKeys(t)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Tenant: t.Tenant, Problems: v.problems}
}

type validator struct{ problems []string }

func (v *validator) add(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// checkName reports an empty name or one with surrounding spaces.
func (v *validator) checkName(what, name string) bool {
	switch {
	case name == "":
		v.add("%s has an empty name", what)
	case strings.TrimSpace(name) != name:
		v.add("%s %q has leading or trailing spaces", what, name)
	default:
		return true
	}
	return false
}

// owner is who claimed a name: e.g. kind "alias", of `field "weather.temp"`.
type owner struct{ kind, of string }

func (o owner) phrase() string {
	switch o.kind {
	case "name":
		return "the name of " + o.of
	case "alias":
		return "an alias of " + o.of
	default:
		return "a conversion key of " + o.of
	}
}

// names is a namespace in which metric (or field) names, aliases and
// conversion keys must be unique.
type names map[string]owner

// claim records that o owns name, reporting a clash with an earlier owner.
func (v *validator) claim(ns names, name string, o owner) {
	prev, taken := ns[name]
	if !taken {
		ns[name] = o
		return
	}
	switch {
	case o.kind == "name" && prev.kind == "name":
		v.add("%s is declared twice", o.of)
	case prev == o:
		v.add("%s %q of %s is listed twice", o.kind, name, o.of)
	case prev.of == o.of:
		v.add("%s %q of %s is also its %s", o.kind, name, o.of, prev.kind)
	case o.kind == "name":
		v.add("%s clashes with %s %q of %s", o.of, prev.kind, name, prev.of)
	case prev.kind == "name":
		v.add("%s %q of %s is already %s", o.kind, name, o.of, prev.phrase())
	default:
		v.add("%s %q of %s is also %s", o.kind, name, o.of, prev.phrase())
	}
}

func (v *validator) checkMetricNames(metrics []Metric) {
	ns := names{}
	for i, m := range metrics {
		if v.checkName(fmt.Sprintf("metric #%d", i+1), m.Name) {
			if !metricNameRe.MatchString(m.Name) {
				v.add("metric name %q is not allowed: a metric name names lake folders, so it takes 1-63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit (keep other spellings as aliases)", m.Name)
			}
			v.claim(ns, m.Name, owner{"name", fmt.Sprintf("metric %q", m.Name)})
		}
	}
	for _, m := range metrics {
		of := fmt.Sprintf("metric %q", m.Name)
		for _, a := range m.Aliases {
			if v.checkName("alias of "+of, a) && v.checkKey("alias of "+of, a) {
				v.claim(ns, a, owner{"alias", of})
			}
		}
	}
}

// checkKey reports a name a device sends (an alias, a conversion key) that
// is over maxKeyLen bytes, holds a control character or '/', or is "." or
// "..".
func (v *validator) checkKey(what, k string) bool {
	switch {
	case len(k) > maxKeyLen:
		v.add("%s is %d bytes, over the limit of %d", what, len(k), maxKeyLen)
	case k == "." || k == ".." || strings.ContainsAny(k, "/\x00") || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		v.add("%s %q is not allowed: no '/', control characters, \".\" or \"..\"", what, k)
	default:
		return true
	}
	return false
}

func (v *validator) checkMetric(m Metric) {
	ns := names{}
	for i, f := range m.Fields {
		if v.checkName(fmt.Sprintf("field #%d of metric %q", i+1, m.Name), f.Name) {
			switch {
			case !fieldNameRe.MatchString(f.Name):
				v.add("field name %q of metric %q is not allowed: a field name is a column, so it takes 1-128 letters, digits or '_', not starting with a digit (keep other spellings as aliases)", f.Name, m.Name)
			case isReserved(f.Name):
				v.add("field name %q of metric %q is a column every lake table has (%s); name the field otherwise and keep %q as an alias", f.Name, m.Name, strings.Join(ReservedColumns, ", "), f.Name)
			}
			v.claim(ns, f.Name, fieldOwner("name", m, f))
		}
	}
	for _, f := range m.Fields {
		v.checkFieldNames(ns, m, f)
		v.checkFieldType(m, f)
	}
}

func fieldOwner(kind string, m Metric, f Field) owner {
	return owner{kind, fmt.Sprintf("field %q", m.Name+"."+f.Name)}
}

// checkFieldNames claims a field's aliases and conversion keys. A conversion
// key may repeat the field's own name or one of its aliases.
func (v *validator) checkFieldNames(ns names, m Metric, f Field) {
	own := map[string]bool{f.Name: true}
	for _, a := range f.Aliases {
		o := fieldOwner("alias", m, f)
		if v.checkName("alias of "+o.of, a) && v.checkKey("alias of "+o.of, a) {
			v.claim(ns, a, o)
			own[a] = true
		}
	}
	for _, k := range sortedKeys(f.Conversions) {
		o := fieldOwner("conversion", m, f)
		if !own[k] && v.checkName("conversion key of "+o.of, k) && v.checkKey("conversion key of "+o.of, k) {
			v.claim(ns, k, o)
		}
	}
}

func (v *validator) checkFieldType(m Metric, f Field) {
	of := fmt.Sprintf("field %q", m.Name+"."+f.Name)
	if !f.Type.Valid() {
		v.add("%s has type %q; want one of %s", of, f.Type, strings.Join(typeNames(), ", "))
		return
	}
	if len(f.Conversions) > 0 && f.Type != Long && f.Type != Double {
		v.add("%s has conversions but type %s; conversions need a long or double field", of, f.Type)
	}
	for _, k := range sortedKeys(f.Conversions) {
		c := f.Conversions[k]
		switch {
		case math.IsNaN(c.Scale) || math.IsInf(c.Scale, 0):
			v.add("conversion %q of %s has scale %v; it must be finite", k, of, c.Scale)
		case c.Scale == 0:
			v.add("conversion %q of %s has scale 0; omit scale for 1", k, of)
		}
		if math.IsNaN(c.Offset) || math.IsInf(c.Offset, 0) {
			v.add("conversion %q of %s has offset %v; it must be finite", k, of, c.Offset)
		}
	}
}

// checkKeys refuses metric and timestamp keys that are empty, repeated or
// also the name, alias or conversion key of a field.
func (v *validator) checkKeys(t *Tenant) {
	fieldNames := names{}
	for _, m := range t.Metrics {
		for _, f := range m.Fields {
			for _, n := range fieldKeys(f) {
				if _, ok := fieldNames[n.name]; !ok {
					fieldNames[n.name] = fieldOwner(n.kind, m, f)
				}
			}
		}
	}
	seen := map[string]string{}
	check := func(list string, keys []string, isDefault bool) {
		what := list
		if isDefault {
			what += " (default)"
		}
		for _, k := range keys {
			if !v.checkName("entry of "+list, k) {
				continue
			}
			if prev, ok := seen[k]; ok {
				v.add("%s entry %q is also in %s", list, k, prev)
				continue
			}
			seen[k] = list
			if o, ok := fieldNames[k]; ok {
				v.add("%s entry %q is also %s", what, k, o.phrase())
			}
		}
	}
	check("metric_keys", t.MetricKeysOrDefault(), len(t.MetricKeys) == 0)
	check("timestamp_keys", t.TimestampKeysOrDefault(), len(t.TimestampKeys) == 0)
}

type fieldKey struct{ name, kind string }

// fieldKeys lists every key a device may send for f.
func fieldKeys(f Field) []fieldKey {
	keys := []fieldKey{{f.Name, "name"}}
	for _, a := range f.Aliases {
		keys = append(keys, fieldKey{a, "alias"})
	}
	for _, k := range sortedKeys(f.Conversions) {
		keys = append(keys, fieldKey{k, "conversion"})
	}
	return keys
}

// isReserved reports whether name is a reserved column, in any letter case.
func isReserved(name string) bool {
	for _, c := range ReservedColumns {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

// Valid reports whether ft is one of the declared field types.
func (ft FieldType) Valid() bool {
	switch ft {
	case Boolean, Long, Double, String, Bytes, Timestamp:
		return true
	}
	return false
}

func typeNames() []string {
	return []string{string(Boolean), string(Long), string(Double), string(String), string(Bytes), string(Timestamp)}
}
