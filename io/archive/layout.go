package archive

import (
	"time"

	"github.com/fineo-io/ingest/records"
)

// Archive layout, relative to the archive root (a directory or s3://bucket/prefix):
//
//	staged/date=YYYY-MM-DD/<unique>.avro                       by event time (UTC)
//	errors/customer/date=YYYY-MM-DD/<unique>.jsonl.gz          by error time (UTC)
//	errors/processing/date=YYYY-MM-DD/<unique>.jsonl.gz
const (
	StagedDir = "staged"
	ErrorsDir = "errors"
)

// StagedPartition is the partition of an event with the given timestamp:
// its UTC day. The batch job reads the archive a day at a time, so days
// are the unit; hourly partitions (before 2026-11-26, still read) made a
// bulk load of years of history write and read 4x more, smaller files
// (measured: bench/RESULTS.md).
func StagedPartition(tsMillis int64) string {
	return StagedDir + "/date=" + time.UnixMilli(tsMillis).UTC().Format("2006-01-02")
}

// ErrorPartition is the partition of an error of the given class and time.
func ErrorPartition(class records.Class, t time.Time) string {
	return ErrorsDir + "/" + string(class) + "/date=" + t.UTC().Format("2006-01-02")
}

// Block is a batch of records that are already encoded: Avro binary records
// back to back for the staged archive, JSON lines for the error archive. It
// is the element that moves through the pipeline, so that Beam's
// per-element cost is paid per batch, not per event.
type Block struct {
	Count int64
	Data  []byte
	// Groups, when set (stage 1's blocks, always Snappy), says Data is one
	// Snappy block per (tenant, metric) group, back to back, each Len
	// bytes: the archive writer indexes a staged file by them without
	// decompressing it (see IndexKey).
	Groups []Group
	// Snappy says Data is compressed as an Avro container block of the
	// snappy codec (snappy data, then the CRC-32 of the plain records), as
	// CompressBlock makes it: batch ingest compresses its staged blocks
	// where they are made, on every core, and the writer copies them into
	// files as they are. Plain returns the records.
	Snappy bool
}
