package streaming

import (
	"testing"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/records"
)

// An alert's id is the same when a commit is retried and differs for a late
// pane of the same shard and window (its files have their own names too),
// so a receiver that deduplicates by id drops retries, never a late pane.
func TestWindowAlertIDs(t *testing.T) {
	errs := map[string]archive.Block{"errors/customer/date=2026-11-26": {Count: 1, Data: archive.AppendErrorJSON(nil,
		&records.Error{Kind: records.MalformedJSON, Tenant: "harbor", Events: 1})}}
	files := map[string]string{"errors/customer/date=2026-11-26": "/a/errors/customer/date=2026-11-26/f.jsonl.gz"}
	first := windowAlert("job", "20261126T084104Z_raw_shardId-000000000002_4968", errs, files)
	retry := windowAlert("job", "20261126T084104Z_raw_shardId-000000000002_4968", errs, files)
	late := windowAlert("job", "20261126T084104Z_raw_shardId-000000000002_4971", errs, files)
	if first == nil || retry == nil || late == nil {
		t.Fatal("no alert for a window with errors")
	}
	if first.ID != retry.ID {
		t.Errorf("a retried commit changed the alert id: %q, %q", first.ID, retry.ID)
	}
	if first.ID == late.ID {
		t.Errorf("a late pane of the same window has the same alert id %q", late.ID)
	}
	if te := first.Tenants["harbor"]; te.Events != 1 || te.Kinds["malformed_json"] != 1 || first.ErrorArchive.Customer == "" {
		t.Errorf("alert = %+v", first)
	}
}
