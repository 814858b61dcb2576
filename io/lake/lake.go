package lake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/fineo-io/ingest/schema"
)

// Names of the fixed columns of every lake table.
const (
	EventIDColumn       = "event_id"
	TimestampColumn     = "timestamp"
	UnknownFieldsColumn = "unknown_fields"
)

// DefaultRowGroupRows is the row group size used when Options.RowGroupRows is 0.
const DefaultRowGroupRows = 128 * 1024

// Column is one typed data column of a metric's table.
type Column struct {
	Name string
	Type schema.FieldType // boolean|long|double|string|bytes|timestamp
}

// Row is one lake row. Values align with the data columns (nil = null).
// Value Go types: boolean→bool, long→int64, double→float64, string→string,
// bytes→[]byte, timestamp→int64 epoch millis UTC. A nil []byte is null, an
// empty non-nil []byte is an empty (non-null) value.
type Row struct {
	EventID     string
	Timestamp   int64 // epoch millis UTC
	Values      []any
	UnknownJSON string // JSON object text; "" → null
}

// Options configures WriteParquet.
type Options struct {
	Compression  string // "zstd" (default) | "snappy"
	RowGroupRows int    // default DefaultRowGroupRows
}

// TableColumns returns the physical column order of a table with the given
// data columns: event_id, timestamp, the data columns in the given order,
// unknown_fields.
func TableColumns(cols []Column) []Column {
	out := make([]Column, 0, len(cols)+3)
	out = append(out, Column{EventIDColumn, schema.String}, Column{TimestampColumn, schema.Timestamp})
	out = append(out, cols...)
	return append(out, Column{UnknownFieldsColumn, schema.String})
}

// ValidateColumns checks that the data columns have known types and
// non-empty, distinct names that do not clash with the fixed columns.
func ValidateColumns(cols []Column) error {
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		switch c.Name {
		case "":
			return fmt.Errorf("lake: data column %d has an empty name", i)
		case EventIDColumn, TimestampColumn, UnknownFieldsColumn:
			return fmt.Errorf("lake: data column %q clashes with the reserved column %q", c.Name, c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("lake: data column %q appears twice", c.Name)
		}
		seen[c.Name] = true
		if strings.ContainsRune(c.Name, ',') || !utf8.ValidString(c.Name) {
			return fmt.Errorf("lake: data column name %q is not supported (commas and invalid UTF-8 are not allowed)", c.Name)
		}
		if _, err := leafNode(c.Type); err != nil {
			return fmt.Errorf("lake: data column %q: %w", c.Name, err)
		}
	}
	return nil
}

var (
	stringNode    = parquet.String()
	timestampNode = parquet.TimestampAdjusted(parquet.Millisecond, true)
)

func leafNode(t schema.FieldType) (parquet.Node, error) {
	switch t {
	case schema.Boolean:
		return parquet.Leaf(parquet.BooleanType), nil
	case schema.Long:
		return parquet.Leaf(parquet.Int64Type), nil
	case schema.Double:
		return parquet.Leaf(parquet.DoubleType), nil
	case schema.String:
		return stringNode, nil
	case schema.Bytes:
		return parquet.Leaf(parquet.ByteArrayType), nil
	case schema.Timestamp:
		return timestampNode, nil
	}
	return nil, fmt.Errorf("unknown field type %q", t)
}

// Schema returns the Parquet schema of a table with the given data columns,
// with its fields in TableColumns order.
func Schema(cols []Column) (*parquet.Schema, error) {
	if err := ValidateColumns(cols); err != nil {
		return nil, err
	}
	all := TableColumns(cols)
	fields := make([]orderedField, len(all))
	for i, c := range all {
		n, _ := leafNode(c.Type)
		switch c.Name {
		case EventIDColumn, TimestampColumn:
			n = parquet.Required(n)
		default:
			n = parquet.Optional(n)
		}
		fields[i] = orderedField{Node: n, name: c.Name}
	}
	return parquet.NewSchema("fineo_lake", newOrderedGroup(fields)), nil
}

