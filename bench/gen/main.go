// Command gen turns real public time series (npm package vega-datasets@3.2.1,
// BSD-3-Clause) into raw Fineo Ingest envelopes, with a known mix of device
// generations, re-deliveries, unknown fields and every kind of bad record,
// and writes the ground truth it knows to expected.json.
//
//	go run ./bench/gen -n N -out DIR [-seed S] [-data node_modules/vega-datasets/data]
//	                   [-gzip] [-files K] [-sample] [-toolarge]
//	go run ./bench/gen -n N -out DIR -flat YYYY-MM-DD [-days D] [-tenants T] [-files K]
//
// -flat writes small flat flight events of one metric over T tenants and D
// days from the date, 5% re-deliveries and nothing malformed (the batch
// benchmarks B5 and B1-flat), and no expected.json.
//
// Output: DIR/raw/part-NNNNN.jsonl[.gz], DIR/schemas/<tenant>.yaml,
// DIR/expected.json. The same flags and seed give byte-identical output.
// Memory stays constant in N: rows are streamed (flights-3m.parquet a page at
// a time) and lines are written as they are made.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error kinds, named as records.Kind names them.
var errorKinds = []string{
	"malformed_json", "bad_envelope", "missing_tenant", "unknown_tenant", "missing_metric",
	"unknown_metric", "missing_timestamp", "bad_timestamp", "too_large", "too_deep", "bad_event",
}

const (
	blockSize     = 200           // every block of 200 lines holds the fixed set of bad records below
	tooLargeBytes = 10<<20 + 4096 // padding of a too_large line: the line is > 10 MiB
	tooDeepLevels = 40            // nesting inside the event (limit is 32)
	redeliverPct  = 5             // % of lines that are exact re-deliveries of an earlier line
	ringSize      = 64            // re-deliveries repeat one of the last 64 all-valid lines
)

// specials are the bad records placed at random positions in every block.
// Record-level kinds are always single-event envelopes (they count 1 event);
// event-level kinds appear once alone and once inside an "events" array.
var specials = []string{
	"malformed_json", "bad_envelope", "missing_tenant", "unknown_tenant", "too_deep",
	"missing_metric", "unknown_metric", "missing_timestamp", "bad_timestamp",
	"multi:missing_metric", "multi:unknown_metric", "multi:missing_timestamp", "multi:bad_timestamp",
	"multi:bad_event", "multi:bad_event",
}

type config struct {
	n        int
	out      string
	seed     uint64
	data     string
	gzip     bool
	files    int
	sample   bool
	tooLarge bool
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 10000, "number of raw lines (records) to write")
	flag.StringVar(&c.out, "out", "", "output directory (required)")
	flag.Uint64Var(&c.seed, "seed", 1, "random seed; same flags + seed => byte-identical output")
	flag.StringVar(&c.data, "data", "node_modules/vega-datasets/data", "vega-datasets data directory (embedded fallback rows if absent)")
	flag.BoolVar(&c.gzip, "gzip", false, "gzip every raw file (.jsonl.gz)")
	flag.IntVar(&c.files, "files", 1, "number of raw files (lines are split into contiguous runs)")
	flag.BoolVar(&c.sample, "sample", false, "sample layout: default 2 files, last one gzipped and holding a too_large line")
	flag.BoolVar(&c.tooLarge, "toolarge", false, "write at least one too_large line (> 10 MiB); otherwise one per 1,000,000 lines")
	var fc flatConfig
	flag.StringVar(&fc.start, "flat", "", "flat mode from this day (YYYY-MM-DD): small flat flight events of one metric, spread over -days days and -tenants tenants, 5% re-deliveries, nothing malformed")
	flag.IntVar(&fc.days, "days", 1, "flat mode: days the events spread over")
	flag.IntVar(&fc.tenants, "tenants", 8, "flat mode: tenants (fleet0, fleet1, ...)")
	flag.Parse()
	if c.out == "" || c.n <= 0 || c.files <= 0 || fc.days <= 0 || fc.tenants <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if c.sample {
		c.tooLarge = true
		filesSet := false
		flag.Visit(func(f *flag.Flag) { filesSet = filesSet || f.Name == "files" })
		if !filesSet {
			c.files = 2
		}
	}
	run := run
	if fc.start != "" {
		run = func(c config) (*Expected, error) { return runFlat(c, fc) }
	}
	exp, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gen: %d lines, %d events (%d valid, %d distinct valid, %d errors) from %s into %s\n",
		exp.Lines, exp.TotalEvents, exp.ValidEvents, exp.DistinctValidEvents, exp.ErrorEvents, exp.Source, c.out)
}

