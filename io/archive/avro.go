package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"time"

	"github.com/golang/snappy"
	"github.com/linkedin/goavro/v2"

	"github.com/fineo-io/ingest/records"
)

// StagedSchema is the Avro schema of the staged archive, embedded in every
// file. Field values keep their declared type in the "fields" map union;
// timestamp fields are long epoch milliseconds (the schema version in
// "schema_version" says which fields are timestamps).
const StagedSchema = `{
  "type": "record", "name": "StagedEvent", "namespace": "io.fineo.ingest",
  "doc": "One event after stage 1 (late-bound tenant schema applied).",
  "fields": [
    {"name": "event_id", "type": "string"},
    {"name": "tenant", "type": "string"},
    {"name": "metric", "type": "string", "doc": "canonical metric name"},
    {"name": "metric_alias", "type": "string", "doc": "metric-type value the device sent"},
    {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "fields", "type": {"type": "map", "values": ["null", "boolean", "long", "double", "string", "bytes"]}},
    {"name": "unknown_fields", "type": {"type": "map", "values": "string"}, "doc": "raw JSON text under the device's field name"},
    {"name": "schema_version", "type": "int"},
    {"name": "ingest_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "source", "type": {"type": "record", "name": "Lineage", "fields": [
      {"name": "file", "type": "string", "default": ""},
      {"name": "line", "type": "long", "default": 0},
      {"name": "stream", "type": "string", "default": ""},
      {"name": "shard", "type": "string", "default": ""},
      {"name": "sequence", "type": "string", "default": ""},
      {"name": "index", "type": "int", "default": 0}
    ]}}
  ]
}`

var stagedCodec = mustCodec(StagedSchema)

func mustCodec(s string) *goavro.Codec {
	c, err := goavro.NewCodec(s)
	if err != nil {
		panic(err)
	}
	return c
}

// eventFromNative converts a decoded Avro record back into an Event. A
// record of another shape (a file of another schema, or a damaged one:
// FuzzStagedIndex found a nil where a string goes) is an error, never a
// panic: the type assertions below are the shape check.
func eventFromNative(n any) (ev *records.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("archive: staged record of an unexpected shape: %v", r)
		}
	}()
	m, ok := n.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("archive: staged record is %T", n)
	}
	ev = &records.Event{
		ID:            m["event_id"].(string),
		Tenant:        m["tenant"].(string),
		Metric:        m["metric"].(string),
		MetricAlias:   m["metric_alias"].(string),
		Timestamp:     millis(m["timestamp"]),
		SchemaVersion: int(m["schema_version"].(int32)),
		IngestTime:    millis(m["ingest_time"]),
	}
	if f, _ := m["fields"].(map[string]any); len(f) > 0 {
		ev.Fields = make(map[string]any, len(f))
		for k, v := range f {
			if u, ok := v.(map[string]any); ok {
				for _, x := range u {
					v = x
				}
			}
			ev.Fields[k] = v
		}
	}
	if u, _ := m["unknown_fields"].(map[string]any); len(u) > 0 {
		ev.Unknown = make(map[string]string, len(u))
		for k, v := range u {
			ev.Unknown[k] = v.(string)
		}
	}
	if s, ok := m["source"].(map[string]any); ok {
		ev.Source = records.Lineage{
			File: s["file"].(string), Line: s["line"].(int64),
			Stream: s["stream"].(string), Shard: s["shard"].(string), Sequence: s["sequence"].(string),
			Index: int(s["index"].(int32)),
		}
	}
	return ev, nil
}

func millis(v any) int64 {
	switch t := v.(type) {
	case time.Time:
		return t.UnixMilli()
	case int64:
		return t
	}
	return 0
}