// orderedGroup is a parquet group node whose fields keep their given order.
// parquet.Group is a map and sorts its fields by name, which would put e.g.
// "depth_km" before "event_id"; readers show the physical order in SELECT *.
type orderedGroup struct {
	fields []parquet.Field
	gotype reflect.Type
}

func newOrderedGroup(fields []orderedField) *orderedGroup {
	g := &orderedGroup{fields: make([]parquet.Field, len(fields))}
	sf := make([]reflect.StructField, len(fields))
	for i := range fields {
		g.fields[i] = &fields[i]
		sf[i] = reflect.StructField{
			Name: "F" + strconv.Itoa(i),
			Type: fields[i].GoType(),
			Tag:  reflect.StructTag(`parquet:` + strconv.Quote(fields[i].name)),
		}
	}
	g.gotype = reflect.StructOf(sf)
	return g
}

func (g *orderedGroup) ID() int                     { return 0 }
func (g *orderedGroup) String() string              { return "fineo_lake" }
func (g *orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g *orderedGroup) Optional() bool              { return false }
func (g *orderedGroup) Repeated() bool              { return false }
func (g *orderedGroup) Required() bool              { return true }
func (g *orderedGroup) Leaf() bool                  { return false }
func (g *orderedGroup) Fields() []parquet.Field     { return g.fields }
func (g *orderedGroup) Encoding() encoding.Encoding { return nil }
func (g *orderedGroup) Compression() compress.Codec { return nil }
func (g *orderedGroup) GoType() reflect.Type        { return g.gotype }
func (f *orderedField) Name() string                { return f.name }
func (f *orderedField) Value(base reflect.Value) reflect.Value {
	// Only used when writing Go structs or maps, which this package never
	// does; kept correct for maps keyed by column name.
	if base.Kind() == reflect.Map {
		return base.MapIndex(reflect.ValueOf(f.name))
	}
	return reflect.Value{}
}

type orderedField struct {
	parquet.Node
	name string
}

func codecFor(name string) (compress.Codec, error) {
	switch strings.ToLower(name) {
	case "", "zstd":
		return lakeZstd(), nil
	case "snappy":
		return &parquet.Snappy, nil
	}
	return nil, fmt.Errorf("lake: unsupported compression %q (want zstd or snappy)", name)
}

// zstdCodec is parquet-go's ZSTD codec (same level and options, and a
// window of a page's size) with one long-lived encoder. parquet-go keeps its encoders
// in a sync.Pool, which every garbage collection empties: a new encoder
// then allocates and clears its history window, 0.4 s of a 3M-line batch's
// CPU (profile: zstd ensureHist under memclr).
type zstdCodec struct {
	enc *zstd.Encoder
}

// zstdWindow is the lake encoder's window; see lakeZstd.
const zstdWindow = 1 << 20

var (
	lakeZstdOnce  sync.Once
	lakeZstdCodec *zstdCodec
)

func lakeZstd() *zstdCodec {
	lakeZstdOnce.Do(func() { lakeZstdCodec = newZstdCodec(runtime.GOMAXPROCS(0)) })
	return lakeZstdCodec
}

// newZstdCodec makes the codec for up to concurrency EncodeAll calls at once
// (more wait).
func newZstdCodec(concurrency int) *zstdCodec {
	enc, err := zstd.NewWriter(nil,
		// As parquet-go's codec, except for the window and that EncodeAll
		// may run on every CPU at once.
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderLevel(pqzstd.DefaultLevel),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
		// A page is at most about PageBufferSize (1 MiB): a larger window
		// would not find more, and each encoder keeps its window for the
		// life of the process (17.6 MiB at the default, per CPU).
		zstd.WithWindowSize(zstdWindow),
	)
	if err != nil {
		panic(fmt.Sprintf("lake: zstd encoder: %v", err)) // constant options
	}
	return &zstdCodec{enc: enc}
}

func (c *zstdCodec) String() string                            { return parquet.Zstd.String() }
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }
func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}
func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) { return parquet.Zstd.Decode(dst, src) }

