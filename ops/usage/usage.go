// Package usage turns a job's per-tenant counters (metrics.Summary, counters
// named "tenant.<id>.<stage>.<name>") into a usage report: printed in the
// job summary and written beside the archive as
// <archive>/_usage/<job>-<run>.json.
//
// File format (version 1):
//
//	{
//	  "version": 1, "job": "ingest", "run": "20260101T000000Z-1a2b3c",
//	  "started": "...", "finished": "...", "status": "ok|customer_errors|processing_errors|failed",
//	  "archive": "s3://bucket/prefix",
//	  "tenants": {
//	    "harbor": {"stage1": {"records": 10, "raw_bytes": 2048, "events": 12, "staged": 11,
//	                          "customer_errors": {"unknown_metric": 1}}},
//	    "_unknown": {"stage1": {...}, "read": {"processing_errors": {"read_failed": 1}}}
//	  },
//	  "totals": {"events_in": 12, ...}
//	}
//
// Errors with no known tenant (malformed JSON, a missing or unregistered
// tenant, unreadable files) count under "_unknown".
package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/metrics"
)

// Dir is the folder of usage files under the archive root.
const Dir = "_usage"

// Report is one job run's usage.
type Report struct {
	Version  int                          `json:"version"`
	Job      string                       `json:"job"`
	Run      string                       `json:"run"`
	Started  time.Time                    `json:"started"`
	Finished time.Time                    `json:"finished"`
	Status   string                       `json:"status"`
	Archive  string                       `json:"archive,omitempty"`
	Lake     string                       `json:"lake,omitempty"`
	Tenants  map[string]map[string]*Stage `json:"tenants"` // tenant → stage → usage
	Totals   map[string]int64             `json:"totals"`  // the job-wide counters
}

// Stage is one tenant's usage in one stage: plain counts plus errors by kind.
type Stage struct {
	Counts           map[string]int64
	CustomerErrors   map[string]int64
	ProcessingErrors map[string]int64
}

// MarshalJSON writes the counts flat beside "customer_errors" and
// "processing_errors".
func (s *Stage) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range s.Counts {
		m[k] = v
	}
	if len(s.CustomerErrors) > 0 {
		m["customer_errors"] = s.CustomerErrors
	}
	if len(s.ProcessingErrors) > 0 {
		m["processing_errors"] = s.ProcessingErrors
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stage) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*s = Stage{Counts: map[string]int64{}}
	for k, v := range m {
		var err error
		switch k {
		case "customer_errors":
			err = json.Unmarshal(v, &s.CustomerErrors)
		case "processing_errors":
			err = json.Unmarshal(v, &s.ProcessingErrors)
		default:
			var n int64
			err = json.Unmarshal(v, &n)
			s.Counts[k] = n
		}
		if err != nil {
			return fmt.Errorf("usage: %s: %w", k, err)
		}
	}
	return nil
}

// FromSummary builds the per-tenant part of a report from a job's counters.
func FromSummary(sum metrics.Summary) (tenants map[string]map[string]*Stage, totals map[string]int64) {
	tenants = map[string]map[string]*Stage{}
	totals = map[string]int64{}
	for n, v := range sum {
		if !strings.HasPrefix(n, metrics.TenantPrefix) {
			totals[n] = v
		}
	}
	for t, stages := range sum.Tenants() {
		tenants[t] = map[string]*Stage{}
		for st, names := range stages {
			s := &Stage{Counts: map[string]int64{}}
			for name, v := range names {
				switch {
				case strings.HasPrefix(name, metrics.CustomerErrorPfx):
					if s.CustomerErrors == nil {
						s.CustomerErrors = map[string]int64{}
					}
					s.CustomerErrors[strings.TrimPrefix(name, metrics.CustomerErrorPfx)] += v
				case strings.HasPrefix(name, metrics.ProcessingErrorPfx):
					if s.ProcessingErrors == nil {
						s.ProcessingErrors = map[string]int64{}
					}
					s.ProcessingErrors[strings.TrimPrefix(name, metrics.ProcessingErrorPfx)] += v
				default:
					s.Counts[name] += v
				}
			}
			tenants[t][st] = s
		}
	}
	return tenants, totals
}

// CustomerErrors returns, per tenant, customer error events by kind (every stage).
func (r *Report) CustomerErrors() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for t, stages := range r.Tenants {
		for _, s := range stages {
			for k, n := range s.CustomerErrors {
				if n == 0 {
					continue
				}
				if out[t] == nil {
					out[t] = map[string]int64{}
				}
				out[t][k] += n
			}
		}
	}
	return out
}

// ProcessingErrors returns processing error events by kind, over all tenants.
func (r *Report) ProcessingErrors() map[string]int64 {
	out := map[string]int64{}
	for _, stages := range r.Tenants {
		for _, s := range stages {
			for k, n := range s.ProcessingErrors {
				out[k] += n
			}
		}
	}
	return out
}

// Path is where a run's usage file lands under the archive root.
func Path(job, run string) string { return Dir + "/" + job + "-" + run + ".json" }

// Write stores the report under the archive root and returns its location.
func Write(ctx context.Context, archiveRoot string, r *Report) (string, error) {
	st, err := blob.Open(ctx, archiveRoot)
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	p := Path(r.Job, r.Run)
	w, err := st.Create(ctx, p)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		w.Abort()
		return "", err
	}
	if err := w.Commit(); err != nil {
		return "", err
	}
	return st.URL(p), nil
}

// Print writes the per-tenant table: one line per tenant and stage with
// its counts (in the given order first, then the rest sorted), then its
// errors by kind.
func (r *Report) Print(w io.Writer, order []string) {
	if len(r.Tenants) == 0 {
		return
	}
	fmt.Fprintln(w, "\nper-tenant usage:")
	for _, t := range sortedKeys(r.Tenants) {
		stages := r.Tenants[t]
		for _, st := range sortedKeys(stages) {
			s := stages[st]
			var parts []string
			seen := map[string]bool{}
			for _, k := range order {
				if v, ok := s.Counts[k]; ok {
					parts = append(parts, fmt.Sprintf("%s %d", k, v))
					seen[k] = true
				}
			}
			for _, k := range sortedKeys(s.Counts) {
				if !seen[k] {
					parts = append(parts, fmt.Sprintf("%s %d", k, s.Counts[k]))
				}
			}
			for _, e := range []struct {
				label string
				m     map[string]int64
			}{{"customer errors", s.CustomerErrors}, {"processing errors", s.ProcessingErrors}} {
				if len(e.m) == 0 {
					continue
				}
				var ks []string
				for _, k := range sortedKeys(e.m) {
					ks = append(ks, fmt.Sprintf("%s %d", k, e.m[k]))
				}
				parts = append(parts, e.label+": "+strings.Join(ks, ", "))
			}
			fmt.Fprintf(w, "  %-20s %-7s %s\n", t, st, strings.Join(parts, "; "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
