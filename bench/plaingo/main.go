// Command plaingo is the "plain Go, no Beam" baseline of the batch benchmark:
// one process that turns raw Fineo Ingest envelopes (JSON Lines, as written by
// bench/gen) straight into a date-partitioned Parquet lake.
//
//	go run ./bench/plaingo OUT_DIR FILE...   (FILE may end in .gz)
//
// It reads every line (NumCPU parser goroutines on 4 MiB line-aligned chunks),
// unnests {"tenant":T,"event":{...}} and {"tenant":T,"events":[...]}, and for
// each event takes metric = coalesce(metrictype, type) and timestamp =
// coalesce(timestamp, ts, time): an epoch number in seconds, millis, micros or
// nanos told apart by magnitude (below 1e11, 1e14, 1e17, else nanos, as Fineo
// does) or an RFC 3339 string, kept only between 1970 and 2200. Rows are
// grouped in memory by partition; NumCPU writers then sort each partition by
// (timestamp, id), drop exact re-deliveries (same id: a 64-bit xxhash of the
// tenant and the event's raw JSON bytes; identical events always land in the
// same partition) and write OUT_DIR/tenant=T/metric=M/date=YYYY-MM-DD/part-0.parquet
// (zstd) with columns id (uint64), timestamp (int64 millis, TIMESTAMP(MILLIS)
// UTC) and event (the event's raw JSON bytes as a UTF-8 string).
//
// Counting: a line that is not valid JSON or not an envelope (no event/events,
// event not an object) counts 1 event and 1 error, as bench/gen counts it; a
// non-object inside an events array is 1 error. Events with no tenant, no
// string metric or no valid timestamp are dropped. The closing line on stdout
// satisfies events = errors + dropped + duplicates + rows. Exit status 1 on an
// I/O error, 2 on bad usage.
//
// Like bench/duckdb_baseline.mjs (plus date partitions and timestamp checks)
// it does much less than `fineo ingest` + `fineo batch`: no tenant schemas (so
// no unknown-tenant/unknown-metric errors, no metric or field aliases — "flt"
// and "flight" are separate partitions — no casts or unit conversions, no
// typed columns: the event stays one JSON string), no size or depth limits, no
// staged Avro archive between the two jobs, no error archive (bad records are
// only counted), and no incremental or restartable runs: every row is held in
// memory until the end.
package main

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	json "github.com/goccy/go-json"
	"github.com/parquet-go/parquet-go"
)

// row is one Parquet row.
type row struct {
	ID        uint64 `parquet:"id"`
	Timestamp int64  `parquet:"timestamp,timestamp(millisecond)"`
	Event     []byte `parquet:"event,string"` // the raw JSON of the event
}

type partKey struct {
	tenant, metric string
	day            int64 // days since 1970-01-01 (UTC)
}

type counts struct {
	Lines, Events, Errors, NoTenant, NoMetric, BadTimestamp, Duplicates, Rows, Partitions int64
}

func (c counts) Dropped() int64 { return c.NoTenant + c.NoMetric + c.BadTimestamp }

func (c *counts) add(o counts) {
	c.Lines += o.Lines
	c.Events += o.Events
	c.Errors += o.Errors
	c.NoTenant += o.NoTenant
	c.NoMetric += o.NoMetric
	c.BadTimestamp += o.BadTimestamp
	c.Duplicates += o.Duplicates
	c.Rows += o.Rows
	c.Partitions += o.Partitions
}

func main() {
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: plaingo OUT_DIR FILE...") }
	flag.Parse()
	if flag.NArg() < 2 {
		flag.Usage()
		os.Exit(2)
	}
	c, err := run(flag.Arg(0), flag.Args()[1:], runtime.NumCPU())
	fmt.Printf("plaingo: lines=%d events=%d errors=%d dropped=%d (no_tenant=%d no_metric=%d bad_timestamp=%d) duplicates=%d rows=%d partitions=%d\n",
		c.Lines, c.Events, c.Errors, c.Dropped(), c.NoTenant, c.NoMetric, c.BadTimestamp, c.Duplicates, c.Rows, c.Partitions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "plaingo:", err)
		os.Exit(1)
	}
}