// fileCount is one raw file's share of the ground truth.
type fileCount struct {
	Name        string `json:"name"`
	Lines       int64  `json:"lines"`
	TotalEvents int64  `json:"total_events"`
	ValidEvents int64  `json:"valid_events"`
}

// Expected is the ground truth written to expected.json. Counts that say
// "distinct" leave re-delivered copies out; all others count every copy.
type Expected struct {
	Generator string      `json:"generator"`
	Source    string      `json:"source"`
	Seed      uint64      `json:"seed"`
	N         int         `json:"n"`
	Files     []fileCount `json:"files"`

	Lines            int64 `json:"lines"`
	RedeliveredLines int64 `json:"redelivered_lines"`
	MultiEventLines  int64 `json:"multi_event_lines"`

	TotalEvents         int64 `json:"total_events"`
	ValidEvents         int64 `json:"valid_events"`
	DistinctValidEvents int64 `json:"distinct_valid_events"`
	ErrorEvents         int64 `json:"error_events"`

	Errors                map[string]int64            `json:"errors"`
	ValidByTenant         map[string]int64            `json:"valid_by_tenant"`
	DistinctValidByTenant map[string]int64            `json:"distinct_valid_by_tenant"`
	ValidByMetric         map[string]map[string]int64 `json:"valid_by_metric"`
	DistinctValidByMetric map[string]map[string]int64 `json:"distinct_valid_by_metric"`
	ValidByTimestampFmt   map[string]int64            `json:"valid_by_timestamp_format"`

	UncastableValues                int64 `json:"uncastable_values"`
	EventsWithUncastable            int64 `json:"events_with_uncastable"`
	EventsWithUnknownFields         int64 `json:"events_with_unknown_fields"`
	EventsWithTenantKey             int64 `json:"events_with_tenant_key"`
	DistinctUncastableValues        int64 `json:"distinct_uncastable_values"`
	DistinctEventsWithUnknownFields int64 `json:"distinct_events_with_unknown_fields"`

	Notes []string `json:"notes"`
}

// evInfo is what is counted for one valid event (kept for re-deliveries).
type evInfo struct {
	tenant, metric, tsFormat string
	unknown, tenantKey       bool
	uncastable               int
}

type ringLine struct {
	line  []byte
	infos []evInfo
}

type gen struct {
	c     config
	r     *rand.Rand
	b     *builder
	exp   *Expected
	ring  []ringLine
	ringI int
	cur   *fileCount
}

func newExpected(c config, source string) *Expected {
	e := &Expected{Generator: "bench/gen", Source: source, Seed: c.seed, N: c.n,
		Errors: map[string]int64{}, ValidByTenant: map[string]int64{}, DistinctValidByTenant: map[string]int64{},
		ValidByMetric: map[string]map[string]int64{}, DistinctValidByMetric: map[string]map[string]int64{},
		ValidByTimestampFmt: map[string]int64{},
		Notes: []string{
			"lines: raw lines written; one line is one raw record",
			"total_events = valid_events + error_events; a record rejected as a whole (malformed_json, bad_envelope, missing_tenant, unknown_tenant, too_large, too_deep) counts 1 event and is always a single-event envelope",
			"in an events array each bad element counts 1 (bad_event, missing_metric, unknown_metric, missing_timestamp, bad_timestamp) and the other elements stay valid",
			"re-deliveries repeat an earlier all-valid line byte for byte; valid_* and the uncastable/unknown counts include the copies, distinct_* leave them out",
			"every original event carries a per-tenant sequence number (seq/sq), so distinct events differ in content too",
			"uncastable: exactly one declared double/long field per such event holds a string (e.g. \"n/a\"); such events carry no undeclared keys",
			"events_with_unknown_fields: events with at least one undeclared key (new firmware fields or an inner 'tenant' key); events_with_tenant_key is a subset",
		},
	}
	for _, k := range errorKinds {
		e.Errors[k] = 0
	}
	for _, t := range tenants {
		e.ValidByTenant[t.Tenant] = 0
		e.DistinctValidByTenant[t.Tenant] = 0
		e.ValidByMetric[t.Tenant] = map[string]int64{}
		e.DistinctValidByMetric[t.Tenant] = map[string]int64{}
		for _, m := range t.Metrics {
			e.ValidByMetric[t.Tenant][m.Name] = 0
			e.DistinctValidByMetric[t.Tenant][m.Name] = 0
		}
	}
	return e
}

