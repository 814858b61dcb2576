package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestETA(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		el          time.Duration
		want        time.Duration
		ok          bool
	}{
		{25, 100, 10 * time.Second, 30 * time.Second, true},
		{50, 100, 3 * time.Second, 3 * time.Second, true},
		{100, 100, 3 * time.Second, 0, true},
		{120, 100, 3 * time.Second, 0, true},
		{0, 100, 3 * time.Second, 0, false},
		{10, 0, 3 * time.Second, 0, false},
		{10, 100, 0, 0, false},
	} {
		got, ok := ETA(tc.done, tc.total, tc.el)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ETA(%d, %d, %s) = %s, %v; want %s, %v", tc.done, tc.total, tc.el, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLine(t *testing.T) {
	var s Snapshot
	s[Files], s[Bytes], s[Events] = 1, 12<<20, 52100
	got := Line("ingest", Totals{Files: 2, Bytes: 48 << 20}, s, 2*time.Second)
	want := "ingest: 1/2 files, 12.0 MiB/48.0 MiB (25%), 52,100 events, 26,050 events/s, elapsed 2s, ETA 6s"
	if got != want {
		t.Errorf("ingest line\n got %q\nwant %q", got, want)
	}
	s = Snapshot{}
	s[Partitions], s[Events] = 120, 2101300
	got = Line("batch", Totals{Partitions: 387}, s, 30*time.Second)
	want = "batch: 120/387 partitions (31%), 2,101,300 staged events, 70,043 events/s, elapsed 30s, ETA 1m7s"
	if got != want {
		t.Errorf("batch line\n got %q\nwant %q", got, want)
	}
	// Unknown totals: no ETA.
	s = Snapshot{}
	s[Files], s[Events] = 3, 999
	got = Line("ingest", Totals{}, s, time.Second)
	if want := "ingest: 3 files, 999 events, 999 events/s, elapsed 1s"; got != want {
		t.Errorf("no totals\n got %q\nwant %q", got, want)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestReporter(t *testing.T) {
	Add(Events, 5) // not running: ignored
	if Running() || Current()[Events] != 0 {
		t.Fatal("Add counted without Start")
	}
	old := Interval
	Interval = 20 * time.Millisecond
	defer func() { Interval = old }()
	var w syncBuf
	Start(&w, "batch", Totals{Partitions: 4}, false)
	Add(Partitions, 1)
	Add(Events, 10)
	// Wait for the first line, then a few more ticks with no change: still one line.
	for deadline := time.Now().Add(10 * time.Second); w.String() == "" && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(3 * Interval)
	Stop()
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "batch: 1/4 partitions (25%), 10 staged events") || !strings.Contains(lines[0], "ETA") {
		t.Fatalf("lines: %q", lines)
	}
	if Running() {
		t.Fatal("still running after Stop")
	}
	Stop() // idempotent

	var j syncBuf
	Start(&j, "ingest", Totals{Bytes: 100}, true)
	Add(Bytes, 50)
	time.Sleep(50 * time.Millisecond)
	Stop()
	if out := j.String(); !strings.Contains(out, `"msg":"progress"`) || !strings.Contains(out, `"bytes_done":50`) || !strings.Contains(out, `"eta_s"`) {
		t.Fatalf("json progress: %s", out)
	}
}
