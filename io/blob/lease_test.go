package blob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestLease: one holder at a time, among racing takers too; a holder that
// stops renewing loses the lease at expiry to the next taker, its renewal
// then fails with ErrPrecondition and its release leaves the new holder's
// lease alone; on local disk and on S3 (conditional PUTs).
func TestLease(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, st Store) {
		const ttl = 600 * time.Millisecond
		// Eight racing takers: exactly one wins, the rest are told who holds it.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*Lease
		held := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := AcquireLease(ctx, st, "_lock.json", fmt.Sprintf("taker-%d", i), ttl)
				mu.Lock()
				defer mu.Unlock()
				var he *HeldError
				switch {
				case err == nil:
					won = append(won, l)
				case errors.As(err, &he):
					held++
				default:
					t.Errorf("taker %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 || held != 7 {
			t.Fatalf("%d winners and %d refused, want 1 and 7", len(won), held)
		}
		a := won[0]
		if err := a.Renew(ctx); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if _, err := AcquireLease(ctx, st, "_lock.json", "b", ttl); err == nil {
			t.Fatal("a renewed lease was taken")
		}
		time.Sleep(ttl + 100*time.Millisecond) // a stops renewing: expired
		b, err := AcquireLease(ctx, st, "_lock.json", "b", ttl)
		if err != nil {
			t.Fatalf("taking an expired lease: %v", err)
		}
		if err := a.Renew(ctx); !errors.Is(err, ErrPrecondition) {
			t.Fatalf("the old holder's renewal = %v, want ErrPrecondition", err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := AcquireLease(ctx, st, "_lock.json", "c", ttl); err == nil {
			t.Fatal("the old holder's release freed the new holder's lease")
		}
		if err := b.Release(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := AcquireLease(ctx, st, "_lock.json", "c", ttl)
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		// Keep renews it past its ttl.
		kctx, cancel := context.WithCancel(ctx)
		go c.Keep(kctx, func(err error) { t.Errorf("lost: %v", err) })
		time.Sleep(2 * ttl)
		if _, err := AcquireLease(ctx, st, "_lock.json", "d", ttl); err == nil {
			t.Fatal("a kept lease expired")
		}
		cancel()
		c.Release(ctx)
		// Nothing but the lease file was ever visible; now not even it.
		if objs, _ := st.List(ctx, ""); len(objs) != 0 {
			t.Fatalf("left behind: %v", objs)
		}
	})
}
