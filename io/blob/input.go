package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

const globMeta = "*?["

// ExpandInput turns an --input spec into full locations, sorted and without
// duplicates:
//
//   - a local file: that file;
//   - a local directory: every regular file under it, recursively, skipping
//     files and directories whose names start with '.' or '_';
//   - a local glob (filepath.Glob): the matching regular files, and the files
//     under matching directories as above; as in a shell, a wildcard does not
//     match a name starting with '.' or '_' unless the pattern element starts
//     with that character too;
//   - "s3://bucket/key": that object (or, if there is no such object, every
//     object under "key/");
//   - "s3://bucket/prefix/" or "s3://bucket": every object under the prefix;
//   - "s3://bucket/prefix/*.jsonl.gz": every object under the literal part of
//     the key before the first glob metacharacter whose whole key matches the
//     pattern with path.Match ('*' does not cross '/').
//
// Local results are absolute paths; S3 results are "s3://bucket/key". An
// empty result is an error naming the spec.
func ExpandInput(ctx context.Context, spec string) ([]string, error) {
	var (
		out []string
		err error
	)
	switch {
	case spec == "":
		return nil, errors.New("blob: empty --input spec")
	case strings.HasPrefix(spec, "s3://"):
		out, err = expandS3(ctx, spec)
	case strings.Contains(spec, "://"):
		return nil, fmt.Errorf("blob: input %q: unsupported scheme", spec)
	default:
		out, err = expandLocal(ctx, spec)
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	out = dedupe(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("blob: input %q matches no files", spec)
	}
	return out, nil
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func expandLocal(ctx context.Context, spec string) ([]string, error) {
	var roots []string
	if strings.ContainsAny(spec, globMeta) {
		pattern := filepath.Clean(spec)
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("blob: input %q: %w", spec, err)
		}
		for _, name := range m {
			if !wildHidden(pattern, name) {
				roots = append(roots, name)
			}
		}
	} else {
		if _, err := os.Stat(spec); err != nil {
			return nil, fmt.Errorf("blob: input %q: %w", spec, err)
		}
		roots = []string{spec}
	}
	var out []string
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("blob: input %q: %w", spec, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("blob: input %q: %w", spec, err)
		}
		switch {
		case fi.Mode().IsRegular():
			out = append(out, abs)
		case fi.IsDir():
			files, err := walkInputDir(ctx, abs)
			if err != nil {
				return nil, fmt.Errorf("blob: input %q: %w", spec, err)
			}
			out = append(out, files...)
		}
	}
	return out, nil
}

// wildHidden reports whether a wildcard in pattern matched a name starting
// with '.' or '_' in name (a filepath.Glob match of pattern): like a shell,
// such names are only matched by a pattern element that starts with the same
// character.
func wildHidden(pattern, name string) bool {
	pe := strings.Split(pattern, string(filepath.Separator))
	ne := strings.Split(name, string(filepath.Separator))
	if len(pe) != len(ne) {
		return false
	}
	for i, e := range ne {
		if !strings.ContainsAny(pe[i], globMeta) || e == "" {
			continue
		}
		if (e[0] == '.' || e[0] == '_') && pe[i][0] != e[0] {
			return true
		}
	}
	return false
}

// walkInputDir lists the regular files under dir (following symlinks to
// files, not to directories), skipping names starting with '.' or '_'.
func walkInputDir(ctx context.Context, dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if name != dir && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.Type().IsRegular():
			out = append(out, name)
		case d.Type()&fs.ModeSymlink != 0:
			if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
				out = append(out, name)
			}
		}
		return nil
	})
	return out, err
}

func expandS3(ctx context.Context, spec string) ([]string, error) {
	bucket, key, err := parseS3(spec)
	if err != nil {
		return nil, err
	}
	client, err := defaultS3Client(ctx)
	if err != nil {
		return nil, err
	}
	loc := func(objs []Object, keep func(string) bool) []string {
		var out []string
		for _, o := range objs {
			if keep == nil || keep(o.Path) {
				out = append(out, "s3://"+bucket+"/"+o.Path)
			}
		}
		return out
	}
	if i := strings.IndexAny(key, globMeta); i >= 0 {
		if _, err := path.Match(key, ""); err != nil {
			return nil, fmt.Errorf("blob: input %q: %w", spec, err)
		}
		prefix := key[:strings.LastIndex(key[:i], "/")+1]
		objs, err := listObjects(ctx, client, bucket, prefix)
		if err != nil {
			return nil, err
		}
		return loc(objs, func(k string) bool {
			ok, _ := path.Match(key, k)
			return ok
		}), nil
	}
	if key == "" || strings.HasSuffix(key, "/") {
		objs, err := listObjects(ctx, client, bucket, key)
		if err != nil {
			return nil, err
		}
		return loc(objs, nil), nil
	}
	// A single key; if it does not exist but is a "directory", take what
	// is under it, like a local directory.
	objs, err := listObjects(ctx, client, bucket, key)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.Path == key {
			return loc([]Object{o}, nil), nil
		}
	}
	return loc(objs, func(k string) bool { return strings.HasPrefix(k, key+"/") }), nil
}

// OpenLocation opens one location returned by ExpandInput for reading: an
// "s3://bucket/key" or a local file path. Errors wrap fs.ErrNotExist when it
// is missing.
func OpenLocation(ctx context.Context, location string) (io.ReadCloser, error) {
	if strings.HasPrefix(location, "s3://") {
		bucket, key, err := parseS3(location)
		if err != nil {
			return nil, err
		}
		if key == "" || strings.HasSuffix(key, "/") {
			return nil, fmt.Errorf("blob: open %s: not an object", location)
		}
		client, err := defaultS3Client(ctx)
		if err != nil {
			return nil, err
		}
		return getObject(ctx, client, bucket, key)
	}
	if strings.Contains(location, "://") {
		return nil, fmt.Errorf("blob: open %q: unsupported scheme", location)
	}
	return openLocalFile(location)
}
