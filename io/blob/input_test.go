package blob

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fineo-io/ingest/internal/testenv"
)

func writeFiles(t *testing.T, root string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExpandInputLocal(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeFiles(t, root,
		"in/a.jsonl.gz", "in/b.jsonl.gz", "in/c.txt",
		"in/sub/d.jsonl.gz", "in/sub/deeper/e.jsonl.gz",
		"in/.hidden", "in/_SUCCESS", "in/_temporary/x.jsonl.gz", "in/.git/config",
		"in/sub/.f.jsonl.gz",
		"empty/.only-hidden",
		"dates/date=2024-01-01/p.gz", "dates/date=2024-01-02/q.gz", "dates/other/r.gz",
	)
	if err := os.Symlink(filepath.Join(root, "in", "c.txt"), filepath.Join(root, "in", "link.txt")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "emptydir"), 0o755)
	abs := func(ps ...string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, filepath.Join(root, filepath.FromSlash(p)))
		}
		return out
	}
	tests := []struct {
		name, spec string
		want       []string
		wantErr    string // substring; spec must be named
	}{
		{name: "dir", spec: filepath.Join(root, "in"), want: abs(
			"in/a.jsonl.gz", "in/b.jsonl.gz", "in/c.txt", "in/link.txt",
			"in/sub/d.jsonl.gz", "in/sub/deeper/e.jsonl.gz")},
		{name: "dir trailing slash", spec: filepath.Join(root, "in") + "/", want: abs(
			"in/a.jsonl.gz", "in/b.jsonl.gz", "in/c.txt", "in/link.txt",
			"in/sub/d.jsonl.gz", "in/sub/deeper/e.jsonl.gz")},
		{name: "glob", spec: filepath.Join(root, "in", "*.jsonl.gz"), want: abs(
			"in/a.jsonl.gz", "in/b.jsonl.gz")},
		{name: "glob in dir element", spec: filepath.Join(root, "in", "*", "*.jsonl.gz"), want: abs(
			"in/sub/d.jsonl.gz")},
		{name: "glob matching dirs", spec: filepath.Join(root, "dates", "date=*"), want: abs(
			"dates/date=2024-01-01/p.gz", "dates/date=2024-01-02/q.gz")},
		{name: "glob naming underscore", spec: filepath.Join(root, "in", "_*"), want: abs("in/_SUCCESS", "in/_temporary/x.jsonl.gz")},
		{name: "single file", spec: filepath.Join(root, "in", "c.txt"), want: abs("in/c.txt")},
		{name: "single underscore file named explicitly", spec: filepath.Join(root, "in", "_SUCCESS"), want: abs("in/_SUCCESS")},
		{name: "missing file", spec: filepath.Join(root, "nope.gz"), wantErr: "nope.gz"},
		{name: "empty dir", spec: filepath.Join(root, "emptydir"), wantErr: "emptydir"},
		{name: "only hidden", spec: filepath.Join(root, "empty"), wantErr: "empty"},
		{name: "glob no match", spec: filepath.Join(root, "in", "*.parquet"), wantErr: "*.parquet"},
		{name: "bad glob", spec: filepath.Join(root, "in", "[x"), wantErr: "[x"},
		{name: "empty spec", spec: "", wantErr: "empty"},
		{name: "bad scheme", spec: "gs://b/x", wantErr: "gs://b/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandInput(ctx, tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ExpandInput(%q) = %v, %v; want error containing %q", tc.spec, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ExpandInput(%q) =\n%v\nwant\n%v", tc.spec, got, tc.want)
			}
			for _, loc := range got {
				checkOpenLocation(t, loc)
			}
		})
	}
	t.Run("relative", func(t *testing.T) {
		t.Chdir(root)
		got, err := ExpandInput(ctx, "in/*.jsonl.gz")
		if err != nil {
			t.Fatal(err)
		}
		if want := abs("in/a.jsonl.gz", "in/b.jsonl.gz"); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

// checkOpenLocation checks that loc opens and holds its own path/key (as
// written by the tests).
func checkOpenLocation(t *testing.T, loc string) {
	t.Helper()
	r, err := OpenLocation(context.Background(), loc)
	if err != nil {
		t.Fatalf("OpenLocation(%q): %v", loc, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, filepath.FromSlash(string(b))) && !strings.HasSuffix(filepath.ToSlash(loc), "link.txt") {
		t.Fatalf("OpenLocation(%q) read %q", loc, b)
	}
}

func TestExpandInputS3(t *testing.T) {
	ctx := context.Background()
	loc := testenv.S3(t)
	st, err := Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"in/a.jsonl.gz", "in/b.jsonl.gz", "in/c.txt", "in/sub/d.jsonl.gz",
		"in/_SUCCESS", "inx/z.jsonl.gz", "top.jsonl.gz",
		"dates/date=2024-01-01/p.gz", "dates/date=2024-01-02/q.gz", "dates/other/r.gz",
	} {
		put(t, st, p, p)
	}
	s3 := func(ks ...string) []string {
		var out []string
		for _, k := range ks {
			out = append(out, loc+"/"+k)
		}
		return out
	}
	tests := []struct {
		name, spec string
		want       []string
		wantErr    bool
	}{
		{name: "single key", spec: loc + "/in/c.txt", want: s3("in/c.txt")},
		{name: "prefix", spec: loc + "/in/", want: s3(
			"in/_SUCCESS", "in/a.jsonl.gz", "in/b.jsonl.gz", "in/c.txt", "in/sub/d.jsonl.gz")},
		{name: "key naming a directory", spec: loc + "/in", want: s3(
			"in/_SUCCESS", "in/a.jsonl.gz", "in/b.jsonl.gz", "in/c.txt", "in/sub/d.jsonl.gz")},
		{name: "whole bucket", spec: loc + "/", want: s3(
			"dates/date=2024-01-01/p.gz", "dates/date=2024-01-02/q.gz", "dates/other/r.gz",
			"in/_SUCCESS", "in/a.jsonl.gz", "in/b.jsonl.gz", "in/c.txt", "in/sub/d.jsonl.gz",
			"inx/z.jsonl.gz", "top.jsonl.gz")},
		{name: "glob", spec: loc + "/in/*.jsonl.gz", want: s3("in/a.jsonl.gz", "in/b.jsonl.gz")},
		{name: "glob partial element", spec: loc + "/in/a*", want: s3("in/a.jsonl.gz")},
		{name: "glob top level", spec: loc + "/*.jsonl.gz", want: s3("top.jsonl.gz")},
		{name: "glob in dir element", spec: loc + "/dates/date=*/*.gz", want: s3(
			"dates/date=2024-01-01/p.gz", "dates/date=2024-01-02/q.gz")},
		{name: "glob question mark", spec: loc + "/in/?.txt", want: s3("in/c.txt")},
		{name: "missing key", spec: loc + "/in/nope.gz", wantErr: true},
		{name: "empty prefix", spec: loc + "/nope/", wantErr: true},
		{name: "glob no match", spec: loc + "/in/*.parquet", wantErr: true},
		{name: "bad glob", spec: loc + "/in/[x", wantErr: true},
		{name: "no bucket", spec: "s3://", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandInput(ctx, tc.spec)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ExpandInput(%q) = %v, want error", tc.spec, got)
				}
				if !strings.Contains(err.Error(), tc.spec) {
					t.Fatalf("error %q does not name the spec %q", err, tc.spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ExpandInput(%q) =\n%v\nwant\n%v", tc.spec, got, tc.want)
			}
			for _, l := range got {
				checkOpenLocation(t, l)
			}
		})
	}
	t.Run("OpenLocation missing", func(t *testing.T) {
		_, err := OpenLocation(ctx, loc+"/in/nope")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("OpenLocation missing = %v, want fs.ErrNotExist", err)
		}
		if _, err := OpenLocation(ctx, loc+"/in/"); err == nil {
			t.Fatal("OpenLocation of a prefix succeeded")
		}
		_, err = OpenLocation(ctx, filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("OpenLocation missing local = %v, want fs.ErrNotExist", err)
		}
	})
}
