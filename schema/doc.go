// Package schema defines, validates, versions and stores the per-tenant
// schemas of Fineo Ingest.
//
// # Late binding
//
// Devices send whatever keys they like. A tenant's schema is bound to the
// data late, when records are read, not when devices are provisioned: the
// value of one of the tenant's metric keys (default "metrictype") names the
// metric, either by its canonical name or by one of its aliases, and each
// key of the record is matched to a canonical field by name, alias or
// conversion key. A conversion turns a value sent under an alias into the
// field's canonical unit (canonical = value*scale + offset). Keys that match
// no field (or match a hidden field) are kept as unknown fields, so nothing
// a device sends is lost and a later schema version can still claim it.
//
// # Versioning
//
// A [Tenant] value is one version of a tenant's schema. Versions are only
// created by [Store.Apply], which validates the new schema, diffs it against
// the current version ([Diff]), refuses to drop a field or metric outright
// (hide it with hidden: true, or rename it keeping the old name as an
// alias, so data already written under the old name stays readable), and
// records the result as version current+1 with its UpdatedAt and, for newly
// hidden fields, HiddenAt stamped by the store. [Prepare] holds those rules
// so that every Store implementation applies them identically.
//
// # File format
//
// [Parse] reads the YAML (or JSON) form; unknown keys are refused. A
// conversion whose scale is omitted has scale 1; an explicit scale of 0 is
// kept and refused by [Tenant.Validate], because it would turn every value
// into the offset.
package schema
