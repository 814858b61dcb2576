package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/fineo-io/ingest/records"
)

// goavroNative is how goavro wants a staged event: the reference encoding.
func goavroNative(ev *records.Event) map[string]any {
	fields := map[string]any{}
	for k, v := range ev.Fields {
		switch x := v.(type) {
		case nil:
			fields[k] = nil
		case bool:
			fields[k] = goavro.Union("boolean", x)
		case int64:
			fields[k] = goavro.Union("long", x)
		case float64:
			fields[k] = goavro.Union("double", x)
		case string:
			fields[k] = goavro.Union("string", x)
		case []byte:
			fields[k] = goavro.Union("bytes", x)
		}
	}
	unknown := map[string]any{}
	for k, v := range ev.Unknown {
		unknown[k] = v
	}
	return map[string]any{
		"event_id": ev.ID, "tenant": ev.Tenant, "metric": ev.Metric, "metric_alias": ev.MetricAlias,
		"timestamp": ev.Timestamp, "fields": fields, "unknown_fields": unknown,
		"schema_version": int32(ev.SchemaVersion), "ingest_time": ev.IngestTime,
		"source": map[string]any{"file": ev.Source.File, "line": ev.Source.Line, "stream": ev.Source.Stream,
			"shard": ev.Source.Shard, "sequence": ev.Source.Sequence, "index": int32(ev.Source.Index)},
	}
}

func randomEvent(r *rand.Rand) *records.Event {
	str := func() string {
		alphabet := []rune("abcXYZ_09 é€😀\"\\\n")
		n := r.IntN(12)
		out := make([]rune, n)
		for i := range out {
			out[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(out)
	}
	ev := &records.Event{
		ID: str(), Tenant: str(), Metric: str(), MetricAlias: str(),
		Timestamp: r.Int64N(1<<50) - 1<<40, SchemaVersion: r.IntN(1000), IngestTime: r.Int64(),
		Source: records.Lineage{File: str(), Line: r.Int64N(1 << 40), Stream: str(), Shard: str(), Sequence: str(), Index: r.IntN(500)},
	}
	if n := r.IntN(6); n > 0 {
		ev.Fields = map[string]any{}
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("f%d%s", i, str())
			switch r.IntN(6) {
			case 0:
				ev.Fields[k] = nil
			case 1:
				ev.Fields[k] = r.IntN(2) == 1
			case 2:
				ev.Fields[k] = r.Int64() - math.MaxInt64/2
			case 3:
				ev.Fields[k] = r.NormFloat64() * 1e6
			case 4:
				ev.Fields[k] = str()
			case 5:
				ev.Fields[k] = []byte(str())
			}
		}
	}
	if n := r.IntN(4); n > 0 {
		ev.Unknown = map[string]string{}
		for i := 0; i < n; i++ {
			ev.Unknown[fmt.Sprintf("u%d%s", i, str())] = `{"x":` + fmt.Sprint(r.IntN(100)) + `}`
		}
	}
	return ev
}

// TestCodecMatchesGoavro checks the direct codec against goavro in both
// directions on random events.
func TestCodecMatchesGoavro(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		ev := randomEvent(r)
		ours, err := AppendEvent(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		// ours → goavro
		n, rest, err := stagedCodec.NativeFromBinary(ours)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro cannot read our encoding of %+v: %v (%d bytes left)", ev, err, len(rest))
		}
		back, err := eventFromNative(n)
		if err != nil || !reflect.DeepEqual(back, ev) {
			t.Fatalf("goavro read back\n%+v\nwant\n%+v (%v)", back, ev, err)
		}
		// goavro → ours
		theirs, err := stagedCodec.BinaryFromNative(nil, goavroNative(ev))
		if err != nil {
			t.Fatal(err)
		}
		dec, rest, err := DecodeEvent(theirs)
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(dec, ev) {
			t.Fatalf("our decoder read goavro's encoding as\n%+v\nwant\n%+v (%v)", dec, ev, err)
		}
	}
}

func TestCodecDeterministic(t *testing.T) {
	ev := &records.Event{ID: "x", Fields: map[string]any{"b": int64(1), "a": 2.5, "c": "s"}, Unknown: map[string]string{"z": "1", "y": "2"}}
	first, _ := AppendEvent(nil, ev)
	for i := 0; i < 50; i++ {
		again, _ := AppendEvent(nil, ev)
		if !bytes.Equal(first, again) {
			t.Fatal("encoding depends on map order")
		}
	}
}

