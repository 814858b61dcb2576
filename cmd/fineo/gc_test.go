package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"2147483648\n", 2 << 30},
		{"max\n", 0},
		{"9223372036854771712\n", 0}, // cgroup v1: no limit
		{"", 0},
		{"-1", 0},
		{"junk", 0},
	} {
		if got := parseCgroupLimit(tc.in); got != tc.want {
			t.Errorf("parseCgroupLimit(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestParseMemTotal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"MemTotal:       24683656 kB\nMemFree: 1 kB\n", 24683656 * 1024},
		{"MemFree: 1 kB\nMemTotal: 2048 kB\n", 2048 * 1024},
		{"MemFree: 1 kB\n", 0},
		{"MemTotal: x kB\n", 0},
	} {
		if got := parseMemTotal(strings.NewReader(tc.in)); got != tc.want {
			t.Errorf("parseMemTotal(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestTuneGC: fineo batch's GOGC and memory limit apply unless the
// environment sets its own; other commands keep Go's.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(1 << 62)
	tuneGC("ingest")
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d after tuneGC(ingest), want Go's 100", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<62 {
		t.Errorf("memory limit %d after tuneGC(ingest)", got)
	}
	tuneGC("batch")
	if got := debug.SetGCPercent(100); got != batchGCPercent {
		t.Errorf("GC percent %d, want %d", got, batchGCPercent)
	}
	if m := availableMemory(); m > 0 {
		if got := debug.SetMemoryLimit(-1); got != m/2 {
			t.Errorf("memory limit %d, want %d (half of %d)", got, m/2, m)
		}
	}

	// GOMEMLIMIT of the user's: GOGC still 400, the limit theirs.
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(1 << 30)
	tuneGC("batch")
	if got := debug.SetGCPercent(100); got != batchGCPercent {
		t.Errorf("GC percent %d with only GOMEMLIMIT set, want %d", got, batchGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit %d with GOMEMLIMIT=1GiB set", got)
	}

	// GOGC of the user's (off here): nothing is touched, the limit neither.
	t.Setenv("GOGC", "off")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(1 << 62)
	tuneGC("batch")
	if got := debug.SetGCPercent(100); got != -1 {
		t.Errorf("GC percent %d with GOGC=off set", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<62 {
		t.Errorf("memory limit %d with GOGC=off set, want none", got)
	}
}
