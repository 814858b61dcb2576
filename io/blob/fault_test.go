package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fineo-io/ingest/internal/testenv"
)

var errInjected = errors.New("injected fault")

// faultyS3 wraps a real client and fails chosen calls once.
type faultyS3 struct {
	S3API
	failPut, failPart atomic.Int32 // number of calls still to fail
	lists             atomic.Int32 // ListObjectsV2 calls
	aborts            atomic.Int32 // AbortMultipartUpload calls
}

func (f *faultyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.failPut.Add(-1) >= 0 {
		return nil, errInjected
	}
	return f.S3API.PutObject(ctx, in, o...)
}

func (f *faultyS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if f.failPart.Add(-1) >= 0 {
		return nil, errInjected
	}
	return f.S3API.UploadPart(ctx, in, o...)
}

func (f *faultyS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.lists.Add(1)
	return f.S3API.ListObjectsV2(ctx, in, o...)
}

func (f *faultyS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.aborts.Add(1)
	return f.S3API.AbortMultipartUpload(ctx, in, o...)
}

func newFaultyStore(t *testing.T) (*S3Store, *faultyS3, *s3.Client) {
	t.Helper()
	bucket := strings.TrimPrefix(testenv.S3(t), "s3://")
	real, err := defaultS3Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyS3{S3API: real}
	st := NewS3Store(f, bucket, "pre")
	st.uploader = newUploader(f, manager.MinUploadPartSize) // small parts: multipart at 5 MiB
	return st, f, real
}

func TestS3CommitFaults(t *testing.T) {
	ctx := context.Background()
	small := []byte("small object")
	big := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16) // 11 MiB: 3 parts
	tests := []struct {
		name      string
		data      []byte
		arm       func(f *faultyS3)
		multipart bool
	}{
		{"PutObject fails", small, func(f *faultyS3) { f.failPut.Store(1) }, false},
		{"UploadPart fails", big, func(f *faultyS3) { f.failPart.Store(1) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, f, real := newFaultyStore(t)
			put(t, st, "keep", "kept") // unaffected neighbour
			tc.arm(f)
			w, err := st.Create(ctx, "obj")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			err = w.Commit()
			if !errors.Is(err, errInjected) {
				t.Fatalf("Commit = %v, want the injected fault", err)
			}
			if !strings.Contains(err.Error(), st.URL("obj")) {
				t.Errorf("Commit error %q does not name %s", err, st.URL("obj"))
			}
			if sw := w.(*s3Writer); sw.f != nil {
				t.Error("spool file kept after failed Commit")
			}
			if err := w.Commit(); err == nil {
				t.Error("second Commit after failure succeeded")
			}
			if err := w.Abort(); err != nil {
				t.Errorf("Abort after failed Commit: %v", err)
			}
			assertMissing(t, st, "obj")
			if got := paths(t, st, ""); len(got) != 1 || got[0] != "keep" {
				t.Fatalf("List after failed Commit = %v", got)
			}
			if tc.multipart {
				if f.aborts.Load() == 0 {
					t.Error("multipart upload not aborted")
				}
				mu, err := real.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(st.bucket)})
				if err != nil {
					t.Logf("ListMultipartUploads: %v (not checked)", err)
				} else if len(mu.Uploads) != 0 {
					t.Errorf("%d multipart uploads left behind", len(mu.Uploads))
				}
			}
			// The fault was one-shot: a fresh attempt succeeds.
			w, err = st.Create(ctx, "obj")
			if err != nil {
				t.Fatal(err)
			}
			w.Write(tc.data)
			if err := w.Commit(); err != nil {
				t.Fatalf("retry Commit: %v", err)
			}
			r, err := st.Open(ctx, "obj")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("read back %d bytes, want %d", len(got), len(tc.data))
			}
			objs, _ := st.List(ctx, "obj")
			if len(objs) != 1 || objs[0].Size != int64(len(tc.data)) {
				t.Fatalf("List(obj) = %v", objs)
			}
		})
	}
}

// TestS3ListPaging checks that List really spans several ListObjectsV2 pages.
func TestS3ListPaging(t *testing.T) {
	st, f, _ := newFaultyStore(t)
	var ps []string
	for i := 0; i < 1001; i++ {
		ps = append(ps, fmt.Sprintf("p/%s%c-%04d", strings.Repeat("x", i%7), 'a'+i%26, i))
	}
	putConcurrently(t, st, ps)
	f.lists.Store(0)
	got := paths(t, st, "p/")
	if len(got) != len(ps) {
		t.Fatalf("List returned %d, want %d", len(got), len(ps))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("not sorted at %d: %q >= %q", i, got[i-1], got[i])
		}
	}
	if n := f.lists.Load(); n < 2 {
		t.Fatalf("List used %d ListObjectsV2 calls, want >= 2", n)
	}
}