// randomStagedFiles writes the same 300 random events as one staged file
// per schema text given, in three blocks.
func randomStagedFiles(t *testing.T, r *rand.Rand, schemas ...string) ([]*records.Event, [][]byte) {
	t.Helper()
	bufs := make([]bytes.Buffer, len(schemas))
	ws := make([]*ocfWriter, len(schemas))
	for i, sch := range schemas {
		w, err := newOCFWriter(&bufs[i], sch)
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	var want []*records.Event
	for blk := 0; blk < 3; blk++ {
		var data []byte
		for i := 0; i < 100; i++ {
			ev := randomEvent(r)
			want = append(want, ev)
			data, _ = AppendEvent(data, ev)
		}
		for _, w := range ws {
			if err := w.writeBlock(Block{Count: 100, Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := make([][]byte, len(schemas))
	for i := range bufs {
		files[i] = bufs[i].Bytes()
	}
	return want, files
}

func TestReadStagedFileMatchesGoavro(t *testing.T) {
	want, files := randomStagedFiles(t, rand.New(rand.NewPCG(3, 4)), StagedSchema)
	file := bytes.NewBuffer(files[0])
	var fast, generic []*records.Event
	if err := ReadStagedFile(file.Bytes(), func(ev *records.Event) error { fast = append(fast, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := ReadStaged(bytes.NewReader(file.Bytes()), func(ev *records.Event) error { generic = append(generic, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, want) || !reflect.DeepEqual(generic, want) {
		t.Fatalf("readers disagree: fast %d, goavro %d, want %d", len(fast), len(generic), len(want))
	}
	// Corruption anywhere is an error, never a panic.
	b := file.Bytes()
	for i := 0; i < len(b); i += 97 {
		c := bytes.Clone(b)
		c[i] ^= 0xff
		_ = ReadStagedFile(c, func(*records.Event) error { return nil })
		_ = ReadStagedFile(c[:i], func(*records.Event) error { return nil })
	}
}

// TestReadStagedHeads checks that heads read without decoding fields give
// back exactly the events the full readers give, on the direct path and on
// the generic (goavro) path of a file with another schema text.
func TestReadStagedHeads(t *testing.T) {
	// The same schema with different whitespace is not the direct path.
	want, files := randomStagedFiles(t, rand.New(rand.NewPCG(5, 6)), StagedSchema, StagedSchema+" ")
	for name, file := range map[string][]byte{"direct": files[0], "generic": files[1]} {
		t.Run(name, func(t *testing.T) {
			i := 0
			err := ReadStagedHeads(file, func(st *Staged) error {
				ev := want[i]
				i++
				if st.ID != ev.ID || st.Tenant != ev.Tenant || st.Metric != ev.Metric || st.Timestamp != ev.Timestamp ||
					st.IngestTime != ev.IngestTime || st.Source != ev.Source {
					return fmt.Errorf("head %d = %+v, want the head of %+v", i-1, st, ev)
				}
				full, err := st.Event()
				if err != nil || !reflect.DeepEqual(full, ev) {
					return fmt.Errorf("Event %d = %+v (%v), want %+v", i-1, full, err, ev)
				}
				fields, unknown := map[string]any{}, map[string]string{}
				if err := st.EachField(func(k string, v any) { fields[k] = v }); err != nil {
					return err
				}
				if err := st.EachUnknown(func(k, raw string) { unknown[k] = raw }); err != nil {
					return err
				}
				if len(fields) != len(ev.Fields) || (len(fields) > 0 && !reflect.DeepEqual(fields, ev.Fields)) ||
					len(unknown) != len(ev.Unknown) || (len(unknown) > 0 && !reflect.DeepEqual(unknown, ev.Unknown)) {
					return fmt.Errorf("fields %d = %v %v, want %v %v", i-1, fields, unknown, ev.Fields, ev.Unknown)
				}
				return nil
			})
			if err != nil || i != len(want) {
				t.Fatalf("%v after %d of %d records", err, i, len(want))
			}
		})
	}
	// Corruption anywhere is an error, never a panic.
	b := files[0]
	for i := 0; i < len(b); i += 97 {
		c := bytes.Clone(b)
		c[i] ^= 0xff
		_ = ReadStagedHeads(c, func(*Staged) error { return nil })
		_ = ReadStagedHeads(c[:i], func(*Staged) error { return nil })
	}
}

func FuzzDecodeEvent(f *testing.F) {
	seed, _ := AppendEvent(nil, &records.Event{ID: "id", Fields: map[string]any{"a": int64(1), "b": "x", "c": nil}, Unknown: map[string]string{"u": "1"}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		DecodeEvent(data)
		ReadStagedFile(data, func(*records.Event) error { return nil })
		ReadStagedHeads(data, func(st *Staged) error {
			st.Event()
			st.EachField(func(string, any) {})
			return st.EachUnknown(func(string, string) {})
		})
	})
}

func BenchmarkCodec(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	evs := make([]*records.Event, 1000)
	for i := range evs {
		evs[i] = randomEvent(r)
	}
	b.Run("encode/direct", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf, _ = AppendEvent(buf[:0], evs[i%len(evs)])
		}
	})
	b.Run("encode/goavro", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf, _ = stagedCodec.BinaryFromNative(buf[:0], goavroNative(evs[i%len(evs)]))
		}
	})
	enc := make([][]byte, len(evs))
	for i, ev := range evs {
		enc[i], _ = AppendEvent(nil, ev)
	}
	b.Run("decode/direct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			DecodeEvent(enc[i%len(enc)])
		}
	})
	b.Run("decode/goavro", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n, _, _ := stagedCodec.NativeFromBinary(enc[i%len(enc)])
			eventFromNative(n)
		}
	})
}

// TestDecoderLong: the decoder reads every zigzag varint as encoding/binary
// writes it, around each byte-length boundary, and a truncated one as
// corrupt.
func TestDecoderLong(t *testing.T) {
	var vals []int64
	for _, b := range []int64{0, 63, 64, 8191, 8192, 1 << 20, 1 << 40, math.MaxInt64} {
		vals = append(vals, b, b-1, -b, -b-1)
	}
	vals = append(vals, math.MinInt64)
	var buf []byte
	for _, v := range vals {
		buf = binary.AppendVarint(buf, v)
	}
	d := &decoder{b: buf}
	for _, want := range vals {
		if got := d.long(); got != want || d.err != nil {
			t.Fatalf("long() = %d, %v; want %d", got, d.err, want)
		}
	}
	if len(d.b) != 0 {
		t.Errorf("%d bytes left", len(d.b))
	}
	d = &decoder{b: binary.AppendVarint(nil, 1<<20)[:2]}
	if d.long(); d.err == nil {
		t.Error("a truncated varint decoded without error")
	}
}
