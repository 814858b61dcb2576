package lake

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// allCols has one data column of every field type, in a deliberately
// non-alphabetical order (parquet.Group would sort them).
var allCols = []Column{
	{"temperature", schema.Double},
	{"station", schema.String},
	{"depth_km", schema.Long},
	{"ok", schema.Boolean},
	{"payload", schema.Bytes},
	{"observed_at", schema.Timestamp},
}

func roundTrip(t *testing.T, cols []Column, rows []Row, opts Options) ([]Column, []Row, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteParquet(&buf, cols, rows, opts); err != nil {
		t.Fatalf("WriteParquet: %v", err)
	}
	gotCols, gotRows, err := ReadParquet(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("ReadParquet: %v", err)
	}
	return gotCols, gotRows, buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	manyRows := make([]Row, 1000)
	for i := range manyRows {
		manyRows[i] = Row{
			EventID:   fmt.Sprintf("ev-%04d", i),
			Timestamp: 1704153600000 + int64(i),
			Values:    []any{float64(i) / 2, fmt.Sprint("s", i%7), int64(i), i%2 == 0, []byte{byte(i)}, int64(i) * 1000},
		}
		if i%10 == 0 {
			manyRows[i].Values = make([]any, len(allCols)) // all null
		}
	}
	tests := []struct {
		name string
		cols []Column
		rows []Row
		opts Options
	}{
		{
			name: "every type with values",
			cols: allCols,
			rows: []Row{{
				EventID: "e1", Timestamp: 1704153600123,
				Values:      []any{21.5, "harbor-1", int64(-42), true, []byte{0, 1, 2, 255}, int64(1704153600999)},
				UnknownJSON: `{"x":"y","n":1}`,
			}},
		},
		{
			name: "nulls",
			cols: allCols,
			rows: []Row{{EventID: "e1", Timestamp: 1, Values: []any{nil, nil, nil, nil, nil, nil}}},
		},
		{
			name: "empty values are not null",
			cols: allCols,
			rows: []Row{{EventID: "", Timestamp: 0, Values: []any{0.0, "", int64(0), false, []byte{}, int64(0)}, UnknownJSON: "{}"}},
		},
		{
			name: "unicode strings",
			cols: allCols,
			rows: []Row{{
				EventID: "é-✓-😀", Timestamp: 2,
				Values:      []any{math.Inf(-1), "Zürich 東京 🌧️", nil, nil, []byte("ünï"), nil},
				UnknownJSON: `{"名前":"値","emoji":"🌊"}`,
			}},
		},
		{
			name: "extreme numbers",
			cols: allCols,
			rows: []Row{
				{EventID: "a", Timestamp: math.MaxInt64, Values: []any{math.MaxFloat64, nil, int64(math.MaxInt64), nil, nil, int64(math.MinInt64)}},
				{EventID: "b", Timestamp: math.MinInt64, Values: []any{-0.0, nil, int64(math.MinInt64), nil, nil, int64(math.MaxInt64)}},
			},
		},
		{name: "zero rows", cols: allCols, rows: nil},
		{name: "no data columns", cols: nil, rows: []Row{{EventID: "e", Timestamp: 5, Values: nil}}},
		{name: "many rows small row groups snappy", cols: allCols, rows: manyRows, opts: Options{Compression: "snappy", RowGroupRows: 77}},
		{name: "many rows zstd", cols: allCols, rows: manyRows},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotCols, gotRows, _ := roundTrip(t, tc.cols, tc.rows, tc.opts)
			if len(tc.cols) == 0 {
				if len(gotCols) != 0 {
					t.Errorf("columns = %v, want none", gotCols)
				}
			} else if !reflect.DeepEqual(gotCols, tc.cols) {
				t.Errorf("columns = %v, want %v", gotCols, tc.cols)
			}
			if len(gotRows) != len(tc.rows) {
				t.Fatalf("got %d rows, want %d", len(gotRows), len(tc.rows))
			}
			for i := range tc.rows {
				want, got := tc.rows[i], gotRows[i]
				if want.Values == nil {
					want.Values = []any{}
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("row %d:\n got %#v\nwant %#v", i, got, want)
				}
			}
		})
	}
}

