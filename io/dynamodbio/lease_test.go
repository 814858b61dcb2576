package dynamodbio

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestLeases: the lease protocol's writes against dynalite through the
// real SDK. Of several instances taking one lease as seen, exactly one
// wins; only the holder renews, releases or commits; a commit keeps the
// lease and a take keeps the checkpoint; a lease taken from a checkpoint
// written before leases existed works; heartbeats are listed apart from
// leases and removed only at the counter seen.
func TestLeases(t *testing.T) {
	ctx := context.Background()
	base := newCheckpoints(t)
	as := func(owner string) *Checkpoints { c := *base; c.Owner = owner; return &c }
	a, b := as("a"), as("b")
	const shard = "shardId-000000000000"

	// A checkpoint from before leases (no owner, no counter).
	if _, err := base.Commit(ctx, "raw", shard, "", "100", false); err != nil {
		t.Fatal(err)
	}
	leases, _, err := a.Leases(ctx, "raw")
	if err != nil || len(leases) != 1 || leases[0].Owner != "" || leases[0].Checkpoint != "100" {
		t.Fatalf("Leases = %+v, %v", leases, err)
	}
	seen := leases[0]

	// Eight instances take the lease as seen at once: one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []Lease
	for i := range 8 {
		c := as(string(rune('p' + i)))
		wg.Go(func() {
			got, err := c.TakeLease(ctx, "raw", seen)
			if err == nil {
				mu.Lock()
				winners = append(winners, got)
				mu.Unlock()
			} else if !errors.Is(err, ErrLeaseLost) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d instances took one lease: %+v", len(winners), winners)
	}
	w := winners[0]
	if w.Checkpoint != "100" || w.Gen != w.Counter || w.Gen != 1 || w.StartMillis == 0 {
		t.Errorf("taken lease = %+v; want checkpoint 100, gen = counter = 1 and a start time", w)
	}
	holder := as(w.Owner)

	// Only the holder renews, commits and releases.
	if _, err := a.RenewLease(ctx, "raw", shard); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renewal by a non-holder: %v", err)
	}
	if _, err := a.Commit(ctx, "raw", shard, "100", "200", false); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("commit by a non-holder: %v", err)
	}
	r, err := holder.RenewLease(ctx, "raw", shard)
	if err != nil || r.Counter != 2 || r.Gen != 1 || r.Owner != w.Owner {
		t.Fatalf("renewal = %+v, %v", r, err)
	}
	if seq, err := holder.Commit(ctx, "raw", shard, "100", "200", false); err != nil || seq != "200" {
		t.Fatalf("holder's commit = %q, %v", seq, err)
	}
	leases, _, _ = a.Leases(ctx, "raw")
	if l := leases[0]; l.Owner != w.Owner || l.Counter != 2 || l.Checkpoint != "200" {
		t.Errorf("after a commit: %+v; want the lease kept", l)
	}

	// A take at a stale counter loses; at the current one it wins, and
	// the old holder can neither renew nor commit.
	if _, err := b.TakeLease(ctx, "raw", seen); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("take at a stale counter: %v", err)
	}
	got, err := b.TakeLease(ctx, "raw", leases[0])
	if err != nil || got.Owner != "b" || got.Gen != 3 || got.Checkpoint != "200" || got.StartMillis != w.StartMillis {
		t.Fatalf("take-over = %+v, %v", got, err)
	}
	if _, err := holder.RenewLease(ctx, "raw", shard); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renewal after a take-over: %v", err)
	}
	if _, err := holder.Commit(ctx, "raw", shard, "200", "300", false); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("commit after a take-over: %v", err)
	}
	// Released: free for anyone, at the new counter.
	if err := holder.ReleaseLease(ctx, "raw", shard); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("release by a non-holder: %v", err)
	}
	if err := b.ReleaseLease(ctx, "raw", shard); err != nil {
		t.Fatal(err)
	}
	leases, _, _ = a.Leases(ctx, "raw")
	if l := leases[0]; l.Owner != "" || l.Counter != 4 {
		t.Errorf("released lease = %+v", l)
	}
	// A shard no one has checkpointed: taken on a missing item, once.
	fresh := Lease{Shard: "shardId-000000000001"}
	if _, err := a.TakeLease(ctx, "raw", fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TakeLease(ctx, "raw", fresh); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("second take of a new lease: %v", err)
	}
	if seq, err := a.Commit(ctx, "raw", fresh.Shard, "", "7", false); err != nil || seq != "7" {
		t.Errorf("first commit under a lease: %q, %v", seq, err)
	}

	// Heartbeats are workers, not leases, and not checkpoints.
	for range 3 {
		if err := a.Heartbeat(ctx, "raw"); err != nil {
			t.Fatal(err)
		}
	}
	leases, workers, err := a.Leases(ctx, "raw")
	if err != nil || len(leases) != 2 || len(workers) != 1 || workers[0] != (Worker{ID: "a", Counter: 3}) {
		t.Fatalf("leases %+v, workers %+v, %v", leases, workers, err)
	}
	if cps, _ := a.Load(ctx, "raw"); len(cps) != 2 || cps[shard] != "200" {
		t.Errorf("Load = %v", cps)
	}
	if err := b.RemoveWorker(ctx, "raw", "a", 2); err != nil {
		t.Fatal(err)
	}
	if _, workers, _ = a.Leases(ctx, "raw"); len(workers) != 1 {
		t.Error("a heartbeat was removed at a stale counter")
	}
	if err := b.RemoveWorker(ctx, "raw", "a", 3); err != nil {
		t.Fatal(err)
	}
	if _, workers, _ = a.Leases(ctx, "raw"); len(workers) != 0 {
		t.Errorf("workers after removal: %+v", workers)
	}
}
