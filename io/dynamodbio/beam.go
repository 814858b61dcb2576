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
	failed, err := WriteBlock(ctx, f.api, f.Table, b, f.Items, f.Writer)
	if failed.Count > 0 {
		emitErr(archive.ErrorPartition(records.Processing, time.Now()), failed)
	}
	if err != nil && ctx.Err() != nil {
		return err // cancelled: let the runner retry the bundle
	}
	return nil
}

// WriteBlock writes a block of staged events into the nearline table with
// WriteItems and adds the nearline counters to ctx's metrics. Items that
// still fail after the retry budget come back as a block of
// processing-error records (write_failed, the staged event kept as JSON
// for replay). A non-nil error means the block was not (fully) decoded, or
// writing stopped early (ctx cancelled, a fatal error); what was not
// written is in failed either way.
func WriteBlock(ctx context.Context, api API, table string, b archive.Block, itemOpts ItemOptions, wo WriterOptions) (failed archive.Block, err error) {
	items := make([]map[string]types.AttributeValue, 0, b.Count)
	byKey := make(map[string]*records.Event, b.Count)
	if err := archive.DecodeBlock(b, func(ev *records.Event) error {
		item := Item(ev, itemOpts)
		items = append(items, item)
		if k, ok := itemKey(item); ok {
			byKey[k] = ev
		}
		return nil
	}); err != nil {
		return failed, fmt.Errorf("stage 2: %w", err)
	}
	stats, failedItems, err := WriteItems(ctx, api, table, items, wo)
	metrics.Counter(NearlineWritten).Inc(ctx, stats.Written)
	metrics.Counter(NearlineDuplicates).Inc(ctx, stats.Duplicates)
	metrics.Counter(NearlineRetries).Inc(ctx, stats.Retries)
	metrics.Counter(NearlineThrottles).Inc(ctx, stats.Throttles)
	if len(failedItems) == 0 {
		return failed, err
	}
	now := time.Now().UTC()
	for _, fi := range failedItems {
		k, _ := itemKey(fi.Item)
		ev := byKey[k]
		e := &records.Error{Kind: records.WriteFailed, Stage: "stage2", Time: now, Events: 1,
			Message: fmt.Sprintf("writing to nearline table %s failed: %s", table, fi.Reason)}
		if ev != nil {
			e.Tenant, e.Source, e.Raw = ev.Tenant, ev.Source, archive.EventJSON(ev)
		}
		failed.Data = archive.AppendErrorJSON(failed.Data, e)
		failed.Count++
	}
	metrics.Counter(NearlineFailed).Inc(ctx, failed.Count)
	metrics.Counter(metrics.ProcessingErrors).Inc(ctx, failed.Count)
	return failed, err
}
