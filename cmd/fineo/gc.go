package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/fineo-io/ingest/transforms/lakebuild"
)

// batchGCPercent is the GOGC `fineo batch` runs with unless GOGC is set.
// A batch keeps little alive between collections (a day's staged records,
// a partition's columns) and allocates fast: at Go's default of 100 the
// collector took a tenth of its CPU, in marking and in the write barriers
// it turns on while it marks. At 400 the 1M-line bench's batch used 13%
// less CPU and its peak RSS went from 0.31 to 0.52 GB. Ingest gained
// nothing measurable (3M lines: 22.97 s user CPU at 100, 22.64 at 200,
// 22.72 at 400) and its peak RSS grew from 0.98 to 1.3 GB, so the other
// commands keep Go's default.
const batchGCPercent = 400

// batchMemoryShare is the share of the memory this process may use that
// `fineo batch` sets as its soft memory limit.
const batchMemoryShare = 0.5

// availableMemory reports the memory this process may use: its cgroup's
// limit (v1 or v2, nested cgroups included), else the machine's.
var availableMemory = memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)

// tuneGC sets the collector for command cmd: for batch, unless GOGC is
// set, GOGC=batchGCPercent and, unless GOMEMLIMIT is set, a soft memory
// limit of batchMemoryShare of availableMemory. The limit makes the
// collector run as often as it must to stay under it, so the larger GOGC
// costs memory only where it is free. A GOGC of the user's own is left
// alone, limit and all.
func tuneGC(cmd string) {
	if cmd != "batch" || os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(batchGCPercent)
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	// An error means no limit is known: the collector then runs on GOGC
	// alone.
	if limit, err := memlimit.ApplyRatio(availableMemory, batchMemoryShare)(); err == nil {
		debug.SetMemoryLimit(int64(limit))
	}
}

// batchBudget returns the memory budget of one lake partition: the
// --memory-budget given, else lakebuild's share of the memory the batch
// may use (its soft limit, set by tuneGC or GOMEMLIMIT) for one partition
// per CPU at once. The launcher decides it, so every worker of a portable
// job splits partitions alike.
func batchBudget(flagged int64) int64 {
	if flagged > 0 {
		return flagged
	}
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		if a, err := availableMemory(); err == nil {
			limit = int64(float64(a) * batchMemoryShare)
		}
	}
	return lakebuild.BudgetFor(limit, runtime.GOMAXPROCS(0))
}

// fitBatchMemory lowers the batch's soft memory limit (tuneGC's) to what
// one partition per CPU at budget bytes each needs, with room for the
// collector: the limit, not GOGC=400, then bounds the peak (measured:
// bench/RESULTS.md, B5). A GOGC or GOMEMLIMIT of the user's own is left
// alone.
func fitBatchMemory(budget int64) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	want := 3*int64(runtime.GOMAXPROCS(0))*budget + 128<<20
	if cur := debug.SetMemoryLimit(-1); want < cur {
		debug.SetMemoryLimit(want)
	}
}
