package stage1

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/internal/workpool"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/jsonlio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

func init() {
	register.DoFn4x1[context.Context, records.Chunk, func(string, archive.Block), func(string, archive.Block), error](&chunkFn{})
	register.Emitter2[string, archive.Block]()
}

// Config configures the stage-1 transform.
type Config struct {
	Tenants        []*schema.Tenant // a snapshot of the current schemas
	MaxRecordBytes int              // default FileLineLimit for files
	BareTenant     string           // see Options.BareTenant
	// ReleaseChunks hands each chunk's memory back to the reader
	// (jsonlio.Release) once its lines are processed. Set it only where
	// FromChunks is the chunks' one consumer.
	ReleaseChunks bool
}

// FromChunks applies stage 1 to chunks of raw lines (records.Chunk). It
// returns staged events as Avro blocks keyed by their staged-archive
// partition, and customer errors as JSON-lines blocks keyed by their
// error-archive partition. The staged blocks are compressed
// (archive.Block.Snappy): archive.WriteStaged takes them as they are;
// anything else reads them with Block.Plain.
func FromChunks(s beam.Scope, cfg Config, chunks beam.PCollection) (staged, errs beam.PCollection) {
	s = s.Scope("stage1")
	snapshot, err := json.Marshal(cfg.Tenants)
	if err != nil {
		panic(fmt.Sprintf("stage1: encoding schemas: %v", err))
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = FileLineLimit
	}
	return beam.ParDo2(s, &chunkFn{Schemas: snapshot, MaxRecordBytes: cfg.MaxRecordBytes, BareTenant: cfg.BareTenant, ReleaseChunks: cfg.ReleaseChunks}, chunks)
}

type chunkFn struct {
	Schemas        []byte // JSON of []*schema.Tenant
	MaxRecordBytes int
	BareTenant     string
	ReleaseChunks  bool

	// Stage 1 is the CPU of a batch ingest: chunks are processed on one
	// goroutine per CPU, each with its own Processor, and emitted here in
	// input order (measured: bench/RESULTS.md).
	pool *workpool.Pool[records.Chunk, chunkResult]
}

func (f *chunkFn) Setup() error {
	var tenants []*schema.Tenant
	if err := json.Unmarshal(f.Schemas, &tenants); err != nil {
		return fmt.Errorf("stage1: decoding schemas: %w", err)
	}
	workers := make([]*chunkWorker, runtime.GOMAXPROCS(0))
	for i := range workers {
		p, err := NewProcessor(tenants, Options{MaxRecordBytes: f.MaxRecordBytes, BareTenant: f.BareTenant})
		if err != nil {
			return err
		}
		out := newBlockOutput(tenants)
		out.staged.compress = true // the blocks go only to archive.WriteStaged
		workers[i] = &chunkWorker{p: p, out: out}
	}
	f.pool = workpool.New(workpool.Options{Workers: len(workers)}, func(w int, c records.Chunk) chunkResult {
		r := workers[w].process(c)
		if f.ReleaseChunks {
			jsonlio.Release(c) // r holds copies: encoded, compressed or cloned
		}
		return r
	})
	return nil
}

func (f *chunkFn) Teardown() {
	if f.pool != nil {
		f.pool.Close()
	}
}

func (f *chunkFn) StartBundle(context.Context, func(string, archive.Block), func(string, archive.Block)) {
	f.pool.Discard() // results of a failed bundle, if any
}

func (f *chunkFn) ProcessElement(ctx context.Context, c records.Chunk, emitStaged, emitErr func(string, archive.Block)) error {
	return f.pool.Submit(c, func(r chunkResult) error { return r.emit(ctx, emitStaged, emitErr) })
}

func (f *chunkFn) FinishBundle(ctx context.Context, emitStaged, emitErr func(string, archive.Block)) error {
	return f.pool.Drain(func(r chunkResult) error { return r.emit(ctx, emitStaged, emitErr) })
}

// chunkWorker is one goroutine's stage 1.
type chunkWorker struct {
	p   *Processor
	out *blockOutput
}