func (g *gen) countValid(in evInfo, distinct bool) {
	e := g.exp
	e.TotalEvents++
	e.ValidEvents++
	g.cur.TotalEvents++
	g.cur.ValidEvents++
	e.ValidByTenant[in.tenant]++
	e.ValidByMetric[in.tenant][in.metric]++
	e.ValidByTimestampFmt[in.tsFormat]++
	e.UncastableValues += int64(in.uncastable)
	if in.uncastable > 0 {
		e.EventsWithUncastable++
	}
	if in.unknown {
		e.EventsWithUnknownFields++
	}
	if in.tenantKey {
		e.EventsWithTenantKey++
	}
	if distinct {
		e.DistinctValidEvents++
		e.DistinctValidByTenant[in.tenant]++
		e.DistinctValidByMetric[in.tenant][in.metric]++
		e.DistinctUncastableValues += int64(in.uncastable)
		if in.unknown {
			e.DistinctEventsWithUnknownFields++
		}
	}
}

func (g *gen) countError(kind string) {
	g.exp.TotalEvents++
	g.exp.ErrorEvents++
	g.exp.Errors[kind]++
	g.cur.TotalEvents++
}

func pickTenant(r *rand.Rand) string {
	x := r.IntN(100)
	switch {
	case x < 50:
		return "skyline"
	case x < 80:
		return "harbor"
	}
	return "quakenet"
}

func otherTenant(r *rand.Rand, t string) string {
	var cands []string
	for _, d := range tenants {
		if d.Tenant != t {
			cands = append(cands, d.Tenant)
		}
	}
	cands = append(cands, ghostTenants[0])
	return pick(r, cands)
}

var uncastables = []string{"n/a", "ERR", "--", "sensor fault", "unknown", "#VALUE!"}

// decorate applies the valid-event variations: new-firmware fields, an
// uncastable value, or an inner "tenant" key (these are mutually exclusive).
func (g *gen) decorate(ev *event) evInfo {
	r := g.r
	in := evInfo{tenant: ev.tenant, metric: ev.metric, tsFormat: ev.tsFormat}
	x := r.IntN(1000)
	switch {
	case x < 40: // new firmware: undeclared fields
		in.unknown = true
		switch r.IntN(4) {
		case 0:
			ev.o = append(ev.o, kv{"humidity", round(20+r.Float64()*75, 1)})
		case 1:
			ev.o = append(ev.o, kv{"battery_mv", int64(2900 + r.IntN(400))})
		case 2:
			ev.o = append(ev.o, kv{"fw", obj{{"version", fmt.Sprintf("2.%d.%d", r.IntN(5), r.IntN(20))},
				{"build", obj{{"id", int64(r.IntN(100000))}, {"channel", pick(r, []string{"stable", "beta"})}}}}})
		default:
			ev.o = append(ev.o, kv{"humidity", round(20+r.Float64()*75, 1)}, kv{"battery_mv", int64(2900 + r.IntN(400))},
				kv{"diag", obj{{"rssi_dbm", int64(-40 - r.IntN(60))}, {"uptime_s", int64(r.IntN(1 << 20))}}})
		}
	case x < 60: // one uncastable value
		k := pick(r, ev.numKeys)
		ev.o = ev.o.set(k, pick(r, uncastables))
		in.uncastable = 1
	case x < 70: // a "tenant" key inside the event: plain data of the envelope's tenant
		ev.o = append(ev.o, kv{"tenant", otherTenant(r, ev.tenant)})
		in.unknown, in.tenantKey = true, true
	}
	return in
}

// breakEvent turns a valid event into one with the given event-level error.
func (g *gen) breakEvent(ev *event, kind string) any {
	r := g.r
	switch kind {
	case "missing_metric":
		ev.o = ev.o.del(ev.metricKey)
	case "unknown_metric":
		ev.o = ev.o.set(ev.metricKey, pick(r, []string{"spaceship", "telemetry_v9", "heartbeat", "wx2"}))
	case "missing_timestamp":
		ev.o = ev.o.del(ev.tsKey)
	case "bad_timestamp":
		ev.o = ev.o.set(ev.tsKey, pick(r, []any{"yesterday", "2010-13-45T25:61:00Z", "not a time",
			int64(-1262304000), int64(-5), rawJSON("99999999999999999999999")}))
	case "bad_event":
		return pick(r, []any{int64(42), "event", []any{int64(1), int64(2)}, true})
	default:
		panic(kind)
	}
	return ev.o
}

func envelope(tenant string, ev any) []byte {
	return appendJSON(nil, obj{{"tenant", tenant}, {"event", ev}})
}

func envelopeMulti(tenant string, evs []any) []byte {
	return appendJSON(nil, obj{{"tenant", tenant}, {"events", evs}})
}

