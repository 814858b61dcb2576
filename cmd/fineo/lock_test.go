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
	arch, lakeDir := ingestSampleArchive(t, bin, dir), filepath.Join(dir, "lake")
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

// ingestSampleArchive ingests the sample with the binary into dir/archive.
func ingestSampleArchive(t *testing.T, bin, dir string) string {
	t.Helper()
	sample := filepath.Join("..", "..", "testdata", "sample")
	arch := filepath.Join(dir, "archive")
	if out, err := exec.Command(bin, "ingest", "--quiet", "--input", filepath.Join(sample, "raw"), "--schemas", filepath.Join(sample, "schemas"), "--archive", arch).CombinedOutput(); err != nil {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	return arch
}

// TestUsageFileNotWritten: a batch that built its lake but could not write
// its usage file (what tenants are billed from) exits 1 with one line
// saying so (issue 19, defect 9).
func TestUsageFileNotWritten(t *testing.T) {
	bin := fineoBinary(t)
	dir := t.TempDir()
	arch := ingestSampleArchive(t, bin, dir)
	usageDir := filepath.Join(arch, "_usage")
	if err := os.RemoveAll(usageDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(usageDir, nil, 0o644); err != nil { // a file where the folder goes
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "batch", "--quiet", "--archive", arch, "--lake", filepath.Join(dir, "lake"), "--schemas", filepath.Join("..", "..", "testdata", "sample", "schemas"))
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("batch without a usage file: %v, want exit 1\n%s%s", err, o.String(), e.String())
	}
	if lines := strings.Split(strings.TrimSpace(e.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "usage file not written") {
		t.Fatalf("stderr = %q, want one line saying the usage file was not written", e.String())
	}
	if !strings.Contains(o.String(), "lake_rows") {
		t.Fatalf("the lake was not built:\n%s", o.String())
	}
}
