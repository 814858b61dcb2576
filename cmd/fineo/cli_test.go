package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fineoBinary builds the real binary once: these tests run it as a user
// would, including its exit codes.
func fineoBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fineo")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runFineo(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestCLI(t *testing.T) {
	bin := fineoBinary(t)
	dir := t.TempDir()
	schemas := filepath.Join("..", "..", "testdata", "sample", "schemas")
	bare := filepath.Join(dir, "bare.jsonl")
	// Bare events for tenant harbor: a "tenant" key inside is data, not routing.
	os.WriteFile(bare, []byte(`{"metrictype":"wx","ts":1700000000,"temp_f":212,"tenant":"skyline"}
{"metrictype":"weather","timestamp":"2023-11-14T22:13:21Z","temperature":20}
{"metrictype":"nope","timestamp":1700000000000}
`), 0o644)
	corrupt := filepath.Join(dir, "bad.jsonl.gz")
	os.WriteFile(corrupt, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, 0o644)

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings
		stderrRe string
	}{
		{"no command", nil, 2, nil, "Usage"},
		{"unknown command", []string{"frobnicate"}, 2, nil, `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, []string{"fineo ingest", "fineo batch"}, ""},
		{"missing flag", []string{"ingest", "--schemas", schemas, "--archive", dir}, 2, nil, "--input is required"},
		{"bad flag", []string{"batch", "--nope"}, 2, nil, "flag provided but not defined"},
		{"bad date", []string{"batch", "--archive", dir, "--lake", dir, "--schemas", schemas, "--date", "last tuesday"}, 2, nil, "want YYYY-MM-DD"},
		{"bare tenant ingest", []string{"ingest", "--input", bare, "--tenant", "harbor", "--schemas", schemas, "--archive", filepath.Join(dir, "a1")}, 0,
			[]string{"events_in=3", "staged_written=2", "customer_errors_written=1", ": ok"}, ""},
		{"processing errors exit 3", []string{"ingest", "--input", corrupt, "--schemas", schemas, "--archive", filepath.Join(dir, "a2")}, 3,
			[]string{"processing_errors_written=1"}, "1 processing error"},
		{"batch on an empty range", []string{"batch", "--archive", filepath.Join(dir, "a1"), "--lake", filepath.Join(dir, "lake"), "--schemas", schemas, "--from", "2099-01-01", "--to", "2099-01-02"}, 0,
			[]string{"no staged events in 2099-01-01 .. 2099-01-02"}, ""},
		{"batch", []string{"batch", "--archive", filepath.Join(dir, "a1"), "--lake", filepath.Join(dir, "lake"), "--schemas", schemas, "--date", "2023-11-14"}, 0,
			[]string{"1 day(s)", "lake_rows=2", "conservation: staged_read 2 = lake rows 2", `tenant  1      string`}, "harbor/weather/2023-11-14: 2 staged → 2 rows"},
		{"worker flags without --worker", []string{"--worker=false"}, 2, nil, "Usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runFineo(t, bin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			counters := map[string]string{} // "  name   value" lines
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 2 {
					counters[f[0]+"="+f[1]] = line
				}
			}
			for _, want := range tc.stdout {
				if _, isCounter := counters[want]; !isCounter && !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if tc.stderrRe != "" && !strings.Contains(errOut, tc.stderrRe) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderrRe, errOut)
			}
		})
	}
}

func TestResolveDates(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		f        batchFlags
		from, to string
		bad      bool
	}{
		{batchFlags{date: "yesterday"}, "2026-02-28", "2026-02-28", false},
		{batchFlags{date: "today"}, "2026-03-01", "2026-03-01", false},
		{batchFlags{date: "2024-02-29"}, "2024-02-29", "2024-02-29", false},
		{batchFlags{from: "2024-01-01", to: "2024-01-31"}, "2024-01-01", "2024-01-31", false},
		{batchFlags{}, "", "", false},
		{batchFlags{from: "2024-02-01", to: "2024-01-31"}, "", "", true},
		{batchFlags{date: "2024-13-01"}, "", "", true},
		{batchFlags{to: "01/02/2024"}, "", "", true},
	} {
		from, to, err := resolveDates(tc.f, now)
		if (err != nil) != tc.bad || from != tc.from || to != tc.to {
			t.Errorf("%+v: %q %q %v", tc.f, from, to, err)
		}
	}
}

// TestReplayRaw replays a raw archive through stage 1 into a new archive
// root (dark launch) and refuses to write over the archive it reads.
func TestReplayRaw(t *testing.T) {
	bin := fineoBinary(t)
	dir := t.TempDir()
	src := filepath.Join("..", "..", "testdata", "sample")
	rawDir := filepath.Join(dir, "archive", "raw", "date=2026-11-24", "hour=10")
	os.MkdirAll(rawDir, 0o755)
	for _, f := range []string{"part-00000.jsonl", "part-00001.jsonl.gz"} {
		b, err := os.ReadFile(filepath.Join(src, "raw", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(rawDir, f), b, 0o644)
	}
	schemas := filepath.Join(src, "schemas")
	out, errOut, code := runFineo(t, bin, "replay", "--stage", "raw", "--archive", filepath.Join(dir, "archive"),
		"--out-archive", filepath.Join(dir, "dark"), "--schemas", schemas, "--date", "2026-11-24")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	want := map[string]string{"events_in": "6601", "staged_written": "6300", "customer_errors_written": "301"}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && want[f[0]] != "" {
			if f[1] != want[f[0]] {
				t.Errorf("%s = %s, want %s", f[0], f[1], want[f[0]])
			}
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("counters missing from output: %v\n%s", want, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dark", "staged")); err != nil {
		t.Errorf("no staged archive in the dark-launch root: %v", err)
	}
	// Nothing in range: exit 0, nothing to do. Same root in and out: refused.
	if out, _, code := runFineo(t, bin, "replay", "--stage", "raw", "--archive", filepath.Join(dir, "archive"), "--out-archive", filepath.Join(dir, "d2"), "--schemas", schemas, "--date", "2026-11-20"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("empty range: exit %d\n%s", code, out)
	}
	if _, errOut, code := runFineo(t, bin, "replay", "--stage", "raw", "--archive", filepath.Join(dir, "archive"), "--out-archive", filepath.Join(dir, "archive"), "--schemas", schemas); code != 2 || !strings.Contains(errOut, "must differ") {
		t.Errorf("same root: exit %d\n%s", code, errOut)
	}
}