// kind is a FieldType as a small integer, for the per-value hot loops
// (FieldType is a string; comparing strings per value is measurably slow).
type kind uint8

const (
	kBoolean kind = iota
	kLong         // long and timestamp: int64
	kDouble
	kString
	kBytes
)

func kindsOf(cols []Column) []kind {
	ks := make([]kind, len(cols))
	for i, c := range cols {
		switch c.Type {
		case schema.Boolean:
			ks[i] = kBoolean
		case schema.Long, schema.Timestamp:
			ks[i] = kLong
		case schema.Double:
			ks[i] = kDouble
		case schema.String:
			ks[i] = kString
		case schema.Bytes:
			ks[i] = kBytes
		}
	}
	return ks
}

// ValidateRows checks every row against the data columns: len(Values) ==
// len(cols), each non-nil value has its column's Go type, and strings are
// valid UTF-8 (Parquet STRING requires it; DuckDB refuses files without it).
func ValidateRows(cols []Column, rows []Row) error {
	return validateRows(cols, kindsOf(cols), rows)
}

func validateRows(cols []Column, kinds []kind, rows []Row) error {
	for i := range rows {
		r := &rows[i]
		if len(r.Values) != len(cols) {
			return fmt.Errorf("lake: row %d has %d values, want %d (one per data column)", i, len(r.Values), len(cols))
		}
		if !utf8.ValidString(r.EventID) {
			return fmt.Errorf("lake: row %d: event_id is not valid UTF-8", i)
		}
		if !utf8.ValidString(r.UnknownJSON) {
			return fmt.Errorf("lake: row %d: unknown_fields is not valid UTF-8", i)
		}
		for j, v := range r.Values {
			if v == nil {
				continue
			}
			ok := false
			switch kinds[j] {
			case kBoolean:
				_, ok = v.(bool)
			case kLong:
				_, ok = v.(int64)
			case kDouble:
				_, ok = v.(float64)
			case kString:
				var s string
				if s, ok = v.(string); ok && !utf8.ValidString(s) {
					return fmt.Errorf("lake: row %d, column %q: string value is not valid UTF-8", i, cols[j].Name)
				}
			case kBytes:
				_, ok = v.([]byte)
			}
			if !ok {
				return fmt.Errorf("lake: row %d, column %q (%s): value has Go type %T, want %s", i, cols[j].Name, cols[j].Type, v, goTypeName(cols[j].Type))
			}
		}
	}
	return nil
}

func goTypeName(t schema.FieldType) string {
	switch t {
	case schema.Boolean:
		return "bool"
	case schema.Long, schema.Timestamp:
		return "int64"
	case schema.Double:
		return "float64"
	case schema.String:
		return "string"
	case schema.Bytes:
		return "[]byte"
	}
	return "?"
}

// writeBatch is the number of rows handed to the parquet writer at once.
const writeBatch = 1024

