package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fineo-io/ingest/io/blob"
)

// TestBatchLakeLock: a second batch on a lake that another batch holds is
// refused before any work, in one line naming the holder; once the
// holder releases the lake the batch runs, and leaves no lock behind
// (issue 19, defect 3).
func TestBatchLakeLock(t *testing.T) {
	ctx := context.Background()
	bin := fineoBinary(t)
	dir := t.TempDir()
	sample := filepath.Join("..", "..", "testdata", "sample")
	schemas := filepath.Join(sample, "schemas")
	arch, lakeDir := filepath.Join(dir, "archive"), filepath.Join(dir, "lake")
	if out, err := exec.Command(bin, "ingest", "--quiet", "--input", filepath.Join(sample, "raw"), "--schemas", schemas, "--archive", arch).CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 { // the sample holds bad records: exit 3
			t.Fatalf("ingest: %v\n%s", err, out)
		}
	}
	st, err := blob.Open(ctx, lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	held, err := blob.AcquireLease(ctx, st, lakeLockPath, "the other batch", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	batch := func() (string, string, error) {
		cmd := exec.Command(bin, "batch", "--quiet", "--archive", arch, "--lake", lakeDir, "--schemas", schemas)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}
	_, stderr, err := batch()
	if err == nil {
		t.Fatal("a batch ran on a lake another batch holds")
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "being written by another batch: the other batch") {
		t.Fatalf("refusal = %q, want one line naming the holder", stderr)
	}
	if objs, _ := st.List(ctx, "tenant="); len(objs) != 0 {
		t.Fatalf("the refused batch wrote %d lake files", len(objs))
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := batch(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, "lake_rows") {
			t.Fatalf("batch after release: %v\n%s%s", err, out, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(lakeDir, lakeLockPath)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock left behind: %v", err)
	}
	if objs, _ := st.List(ctx, "tenant="); len(objs) == 0 {
		t.Fatal("the batch after release wrote nothing")
	}
}
