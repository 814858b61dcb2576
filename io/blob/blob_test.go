package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/fineo-io/ingest/internal/testenv"
)

// backend makes a fresh, empty store for one test.
type backend struct {
	name string
	open func(t *testing.T) Store
}

func backends() []backend {
	return []backend{
		{"local", func(t *testing.T) Store {
			st, err := Open(context.Background(), filepath.Join(t.TempDir(), "store"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"s3", func(t *testing.T) Store {
			// A prefix, to exercise key mapping.
			st, err := Open(context.Background(), testenv.S3(t)+"/tenant/lake")
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	}
}

// forEachBackend runs f as a subtest against each backend.
func forEachBackend(t *testing.T, f func(t *testing.T, st Store)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

func put(t testing.TB, st Store, p, data string) {
	t.Helper()
	w, err := st.Create(context.Background(), p)
	if err != nil {
		t.Fatalf("Create(%q): %v", p, err)
	}
	if _, err := io.WriteString(w, data); err != nil {
		t.Fatalf("Write(%q): %v", p, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", p, err)
	}
}

func get(t testing.TB, st Store, p string) string {
	t.Helper()
	r, err := st.Open(context.Background(), p)
	if err != nil {
		t.Fatalf("Open(%q): %v", p, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("Read(%q): %v", p, err)
	}
	return string(b)
}

func paths(t testing.TB, st Store, prefix string) []string {
	t.Helper()
	objs, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	out := []string{}
	for _, o := range objs {
		out = append(out, o.Path)
	}
	return out
}

func assertMissing(t testing.TB, st Store, p string) {
	t.Helper()
	r, err := st.Open(context.Background(), p)
	if err == nil {
		r.Close()
		t.Fatalf("Open(%q) succeeded, want not-exist", p)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(%q) = %v, want fs.ErrNotExist", p, err)
	}
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, st Store)
	}{
		{"RoundTrip", func(t *testing.T, st Store) {
			big := strings.Repeat("0123456789abcdef", 1<<14) // 256 KiB
			put(t, st, "a/b/c.jsonl.gz", big)
			put(t, st, "empty", "")
			if got := get(t, st, "a/b/c.jsonl.gz"); got != big {
				t.Fatalf("read %d bytes, want %d", len(got), len(big))
			}
			if got := get(t, st, "empty"); got != "" {
				t.Fatalf("empty = %q", got)
			}
			objs, err := st.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			want := []Object{{"a/b/c.jsonl.gz", int64(len(big))}, {"empty", 0}}
			if !reflect.DeepEqual(objs, want) {
				t.Fatalf("List = %v, want %v", objs, want)
			}
			for _, r := range []struct{ off, n int64 }{{0, 16}, {5, 3}, {int64(len(big)) - 4, 100}, {1 << 17, 1 << 16}} {
				got, err := st.ReadRange(ctx, "a/b/c.jsonl.gz", r.off, r.n)
				if err != nil {
					t.Fatalf("ReadRange(%d, %d): %v", r.off, r.n, err)
				}
				if want := big[r.off:min(r.off+r.n, int64(len(big)))]; string(got) != want {
					t.Fatalf("ReadRange(%d, %d) = %d bytes, want %d", r.off, r.n, len(got), len(want))
				}
			}
			if _, err := st.ReadRange(ctx, "a/missing", 0, 1); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("ReadRange of a missing file = %v, want fs.ErrNotExist", err)
			}
			// Overwrite replaces.
			put(t, st, "a/b/c.jsonl.gz", "v2")
			if got := get(t, st, "a/b/c.jsonl.gz"); got != "v2" {
				t.Fatalf("after overwrite: %q", got)
			}
		}},
		{"AbortLeavesNothing", func(t *testing.T, st Store) {
			w, err := st.Create(ctx, "x/y.txt")
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "partial")
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if err := w.Abort(); err != nil {
				t.Fatalf("second Abort: %v", err)
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Fatal("Write after Abort succeeded")
			}
			if err := w.Commit(); err == nil {
				t.Fatal("Commit after Abort succeeded")
			}
			if got := paths(t, st, ""); len(got) != 0 {
				t.Fatalf("List after Abort = %v", got)
			}
			assertMissing(t, st, "x/y.txt")
			assertNoTempFiles(t, st, w)
		}},
		{"NotVisibleBeforeCommit", func(t *testing.T, st Store) {
			put(t, st, "dir/old", "old")
			w, err := st.Create(ctx, "dir/new")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			io.WriteString(w, "new data")
			if got := paths(t, st, ""); !reflect.DeepEqual(got, []string{"dir/old"}) {
				t.Fatalf("List before Commit = %v", got)
			}
			if got := paths(t, st, "dir/"); !reflect.DeepEqual(got, []string{"dir/old"}) {
				t.Fatalf("List(dir/) before Commit = %v", got)
			}
			assertMissing(t, st, "dir/new")
			// Replacing an existing file: readers see the old one until Commit.
			w2, err := st.Create(ctx, "dir/old")
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w2, "replacement")
			if got := get(t, st, "dir/old"); got != "old" {
				t.Fatalf("before Commit dir/old = %q", got)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := w2.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err == nil {
				t.Fatal("second Commit succeeded")
			}
			if err := w.Abort(); err != nil {
				t.Fatalf("Abort after Commit: %v", err)
			}
			if got := get(t, st, "dir/new"); got != "new data" {
				t.Fatalf("dir/new = %q", got)
			}
			if got := get(t, st, "dir/old"); got != "replacement" {
				t.Fatalf("dir/old = %q", got)
			}
			assertNoTempFiles(t, st, w)
		}},
		{"ListPrefixSorted", func(t *testing.T, st Store) {
			files := []string{
				"staged/date=2024-01-02/b.gz",
				"staged/date=2024-01-01/z.gz",
				"staged/date=2024-01-01/a.gz",
				"staged/date=2024-01-01/sub/c.gz",
				"staged/date=2023-12-31/a.gz",
				"staged.txt",
				"a.b",
				"a/b",
				"a/c/d",
				"a-b",
			}
			for _, f := range files {
				put(t, st, f, f)
			}
			cases := []struct {
				prefix string
				want   []string
			}{
				{"", []string{"a-b", "a.b", "a/b", "a/c/d", "staged.txt",
					"staged/date=2023-12-31/a.gz", "staged/date=2024-01-01/a.gz",
					"staged/date=2024-01-01/sub/c.gz", "staged/date=2024-01-01/z.gz",
					"staged/date=2024-01-02/b.gz"}},
				{"staged/date=2024-01-01/", []string{"staged/date=2024-01-01/a.gz",
					"staged/date=2024-01-01/sub/c.gz", "staged/date=2024-01-01/z.gz"}},
				{"staged/date=2024-", []string{"staged/date=2024-01-01/a.gz",
					"staged/date=2024-01-01/sub/c.gz", "staged/date=2024-01-01/z.gz",
					"staged/date=2024-01-02/b.gz"}},
				{"staged", []string{"staged.txt", "staged/date=2023-12-31/a.gz",
					"staged/date=2024-01-01/a.gz", "staged/date=2024-01-01/sub/c.gz",
					"staged/date=2024-01-01/z.gz", "staged/date=2024-01-02/b.gz"}},
				{"a/", []string{"a/b", "a/c/d"}},
				{"a", []string{"a-b", "a.b", "a/b", "a/c/d"}},
				{"a/b", []string{"a/b"}},
				{"a/b/", []string{}},
				{"nope/", []string{}},
				{"nope/deeper/x", []string{}},
			}
			for _, c := range cases {
				if got := paths(t, st, c.prefix); !reflect.DeepEqual(got, c.want) {
					t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
				}
			}
			objs, _ := st.List(ctx, "a/c/")
			if len(objs) != 1 || objs[0].Size != int64(len("a/c/d")) {
				t.Errorf("List(a/c/) = %v", objs)
			}
		}},
		{"ListManyPages", func(t *testing.T, st Store) {
			const n = 1100
			var want []string
			for i := 0; i < n; i++ {
				want = append(want, fmt.Sprintf("many/f%05d", i))
			}
			putConcurrently(t, st, want)
			put(t, st, "other/x", "x")
			got := paths(t, st, "many/")
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("List(many/) returned %d paths, want %d (first diff at %d)", len(got), n, firstDiff(got, want))
			}
			if all := paths(t, st, ""); len(all) != n+1 {
				t.Fatalf("List() returned %d, want %d", len(all), n+1)
			}
		}},
		{"Delete", func(t *testing.T, st Store) {
			put(t, st, "d/one", "1")
			put(t, st, "d/two", "2")
			if err := st.Delete(ctx, "d/one"); err != nil {
				t.Fatal(err)
			}
			assertMissing(t, st, "d/one")
			if got := paths(t, st, ""); !reflect.DeepEqual(got, []string{"d/two"}) {
				t.Fatalf("List after Delete = %v", got)
			}
			if err := st.Delete(ctx, "d/one"); err != nil {
				t.Fatalf("Delete of missing file: %v", err)
			}
			if err := st.Delete(ctx, "never/was"); err != nil {
				t.Fatalf("Delete of missing file: %v", err)
			}
		}},
		{"PathSafety", func(t *testing.T, st Store) {
			put(t, st, "ok/file", "data")
			bad := []string{"", "/abs", "/", "../x", "..", "a/../b", "a/..", "a//b",
				"a/", "./a", "a/./b", ".", "a\\b", ".blobtmp-123", "d/.blobtmp-x"}
			for _, p := range bad {
				if w, err := st.Create(ctx, p); !errors.Is(err, ErrBadPath) {
					if err == nil {
						w.Abort()
					}
					t.Errorf("Create(%q) = %v, want ErrBadPath", p, err)
				}
				if r, err := st.Open(ctx, p); !errors.Is(err, ErrBadPath) {
					if err == nil {
						r.Close()
					}
					t.Errorf("Open(%q) = %v, want ErrBadPath", p, err)
				}
				if err := st.Delete(ctx, p); !errors.Is(err, ErrBadPath) {
					t.Errorf("Delete(%q) = %v, want ErrBadPath", p, err)
				}
			}
			for _, p := range []string{"../", "/ok/", "ok//", "ok/../"} {
				if _, err := st.List(ctx, p); !errors.Is(err, ErrBadPath) {
					t.Errorf("List(%q) = %v, want ErrBadPath", p, err)
				}
			}
			if got := paths(t, st, ""); !reflect.DeepEqual(got, []string{"ok/file"}) {
				t.Fatalf("List = %v", got)
			}
			// Names that merely contain dots are fine.
			put(t, st, "ok/..hidden..", "x")
			put(t, st, "ok/.dot", "x")
			if got := get(t, st, "ok/..hidden.."); got != "x" {
				t.Fatal(got)
			}
		}},
		{"URL", func(t *testing.T, st Store) {
			u := st.URL("a/b.gz")
			switch st := st.(type) {
			case *LocalStore:
				if !filepath.IsAbs(u) || u != filepath.Join(st.Root(), "a", "b.gz") {
					t.Fatalf("URL = %q", u)
				}
			case *S3Store:
				want := "s3://" + st.bucket + "/tenant/lake/a/b.gz"
				if u != want {
					t.Fatalf("URL = %q, want %q", u, want)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, tc.run)
		})
	}
}

// assertNoTempFiles checks that no temporary file of the writer remains.
func assertNoTempFiles(t *testing.T, st Store, w Writer) {
	t.Helper()
	switch st := st.(type) {
	case *LocalStore:
		filepath.WalkDir(st.Root(), func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
				t.Errorf("temp file left behind: %s", p)
			}
			return nil
		})
	case *S3Store:
		_ = st
	}
	if sw, ok := w.(*s3Writer); ok && sw.f != nil {
		t.Errorf("s3 writer still holds its spool file")
	}
}

func putConcurrently(t *testing.T, st Store, ps []string) {
	t.Helper()
	ch := make(chan string)
	var wg sync.WaitGroup
	errs := make(chan error, len(ps))
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				w, err := st.Create(context.Background(), p)
				if err != nil {
					errs <- err
					continue
				}
				io.WriteString(w, p)
				if err := w.Commit(); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, p := range ps {
		ch <- p
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func firstDiff(a, b []string) int {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

func TestOpenLocation(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, loc string
		wantErr   bool
	}{
		{"bad scheme", "gs://bucket/x", true},
		{"s3 no bucket", "s3://", true},
		{"s3 bad prefix", "s3://bucket/a/../b", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(ctx, tc.loc)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Open(%q) err = %v, wantErr %v", tc.loc, err, tc.wantErr)
			}
		})
	}
	t.Run("local dir created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "x", "y")
		st, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("dir not created: %v", err)
		}
		put(t, st, "f", "x")
		if b, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(b, []byte("x")) {
			t.Fatalf("file content %q", b)
		}
	})
}

func TestReadAll(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4095, 4096, 1 << 20} {
		want := bytes.Repeat([]byte{'x'}, size)
		name := filepath.Join(dir, fmt.Sprint(size))
		if err := os.WriteFile(name, want, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadAll of %d bytes: %d bytes, %v", size, len(got), err)
		}
	}
	got, err := ReadAll(strings.NewReader("not a file"))
	if err != nil || string(got) != "not a file" {
		t.Errorf("ReadAll of a reader: %q, %v", got, err)
	}
}