// validLine makes a line whose events are all valid.
func (g *gen) validLine() ([]byte, []evInfo, error) {
	r := g.r
	t := pickTenant(r)
	old := r.IntN(100) < 45
	k := 1
	if r.IntN(100) < 25 {
		k = 2 + r.IntN(4)
	}
	var evs []any
	var infos []evInfo
	for range k {
		ev, err := g.b.build(t, old)
		if err != nil {
			return nil, nil, err
		}
		infos = append(infos, g.decorate(&ev))
		evs = append(evs, ev.o)
	}
	if k == 1 {
		return envelope(t, evs[0]), infos, nil
	}
	g.exp.MultiEventLines++
	return envelopeMulti(t, evs), infos, nil
}

// specialLine makes one bad record of the given special kind. It returns the
// line, the valid events in it, and the error kinds it holds.
func (g *gen) specialLine(kind string) ([]byte, []evInfo, []string, error) {
	r := g.r
	t := pickTenant(r)
	ev, err := g.b.build(t, r.IntN(100) < 45)
	if err != nil {
		return nil, nil, nil, err
	}
	if rest, ok := strings.CutPrefix(kind, "multi:"); ok {
		k := 2 + r.IntN(4)
		bad := r.IntN(k)
		var evs []any
		var infos []evInfo
		for i := range k {
			if i == bad {
				evs = append(evs, g.breakEvent(&ev, rest))
				continue
			}
			v, err := g.b.build(t, r.IntN(100) < 45)
			if err != nil {
				return nil, nil, nil, err
			}
			infos = append(infos, g.decorate(&v))
			evs = append(evs, v.o)
		}
		g.exp.MultiEventLines++
		return envelopeMulti(t, evs), infos, []string{rest}, nil
	}
	switch kind {
	case "malformed_json":
		line := envelope(t, ev.o)
		cut := 10 + r.IntN(len(line)-12) // a proper prefix of an object is never valid JSON
		for cut > 10 && line[cut] >= 0x80 {
			cut--
		}
		return line[:cut], nil, []string{kind}, nil
	case "bad_envelope":
		var line []byte
		switch r.IntN(5) {
		case 0:
			line = appendJSON(nil, []any{obj{{"tenant", t}, {"event", ev.o}}})
		case 1:
			line = appendJSON(nil, obj{{"tenant", t}})
		case 2:
			line = appendJSON(nil, obj{{"tenant", t}, {"event", "not an object"}})
		case 3:
			line = appendJSON(nil, obj{{"tenant", t}, {"event", []any{ev.o}}})
		default:
			line = appendJSON(nil, int64(42))
		}
		return line, nil, []string{kind}, nil
	case "missing_tenant":
		return appendJSON(nil, obj{{"event", ev.o}}), nil, []string{kind}, nil
	case "unknown_tenant":
		return envelope(pick(r, ghostTenants), ev.o), nil, []string{kind}, nil
	case "too_deep":
		var deep any = int64(1)
		for range tooDeepLevels {
			deep = obj{{"l", deep}}
		}
		ev.o = append(ev.o, kv{"diag", deep})
		return envelope(t, ev.o), nil, []string{kind}, nil
	case "missing_metric", "unknown_metric", "missing_timestamp", "bad_timestamp":
		return envelope(t, g.breakEvent(&ev, kind)), nil, []string{kind}, nil
	}
	return nil, nil, nil, fmt.Errorf("unknown special %q", kind)
}

// writeTooLarge writes a single-event harbor record with > 10 MiB of padding
// inside a string, without holding it in memory.
func (g *gen) writeTooLarge(w io.Writer) error {
	ev, err := g.b.build("harbor", false)
	if err != nil {
		return err
	}
	line := envelope("harbor", ev.o)
	line = append(line[:len(line)-2], `,"firmware_dump":"`...)
	if _, err := w.Write(line); err != nil {
		return err
	}
	chunk := []byte(strings.Repeat("QUFBQUFBQUFB", 4096/12+1)[:4096])
	for n := 0; n < tooLargeBytes; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "\"}}\n")
	return err
}

type outFile struct {
	f  *os.File
	bw *bufio.Writer
	gz *gzip.Writer
	w  io.Writer
}

func createOut(path string, gz bool) (*outFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	o := &outFile{f: f, bw: bufio.NewWriterSize(f, 1<<20)}
	o.w = o.bw
	if gz {
		o.gz, _ = gzip.NewWriterLevel(o.bw, gzip.BestCompression) // zero header: no name, no mod time
		o.w = o.gz
	}
	return o, nil
}

func (o *outFile) Close() error {
	var errs []error
	if o.gz != nil {
		errs = append(errs, o.gz.Close())
	}
	errs = append(errs, o.bw.Flush(), o.f.Close())
	return errors.Join(errs...)
}

