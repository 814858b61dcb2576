package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// historyDir is the subdirectory of a DirStore holding recorded versions.
const historyDir = "_history"

// schemaExts are the file extensions of schema files, in lookup order.
var schemaExts = []string{".yaml", ".yml", ".json"}

// DirStore keeps schemas in a directory:
//
//	DIR/<tenant>.yaml (.yml, .json)            the file users edit
//	DIR/_history/<tenant>/v000001.yaml, ...    every applied version
//
// Once a tenant has been applied, its latest history entry is its current
// version: edits to DIR/<tenant>.yaml take effect when applied. A file that
// was never applied is served as is, as version 1; its first Apply records
// it as version 1 (and the applied schema as version 2 if it differs).
// Apply rewrites DIR/<tenant>.yaml atomically with the applied version, so
// after an apply the file and the history agree. Files whose names start
// with '_' or '.' and files of other extensions are ignored.
type DirStore struct {
	dir string
	now func() time.Time
}

// NewDirStore returns a store over the schema files in dir.
func NewDirStore(dir string) *DirStore {
	return &DirStore{dir: dir, now: time.Now}
}

var _ Store = (*DirStore)(nil)

// Tenants lists the tenants that have a schema file or recorded versions.
// Every schema file is read, so a file whose tenant does not match its name
// is reported here.
func (d *DirStore) Tenants(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	files, err := d.schemaFiles()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(files))
	for id, path := range files {
		if _, err := d.readFile(id, path); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	recorded, err := d.recordedTenants()
	if err != nil {
		return nil, err
	}
	for _, id := range recorded {
		if _, ok := files[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Get returns the latest recorded version of tenant or, if it was never
// applied, its validated schema file (as version 1 when it has none).
func (d *DirStore) Get(ctx context.Context, tenant string) (*Tenant, error) {
	st, err := d.load(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if st.fileErr != nil {
		return nil, st.fileErr
	}
	if len(st.versions) > 0 {
		return d.readVersion(tenant, st.versions[len(st.versions)-1])
	}
	if st.file == nil {
		return nil, notFound(tenant)
	}
	if err := st.file.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", st.path, err)
	}
	return st.file, nil
}

// History returns the recorded versions of tenant, oldest first, or the
// never-applied schema file alone.
func (d *DirStore) History(ctx context.Context, tenant string) ([]*Tenant, error) {
	st, err := d.load(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if len(st.versions) == 0 {
		t, err := d.Get(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return []*Tenant{t}, nil
	}
	out := make([]*Tenant, 0, len(st.versions))
	for _, v := range st.versions {
		t, err := d.readVersion(tenant, v)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Apply records t as the tenant's next version (see Prepare), writing the
// history entry and then rewriting DIR/<tenant>.yaml (or its existing .yml or
// .json file) atomically.
func (d *DirStore) Apply(ctx context.Context, t *Tenant) (*Tenant, []Change, error) {
	p, err := d.plan(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	if p.bootstrap != nil {
		if err := d.writeVersion(p.bootstrap); err != nil {
			return nil, nil, err
		}
	}
	if p.next == p.bootstrap {
		return p.next, p.changes, nil
	}
	if len(p.changes) == 0 {
		return p.next, nil, nil
	}
	if err := d.writeVersion(p.next); err != nil {
		return nil, nil, err
	}
	if err := writeSchemaFile(p.path, p.next); err != nil {
		return p.next, p.changes, fmt.Errorf("schema: version %d of %s recorded but %w", p.next.Version, t.Tenant, err)
	}
	return p.next, p.changes, nil
}

// Plan returns what Apply would record and report, without writing.
func (d *DirStore) Plan(ctx context.Context, t *Tenant) (*Tenant, []Change, error) {
	p, err := d.plan(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	return p.next, p.changes, nil
}

// applyPlan is what an Apply will write.
type applyPlan struct {
	bootstrap *Tenant // never-applied schema file to record as version 1 first
	next      *Tenant // the resulting current version
	changes   []Change
	path      string // schema file to rewrite
}

func (d *DirStore) plan(ctx context.Context, t *Tenant) (*applyPlan, error) {
	if err := ValidateTenantID(t.Tenant); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	st, err := d.load(ctx, t.Tenant)
	if err != nil {
		return nil, err
	}
	cur, bootstrap, err := d.base(st, t.Tenant)
	if err != nil {
		return nil, err
	}
	next, changes, err := Prepare(cur, t, d.now())
	if err != nil {
		return nil, err
	}
	p := &applyPlan{next: next, changes: changes, path: st.path}
	if p.path == "" {
		p.path = filepath.Join(d.dir, t.Tenant+".yaml")
	}
	if !bootstrap {
		return p, nil
	}
	p.bootstrap = cur
	if len(changes) == 0 {
		// Recording the file as version 1 is the change.
		p.changes = Diff(nil, cur)
	}
	return p, nil
}

// base returns the version Apply builds on: the latest recorded one or, for
// a tenant never applied, its schema file if that is valid (bootstrap: it
// must be recorded as version 1 first).
func (d *DirStore) base(st *tenantState, tenant string) (cur *Tenant, bootstrap bool, err error) {
	if len(st.versions) > 0 {
		cur, err = d.readVersion(tenant, st.versions[len(st.versions)-1])
		return cur, false, err
	}
	if st.file == nil || st.file.Validate() != nil {
		return nil, false, nil
	}
	cur = st.file.Clone()
	if cur.UpdatedAt.IsZero() {
		cur.UpdatedAt = d.now().UTC()
	}
	return cur, true, nil
}

// tenantState is what the directory holds for one tenant.
type tenantState struct {
	path     string  // schema file, "" if none
	file     *Tenant // its parsed content (Version 1 if it had none)
	fileErr  error   // why it could not be read
	versions []int   // recorded versions, ascending
}

func (d *DirStore) load(ctx context.Context, tenant string) (*tenantState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ValidateTenantID(tenant); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	path, err := d.findFile(tenant)
	if err != nil {
		return nil, err
	}
	st := &tenantState{path: path}
	if path != "" {
		st.file, st.fileErr = d.readFile(tenant, path)
	}
	st.versions, err = d.versions(tenant)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// schemaFiles maps each tenant id to its schema file.
func (d *DirStore) schemaFiles() (map[string]string, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("schema: read schema directory: %w", err)
	}
	files := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if e.IsDir() || strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") || !slices.Contains(schemaExts, ext) {
			continue
		}
		id := strings.TrimSuffix(name, ext)
		if err := ValidateTenantID(id); err != nil {
			return nil, fmt.Errorf("schema: file %s: %w", filepath.Join(d.dir, name), err)
		}
		if prev, dup := files[id]; dup {
			return nil, fmt.Errorf("schema: tenant %s has two schema files: %s and %s", id, prev, filepath.Join(d.dir, name))
		}
		files[id] = filepath.Join(d.dir, name)
	}
	return files, nil
}

// findFile returns the schema file of tenant, or "" if there is none.
func (d *DirStore) findFile(tenant string) (string, error) {
	var found []string
	for _, ext := range schemaExts {
		p := filepath.Join(d.dir, tenant+ext)
		_, err := os.Stat(p)
		switch {
		case err == nil:
			found = append(found, p)
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("schema: %w", err)
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("schema: tenant %s has two schema files: %s", tenant, strings.Join(found, " and "))
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

// readFile parses a schema file and checks it names tenant.
func (d *DirStore) readFile(tenant, path string) (*Tenant, error) {
	t, err := readSchema(path)
	if err != nil {
		return nil, err
	}
	if t.Tenant != tenant {
		return nil, fmt.Errorf("%s: the file says tenant %q but its name says %q", path, t.Tenant, tenant)
	}
	if t.Version == 0 {
		t.Version = 1
	}
	return t, nil
}

// ReadFile parses the schema file at path (at most MaxFileSize bytes).
func ReadFile(path string) (*Tenant, error) {
	return readSchema(path)
}

func readSchema(path string) (*Tenant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("schema: read %s: %w", path, err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func (d *DirStore) historyPath(tenant string, version int) string {
	return filepath.Join(d.dir, historyDir, tenant, fmt.Sprintf("v%06d.yaml", version))
}

// versions lists the recorded versions of tenant, ascending.
func (d *DirStore) versions(tenant string) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(d.dir, historyDir, tenant))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema: read history of %s: %w", tenant, err)
	}
	var vs []int
	for _, e := range entries {
		if v, ok := parseVersionName(e.Name()); ok && !e.IsDir() {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// parseVersionName parses "v000012.yaml" as 12.
func parseVersionName(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "v")
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, ".yaml")
	if !ok || len(digits) < 6 {
		return 0, false
	}
	v, err := strconv.Atoi(digits)
	return v, err == nil && v > 0
}

// recordedTenants lists the tenants with at least one recorded version.
func (d *DirStore) recordedTenants() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(d.dir, historyDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema: read history: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || ValidateTenantID(e.Name()) != nil {
			continue
		}
		vs, err := d.versions(e.Name())
		if err != nil {
			return nil, err
		}
		if len(vs) > 0 {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func (d *DirStore) readVersion(tenant string, version int) (*Tenant, error) {
	path := d.historyPath(tenant, version)
	t, err := readSchema(path)
	if err != nil {
		return nil, err
	}
	if t.Tenant != tenant || t.Version != version {
		return nil, fmt.Errorf("%s: holds tenant %q version %d", path, t.Tenant, t.Version)
	}
	if err := t.Validate(); err != nil { // recorded under older rules: names that reach paths
		return nil, fmt.Errorf("%s: %w (apply a corrected version)", path, err)
	}
	return t, nil
}

// writeVersion records t in the history. It never overwrites a recorded
// version: a concurrent Apply that took the same number makes it fail.
func (d *DirStore) writeVersion(t *Tenant) error {
	path := d.historyPath(t.Tenant, t.Version)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	data, err := Marshal(t)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(filepath.Dir(path), data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("schema: version %d of %s was recorded concurrently; apply again", t.Version, t.Tenant)
		}
		return fmt.Errorf("schema: record version %d of %s: %w", t.Version, t.Tenant, err)
	}
	return nil
}

// writeSchemaFile replaces path with t atomically, as JSON for a .json file
// and YAML otherwise.
func writeSchemaFile(path string, t *Tenant) error {
	encode := Marshal
	if filepath.Ext(path) == ".json" {
		encode = marshalJSON
	}
	data, err := encode(t)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(filepath.Dir(path), data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rewriting %s failed: %w", path, err)
	}
	return nil
}

// writeTemp writes data to a new hidden file in dir and returns its path.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".schema-*.tmp")
	if err != nil {
		return "", fmt.Errorf("schema: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("schema: write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}