// WriteParquet encodes rows as one Parquet file to w (see the package
// documentation for the column contract). The input is validated before
// anything is written: on a validation error nothing is written to w. On a
// write error the bytes already written to w are not a valid file and must be
// discarded.
func WriteParquet(w io.Writer, cols []Column, rows []Row, opts Options) error {
	sch, err := Schema(cols)
	if err != nil {
		return err
	}
	codec, err := codecFor(opts.Compression)
	if err != nil {
		return err
	}
	rgRows := opts.RowGroupRows
	if rgRows <= 0 {
		rgRows = DefaultRowGroupRows
	}
	kinds := kindsOf(cols)
	if err := validateRows(cols, kinds, rows); err != nil {
		return err
	}

	// A write buffer only helps an unbuffered output; the lake builds each
	// file in memory, and a 1 MiB buffer per file was 15% of writing the
	// lake's typical 800-row partition (BenchmarkWriteParquet/rows=800).
	writeBuf := 1 << 20
	if _, inMemory := w.(*bytes.Buffer); inMemory {
		writeBuf = 0
	}
	pw := parquet.NewGenericWriter[any](w, sch,
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(int64(rgRows)),
		parquet.DataPageStatistics(true),
		// Also fill the deprecated Statistics.min/max fields, which DuckDB's
		// parquet_metadata shows as stats_min/stats_max and older readers
		// (pre-2018 parquet-mr, Presto) use for pruning. They are copies of
		// min_value/max_value; for our signed INT64/DOUBLE/BOOLEAN columns
		// the orders agree, and readers that know min_value prefer it.
		parquet.DeprecatedDataPageStatistics(true),
		// v1 data pages: what parquet-mr, pyarrow and Spark write by
		// default, and the safest choice for older Drill/Athena readers.
		parquet.DataPageVersion(1),
		// PLAIN everywhere: parquet-go defaults BYTE_ARRAY columns to
		// DELTA_LENGTH_BYTE_ARRAY, which Spark's vectorized reader only
		// supports since 3.3 and older Drill/Presto readers not at all.
		parquet.DefaultEncoding(&parquet.Plain),
		parquet.PageBufferSize(1<<20),
		parquet.WriteBufferSize(writeBuf),
	)

	ncol := len(cols) + 3
	unknownCol := ncol - 1
	n := min(writeBatch, len(rows))
	backing := make([]parquet.Value, n*ncol)
	batch := make([]parquet.Row, n)
	for i := range batch {
		batch[i] = backing[i*ncol : (i+1)*ncol : (i+1)*ncol]
	}

	for start := 0; start < len(rows); start += writeBatch {
		end := min(start+writeBatch, len(rows))
		for k, r := range rows[start:end] {
			out := batch[k]
			out[0] = stringValue(r.EventID).Level(0, 0, 0)
			out[1] = parquet.Int64Value(r.Timestamp).Level(0, 0, 1)
			for j, v := range r.Values {
				out[j+2] = dataValue(kinds[j], v, j+2)
			}
			if r.UnknownJSON == "" {
				out[unknownCol] = parquet.NullValue().Level(0, 0, unknownCol)
			} else {
				out[unknownCol] = stringValue(r.UnknownJSON).Level(0, 1, unknownCol)
			}
		}
		if _, err := pw.WriteRows(batch[:end-start]); err != nil {
			return fmt.Errorf("lake: write parquet: %w", err)
		}
	}
	// Drop references to the caller's strings and slices.
	clear(backing)
	if err := pw.Close(); err != nil {
		return fmt.Errorf("lake: write parquet: %w", err)
	}
	return nil
}

// stringValue makes a BYTE_ARRAY value that points at s without copying;
// the writer copies the bytes into its page buffers and never mutates them.
func stringValue(s string) parquet.Value {
	return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// dataValue converts one validated value of an optional data column.
func dataValue(k kind, v any, col int) parquet.Value {
	if v == nil {
		return parquet.NullValue().Level(0, 0, col)
	}
	var pv parquet.Value
	switch k {
	case kBoolean:
		pv = parquet.BooleanValue(v.(bool))
	case kLong:
		pv = parquet.Int64Value(v.(int64))
	case kDouble:
		pv = parquet.DoubleValue(v.(float64))
	case kString:
		pv = stringValue(v.(string))
	case kBytes:
		b := v.([]byte)
		if b == nil {
			return parquet.NullValue().Level(0, 0, col)
		}
		pv = parquet.ByteArrayValue(b)
	}
	return pv.Level(0, 1, col)
}

// ReadParquet reads a file written by WriteParquet back: its data columns
// and its rows. Null values are nil; bytes values are fresh slices ([]byte{}
// for an empty value). It fails if the file does not follow the lake's
// column contract.
func ReadParquet(r io.ReaderAt, size int64) ([]Column, []Row, error) {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return nil, nil, fmt.Errorf("lake: open parquet: %w", err)
	}
	cols, err := columnsOf(f.Schema())
	if err != nil {
		return nil, nil, err
	}
	ncol := len(cols) + 3
	out := make([]Row, 0, f.NumRows())
	buf := make([]parquet.Row, 256)
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(buf)
			for _, pr := range buf[:n] {
				if len(pr) != ncol {
					rr.Close()
					return nil, nil, fmt.Errorf("lake: row %d has %d values, want %d", len(out), len(pr), ncol)
				}
				row := Row{
					EventID:   string(pr[0].ByteArray()),
					Timestamp: pr[1].Int64(),
					Values:    make([]any, len(cols)),
				}
				for j, c := range cols {
					v := pr[j+2]
					if v.IsNull() {
						continue
					}
					switch c.Type {
					case schema.Boolean:
						row.Values[j] = v.Boolean()
					case schema.Long, schema.Timestamp:
						row.Values[j] = v.Int64()
					case schema.Double:
						row.Values[j] = v.Double()
					case schema.String:
						row.Values[j] = string(v.ByteArray())
					case schema.Bytes:
						row.Values[j] = append([]byte{}, v.ByteArray()...)
					}
				}
				if u := pr[ncol-1]; !u.IsNull() {
					row.UnknownJSON = string(u.ByteArray())
				}
				out = append(out, row)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rr.Close()
				return nil, nil, fmt.Errorf("lake: read parquet: %w", err)
			}
		}
		if err := rr.Close(); err != nil {
			return nil, nil, fmt.Errorf("lake: read parquet: %w", err)
		}
	}
	return cols, out, nil
}

