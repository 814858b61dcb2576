// Package streaming holds the transforms of `fineo stream`: stage 1 and
// stage 2 over Kinesis pages, and the windowed commit that archives each
// window's records and then advances the durable checkpoint.
//
//	kinesisio.Read ──ShardPage──▶ Stage1Pages ──PageOut──▶ window (1m) ──▶ GroupByKey(shard) ──▶ Commit
//	(raw stream)                  stage 1; staged events to the    │                             │ raw, staged and error files,
//	                              nearline table (fused) and/or   │                             │ one per partition per window
//	                              the staged stream               │                             ▼ then the checkpoint table
//	kinesisio.Read ──ShardPage──▶ Stage2Pages ──PageOut───────────┘
//	(staged stream)               staged events to the nearline table
//
// The element is a page (up to thousands of records), never a record, so
// the runner's per-element cost is paid per page.
//
// Delivery: a page's records reach the nearline table before the page
// leaves its DoFn, and the checkpoint of a shard moves past a page only
// after the window holding it is archived — so everything at or before a
// checkpoint is in the table and the archive. A job restarted from the
// checkpoint table reads the rest again; records read twice are written to
// the same nearline keys (the key is the event id, derived from content)
// and archive files named by window, shard and first sequence number.
package streaming

import (
	"context"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/stage1"

	"encoding/json"
)

// Counters.
const (
	PagesProcessed = "pages_processed"
	// SchemaRefreshes counts the times a stage-1 worker took up changed
	// schemas from the store while running.
	SchemaRefreshes     = "schema_refreshes"
	StagedStreamWritten = "staged_stream_written"
	StagedStreamFailed  = "staged_stream_failed"
	StagedStreamRetries = "staged_stream_retries"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*PageOut)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*Part)(nil)).Elem())
	register.DoFn4x1[context.Context, beam.EventTime, kinesisio.ShardPage, func(beam.EventTime, string, PageOut), error](&stage1Fn{})
	register.DoFn4x1[context.Context, beam.EventTime, kinesisio.ShardPage, func(beam.EventTime, string, PageOut), error](&stage2Fn{})
	register.Emitter3[beam.EventTime, string, PageOut]()
}

// PageOut is what one page of a stream became: its place in the shard
// (After, Last: see kinesisio.ShardPage) and the encoded records to
// archive, by archive partition.
type PageOut struct {
	Stream, Shard, After, Last string
	First                      string // the first record's sequence number ("" for a page of none)
	Records                    int64
	End                        bool          // the page ends its closed shard (kinesisio.ShardPage.End)
	Raw                        archive.Block // archive.RawSchema records; empty in stage 2
	Parts                      []Part        // staged/..., errors/customer/..., errors/processing/...
}

// Part is one archive partition's block.
type Part struct {
	Partition string
	Block     archive.Block
}

// pageOut is the PageOut of page, before its outputs are added.
func pageOut(page kinesisio.ShardPage) PageOut {
	out := PageOut{Stream: page.Stream, Shard: page.Shard, After: page.After, Last: page.Last(),
		Records: int64(len(page.Records)), End: page.End}
	if len(page.Records) > 0 {
		out.First = page.Records[0].Sequence
	}
	return out
}

// key groups pages by shard.
func (p *PageOut) key() string { return p.Stream + "/" + p.Shard }

// Stage1Config configures Stage1Pages.
type Stage1Config struct {
	// Tenants is the schemas the job starts with.
	Tenants []*schema.Tenant
	// SchemaStore, when set, is the store Tenants came from (a directory,
	// dynamodb://TABLE, ...): each worker reads it again every
	// SchemaRefresh (default 1m) and resolves the pages after it with what
	// changed; each staged event records the version it was resolved with.
	SchemaStore    string
	SchemaRefresh  time.Duration
	MaxRecordBytes int // default stage1.KinesisRecordLimit
	// Table, when set, is the nearline table staged events are written to
	// (stage 2 fused into stage 1).
	Table  string
	Items  dynamodbio.ItemOptions
	Layout dynamodbio.LayoutOptions
	// StagedStream, when set, is the Kinesis stream staged events are put
	// to, one record each (Avro binary, archive.StagedSchema), partition
	// key the event id (kinesisio.EventPartitionKey).
	StagedStream string
	Writer       dynamodbio.WriterOptions
	Put          kinesisio.WriterOptions
}

