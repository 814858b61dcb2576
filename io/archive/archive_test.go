package archive

import (
	"bytes"
	"compress/gzip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fineo-io/ingest/records"
)

func sampleEvent(i int) *records.Event {
	return &records.Event{
		ID:          "id-" + string(rune('a'+i%26)),
		Tenant:      "harbor",
		Metric:      "weather",
		MetricAlias: "wx",
		Timestamp:   1262304000123 + int64(i),
		Fields: map[string]any{
			"ok":          true,
			"off":         false,
			"count":       int64(-9007199254740993),
			"max":         int64(1<<63 - 1),
			"temperature": 21.25,
			"station":     "SEA é",
			"empty":       "",
			"blob":        []byte{0, 1, 0xff},
			"nothing":     nil,
		},
		Unknown:       map[string]string{"diag": `{"a" : [1, {"b":null}]}`, "tenant": `"acme"`},
		SchemaVersion: 7,
		IngestTime:    1700000000456,
		Source:        records.Lineage{File: "s3://b/k.jsonl", Line: 42, Stream: "st", Shard: "sh-1", Sequence: "9876", Index: 3},
	}
}

func TestEventRoundTrip(t *testing.T) {
	minimal := &records.Event{ID: "x", Tenant: "t", Metric: "m", MetricAlias: "m", Timestamp: 1}
	tests := []struct {
		name string
		ev   *records.Event
	}{
		{"every value type", sampleEvent(0)},
		{"minimal", minimal},
		{"empty bytes", &records.Event{ID: "y", Tenant: "t", Metric: "m", Timestamp: 2, Fields: map[string]any{"b": []byte{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := AppendEvent([]byte("prefix"), tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("prefix")) {
				t.Fatal("AppendEvent did not append")
			}
			var got []*records.Event
			err = DecodeBlock(Block{Count: 1, Data: data[len("prefix"):]}, func(ev *records.Event) error {
				got = append(got, ev)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.ev) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got[0], tt.ev)
			}
		})
	}
	t.Run("block of many", func(t *testing.T) {
		var b Block
		var want []*records.Event
		for i := range 10 {
			ev := sampleEvent(i)
			var err error
			if b.Data, err = AppendEvent(b.Data, ev); err != nil {
				t.Fatal(err)
			}
			b.Count++
			want = append(want, ev)
		}
		var got []*records.Event
		if err := DecodeBlock(b, func(ev *records.Event) error { got = append(got, ev); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("block round trip differs")
		}
		// A compressed block decodes the same; a damaged one is an error.
		z, _ := CompressBlock(b.Count, b.Data, make([]byte, 3))
		var again []*records.Event
		if err := DecodeBlock(z, func(ev *records.Event) error { again = append(again, ev); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, want) || !z.Snappy || len(z.Data) >= len(b.Data) {
			t.Errorf("compressed block: round trip differs or not compressed (%d bytes of %d)", len(z.Data), len(b.Data))
		}
		for _, damage := range []func([]byte){
			func(d []byte) { d[len(d)-1] ^= 1 }, // checksum
			func(d []byte) { d[0] ^= 0xff },     // snappy header
		} {
			bad := Block{Count: z.Count, Data: bytes.Clone(z.Data), Snappy: true}
			damage(bad.Data)
			if err := DecodeBlock(bad, func(*records.Event) error { return nil }); err == nil {
				t.Error("damaged compressed block: no error")
			}
		}
		// A count beyond the data is an error, not a silent success.
		b.Count++
		if err := DecodeBlock(b, func(*records.Event) error { return nil }); err == nil {
			t.Error("DecodeBlock with Count beyond data: no error")
		}
	})
}

func writeOCF(t *testing.T, blocks [][]*records.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	o, err := newOCFWriter(&buf, StagedSchema)
	if err != nil {
		t.Fatal(err)
	}
	for i, evs := range blocks {
		var data []byte
		for _, ev := range evs {
			if data, err = AppendEvent(data, ev); err != nil {
				t.Fatal(err)
			}
		}
		b := Block{Count: int64(len(evs)), Data: data}
		if i%2 == 1 { // every other block compressed where it was made, as batch ingest does
			b, _ = CompressBlock(b.Count, data, nil)
		}
		if err := o.writeBlock(b); err != nil {
			t.Fatal(err)
		}
	}
	if o.n != int64(buf.Len()) {
		t.Errorf("writer counted %d bytes, wrote %d", o.n, buf.Len())
	}
	return buf.Bytes()
}

func TestOCFWriter(t *testing.T) {
	evs := func(from, n int) []*records.Event {
		var out []*records.Event
		for i := range n {
			out = append(out, sampleEvent(from+i))
		}
		return out
	}
	big := evs(0, 500)
	for _, ev := range big {
		ev.Unknown["pad"] = strings.Repeat("p", 200)
	}
	tests := []struct {
		name   string
		blocks [][]*records.Event
	}{
		{"header only", nil},
		{"empty block skipped", [][]*records.Event{{}}},
		{"one record", [][]*records.Event{evs(0, 1)}},
		{"one block", [][]*records.Event{evs(0, 20)}},
		{"several blocks", [][]*records.Event{evs(0, 3), {}, evs(3, 1), evs(4, 17)}},
		{"large block", [][]*records.Event{big}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeOCF(t, tt.blocks)
			var want []*records.Event
			for _, b := range tt.blocks {
				want = append(want, b...)
			}
			var got []*records.Event
			if err := ReadStaged(bytes.NewReader(file), func(ev *records.Event) error {
				got = append(got, ev)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("read %d records, want %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("record %d:\n got %#v\nwant %#v", i, got[i], want[i])
				}
			}
		})
	}
	t.Run("distinct sync markers", func(t *testing.T) {
		a, b := writeOCF(t, nil), writeOCF(t, nil)
		if bytes.Equal(a[len(a)-16:], b[len(b)-16:]) {
			t.Error("two files share a sync marker")
		}
	})
	t.Run("corrupt block is an error", func(t *testing.T) {
		file := writeOCF(t, [][]*records.Event{evs(0, 5)})
		file[len(file)-20] ^= 0xff // inside the block's data or checksum
		err := ReadStaged(bytes.NewReader(file), func(*records.Event) error { return nil })
		if err == nil {
			t.Error("no error for a corrupt block")
		}
	})
	t.Run("not avro", func(t *testing.T) {
		if err := ReadStaged(strings.NewReader("hello"), func(*records.Event) error { return nil }); err == nil {
			t.Error("no error")
		}
	})
}

func TestErrorRecords(t *testing.T) {
	now := time.Date(2024, 2, 3, 4, 5, 6, 789, time.FixedZone("X", 3600))
	src := records.Lineage{File: "f.jsonl", Line: 3, Index: 2}
	tests := []struct {
		name      string
		err       records.Error
		encoding  string
		truncated bool
		rawSize   int
		class     string
	}{
		{"text raw", records.Error{Kind: records.BadTimestamp, Tenant: "harbor", Stage: "stage1", Message: "bad ts", Raw: []byte(`{"ts":"x"} é`), RawSize: 13, Source: src, Time: now, Events: 1},
			"text", false, 13, "customer"},
		{"non-utf8 raw", records.Error{Kind: records.MalformedJSON, Stage: "stage1", Message: "m", Raw: []byte{'{', 0xff, 0xfe, '}', 0}, Source: src, Time: now, Events: 1},
			"base64", false, 5, "customer"},
		{"truncated raw", records.Error{Kind: records.TooLarge, Stage: "stage1", Message: "big", Raw: []byte("abc"), RawSize: 1 << 20, Source: src, Time: now, Events: 1},
			"text", true, 1 << 20, "customer"},
		{"no raw, processing", records.Error{Kind: records.ReadFailed, Stage: "read", Message: "gone", Source: src, Time: now},
			"text", false, 0, "processing"},
		{"RawSize below len(Raw) is corrected", records.Error{Kind: records.Internal, Stage: "archive", Message: "x", Raw: []byte("12345"), RawSize: 2, Time: now, Events: 4},
			"text", false, 5, "processing"},
	}
	var all []byte
	for _, tt := range tests {
		all = AppendErrorJSON(all, &tt.err)
	}
	if n := bytes.Count(all, []byte("\n")); n != len(tests) {
		t.Fatalf("%d lines for %d records", n, len(tests))
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(all)
	zw.Close()
	for _, input := range []struct {
		name string
		data []byte
	}{{"plain", all}, {"gzip", zipped.Bytes()}} {
		t.Run(input.name, func(t *testing.T) {
			var got []*ErrorRecord
			if err := ReadErrors(bytes.NewReader(input.data), func(r *ErrorRecord) error {
				got = append(got, r)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tests) {
				t.Fatalf("read %d records, want %d", len(got), len(tests))
			}
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := got[i]
					e := tt.err
					if r.Kind != e.Kind.String() || r.Class != tt.class || r.Tenant != e.Tenant || r.Stage != e.Stage ||
						r.Message != e.Message || r.Source != e.Source || !r.Time.Equal(e.Time) || r.Time.Location() != time.UTC {
						t.Errorf("record = %+v, from %+v", r, e)
					}
					if r.Events != max(e.Events, 1) {
						t.Errorf("Events = %d, want %d", r.Events, max(e.Events, 1))
					}
					if r.RawEncoding != tt.encoding || r.RawTruncated != tt.truncated || r.RawSize != tt.rawSize {
						t.Errorf("encoding %q truncated %v size %d; want %q %v %d", r.RawEncoding, r.RawTruncated, r.RawSize, tt.encoding, tt.truncated, tt.rawSize)
					}
					raw, err := r.RawBytes()
					if err != nil || !bytes.Equal(raw, e.Raw) {
						t.Errorf("RawBytes = %q, %v; want %q", raw, err, e.Raw)
					}
					if k, ok := records.ParseKind(r.Kind); !ok || k != e.Kind {
						t.Errorf("kind %q does not parse back", r.Kind)
					}
				})
			}
		})
	}
	t.Run("malformed line is an error", func(t *testing.T) {
		err := ReadErrors(strings.NewReader("{\"kind\":\"x\"}\nnot json\n"), func(*ErrorRecord) error { return nil })
		if err == nil {
			t.Error("no error")
		}
	})
}

func TestPartitions(t *testing.T) {
	staged := []struct {
		ms   int64
		want string
	}{
		{time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), "staged/date=2010-01-01"},
		{time.Date(2010, 1, 1, 9, 59, 59, 999e6, time.UTC).UnixMilli(), "staged/date=2010-01-01"},
		{time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC).UnixMilli(), "staged/date=2024-12-31"},
		{time.Date(2024, 2, 29, 23, 30, 0, 0, time.FixedZone("E", 2*3600)).UnixMilli(), "staged/date=2024-02-29"},
		{time.Date(2024, 3, 1, 0, 30, 0, 0, time.FixedZone("E", 2*3600)).UnixMilli(), "staged/date=2024-02-29"},
		{1, "staged/date=1970-01-01"},
	}
	for _, tt := range staged {
		t.Run(tt.want, func(t *testing.T) {
			if got := StagedPartition(tt.ms); got != tt.want {
				t.Errorf("StagedPartition(%d) = %q, want %q", tt.ms, got, tt.want)
			}
		})
	}
	errs := []struct {
		class records.Class
		t     time.Time
		want  string
	}{
		{records.Customer, time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC), "errors/customer/date=2024-05-06"},
		{records.Processing, time.Date(2024, 5, 6, 23, 0, 0, 0, time.UTC), "errors/processing/date=2024-05-06"},
		{records.Customer, time.Date(2024, 5, 7, 1, 0, 0, 0, time.FixedZone("E", 3*3600)), "errors/customer/date=2024-05-06"},
		{records.Processing, time.Date(2024, 5, 6, 22, 0, 0, 0, time.FixedZone("W", -5*3600)), "errors/processing/date=2024-05-07"},
	}
	for _, tt := range errs {
		t.Run(tt.want, func(t *testing.T) {
			if got := ErrorPartition(tt.class, tt.t); got != tt.want {
				t.Errorf("ErrorPartition(%v, %v) = %q, want %q", tt.class, tt.t, got, tt.want)
			}
		})
	}
}
