package archive

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"unsafe"

	"github.com/golang/snappy"

	"github.com/fineo-io/ingest/records"
)

// A direct Avro binary codec for StagedSchema. goavro encodes and decodes
// through map[string]any values; profiles of ingest and batch showed that
// path at ~8 µs and ~20 allocations per staged event, the largest single
// cost after JSON parsing. The schema is fixed, so this file writes and
// reads its binary form directly (the Avro spec's encoding of records,
// maps, unions, strings and zig-zag longs). Tests check it against goavro in
// both directions, and the archive stays readable by any Avro reader.
//
// Map entries are written in key order, so the same event always encodes
// to the same bytes.

// Union branch indexes of the "fields" map values.
const (
	uNull = iota
	uBoolean
	uLong
	uDouble
	uString
	uBytes
)

// AppendEvent appends the Avro binary encoding of ev (StagedSchema) to buf.
func AppendEvent(buf []byte, ev *records.Event) ([]byte, error) {
	var fb [32]records.Field
	var ub [32]records.RawField
	fields := fb[:0]
	for k, x := range ev.Fields {
		v, ok := records.ValueOf(x)
		if !ok {
			return buf, fmt.Errorf("archive: field %q has unsupported type %T", k, x)
		}
		fields = append(fields, records.Field{Name: k, Value: v})
	}
	unknown := ub[:0]
	for k, raw := range ev.Unknown {
		unknown = append(unknown, records.RawField{Name: k, Raw: unsafe.Slice(unsafe.StringData(raw), len(raw))})
	}
	records.SortFields(fields)
	records.SortRawFields(unknown)
	return AppendFlat(buf, ev, fields, unknown)
}

// AppendFlat is AppendEvent for an event whose fields come as slices,
// sorted by name and each name once (ev.Fields and ev.Unknown are not
// read): stage 1 encodes its events this way, without a map or a boxed
// value per field.
func AppendFlat(buf []byte, ev *records.Event, fields []records.Field, unknown []records.RawField) ([]byte, error) {
	b := buf
	b = appendString(b, ev.ID)
	b = appendString(b, ev.Tenant)
	b = appendString(b, ev.Metric)
	b = appendString(b, ev.MetricAlias)
	b = binary.AppendVarint(b, ev.Timestamp)
	if len(fields) > 0 {
		b = binary.AppendVarint(b, int64(len(fields)))
		for i := range fields {
			f := &fields[i]
			b = appendString(b, f.Name)
			switch v := &f.Value; v.Kind {
			case records.NullValue:
				b = binary.AppendVarint(b, uNull)
			case records.BoolValue:
				b = binary.AppendVarint(b, uBoolean)
				b = append(b, byte(v.Int&1))
			case records.LongValue:
				b = binary.AppendVarint(b, uLong)
				b = binary.AppendVarint(b, v.Int)
			case records.DoubleValue:
				b = binary.AppendVarint(b, uDouble)
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float))
			case records.StringValue:
				b = binary.AppendVarint(b, uString)
				b = appendString(b, v.Str)
			case records.BytesValue:
				b = binary.AppendVarint(b, uBytes)
				b = binary.AppendVarint(b, int64(len(v.Bytes)))
				b = append(b, v.Bytes...)
			default:
				return buf, fmt.Errorf("archive: field %q has unknown value kind %d", f.Name, v.Kind)
			}
		}
	}
	b = binary.AppendVarint(b, 0)
	if len(unknown) > 0 {
		b = binary.AppendVarint(b, int64(len(unknown)))
		for i := range unknown {
			b = appendString(b, unknown[i].Name)
			b = binary.AppendVarint(b, int64(len(unknown[i].Raw)))
			b = append(b, unknown[i].Raw...)
		}
	}
	b = binary.AppendVarint(b, 0)
	b = binary.AppendVarint(b, int64(ev.SchemaVersion))
	b = binary.AppendVarint(b, ev.IngestTime)
	b = appendString(b, ev.Source.File)
	b = binary.AppendVarint(b, ev.Source.Line)
	b = appendString(b, ev.Source.Stream)
	b = appendString(b, ev.Source.Shard)
	b = appendString(b, ev.Source.Sequence)
	b = binary.AppendVarint(b, int64(ev.Source.Index))
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("archive: corrupt Avro data")

