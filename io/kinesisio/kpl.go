package kinesisio

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// kplMagic starts a record aggregated by the Kinesis Producer Library.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// IsAggregated reports whether data is a KPL-aggregated record: the magic
// bytes, then a protobuf AggregatedRecord, then the MD5 of that protobuf.
func IsAggregated(data []byte) bool {
	return len(data) >= len(kplMagic)+md5.Size && bytes.HasPrefix(data, kplMagic)
}

// UserRecord is one record of a KPL aggregate.
type UserRecord struct {
	PartitionKey string
	Data         []byte // a view into the aggregate
}

// Deaggregate returns the user records of a KPL-aggregated record (see
// IsAggregated), in order: their index is the sub-sequence number. The
// format is the one the KPL documents (aws/amazon-kinesis-producer,
// aggregation-format.md):
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// A record whose MD5 does not match, or whose protobuf does not parse or
// refers past its tables, is an error: the caller keeps its bytes.
func Deaggregate(data []byte) ([]UserRecord, error) {
	if !IsAggregated(data) {
		return nil, errors.New("not a KPL-aggregated record")
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	if sum := md5.Sum(body); !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, errors.New("KPL aggregate: MD5 checksum mismatch")
	}
	var keys []string
	type rec struct {
		key  uint64
		data []byte
	}
	var recs []rec
	err := eachField(body, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			keys = append(keys, string(v))
		case num == 3 && typ == protowire.BytesType:
			var r rec
			var hasKey, hasData bool
			if err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					n, _ := protowire.ConsumeVarint(v)
					r.key, hasKey = n, true
				case num == 3 && typ == protowire.BytesType:
					r.data, hasData = v, true
				}
				return nil
			}); err != nil {
				return err
			}
			if !hasKey || !hasData {
				return errors.New("a record lacks its partition key index or data")
			}
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("KPL aggregate: %w", err)
	}
	out := make([]UserRecord, len(recs))
	for i, r := range recs {
		if r.key >= uint64(len(keys)) {
			return nil, fmt.Errorf("KPL aggregate: record %d names partition key %d of %d", i, r.key, len(keys))
		}
		out[i] = UserRecord{PartitionKey: keys[r.key], Data: r.data}
	}
	return out, nil
}

// eachField calls fn with every field of a protobuf message: for a varint
// field v holds its encoding, for a bytes field its contents.
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			var m int
			v, m = protowire.ConsumeBytes(b)
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				v = b[:n]
			}
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}
