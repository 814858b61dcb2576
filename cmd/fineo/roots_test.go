package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingThingsAreErrors: a schema store with no schema, or an archive
// that does not exist, is an error before any work, not a run in which
// every event is an error or "nothing to do" (issue 19, defect 5); and a
// missing archive is not created by reading it. An empty date range of an
// existing archive is still fine.
func TestMissingThingsAreErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty-schemas")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	schemas := filepath.Join("..", "..", "testdata", "sample", "schemas")
	missing := filepath.Join(dir, "no-such-archive")
	if err := cmdIngest(ctx, []string{"--input", filepath.Join("..", "..", "testdata", "sample", "raw"), "--schemas", empty, "--archive", filepath.Join(dir, "a")}); err == nil || !strings.Contains(err.Error(), "holds no tenant schema") {
		t.Errorf("ingest with an empty schema store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "staged")); err == nil {
		t.Error("ingest with an empty schema store staged something")
	}
	for _, args := range [][]string{
		{"--archive", missing, "--lake", filepath.Join(dir, "lake"), "--schemas", schemas},
	} {
		if err := cmdBatch(ctx, args); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("batch %v: %v", args, err)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("reading a missing archive created it")
	}
	// An existing, empty archive: nothing to do, and no error.
	existing := filepath.Join(dir, "archive")
	os.Mkdir(existing, 0o755)
	if err := cmdBatch(ctx, []string{"--quiet", "--archive", existing, "--lake", filepath.Join(dir, "lake"), "--schemas", schemas}); err != nil {
		t.Errorf("batch of an empty archive: %v", err)
	}
}
