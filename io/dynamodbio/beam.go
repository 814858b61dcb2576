package dynamodbio

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
)

// Nearline counters.
const (
	NearlineWritten    = "nearline_written"
	NearlineDuplicates = "nearline_duplicates" // same key twice in one write: one item
	NearlineFailed     = "nearline_failed"
	NearlineRetries    = "nearline_retries"
	NearlineThrottles  = "nearline_throttles"
)

func init() {
	register.DoFn4x1[context.Context, string, archive.Block, func(string, archive.Block), error](&writeFn{})
	register.Emitter2[string, archive.Block]()
}

// WriteConfig configures Write. The zero value means defaults.
type WriteConfig struct {
	Table  string
	Items  ItemOptions
	Writer WriterOptions
}

// Write is stage 2: it writes blocks of staged events (KV<partition,
// archive.Block>) into the nearline table, one WriteItems call per block
// (BatchWriteItem of 25, retried). Items that still fail come back as
// processing-error blocks (write_failed, the staged event kept as JSON for
// replay), keyed by error-archive partition: never dropped.
func Write(s beam.Scope, cfg WriteConfig, staged beam.PCollection) (errs beam.PCollection) {
	s = s.Scope("dynamodbio.Write")
	return beam.ParDo(s, &writeFn{Table: cfg.Table, Items: cfg.Items, Writer: cfg.Writer}, staged)
}

type writeFn struct {
	Table  string
	Items  ItemOptions
	Writer WriterOptions

	api API
}

func (f *writeFn) Setup(ctx context.Context) error {
	c, err := NewClient(ctx)
	if err != nil {
		return err
	}
	f.api = c
	return nil
}

func (f *writeFn) ProcessElement(ctx context.Context, _ string, b archive.Block, emitErr func(string, archive.Block)) error {
	items := make([]map[string]types.AttributeValue, 0, b.Count)
	byKey := make(map[string]*records.Event, b.Count)
	if err := archive.DecodeBlock(b, func(ev *records.Event) error {
		item := Item(ev, f.Items)
		items = append(items, item)
		if k, ok := itemKey(item); ok {
			byKey[k] = ev
		}
		return nil
	}); err != nil {
		return fmt.Errorf("stage 2: %w", err)
	}
	stats, failed, err := WriteItems(ctx, f.api, f.Table, items, f.Writer)
	metrics.Counter(NearlineWritten).Inc(ctx, stats.Written)
	metrics.Counter(NearlineDuplicates).Inc(ctx, stats.Duplicates)
	metrics.Counter(NearlineRetries).Inc(ctx, stats.Retries)
	metrics.Counter(NearlineThrottles).Inc(ctx, stats.Throttles)
	if len(failed) > 0 {
		now := time.Now().UTC()
		var out archive.Block
		for _, fi := range failed {
			k, _ := itemKey(fi.Item)
			ev := byKey[k]
			e := &records.Error{Kind: records.WriteFailed, Stage: "stage2", Time: now, Events: 1,
				Message: fmt.Sprintf("writing to nearline table %s failed: %s", f.Table, fi.Reason)}
			if ev != nil {
				e.Tenant, e.Source, e.Raw = ev.Tenant, ev.Source, archive.EventJSON(ev)
			}
			out.Data = archive.AppendErrorJSON(out.Data, e)
			out.Count++
		}
		metrics.Counter(NearlineFailed).Inc(ctx, out.Count)
		metrics.Counter(metrics.ProcessingErrors).Inc(ctx, out.Count)
		emitErr(archive.ErrorPartition(records.Processing, now), out)
	}
	if err != nil && ctx.Err() != nil {
		return err // cancelled: let the runner retry the bundle
	}
	return nil
}
