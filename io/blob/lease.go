package blob

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"
)

// A Lease is exclusive, expiring ownership of something in a store (a
// lake, for one batch at a time), held in one small file written only by
// conditional writes (PutIf): taken when the file is missing or its lease
// has expired, renewed by its holder before it expires, and given up by
// deleting the file. A holder that dies stops renewing, and the lease is
// free once it expires. It works alike on local disk and on S3.
type Lease struct {
	mu    sync.Mutex // Keep renews while the holder may release
	st    Store
	path  string
	rec   LeaseRecord
	tag   string
	ttl   time.Duration
	owned bool
}

// LeaseRecord is the lease file's content.
type LeaseRecord struct {
	Owner    string    `json:"owner"` // who holds it: host, pid, run
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	Renewals int64     `json:"renewals"`
}

// HeldError says the lease is another owner's, and until when.
type HeldError struct {
	Path string
	LeaseRecord
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s (since %s, until %s unless renewed)", e.Path, e.Owner,
		e.Acquired.UTC().Format(time.RFC3339), e.Expires.UTC().Format(time.RFC3339))
}

// AcquireLease takes the lease at path for owner, for ttl, or returns a
// *HeldError naming who holds it.
func AcquireLease(ctx context.Context, st Store, path, owner string, ttl time.Duration) (*Lease, error) {
	now := time.Now().UTC()
	l := &Lease{st: st, path: path, ttl: ttl, rec: LeaseRecord{Owner: owner, Acquired: now, Expires: now.Add(ttl)}}
	for attempt := 0; attempt < 3; attempt++ {
		data, tag, err := ReadTag(ctx, st, path)
		match := ""
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			var cur LeaseRecord
			if json.Unmarshal(data, &cur) == nil && time.Now().Before(cur.Expires) {
				return nil, &HeldError{Path: st.URL(path), LeaseRecord: cur}
			}
			match = tag // expired (or unreadable): take it over
		}
		if err := l.put(ctx, match); err == nil {
			return l, nil
		} else if !errors.Is(err, ErrPrecondition) {
			return nil, err
		}
		// Another taker won the race: look again.
	}
	return nil, fmt.Errorf("blob: lease %s: contended", st.URL(path))
}

func (l *Lease) put(ctx context.Context, match string) error {
	b, err := json.Marshal(l.rec)
	if err != nil {
		return err
	}
	tag, err := PutIf(ctx, l.st, l.path, b, match)
	if errors.Is(err, ErrPrecondition) {
		// The SDK retries a PUT whose answer was lost: if the first try
		// landed, the retry fails its own precondition. The file holding
		// exactly this record (its expiry to the nanosecond) is ours.
		if cur, curTag, rerr := ReadTag(ctx, l.st, l.path); rerr == nil && bytes.Equal(cur, b) {
			tag, err = curTag, nil
		}
	}
	if err != nil {
		return err
	}
	l.tag, l.owned = tag, true
	return nil
}

// Renew extends the lease by its ttl from now. An error wrapping
// ErrPrecondition means the lease was lost (it expired and was taken).
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.owned {
		return fmt.Errorf("blob: lease %s: released", l.st.URL(l.path))
	}
	l.rec.Expires = time.Now().UTC().Add(l.ttl)
	l.rec.Renewals++
	return l.put(ctx, l.tag)
}

// Keep renews the lease every third of its ttl until ctx ends, and calls
// lost (once) if a renewal finds the lease taken or cannot be made before
// it expires.
func (l *Lease) Keep(ctx context.Context, lost func(error)) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Each renewal must end before the lease would: a hung request
		// must not keep the holder writing past its expiry.
		rctx, cancel := context.WithDeadline(ctx, last.Add(l.ttl))
		err := l.Renew(rctx)
		cancel()
		if err == nil {
			last = time.Now()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if !l.held() {
			return // released
		}
		if errors.Is(err, ErrPrecondition) || time.Since(last) >= l.ttl {
			lost(err)
			return
		}
	}
}

func (l *Lease) held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owned
}

// Release gives the lease up: the file is deleted if it is still this
// lease's version.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.owned {
		return nil
	}
	l.owned = false
	data, _, err := ReadTag(ctx, l.st, l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Ours if it names this holder and its time of taking: a renewal
	// interrupted after it landed leaves a newer version than l.tag that
	// is still this lease, and must not keep the lake locked.
	var cur LeaseRecord
	if json.Unmarshal(data, &cur) != nil || cur.Owner != l.rec.Owner || !cur.Acquired.Equal(l.rec.Acquired) {
		return nil // taken over: nothing of ours to delete
	}
	return l.st.Delete(ctx, l.path)
}
