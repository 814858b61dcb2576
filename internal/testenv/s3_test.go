package testenv

import (
	"context"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestS3(t *testing.T) {
	loc := S3(t)
	bucket, ok := strings.CutPrefix(loc, "s3://")
	if !ok || bucket == "" || strings.Contains(bucket, "/") {
		t.Fatalf("S3() = %q, want s3://<bucket>", loc)
	}
	ep := os.Getenv("AWS_ENDPOINT_URL_S3")
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		t.Fatalf("AWS_ENDPOINT_URL_S3 = %q", ep)
	}
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		t.Log("no region set; relying on default")
	}

	ctx := context.Background()
	c := S3Client(t)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("a/b.txt"), Body: strings.NewReader("hello"),
	}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "hello" {
		t.Fatalf("got %q", b)
	}

	// A second call gives a different, empty bucket.
	loc2 := S3(t)
	if loc2 == loc {
		t.Fatalf("second bucket has the same name %q", loc2)
	}
	l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(strings.TrimPrefix(loc2, "s3://"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Contents) != 0 {
		t.Fatalf("new bucket not empty: %d objects", len(l.Contents))
	}
}

func TestS3IndependentServers(t *testing.T) {
	if os.Getenv("AWS_ENDPOINT_URL_S3") != "" {
		t.Skip("external S3 endpoint configured")
	}
	var eps []string
	for i := 0; i < 2; i++ {
		t.Run("server", func(t *testing.T) {
			S3(t)
			ep := os.Getenv("AWS_ENDPOINT_URL_S3")
			if !strings.HasPrefix(ep, "http://127.0.0.1:") {
				t.Fatalf("endpoint %q, want http://127.0.0.1:PORT", ep)
			}
			eps = append(eps, ep)
		})
	}
	if os.Getenv("AWS_ENDPOINT_URL_S3") != "" {
		t.Fatal("AWS_ENDPOINT_URL_S3 not restored after subtest")
	}
	if len(eps) == 2 && eps[0] == eps[1] {
		t.Fatalf("servers share endpoint %s", eps[0])
	}
}