// chunkResult is one chunk's stage-1 output, handed back to the DoFn.
type chunkResult struct {
	staged, errs  map[string]archive.Block
	usage         map[string]*tenantUsage
	before, after Stats // the worker's Processor stats around this chunk
	blank         int64
	err           error
}

func (w *chunkWorker) process(c records.Chunk) chunkResult {
	before := w.p.Stats
	var blank int64
	src := records.Lineage{File: c.File}
	line := c.FirstLine
	over := c.Oversize
	data := c.Data
	for {
		// Oversize lines stand in their place in the line sequence.
		for len(over) > 0 && over[0].Line == line {
			o := over[0]
			over = over[1:]
			src.Line = line
			w.out.record(o.Size)
			w.p.Stats.Records++
			w.p.Stats.Events++
			w.p.Stats.Errors++
			w.out.Error(&records.Error{
				Kind: records.TooLarge, Stage: StageName, Source: src, Time: time.Now().UTC(), Events: 1,
				Message: fmt.Sprintf("line is %d bytes, over the limit of %d", o.Length, w.p.opts.MaxRecordBytes),
				Raw:     o.Prefix, RawSize: int(o.Length),
			})
			line++
		}
		if len(data) == 0 {
			break
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		rec := data[:i]
		data = data[min(i+1, len(data)):]
		src.Line = line
		line++
		if len(bytes.TrimSpace(rec)) == 0 {
			blank++
			continue
		}
		w.out.cur = ""
		w.p.Process(rec, src, w.out)
		w.out.record(int64(len(rec)))
	}
	r := chunkResult{blank: blank, before: before, after: w.p.Stats}
	r.staged, r.errs, r.usage, r.err = w.out.finish()
	return r
}

// emit emits a chunk's blocks and adds its counters. A chunk that failed
// to encode fails the bundle (and is retried whole).
func (r chunkResult) emit(ctx context.Context, emitStaged, emitErr func(string, archive.Block)) error {
	if r.err != nil {
		return r.err
	}
	for k, b := range r.staged {
		emitStaged(k, b)
	}
	for k, b := range r.errs {
		emitErr(k, b)
	}
	if r.blank > 0 {
		metrics.Counter("blank_lines").Inc(ctx, r.blank)
	}
	countTenants(ctx, r.usage)
	countStats(ctx, r.before, r.after)
	return nil
}

// blockOutput collects a chunk's output into encoded blocks per partition,
// and what each tenant sent (per-tenant usage counters).
type blockOutput struct {
	staged, errs partBlocks
	err          error
	// dayKeys caches the staged partition of each event day: formatting
	// the date per event was 3% of ingest (CPU profile).
	dayKeys map[int64]string

	known map[string]bool         // tenants of the schema snapshot
	usage map[string]*tenantUsage // by tenant (or metrics.UnknownTenant)
	cur   string                  // tenant of the record being processed
}

// partBlocks encodes the records of many partitions back to back into one
// reused buffer and remembers which spans of it belong to which partition;
// take copies each partition out as one block of its exact size. Growing a
// buffer per partition by doubling cost a tenth of ingest's CPU (profile:
// growslice under the Avro encoder), because a chunk of historical data
// touches hundreds of days.
type partBlocks struct {
	buf   []byte
	parts map[string]*partSpans
	// compress makes take return grouped Snappy blocks (archive.Block.Groups),
	// for output that goes straight into Avro container files: each block
	// is compressed on the worker that made it, and the writer holds a
	// third of the bytes while it gathers a partition's blocks (so it
	// writes fewer, larger files).
	compress   bool
	join, zbuf []byte // scratch: a partition's spans made contiguous; compressed
}

type partSpans struct {
	count int64
	size  int
	spans [][2]int // [start, end) in buf
	// groups splits the spans by (tenant, metric) when pb.compress: each
	// group becomes its own Snappy block, so the archive writer can index
	// its files by group without decompressing (archive.IndexKey).
	groups []*groupSpans
	last   *groupSpans
}

type groupSpans struct {
	tenant, metric string
	count          int64
	size           int
	spans          [][2]int
}

// added records that buf[start:] is one more record of partition key,
// of the given tenant and metric.
func (pb *partBlocks) added(key, tenant, metric string, start int) {
	p := pb.parts[key]
	if p == nil {
		if pb.parts == nil {
			pb.parts = map[string]*partSpans{}
		}
		p = &partSpans{}
		pb.parts[key] = p
	}
	end := len(pb.buf)
	p.count++
	p.size += end - start
	if !pb.compress {
		p.spans = addSpan(p.spans, start, end)
		return
	}
	g := p.last
	if g == nil || g.tenant != tenant || g.metric != metric {
		g = nil
		for _, c := range p.groups {
			if c.tenant == tenant && c.metric == metric {
				g = c
				break
			}
		}
		if g == nil {
			g = &groupSpans{tenant: tenant, metric: metric}
			p.groups = append(p.groups, g)
		}
		p.last = g
	}
	g.count++
	g.size += end - start
	g.spans = addSpan(g.spans, start, end)
}

// addSpan adds [start, end) to spans, extending the last span when they
// meet (consecutive records of one partition: one span).
func addSpan(spans [][2]int, start, end int) [][2]int {
	if n := len(spans); n > 0 && spans[n-1][1] == start {
		spans[n-1][1] = end
		return spans
	}
	return append(spans, [2]int{start, end})
}

// maxKeptBuf bounds the encoding buffer kept between chunks: a chunk is
// 1 MiB of lines, so its records encode to a few MiB.
const maxKeptBuf = 16 << 20

// take hands over the partitions as blocks of their exact size and
// empties pb, keeping its buffer for the next chunk.
func (pb *partBlocks) take() map[string]archive.Block {
	out := make(map[string]archive.Block, len(pb.parts))
	for k, p := range pb.parts {
		if !pb.compress {
			out[k] = archive.Block{Count: p.count, Data: pb.appendSpans(make([]byte, 0, p.size), p.spans)}
			continue
		}
		slices.SortFunc(p.groups, func(a, b *groupSpans) int {
			return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.metric, b.metric))
		})
		b := archive.Block{Count: p.count, Snappy: true, Groups: make([]archive.Group, 0, len(p.groups))}
		pb.zbuf = pb.zbuf[:0] // the groups' blocks, copied out at their exact size below
		for _, g := range p.groups {
			plain := pb.buf[g.spans[0][0]:g.spans[0][1]]
			if len(g.spans) > 1 {
				pb.join = pb.appendSpans(pb.join[:0], g.spans)
				plain = pb.join
			}
			n := len(pb.zbuf)
			pb.zbuf = archive.AppendSnappy(pb.zbuf, plain)
			b.Groups = append(b.Groups, archive.Group{Tenant: g.tenant, Metric: g.metric, Count: g.count,
				Plain: int64(g.size), Len: int64(len(pb.zbuf) - n)})
		}
		b.Data = bytes.Clone(pb.zbuf)
		out[k] = b
	}
	clear(pb.parts)
	pb.buf = pb.buf[:0]
	if cap(pb.buf) > maxKeptBuf {
		pb.buf = nil
	}
	if cap(pb.join) > maxKeptBuf || cap(pb.zbuf) > maxKeptBuf {
		pb.join, pb.zbuf = nil, nil
	}
	return out
}