// Stage1Pages applies stage 1 to pages of the raw stream, keyed by shard.
func Stage1Pages(s beam.Scope, cfg Stage1Config, pages beam.PCollection) beam.PCollection {
	s = s.Scope("streaming.Stage1")
	snapshot, err := json.Marshal(cfg.Tenants)
	if err != nil {
		panic(fmt.Sprintf("streaming: encoding schemas: %v", err))
	}
	if cfg.SchemaRefresh <= 0 {
		cfg.SchemaRefresh = DefaultSchemaRefresh
	}
	return beam.ParDo(s, &stage1Fn{Schemas: snapshot, SchemaStore: cfg.SchemaStore, RefreshMs: cfg.SchemaRefresh.Milliseconds(), MaxRecordBytes: cfg.MaxRecordBytes, Table: cfg.Table, Items: cfg.Items, Layout: cfg.Layout,
		StagedStream: cfg.StagedStream, Writer: cfg.Writer, Put: cfg.Put}, pages)
}

// Stage2Config configures Stage2Pages.
type Stage2Config struct {
	Table  string
	Items  dynamodbio.ItemOptions
	Layout dynamodbio.LayoutOptions
	Writer dynamodbio.WriterOptions
}

// Stage2Pages writes pages of the staged stream into the nearline table,
// keyed by shard; only processing errors are archived after it.
func Stage2Pages(s beam.Scope, cfg Stage2Config, pages beam.PCollection) beam.PCollection {
	s = s.Scope("streaming.Stage2")
	return beam.ParDo(s, &stage2Fn{Table: cfg.Table, Items: cfg.Items, Layout: cfg.Layout, Writer: cfg.Writer}, pages)
}

// clients are the AWS clients of the page DoFns; tests replace newClients
// to inject faults.
type clients struct {
	dynamo  dynamodbio.API
	kinesis kinesisio.API
}

var newClients = func(ctx context.Context, dynamo, kin bool) (clients, error) {
	var c clients
	if dynamo {
		d, err := dynamodbio.NewClient(ctx)
		if err != nil {
			return c, err
		}
		c.dynamo = d
	}
	if kin {
		k, err := kinesisio.NewClient(ctx)
		if err != nil {
			return c, err
		}
		c.kinesis = k
	}
	return c, nil
}

type stage1Fn struct {
	Schemas        []byte // JSON of []*schema.Tenant
	SchemaStore    string
	RefreshMs      int64
	MaxRecordBytes int
	Table          string
	Items          dynamodbio.ItemOptions
	Layout         dynamodbio.LayoutOptions
	StagedStream   string
	Writer         dynamodbio.WriterOptions
	Put            kinesisio.WriterOptions

	batch  *stage1.Batch
	c      clients
	layout *dynamodbio.Layout
	// The schemas in use: their versions, the store and when it was read.
	versions string
	store    schema.Store
	read     time.Time
}

// DefaultSchemaRefresh is how often a running stream reads its schema
// store again.
const DefaultSchemaRefresh = time.Minute

func (f *stage1Fn) Setup(ctx context.Context) error {
	var tenants []*schema.Tenant
	if err := json.Unmarshal(f.Schemas, &tenants); err != nil {
		return fmt.Errorf("streaming: decoding schemas: %w", err)
	}
	b, err := stage1.NewBatch(tenants, stage1.Options{MaxRecordBytes: f.MaxRecordBytes})
	if err != nil {
		return err
	}
	f.batch, f.versions, f.read = b, versionsOf(tenants), time.Now()
	if f.c, err = newClients(ctx, f.Table != "", f.StagedStream != ""); err != nil || f.Table == "" {
		return err
	}
	f.layout, err = dynamodbio.OpenLayout(ctx, f.c.dynamo, f.Table, f.Layout)
	return err
}

