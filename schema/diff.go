package schema

import (
	"fmt"
	"slices"
	"strings"
)

// Change operations reported by Diff.
const (
	OpAdd        = "add"        // a metric or field was added
	OpRemove     = "remove"     // a metric or field was removed (Apply refuses these)
	OpRename     = "rename"     // Detail holds the old name
	OpRetype     = "retype"     // Detail is "old -> new"
	OpHide       = "hide"       // a field became hidden
	OpUnhide     = "unhide"     // a field is no longer hidden
	OpAliasAdd   = "alias+"     // Detail is the alias
	OpAliasDel   = "alias-"     // Detail is the alias
	OpConversion = "conversion" // Detail describes the conversion change
	OpKeys       = "keys"       // Detail is e.g. "metric_keys: [a] -> [b]"
)

// Change is one difference between two versions of a tenant's schema.
// Metric and Field are the new names; for a field add Detail is its type.
type Change struct {
	Op     string
	Metric string
	Field  string
	Detail string
}

func (c Change) String() string {
	subject := "metric " + c.Metric
	path := c.Metric
	if c.Field != "" {
		subject = "field " + c.Metric + "." + c.Field
		path = c.Metric + "." + c.Field
	}
	switch c.Op {
	case OpAdd:
		if c.Field != "" {
			return fmt.Sprintf("+ %s (%s)", subject, c.Detail)
		}
		return "+ " + subject
	case OpRemove:
		return "- " + subject
	case OpRename:
		if c.Field != "" {
			return fmt.Sprintf("~ field %s.%s renamed to %s", c.Metric, c.Detail, path)
		}
		return fmt.Sprintf("~ metric %s renamed to %s", c.Detail, c.Metric)
	case OpRetype:
		return fmt.Sprintf("~ %s: type %s", subject, c.Detail)
	case OpHide:
		return "- " + subject + " hidden"
	case OpUnhide:
		return "+ " + subject + " unhidden"
	case OpAliasAdd:
		return fmt.Sprintf("+ alias %s: %s", path, c.Detail)
	case OpAliasDel:
		return fmt.Sprintf("- alias %s: %s", path, c.Detail)
	case OpConversion:
		return fmt.Sprintf("~ conversion %s: %s", path, c.Detail)
	case OpKeys:
		return "~ " + c.Detail
	}
	return fmt.Sprintf("? %s %s %s", c.Op, path, c.Detail)
}

// Diff lists the changes that turn old into new, in the order of new's
// metrics and fields, removals last. old may be nil: everything is added.
// Store-managed values (Version, UpdatedAt, HiddenAt) are not compared.
//
// A metric (field) that disappears is reported as renamed when a metric
// (field of the same metric) that did not exist before lists the old name
// as an alias (or, for a field, as a conversion key).
func Diff(old, new *Tenant) []Change {
	if old == nil {
		old = &Tenant{Tenant: new.Tenant}
	}
	var cs []Change
	cs = append(cs, diffKeys("metric_keys", old.MetricKeysOrDefault(), new.MetricKeysOrDefault())...)
	cs = append(cs, diffKeys("timestamp_keys", old.TimestampKeysOrDefault(), new.TimestampKeysOrDefault())...)
	pairs, removed := pairMetrics(old.Metrics, new.Metrics)
	for i, nm := range new.Metrics {
		om, ok := pairs[i]
		switch {
		case !ok:
			cs = append(cs, Change{Op: OpAdd, Metric: nm.Name})
			om = Metric{Name: nm.Name}
		case om.Name != nm.Name:
			cs = append(cs, Change{Op: OpRename, Metric: nm.Name, Detail: om.Name})
		}
		cs = append(cs, diffMetric(om, nm)...)
	}
	for _, om := range removed {
		cs = append(cs, Change{Op: OpRemove, Metric: om.Name})
	}
	return cs
}

func diffKeys(name string, old, new []string) []Change {
	if slices.Equal(old, new) {
		return nil
	}
	detail := fmt.Sprintf("%s: [%s] -> [%s]", name, strings.Join(old, ", "), strings.Join(new, ", "))
	return []Change{{Op: OpKeys, Detail: detail}}
}

// pairMetrics maps the index of each new metric to the old metric it
// continues (same name, or renamed) and lists the old metrics that are gone.
func pairMetrics(old, new []Metric) (map[int]Metric, []Metric) {
	return pair(old, new, func(m Metric) string { return m.Name },
		func(m Metric) []string { return m.Aliases })
}

