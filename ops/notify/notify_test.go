package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sns"
)

func TestParse(t *testing.T) {
	for _, ok := range []string{"https://hooks.example.com/x/TOKEN", "http://127.0.0.1:8080/h", "http://localhost/h", "http://[::1]:9/h", "sns://arn:aws:sns:eu-west-1:123456789012:alerts"} {
		if _, err := Parse(ok); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com/h", "http://10.0.0.1/h", "ftp://x/y", "sns://arn:aws:s3:::bucket", "sns://topic", "not a url", "https://"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	tg, _ := Parse("https://user:pw@hooks.example.com/services/SECRET?token=abc")
	if s := tg.String(); strings.Contains(s, "SECRET") || strings.Contains(s, "pw") || strings.Contains(s, "abc") {
		t.Errorf("String leaks: %s", s)
	}
}

func TestSendRetries(t *testing.T) {
	var calls atomic.Int32
	var got Notification
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Fineo-Notification-Id") != "ingest-r1" {
			t.Errorf("headers: %v", r.Header)
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got)
	}))
	defer srv.Close()
	tg, err := Parse(srv.URL + "/hook")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{Backoff: time.Millisecond}
	n := &Notification{ID: "ingest-r1", Job: "ingest", Run: "r1", Status: "customer_errors",
		Tenants: map[string]TenantErrors{"harbor": {Kinds: map[string]int64{"unknown_metric": 2}, Events: 2}}}
	if errs := s.Send(context.Background(), []Target{tg}, n); len(errs) != 0 {
		t.Fatal(errs)
	}
	if calls.Load() != 3 || got.Tenants["harbor"].Kinds["unknown_metric"] != 2 {
		t.Fatalf("calls %d, got %+v", calls.Load(), got)
	}

	// Always failing: 1 + 3 retries, then one error, redacted.
	calls.Store(-100)
	tg, _ = Parse(strings.Replace(srv.URL, "http://", "http://u:SECRETPW@", 1) + "/hook?X-Amz-Signature=SIG")
	errs := s.Send(context.Background(), []Target{tg}, n)
	if len(errs) != 1 || calls.Load() != -96 || strings.Contains(errs[0].Error(), "SECRETPW") || strings.Contains(errs[0].Error(), "SIG") {
		t.Fatalf("calls %d, errs %v", calls.Load(), errs)
	}

	// 4xx other than 429: not retried.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer bad.Close()
	calls.Store(0)
	tg, _ = Parse(bad.URL)
	if errs := s.Send(context.Background(), []Target{tg}, n); len(errs) != 1 || calls.Load() != 1 {
		t.Fatalf("403: calls %d, errs %v", calls.Load(), errs)
	}
}

func TestSNS(t *testing.T) {
	var in *sns.PublishInput
	s := &Sender{Backoff: time.Millisecond, SNS: func(_ context.Context, p *sns.PublishInput) error { in = p; return nil }}
	tg, err := Parse("sns://arn:aws:sns:eu-west-1:123456789012:alerts")
	if err != nil {
		t.Fatal(err)
	}
	if errs := s.Send(context.Background(), []Target{tg}, &Notification{ID: "batch-r", Job: "batch", Status: "processing_errors"}); len(errs) != 0 {
		t.Fatal(errs)
	}
	var n Notification
	if err := json.Unmarshal([]byte(*in.Message), &n); err != nil || n.Job != "batch" || *in.TopicArn != "arn:aws:sns:eu-west-1:123456789012:alerts" {
		t.Fatalf("published %+v (%v)", in, err)
	}
}
