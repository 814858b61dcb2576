package stage1

import (
	"context"
	"time"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// Batch applies stage 1 to raw records that are not lines of a file — the
// records of a Kinesis page, or of a raw-archive file — and collects its
// output as archive blocks, like FromChunks does for files. The ingest
// time of each event is the time its record arrived (not the clock), so
// that processing a record again, after a restart or in a replay, makes
// exactly the same staged event and error records.
type Batch struct {
	p      *Processor
	out    *blockOutput
	now    time.Time
	before Stats
}

// NewBatch compiles the tenants' schemas for a Batch. opts.Now is ignored.
func NewBatch(tenants []*schema.Tenant, opts Options) (*Batch, error) {
	b := &Batch{out: newBlockOutput(tenants)}
	opts.Now = func() time.Time { return b.now }
	p, err := NewProcessor(tenants, opts)
	if err != nil {
		return nil, err
	}
	b.p = p
	return b, nil
}

// Add applies stage 1 to one raw record from src that arrived at arrived.
func (b *Batch) Add(raw []byte, src records.Lineage, arrived time.Time) {
	b.now = arrived.UTC()
	b.out.cur = ""
	b.p.Process(raw, src, b.out)
	b.out.record(int64(len(raw)))
}

// Reject records raw, which arrived at arrived, as one customer error of
// kind k (Processor.Reject).
func (b *Batch) Reject(k records.Kind, raw []byte, src records.Lineage, arrived time.Time, msg string) {
	b.now = arrived.UTC()
	b.out.cur = ""
	b.p.Reject(k, raw, src, msg, b.out)
	b.out.record(int64(len(raw)))
}

// Flush returns what the records added since the last Flush made: staged
// events as Avro blocks by staged partition, error records as JSON-lines
// blocks by error partition. It adds the stage-1 counters (events,
// staged, customer errors, per tenant) to ctx's metrics.
func (b *Batch) Flush(ctx context.Context) (staged, errs map[string]archive.Block, err error) {
	staged, errs, usage, err := b.out.finish()
	if err != nil {
		b.before = b.p.Stats
		return nil, nil, err
	}
	countTenants(ctx, usage)
	countStats(ctx, b.before, b.p.Stats)
	b.before = b.p.Stats
	return staged, errs, nil
}

// countStats adds the difference of two Stats to the stage-1 counters.
func countStats(ctx context.Context, before, after Stats) {
	metrics.Counter(metrics.EventsIn).Inc(ctx, after.Events-before.Events)
	metrics.Counter(metrics.Staged).Inc(ctx, after.Staged-before.Staged)
	metrics.Counter(metrics.CustomerErrors).Inc(ctx, after.Errors-before.Errors)
	metrics.Counter(metrics.Uncastable).Inc(ctx, after.Uncastable-before.Uncastable)
	metrics.Counter(metrics.WithUnknown).Inc(ctx, after.WithUnknown-before.WithUnknown)
}
