package pipelines_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/records"
)

// TestStreamLargeEvents puts events whose nearline items would pass
// DynamoDB's 400 KB limit (900 KB, one that compresses and one that does
// not) through the streaming job: both are served by the nearline table,
// none becomes a write_failed.
func TestStreamLargeEvents(t *testing.T) {
	e := newStreamEnv(t, 1)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	random := make([]byte, 900<<10*3/4)
	rand.Read(random)
	payloads := map[string]string{
		"compressible":   strings.Repeat("reading 42.0; ", 900<<10/14),
		"incompressible": base64.StdEncoding.EncodeToString(random),
		"small":          "x",
	}
	var lines [][]byte
	for i, name := range []string{"compressible", "incompressible", "small"} {
		lines = append(lines, fmt.Appendf(nil, `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":%d,"temp_f":50.0,"note":%q,"payload":%q}}`,
			ts+int64(i), name, payloads[name]))
	}
	putLines(t, e.kin, e.raw, lines, 0)
	sum := e.run(t, e.cfg)
	if sum[dynamodbio.NearlineWritten] != 3 || sum[dynamodbio.NearlineFailed] != 0 {
		t.Fatalf("nearline written %d, failed %d; want 3 and 0 (%v)", sum[dynamodbio.NearlineWritten], sum[dynamodbio.NearlineFailed], sum)
	}
	got := map[string]*records.Event{}
	if _, err := dynamodbio.Query(context.Background(), e.ddb, e.table, "harbor", "weather", ts, ts+3, func(ev *records.Event) error {
		got[strings.Trim(ev.Unknown["note"], `"`)] = ev
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, want := range payloads {
		ev := got[name]
		if ev == nil {
			t.Errorf("event %q is not in the nearline table", name)
			continue
		}
		if p := ev.Unknown["payload"]; p != fmt.Sprintf("%q", want) {
			t.Errorf("event %q came back with a payload of %d bytes, want %d", name, len(p), len(want)+2)
		}
	}
	_, objs := archiveObjects(t, e.archive)
	overflow := 0
	for _, o := range objs {
		if strings.HasPrefix(o.Path, dynamodbio.OverflowDir+"/tenant=harbor/") {
			overflow++
		}
	}
	if overflow != 1 {
		t.Errorf("%d overflow files, want 1 (the incompressible event's)", overflow)
	}
}
