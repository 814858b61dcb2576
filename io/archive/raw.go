package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// The raw archive keeps the records of a stream byte for byte, as Firehose
// would, with where each came from:
//
//	raw/date=YYYY-MM-DD/hour=HH/<window>_<stream>_<shard>_<first sequence>-<last>.avro
//
// partitioned by the window of their arrival time (UTC). Each file holds
// RawSchema records of one shard in sequence order. `fineo replay --stage
// raw` reads these files (and JSON Lines files) back into stage 1.
const RawDir = "raw"

// RawSchema is the Avro schema of raw-archive records.
const RawSchema = `{"type":"record","name":"RawRecord","namespace":"io.fineo.ingest","fields":[` +
	`{"name":"stream","type":"string"},` +
	`{"name":"shard","type":"string"},` +
	`{"name":"sequence","type":"string"},` +
	`{"name":"partition_key","type":"string"},` +
	`{"name":"arrival","type":{"type":"long","logicalType":"timestamp-millis"}},` +
	`{"name":"data","type":"bytes"}]}`

// RawRecord is one record of a stream as it arrived.
type RawRecord struct {
	Stream, Shard, Sequence, PartitionKey string
	ArrivalMillis                         int64
	Data                                  []byte
}

// RawPartition is the raw-archive partition of a window starting at t.
func RawPartition(t time.Time) string {
	t = t.UTC()
	return RawDir + "/date=" + t.Format("2006-01-02") + "/hour=" + t.Format("15")
}

// AppendRaw appends r, Avro-encoded with RawSchema, to buf.
func AppendRaw(buf []byte, r *RawRecord) []byte {
	buf = appendString(buf, r.Stream)
	buf = appendString(buf, r.Shard)
	buf = appendString(buf, r.Sequence)
	buf = appendString(buf, r.PartitionKey)
	buf = binary.AppendVarint(buf, r.ArrivalMillis)
	return appendAvroBytes(buf, r.Data)
}

// ReadRawFile reads a whole raw-archive Avro container file held in memory.
// The records passed to fn share no memory with data.
func ReadRawFile(data []byte, fn func(*RawRecord) error) error {
	ok, err := readOCF(data, RawSchema, false, func(count int64, block []byte) error {
		return DecodeRawBlock(Block{Count: count, Data: block}, fn)
	})
	if err == nil && !ok {
		return fmt.Errorf("archive: not a raw-archive file (schema differs)")
	}
	return err
}

// DecodeRawBlock decodes a block of RawSchema records. The records passed
// to fn share no memory with b.
func DecodeRawBlock(b Block, fn func(*RawRecord) error) error {
	d := decoder{b: b.Data}
	for i := int64(0); i < b.Count; i++ {
		r := &RawRecord{
			Stream: d.string(), Shard: d.string(), Sequence: d.string(), PartitionKey: d.string(),
			ArrivalMillis: d.long(),
		}
		r.Data = bytes.Clone(d.bytes())
		if d.err != nil {
			return fmt.Errorf("archive: raw record %d of block: %w", i, d.err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
