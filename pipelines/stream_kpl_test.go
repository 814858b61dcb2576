package pipelines_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
)

// TestStreamKPL puts records aggregated by the Kinesis Producer Library's
// format, made by an independent implementation (testdata/kpl/aggregate.py),
// and one aggregate with a bad checksum: every user record's event is in
// the nearline table with its sub-sequence number in its lineage, and the
// bad aggregate is one customer error (bad_aggregate) that keeps its bytes.
func TestStreamKPL(t *testing.T) {
	e := newStreamEnv(t, 1)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	var items []testenv.KPLItem
	for i := range 30 {
		items = append(items, testenv.KPLItem{Key: fmt.Sprintf("device-%d", i%3),
			Data: fmt.Sprintf(`{"tenant":"harbor","event":{"metrictype":"weather","timestamp":%d,"temp_c":%d.5}}`, ts+int64(i), i)})
	}
	recs := testenv.KPLAggregate(t, 10, items)
	bad := bytes.Clone(recs[0])
	bad[len(bad)-1] ^= 1
	putLines(t, e.kin, e.raw, append(recs, bad), 0)
	sum := e.run(t, e.cfg)
	if sum[metrics.Staged] != 30 || sum[metrics.CustomerErrors] != 1 || sum[metrics.EventsIn] != 31 {
		t.Errorf("staged %d, customer errors %d, events in %d; want 30, 1, 31", sum[metrics.Staged], sum[metrics.CustomerErrors], sum[metrics.EventsIn])
	}
	seqs := map[string]bool{}
	if _, err := dynamodbio.Query(context.Background(), e.ddb, e.table, "harbor", "weather", ts, ts+30, func(ev *records.Event) error {
		seqs[ev.Source.Sequence] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 30 {
		t.Fatalf("%d events with distinct lineage in the table, want 30", len(seqs))
	}
	for s := range seqs {
		if i := strings.LastIndexByte(s, ':'); i < 0 || s[i+1:] > "9" || len(s[i+1:]) != 1 {
			t.Errorf("lineage sequence %q lacks a sub-sequence number 0-9", s)
		}
	}
	a := readStreamArchive(t, e.archive)
	var found bool
	for _, r := range a.errs {
		if r.Kind == records.BadAggregate.String() {
			found = true
			if raw, err := r.RawBytes(); err != nil || !bytes.Equal(raw, bad) {
				t.Errorf("the bad aggregate's error keeps %d bytes (%v), not its %d", len(raw), err, len(bad))
			}
		}
	}
	if !found {
		t.Errorf("no bad_aggregate error in the archive: %d errors", len(a.errs))
	}
}
