package archive

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	gzip "github.com/klauspost/compress/gzip"

	"github.com/fineo-io/ingest/internal/workpool"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*Block)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*FailedBlock)(nil)).Elem())
	register.DoFn4x1[context.Context, string, Block, func(FailedBlock), error](&writeFn{})
	register.DoFn3x0[context.Context, FailedBlock, func(string, Block)](&failedFn{})
	register.Emitter1[FailedBlock]()
	register.Emitter2[string, Block]()
}

// Writer defaults.
const (
	// DefaultFlushBytes bounds the encoded bytes a worker buffers before it
	// writes files; partitions that fill up sooner are written sooner.
	DefaultFlushBytes = 256 << 20
	// DefaultFileBytes is the size at which a file is closed and a new one started.
	DefaultFileBytes = 128 << 20
	writeAttempts    = 4
)

// WriteOptions configure the archive writers. The zero value means defaults.
type WriteOptions struct {
	FlushBytes int64
	FileBytes  int64
}

// FailedBlock is a block of staged events whose archive write failed after
// every retry; it becomes processing-error records.
type FailedBlock struct {
	Partition string
	Reason    string
	Block     Block
}

// WriteStaged writes blocks of staged events (KV<partition, Block>) as Avro
// container files under root. Blocks that cannot be written come back as
// failed; ToProcessingErrors turns them into error blocks.
func WriteStaged(s beam.Scope, root string, opts WriteOptions, blocks beam.PCollection) (failed beam.PCollection) {
	s = s.Scope("archive.WriteStaged")
	return beam.ParDo(s, newWriteFn(root, "avro", opts), blocks)
}

// WriteErrors writes blocks of error records (KV<partition, Block>) as
// gzip JSON Lines files under root. An error archive that cannot be written
// fails the job: there is nowhere left to put the records.
func WriteErrors(s beam.Scope, root string, opts WriteOptions, blocks beam.PCollection) {
	s = s.Scope("archive.WriteErrors")
	failed := beam.ParDo(s, newWriteFn(root, "jsonl", opts), blocks)
	_ = failed // always empty: writeFn returns an error for jsonl instead
}

// ToProcessingErrors turns failed staged blocks into processing-error
// blocks, one error record per event, each holding the staged event as JSON
// so it can be replayed.
func ToProcessingErrors(s beam.Scope, failed beam.PCollection) beam.PCollection {
	return beam.ParDo(s.Scope("archive.ToProcessingErrors"), &failedFn{}, failed)
}

func newWriteFn(root, format string, opts WriteOptions) *writeFn {
	if opts.FlushBytes <= 0 {
		opts.FlushBytes = DefaultFlushBytes
	}
	if opts.FileBytes <= 0 {
		opts.FileBytes = DefaultFileBytes
	}
	return &writeFn{Root: root, Format: format, FlushBytes: opts.FlushBytes, FileBytes: opts.FileBytes}
}

type writeFn struct {
	Root       string
	Format     string // "avro" or "jsonl"
	FlushBytes int64
	FileBytes  int64

	store    blob.Store
	parts    map[string][]Block
	buffered int64
	// Partitions are written on a few goroutines while the bundle goes on
	// (measured: a bulk load of years of history writes thousands of
	// partitions, and writing them one after another held up stage 1). Results come back
	// here, in order, to be counted and emitted.
	pool *workpool.Pool[partJob, partResult]
}

// writeWorkers write partitions at once: file creation is mostly waiting
// on the file system or S3, so more than one per CPU.
const writeWorkers = 4

type partJob struct {
	ctx    context.Context
	part   string
	blocks []Block
}

type partResult struct {
	part    string
	files   []int64 // events per committed file
	failed  []FailedBlock
	retries int64
	err     error
}

func (f *writeFn) Setup(ctx context.Context) error {
	st, err := blob.Open(ctx, f.Root)
	if err != nil {
		return fmt.Errorf("archive: opening %s: %w", f.Root, err)
	}
	f.store = st
	f.parts = map[string][]Block{}
	f.pool = workpool.New(workpool.Options{Workers: writeWorkers, Depth: 4 * writeWorkers}, func(_ int, j partJob) partResult {
		return f.writePartition(j.ctx, j.part, j.blocks)
	})
	return nil
}