// decoder reads StagedSchema records from Avro binary data.
type decoder struct {
	b   []byte
	err error
	// frozen says b is the memory of an immutable string, so string()
	// returns views into it instead of copies.
	frozen bool
}

func (d *decoder) long() int64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) > 0 && d.b[0] < 0x80 {
		// One byte (-64..63: most lengths, counts and indexes), unzigzagged
		// here rather than through binary.Varint's loop.
		u := d.b[0]
		d.b = d.b[1:]
		return int64(u>>1) ^ -int64(u&1)
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.long()
	if d.err != nil {
		return nil
	}
	if n < 0 || n > int64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return d.str(d.bytes()) }

// mapBlock returns the next block's entry count (0 ends the map).
func (d *decoder) mapBlock() int64 {
	n := d.long()
	if n < 0 { // a negative count is followed by the block's size in bytes
		d.long()
		n = -n
	}
	if n > int64(len(d.b)) { // every entry takes at least one byte
		d.err = errCorrupt
		return 0
	}
	return n
}

// DecodeEvent decodes one staged record from the front of data and returns
// the rest.
func DecodeEvent(data []byte) (*records.Event, []byte, error) {
	d := decoder{b: data}
	ev, err := d.event()
	if err != nil {
		return nil, data, err
	}
	return ev, d.b, nil
}

// event decodes one staged record from the front of d.b.
func (d *decoder) event() (*records.Event, error) {
	ev := &records.Event{
		ID:          d.string(),
		Tenant:      d.string(),
		Metric:      d.string(),
		MetricAlias: d.string(),
		Timestamp:   d.long(),
	}
	d.fieldsMap(func(k string, v records.Value) {
		if ev.Fields == nil {
			ev.Fields = make(map[string]any, 8)
		}
		ev.Fields[k] = v.Any()
	})
	d.unknownMap(func(k, raw string) {
		if ev.Unknown == nil {
			ev.Unknown = make(map[string]string, 4)
		}
		ev.Unknown[k] = raw
	})
	ev.SchemaVersion = int(d.long())
	ev.IngestTime = d.long()
	d.source(&ev.Source)
	if d.err != nil {
		return nil, d.err
	}
	return ev, nil
}

// frozenDecoder decodes a copy of block made once as an immutable string,
// so that the strings it returns are views into that copy.
func frozenDecoder(block []byte) decoder {
	text := string(block)
	return decoder{b: unsafe.Slice(unsafe.StringData(text), len(text)), frozen: true}
}

