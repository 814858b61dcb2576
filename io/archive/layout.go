package archive

import (
	"time"

	"github.com/fineo-io/ingest/records"
)

// Archive layout, relative to the archive root (a directory or s3://bucket/prefix):
//
//	staged/date=YYYY-MM-DD/hour=HH/<unique>.avro               by event time (UTC)
//	errors/customer/date=YYYY-MM-DD/<unique>.jsonl.gz          by error time (UTC)
//	errors/processing/date=YYYY-MM-DD/<unique>.jsonl.gz
const (
	StagedDir = "staged"
	ErrorsDir = "errors"
)

// StagedPartition is the partition of an event with the given timestamp.
func StagedPartition(tsMillis int64) string {
	t := time.UnixMilli(tsMillis).UTC()
	return StagedDir + "/date=" + t.Format("2006-01-02") + "/hour=" + t.Format("15")
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
}
