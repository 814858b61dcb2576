package metrics

import (
	"bytes"
	"strings"
	"testing"
)

// TestPrintConservation pins the file jobs' conservation line.
func TestPrintConservation(t *testing.T) {
	check := func(s Summary, want string) {
		t.Helper()
		var b bytes.Buffer
		s.Print(&b)
		line := b.String()[strings.Index(b.String(), "  conservation:"):]
		if line != want || s.Conserved() != strings.HasSuffix(want, ": ok\n") {
			t.Errorf("%v: %q (conserved %v), want %q", s, line, s.Conserved(), want)
		}
	}
	check(Summary{EventsIn: 5, StagedWritten: 2, CustomerWritten: 2, ProcessingWritten: 1},
		"  conservation: events_in 5 = staged 2 + customer errors 2 + processing errors 1: ok\n")
	check(Summary{EventsIn: 5, StagedWritten: 2},
		"  conservation: events_in 5 = staged 2 + customer errors 0 + processing errors 0: MISMATCH\n")
}
