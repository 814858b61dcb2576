// Package metrics names Fineo's Beam counters and reads them back after a
// job, so that every job can print the same summary and tests can assert
// conservation: every input event ends as exactly one staged event, one
// customer error or one processing error.
package metrics

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
)

// Namespace of every Fineo counter.
const Namespace = "fineo"

// Counter names.
const (
	FilesIn           = "files_in"
	RecordsIn         = "records_in"
	BytesIn           = "bytes_in"
	EventsIn          = "events_in"
	Staged            = "staged"          // stage-1 output events
	CustomerErrors    = "customer_errors" // events
	ProcessingErrors  = "processing_errors"
	Uncastable        = "uncastable_values"
	WithUnknown       = "events_with_unknown_fields"
	StagedWritten     = "staged_written"
	CustomerWritten   = "customer_errors_written"
	ProcessingWritten = "processing_errors_written"
	FilesWritten      = "files_written"
	WriteRetries      = "write_retries"
)

// Count is a Beam counter of Fineo's namespace. Its Inc also tells the
// process-local observer, if one is set (see SetObserver).
type Count struct {
	beam.Counter
	name string
}

// Inc adds n to the counter.
func (c Count) Inc(ctx context.Context, n int64) {
	c.Counter.Inc(ctx, n)
	local.Lock()
	local.m[c.name] += n
	local.Unlock()
	if f := observer.Load(); f != nil {
		(*f)(c.name, n)
	}
}

// local holds the process-local totals of every Fineo counter.
var local = struct {
	sync.Mutex
	m Summary
}{m: Summary{}}

// Local returns the process-local totals of the Fineo counters: what the
// DoFns that ran in this process added. For a job whose workers all ran
// in this process (the direct runner, embedded prism, LOOPBACK), the
// difference of two snapshots around the run is the job's counters. The
// streaming job reports it instead of the runner's metrics because
// prism v2.77.0 can lose counter values: when two bundles first report a
// counter at the same moment, their values are kept in a map keyed by the
// counter's short id until its metadata arrives, and one overwrites the
// other (jobservices/metrics.go, unprocessedPayloads).
func Local() Summary {
	local.Lock()
	defer local.Unlock()
	out := make(Summary, len(local.m))
	for k, v := range local.m {
		out[k] = v
	}
	return out
}

