package testenv

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// KPLItem is one user record to aggregate.
type KPLItem struct{ Key, Data string }

// KPLAggregate aggregates items, per records each, with an implementation
// of the Kinesis Producer Library's published aggregation format that
// shares no code with Fineo's (testdata/kpl/aggregate.py, run by python3),
// and returns the aggregated records.
func KPLAggregate(t testing.TB, per int, items []KPLItem) [][]byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "kpl", "aggregate.py")
	var in bytes.Buffer
	for _, it := range items {
		b, _ := json.Marshal(map[string]string{"key": it.Key, "data": it.Data})
		in.Write(append(b, '\n'))
	}
	cmd := exec.Command("python3", script, "--per", fmt.Sprint(per))
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testenv.KPLAggregate: %s: %v", script, err)
	}
	var recs [][]byte
	for _, line := range strings.Fields(string(out)) {
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b)
	}
	return recs
}
