package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/fineo-io/ingest/io/blob"
)

// TestRawFileRoundTrip writes raw records (binary data included) as a raw
// archive file, reads them back with ReadRawFile and with goavro's generic
// reader (the reference), and checks they are the same, byte for byte.
func TestRawFileRoundTrip(t *testing.T) {
	in := []*RawRecord{
		{Stream: "raw", Shard: "shardId-000000000000", Sequence: "4959", PartitionKey: "acme/temp", ArrivalMillis: 1700000000123, Data: []byte(`{"tenant":"acme"}`)},
		{Stream: "raw", Shard: "shardId-000000000000", Sequence: "4960", PartitionKey: "k", ArrivalMillis: 1700000000124, Data: []byte{0, 0xff, '\n', '"'}},
		{Stream: "raw", Shard: "shardId-000000000000", Sequence: "4961", ArrivalMillis: 1700000000125, Data: []byte{}},
	}
	var b Block
	for _, r := range in {
		b.Data = AppendRaw(b.Data, r)
		b.Count++
	}
	st, err := blob.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := RawPartition(time.Date(2026, 11, 25, 10, 7, 0, 0, time.UTC)) + "/f.avro"
	if want := "raw/date=2026-11-25/hour=10/f.avro"; path != want {
		t.Fatalf("path %q, want %q", path, want)
	}
	// Two blocks: the reader must walk both.
	if err := WriteAvroFile(ctx, st, path, RawSchema, []Block{b, b}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(st.Root(), path))
	if err != nil {
		t.Fatal(err)
	}
	var got []*RawRecord
	if err := ReadRawFile(data, func(r *RawRecord) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	want := append(append([]*RawRecord{}, in...), in...)
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		w := *want[i]
		if w.Data == nil {
			w.Data = []byte{}
		}
		if !reflect.DeepEqual(*got[i], w) {
			t.Errorf("record %d: got %+v, want %+v", i, *got[i], w)
		}
	}

	ocf, err := goavro.NewOCFReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ocf.Scan() {
		v, err := ocf.Read()
		if err != nil {
			t.Fatal(err)
		}
		m := v.(map[string]any)
		r := want[n]
		if m["sequence"] != r.Sequence || m["shard"] != r.Shard || !bytes.Equal(m["data"].([]byte), r.Data) ||
			m["arrival"].(interface{ UnixMilli() int64 }).UnixMilli() != r.ArrivalMillis {
			t.Errorf("goavro record %d = %v, want %+v", n, m, r)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("goavro read %d records, want %d", n, len(want))
	}

	if err := ReadRawFile(data[:len(data)-3], func(*RawRecord) error { return nil }); err == nil {
		t.Error("truncated file: no error")
	}
}
