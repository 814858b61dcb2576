// Package sampledata reads raw JSON Lines input the way the streaming
// demo, benchmarks and tests put it into Kinesis: one record per line.
package sampledata

import (
	"bytes"
	"context"
	"path/filepath"

	"github.com/fineo-io/ingest/io/jsonlio"
	"github.com/fineo-io/ingest/records"
)

// KinesisRecordLimit is the largest Kinesis record: 1 MiB.
const KinesisRecordLimit = 1 << 20

// KinesisLines returns the non-empty lines of the JSON Lines files in dir
// (*.jsonl*, plain or gzip, in name order) that fit in one Kinesis record,
// and how many longer lines it left out.
func KinesisLines(ctx context.Context, dir string) (lines [][]byte, tooLarge int, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl*"))
	if err != nil {
		return nil, 0, err
	}
	for _, f := range files {
		_, err := jsonlio.ReadFile(ctx, f, jsonlio.Options{MaxLine: KinesisRecordLimit}, func(c records.Chunk) error {
			tooLarge += len(c.Oversize)
			for l := range bytes.SplitSeq(c.Data, []byte{'\n'}) {
				if len(l) > 0 {
					lines = append(lines, bytes.Clone(l))
				}
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return lines, tooLarge, nil
}