// Since returns s minus an earlier snapshot, without zero entries.
func (s Summary) Since(before Summary) Summary {
	out := Summary{}
	for k, v := range s {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Counter returns the Beam counter of that name.
func Counter(name string) Count { return Count{beam.NewCounter(Namespace, name), name} }

// SetGauge sets the Beam gauge name/key of Fineo's namespace to v, and
// keeps v as this process's value of name for key (Gauges): what a
// metrics endpoint of this process shows.
func SetGauge(ctx context.Context, name, key string, v int64) {
	beam.NewGauge(Namespace, name+"/"+key).Set(ctx, v)
	gauges.Lock()
	if gauges.m[name] == nil {
		gauges.m[name] = map[string]int64{}
	}
	gauges.m[name][key] = v
	gauges.Unlock()
}

// Gauges returns a copy of this process's gauge values: name → key → value.
func Gauges() map[string]map[string]int64 {
	gauges.Lock()
	defer gauges.Unlock()
	out := make(map[string]map[string]int64, len(gauges.m))
	for n, byKey := range gauges.m {
		c := make(map[string]int64, len(byKey))
		for k, v := range byKey {
			c[k] = v
		}
		out[n] = c
	}
	return out
}

var gauges = struct {
	sync.Mutex
	m map[string]map[string]int64
}{m: map[string]map[string]int64{}}

var observer atomic.Pointer[func(name string, n int64)]

// SetObserver makes every Inc of a Fineo counter in this process also call
// f (nil: none). Counters themselves are only readable when a job ends on
// the direct runner; the launching process uses this to show progress
// while DoFns run in-process. Remote workers never call it.
func SetObserver(f func(name string, n int64)) {
	if f == nil {
		observer.Store(nil)
		return
	}
	observer.Store(&f)
}

// Per-tenant counters are named "tenant.<id>.<stage>.<name>": tenant ids
// match [a-z0-9][a-z0-9_-]* (no dots), stages are plain words, and names are
// a plain word or "customer_error.<kind>" / "processing_error.<kind>".
// Records with no known tenant count under UnknownTenant.
const (
	TenantPrefix       = "tenant."
	UnknownTenant      = "_unknown"
	CustomerErrorPfx   = "customer_error."
	ProcessingErrorPfx = "processing_error."
)

// TenantCounterName is the name of a per-tenant counter.
func TenantCounterName(tenant, stage, name string) string {
	if tenant == "" {
		tenant = UnknownTenant
	}
	return TenantPrefix + tenant + "." + stage + "." + name
}

// TenantCounter returns the per-tenant counter of tenant, stage and name.
func TenantCounter(tenant, stage, name string) Count {
	return Counter(TenantCounterName(tenant, stage, name))
}

// Tenants returns the per-tenant counters: tenant → stage → name → value.
func (s Summary) Tenants() map[string]map[string]map[string]int64 {
	out := map[string]map[string]map[string]int64{}
	for n, v := range s {
		rest, ok := strings.CutPrefix(n, TenantPrefix)
		if !ok {
			continue
		}
		tenant, rest, ok1 := strings.Cut(rest, ".")
		stage, name, ok2 := strings.Cut(rest, ".")
		if !ok1 || !ok2 || tenant == "" || stage == "" || name == "" {
			continue
		}
		if out[tenant] == nil {
			out[tenant] = map[string]map[string]int64{}
		}
		if out[tenant][stage] == nil {
			out[tenant][stage] = map[string]int64{}
		}
		out[tenant][stage][name] += v
	}
	return out
}

// Summary is a job's counters by name, summed over steps.
type Summary map[string]int64

// FromResult collects the Fineo counters of a finished pipeline.
func FromResult(pr beam.PipelineResult) Summary {
	s := Summary{}
	if pr == nil {
		return s
	}
	for _, c := range pr.Metrics().AllMetrics().Counters() {
		if c.Key.Namespace != Namespace {
			continue
		}
		s[c.Key.Name] += c.Result()
	}
	return s
}

// Equation is a conservation equation between counts: Total is the sum
// of Parts.
type Equation struct {
	Total Term
	Parts []Term
}

// Term is one labelled count of an Equation.
type Term struct {
	Label string
	N     int64
}

// Sum returns the sum of Parts.
func (e Equation) Sum() int64 {
	var n int64
	for _, p := range e.Parts {
		n += p.N
	}
	return n
}

// Holds reports whether Total is the sum of Parts.
func (e Equation) Holds() bool { return e.Total.N == e.Sum() }

// String renders e with its verdict, e.g.
// "events_in 10 = staged 7 + customer errors 3: ok" (or "MISMATCH").
func (e Equation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d =", e.Total.Label, e.Total.N)
	for i, p := range e.Parts {
		if i > 0 {
			b.WriteString(" +")
		}
		fmt.Fprintf(&b, " %s %d", p.Label, p.N)
	}
	if e.Holds() {
		b.WriteString(": ok")
	} else {
		b.WriteString(": MISMATCH")
	}
	return b.String()
}

// Print writes e as a job's conservation line.
func (e Equation) Print(w io.Writer) {
	fmt.Fprintf(w, "  conservation: %s\n", e)
}

// Events is the equation of a file job: every input event ended as exactly
// one staged event, customer error or processing error, after the archive
// writes.
func (s Summary) Events() Equation {
	return Equation{Term{"events_in", s[EventsIn]},
		[]Term{{"staged", s[StagedWritten]}, {"customer errors", s[CustomerWritten]}, {"processing errors", s[ProcessingWritten]}}}
}

// Conserved reports whether the counters of a file job keep Events.
func (s Summary) Conserved() bool { return s.Events().Holds() }

// Print writes the counters, sorted, and the conservation check.
func (s Summary) Print(w io.Writer) {
	s.PrintCounters(w)
	s.Events().Print(w)
}

// PrintCounters writes the job-wide counters, sorted. Per-tenant counters
// are left out (see Tenants).
func (s Summary) PrintCounters(w io.Writer) {
	names := make([]string, 0, len(s))
	for n := range s {
		if strings.HasPrefix(n, TenantPrefix) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-28s %12d\n", n, s[n])
	}
}
