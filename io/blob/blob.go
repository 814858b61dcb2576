package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
)

// Object is one stored file.
type Object struct {
	// Path is relative to the store root and '/'-separated.
	Path string
	// Size is the length of the file in bytes.
	Size int64
}

// Store is a place files are kept: a local directory or an S3 prefix.
type Store interface {
	// Create returns a writer for path. Nothing is visible at path until
	// Commit returns nil; Abort (or a failed Commit) leaves nothing behind.
	// Readers never see a partial file. An existing file at path is replaced
	// on Commit. The context is used for the whole life of the writer,
	// including Commit.
	Create(ctx context.Context, path string) (Writer, error)
	// Open opens path for reading. Errors wrap fs.ErrNotExist when the file
	// is missing.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
	// ReadRange reads n bytes of path from offset off: fewer only where the
	// file ends first. On S3 it is one ranged GET, so a reader of a small
	// part of a large file pays for that part only.
	ReadRange(ctx context.Context, path string, off, n int64) ([]byte, error)
	// List returns every file whose path starts with prefix, recursively,
	// sorted by Path. The prefix is a plain string prefix of the path
	// ("staged/date=2024-01-01/" or "staged/date=2024-"); "" lists everything.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes path. Deleting a missing file is not an error.
	Delete(ctx context.Context, path string) error
	// URL returns the full location of path, for messages:
	// "s3://bucket/pre/fix/path" or an absolute local path.
	URL(path string) string
}

// Writer receives the contents of one file being created. It is not safe for
// concurrent use.
type Writer interface {
	io.Writer
	// Commit makes the written data visible at the path, atomically. After a
	// failed Commit nothing is left behind and the writer is finished.
	Commit() error
	// Abort discards the written data. Abort after Commit or Abort is a no-op
	// returning nil, so "defer w.Abort()" is safe.
	Abort() error
}

// ErrBadPath is wrapped by errors for paths that are absolute, contain empty,
// "." or ".." elements, or are otherwise unsafe.
var ErrBadPath = errors.New("unsafe path")

// errFinished is returned by writes or commits on a finished writer.
var errFinished = errors.New("blob: writer already committed or aborted")

// tmpPrefix starts the names of the local store's temporary files. Such names
// are hidden from List and reserved.
const tmpPrefix = ".blobtmp-"

// Open opens the store at location: "s3://bucket[/prefix]" or a local
// directory, which is created if missing.
func Open(ctx context.Context, location string) (Store, error) {
	if strings.HasPrefix(location, "s3://") {
		bucket, prefix, err := parseS3(location)
		if err != nil {
			return nil, err
		}
		if prefix != "" {
			if err := checkPath(strings.TrimSuffix(prefix, "/")); err != nil {
				return nil, fmt.Errorf("blob: open %s: %w", location, err)
			}
			prefix = strings.TrimSuffix(prefix, "/") + "/"
		}
		client, err := defaultS3Client(ctx)
		if err != nil {
			return nil, err
		}
		return NewS3Store(client, bucket, prefix), nil
	}
	if i := strings.Index(location, "://"); i >= 0 {
		return nil, fmt.Errorf("blob: open %q: unsupported scheme %q", location, location[:i])
	}
	if location == "" {
		return nil, errors.New("blob: open: empty location")
	}
	return NewLocalStore(location)
}

// checkPath reports whether p is a safe store-relative path: not empty, not
// absolute, '/'-separated elements none of which is empty, "." or "..", no
// backslashes or NUL bytes, and not a reserved temporary name.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty path", ErrBadPath)
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return fmt.Errorf("%w: %q is absolute", ErrBadPath, p)
	}
	if strings.ContainsAny(p, "\\\x00") {
		return fmt.Errorf("%w: %q contains a backslash or NUL", ErrBadPath, p)
	}
	for _, e := range strings.Split(p, "/") {
		switch {
		case e == "":
			return fmt.Errorf("%w: %q has an empty element", ErrBadPath, p)
		case e == "." || e == "..":
			return fmt.Errorf("%w: %q has a %q element", ErrBadPath, p, e)
		case strings.HasPrefix(e, tmpPrefix):
			return fmt.Errorf("%w: %q uses the reserved name prefix %q", ErrBadPath, p, tmpPrefix)
		}
	}
	return nil
}

// checkPrefix validates a List prefix: "" or a path prefix that may end in
// '/' or in a partial element.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if err := checkPath(p); err != nil {
		return fmt.Errorf("bad list prefix %q: %w", prefix, err)
	}
	return nil
}

// ReadFile reads the file at path in st whole.
func ReadFile(ctx context.Context, st Store, path string) ([]byte, error) {
	rc, err := st.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return ReadAll(rc)
}

// ReadAll reads rc to the end like io.ReadAll, sized up front when rc
// knows its size (local files): io.ReadAll's doubling cost the batch job a
// twentieth of its CPU in copies and zeroing (measured: bench/RESULTS.md).
func ReadAll(rc io.Reader) ([]byte, error) {
	if st, ok := rc.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			b := make([]byte, 0, fi.Size()+1) // +1: EOF is seen without growing
			for {
				n, err := rc.Read(b[len(b):cap(b)])
				b = b[:len(b)+n]
				if err == io.EOF {
					return b, nil
				}
				if err != nil {
					return b, err
				}
				if len(b) == cap(b) {
					b = append(b, 0)[:len(b)] // the file grew: fall back to growing
				}
			}
		}
	}
	return io.ReadAll(rc)
}