// appendSpans appends the records of spans to dst.
func (pb *partBlocks) appendSpans(dst []byte, spans [][2]int) []byte {
	for _, sp := range spans {
		dst = append(dst, pb.buf[sp[0]:sp[1]]...)
	}
	return dst
}

// tenantUsage is one tenant's share of a chunk.
type tenantUsage struct {
	records, bytes, events, staged int64
	errs                           map[string]int64 // "customer_error.<kind>" or "processing_error.<kind>" → events
}

func newBlockOutput(tenants []*schema.Tenant) *blockOutput {
	o := &blockOutput{dayKeys: map[int64]string{}, known: map[string]bool{}, usage: map[string]*tenantUsage{}}
	for _, t := range tenants {
		o.known[t.Tenant] = true
	}
	return o
}

// tenant returns the usage entry of a tenant id as found in output. Only
// tenants of the snapshot get their own counters: an unknown_tenant error
// names whatever the envelope claimed, which must not create counters.
func (o *blockOutput) tenant(id string) *tenantUsage {
	if !o.known[id] {
		id = metrics.UnknownTenant
	}
	if o.cur == "" || o.cur == metrics.UnknownTenant {
		o.cur = id
	}
	u := o.usage[id]
	if u == nil {
		u = &tenantUsage{errs: map[string]int64{}}
		o.usage[id] = u
	}
	return u
}

