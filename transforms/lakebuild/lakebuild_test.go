package lakebuild

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fineo-io/ingest/io/archive"
)

// TestSortEvents: events come out by time, then id, as comparing the ids
// whole would put them, for ids that share prefixes of any length.
func TestSortEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"", "a", "ab", "abcdefgh", "abcdefghi", "abcdefgz", "\x00", "ab\x00", "ab\x01", "zz"}
	for n := range 200 {
		events := make([]*archive.Staged, n)
		for i := range events {
			id := alphabet[r.IntN(len(alphabet))] + alphabet[r.IntN(len(alphabet))]
			events[i] = &archive.Staged{ID: id, Timestamp: int64(r.IntN(3))}
		}
		want := slices.Clone(events)
		slices.SortStableFunc(want, func(a, b *archive.Staged) int {
			if a.Timestamp != b.Timestamp {
				return int(a.Timestamp - b.Timestamp)
			}
			return strings.Compare(a.ID, b.ID)
		})
		sortEvents(events)
		for i := range events {
			if events[i].Timestamp != want[i].Timestamp || events[i].ID != want[i].ID {
				t.Fatalf("n=%d: position %d is (%d, %q), want (%d, %q)", n, i, events[i].Timestamp, events[i].ID, want[i].Timestamp, want[i].ID)
			}
		}
	}
}

// TestRemoveSpills: spill directories a killed run left are removed once
// older than the grace period; a younger one (a job at work) and other
// folders stay.
func TestRemoveSpills(t *testing.T) {
	dir := t.TempDir()
	old, young, other := dir+"/"+spillPrefix+"1", dir+"/"+spillPrefix+"2", dir+"/keep"
	for _, d := range []string{old, young, other} {
		if err := os.MkdirAll(d+"/x", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	for _, d := range []string{old, other} {
		if err := os.Chtimes(d, past, past); err != nil {
			t.Fatal(err)
		}
	}
	// An old directory whose build still holds its lock stays too.
	busy := dir + "/" + spillPrefix + "3"
	os.MkdirAll(busy, 0o755)
	lock, err := os.Create(busy + "/" + spillLock)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(busy, past, past)
	n, err := RemoveSpills(dir, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("RemoveSpills = %d, %v; want 1", n, err)
	}
	for d, want := range map[string]bool{old: false, young: true, other: true, busy: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", d, err == nil, want)
		}
	}
}
