package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// ErrPrecondition is wrapped by PutIf's error when its condition does not
// hold: the file exists (match ""), or is missing or another version.
var ErrPrecondition = errors.New("precondition failed")

// Conditional writes are what a lease (lease.go) needs: compare-and-swap of
// one small file. On S3 they are PutObject with If-None-Match / If-Match
// (S3 has had both since 2024); on local disk a lock on a hidden file
// beside the target makes read-compare-rename one step.

// PutIf writes data at path whole, only if the file's current version is
// match: match "" means only if path does not exist. It returns the new
// version's tag (S3's ETag; locally a digest of the content).
func PutIf(ctx context.Context, st Store, path string, data []byte, match string) (string, error) {
	if err := checkPath(path); err != nil {
		return "", fmt.Errorf("blob: put %s: %w", path, err)
	}
	switch s := st.(type) {
	case *S3Store:
		return s.putIf(ctx, path, data, match)
	case *LocalStore:
		return s.putIf(ctx, path, data, match)
	}
	return "", fmt.Errorf("blob: conditional writes are not supported by %T", st)
}

// ReadTag reads path whole with its version's tag (for PutIf).
func ReadTag(ctx context.Context, st Store, path string) ([]byte, string, error) {
	if err := checkPath(path); err != nil {
		return nil, "", fmt.Errorf("blob: read %s: %w", path, err)
	}
	switch s := st.(type) {
	case *S3Store:
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(path))})
		if err != nil {
			if isNotFound(err) {
				return nil, "", fmt.Errorf("blob: read %s: %w: %w", s.URL(path), fs.ErrNotExist, err)
			}
			return nil, "", fmt.Errorf("blob: read %s: %w", s.URL(path), err)
		}
		defer out.Body.Close()
		b, err := ReadAll(out.Body)
		if err != nil {
			return nil, "", fmt.Errorf("blob: read %s: %w", s.URL(path), err)
		}
		return b, aws.ToString(out.ETag), nil
	case *LocalStore:
		b, err := ReadFile(ctx, s, path)
		if err != nil {
			return nil, "", err
		}
		return b, localTag(b), nil
	}
	return nil, "", fmt.Errorf("blob: conditional reads are not supported by %T", st)
}

func (s *S3Store) putIf(ctx context.Context, path string, data []byte, match string) (string, error) {
	in := &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(path)), Body: bytes.NewReader(data)}
	if match == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(match)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			switch ae.ErrorCode() {
			case "PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey":
				return "", fmt.Errorf("blob: put %s: %w", s.URL(path), ErrPrecondition)
			}
		}
		return "", fmt.Errorf("blob: put %s: %w", s.URL(path), err)
	}
	return aws.ToString(out.ETag), nil
}

func localTag(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func (s *LocalStore) putIf(ctx context.Context, path string, data []byte, match string) (string, error) {
	target := s.URL(path)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return "", fmt.Errorf("blob: put %s: %w", target, err)
	}
	// One writer at a time compares and swaps: an exclusive lock on a
	// hidden file beside the target (hidden from List like temp files).
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(target), tmpPrefix+"lock-"+filepath.Base(target)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("blob: put %s: %w", target, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("blob: put %s: lock: %w", target, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	cur, err := os.ReadFile(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if match != "" {
			return "", fmt.Errorf("blob: put %s: %w", target, ErrPrecondition)
		}
	case err != nil:
		return "", fmt.Errorf("blob: put %s: %w", target, err)
	case match == "" || localTag(cur) != match:
		return "", fmt.Errorf("blob: put %s: %w", target, ErrPrecondition)
	}
	w, err := s.Create(ctx, path)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return "", err
	}
	if err := w.Commit(); err != nil {
		return "", err
	}
	return localTag(data), nil
}
