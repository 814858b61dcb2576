// Package watch lets an operator watch a long-running job while it runs:
// Prometheus text metrics over HTTP and a progress line, both read from the
// process's own counters and gauges (metrics.Local, metrics.Gauges), so they
// show what the DoFns running in this process did: everything, on the
// embedded runner; on a remote runner the runner's own metrics serve.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fineo-io/ingest/metrics"
)

// ListenAddr checks a --metrics-listen value and returns the address to
// listen on: a bare ":PORT" or "PORT" binds the loopback address; another
// host binds only where asked (0.0.0.0 or [::] for every interface).
func ListenAddr(s string) (string, error) {
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("--metrics-listen %q: %v", s, err)
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p == 0 && port != "0" {
		return "", fmt.Errorf("--metrics-listen %q: bad port", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Server serves /metrics until Close.
type Server struct {
	Addr string // where it listens (the port chosen when it was 0)
	srv  *http.Server
}

// Serve starts the metrics endpoint on addr (see ListenAddr) and returns
// once it listens. The job's counters are fineo_<name>_total, per-tenant
// counters fineo_tenant_total{tenant,stage,counter}, gauges
// fineo_<name>{key} (kinesis_millis_behind_latest by shard), plus Go's
// process and runtime metrics.
func Serve(addr string) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{}, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s := &Server{Addr: ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var (
	tenantDesc = prometheus.NewDesc("fineo_tenant_total", "Per-tenant counters of the job's stages in this process.",
		[]string{"tenant", "stage", "counter"}, nil)
)

// collector reads the process's counters and gauges at each scrape.
type collector struct{}

func (collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(collector{}, ch) }

func (collector) Collect(ch chan<- prometheus.Metric) {
	sum := metrics.Local()
	names := make([]string, 0, len(sum))
	for n := range sum {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := float64(sum[n])
		if rest, ok := strings.CutPrefix(n, metrics.TenantPrefix); ok {
			parts := strings.SplitN(rest, ".", 3)
			if len(parts) == 3 {
				ch <- prometheus.MustNewConstMetric(tenantDesc, prometheus.CounterValue, v, parts[0], parts[1], parts[2])
			}
			continue
		}
		d := prometheus.NewDesc("fineo_"+promName(n)+"_total", "Fineo counter "+n+" (this process).", nil, nil)
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	for name, byKey := range metrics.Gauges() {
		d := prometheus.NewDesc("fineo_"+promName(name), "Fineo gauge "+name+" (this process), by key.", []string{"key"}, nil)
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(byKey[k]), k)
		}
	}
}

// promName keeps a counter name within Prometheus's metric-name alphabet.
func promName(n string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, n)
}

// Progress writes a line to w every interval until ctx ends: the job's
// main counters in this process and their rate over the interval.
func Progress(ctx context.Context, w io.Writer, job string, interval time.Duration) {
	if interval <= 0 {
		return
	}
	start, last := time.Now(), metrics.Local()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur := metrics.Local()
			fmt.Fprintln(w, ProgressLine(job, last, cur, interval, now.Sub(start)))
			last = cur
		}
	}
}

// ProgressLine describes cur (and its change from last over d).
func ProgressLine(job string, last, cur metrics.Summary, d, elapsed time.Duration) string {
	rate := func(name string) float64 { return float64(cur[name]-last[name]) / d.Seconds() }
	behind := int64(0)
	for _, v := range metrics.Gauges()["kinesis_millis_behind_latest"] {
		behind = max(behind, v)
	}
	return fmt.Sprintf("%s: %s in; %d records (%.0f/s), %d events, %d staged, %d customer errors, %d processing errors; nearline %d written (%.0f/s), %d throttled calls; %d pages committed; most behind %d ms",
		job, elapsed.Round(time.Second), cur["kinesis_records"], rate("kinesis_records"), cur[metrics.EventsIn], cur[metrics.Staged],
		cur[metrics.CustomerErrors], cur[metrics.ProcessingErrors], cur["nearline_written"], rate("nearline_written"),
		cur["nearline_throttles"], cur["pages_committed"], behind)
}