func (f *writeFn) Teardown() {
	if f.pool != nil {
		f.pool.Close()
	}
}

func (f *writeFn) StartBundle(ctx context.Context, _ func(FailedBlock)) {
	clear(f.parts)
	f.buffered = 0
	f.pool.Discard() // a failed bundle's writes, if any
}

func (f *writeFn) ProcessElement(ctx context.Context, part string, b Block, emit func(FailedBlock)) error {
	f.parts[part] = append(f.parts[part], b)
	f.buffered += int64(len(b.Data))
	if f.buffered < f.FlushBytes {
		return nil
	}
	return f.flush(ctx, emit)
}

func (f *writeFn) FinishBundle(ctx context.Context, emit func(FailedBlock)) error {
	if err := f.flush(ctx, emit); err != nil {
		return err
	}
	return f.pool.Drain(func(r partResult) error { return f.done(ctx, r, emit) })
}

// flush hands every buffered partition to the writers, and counts and
// emits the writes that have finished.
func (f *writeFn) flush(ctx context.Context, emit func(FailedBlock)) error {
	var err error
	for part, blocks := range f.parts {
		if e := f.pool.Submit(partJob{ctx: ctx, part: part, blocks: blocks}, func(r partResult) error { return f.done(ctx, r, emit) }); err == nil {
			err = e
		}
	}
	clear(f.parts)
	f.buffered = 0
	return err
}

// done counts a partition's writes and emits its failed blocks.
func (f *writeFn) done(ctx context.Context, r partResult, emit func(FailedBlock)) error {
	if r.retries > 0 {
		metrics.Counter(metrics.WriteRetries).Inc(ctx, r.retries)
	}
	for _, n := range r.files {
		f.count(ctx, r.part, n)
	}
	for _, fb := range r.failed {
		emit(fb)
	}
	return r.err
}

// writePartition writes one partition's blocks as one or more files, each
// written whole (committed) or not at all, with retries. It runs on a
// writer goroutine: it neither emits nor counts.
func (f *writeFn) writePartition(ctx context.Context, part string, blocks []Block) (r partResult) {
	r.part = part
	for len(blocks) > 0 {
		n := 0 // blocks in this file
		var size int64
		for n < len(blocks) && (n == 0 || size+int64(len(blocks[n].Data)) <= f.FileBytes) {
			size += int64(len(blocks[n].Data))
			n++
		}
		file := blocks[:n]
		blocks = blocks[n:]
		var err error
		for attempt := 0; attempt < writeAttempts; attempt++ {
			if attempt > 0 {
				r.retries++
				select {
				case <-ctx.Done():
					r.err = ctx.Err()
					return r
				case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
				}
			}
			if err = f.writeFile(ctx, part, file); err == nil {
				break
			}
		}
		if err != nil {
			if f.Format != "avro" {
				r.err = fmt.Errorf("archive: writing error records to %s failed after %d attempts: %w", f.store.URL(part), writeAttempts, err)
				return r
			}
			for _, b := range file {
				r.failed = append(r.failed, FailedBlock{Partition: part, Reason: err.Error(), Block: b})
			}
			continue
		}
		var events int64
		for _, b := range file {
			events += b.Count
		}
		r.files = append(r.files, events)
	}
	return r
}

func (f *writeFn) count(ctx context.Context, part string, n int64) {
	metrics.Counter(metrics.FilesWritten).Inc(ctx, 1)
	switch {
	case f.Format == "avro":
		metrics.Counter(metrics.StagedWritten).Inc(ctx, n)
	case strings.HasPrefix(part, ErrorsDir+"/"+string(records.Processing)+"/"):
		metrics.Counter(metrics.ProcessingWritten).Inc(ctx, n)
	default:
		metrics.Counter(metrics.CustomerWritten).Inc(ctx, n)
	}
}