// columnsOf checks a file schema against the column contract and returns
// its data columns.
func columnsOf(s *parquet.Schema) ([]Column, error) {
	fields := s.Fields()
	if len(fields) < 3 {
		return nil, errors.New("lake: not a lake file: fewer than 3 columns")
	}
	want := func(i int, name string, typ schema.FieldType, required bool) error {
		f := fields[i]
		got, err := fieldType(f)
		if err != nil {
			return err
		}
		if f.Name() != name || got != typ || f.Required() != required {
			return fmt.Errorf("lake: not a lake file: column %d is %q (%s, required=%t), want %q (%s, required=%t)",
				i, f.Name(), got, f.Required(), name, typ, required)
		}
		return nil
	}
	last := len(fields) - 1
	if err := want(0, EventIDColumn, schema.String, true); err != nil {
		return nil, err
	}
	if err := want(1, TimestampColumn, schema.Timestamp, true); err != nil {
		return nil, err
	}
	if err := want(last, UnknownFieldsColumn, schema.String, false); err != nil {
		return nil, err
	}
	cols := make([]Column, 0, len(fields)-3)
	for _, f := range fields[2:last] {
		t, err := fieldType(f)
		if err != nil {
			return nil, err
		}
		if !f.Optional() {
			return nil, fmt.Errorf("lake: not a lake file: data column %q is not optional", f.Name())
		}
		cols = append(cols, Column{Name: f.Name(), Type: t})
	}
	if err := ValidateColumns(cols); err != nil {
		return nil, err
	}
	return cols, nil
}

func fieldType(f parquet.Field) (schema.FieldType, error) {
	if !f.Leaf() || f.Repeated() {
		return "", fmt.Errorf("lake: not a lake file: column %q is not a flat leaf column", f.Name())
	}
	t := f.Type()
	var lt format.LogicalTypeValue
	if l := t.LogicalType(); l != nil {
		lt = l.Value
	}
	switch t.Kind() {
	case parquet.Boolean:
		if lt == nil {
			return schema.Boolean, nil
		}
	case parquet.Int64:
		switch x := lt.(type) {
		case nil:
			return schema.Long, nil
		case *format.IntType:
			// parquet-go annotates plain INT64 columns as INT(64, signed).
			if x.BitWidth == 64 && x.IsSigned {
				return schema.Long, nil
			}
		case *format.TimestampType:
			if _, ms := x.Unit.Value.(*format.MilliSeconds); ms && x.IsAdjustedToUTC {
				return schema.Timestamp, nil
			}
		}
	case parquet.Double:
		if lt == nil {
			return schema.Double, nil
		}
	case parquet.ByteArray:
		switch lt.(type) {
		case nil:
			return schema.Bytes, nil
		case *format.StringType:
			return schema.String, nil
		}
	}
	return "", fmt.Errorf("lake: not a lake file: column %q has unsupported type %s", f.Name(), t)
}
