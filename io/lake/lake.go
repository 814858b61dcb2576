package lake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
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

	"github.com/fineo-io/ingest/records"
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
func Schema(cols []Column) (*parquet.Schema, error) { return schemaOf(cols, nil) }

// schemaOf is Schema with the event_id column compressed by idCodec (nil:
// the writer's codec).
func schemaOf(cols []Column, idCodec compress.Codec) (*parquet.Schema, error) {
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
		if c.Name == EventIDColumn && idCodec != nil {
			n = parquet.Compressed(n, idCodec)
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

// CheckCompression reports whether name is a compression the lake writes
// (Options.Compression): zstd or snappy.
func CheckCompression(name string) error {
	_, _, err := codecFor(name)
	return err
}

// codecFor returns the codec named by Options.Compression, and the one for
// the event_id column (nil: the same).
func codecFor(name string) (codec, idCodec compress.Codec, err error) {
	switch strings.ToLower(name) {
	case "", "zstd":
		return lakeZstd(), lakeZstdIDs(), nil
	case "snappy":
		return &parquet.Snappy, nil, nil
	}
	return nil, nil, fmt.Errorf("lake: unsupported compression %q (want zstd or snappy)", name)
}

// zstdCodec is parquet-go's ZSTD codec (same options at its level, and a
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
	lakeZstd = sync.OnceValue(func() *zstdCodec {
		return newZstdCodec(runtime.GOMAXPROCS(0), pqzstd.DefaultLevel)
	})
	// lakeZstdIDs compresses the event_id column. Event ids are UUIDs,
	// random hex: zstd finds no repeats in them at any level and only
	// entropy-codes them, which its fastest level does as well as the
	// default (52% of the input either way) at 2x the speed on a 1 MiB
	// page and 7x on a partition's typical 60 KiB. The id column was a
	// third of a batch's zstd CPU (docs in bench/RESULTS.md).
	lakeZstdIDs = sync.OnceValue(func() *zstdCodec {
		return newZstdCodec(runtime.GOMAXPROCS(0), zstd.SpeedFastest)
	})
)

// newZstdCodec makes the codec for up to concurrency EncodeAll calls at once
// (more wait).
func newZstdCodec(concurrency int, level zstd.EncoderLevel) *zstdCodec {
	enc, err := zstd.NewWriter(nil,
		// As parquet-go's codec, except for the window and that EncodeAll
		// may run on every CPU at once.
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderLevel(level),
		// Entropy-code every literal block, however short (the fastest
		// level would otherwise store short ones raw).
		zstd.WithAllLitEntropyCompression(true),
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

// kindsOf returns the value kind each data column holds (long and
// timestamp: LongValue), for the per-value checks: FieldType is a string,
// and comparing strings per value is measurably slow.
func kindsOf(cols []Column) []records.ValueKind {
	ks := make([]records.ValueKind, len(cols))
	for i, c := range cols {
		switch c.Type {
		case schema.Boolean:
			ks[i] = records.BoolValue
		case schema.Long, schema.Timestamp:
			ks[i] = records.LongValue
		case schema.Double:
			ks[i] = records.DoubleValue
		case schema.String:
			ks[i] = records.StringValue
		case schema.Bytes:
			ks[i] = records.BytesValue
		}
	}
	return ks
}

// checkCell says whether v, the value of data column j in row row, fits
// the column: null, or of the column's kind, and valid UTF-8 if a string.
func checkCell(cols []Column, kinds []records.ValueKind, row int64, j int, v *records.Value) error {
	switch {
	case v.Kind == records.NullValue:
		return nil
	case v.Kind > records.BytesValue:
		return fmt.Errorf("lake: row %d, column %q: unknown value kind %d", row, cols[j].Name, v.Kind)
	case v.Kind != kinds[j]:
		return fmt.Errorf("lake: row %d, column %q (%s): value has Go type %T, want %s", row, cols[j].Name, cols[j].Type, v.Any(), goTypeName(cols[j].Type))
	case v.Kind == records.StringValue && !utf8.ValidString(v.Str):
		return fmt.Errorf("lake: row %d, column %q: string value is not valid UTF-8", row, cols[j].Name)
	}
	return nil
}

// ValidateRows checks every row against the data columns: len(Values) ==
// len(cols), each non-nil value has its column's Go type, and strings are
// valid UTF-8 (Parquet STRING requires it; DuckDB refuses files without it).
func ValidateRows(cols []Column, rows []Row) error {
	kinds := kindsOf(cols)
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
		for j, x := range r.Values {
			if x == nil {
				continue
			}
			v, ok := records.ValueOf(x)
			if !ok {
				return fmt.Errorf("lake: row %d, column %q (%s): value has Go type %T, want %s", i, cols[j].Name, cols[j].Type, x, goTypeName(cols[j].Type))
			}
			if err := checkCell(cols, kinds, int64(i), j, &v); err != nil {
				return err
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

// WriteParquet encodes rows as one Parquet file to w (see the package
// documentation for the column contract). The input is validated before
// anything is written: on a validation error nothing is written to w. On a
// write error the bytes already written to w are not a valid file and must be
// discarded.
func WriteParquet(w io.Writer, cols []Column, rows []Row, opts Options) error {
	if err := ValidateColumns(cols); err != nil {
		return err
	}
	if _, _, err := codecFor(opts.Compression); err != nil {
		return err
	}
	if err := ValidateRows(cols, rows); err != nil {
		return err
	}
	pw, err := NewWriter(w, cols, opts)
	if err != nil {
		return err
	}
	values := make([]records.Value, len(cols))
	for i := range rows {
		r := &rows[i]
		for j, v := range r.Values {
			values[j], _ = records.ValueOf(v) // validated above
		}
		if err := pw.Append(r.EventID, r.Timestamp, values, r.UnknownJSON); err != nil {
			return err
		}
	}
	return pw.Close()
}

// Writer writes one lake Parquet file a row at a time. It holds up to a row
// group's rows column by column, as the Parquet values they become, and
// hands each column to its column writer whole: no []any per row, no
// boxed value per cell, no row-to-column transposition (together a fifth
// of a batch's CPU when the lake was built from []Row).
type Writer struct {
	pw     *parquet.GenericWriter[any]
	cols   []Column
	kinds  []records.ValueKind
	rgRows int
	vals   [][]parquet.Value // per table column (TableColumns order), the buffered rows
	n      int               // rows buffered
	rows   int64             // rows appended
	err    error             // a failed write: every later call returns it
}

// pageRows is how many rows go to a column writer per call. A column writer
// closes a page only between calls; parquet-go's own row writer uses 64,
// and so the pages (and files) are the same as WriteRows would write.
const pageRows = 64

// NewWriter starts a Parquet file of a table with the given data columns.
// Call Append for each row and Close at the end. After a write error the
// bytes written to w are not a valid file and must be discarded, and every
// later call returns that error. A row Append refuses (its error names the
// row and column) is not added, and the Writer goes on.
func NewWriter(w io.Writer, cols []Column, opts Options) (*Writer, error) {
	codec, idCodec, err := codecFor(opts.Compression)
	if err != nil {
		return nil, err
	}
	sch, err := schemaOf(cols, idCodec)
	if err != nil {
		return nil, err
	}
	rgRows := opts.RowGroupRows
	if rgRows <= 0 {
		rgRows = DefaultRowGroupRows
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
	return &Writer{pw: pw, cols: cols, kinds: kindsOf(cols), rgRows: rgRows, vals: make([][]parquet.Value, len(cols)+3)}, nil
}

// Grow makes room for n more rows (up to a row group's) without growing
// the column buffers row by row.
func (w *Writer) Grow(n int) {
	n = min(n, w.rgRows-w.n)
	for k := range w.vals {
		w.vals[k] = slices.Grow(w.vals[k], n)
	}
}

// Rows returns the number of rows appended.
func (w *Writer) Rows() int64 { return w.rows }

// Append adds one row: its event id, timestamp (epoch millis UTC), one
// value per data column (records.Value{} is null; a BytesValue with nil
// Bytes too) and the unknown fields as a JSON object text ("" is null).
// A value of the wrong kind for its column, or a string that is not valid
// UTF-8, is an error and the row is not added. Strings and bytes are not
// copied until the row group is written: they must not change before
// Close.
func (w *Writer) Append(eventID string, ts int64, values []records.Value, unknownJSON string) error {
	if w.err != nil {
		return w.err
	}
	if len(values) != len(w.cols) {
		return fmt.Errorf("lake: row %d has %d values, want %d (one per data column)", w.rows, len(values), len(w.cols))
	}
	if !utf8.ValidString(eventID) {
		return fmt.Errorf("lake: row %d: event_id is not valid UTF-8", w.rows)
	}
	if !utf8.ValidString(unknownJSON) {
		return fmt.Errorf("lake: row %d: unknown_fields is not valid UTF-8", w.rows)
	}
	for j := range values {
		if err := checkCell(w.cols, w.kinds, w.rows, j, &values[j]); err != nil {
			return err
		}
	}
	w.vals[0] = append(w.vals[0], stringValue(eventID).Level(0, 0, 0))
	w.vals[1] = append(w.vals[1], parquet.Int64Value(ts).Level(0, 0, 1))
	for j := range values {
		w.vals[j+2] = append(w.vals[j+2], cellValue(&values[j], j+2))
	}
	u := len(w.vals) - 1
	if unknownJSON == "" {
		w.vals[u] = append(w.vals[u], parquet.NullValue().Level(0, 0, u))
	} else {
		w.vals[u] = append(w.vals[u], stringValue(unknownJSON).Level(0, 1, u))
	}
	w.n++
	w.rows++
	if w.n >= w.rgRows {
		return w.flush()
	}
	return nil
}

// flush writes the buffered rows as one row group.
func (w *Writer) flush() error {
	if w.err != nil || w.n == 0 {
		return w.err
	}
	for k, cw := range w.pw.ColumnWriters() {
		vals := w.vals[k]
		for start := 0; start < len(vals); start += pageRows {
			if _, err := cw.WriteRowValues(vals[start:min(start+pageRows, len(vals))]); err != nil {
				w.err = fmt.Errorf("lake: write parquet: %w", err)
				return w.err
			}
		}
		clear(vals) // drop references to the caller's strings
		w.vals[k] = vals[:0]
	}
	w.n = 0
	if err := w.pw.Flush(); err != nil {
		w.err = fmt.Errorf("lake: write parquet: %w", err)
	}
	return w.err
}

// Close writes the last row group and the file footer.
func (w *Writer) Close() error {
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.pw.Close(); err != nil {
		w.err = fmt.Errorf("lake: write parquet: %w", err)
	}
	return w.err
}

// stringValue makes a BYTE_ARRAY value that points at s without copying;
// the writer copies the bytes into its page buffers and never mutates them.
func stringValue(s string) parquet.Value {
	return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// cellValue converts one checked value of the optional data column col.
func cellValue(v *records.Value, col int) parquet.Value {
	var pv parquet.Value
	switch v.Kind {
	case records.BoolValue:
		pv = parquet.BooleanValue(v.Int != 0)
	case records.LongValue:
		pv = parquet.Int64Value(v.Int)
	case records.DoubleValue:
		pv = parquet.DoubleValue(v.Float)
	case records.StringValue:
		pv = stringValue(v.Str)
	case records.BytesValue:
		if v.Bytes == nil {
			return parquet.NullValue().Level(0, 0, col)
		}
		pv = parquet.ByteArrayValue(v.Bytes)
	default:
		return parquet.NullValue().Level(0, 0, col)
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