// addRecord adds a Kinesis record to b: its user records when the KPL
// aggregated it (each with its sub-sequence number in the lineage,
// "<sequence>:<index>"), else the record itself. An aggregate that does
// not check out is one customer error (bad_aggregate) that keeps its bytes.
func addRecord(b *stage1.Batch, r *kinesisio.PageRecord, src records.Lineage) {
	arrived := time.UnixMilli(r.ArrivalMillis)
	src.Sequence = r.Sequence
	if !kinesisio.IsAggregated(r.Data) {
		b.Add(r.Data, src, arrived)
		return
	}
	urs, err := kinesisio.Deaggregate(r.Data)
	if err != nil {
		b.Reject(records.BadAggregate, r.Data, src, arrived, err.Error())
		return
	}
	for i, u := range urs {
		src.Sequence = r.Sequence + ":" + strconv.Itoa(i)
		b.Add(u.Data, src, arrived)
	}
}

// refreshSchemas reads the schema store when the last read is older than
// the refresh period, and swaps in a new stage 1 if any tenant's version
// changed. Pages are resolved whole with one set of schemas. A store that
// cannot be read, or schemas that do not compile, leave the current ones
// in use (logged, and read again next period).
func (f *stage1Fn) refreshSchemas(ctx context.Context) {
	if f.SchemaStore == "" || time.Since(f.read) < time.Duration(f.RefreshMs)*time.Millisecond {
		return
	}
	f.read = time.Now()
	var err error
	if f.store == nil {
		if f.store, err = schema.OpenStore(ctx, f.SchemaStore); err != nil {
			log.Warnf(ctx, "streaming: schema store: %v (the schemas in use stay)", err)
			return
		}
	}
	tenants, err := schema.LoadAll(ctx, f.store)
	if err != nil {
		log.Warnf(ctx, "streaming: reading schemas: %v (the schemas in use stay)", err)
		return
	}
	v := versionsOf(tenants)
	if v == f.versions {
		return
	}
	b, err := stage1.NewBatch(tenants, stage1.Options{MaxRecordBytes: f.MaxRecordBytes})
	if err != nil {
		log.Warnf(ctx, "streaming: new schemas do not compile: %v (the schemas in use stay)", err)
		return
	}
	log.Infof(ctx, "streaming: schemas changed (%s → %s)", f.versions, v)
	f.batch, f.versions = b, v
	metrics.Counter(SchemaRefreshes).Inc(ctx, 1)
}

// versionsOf names a set of schemas by its tenants' versions and a hash of
// their content (a file edited in place keeps its version).
func versionsOf(tenants []*schema.Tenant) string {
	parts := make([]string, len(tenants))
	for i, t := range tenants {
		parts[i] = fmt.Sprintf("%s@%d", t.Tenant, t.Version)
	}
	slices.Sort(parts)
	h := fnv.New64a()
	for _, t := range tenants {
		b, _ := json.Marshal(t)
		h.Write(b)
	}
	return fmt.Sprintf("%s (%x)", strings.Join(parts, ","), h.Sum64())
}

