package streaming

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/notify"
	"github.com/fineo-io/ingest/ops/redact"
	"github.com/fineo-io/ingest/records"
)

// AlertsSent counts the per-window notifications sent (--notify).
const AlertsSent = "alerts_sent"

// windowAlert builds the notification for one shard's window that produced
// error records (nil when it produced none): per tenant the customer-error
// kinds and counts, the processing errors, and the files they are in. run
// is the commit's file name (fileName: window start, stream, shard, first
// and last sequence): the same when a commit is retried, and different for a late
// pane of the same window, which commits files of its own (an id of window,
// stream and shard alone gave two different alerts one id, so a receiver
// deduplicating by id would have dropped one).
func windowAlert(job, run string, errs map[string]archive.Block, files map[string]string) *notify.Notification {
	n := &notify.Notification{
		Version: 1, Job: job, Run: run,
		Time: time.Now().UTC(), Tenants: map[string]notify.TenantErrors{},
		ProcessingErrors: notify.Processing{Kinds: map[string]int64{}},
	}
	n.ID = job + "-" + n.Run
	for part, b := range errs {
		dec := json.NewDecoder(bytes.NewReader(b.Data))
		for dec.More() {
			var e struct {
				Kind, Class, Tenant string
				Events              int64
			}
			if dec.Decode(&e) != nil {
				break
			}
			if e.Class == string(records.Processing) {
				n.ProcessingErrors.Count += e.Events
				n.ProcessingErrors.Kinds[e.Kind] += e.Events
				continue
			}
			t := e.Tenant
			if t == "" {
				t = metrics.UnknownTenant
			}
			te := n.Tenants[t]
			if te.Kinds == nil {
				te.Kinds = map[string]int64{}
			}
			te.Kinds[e.Kind] += e.Events
			te.Events += e.Events
			n.Tenants[t] = te
		}
		if strings.Contains(part, "/"+string(records.Processing)+"/") {
			n.ErrorArchive.Processing = redact.URL(files[part])
		} else {
			n.ErrorArchive.Customer = redact.URL(files[part])
		}
	}
	switch {
	case n.ProcessingErrors.Count > 0:
		n.Status = "processing_errors"
	case len(n.Tenants) > 0:
		n.Status = "customer_errors"
	default:
		return nil
	}
	return n
}

// alertSender sends the window alerts: one retry and a short timeout, as
// the commit waits for it.
var alertSender = &notify.Sender{Retries: 1, Timeout: 5 * time.Second}

// sendAlert sends n to the targets; a failure is logged by the sender and
// never fails the commit.
func sendAlert(ctx context.Context, targets []notify.Target, n *notify.Notification) {
	if n == nil || len(targets) == 0 {
		return
	}
	if errs := alertSender.Send(ctx, targets, n); len(errs) == 0 {
		metrics.Counter(AlertsSent).Inc(ctx, 1)
	}
}
