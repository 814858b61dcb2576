package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// flatConfig is the -flat mode: real flights (flights-3m.parquet) as small
// flat events of one metric, spread evenly over tenants and over days
// starting at a date, with exact re-deliveries and nothing malformed. It
// makes the batch benchmarks' inputs: B5 (every event in one day) and B1's
// small flat events over a year of days.
type flatConfig struct {
	start   string // first day, YYYY-MM-DD
	days    int
	tenants int
}

// runFlat writes c.n lines (one event each) as c.files raw files and a
// schema per tenant, and returns the ground truth.
func runFlat(c config, fc flatConfig) (*Expected, error) {
	day0, err := time.Parse(time.DateOnly, fc.start)
	if err != nil {
		return nil, fmt.Errorf("-flat-start: %w", err)
	}
	src, err := openSources(c.data)
	if err != nil {
		if src, err = fallbackSources(); err != nil {
			return nil, err
		}
	}
	defer src.flights.Close()
	for _, d := range []string{"raw", "schemas"} {
		if err := os.MkdirAll(filepath.Join(c.out, d), 0o755); err != nil {
			return nil, err
		}
	}
	names := make([]string, fc.tenants)
	for i := range names {
		names[i] = fmt.Sprintf("fleet%d", i)
		if err := writeFlatSchema(filepath.Join(c.out, "schemas"), names[i]); err != nil {
			return nil, err
		}
	}
	r := rand.New(rand.NewPCG(c.seed, 2))
	exp := &Expected{Source: src.name}
	var ring [][]byte
	perFile := (c.n + c.files - 1) / c.files
	var line []byte
	for f := 0; f < c.files; f++ {
		out, err := os.Create(filepath.Join(c.out, "raw", fmt.Sprintf("part-%05d.jsonl", f)))
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriterSize(out, 1<<20)
		for i := f * perFile; i < min(c.n, (f+1)*perFile); i++ {
			if len(ring) > 0 && r.IntN(100) < redeliverPct {
				line = ring[r.IntN(len(ring))]
				exp.RedeliveredLines++
			} else {
				fl, err := src.flights.next()
				if err != nil {
					return nil, err
				}
				tenant := names[i%len(names)]
				// The flight's time of day on one of the days: every day holds
				// a share of the flights.
				tod := fl.t.UTC().Sub(fl.t.UTC().Truncate(24 * time.Hour))
				ts := day0.AddDate(0, 0, i%fc.days).Add(tod)
				ev := obj{{"metrictype", "flight"}, {"timestamp", ts.Format(time.RFC3339)},
					{"device", fmt.Sprintf("%s-%s", tenant, strings.ToLower(fl.origin))}, {"seq", int64(i)},
					{"origin", fl.origin}, {"destination", fl.dest}, {"delay", fl.delay}, {"distance", fl.distance}}
				line = envelope(tenant, ev)
				exp.DistinctValidEvents++
				if len(ring) < ringSize {
					ring = append(ring, line)
				} else {
					ring[r.IntN(ringSize)] = line
				}
			}
			exp.Lines++
			exp.TotalEvents++
			exp.ValidEvents++
			w.Write(line)
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		if err := out.Close(); err != nil {
			return nil, err
		}
	}
	return exp, nil
}

// writeFlatSchema writes the schema of one -flat tenant: the flight metric.
func writeFlatSchema(dir, tenant string) error {
	t := tenantDef{Tenant: tenant, Metrics: []metricDef{{Name: "flight", Fields: []fieldDef{
		{Name: "delay", Type: "long"},
		{Name: "distance", Type: "long"},
		{Name: "origin", Type: "string"},
		{Name: "destination", Type: "string"},
		{Name: "device", Type: "string"},
		{Name: "seq", Type: "long"},
	}}}}
	return writeSchema(dir, t, "bench/gen -flat")
}
