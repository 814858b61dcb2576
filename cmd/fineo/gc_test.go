package main

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

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
	if m, err := availableMemory(); err == nil {
		want, _ := memlimit.ApplyRatio(availableMemory, batchMemoryShare)()
		if got := debug.SetMemoryLimit(-1); got != int64(want) {
			t.Errorf("memory limit %d, want %d (half of %d)", got, want, m)
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

// TestBatchMemory: the partition budget is the flag's, else a share of the
// batch's soft limit per CPU, and the soft limit is lowered to about three
// budgets per CPU unless the user set GOGC or GOMEMLIMIT.
func TestBatchMemory(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	n := int64(runtime.GOMAXPROCS(0))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	if got := batchBudget(200 << 20); got != 200<<20 {
		t.Errorf("budget %d with --memory-budget 200MiB", got)
	}
	debug.SetMemoryLimit(n * 4 * (64 << 20))
	if got := batchBudget(0); got != 64<<20 {
		t.Errorf("budget %d under a limit of %d, want 64 MiB", got, n*4*(64<<20))
	}
	debug.SetMemoryLimit(1 << 40)
	fitBatchMemory(64 << 20)
	if got, want := debug.SetMemoryLimit(-1), 3*n*(64<<20)+128<<20; got != want {
		t.Errorf("limit %d after fitting 64 MiB budgets, want %d", got, want)
	}
	t.Setenv("GOMEMLIMIT", "1TiB")
	debug.SetMemoryLimit(1 << 40)
	fitBatchMemory(64 << 20)
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("limit %d: the user's GOMEMLIMIT was lowered", got)
	}
}
