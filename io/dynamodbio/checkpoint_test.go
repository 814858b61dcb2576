package dynamodbio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/fineo-io/ingest/internal/testenv"
)

func TestCheckpointAdd(t *testing.T) {
	type rng struct{ after, last string }
	for _, tc := range []struct {
		name    string
		commits []rng
		want    string // committed
		pending int
	}{
		{"in order", []rng{{"", "10"}, {"10", "20"}, {"20", "30"}}, "30", 0},
		{"out of order", []rng{{"20", "30"}, {"10", "20"}, {"", "10"}}, "30", 0},
		{"gap stays pending", []rng{{"", "10"}, {"20", "30"}}, "10", 1},
		{"repeat is a no-op", []rng{{"", "10"}, {"", "10"}, {"10", "20"}, {"", "10"}}, "20", 0},
		{"longer numbers are larger", []rng{{"", "9"}, {"9", "10"}, {"10", "100"}}, "100", 0},
		{"nothing from the start", []rng{{"5", "10"}}, "", 1},
		{"re-read after restart overlaps", []rng{{"", "10"}, {"10", "20"}, {"10", "25"}}, "25", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := checkpoint{seq: startKey}
			for _, r := range tc.commits {
				a := r.after
				if a == "" {
					a = startKey
				}
				cp.add(a, r.last)
			}
			if got := cp.committed(); got != tc.want {
				t.Errorf("committed %q, want %q", got, tc.want)
			}
			if len(cp.pending) != tc.pending {
				t.Errorf("pending %v, want %d entries", cp.pending, tc.pending)
			}
		})
	}
}

func TestSequenceLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1", "2", true}, {"2", "1", false}, {"9", "10", true}, {"10", "9", false}, {"5", "5", false},
		{startKey, "0", true}, {"0", startKey, false}, {startKey, startKey, false},
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692540925702759324208523137515618", true},
	} {
		if got := SequenceLess(tc.a, tc.b); got != tc.want {
			t.Errorf("SequenceLess(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestCheckpointsDynamoDB commits the chained ranges of two shards from
// several goroutines in random order against dynalite, through the real
// SDK: the checkpoint must end at the last sequence of each shard, with
// nothing pending, and Load must return it; a second consumer of the same
// stream keeps its own checkpoints.
func TestCheckpointsDynamoDB(t *testing.T) {
	ctx := context.Background()
	cps := newCheckpoints(t)
	if got, err := cps.Load(ctx, "raw"); err != nil || len(got) != 0 {
		t.Fatalf("Load on an empty table = %v, %v", got, err)
	}
	type commit struct{ shard, after, last string }
	var commits []commit
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		after := ""
		for i := 1; i <= 40; i++ {
			last := fmt.Sprintf("%d", 1000+i*7)
			commits = append(commits, commit{shard, after, last})
			after = last
		}
	}
	rand.Shuffle(len(commits), func(i, j int) { commits[i], commits[j] = commits[j], commits[i] })
	var wg sync.WaitGroup
	work := make(chan commit)
	for range 6 {
		wg.Go(func() {
			for c := range work {
				if _, err := cps.Commit(ctx, "raw", c.shard, c.after, c.last, false); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, c := range commits {
		work <- c
	}
	close(work)
	wg.Wait()
	got, err := cps.Load(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"shardId-000000000000": "1280", "shardId-000000000001": "1280"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Load = %v, want %v", got, want)
	}
	other := &Checkpoints{API: cps.API, Table: cps.Table, Consumer: "dark"}
	if got, _ := other.Load(ctx, "raw"); len(got) != 0 {
		t.Errorf("another consumer sees %v", got)
	}
	// A range at or behind the checkpoint changes nothing.
	if seq, err := cps.Commit(ctx, "raw", "shardId-000000000000", "1007", "1014", false); err != nil || seq != "1280" {
		t.Errorf("old range: %q, %v", seq, err)
	}
}

// TestCheckpointEnded: a shard is ended only once its end is recorded and
// every range up to it is committed, whatever order the commits come in;
// a closed shard that had no records ends with its end page alone.
func TestCheckpointEnded(t *testing.T) {
	ctx := context.Background()
	cps := newCheckpoints(t)
	ended := func(shard string) bool {
		t.Helper()
		ok, err := cps.Ended(ctx, "raw", shard)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if ended("parent") {
		t.Fatal("a shard with no checkpoint is ended")
	}
	// The end page (after = last = 1030) is committed first, then the
	// ranges out of order.
	for _, c := range []struct {
		after, last string
		end         bool
	}{{"1030", "1030", true}, {"1010", "1020", false}, {"", "1010", false}} {
		if _, err := cps.Commit(ctx, "raw", "parent", c.after, c.last, c.end); err != nil {
			t.Fatal(err)
		}
		if ended("parent") {
			t.Fatalf("ended after committing (%s, %s] with a gap before 1030", c.after, c.last)
		}
	}
	if _, err := cps.Commit(ctx, "raw", "parent", "1020", "1030", false); err != nil {
		t.Fatal(err)
	}
	if !ended("parent") {
		t.Error("not ended with every range up to its end committed")
	}
	// A range committed again changes nothing.
	if _, err := cps.Commit(ctx, "raw", "parent", "1010", "1020", false); err != nil || !ended("parent") {
		t.Errorf("after a repeated range: ended %v, %v", ended("parent"), err)
	}
	// A closed shard without records: its end page alone.
	if _, err := cps.Commit(ctx, "raw", "empty", "", "", true); err != nil {
		t.Fatal(err)
	}
	if !ended("empty") {
		t.Error("an empty closed shard is not ended by its end page")
	}
	if got, _ := cps.Load(ctx, "raw"); got["parent"] != "1030" || got["empty"] != "" {
		t.Errorf("Load = %v", got)
	}
}

// newCheckpoints returns consumer "job"'s checkpoints in a fresh table of
// the DynamoDB stand-in.
func newCheckpoints(t *testing.T) *Checkpoints {
	t.Helper()
	testenv.DynamoDB(t)
	api, err := NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	table := testenv.UniqueName(t, "ckpt")
	if err := EnsureCheckpointTable(context.Background(), api, table); err != nil {
		t.Fatal(err)
	}
	return &Checkpoints{API: api, Table: table, Consumer: "job"}
}