// A nil []byte inside a non-nil interface is null, like encoding/json; an
// empty non-nil []byte is an empty value.
func TestBytesNilVersusEmpty(t *testing.T) {
	cols := []Column{{"b", schema.Bytes}}
	rows := []Row{
		{EventID: "nil-interface", Values: []any{nil}},
		{EventID: "nil-slice", Values: []any{[]byte(nil)}},
		{EventID: "empty", Values: []any{[]byte{}}},
	}
	_, got, _ := roundTrip(t, cols, rows, Options{})
	for i, want := range []any{nil, nil, []byte{}} {
		if !reflect.DeepEqual(got[i].Values[0], want) {
			t.Errorf("%s: got %#v, want %#v", rows[i].EventID, got[i].Values[0], want)
		}
	}
}

func TestTableColumnsOrderInFile(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteParquet(&buf, allCols, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	sch, err := Schema(allCols)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range sch.Fields() {
		names = append(names, f.Name())
	}
	var want []string
	for _, c := range TableColumns(allCols) {
		want = append(want, c.Name)
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("schema order %v, want %v", names, want)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		cols []Column
		rows []Row
		opts Options
		want []string // substrings of the error
	}{
		{name: "clash event_id", cols: []Column{{"a", schema.Long}, {"event_id", schema.String}}, want: []string{`"event_id"`, "clashes"}},
		{name: "clash timestamp", cols: []Column{{"timestamp", schema.Timestamp}}, want: []string{`"timestamp"`, "clashes"}},
		{name: "clash unknown_fields", cols: []Column{{"unknown_fields", schema.String}}, want: []string{`"unknown_fields"`, "clashes"}},
		{name: "duplicate column", cols: []Column{{"a", schema.Long}, {"a", schema.Double}}, want: []string{`"a"`, "twice"}},
		{name: "empty column name", cols: []Column{{"", schema.Long}}, want: []string{"empty name"}},
		{name: "unknown type", cols: []Column{{"a", "decimal"}}, want: []string{`"a"`, "decimal"}},
		{name: "bad compression", cols: allCols, opts: Options{Compression: "lzo"}, want: []string{"lzo"}},
		{
			name: "int instead of int64",
			cols: []Column{{"temp", schema.Double}, {"depth_km", schema.Long}},
			rows: []Row{{Values: []any{1.0, int64(1)}}, {Values: []any{2.0, 7}}},
			want: []string{"row 1", `"depth_km"`, "long", "Go type int,", "want int64"},
		},
		{
			name: "string instead of bytes",
			cols: []Column{{"payload", schema.Bytes}},
			rows: []Row{{Values: []any{"abc"}}},
			want: []string{"row 0", `"payload"`, "string", "want []byte"},
		},
		{
			name: "time.Time-like instead of millis",
			cols: []Column{{"seen", schema.Timestamp}},
			rows: []Row{{Values: []any{float64(1)}}},
			want: []string{"row 0", `"seen"`, "float64", "want int64"},
		},
		{
			name: "float32 instead of float64",
			cols: []Column{{"t", schema.Double}},
			rows: []Row{{Values: []any{float32(1)}}},
			want: []string{"row 0", `"t"`, "float32", "want float64"},
		},
		{
			name: "too few values",
			cols: allCols,
			rows: []Row{{Values: []any{1.0}}},
			want: []string{"row 0", "1 values", "want 6"},
		},
		{
			name: "invalid utf-8 string",
			cols: []Column{{"s", schema.String}},
			rows: []Row{{Values: []any{"a\xffb"}}},
			want: []string{"row 0", `"s"`, "UTF-8"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteParquet(&buf, tc.cols, tc.rows, tc.opts)
			if err == nil {
				t.Fatal("WriteParquet succeeded, want error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written despite the error", buf.Len())
			}
		})
	}
}

func TestReadParquetRejectsForeignFiles(t *testing.T) {
	if _, _, err := ReadParquet(bytes.NewReader([]byte("not parquet")), 11); err == nil {
		t.Fatal("ReadParquet of garbage succeeded")
	}
}

// TestDuckDB reads a hive-partitioned lake written by WriteParquet with
// DuckDB, the independent reader.
func TestDuckDB(t *testing.T) {
	lake := t.TempDir()
	// Two dates of one metric; the second file uses snappy to check both codecs.
	type part struct {
		date string
		rows []Row
		opts Options
	}
	var parts []part
	var wantSumDepth int64
	wantNullTemps, total := 0, 0
	for d, date := range []string{"2024-01-02", "2024-01-03"} {
		var rows []Row
		for i := range 500 {
			ts := int64(1704153600000) + int64(d)*86400000 + int64(i)*1000
			r := Row{
				EventID:   fmt.Sprintf("%s-%03d", date, i),
				Timestamp: ts,
				Values:    []any{float64(i) / 4, "Zürich-" + fmt.Sprint(i%3), int64(i * 3), i%2 == 0, []byte{byte(i), 0xff}, ts + 5},
			}
			if i%5 == 0 {
				r.Values[0] = nil
				wantNullTemps++
			}
			if i%7 == 0 {
				r.UnknownJSON = fmt.Sprintf(`{"x":"v%d","firmware":"1.2"}`, i)
			}
			wantSumDepth += int64(i * 3)
			rows = append(rows, r)
		}
		total += len(rows)
		opts := Options{RowGroupRows: 200}
		if d == 1 {
			opts.Compression = "snappy"
		}
		parts = append(parts, part{date, rows, opts})
	}
	var firstFile string
	for _, p := range parts {
		dir := filepath.Join(lake, "tenant=acme", "metric=weather", "date="+p.date)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "part-00000.parquet")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteParquet(f, allCols, p.rows, p.opts); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if firstFile == "" {
			firstFile = file
		}
	}
	glob := filepath.ToSlash(filepath.Join(lake, "*", "*", "*", "*.parquet"))
	from := fmt.Sprintf("read_parquet('%s', hive_partitioning=true)", glob)

	t.Run("describe", func(t *testing.T) {
		rows := testenv.DuckDB(t, "DESCRIBE SELECT * FROM "+from)
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprintf("%v %v", r["column_name"], r["column_type"]))
		}
		// TIMESTAMP(MILLIS, isAdjustedToUTC=true) is an instant; DuckDB maps
		// it to TIMESTAMP WITH TIME ZONE (TIMESTAMPTZ) and bumps millis to its
		// microsecond timestamps. The hive columns come last; date is
		// auto-detected as DATE from YYYY-MM-DD values.
		want := []string{
			"event_id VARCHAR",
			"timestamp TIMESTAMP WITH TIME ZONE",
			"temperature DOUBLE",
			"station VARCHAR",
			"depth_km BIGINT",
			"ok BOOLEAN",
			"payload BLOB",
			"observed_at TIMESTAMP WITH TIME ZONE",
			"unknown_fields VARCHAR",
			"date DATE",
			"metric VARCHAR",
			"tenant VARCHAR",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("DESCRIBE:\n got %q\nwant %q", got, want)
		}
	})

	t.Run("aggregates", func(t *testing.T) {
		rows := testenv.DuckDB(t, `SELECT count(*) AS n, sum(depth_km) AS sum_depth,
			count(*) FILTER (WHERE temperature IS NULL) AS null_temps,
			min(epoch_ms("timestamp")) AS min_ts, max(epoch_ms("timestamp")) AS max_ts,
			count(DISTINCT tenant) AS tenants, min(metric) AS metric, count(DISTINCT date) AS dates,
			count(*) FILTER (WHERE ok) AS oks, count(unknown_fields) AS unknowns
			FROM `+from)
		if len(rows) != 1 {
			t.Fatalf("got %d rows", len(rows))
		}
		r := rows[0]
		check := func(key string, want any) {
			t.Helper()
			if fmt.Sprint(r[key]) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v", key, r[key], want)
			}
		}
		check("n", total)
		check("sum_depth", wantSumDepth)
		check("null_temps", wantNullTemps)
		check("min_ts", int64(1704153600000))
		check("max_ts", int64(1704153600000)+86400000+499*1000)
		check("tenants", 1)
		check("metric", "weather")
		check("dates", 2)
		check("oks", total/2)
		check("unknowns", 2*(499/7+1))
	})

	t.Run("values", func(t *testing.T) {
		rows := testenv.DuckDB(t, `SELECT event_id, epoch_ms("timestamp") AS ts, temperature, station, depth_km, ok,
			hex(payload) AS payload, epoch_ms(observed_at) AS observed_ms,
			json_extract_string(unknown_fields, '$.x') AS x, strftime(date, '%Y-%m-%d') AS d, tenant
			FROM `+from+` WHERE event_id IN ('2024-01-03-007', '2024-01-02-010') ORDER BY event_id`)
		want := []string{
			"2024-01-02-010 1704153610000 <nil> Zürich-1 30 true 0AFF 1704153610005 <nil> 2024-01-02 acme",
			"2024-01-03-007 1704240007000 1.75 Zürich-1 21 false 07FF 1704240007005 v7 2024-01-03 acme",
		}
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprint(r["event_id"], " ", r["ts"], " ", r["temperature"], " ", r["station"], " ",
				r["depth_km"], " ", r["ok"], " ", r["payload"], " ", r["observed_ms"], " ", r["x"], " ", r["d"], " ", r["tenant"]))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("values:\n got %q\nwant %q", got, want)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		rows := testenv.DuckDB(t, fmt.Sprintf(`SELECT row_group_id, path_in_schema, compression, stats_min, stats_max,
			stats_min_value, stats_max_value, stats_null_count, encodings FROM parquet_metadata('%s') ORDER BY row_group_id, column_id`, filepath.ToSlash(firstFile)))
		// 500 rows in row groups of 200: 3 row groups × 9 columns.
		if len(rows) != 27 {
			t.Fatalf("got %d column chunks, want 27", len(rows))
		}
		sawTS := 0
		for _, r := range rows {
			if r["compression"] != "ZSTD" {
				t.Errorf("%v/%v compression %v, want ZSTD", r["row_group_id"], r["path_in_schema"], r["compression"])
			}
			// Only PLAIN data and RLE levels: readable by every engine.
			if enc := fmt.Sprint(r["encodings"]); enc != "PLAIN" && enc != "PLAIN, RLE" {
				t.Errorf("%v/%v encodings %q, want PLAIN (and RLE levels)", r["row_group_id"], r["path_in_schema"], enc)
			}
			if r["stats_null_count"] == nil {
				t.Errorf("%v/%v has no null count", r["row_group_id"], r["path_in_schema"])
			}
			if r["path_in_schema"] == "timestamp" {
				sawTS++
				if r["stats_min"] == nil || r["stats_max"] == nil || r["stats_min_value"] == nil || r["stats_max_value"] == nil {
					t.Errorf("timestamp stats missing in row group %v: %v", r["row_group_id"], r)
				}
			}
		}
		if sawTS != 3 {
			t.Errorf("timestamp column chunks = %d, want 3", sawTS)
		}
		// Row group 0 holds rows 0..199 of 2024-01-02.
		r := rows[1]
		if r["path_in_schema"] != "timestamp" {
			t.Fatalf("column 1 is %v", r["path_in_schema"])
		}
		// DuckDB renders the stats in the column's type (UTC instants).
		if r["stats_min"] != "2024-01-02 00:00:00+00" || r["stats_max"] != "2024-01-02 00:03:19+00" {
			t.Errorf("timestamp stats of row group 0: min %v max %v, want 2024-01-02 00:00:00+00 .. 00:03:19+00", r["stats_min"], r["stats_max"])
		}
	})

	t.Run("page index", func(t *testing.T) {
		// The column/offset index locations are in the footer; DuckDB does
		// not surface them, so check them with parquet-go's own reader.
		data, err := os.ReadFile(firstFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPageIndex(data); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkWriteParquet(b *testing.B) {
	// 1M rows in one file, and the lake's typical partition: the 1M-line
	// bench input averages 800 rows per tenant/metric/day.
	for _, n := range []int{1_000_000, 800} {
		for _, comp := range []string{"zstd", "snappy"} {
			b.Run(fmt.Sprintf("rows=%d/%s", n, comp), func(b *testing.B) { benchWriteParquet(b, n, comp) })
		}
	}
}

func benchWriteParquet(b *testing.B, n int, comp string) {
	cols := []Column{
		{"temperature", schema.Double},
		{"pressure", schema.Double},
		{"station", schema.String},
		{"depth_km", schema.Long},
		{"ok", schema.Boolean},
		{"observed_at", schema.Timestamp},
	}
	rows := make([]Row, n)
	stations := []string{"harbor-1", "harbor-2", "airport", "ridge"}
	for i := range rows {
		ts := int64(1704153600000) + int64(i)*100
		rows[i] = Row{
			// Real event ids are UUID v5s: effectively incompressible.
			EventID:   uuid.NewSHA1(uuid.NameSpaceOID, []byte(strconv.Itoa(i))).String(),
			Timestamp: ts,
			Values:    []any{20 + float64(i%100)/10, 1000 + float64(i%50), stations[i%4], int64(i % 1000), i%3 == 0, ts - 50},
		}
		if i%9 == 0 {
			rows[i].Values[1] = nil
			rows[i].UnknownJSON = `{"firmware":"1.2.3"}`
		}
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		buf.Reset()
		if err := WriteParquet(&buf, cols, rows, Options{Compression: comp}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.SetBytes(int64(buf.Len()))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/row")
	b.ReportMetric(float64(buf.Len())/float64(n), "file-bytes/row")
}

// checkPageIndex checks that every column chunk of the file has a column
// index and an offset index, and that its chunk statistics carry min/max
// and a null count.
func checkPageIndex(data []byte) error {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	md := f.Metadata()
	for i, rg := range md.RowGroups {
		for j, cc := range rg.Columns {
			if cc.ColumnIndexOffset == 0 || cc.OffsetIndexOffset == 0 {
				return fmt.Errorf("row group %d column %d: no page index (column index at %d, offset index at %d)",
					i, j, cc.ColumnIndexOffset, cc.OffsetIndexOffset)
			}
			st := cc.MetaData.Statistics
			if len(st.MinValue) == 0 || len(st.MaxValue) == 0 {
				return fmt.Errorf("row group %d column %v: no min/max statistics", i, cc.MetaData.PathInSchema)
			}
		}
	}
	if n := len(f.ColumnIndexes()); n != len(md.RowGroups)*len(md.RowGroups[0].Columns) {
		return fmt.Errorf("%d column indexes loaded", n)
	}
	return nil
}

// TestZstdCodec: the lake's zstd codec writes the bytes parquet-go's own
// codec writes for pages up to the page buffer's size, from many
// goroutines at once, and its long-lived encoders hold a bounded amount of
// memory (at zstd's default window each kept 17.6 MiB for good).
func TestZstdCodec(t *testing.T) {
	const workers = 8
	r := rand.New(rand.NewPCG(1, 2))
	pages := make([][]byte, 32)
	for i := range pages {
		// Compressible like a column page: a few distinct values, repeated.
		p := make([]byte, 1+r.IntN(1<<20))
		for j := range p {
			p[j] = byte('a' + r.IntN(4))
		}
		pages[i] = p
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newZstdCodec(workers, pqzstd.DefaultLevel)
	got := make([][]byte, len(pages))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(pages); i += workers {
				got[i], _ = c.Encode(nil, pages[i])
			}
		}()
	}
	wg.Wait()
	var size int64
	for _, g := range got {
		size += int64(cap(g))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	if kept := int64(after.HeapInuse) - int64(before.HeapInuse) - size; kept > workers*4<<20 {
		t.Errorf("%d encoders keep %d MiB", workers, kept>>20)
	}
	for i, p := range pages {
		want, _ := parquet.Zstd.Encode(nil, p)
		if !bytes.Equal(got[i], want) {
			t.Fatalf("page %d (%d bytes): %d bytes encoded, parquet-go's codec %d", i, len(p), len(got[i]), len(want))
		}
		if back, err := c.Decode(nil, got[i]); err != nil || !bytes.Equal(back, p) {
			t.Fatalf("page %d does not decode back: %v", i, err)
		}
	}
}

// TestWriterRejectsBadRow: a row the Writer refuses is not added, and the
// rows around it are written whole, across row groups.
func TestWriterRejectsBadRow(t *testing.T) {
	cols := []Column{{"temperature", schema.Double}, {"station", schema.String}}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, cols, Options{RowGroupRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	good := func(i int) []records.Value {
		return []records.Value{{Kind: records.DoubleValue, Float: float64(i)}, {Kind: records.StringValue, Str: fmt.Sprint("s", i)}}
	}
	bad := []struct {
		name   string
		id     string
		values []records.Value
	}{
		{"wrong kind", "x", []records.Value{{Kind: records.StringValue, Str: "21.5"}, {}}},
		{"too few values", "x", []records.Value{{}}},
		{"invalid UTF-8 string", "x", []records.Value{{}, {Kind: records.StringValue, Str: "\xff"}}},
		{"invalid UTF-8 id", "\xfe", good(0)},
	}
	var want []Row
	for i := range 5 {
		for _, b := range bad {
			if err := w.Append(b.id, 1, b.values, ""); err == nil {
				t.Fatalf("Append with %s: no error", b.name)
			}
		}
		id := fmt.Sprint("e", i)
		if err := w.Append(id, int64(i), good(i), ""); err != nil {
			t.Fatal(err)
		}
		want = append(want, Row{EventID: id, Timestamp: int64(i), Values: []any{float64(i), fmt.Sprint("s", i)}})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Rows() != 5 {
		t.Errorf("Rows() = %d, want 5", w.Rows())
	}
	_, got, err := ReadParquet(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %#v\nwant %#v", got, want)
	}
}

// TestColumnCodecs: every column chunk says ZSTD (the event id's own,
// faster encoder writes standard frames), or SNAPPY when asked for.
func TestColumnCodecs(t *testing.T) {
	rows := []Row{{EventID: "e1", Timestamp: 1, Values: []any{1.5, "a", nil, nil, nil, nil}}}
	for _, tc := range []struct {
		compression string
		want        format.CompressionCodec
	}{{"", format.Zstd}, {"zstd", format.Zstd}, {"snappy", format.Snappy}} {
		_, _, data := roundTrip(t, allCols, rows, Options{Compression: tc.compression})
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range f.Metadata().RowGroups[0].Columns {
			if c.MetaData.Codec != tc.want {
				t.Errorf("compression %q: column %v has codec %v, want %v", tc.compression, c.MetaData.PathInSchema, c.MetaData.Codec, tc.want)
			}
		}
	}
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// TestWriterStopsAfterWriteError: after a failed write every call returns
// that error; nothing more is written.
func TestWriterStopsAfterWriteError(t *testing.T) {
	w, err := NewWriter(&failingWriter{n: 64}, []Column{{"n", schema.Long}}, Options{RowGroupRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	var first error
	for i := range 12 {
		if first = w.Append(fmt.Sprint("e", i), int64(i), []records.Value{{Kind: records.LongValue, Int: int64(i)}}, ""); first != nil {
			break
		}
	}
	if first == nil {
		first = w.Close() // the output is buffered: the failure may show only here
	}
	if first == nil || !strings.Contains(first.Error(), "disk full") {
		t.Fatalf("the Writer's error = %v, want the write's", first)
	}
	if err := w.Append("late", 1, []records.Value{{}}, ""); err != first {
		t.Errorf("Append after the failure = %v, want %v", err, first)
	}
	if err := w.Close(); err != first {
		t.Errorf("Close after the failure = %v, want %v", err, first)
	}
}