// FileName makes a file name that never collides: time-ordered, then random.
func FileName(ext string) string {
	return time.Now().UTC().Format("20060102T150405Z") + "-" + uuid.NewString() + ext
}

func (f *writeFn) writeFile(ctx context.Context, part string, blocks []Block) error {
	if f.Format == "avro" {
		return WriteStagedFile(ctx, f.store, part+"/"+FileName(".avro"), blocks)
	}
	return WriteJSONLFile(ctx, f.store, part+"/"+FileName(".jsonl.gz"), blocks)
}

// WriteAvroFile writes blocks of records Avro-encoded with schema as one
// Avro container file at path: committed whole, or not at all.
func WriteAvroFile(ctx context.Context, st blob.Store, path, schema string, blocks []Block) error {
	return writeWhole(ctx, st, path, func(w io.Writer) error {
		o, err := newOCFWriter(w, schema)
		if err != nil {
			return err
		}
		for _, b := range blocks {
			if err := o.writeBlock(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteJSONLFile writes blocks of JSON lines as one gzip file at path:
// committed whole, or not at all.
func WriteJSONLFile(ctx context.Context, st blob.Store, path string, blocks []Block) error {
	return writeWhole(ctx, st, path, func(w io.Writer) error {
		zw, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		for _, b := range blocks {
			if _, err := zw.Write(b.Data); err != nil {
				return err
			}
		}
		return zw.Close()
	})
}

// writeWhole creates path in st, lets write fill it and commits it; on any
// error the file is aborted, so nothing is left behind.
func writeWhole(ctx context.Context, st blob.Store, path string, write func(io.Writer) error) error {
	w, err := st.Create(ctx, path)
	if err != nil {
		return err
	}
	if err := write(w); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(); err != nil {
		w.Abort()
		return err
	}
	return nil
}

type failedFn struct{}

func (failedFn) ProcessElement(ctx context.Context, fb FailedBlock, emit func(string, Block)) {
	out := FailedToErrors(fb)
	metrics.Counter(metrics.ProcessingErrors).Inc(ctx, out.Count)
	emit(ErrorPartition(records.Processing, time.Now()), out)
}

// FailedToErrors turns a block of staged events that could not be
// archived into processing-error records (write_failed, each event kept as
// JSON), one per event.
func FailedToErrors(fb FailedBlock) Block {
	now := time.Now().UTC()
	out := Block{}
	n := 0
	err := DecodeBlock(fb.Block, func(ev *records.Event) error {
		n++
		out.Data = AppendErrorJSON(out.Data, &records.Error{
			Kind: records.WriteFailed, Tenant: ev.Tenant, Stage: "archive",
			Message: fmt.Sprintf("writing staged partition %s failed: %s", fb.Partition, fb.Reason),
			Raw:     EventJSON(ev), Source: ev.Source, Time: now, Events: 1,
		})
		out.Count++
		return nil
	})
	if err != nil {
		// The block itself is unreadable: keep its undecoded remainder as one
		// record per event still missing, so the count stays whole.
		for ; int64(n) < fb.Block.Count; n++ {
			out.Data = AppendErrorJSON(out.Data, &records.Error{
				Kind: records.Internal, Stage: "archive", Time: now, Events: 1,
				Message: fmt.Sprintf("staged block for %s failed to write (%s) and to decode (%v)", fb.Partition, fb.Reason, err),
			})
			out.Count++
		}
	}
	return out
}

// EventJSON renders a staged event as one JSON object (for error records,
// `fineo query` and humans). bytes values are base64.
func EventJSON(ev *records.Event) []byte {
	m := map[string]any{
		"event_id":       ev.ID,
		"tenant":         ev.Tenant,
		"metric":         ev.Metric,
		"metric_alias":   ev.MetricAlias,
		"timestamp":      time.UnixMilli(ev.Timestamp).UTC().Format(time.RFC3339Nano),
		"fields":         ev.Fields,
		"unknown_fields": ev.Unknown,
		"schema_version": ev.SchemaVersion,
		"source":         ev.Source,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return []byte(fmt.Sprintf(`{"event_id":%q,"error":%q}`, ev.ID, err.Error()))
	}
	return b
}
