package sampledata

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestKinesisLines reads the committed sample: every line but the one
// 10 MB line (a too_large error in the ground truth) fits in a record.
func TestKinesisLines(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "sample")
	var exp struct {
		Lines  int            `json:"lines"`
		Errors map[string]int `json:"errors"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	lines, tooLarge, err := KinesisLines(context.Background(), filepath.Join(dir, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	if tooLarge != exp.Errors["too_large"] || len(lines)+tooLarge != exp.Lines {
		t.Errorf("%d lines + %d too large, want %d lines of which %d too large", len(lines), tooLarge, exp.Lines, exp.Errors["too_large"])
	}
	for i, l := range lines {
		if len(l) == 0 || len(l) > KinesisRecordLimit || l[len(l)-1] == '\n' {
			t.Fatalf("line %d: %d bytes", i, len(l))
		}
	}
}
