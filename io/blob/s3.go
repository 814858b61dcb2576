package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/fineo-io/ingest/internal/awsconf"
)

// S3API is the part of *s3.Client the S3 store uses. Tests wrap a real client
// in it to inject faults.
type S3API interface {
	manager.UploadAPIClient // PutObject and the multipart calls
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// DefaultPartSize is the multipart part size of S3 uploads. With S3's limit
// of 10,000 parts it allows objects up to about 160 GiB.
const DefaultPartSize = 16 << 20

// S3Store is a Store under a prefix of an S3 bucket.
type S3Store struct {
	client   S3API
	bucket   string
	prefix   string // "" or ends in '/'
	uploader *manager.Uploader
}

var _ Store = (*S3Store)(nil)

// NewS3Store returns a store for the keys under prefix in bucket. A non-empty
// prefix is treated as a directory: "pre/fix" and "pre/fix/" are the same.
func NewS3Store(client S3API, bucket, prefix string) *S3Store {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3Store{
		client:   client,
		bucket:   bucket,
		prefix:   prefix,
		uploader: newUploader(client, DefaultPartSize),
	}
}

func newUploader(client manager.UploadAPIClient, partSize int64) *manager.Uploader {
	return manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = partSize
		// S3 stand-ins do not do flexible checksums.
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		// A failed multipart upload is aborted, leaving nothing behind.
		u.LeavePartsOnError = false
	})
}

// URL implements Store.
func (s *S3Store) URL(p string) string {
	return "s3://" + s.bucket + "/" + s.prefix + p
}

func (s *S3Store) key(p string) string { return s.prefix + p }

// Create implements Store. The data is spooled to a local temporary file and
// uploaded on Commit.
func (s *S3Store) Create(ctx context.Context, p string) (Writer, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", p, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "blob-s3-*")
	if err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", s.URL(p), err)
	}
	return &s3Writer{ctx: ctx, s: s, p: p, f: f}, nil
}

type s3Writer struct {
	ctx context.Context
	s   *S3Store
	p   string
	f   *os.File // nil once finished
}

func (w *s3Writer) Write(b []byte) (int, error) {
	if w.f == nil {
		return 0, errFinished
	}
	return w.f.Write(b)
}

func (w *s3Writer) finish() *os.File {
	f := w.f
	w.f = nil
	return f
}

func (w *s3Writer) Commit() error {
	if w.f == nil {
		return errFinished
	}
	f := w.finish()
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("blob: commit %s: %w", w.s.URL(w.p), err)
	}
	_, err := w.s.uploader.Upload(w.ctx, &s3.PutObjectInput{
		Bucket: aws.String(w.s.bucket),
		Key:    aws.String(w.s.key(w.p)),
		Body:   f,
	})
	if err != nil {
		return fmt.Errorf("blob: commit %s: %w", w.s.URL(w.p), err)
	}
	return nil
}

func (w *s3Writer) Abort() error {
	if w.f == nil {
		return nil
	}
	f := w.finish()
	f.Close()
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: abort %s: %w", w.s.URL(w.p), err)
	}
	return nil
}

// Open implements Store.
func (s *S3Store) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", p, err)
	}
	return getObject(ctx, s.client, s.bucket, s.key(p))
}

// ReadRange implements Store.
func (s *S3Store) ReadRange(ctx context.Context, p string, off, n int64) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("blob: read %s: %w", p, err)
	}
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("blob: read %s: bad range %d+%d", p, off, n)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(p)),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("blob: read %s: %w: %w", s.URL(p), fs.ErrNotExist, err)
		}
		return nil, fmt.Errorf("blob: read %s: %w", s.URL(p), err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, n))
	if err != nil {
		return nil, fmt.Errorf("blob: read %s: %w", s.URL(p), err)
	}
	return b, nil
}

func getObject(ctx context.Context, client S3API, bucket, key string) (io.ReadCloser, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		u := "s3://" + bucket + "/" + key
		if isNotFound(err) {
			return nil, fmt.Errorf("blob: open %s: %w: %w", u, fs.ErrNotExist, err)
		}
		return nil, fmt.Errorf("blob: open %s: %w", u, err)
	}
	return out.Body, nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

// List implements Store.
func (s *S3Store) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("blob: list %s: %w", s.URL(""), err)
	}
	objs, err := listObjects(ctx, s.client, s.bucket, s.key(prefix))
	if err != nil {
		return nil, err
	}
	out := objs[:0]
	for _, o := range objs {
		o.Path = strings.TrimPrefix(o.Path, s.prefix)
		if checkPath(o.Path) != nil {
			// Not addressable through this store (e.g. "a//b" or a
			// directory marker "a/"); skip rather than hand out a path
			// that Open would reject.
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

// listObjects lists every key under prefix in bucket, with full keys as
// Paths, sorted.
func listObjects(ctx context.Context, client S3API, bucket, prefix string) ([]Object, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	var out []Object
	pg := s3.NewListObjectsV2Paginator(client, in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("blob: list s3://%s/%s: %w", bucket, prefix, err)
		}
		// Pages may be empty (gofakes3 sends a trailing empty page).
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if k == "" || strings.HasSuffix(k, "/") {
				continue // directory markers
			}
			out = append(out, Object{Path: k, Size: aws.ToInt64(o.Size)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Delete implements Store.
func (s *S3Store) Delete(ctx context.Context, p string) error {
	if err := checkPath(p); err != nil {
		return fmt.Errorf("blob: delete %s: %w", p, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(p))})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("blob: delete %s: %w", s.URL(p), err)
	}
	return nil
}

// parseS3 splits "s3://bucket/rest" into bucket and rest.
func parseS3(location string) (bucket, rest string, err error) {
	s, ok := strings.CutPrefix(location, "s3://")
	if !ok {
		return "", "", fmt.Errorf("blob: %q is not an s3:// location", location)
	}
	bucket, rest, _ = strings.Cut(s, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("blob: %q has no bucket", location)
	}
	return bucket, rest, nil
}

var (
	clientsMu sync.Mutex
	clients   = map[string]*s3.Client{}
)

// clientEnv are the environment variables that decide which S3 service the
// default client talks to; the client cache is keyed by their values so a
// process (or test) that points them elsewhere gets a fresh client.
var clientEnv = []string{
	"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
}

// defaultS3Client returns the process's S3 client built from the default AWS
// configuration, one per distinct endpoint/region/profile environment.
func defaultS3Client(ctx context.Context) (*s3.Client, error) {
	var kb strings.Builder
	for _, k := range clientEnv {
		kb.WriteString(os.Getenv(k))
		kb.WriteByte(0)
	}
	key := kb.String()

	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c, ok := clients[key]; ok {
		return c, nil
	}
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	pathStyle := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	clients[key] = c
	return c, nil
}
