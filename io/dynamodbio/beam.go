package dynamodbio

import (
	"context"
	"fmt"
	"log/slog"
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
	// NearlineShardRaises counts the shard-count raises writers recorded.
	NearlineShardRaises = "nearline_shard_raises"
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
	Layout LayoutOptions // the table's layout must be recorded (InitLayout) before the job runs
}

// Write is stage 2: it writes blocks of staged events (KV<partition,
// archive.Block>) into the nearline table, one WriteItems call per block
// (BatchWriteItem of 25, retried). Items that still fail come back as
// processing-error blocks (write_failed, the staged event kept as JSON for
// replay), keyed by error-archive partition: never dropped.
func Write(s beam.Scope, cfg WriteConfig, staged beam.PCollection) (errs beam.PCollection) {
	s = s.Scope("dynamodbio.Write")
	return beam.ParDo(s, &writeFn{Table: cfg.Table, Items: cfg.Items, Writer: cfg.Writer, Layout: cfg.Layout}, staged)
}

type writeFn struct {
	Table  string
	Items  ItemOptions
	Writer WriterOptions
	Layout LayoutOptions

	layout *Layout
}

func (f *writeFn) Setup(ctx context.Context) error {
	c, err := NewClient(ctx)
	if err != nil {
		return err
	}
	f.layout, err = OpenLayout(ctx, c, f.Table, f.Layout)
	return err
}

func (f *writeFn) ProcessElement(ctx context.Context, _ string, b archive.Block, emitErr func(string, archive.Block)) error {
	failed, err := WriteBlock(ctx, f.layout, b, f.Items, f.Writer)
	if failed.Count > 0 {
		emitErr(archive.ErrorPartition(records.Processing, time.Now()), failed)
	}
	if err != nil && ctx.Err() != nil {
		return err // cancelled: let the runner retry the bundle
	}
	return nil
}

// WriteBlock writes a block of staged events into l's table with
// WriteItems, each under the key l gives it (the table's layout), made to
// fit DynamoDB's item limit (see AttrStaged; overflow files under
// itemOpts.Overflow), and adds the nearline counters to ctx's metrics.
// Throttling seen per tenant and metric is passed to l, which raises the
// metric's shard count when it persists (LayoutOptions.Adaptive). Items that
// still fail after the retry budget come back as a block of
// processing-error records (write_failed, the staged event kept as JSON
// for replay). A non-nil error means the block was not (fully) decoded, or
// writing stopped early (ctx cancelled, a fatal error); what was not
// written is in failed either way.
func WriteBlock(ctx context.Context, l *Layout, b archive.Block, itemOpts ItemOptions, wo WriterOptions) (failed archive.Block, err error) {
	items := make([]map[string]types.AttributeValue, 0, b.Count)
	byKey := make(map[string]*records.Event, b.Count)
	counts := map[[2]string]*writeCount{}
	var unfit []FailedItem
	var unfitEvents []*records.Event
	if err := archive.DecodeBlock(b, func(ev *records.Event) error {
		item := Item(ev, itemOpts)
		pk, err := l.PK(ctx, ev.Tenant, ev.Metric, ev.Timestamp, ev.ID)
		if err == nil {
			item[AttrPK] = s(pk)
			err = l.stores.fit(ctx, item, ev, itemOpts.Overflow)
		}
		if err != nil {
			unfit = append(unfit, FailedItem{Item: item, Reason: err.Error()})
			unfitEvents = append(unfitEvents, ev)
			return nil
		}
		items = append(items, item)
		if k, ok := itemKey(item); ok {
			byKey[k] = ev
		}
		c := counts[[2]string{ev.Tenant, ev.Metric}]
		if c == nil {
			c = &writeCount{}
			counts[[2]string{ev.Tenant, ev.Metric}] = c
		}
		c.written++
		return nil
	}); err != nil {
		return failed, fmt.Errorf("stage 2: %w", err)
	}
	stats, failedItems, err := writeItems(ctx, l.api, l.table, items, wo, func(reqs []types.WriteRequest) {
		for _, r := range reqs {
			if k, ok := itemKey(r.PutRequest.Item); ok {
				if ev := byKey[k]; ev != nil {
					counts[[2]string{ev.Tenant, ev.Metric}].throttled++
				}
			}
		}
	})
	for _, fi := range failedItems {
		if k, ok := itemKey(fi.Item); ok {
			if ev := byKey[k]; ev != nil {
				counts[[2]string{ev.Tenant, ev.Metric}].written--
			}
		}
	}
	for _, r := range l.observe(ctx, counts) {
		slog.InfoContext(ctx, "dynamodbio: throttling persisted; shard count raised", "table", l.table, "raise", r)
		metrics.Counter(NearlineShardRaises).Inc(ctx, 1)
	}
	metrics.Counter(NearlineWritten).Inc(ctx, stats.Written)
	metrics.Counter(NearlineDuplicates).Inc(ctx, stats.Duplicates)
	metrics.Counter(NearlineRetries).Inc(ctx, stats.Retries)
	metrics.Counter(NearlineThrottles).Inc(ctx, stats.Throttles)
	if len(failedItems) == 0 && len(unfit) == 0 {
		return failed, err
	}
	now := time.Now().UTC()
	fail := func(ev *records.Event, reason string) {
		e := &records.Error{Kind: records.WriteFailed, Stage: "stage2", Time: now, Events: 1,
			Message: fmt.Sprintf("writing to nearline table %s failed: %s", l.table, reason)}
		if ev != nil {
			e.Tenant, e.Source, e.Raw = ev.Tenant, ev.Source, archive.EventJSON(ev)
		}
		failed.Data = archive.AppendErrorJSON(failed.Data, e)
		failed.Count++
	}
	for i, fi := range unfit {
		fail(unfitEvents[i], fi.Reason)
	}
	for _, fi := range failedItems {
		k, _ := itemKey(fi.Item)
		fail(byKey[k], fi.Reason)
	}
	metrics.Counter(NearlineFailed).Inc(ctx, failed.Count)
	metrics.Counter(metrics.ProcessingErrors).Inc(ctx, failed.Count)
	return failed, err
}
