package schema

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testStore returns a DirStore over a temp dir whose clock advances an hour
// per Apply.
func testStore(t *testing.T) (*DirStore, string) {
	dir := t.TempDir()
	s := NewDirStore(dir)
	clock := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { clock = clock.Add(time.Hour); return clock }
	return s, dir
}

func TestDirStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, dir := testStore(t)

	if _, err := s.Get(ctx, "harbor"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "harbor") {
		t.Fatalf("Get of a missing tenant: %v, want ErrNotFound naming it", err)
	}

	v1 := mustParse(t, exampleYAML)
	got, changes, err := s.Apply(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || len(changes) == 0 {
		t.Fatalf("first apply: version %d, %d changes", got.Version, len(changes))
	}

	v2 := got.Clone()
	v2.Metrics[0].Fields = append(v2.Metrics[0].Fields, Field{Name: "humidity", Type: Double})
	v2.Metrics[0].Fields[1].Hidden = true
	got, changes, err = s.Apply(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"- field weather.pressure hidden", "+ field weather.humidity (double)"}
	if got.Version != 2 || !slices.Equal(changeLines(changes), want) {
		t.Fatalf("second apply: version %d, changes %q", got.Version, changeLines(changes))
	}

	cur, err := s.Get(ctx, "harbor")
	if err != nil {
		t.Fatal(err)
	}
	p := cur.Metrics[0].Fields[1]
	if cur.Version != 2 || !p.Hidden || p.HiddenAt == nil || !p.HiddenAt.Equal(cur.UpdatedAt) {
		t.Errorf("current: version %d, pressure %+v, updated %v", cur.Version, p, cur.UpdatedAt)
	}

	// The schema file users edit now holds version 2.
	file, err := ReadFile(filepath.Join(dir, "harbor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if file.Version != 2 || len(Diff(file, cur)) != 0 {
		t.Errorf("harbor.yaml is version %d, diff %q", file.Version, changeLines(Diff(file, cur)))
	}

	hist, err := s.History(ctx, "harbor")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Version != 1 || hist[1].Version != 2 || len(hist[0].Metrics[0].Fields) != 3 {
		t.Fatalf("history has %d versions", len(hist))
	}
	if !hist[1].UpdatedAt.After(hist[0].UpdatedAt) {
		t.Errorf("updated_at not increasing: %v, %v", hist[0].UpdatedAt, hist[1].UpdatedAt)
	}
	if _, err := os.Stat(filepath.Join(dir, "_history", "harbor", "v000002.yaml")); err != nil {
		t.Error(err)
	}

	// Applying the same schema again is a no-op.
	again, changes, err := s.Apply(ctx, v2)
	if err != nil || again.Version != 2 || changes != nil {
		t.Errorf("no-op apply: version %d, changes %v, err %v", again.Version, changes, err)
	}
	if hist, _ := s.History(ctx, "harbor"); len(hist) != 2 {
		t.Errorf("no-op apply recorded a version: %d versions", len(hist))
	}

	// Hiding again later keeps the first HiddenAt.
	v3 := cur.Clone()
	v3.Metrics[0].Aliases = append(v3.Metrics[0].Aliases, "weather_v2")
	got, _, err = s.Apply(ctx, v3)
	if err != nil {
		t.Fatal(err)
	}
	if at := got.Metrics[0].Fields[1].HiddenAt; at == nil || !at.Equal(*p.HiddenAt) {
		t.Errorf("HiddenAt changed to %v, want %v", at, p.HiddenAt)
	}

	// Removal is refused and nothing is recorded.
	v4 := got.Clone()
	v4.Metrics[0].Fields = v4.Metrics[0].Fields[:1]
	if _, _, err := s.Apply(ctx, v4); err == nil || !strings.Contains(err.Error(), "cannot be removed") {
		t.Errorf("removal: %v", err)
	}
	if cur, _ := s.Get(ctx, "harbor"); cur.Version != 3 {
		t.Errorf("after refused removal current is version %d, want 3", cur.Version)
	}

	ids, err := s.Tenants(ctx)
	if err != nil || !slices.Equal(ids, []string{"harbor"}) {
		t.Errorf("Tenants = %v, %v", ids, err)
	}
}

func TestDirStoreNeverApplied(t *testing.T) {
	ctx := context.Background()
	s, dir := testStore(t)
	writeFile(t, filepath.Join(dir, "harbor.yml"), exampleYAML)

	cur, err := s.Get(ctx, "harbor")
	if err != nil || cur.Version != 1 {
		t.Fatalf("Get of a never-applied file: %v, %v", cur, err)
	}
	if hist, err := s.History(ctx, "harbor"); err != nil || len(hist) != 1 {
		t.Fatalf("History = %d versions, %v", len(hist), err)
	}

	// Applying the file itself records it as version 1.
	got, changes, err := s.Apply(ctx, cur)
	if err != nil || got.Version != 1 || len(changes) == 0 {
		t.Fatalf("apply: v%d, %d changes, %v", got.Version, len(changes), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "_history", "harbor", "v000001.yaml")); err != nil {
		t.Error(err)
	}

	// Edits to the file do not take effect until applied.
	writeFile(t, filepath.Join(dir, "harbor.yml"), strings.Replace(exampleYAML, "type: string", "type: bytes", 1))
	cur, err = s.Get(ctx, "harbor")
	if err != nil || cur.Metrics[0].Fields[2].Type != String {
		t.Fatalf("Get after an unapplied edit: %v, %v", cur, err)
	}
	edited, err := ReadFile(filepath.Join(dir, "harbor.yml"))
	if err != nil {
		t.Fatal(err)
	}
	got, changes, err = s.Apply(ctx, edited)
	if err != nil || got.Version != 2 || !slices.Equal(changeLines(changes), []string{"~ field weather.station: type string -> bytes"}) {
		t.Fatalf("apply edit: v%d, %q, %v", got.Version, changeLines(changes), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "harbor.yaml")); err == nil {
		t.Error("apply created harbor.yaml next to harbor.yml")
	}
}

func TestDirStoreBootstrapWithChanges(t *testing.T) {
	ctx := context.Background()
	s, dir := testStore(t)
	writeFile(t, filepath.Join(dir, "harbor.json"), `{"tenant": "harbor", "metrics": [{"name": "m", "fields": [{"name": "f", "type": "long"}]}]}`)
	next := &Tenant{Tenant: "harbor", Metrics: []Metric{{Name: "m", Fields: []Field{{Name: "f", Type: Long}, {Name: "g", Type: Long}}}}}
	if _, changes, err := Plan(ctx, s, next); err != nil || len(changes) != 1 {
		t.Fatalf("Plan: %q, %v", changeLines(changes), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "_history")); err == nil {
		t.Error("Plan wrote history")
	}
	got, changes, err := s.Apply(ctx, next)
	if err != nil || got.Version != 2 || len(changes) != 1 {
		t.Fatalf("Apply: v%d %q %v", got.Version, changeLines(changes), err)
	}
	hist, err := s.History(ctx, "harbor")
	if err != nil || len(hist) != 2 || len(hist[0].Metrics[0].Fields) != 1 {
		t.Fatalf("History: %d, %v", len(hist), err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "harbor.json"))
	if err != nil || !strings.Contains(string(data), `"version": 2`) {
		t.Errorf("harbor.json not rewritten as JSON version 2:\n%s", data)
	}
}

func TestDirStoreErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		files map[string]string
		call  func(*DirStore) error
		want  string
	}{
		{"tenant mismatch in Get", map[string]string{"harbor.yaml": "tenant: dock\nmetrics: []\n"},
			func(s *DirStore) error { _, err := s.Get(ctx, "harbor"); return err }, `the file says tenant "dock" but its name says "harbor"`},
		{"tenant mismatch in Tenants", map[string]string{"harbor.yaml": "tenant: dock\nmetrics: []\n"},
			func(s *DirStore) error { _, err := s.Tenants(ctx); return err }, `the file says tenant "dock"`},
		{"two files in Tenants", map[string]string{"harbor.yaml": "tenant: harbor\n", "harbor.json": `{"tenant": "harbor"}`},
			func(s *DirStore) error { _, err := s.Tenants(ctx); return err }, "tenant harbor has two schema files"},
		{"two files in Get", map[string]string{"harbor.yaml": "tenant: harbor\n", "harbor.yml": "tenant: harbor\n"},
			func(s *DirStore) error { _, err := s.Get(ctx, "harbor"); return err }, "tenant harbor has two schema files"},
		{"invalid file in Get", map[string]string{"harbor.yaml": "tenant: harbor\nmetrics:\n  - name: m\n    fields: [{name: f, type: float}]\n"},
			func(s *DirStore) error { _, err := s.Get(ctx, "harbor"); return err }, `has type "float"`},
		{"bad file name", map[string]string{"Harbor.yaml": "tenant: harbor\n"},
			func(s *DirStore) error { _, err := s.Tenants(ctx); return err }, `invalid tenant id "Harbor"`},
		{"path traversal", nil,
			func(s *DirStore) error { _, err := s.Get(ctx, "../etc/passwd"); return err }, "invalid tenant id"},
		{"path traversal in Apply", nil,
			func(s *DirStore) error { _, _, err := s.Apply(ctx, &Tenant{Tenant: "../x"}); return err }, "invalid tenant id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := testStore(t)
			for name, data := range tc.files {
				writeFile(t, filepath.Join(dir, name), data)
			}
			err := tc.call(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDirStoreTenantsIgnoresOtherFiles(t *testing.T) {
	ctx := context.Background()
	s, dir := testStore(t)
	writeFile(t, filepath.Join(dir, "b.yaml"), "tenant: b\nmetrics: []\n")
	writeFile(t, filepath.Join(dir, "a.json"), `{"tenant": "a", "metrics": []}`)
	writeFile(t, filepath.Join(dir, "_draft.yaml"), "not: a schema\n")
	writeFile(t, filepath.Join(dir, ".c.yaml.swp"), "junk")
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "junk: [")
	writeFile(t, filepath.Join(dir, "README.md"), "# schemas")
	writeFile(t, filepath.Join(dir, "sub", "x.yaml"), "junk: [")
	ids, err := s.Tenants(ctx)
	if err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("Tenants = %v, %v", ids, err)
	}
	all, err := LoadAll(ctx, s)
	if err != nil || len(all) != 2 || all[0].Tenant != "a" || all[1].Version != 1 {
		t.Fatalf("LoadAll = %v, %v", all, err)
	}
}

func TestOpenStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, "x")
	tests := []struct {
		spec, want string
	}{
		{dir, ""},
		{"dynamodb://schemas", "not supported yet"},
		{"s3://bucket", `unknown scheme "s3"`},
		{"", "no schema store"},
		{file, "not a directory"},
		{filepath.Join(dir, "missing"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := OpenStore(ctx, tc.spec)
			if tc.want == "" {
				if err != nil || s == nil {
					t.Fatalf("OpenStore: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
