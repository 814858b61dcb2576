package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSNSWithSDK publishes through the real AWS SDK client to a local
// stand-in endpoint (AWS_ENDPOINT_URL_SNS) that speaks SNS's query protocol.
func TestSNSWithSDK(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r.Header.Get("Content-Type") + "\n" + string(b))
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_SNS", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secretexample")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	none := filepath.Join(t.TempDir(), "none") // "/nonexistent" is a directory on some machines
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	tg, err := Parse("sns://arn:aws:sns:eu-west-1:123456789012:alerts")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{Backoff: time.Millisecond, Retries: -1}
	if errs := s.Send(context.Background(), []Target{tg}, &Notification{ID: "ingest-r", Job: "ingest", Status: "customer_errors"}); len(errs) != 0 {
		t.Fatalf("%v; request: %v", errs, got.Load())
	}
	req, _ := got.Load().(string)
	body := req[strings.IndexByte(req, '\n')+1:]
	q, _ := url.ParseQuery(body)
	if q.Get("Action") != "Publish" || q.Get("TopicArn") != "arn:aws:sns:eu-west-1:123456789012:alerts" || !strings.Contains(q.Get("Message"), `"job":"ingest"`) {
		t.Fatalf("request:\n%s", req)
	}
}