// pairFields is pairMetrics for the fields of one metric.
func pairFields(old, new []Field) (map[int]Field, []Field) {
	return pair(old, new, func(f Field) string { return f.Name }, fieldAliases)
}

func pair[T any](old, new []T, name func(T) string, aliases func(T) []string) (map[int]T, []T) {
	oldByName := make(map[string]int, len(old))
	for i, o := range old {
		oldByName[name(o)] = i
	}
	newNames := make(map[string]bool, len(new))
	for _, n := range new {
		newNames[name(n)] = true
	}
	used := make(map[int]bool, len(old))
	pairs := make(map[int]T, len(new))
	for i, n := range new {
		if j, ok := oldByName[name(n)]; ok {
			pairs[i], used[j] = old[j], true
		}
	}
	for i, n := range new {
		if _, existed := oldByName[name(n)]; existed {
			continue
		}
		for _, a := range aliases(n) {
			j, ok := oldByName[a]
			if ok && !used[j] && !newNames[a] {
				pairs[i], used[j] = old[j], true
				break
			}
		}
	}
	var removed []T
	for j, o := range old {
		if !used[j] {
			removed = append(removed, o)
		}
	}
	return pairs, removed
}

// fieldAliases lists a field's aliases and then its conversion keys.
func fieldAliases(f Field) []string {
	return append(slices.Clone(f.Aliases), sortedKeys(f.Conversions)...)
}

func diffMetric(om, nm Metric) []Change {
	var cs []Change
	for _, a := range diffStrings(om.Aliases, nm.Aliases, om.Name) {
		cs = append(cs, Change{Op: a.op, Metric: nm.Name, Detail: a.s})
	}
	pairs, removed := pairFields(om.Fields, nm.Fields)
	for i, nf := range nm.Fields {
		of, ok := pairs[i]
		switch {
		case !ok:
			cs = append(cs, Change{Op: OpAdd, Metric: nm.Name, Field: nf.Name, Detail: string(nf.Type)})
			of = Field{Name: nf.Name, Type: nf.Type}
		case of.Name != nf.Name:
			cs = append(cs, Change{Op: OpRename, Metric: nm.Name, Field: nf.Name, Detail: of.Name})
		}
		cs = append(cs, diffField(nm.Name, of, nf)...)
	}
	for _, of := range removed {
		cs = append(cs, Change{Op: OpRemove, Metric: nm.Name, Field: of.Name})
	}
	return cs
}

func diffField(metric string, of, nf Field) []Change {
	c := func(op, detail string) Change {
		return Change{Op: op, Metric: metric, Field: nf.Name, Detail: detail}
	}
	var cs []Change
	if of.Type != nf.Type {
		cs = append(cs, c(OpRetype, fmt.Sprintf("%s -> %s", of.Type, nf.Type)))
	}
	for _, a := range diffStrings(of.Aliases, nf.Aliases, of.Name) {
		cs = append(cs, c(a.op, a.s))
	}
	for _, k := range sortedKeys(unionKeys(of.Conversions, nf.Conversions)) {
		oc, inOld := of.Conversions[k]
		nc, inNew := nf.Conversions[k]
		switch {
		case !inOld:
			cs = append(cs, c(OpConversion, fmt.Sprintf("%s added (%s)", k, formatConversion(nc))))
		case !inNew:
			cs = append(cs, c(OpConversion, fmt.Sprintf("%s removed (was %s)", k, formatConversion(oc))))
		case oc != nc:
			cs = append(cs, c(OpConversion, fmt.Sprintf("%s: %s -> %s", k, formatConversion(oc), formatConversion(nc))))
		}
	}
	switch {
	case nf.Hidden && !of.Hidden:
		cs = append(cs, c(OpHide, ""))
	case of.Hidden && !nf.Hidden:
		cs = append(cs, c(OpUnhide, ""))
	}
	return cs
}

func formatConversion(c Conversion) string {
	return fmt.Sprintf("scale %v, offset %v", c.Scale, c.Offset)
}

type aliasChange struct{ op, s string }

// diffStrings lists aliases added to and removed from a list. The old name
// of a renamed item is not reported as an added alias: the rename says it.
func diffStrings(old, new []string, oldName string) []aliasChange {
	var out []aliasChange
	for _, s := range new {
		if !slices.Contains(old, s) && s != oldName {
			out = append(out, aliasChange{OpAliasAdd, s})
		}
	}
	for _, s := range old {
		if !slices.Contains(new, s) {
			out = append(out, aliasChange{OpAliasDel, s})
		}
	}
	return out
}

func unionKeys(a, b map[string]Conversion) map[string]bool {
	u := make(map[string]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}