// record counts one raw record of size bytes for the tenant its outputs
// named (unknown when none did).
func (o *blockOutput) record(size int64) {
	id := o.cur
	if id == "" {
		id = metrics.UnknownTenant
	}
	u := o.tenant(id)
	u.records++
	u.bytes += size
	o.cur = ""
}

// countTenants adds a chunk's per-tenant usage to the tenant counters.
func countTenants(ctx context.Context, usage map[string]*tenantUsage) {
	for id, u := range usage {
		inc := func(name string, n int64) {
			if n != 0 {
				metrics.TenantCounter(id, StageName, name).Inc(ctx, n)
			}
		}
		inc("records", u.records)
		inc("raw_bytes", u.bytes)
		inc("events", u.events)
		inc("staged", u.staged)
		for k, n := range u.errs {
			inc(k, n)
		}
	}
}

func (o *blockOutput) Staged(ev *records.Event) {
	data, err := archive.AppendEvent(o.staged.buf, ev)
	o.appended(ev, data, err)
}

// stagedFlat encodes ev at once (blockOutput is an encodingOutput).
func (o *blockOutput) stagedFlat(ev *records.Event, fields []records.Field, unknown []records.RawField) {
	data, err := archive.AppendFlat(o.staged.buf, ev, fields, unknown)
	o.appended(ev, data, err)
}

// appended adds ev, just encoded at the end of data, to its partition.
func (o *blockOutput) appended(ev *records.Event, data []byte, err error) {
	u := o.tenant(ev.Tenant)
	u.events++
	u.staged++
	if err != nil {
		o.err = fmt.Errorf("stage1: encoding event %s: %w", ev.ID, err)
		return
	}
	start := len(o.staged.buf)
	o.staged.buf = data
	o.staged.added(o.stagedKey(ev.Timestamp), ev.Tenant, ev.Metric, start)
}

// stagedKey returns the staged partition of an event time.
func (o *blockOutput) stagedKey(ts int64) string {
	const dayMillis = 24 * 60 * 60 * 1000
	day := ts / dayMillis
	if ts%dayMillis < 0 {
		day-- // floor: before 1970 too
	}
	key, ok := o.dayKeys[day]
	if !ok {
		if len(o.dayKeys) >= 1<<14 { // bounded in a long-running stream
			clear(o.dayKeys)
		}
		key = archive.StagedPartition(ts)
		o.dayKeys[day] = key
	}
	return key
}

func (o *blockOutput) Error(e *records.Error) {
	u := o.tenant(e.Tenant)
	u.events += int64(e.Events)
	pfx := metrics.CustomerErrorPfx
	if e.Class() == records.Processing {
		pfx = metrics.ProcessingErrorPfx
	}
	u.errs[pfx+e.Kind.String()] += int64(e.Events)
	start := len(o.errs.buf)
	o.errs.buf = archive.AppendErrorJSON(o.errs.buf, e)
	o.errs.added(archive.ErrorPartition(e.Class(), e.Time), "", "", start)
}

// finish hands over everything since the last finish: the blocks at their
// exact size, the per-tenant usage, and the first encoding error (the
// blocks are incomplete then).
func (o *blockOutput) finish() (staged, errs map[string]archive.Block, usage map[string]*tenantUsage, err error) {
	staged, errs, usage, err = o.staged.take(), o.errs.take(), o.usage, o.err
	o.usage, o.err = map[string]*tenantUsage{}, nil
	return staged, errs, usage, err
}
