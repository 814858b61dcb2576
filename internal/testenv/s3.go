package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 returns an S3 location "s3://<bucket>" backed by a real S3 protocol
// server over HTTP, for a fresh, uniquely named, empty bucket.
//
// If AWS_ENDPOINT_URL_S3 is already set (CI may start a server), that server
// is used with the ambient credentials. Otherwise an in-process gofakes3
// server is started on 127.0.0.1 and AWS_ENDPOINT_URL_S3, dummy
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and AWS_REGION=us-east-1 are set
// with t.Setenv (so the calling test cannot use t.Parallel). Everything is
// cleaned up with t.Cleanup.
func S3(t testing.TB) string {
	t.Helper()
	if os.Getenv("AWS_ENDPOINT_URL_S3") == "" {
		return S3Faulty(t, nil)
	}
	return newBucket(t)
}

// S3Faulty is S3 with an in-process gofakes3 server whose handler is
// wrapped by wrap (nil: none), so a test can inject faults that no stand-in
// makes (errors, throttling) on chosen requests, over real HTTP.
func S3Faulty(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	{
		var h http.Handler = gofakes3.New(s3mem.New()).Server()
		if wrap != nil {
			h = wrap(h)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL) // http://127.0.0.1:PORT
		t.Setenv("AWS_ACCESS_KEY_ID", "testenv-dummy-key")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "testenv-dummy-secret")
		t.Setenv("AWS_SESSION_TOKEN", "")
		t.Setenv("AWS_REGION", "us-east-1")
		t.Setenv("AWS_PROFILE", "")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	}
	return newBucket(t)
}

func newBucket(t testing.TB) string {
	client := S3Client(t)
	bucket := "testenv-" + randHex(t, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() { emptyAndDeleteBucket(t, client, bucket) })
	return "s3://" + bucket
}

// S3Client returns an S3 client for the server named by the environment
// (as set up by S3), with path-style addressing and checksums only when
// required, as S3 stand-ins need.
func S3Client(t testing.TB) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("testenv: load AWS config: %v", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
}

func emptyAndDeleteBucket(t testing.TB, client *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Logf("testenv: cleanup list %s: %v", bucket, err)
			return
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, 0, len(page.Contents))
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}); err != nil {
			t.Logf("testenv: cleanup delete objects in %s: %v", bucket, err)
			return
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Logf("testenv: cleanup delete bucket %s: %v", bucket, err)
	}
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	return hex.EncodeToString(b)
}
