package schema

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped, naming the tenant) when a store has no
// schema for a tenant.
var ErrNotFound = errors.New("schema: tenant not found")

func notFound(tenant string) error {
	return fmt.Errorf("%w: %q", ErrNotFound, tenant)
}

// Store keeps the versions of every tenant's schema.
type Store interface {
	// Tenants lists the tenant ids, sorted.
	Tenants(ctx context.Context) ([]string, error)
	// Get returns the current version of a tenant's schema.
	Get(ctx context.Context, tenant string) (*Tenant, error)
	// History returns every version, oldest first; the last is the current.
	History(ctx context.Context, tenant string) ([]*Tenant, error)
	// Apply records t as the tenant's next version following the rules of
	// Prepare. When nothing changed it returns the current version and nil
	// changes.
	Apply(ctx context.Context, t *Tenant) (applied *Tenant, changes []Change, err error)
}

// Opener opens the store named by spec, a "SCHEME://..." string of the
// scheme it was registered for.
type Opener func(ctx context.Context, spec string) (Store, error)

var (
	schemesMu sync.RWMutex
	schemes   = map[string]Opener{}
)

// RegisterScheme makes OpenStore open "scheme://..." specs with open. Store
// packages call it from init (schema/dynamostore registers "dynamodb"), so a
// program supports the schemes of the store packages it imports. Registering
// a scheme twice panics.
func RegisterScheme(scheme string, open Opener) {
	schemesMu.Lock()
	defer schemesMu.Unlock()
	if _, dup := schemes[scheme]; dup {
		panic("schema: scheme " + scheme + " registered twice")
	}
	schemes[scheme] = open
}

// OpenStore opens the store named by spec: a directory path (see DirStore)
// or "SCHEME://..." of a registered scheme (see RegisterScheme), such as
// "dynamodb://TABLE" when schema/dynamostore is linked in.
func OpenStore(ctx context.Context, spec string) (Store, error) {
	if spec == "" {
		return nil, errors.New("schema: no schema store given")
	}
	if scheme, _, ok := strings.Cut(spec, "://"); ok {
		schemesMu.RLock()
		open := schemes[scheme]
		schemesMu.RUnlock()
		if open != nil {
			return open(ctx, spec)
		}
		if scheme == "dynamodb" {
			return nil, fmt.Errorf("schema: store %q: the DynamoDB schema store is not supported yet by this program (it does not import github.com/fineo-io/ingest/schema/dynamostore); use a directory", spec)
		}
		return nil, fmt.Errorf("schema: store %q: unknown scheme %q (want a directory path)", spec, scheme)
	}
	fi, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("schema: store %q: %w", spec, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("schema: store %q is not a directory", spec)
	}
	return NewDirStore(spec), nil
}

// LoadAll returns the current version of every tenant in s, sorted by tenant.
func LoadAll(ctx context.Context, s Store) ([]*Tenant, error) {
	ids, err := s.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Tenant, 0, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Planner is implemented by stores that can report what Apply would do
// without doing it.
type Planner interface {
	Plan(ctx context.Context, t *Tenant) (next *Tenant, changes []Change, err error)
}

// Plan returns the version and changes s.Apply(ctx, t) would record, without
// recording anything: s.Plan if s is a Planner, else Prepare over s.Get.
func Plan(ctx context.Context, s Store, t *Tenant) (*Tenant, []Change, error) {
	if p, ok := s.(Planner); ok {
		return p.Plan(ctx, t)
	}
	cur, err := s.Get(ctx, t.Tenant)
	if errors.Is(err, ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return Prepare(cur, t, time.Now())
}
