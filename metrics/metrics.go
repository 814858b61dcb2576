// Package metrics names Fineo's Beam counters and reads them back after a
// job, so that every job can print the same summary and tests can assert
// conservation: every input event ends as exactly one staged event, one
// customer error or one processing error.
package metrics

import (
	"fmt"
	"io"
	"sort"

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

// Counter returns the Beam counter of that name.
func Counter(name string) beam.Counter { return beam.NewCounter(Namespace, name) }

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

// Conserved reports whether every input event of a file job ended as
// exactly one staged event, customer error or processing error, after the
// archive writes.
func (s Summary) Conserved() bool {
	return s[EventsIn] == s[StagedWritten]+s[CustomerWritten]+s[ProcessingWritten]
}

// Print writes the counters, sorted, and the conservation check.
func (s Summary) Print(w io.Writer) {
	s.PrintCounters(w)
	verdict := "ok"
	if !s.Conserved() {
		verdict = "MISMATCH"
	}
	fmt.Fprintf(w, "  conservation: events_in %d = staged %d + customer errors %d + processing errors %d: %s\n",
		s[EventsIn], s[StagedWritten], s[CustomerWritten], s[ProcessingWritten], verdict)
}

// PrintCounters writes the counters, sorted.
func (s Summary) PrintCounters(w io.Writer) {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-28s %12d\n", n, s[n])
	}
}