func run(c config) (*Expected, error) {
	src, err := openSources(c.data)
	if err != nil {
		return nil, err
	}
	defer src.flights.Close()
	r := rand.New(rand.NewPCG(c.seed, c.seed^0x9e3779b97f4a7c15))
	g := &gen{c: c, r: r, b: &builder{r: r, src: src, seq: map[string]int64{}}, exp: newExpected(c, src.name)}

	rawDir := filepath.Join(c.out, "raw")
	schemaDir := filepath.Join(c.out, "schemas")
	for _, d := range []string{rawDir, schemaDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Remove what an earlier run of this generator left (only its own names).
	old, _ := filepath.Glob(filepath.Join(rawDir, "part-*.jsonl*"))
	for _, p := range old {
		os.Remove(p)
	}
	if err := writeSchemas(schemaDir); err != nil {
		return nil, err
	}

	// File f holds lines [start(f), start(f+1)).
	start := func(f int) int { return int(int64(f) * int64(c.n) / int64(c.files)) }
	// too_large positions.
	nLarge := c.n / 1_000_000
	if c.tooLarge && nLarge == 0 {
		nLarge = 1
	}
	largeAt := map[int]bool{}
	if nLarge == 1 {
		s := start(c.files - 1)
		largeAt[s+(c.n-s)/2] = true
	} else {
		for j := range nLarge {
			largeAt[int(int64(2*j+1)*int64(c.n)/int64(2*nLarge))] = true
		}
	}

	var out *outFile
	var slots map[int]string
	for i := 0; i < c.n; i++ {
		if f := len(g.exp.Files); f < c.files && i == start(f) {
			if out != nil {
				if err := out.Close(); err != nil {
					return nil, err
				}
			}
			gz := c.gzip || (c.sample && f == c.files-1)
			name := fmt.Sprintf("part-%05d.jsonl", f)
			if gz {
				name += ".gz"
			}
			if out, err = createOut(filepath.Join(rawDir, name), gz); err != nil {
				return nil, err
			}
			g.exp.Files = append(g.exp.Files, fileCount{Name: "raw/" + name})
			g.cur = &g.exp.Files[len(g.exp.Files)-1]
		}
		if i%blockSize == 0 {
			perm := r.Perm(blockSize)
			slots = map[int]string{}
			for j, s := range specials {
				slots[i+perm[j]] = s
			}
		}
		g.exp.Lines++
		g.cur.Lines++
		if largeAt[i] {
			if err := g.writeTooLarge(out.w); err != nil {
				return nil, err
			}
			g.countError("too_large")
			continue
		}
		var line []byte
		if s, ok := slots[i]; ok {
			l, infos, kinds, err := g.specialLine(s)
			if err != nil {
				return nil, err
			}
			for _, in := range infos {
				g.countValid(in, true)
			}
			for _, k := range kinds {
				g.countError(k)
			}
			line = l
		} else if len(g.ring) > 0 && r.IntN(100) < redeliverPct {
			rl := g.ring[r.IntN(len(g.ring))]
			for _, in := range rl.infos {
				g.countValid(in, false)
			}
			g.exp.RedeliveredLines++
			if len(rl.infos) > 1 {
				g.exp.MultiEventLines++
			}
			line = rl.line
		} else {
			l, infos, err := g.validLine()
			if err != nil {
				return nil, err
			}
			for _, in := range infos {
				g.countValid(in, true)
			}
			rl := ringLine{line: l, infos: infos}
			if len(g.ring) < ringSize {
				g.ring = append(g.ring, rl)
			} else {
				g.ring[g.ringI] = rl
				g.ringI = (g.ringI + 1) % ringSize
			}
			line = l
		}
		if _, err := out.w.Write(line); err != nil {
			return nil, err
		}
		if _, err := out.w.Write([]byte{'\n'}); err != nil {
			return nil, err
		}
	}
	if err := out.Close(); err != nil {
		return nil, err
	}

	b, err := json.MarshalIndent(g.exp, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.out, "expected.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return g.exp, nil
}

func writeSchemas(dir string) error {
	for _, t := range tenants {
		if err := writeSchema(dir, t, "bench/gen"); err != nil {
			return err
		}
	}
	return nil
}

// writeSchema writes one tenant's schema file, headed by who wrote it.
func writeSchema(dir string, t tenantDef, by string) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Tenant schema for %q, written by %s (do not edit: regenerate).\n", t.Tenant, by)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(t); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, t.Tenant+".yaml"), buf.Bytes(), 0o644)
}
