package schema

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Prepare holds the rules every Store applies when recording next as the new
// version of a tenant whose current version is cur (nil for a new tenant):
//
//   - next must pass Validate and name the same tenant as cur;
//   - a metric or field may not simply disappear: it must be hidden, or
//     renamed keeping its old name as an alias;
//   - when nothing changed, Prepare returns cur and nil changes;
//   - otherwise it returns a copy of next with Version cur.Version+1 (1 for
//     a new tenant), UpdatedAt now (UTC, whole seconds), and HiddenAt set
//     to now for fields that became hidden, kept for fields that were
//     already hidden and cleared for visible ones. The Version, UpdatedAt and HiddenAt found in
//     next are ignored.
//
// next is not modified.
func Prepare(cur, next *Tenant, now time.Time) (*Tenant, []Change, error) {
	if err := next.Validate(); err != nil {
		return nil, nil, err
	}
	if cur != nil && cur.Tenant != next.Tenant {
		return nil, nil, fmt.Errorf("schema: cannot apply tenant %q over tenant %q", next.Tenant, cur.Tenant)
	}
	changes := Diff(cur, next)
	if err := refuseRemovals(next.Tenant, changes); err != nil {
		return nil, nil, err
	}
	if cur != nil && len(changes) == 0 {
		return cur, nil, nil
	}
	now = now.UTC().Truncate(time.Second)
	out := next.Clone()
	out.Version = 1
	if cur != nil {
		out.Version = cur.Version + 1
	}
	out.UpdatedAt = now
	stampHidden(cur, out, now)
	return out, changes, nil
}

func refuseRemovals(tenant string, changes []Change) error {
	var errs []string
	for _, c := range changes {
		if c.Op != OpRemove {
			continue
		}
		what := fmt.Sprintf("metric %q", c.Metric)
		if c.Field != "" {
			what = fmt.Sprintf("field %q", c.Metric+"."+c.Field)
		}
		errs = append(errs, what+" cannot be removed: hide it with `hidden: true` or rename it keeping the old name as an alias")
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New("schema: tenant " + tenant + ": " + strings.Join(errs, "; "))
}

// stampHidden sets HiddenAt on the fields of next from the matching fields
// of cur (following renames).
func stampHidden(cur, next *Tenant, now time.Time) {
	var oldMetrics []Metric
	if cur != nil {
		oldMetrics = cur.Metrics
	}
	metricPairs, _ := pairMetrics(oldMetrics, next.Metrics)
	for i := range next.Metrics {
		nm := &next.Metrics[i]
		fieldPairs, _ := pairFields(metricPairs[i].Fields, nm.Fields)
		for j := range nm.Fields {
			nf := &nm.Fields[j]
			of, existed := fieldPairs[j]
			switch {
			case !nf.Hidden:
				nf.HiddenAt = nil
			case existed && of.Hidden && of.HiddenAt != nil:
				at := *of.HiddenAt
				nf.HiddenAt = &at
			default:
				at := now
				nf.HiddenAt = &at
			}
		}
	}
}
