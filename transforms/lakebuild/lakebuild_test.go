package lakebuild

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

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
