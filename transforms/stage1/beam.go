package stage1

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/io/archive"
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
}

// FromChunks applies stage 1 to chunks of raw lines (records.Chunk). It
// returns staged events as Avro blocks keyed by their staged-archive
// partition, and customer errors as JSON-lines blocks keyed by their
// error-archive partition.
func FromChunks(s beam.Scope, cfg Config, chunks beam.PCollection) (staged, errs beam.PCollection) {
	s = s.Scope("stage1")
	snapshot, err := json.Marshal(cfg.Tenants)
	if err != nil {
		panic(fmt.Sprintf("stage1: encoding schemas: %v", err))
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = FileLineLimit
	}
	return beam.ParDo2(s, &chunkFn{Schemas: snapshot, MaxRecordBytes: cfg.MaxRecordBytes, BareTenant: cfg.BareTenant}, chunks)
}

type chunkFn struct {
	Schemas        []byte // JSON of []*schema.Tenant
	MaxRecordBytes int
	BareTenant     string

	p   *Processor
	out *blockOutput
}

func (f *chunkFn) Setup() error {
	var tenants []*schema.Tenant
	if err := json.Unmarshal(f.Schemas, &tenants); err != nil {
		return fmt.Errorf("stage1: decoding schemas: %w", err)
	}
	p, err := NewProcessor(tenants, Options{MaxRecordBytes: f.MaxRecordBytes, BareTenant: f.BareTenant})
	if err != nil {
		return err
	}
	f.p = p
	f.out = newBlockOutput()
	for _, t := range tenants {
		f.out.known[t.Tenant] = true
	}
	return nil
}

func (f *chunkFn) ProcessElement(ctx context.Context, c records.Chunk, emitStaged, emitErr func(string, archive.Block)) error {
	before := f.p.Stats
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
			f.out.record(o.Size)
			f.p.Stats.Records++
			f.p.Stats.Events++
			f.p.Stats.Errors++
			f.out.Error(&records.Error{
				Kind: records.TooLarge, Stage: StageName, Source: src, Time: time.Now().UTC(), Events: 1,
				Message: fmt.Sprintf("line is %d bytes, over the limit of %d", o.Size, f.MaxRecordBytes),
				Raw:     o.Prefix, RawSize: int(o.Size),
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
			metrics.Counter("blank_lines").Inc(ctx, 1)
			continue
		}
		f.out.cur = ""
		f.p.Process(rec, src, f.out)
		f.out.record(int64(len(rec)))
	}
	if err := f.out.flush(emitStaged, emitErr); err != nil {
		clear(f.out.usage)
		return err
	}
	f.out.countTenants(ctx)
	countStats(ctx, before, f.p.Stats)
	return nil
}

// blockOutput collects a chunk's output into encoded blocks per partition,
// and what each tenant sent (per-tenant usage counters).
type blockOutput struct {
	staged map[string]*archive.Block
	errs   map[string]*archive.Block
	err    error

	known map[string]bool         // tenants of the schema snapshot
	usage map[string]*tenantUsage // by tenant (or metrics.UnknownTenant)
	cur   string                  // tenant of the record being processed
}

// tenantUsage is one tenant's share of a chunk.
type tenantUsage struct {
	records, bytes, events, staged int64
	errs                           map[string]int64 // "customer_error.<kind>" or "processing_error.<kind>" → events
}

func newBlockOutput() *blockOutput {
	return &blockOutput{staged: map[string]*archive.Block{}, errs: map[string]*archive.Block{},
		known: map[string]bool{}, usage: map[string]*tenantUsage{}}
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

// countTenants adds the chunk's per-tenant usage to the tenant counters.
func (o *blockOutput) countTenants(ctx context.Context) {
	for id, u := range o.usage {
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
	clear(o.usage)
}

func (o *blockOutput) Staged(ev *records.Event) {
	u := o.tenant(ev.Tenant)
	u.events++
	u.staged++
	key := archive.StagedPartition(ev.Timestamp)
	b := o.staged[key]
	if b == nil {
		b = &archive.Block{}
		o.staged[key] = b
	}
	data, err := archive.AppendEvent(b.Data, ev)
	if err != nil {
		o.err = fmt.Errorf("stage1: encoding event %s: %w", ev.ID, err)
		return
	}
	b.Data = data
	b.Count++
}

func (o *blockOutput) Error(e *records.Error) {
	u := o.tenant(e.Tenant)
	u.events += int64(e.Events)
	pfx := metrics.CustomerErrorPfx
	if e.Class() == records.Processing {
		pfx = metrics.ProcessingErrorPfx
	}
	u.errs[pfx+e.Kind.String()] += int64(e.Events)
	key := archive.ErrorPartition(e.Class(), e.Time)
	b := o.errs[key]
	if b == nil {
		b = &archive.Block{}
		o.errs[key] = b
	}
	b.Data = archive.AppendErrorJSON(b.Data, e)
	b.Count++
}

func (o *blockOutput) flush(emitStaged, emitErr func(string, archive.Block)) error {
	if o.err != nil {
		err := o.err
		o.err = nil
		clear(o.staged)
		clear(o.errs)
		return err
	}
	for k, b := range o.staged {
		emitStaged(k, *b)
	}
	for k, b := range o.errs {
		emitErr(k, *b)
	}
	clear(o.staged)
	clear(o.errs)
	return nil
}
