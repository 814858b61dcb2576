package schema

import (
	"maps"
	"slices"
)

// Clone returns a deep copy of t.
func (t *Tenant) Clone() *Tenant {
	if t == nil {
		return nil
	}
	c := *t
	c.MetricKeys = slices.Clone(t.MetricKeys)
	c.TimestampKeys = slices.Clone(t.TimestampKeys)
	c.Metrics = make([]Metric, len(t.Metrics))
	for i, m := range t.Metrics {
		c.Metrics[i] = m.clone()
	}
	return &c
}

func (m Metric) clone() Metric {
	m.Aliases = slices.Clone(m.Aliases)
	fields := make([]Field, len(m.Fields))
	for i, f := range m.Fields {
		fields[i] = f.clone()
	}
	m.Fields = fields
	return m
}

func (f Field) clone() Field {
	f.Aliases = slices.Clone(f.Aliases)
	f.Conversions = maps.Clone(f.Conversions)
	if f.HiddenAt != nil {
		at := *f.HiddenAt
		f.HiddenAt = &at
	}
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
