// Package progress shows how far a long bounded job has got, on stderr.
//
// Beam's counters can only be read when a job ends on the direct runner,
// so progress comes from the DoFns themselves: they add to package-level
// counters here (Add), and a goroutine started by the launching process
// (Start) prints a line at most every 2 seconds while anything moves.
// Nothing prints unless Start was called, so DoFns running in a remote SDK
// worker (a portable runner, Dataflow, or a prism/Flink worker process)
// never write progress lines: they log instead (see jsonlio.Options.Progress),
// and the runner's own UI shows the job's progress.
//
// A line looks like:
//
//	ingest: 1/2 files, 12.0 MiB/45.3 MiB (26%), 52,100 events, 26,040 events/s, elapsed 2s, ETA 6s
//	batch: 120/387 days (31%), 2,101,300 staged events, 70,043 events/s, elapsed 30s, ETA 1m7s
package progress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Field is one of the progress counters.
type Field int

// Progress counters.
const (
	Files      Field = iota // input files done
	Bytes                   // input bytes read (as stored: compressed bytes of gzip files)
	Events                  // events done
	Partitions              // lake partitions built (batch)
	nFields
)

// Totals is what the launcher knows before the job runs; a zero total is unknown.
type Totals struct {
	Files      int64
	Bytes      int64
	Partitions int64
}

// Snapshot is the counters at one moment.
type Snapshot [nFields]int64

// Interval is the shortest time between two lines.
var Interval = 2 * time.Second

var (
	counts  [nFields]atomic.Int64
	running atomic.Bool
	mu      sync.Mutex
	stopFn  func()
)

// Add adds n to a counter. It is a no-op unless Start has run in this
// process, and cheap enough to call per chunk.
func Add(f Field, n int64) {
	if running.Load() {
		counts[f].Add(n)
	}
}

// Running reports whether this process shows progress (Start was called and
// Stop was not).
func Running() bool { return running.Load() }

// Current returns the counters now.
func Current() Snapshot {
	var s Snapshot
	for i := range counts {
		s[i] = counts[i].Load()
	}
	return s
}

// Start resets the counters and starts printing lines about job to w, one
// per Interval at most and only when a counter moved. asJSON prints each
// line as a slog JSON record (msg "progress") instead of text. Stop ends it.
func Start(w io.Writer, job string, t Totals, asJSON bool) {
	mu.Lock()
	defer mu.Unlock()
	if stopFn != nil {
		stopFn()
	}
	for i := range counts {
		counts[i].Store(0)
	}
	running.Store(true)
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var jl *slog.Logger
	if asJSON {
		jl = slog.New(slog.NewJSONHandler(w, nil))
	}
	go func() {
		defer wg.Done()
		tick := time.NewTicker(Interval)
		defer tick.Stop()
		var last Snapshot
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			s := Current()
			if s == last {
				continue
			}
			last = s
			el := time.Since(start)
			if jl != nil {
				jl.LogAttrs(context.Background(), slog.LevelInfo, "progress", Attrs(job, t, s, el)...)
			} else {
				fmt.Fprintln(w, Line(job, t, s, el))
			}
		}
	}()
	stopFn = func() {
		running.Store(false)
		close(done)
		wg.Wait()
	}
}

// Stop stops printing. It is safe to call when Start was not called.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if stopFn != nil {
		stopFn()
		stopFn = nil
	}
}

// ETA estimates the time left when done of total units took elapsed, or
// returns false when it cannot (nothing done yet, or no total).
func ETA(done, total int64, elapsed time.Duration) (time.Duration, bool) {
	if total <= 0 || done <= 0 || elapsed <= 0 {
		return 0, false
	}
	if done >= total {
		return 0, true
	}
	left := float64(total-done) * float64(elapsed) / float64(done)
	return time.Duration(left).Round(time.Second), true
}

// eta picks the measure the job knows a total of: bytes for ingest,
// partitions for batch, then files.
func eta(t Totals, s Snapshot, el time.Duration) (time.Duration, bool) {
	switch {
	case t.Bytes > 0:
		return ETA(s[Bytes], t.Bytes, el)
	case t.Partitions > 0:
		return ETA(s[Partitions], t.Partitions, el)
	case t.Files > 0:
		return ETA(s[Files], t.Files, el)
	}
	return 0, false
}

// Line formats one progress line.
func Line(job string, t Totals, s Snapshot, elapsed time.Duration) string {
	var parts []string
	if t.Files > 0 || s[Files] > 0 {
		parts = append(parts, fmt.Sprintf("%s files", of(s[Files], t.Files, false)))
	}
	if t.Bytes > 0 || s[Bytes] > 0 {
		parts = append(parts, of(s[Bytes], t.Bytes, true))
	}
	if t.Partitions > 0 || s[Partitions] > 0 {
		parts = append(parts, fmt.Sprintf("%s partitions", of(s[Partitions], t.Partitions, false)))
		if t.Partitions > 0 {
			parts[len(parts)-1] += fmt.Sprintf(" (%d%%)", pct(s[Partitions], t.Partitions))
		}
	}
	noun := "events"
	if t.Partitions > 0 || s[Partitions] > 0 {
		noun = "staged events"
	}
	parts = append(parts, fmt.Sprintf("%s %s", group(s[Events]), noun))
	if sec := elapsed.Seconds(); sec > 0 {
		parts = append(parts, fmt.Sprintf("%s events/s", group(int64(float64(s[Events])/sec))))
	}
	parts = append(parts, "elapsed "+elapsed.Round(time.Second).String())
	if d, ok := eta(t, s, elapsed); ok {
		parts = append(parts, "ETA "+d.String())
	}
	return job + ": " + strings.Join(parts, ", ")
}

// Attrs is Line's content as slog attributes.
func Attrs(job string, t Totals, s Snapshot, elapsed time.Duration) []slog.Attr {
	a := []slog.Attr{
		slog.String("job", job),
		slog.Int64("files_done", s[Files]), slog.Int64("files_total", t.Files),
		slog.Int64("bytes_done", s[Bytes]), slog.Int64("bytes_total", t.Bytes),
		slog.Int64("partitions_done", s[Partitions]), slog.Int64("partitions_total", t.Partitions),
		slog.Int64("events", s[Events]),
		slog.Float64("elapsed_s", elapsed.Seconds()),
	}
	if sec := elapsed.Seconds(); sec > 0 {
		a = append(a, slog.Float64("events_per_s", float64(s[Events])/sec))
	}
	if d, ok := eta(t, s, elapsed); ok {
		a = append(a, slog.Float64("eta_s", d.Seconds()))
	}
	return a
}

func pct(done, total int64) int64 {
	if total <= 0 {
		return 0
	}
	return min(100, done*100/total)
}

func of(done, total int64, bytes bool) string {
	f := group
	if bytes {
		f = Size
	}
	if total <= 0 {
		return f(done)
	}
	s := f(done) + "/" + f(total)
	if bytes {
		s += fmt.Sprintf(" (%d%%)", pct(done, total))
	}
	return s
}

// Size formats a byte count: 512 B, 12.0 KiB, 3.4 MiB, 1.2 GiB.
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// group formats n with thousands separators.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
