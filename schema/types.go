package schema

import "time"

// FieldType is the declared type of a canonical field.
type FieldType string

// The field types a schema may declare.
const (
	Boolean   FieldType = "boolean"
	Long      FieldType = "long"
	Double    FieldType = "double"
	String    FieldType = "string"
	Bytes     FieldType = "bytes"
	Timestamp FieldType = "timestamp" // stored as UTC epoch milliseconds
)

// Conversion turns a value sent under an alias into the canonical unit:
// canonical = value*Scale + Offset. A zero Scale means 1.
type Conversion struct {
	Scale  float64 `json:"scale" yaml:"scale"`
	Offset float64 `json:"offset,omitempty" yaml:"offset,omitempty"`
}

// Field is one canonical field of a metric.
type Field struct {
	Name    string    `json:"name" yaml:"name"`
	Type    FieldType `json:"type" yaml:"type"`
	Aliases []string  `json:"aliases,omitempty" yaml:"aliases,omitempty"`
	// Conversions are keyed by the name a device sends (an alias, which need
	// not also be listed in Aliases, or the canonical name itself).
	Conversions map[string]Conversion `json:"conversions,omitempty" yaml:"conversions,omitempty"`
	// Hidden fields are no longer part of the typed output; values sent
	// under their names are kept in unknown_fields.
	Hidden   bool       `json:"hidden,omitempty" yaml:"hidden,omitempty"`
	HiddenAt *time.Time `json:"hidden_at,omitempty" yaml:"hidden_at,omitempty"`
}

// Metric is one canonical metric type of a tenant.
type Metric struct {
	Name    string   `json:"name" yaml:"name"`
	Aliases []string `json:"aliases,omitempty" yaml:"aliases,omitempty"`
	Fields  []Field  `json:"fields" yaml:"fields"`
}

// Tenant is one version of a tenant's schema: the unit that is stored,
// versioned and applied.
type Tenant struct {
	Tenant string `json:"tenant" yaml:"tenant"`
	// Version is assigned by the store on Apply (1, 2, ...). A file that was
	// never applied through a store is version 0 until it is.
	Version       int       `json:"version,omitempty" yaml:"version,omitempty"`
	UpdatedAt     time.Time `json:"updated_at,omitzero" yaml:"updated_at,omitempty"`
	MetricKeys    []string  `json:"metric_keys,omitempty" yaml:"metric_keys,omitempty"`
	TimestampKeys []string  `json:"timestamp_keys,omitempty" yaml:"timestamp_keys,omitempty"`
	Metrics       []Metric  `json:"metrics" yaml:"metrics"`
}

// Default keys used when a tenant declares none.
var (
	DefaultMetricKeys    = []string{"metrictype"}
	DefaultTimestampKeys = []string{"timestamp"}
)

// MetricKeysOrDefault returns the tenant's metric keys, or the default.
func (t *Tenant) MetricKeysOrDefault() []string {
	if len(t.MetricKeys) == 0 {
		return DefaultMetricKeys
	}
	return t.MetricKeys
}

// TimestampKeysOrDefault returns the tenant's timestamp keys, or the default.
func (t *Tenant) TimestampKeysOrDefault() []string {
	if len(t.TimestampKeys) == 0 {
		return DefaultTimestampKeys
	}
	return t.TimestampKeys
}