// ReadStaged reads a staged Avro object container file with goavro's
// generic reader and calls fn for each event: the reference reader (tests
// read archives with it). ReadStagedFile is the fast path for whole files.
func ReadStaged(r io.Reader, fn func(*records.Event) error) error {
	ocf, err := goavro.NewOCFReader(r)
	if err != nil {
		return fmt.Errorf("archive: not an Avro container: %w", err)
	}
	for ocf.Scan() {
		n, err := ocf.Read()
		if err != nil {
			return fmt.Errorf("archive: reading Avro record: %w", err)
		}
		ev, err := eventFromNative(n)
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return ocf.Err()
}

// ocfWriter writes an Avro object container file from blocks of records
// that are already Avro-encoded. goavro's OCFWriter only appends native Go
// values, which would decode and re-encode every record; the container
// framing (header, snappy-compressed blocks, sync markers) is all that is
// done here, and every file is read back with goavro in the tests.
type ocfWriter struct {
	w    io.Writer
	sync [16]byte
	buf  []byte
	n    int64 // bytes written
}

func newOCFWriter(w io.Writer, schema string) (*ocfWriter, error) {
	return newOCFWriterMeta(w, schema, nil)
}

// newOCFWriterMeta is newOCFWriter with the staged file index (IndexKey)
// in the header when index is not nil.
func newOCFWriterMeta(w io.Writer, schema string, index []byte) (*ocfWriter, error) {
	o := &ocfWriter{w: w, sync: newSync()}
	h := []byte("Obj\x01")
	entries := int64(2)
	if index != nil {
		entries++
	}
	h = binary.AppendVarint(h, entries) // one metadata map block
	h = appendAvroBytes(h, []byte("avro.schema"))
	h = appendAvroBytes(h, []byte(schema))
	h = appendAvroBytes(h, []byte("avro.codec"))
	h = appendAvroBytes(h, []byte("snappy"))
	if index != nil {
		h = appendAvroBytes(h, []byte(IndexKey))
		h = appendAvroBytes(h, index)
	}
	h = binary.AppendVarint(h, 0)
	h = append(h, o.sync[:]...)
	return o, o.write(h)
}

func appendAvroBytes(b, s []byte) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

// writeBlock writes a block of records as one container block,
// compressing it unless it is compressed already.
func (o *ocfWriter) writeBlock(b Block) error {
	if b.Count == 0 {
		return nil
	}
	data := b.Data
	if !b.Snappy {
		o.buf = appendSnappy(o.buf[:0], b.Data)
		data = o.buf
	}
	var h [2 * binary.MaxVarintLen64]byte
	n := binary.PutVarint(h[:], b.Count)
	n += binary.PutVarint(h[n:], int64(len(data)))
	if err := o.write(h[:n]); err != nil {
		return err
	}
	if err := o.write(data); err != nil {
		return err
	}
	return o.write(o.sync[:])
}

// appendSnappy appends plain as the data of a container block of the
// snappy codec: the snappy block, then the CRC-32 of plain, big-endian.
func appendSnappy(dst, plain []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, snappy.MaxEncodedLen(len(plain))+4)
	enc := snappy.Encode(dst[n:n+snappy.MaxEncodedLen(len(plain))], plain)
	dst = dst[:n+len(enc)]
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(plain))
}

// AppendSnappy appends plain as the data of a container block of the
// snappy codec (the data of one group of a Block).
func AppendSnappy(dst, plain []byte) []byte { return appendSnappy(dst, plain) }

// CompressBlock returns count records, Avro-encoded back to back in plain,
// as a Snappy block of its exact size. scratch is reused for the encoding
// (pass the one it returns back in).
func CompressBlock(count int64, plain, scratch []byte) (b Block, scratchOut []byte) {
	scratch = appendSnappy(scratch[:0], plain)
	return Block{Count: count, Data: bytes.Clone(scratch), Snappy: true}, scratch
}

// Plain returns the block's records, Avro-encoded back to back: Data
// itself, or Data uncompressed and checked for a Snappy block.
func (b Block) Plain() ([]byte, error) {
	if !b.Snappy {
		return b.Data, nil
	}
	if len(b.Groups) == 0 {
		return decompress("snappy", b.Data, nil)
	}
	var out []byte
	data := b.Data
	for _, g := range b.Groups {
		if g.Len > int64(len(data)) {
			return nil, errors.New("archive: block groups exceed its data")
		}
		p, err := decompress("snappy", data[:g.Len], nil)
		if err != nil {
			return nil, err
		}
		out = append(out, p...)
		data = data[g.Len:]
	}
	return out, nil
}

func (o *ocfWriter) write(b []byte) error {
	n, err := o.w.Write(b)
	o.n += int64(n)
	return err
}