// run parses files with n goroutines and writes the lake under out.
func run(out string, files []string, n int) (counts, error) {
	chunks := make(chan []byte, n)
	var readErr error
	go func() {
		defer close(chunks)
		for _, f := range files {
			if readErr = readChunks(f, chunks); readErr != nil {
				return
			}
		}
	}()
	parsers := make([]*parser, n)
	var wg sync.WaitGroup
	for i := range parsers {
		p := &parser{parts: map[partKey][]row{}}
		parsers[i] = p
		wg.Go(func() {
			for chunk := range chunks {
				for line := range bytes.Lines(chunk) {
					p.line(line)
				}
			}
		})
	}
	wg.Wait()
	var total counts
	parts := parsers[0].parts
	for i, p := range parsers {
		total.add(p.c)
		for k, rows := range p.parts {
			if i > 0 {
				parts[k] = append(parts[k], rows...)
			}
		}
	}
	if readErr != nil {
		return total, readErr
	}

	// Largest partitions first, so the writers finish together.
	keys := make([]partKey, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b partKey) int { return cmp.Compare(len(parts[b]), len(parts[a])) })
	work := make(chan partKey)
	results := make([]counts, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			for k := range work {
				if errs[i] != nil {
					continue // drain
				}
				dir := filepath.Join(out, "tenant="+url.PathEscape(k.tenant), "metric="+url.PathEscape(k.metric),
					"date="+time.UnixMilli(k.day*864e5).UTC().Format(time.DateOnly))
				kept, err := writePartition(dir, parts[k])
				results[i].Rows += int64(kept)
				results[i].Duplicates += int64(len(parts[k]) - kept)
				results[i].Partitions++
				errs[i] = err
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	for _, r := range results {
		total.add(r)
	}
	return total, errors.Join(errs...)
}

// readChunks sends the file in chunks of whole lines (a chunk grows to hold
// a line longer than the default size).
func readChunks(path string, out chan<- []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if filepath.Ext(path) == ".gz" {
		if r, err = gzip.NewReader(f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	var rest []byte
	for {
		buf := make([]byte, max(4<<20, 2*len(rest)))
		k := copy(buf, rest)
		m, err := io.ReadFull(r, buf[k:])
		buf = buf[:k+m]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if len(buf) > 0 {
				out <- buf
			}
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		i := bytes.LastIndexByte(buf, '\n')
		if i < 0 {
			rest = buf
			continue
		}
		out <- buf[:i+1]
		rest = buf[i+1:]
	}
}

type envelope struct {
	Tenant json.RawMessage   `json:"tenant"`
	Event  json.RawMessage   `json:"event"`
	Events []json.RawMessage `json:"events"`
}

type eventFields struct {
	MetricType json.RawMessage `json:"metrictype"`
	Type       json.RawMessage `json:"type"`
	Timestamp  json.RawMessage `json:"timestamp"`
	TS         json.RawMessage `json:"ts"`
	Time       json.RawMessage `json:"time"`
}

// parser is one parse goroutine's counts and rows, grouped by partition.
type parser struct {
	c     counts
	parts map[partKey][]row
	h     xxhash.Digest
}

func (p *parser) line(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	p.c.Lines++
	var env envelope
	if err := json.Unmarshal(line, &env); err != nil || (isNull(env.Event) && len(env.Events) == 0) {
		p.c.Events++
		p.c.Errors++
		return
	}
	tenant, _ := str(env.Tenant)
	if !isNull(env.Event) {
		env.Events = append(env.Events, env.Event)
	}
	for _, ev := range env.Events {
		p.event(tenant, ev)
	}
}

// event handles one event; raw is the decoder's own copy, kept as the row's event.
func (p *parser) event(tenant string, raw []byte) {
	p.c.Events++
	var f eventFields
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &f) != nil {
		p.c.Errors++
		return
	}
	if tenant == "" {
		p.c.NoTenant++
		return
	}
	metric, ok := str(f.MetricType)
	if !ok {
		metric, ok = str(f.Type)
	}
	if !ok {
		p.c.NoMetric++
		return
	}
	ts := f.Timestamp
	if isNull(ts) {
		ts = f.TS
	}
	if isNull(ts) {
		ts = f.Time
	}
	ms, ok := millis(ts)
	if !ok {
		p.c.BadTimestamp++
		return
	}
	p.h.Reset()
	p.h.WriteString(tenant)
	p.h.Write([]byte{0})
	p.h.Write(raw)
	k := partKey{tenant, metric, ms / 864e5}
	p.parts[k] = append(p.parts[k], row{ID: p.h.Sum64(), Timestamp: ms, Event: raw})
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// str returns a non-empty JSON string value.
func str(raw []byte) (string, bool) {
	if len(raw) < 3 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil && s != ""
}

var maxMillis = float64(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())

// millis reads an epoch number (unit by magnitude) or an RFC 3339 string.
func millis(raw []byte) (int64, bool) {
	if s, ok := str(raw); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		ms := t.UnixMilli()
		return ms, err == nil && ms > 0 && float64(ms) < maxMillis
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, false
	}
	switch a := math.Abs(f); {
	case a < 1e11:
		f *= 1e3
	case a < 1e14:
	case a < 1e17:
		f /= 1e3
	default:
		f /= 1e6
	}
	f = math.Floor(f)
	return int64(f), f > 0 && f < maxMillis
}

// writePartition sorts rows by (timestamp, id), drops repeated ids and writes
// dir/part-0.parquet. It returns the number of rows written.
func writePartition(dir string, rows []row) (int, error) {
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.Timestamp, b.Timestamp), cmp.Compare(a.ID, b.ID))
	})
	rows = slices.CompactFunc(rows, func(a, b row) bool { return a.ID == b.ID && a.Timestamp == b.Timestamp })
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	f, err := os.Create(filepath.Join(dir, "part-0.parquet"))
	if err != nil {
		return 0, err
	}
	w := parquet.NewGenericWriter[row](f, parquet.Compression(&parquet.Zstd))
	_, err = w.Write(rows)
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return len(rows), err
}