func (f *stage1Fn) ProcessElement(ctx context.Context, et beam.EventTime, page kinesisio.ShardPage, emit func(beam.EventTime, string, PageOut)) error {
	f.refreshSchemas(ctx)
	out := pageOut(page)
	src := records.Lineage{Stream: page.Stream, Shard: page.Shard}
	for i := range page.Records {
		r := &page.Records[i]
		out.Raw.Data = archive.AppendRaw(out.Raw.Data, &archive.RawRecord{Stream: page.Stream, Shard: page.Shard,
			Sequence: r.Sequence, PartitionKey: r.PartitionKey, ArrivalMillis: r.ArrivalMillis, Data: r.Data})
		out.Raw.Count++
		addRecord(f.batch, r, src)
	}
	staged, errs, err := f.batch.Flush(ctx)
	if err != nil {
		return err
	}
	// The page's staged events, whatever their partitions, go to the sinks
	// in one write each: full 25-item batches and 500-record calls, one
	// retry budget per page.
	var all, procErrs archive.Block
	for part, b := range staged {
		out.Parts = append(out.Parts, Part{part, b})
		all = appendBlock(all, b)
	}
	if f.StagedStream != "" && all.Count > 0 {
		failed, err := putStaged(ctx, f.c.kinesis, f.StagedStream, all, f.Put)
		if err != nil && ctx.Err() != nil {
			return err // cancelled: the runner re-runs the page
		}
		procErrs = appendBlock(procErrs, failed)
	}
	if f.Table != "" && all.Count > 0 {
		failed, err := dynamodbio.WriteBlock(ctx, f.layout, all, f.Items, f.Writer)
		if err != nil && ctx.Err() != nil {
			return err
		}
		procErrs = appendBlock(procErrs, failed)
	}
	for part, b := range errs {
		out.Parts = append(out.Parts, Part{part, b})
	}
	out.addProcessingErrors(procErrs, page)
	metrics.Counter(PagesProcessed).Inc(ctx, 1)
	emit(commitTime(et), out.key(), out)
	return nil
}

// commitTime is the timestamp of a page's result: the page's own (its
// latest arrival time), or a moment ago if that is older — the archive
// windows are Firehose-like windows of when records were processed, not
// of when they arrived. Why: on prism, a page read after its shard was
// idle can carry a timestamp behind the watermark (the runner does not
// hold the watermark on the estimator of a restriction waiting in
// ResumeProcessingIn), and a GroupByKey drops late data. Every watermark
// upstream is at most now − 1s (the shard discovery sets its own there),
// so a timestamp of now − 0.5s is never late.
func commitTime(et beam.EventTime) beam.EventTime {
	return max(et, mtime.FromTime(time.Now().Add(-500*time.Millisecond)))
}

// addProcessingErrors adds a block of processing-error records to the
// page's processing-error partition (by the page's last arrival time, so
// that a page processed again lands in the same partition).
func (p *PageOut) addProcessingErrors(b archive.Block, page kinesisio.ShardPage) {
	if b.Count == 0 {
		return
	}
	t := time.Now()
	if n := len(page.Records); n > 0 {
		t = time.UnixMilli(page.Records[n-1].ArrivalMillis)
	}
	part := archive.ErrorPartition(records.Processing, t)
	for i := range p.Parts {
		if p.Parts[i].Partition == part {
			p.Parts[i].Block = appendBlock(p.Parts[i].Block, b)
			return
		}
	}
	p.Parts = append(p.Parts, Part{part, b})
}

// appendBlock appends b's records to a's. Both are plain blocks: the
// stream's blocks come from stage1.Batch, which does not compress.
func appendBlock(a, b archive.Block) archive.Block {
	if b.Count == 0 {
		return a
	}
	a.Data = append(a.Data, b.Data...)
	a.Count += b.Count
	return a
}

