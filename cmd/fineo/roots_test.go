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

// TestBadFlagsOneLine: careless invocations are refused before any work
// with exit code 2 and one line on stderr (issue 19, defect 9).
func TestBadFlagsOneLine(t *testing.T) {
	bin := fineoBinary(t)
	dir := t.TempDir()
	sample := filepath.Join("..", "..", "testdata", "sample")
	schemas := filepath.Join(sample, "schemas")
	for _, args := range [][]string{
		{"batch", "--archive", dir, "--lake", filepath.Join(dir, "l"), "--schemas", schemas, "--compression", "lz4"},
		{"batch", "--archive", dir, "--lake", filepath.Join(dir, "l"), "--schemas", schemas, "--date", "2024-01-01", "--from", "2024-01-01"},
		{"batch", "--archive", dir, "--lake", filepath.Join(dir, "l"), "--schemas", schemas, "--memory-budget", "lots"},
		{"batch", "--archive", dir, "--lake", filepath.Join(dir, "l"), "--schemas", schemas, "--memory-budget", "10KB"},
		{"ingest", "--input", filepath.Join(sample, "raw"), "--schemas", schemas, "--archive", filepath.Join(dir, "a"), "--chunk-bytes", "0"},
		{"ingest", "--input", filepath.Join(sample, "raw"), "--schemas", schemas, "--archive", filepath.Join(dir, "a"), "--chunk-bytes", "-5"},
		{"ingest", "--input", filepath.Join(sample, "raw"), "--schemas", schemas, "--archive", filepath.Join(dir, "a"), "--tenant="},
		{"ingest", "--no-such-flag"},
		{"ingest", "--input", filepath.Join(sample, "raw"), "--schemas", schemas, "--archive", filepath.Join(dir, "a"), "--runner=foo"},
	} {
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit code 2", args[1:], err)
		}
		if lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n"); len(lines) != 1 || stdout.Len() != 0 {
			t.Errorf("%v: %d lines on stderr, %d bytes on stdout, want one line:\n%s", args, len(lines), stdout.Len(), stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Error("a refused ingest wrote its archive")
	}
	// --help still prints the flags, and exits 0.
	out, err := exec.Command(bin, "ingest", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-chunk-bytes") {
		t.Errorf("ingest --help: %v\n%s", err, out)
	}
}

// TestDemoAnywhere: the demo runs from any folder with the sample built
// into the binary (issue 19, defect 15), as an installed binary would.
func TestDemoAnywhere(t *testing.T) {
	bin := fineoBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "demo", "--out", filepath.Join(dir, "out"))
	cmd.Dir = dir                                                                             // no testdata/ here
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL_KINESIS=", "AWS_ENDPOINT_URL_DYNAMODB=") // the batch part only
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "conservation: events_in") || strings.Contains(string(out), "MISMATCH") {
		t.Errorf("demo output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "sample", "schemas", "harbor.yaml")); err != nil {
		t.Errorf("the built-in sample was not written under --out: %v", err)
	}
}

// TestHelpAndSchemaUsage: `fineo --help` and `fineo help` exit 0 with the
// usage on stdout; `fineo schema` with no command prints its usage, every
// command suggest included, and exits 2 with one line (issue 19, defect 9).
func TestHelpAndSchemaUsage(t *testing.T) {
	bin := fineoBinary(t)
	for _, arg := range []string{"--help", "help", "-h"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil || !strings.Contains(string(out), "fineo ingest") {
			t.Errorf("fineo %s: %v\n%s", arg, err, out)
		}
	}
	cmd := exec.Command(bin, "schema")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("fineo schema: %v, want exit code 2", err)
	}
	for _, want := range []string{"list", "show", "history", "apply", "suggest", "fineo schema: missing command"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("fineo schema's usage lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "fineo schema: fineo schema:") {
		t.Errorf("the error repeats its prefix:\n%s", stderr.String())
	}
}
