// Package backoff holds the backoff and the cancellable wait that Fineo's AWS
// IO packages share: exponential backoff with full jitter, honouring ctx.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// FullJitter returns the delay before retry n (n ≥ 1): a uniformly random
// delay in [0, min(maxDelay, base·2^(n-1))] ("full jitter").
func FullJitter(base, maxDelay time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// Sleep waits d or until ctx is done, and returns ctx.Err() in that case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