// putStaged puts a block's staged events to the staged stream, one record
// each; what cannot be written comes back as processing-error records.
func putStaged(ctx context.Context, api kinesisio.API, stream string, b archive.Block, o kinesisio.WriterOptions) (failed archive.Block, err error) {
	recs := make([]kinesisio.PutRecord, 0, b.Count)
	events := make(map[*byte]*records.Event, b.Count)
	data := b.Data
	for i := int64(0); i < b.Count; i++ {
		ev, rest, err := archive.DecodeEvent(data)
		if err != nil {
			// Our own encoding: a bug. Keep the count whole.
			for ; i < b.Count; i++ {
				failed.Data = archive.AppendErrorJSON(failed.Data, &records.Error{Kind: records.Internal, Stage: "stage1",
					Time: time.Now().UTC(), Events: 1, Message: "staged block does not decode: " + err.Error()})
				failed.Count++
			}
			break
		}
		rec := kinesisio.PutRecord{Data: data[:len(data)-len(rest)], PartitionKey: kinesisio.EventPartitionKey(ev.ID)}
		events[&rec.Data[0]] = ev
		recs = append(recs, rec)
		data = rest
	}
	stats, bad, err := kinesisio.PutRecords(ctx, api, stream, recs, o)
	metrics.Counter(StagedStreamWritten).Inc(ctx, stats.Written)
	metrics.Counter(StagedStreamRetries).Inc(ctx, stats.Retries)
	metrics.Counter(StagedStreamFailed).Inc(ctx, int64(len(bad)))
	for _, fr := range bad {
		e := &records.Error{Kind: records.WriteFailed, Stage: "stage1", Time: time.Now().UTC(), Events: 1,
			Message: fmt.Sprintf("putting to staged stream %s failed: %s", stream, fr.Reason)}
		if ev := events[&fr.Record.Data[0]]; ev != nil {
			e.Tenant, e.Source, e.Raw = ev.Tenant, ev.Source, archive.EventJSON(ev)
		}
		failed.Data = archive.AppendErrorJSON(failed.Data, e)
		failed.Count++
	}
	metrics.Counter(metrics.ProcessingErrors).Inc(ctx, failed.Count)
	return failed, err
}

type stage2Fn struct {
	Table  string
	Items  dynamodbio.ItemOptions
	Layout dynamodbio.LayoutOptions
	Writer dynamodbio.WriterOptions

	c      clients
	layout *dynamodbio.Layout
}

func (f *stage2Fn) Setup(ctx context.Context) (err error) {
	if f.c, err = newClients(ctx, true, false); err != nil {
		return err
	}
	f.layout, err = dynamodbio.OpenLayout(ctx, f.c.dynamo, f.Table, f.Layout)
	return err
}

func (f *stage2Fn) ProcessElement(ctx context.Context, et beam.EventTime, page kinesisio.ShardPage, emit func(beam.EventTime, string, PageOut)) error {
	out := pageOut(page)
	var staged, bad archive.Block
	for i := range page.Records {
		r := &page.Records[i]
		if _, rest, err := archive.DecodeEvent(r.Data); err != nil || len(rest) != 0 {
			if err == nil {
				err = fmt.Errorf("%d bytes after the event", len(rest))
			}
			bad.Data = archive.AppendErrorJSON(bad.Data, &records.Error{Kind: records.ReadFailed, Stage: "stage2",
				Source: records.Lineage{Stream: page.Stream, Shard: page.Shard, Sequence: r.Sequence},
				Time:   time.UnixMilli(r.ArrivalMillis).UTC(), Events: 1, Raw: r.Data,
				Message: "staged-stream record is not a staged event: " + err.Error()})
			bad.Count++
			continue
		}
		staged.Data = append(staged.Data, r.Data...)
		staged.Count++
	}
	metrics.Counter(metrics.EventsIn).Inc(ctx, int64(len(page.Records)))
	metrics.Counter(metrics.ProcessingErrors).Inc(ctx, bad.Count)
	var failed archive.Block
	if staged.Count > 0 {
		var err error
		if failed, err = dynamodbio.WriteBlock(ctx, f.layout, staged, f.Items, f.Writer); err != nil && ctx.Err() != nil {
			return err
		}
	}
	out.addProcessingErrors(appendBlock(bad, failed), page)
	metrics.Counter(PagesProcessed).Inc(ctx, 1)
	emit(commitTime(et), out.key(), out)
	return nil
}
