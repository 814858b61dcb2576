package blob

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// LocalStore is a Store in a local directory.
type LocalStore struct {
	root string // absolute, cleaned
}

var _ Store = (*LocalStore)(nil)

// NewLocalStore returns a store rooted at dir, creating it if missing.
func NewLocalStore(dir string) (*LocalStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", abs, err)
	}
	return &LocalStore{root: abs}, nil
}

// Root returns the absolute directory of the store.
func (s *LocalStore) Root() string { return s.root }

// URL implements Store.
func (s *LocalStore) URL(p string) string {
	if p == "" {
		return s.root
	}
	return filepath.Join(s.root, filepath.FromSlash(p))
}

// Create implements Store.
func (s *LocalStore) Create(ctx context.Context, p string) (Writer, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", p, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	target := s.URL(p)
	dir := filepath.Dir(target)
	f, err := createTemp(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Measured: MkdirAll before every file was a third of the
		// syscalls of an ingest writing thousands of partitions.
		// Make the directory only when the first try says it is missing.
		if err = os.MkdirAll(dir, 0o755); err == nil {
			f, err = createTemp(dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", target, err)
	}
	return &localWriter{f: f, buf: bufio.NewWriterSize(f, 64<<10), target: target}, nil
}

// createTemp creates a new temporary file in dir, readable by all (the
// mode the committed file gets), so Commit needs no chmod.
func createTemp(dir string) (*os.File, error) {
	var r [8]byte
	for {
		rand.Read(r[:])
		f, err := os.OpenFile(filepath.Join(dir, tmpPrefix+hex.EncodeToString(r[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
}

type localWriter struct {
	f      *os.File // nil once finished
	buf    *bufio.Writer
	target string
}

// Write buffers: the Avro and gzip writers above issue many small writes,
// which cost one syscall each unbuffered (24 per staged file, measured).
func (w *localWriter) Write(b []byte) (int, error) {
	if w.f == nil {
		return 0, errFinished
	}
	return w.buf.Write(b)
}

func (w *localWriter) Commit() (err error) {
	if w.f == nil {
		return errFinished
	}
	f := w.f
	w.f = nil
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("blob: commit %s: %w", w.target, err)
		}
	}()
	// No fsync: the rename makes the file visible whole or not at all, which
	// is the guarantee readers need. Measured: fsync of file and directory
	// cost ~4 ms per file and dominated ingests that write thousands of
	// hourly partitions. A crash of the host (not the process) may lose
	// recently committed local files; use S3 where that matters.
	if err := w.buf.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, w.target)
}

func (w *localWriter) Abort() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	f.Close()
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: abort %s: %w", w.target, err)
	}
	return nil
}

// Open implements Store.
func (s *LocalStore) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", p, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return openLocalFile(s.URL(p))
}

// ReadRange implements Store.
func (s *LocalStore) ReadRange(ctx context.Context, p string, off, n int64) ([]byte, error) {
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("blob: read %s: bad range %d+%d", p, off, n)
	}
	rc, err := s.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f := rc.(*os.File)
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("blob: read %s: %w", s.URL(p), err)
	}
	n = max(0, min(n, fi.Size()-off)) // not past the end: n may come from a file's own (untrusted) index
	b := make([]byte, n)
	m, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("blob: read %s: %w", s.URL(p), err)
	}
	return b[:m], nil
}

func openLocalFile(name string) (io.ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("blob: open %s: not a regular file", name)
	}
	return f, nil
}

// List implements Store.
func (s *LocalStore) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("blob: list %s: %w", s.root, err)
	}
	// Walk the deepest directory the prefix names in full.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = s.URL(prefix[:i])
	}
	var out []Object
	err := filepath.WalkDir(start, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// Missing start, or removed while walking.
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, name)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, Object{Path: path.Clean(rel), Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob: list %s: %w", s.URL(prefix), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Delete implements Store.
func (s *LocalStore) Delete(ctx context.Context, p string) error {
	if err := checkPath(p); err != nil {
		return fmt.Errorf("blob: delete %s: %w", p, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	name := s.URL(p)
	if fi, err := os.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("blob: delete %s: is a directory", name)
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete: %w", err)
	}
	return nil
}

// RemoveTemp removes the temporary files (.blobtmp-*) in dir, a folder of
// the store, that are older than olderThan: what writers killed before
// Commit left behind. A newer one may belong to a writer at work. It
// returns how many it removed.
func (s *LocalStore) RemoveTemp(dir string, olderThan time.Duration) (int, error) {
	if err := checkPrefix(dir); err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dir)))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("blob: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < olderThan {
			continue
		}
		if err := os.Remove(filepath.Join(s.root, filepath.FromSlash(dir), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