// str returns b as a string: a view when d is frozen, else a copy.
func (d *decoder) str(b []byte) string {
	if d.frozen && len(b) > 0 {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

// fieldsMap reads the "fields" map at the front of d.b and calls fn with
// each entry in the order written (sorted by name), or only skips over
// the map when fn is nil. Values come typed, not boxed: a boxed value per
// field was an allocation per cell of a batch's lake.
func (d *decoder) fieldsMap(fn func(name string, v records.Value)) {
	for n := d.mapBlock(); n > 0 && d.err == nil; n = d.mapBlock() {
		for ; n > 0 && d.err == nil; n-- {
			k := d.bytes()
			var v records.Value
			switch d.long() {
			case uNull:
			case uBoolean:
				if len(d.b) < 1 {
					d.err = errCorrupt
					return
				}
				v.Kind = records.BoolValue
				if d.b[0] != 0 {
					v.Int = 1
				}
				d.b = d.b[1:]
			case uLong:
				v = records.Value{Kind: records.LongValue, Int: d.long()}
			case uDouble:
				if len(d.b) < 8 {
					d.err = errCorrupt
					return
				}
				v = records.Value{Kind: records.DoubleValue, Float: math.Float64frombits(binary.LittleEndian.Uint64(d.b))}
				d.b = d.b[8:]
			case uString:
				if x := d.bytes(); fn != nil {
					v = records.Value{Kind: records.StringValue, Str: d.str(x)}
				}
			case uBytes:
				if x := d.bytes(); fn != nil {
					v = records.Value{Kind: records.BytesValue, Bytes: bytes.Clone(x)}
				}
			default:
				d.err = errCorrupt
			}
			if fn != nil && d.err == nil {
				fn(d.str(k), v)
			}
		}
	}
}

// unknownMap reads the "unknown_fields" map like fieldsMap.
func (d *decoder) unknownMap(fn func(name, raw string)) {
	for n := d.mapBlock(); n > 0 && d.err == nil; n = d.mapBlock() {
		for ; n > 0 && d.err == nil; n-- {
			k, raw := d.bytes(), d.bytes()
			if fn != nil && d.err == nil {
				fn(d.str(k), d.str(raw))
			}
		}
	}
}

func (d *decoder) source(l *records.Lineage) {
	l.File = d.string()
	l.Line = d.long()
	l.Stream = d.string()
	l.Shard = d.string()
	l.Sequence = d.string()
	l.Index = int(d.long())
}

// Staged is a staged record read without decoding its fields: what
// deduplication and grouping need, with the fields decoded only when asked
// for (EachField, EachUnknown, Event). `fineo batch` drops duplicates and
// groups records before it decodes a single field: decoding every event
// into maps was a fifth of the batch's CPU (profile), and re-binding them
// from maps another tenth.
type Staged struct {
	ID, Tenant, Metric    string
	Timestamp, IngestTime int64
	Source                records.Lineage

	rec, fields, unknown []byte         // encoded, in a frozen block (direct reader)
	ev                   *records.Event // decoded (generic reader)
}

// StagedOf returns ev as a Staged record.
func StagedOf(ev *records.Event) Staged {
	return Staged{ID: ev.ID, Tenant: ev.Tenant, Metric: ev.Metric, Timestamp: ev.Timestamp,
		IngestTime: ev.IngestTime, Source: ev.Source, ev: ev}
}

// staged reads one record's head from the front of a frozen d.b into s.
func (d *decoder) staged(s *Staged) error {
	rec := d.b
	*s = Staged{ID: d.string(), Tenant: d.string(), Metric: d.string()}
	d.bytes() // metric alias
	s.Timestamp = d.long()
	f := d.b
	d.fieldsMap(nil)
	s.fields = f[:len(f)-len(d.b)]
	u := d.b
	d.unknownMap(nil)
	s.unknown = u[:len(u)-len(d.b)]
	d.long() // schema version
	s.IngestTime = d.long()
	d.source(&s.Source)
	if d.err != nil {
		return d.err
	}
	s.rec = rec[:len(rec)-len(d.b)]
	return nil
}

// Event decodes the whole event.
func (s *Staged) Event() (*records.Event, error) {
	if s.ev != nil {
		return s.ev, nil
	}
	d := decoder{b: s.rec, frozen: true}
	return d.event()
}

// EachField calls fn with each typed field: in name order, or in map order
// for a record of a file that the generic reader read.
func (s *Staged) EachField(fn func(name string, v any)) error {
	return s.EachValue(func(name string, v records.Value) { fn(name, v.Any()) })
}

// EachValue is EachField with each value typed instead of boxed. A string
// value is a view into the record's block: it is valid as long as the
// Staged record is. A decoded event's field of a Go type a staged record
// does not hold (an int, or goavro's int32 and float32) comes as the
// string of its text (fmt.Sprint), to be cast from it like any string.
func (s *Staged) EachValue(fn func(name string, v records.Value)) error {
	if s.ev != nil {
		for k, x := range s.ev.Fields {
			v, ok := records.ValueOf(x)
			if !ok {
				v = records.Value{Kind: records.StringValue, Str: fmt.Sprint(x)}
			}
			fn(k, v)
		}
		return nil
	}
	d := decoder{b: s.fields, frozen: true}
	d.fieldsMap(fn)
	return d.err
}

// EachUnknown calls fn with each untyped field and its raw JSON text.
func (s *Staged) EachUnknown(fn func(name, raw string)) error {
	if s.ev != nil {
		for k, v := range s.ev.Unknown {
			fn(k, v)
		}
		return nil
	}
	d := decoder{b: s.unknown, frozen: true}
	d.unknownMap(fn)
	return d.err
}

// stagedSlab is how many Staged records ReadStagedHeads allocates at once.
const stagedSlab = 64

// ReadStagedHeads reads a whole staged Avro container file held in memory
// as Staged records (see ReadStagedFile): with the direct decoder when the
// file's schema is StagedSchema, through goavro's generic reader otherwise.
func ReadStagedHeads(data []byte, fn func(*Staged) error) error {
	var slab []Staged // records are allocated stagedSlab at a time, not one by one
	direct, err := readOCF(data, StagedSchema, true, func(count int64, block []byte) error {
		return decodeHeads(block, count, &slab, fn) // the block is its own: no copy
	})
	if err == nil && !direct {
		return ReadStaged(bytes.NewReader(data), func(ev *records.Event) error {
			st := StagedOf(ev)
			return fn(&st)
		})
	}
	return err
}

// decodeHeads reads count staged records' heads from data, which they
// share, allocating them from *slab.
func decodeHeads(data []byte, count int64, slab *[]Staged, fn func(*Staged) error) error {
	d := frozenDecoder(data)
	for i := int64(0); i < count; i++ {
		if len(*slab) == 0 {
			*slab = make([]Staged, stagedSlab)
		}
		s := &(*slab)[0]
		*slab = (*slab)[1:]
		if err := d.staged(s); err != nil {
			return fmt.Errorf("archive: staged record %d of block: %w", i, err)
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// DecodeBlock decodes the records of a Block of staged events. The events'
// strings share one copy of the block (one allocation per block instead of
// one per string, the largest share of a batch's allocations), so an event
// keeps its block's memory alive.
func DecodeBlock(b Block, fn func(*records.Event) error) error {
	data, err := b.Plain()
	if err != nil {
		return err
	}
	d := frozenDecoder(data)
	for i := int64(0); i < b.Count; i++ {
		ev, err := d.event()
		if err != nil {
			return fmt.Errorf("archive: staged record %d of block: %w", i, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

// ReadStagedFile reads a whole staged Avro container file held in memory,
// with the direct decoder when the file's schema is StagedSchema and
// goavro's generic reader otherwise (files written by other tools).
func ReadStagedFile(data []byte, fn func(*records.Event) error) error {
	direct, err := readOCF(data, StagedSchema, false, func(count int64, block []byte) error {
		return DecodeBlock(Block{Count: count, Data: block}, fn)
	})
	if err == nil && !direct {
		return ReadStaged(bytes.NewReader(data), fn)
	}
	return err
}

// readOCF walks the blocks of an Avro container file held in memory,
// decompressed, if the file's schema is schema; otherwise it returns false
// and reads nothing.
//
// With owned, each block fn gets is memory of its own that nothing else
// holds or changes (fn may keep views into it); without, the blocks share
// one reused buffer.
func readOCF(data []byte, schema string, owned bool, fn func(count int64, block []byte) error) (bool, error) {
	h, err := parseHeader(data)
	if errors.Is(err, errShortHeader) {
		return false, fmt.Errorf("archive: not an Avro container: bad header")
	}
	if err != nil {
		return false, err
	}
	if h.schema != schema {
		return false, nil
	}
	codec := string(h.meta["avro.codec"])
	sync := h.sync
	d := decoder{b: data[h.size:]}
	var buf []byte
	for len(d.b) > 0 {
		count := d.long()
		block := d.bytes()
		if d.err != nil || count < 0 || len(d.b) < 16 || !bytes.Equal(d.b[:16], sync) {
			return true, fmt.Errorf("archive: corrupt Avro block")
		}
		d.b = d.b[16:]
		var err error
		dst := buf[:0]
		if owned {
			dst = nil
		}
		if buf, err = decompress(codec, block, dst); err != nil {
			return true, err
		}
		if err := fn(count, buf); err != nil {
			return true, err
		}
	}
	return true, nil
}

func decompress(codec string, block, dst []byte) ([]byte, error) {
	switch codec {
	case "", "null":
		return append(dst, block...), nil
	case "snappy":
		if len(block) < 4 {
			return nil, errCorrupt
		}
		out, err := snappy.Decode(dst[:cap(dst)], block[:len(block)-4])
		if err != nil {
			return nil, fmt.Errorf("archive: snappy: %w", err)
		}
		if crc32.ChecksumIEEE(out) != binary.BigEndian.Uint32(block[len(block)-4:]) {
			return nil, errors.New("archive: snappy block checksum mismatch")
		}
		return out, nil
	case "deflate":
		out, err := io.ReadAll(flate.NewReader(bytes.NewReader(block)))
		if err != nil {
			return nil, fmt.Errorf("archive: deflate: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("archive: unsupported Avro codec %q", codec)
}
