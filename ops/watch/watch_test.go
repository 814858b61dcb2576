package watch

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fineo-io/ingest/metrics"
)

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"9464", "127.0.0.1:9464"},
		{":9464", "127.0.0.1:9464"},
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"0.0.0.0:9464", "0.0.0.0:9464"}, // asked for every interface
		{"[::1]:9464", "[::1]:9464"},
		{"localhost:http", "localhost:http"},
	} {
		if got, err := ListenAddr(tc.in); err != nil || got != tc.want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "host:", "a:b:c", "127.0.0.1:99999", "127.0.0.1:nope"} {
		if got, err := ListenAddr(bad); err == nil {
			t.Errorf("ListenAddr(%q) = %q, want an error", bad, got)
		}
	}
}

// TestServe scrapes the endpoint as Prometheus would: the process's
// counters, per-tenant counters and gauges, moving between scrapes. By
// default it listens on loopback only.
func TestServe(t *testing.T) {
	addr, err := ListenAddr(":0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Serve(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, _, _ := net.SplitHostPort(s.Addr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("listens on %s, want a loopback address", s.Addr)
	}
	scrape := func() string {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("scrape: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		return string(b)
	}
	ctx := context.Background()
	metrics.Counter("watch_test_events").Inc(ctx, 3)
	metrics.TenantCounter("acme", "stage1", "customer_error.bad_event").Inc(ctx, 2)
	metrics.SetGauge(ctx, "kinesis_millis_behind_latest", "shardId-000000000001", 42)
	first := scrape()
	for _, want := range []string{
		"fineo_watch_test_events_total 3",
		`fineo_tenant_total{counter="customer_error.bad_event",stage="stage1",tenant="acme"} 2`,
		`fineo_kinesis_millis_behind_latest{key="shardId-000000000001"} 42`,
		"go_goroutines ",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("first scrape lacks %q", want)
		}
	}
	metrics.Counter("watch_test_events").Inc(ctx, 4)
	if second := scrape(); !strings.Contains(second, "fineo_watch_test_events_total 7") {
		t.Errorf("the counter did not move between scrapes")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr + "/metrics"); err == nil {
		t.Error("the endpoint still answers after Close")
	}
}

func TestProgressLine(t *testing.T) {
	last := metrics.Summary{"kinesis_records": 100, "nearline_written": 90}
	cur := metrics.Summary{"kinesis_records": 1100, "nearline_written": 1090, metrics.EventsIn: 1100, metrics.Staged: 1050,
		metrics.CustomerErrors: 50, "pages_committed": 7}
	got := ProgressLine("stream", last, cur, 10*time.Second, 95*time.Second)
	for _, want := range []string{"stream: 1m35s in", "1100 records (100/s)", "1050 staged", "50 customer errors", "nearline 1090 written (100/s)", "7 pages committed"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
}
