package stage1

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

const benchLines = 1000

func loadSample(b testing.TB) (tenants []*schema.Tenant, lines [][]byte, size int64) {
	b.Helper()
	ctx := context.Background()
	st, err := schema.OpenStore(ctx, "../../testdata/sample/schemas")
	if err != nil {
		b.Fatal(err)
	}
	tenants, err = schema.LoadAll(ctx, st)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open("../../testdata/sample/raw/part-00000.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, FileLineLimit+1)
	for sc.Scan() && len(lines) < benchLines {
		l := append([]byte(nil), sc.Bytes()...)
		lines = append(lines, l)
		size += int64(len(l))
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return tenants, lines, size
}

type discard struct{}

func (discard) Staged(*records.Event) {}
func (discard) Error(*records.Error)  {}

func BenchmarkProcess(b *testing.B) {
	tenants, lines, size := loadSample(b)
	p, err := NewProcessor(tenants, Options{MaxRecordBytes: FileLineLimit})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		for i, l := range lines {
			p.Process(l, records.Lineage{File: "bench", Line: int64(i + 1)}, discard{})
		}
	}
	b.StopTimer()
	if p.Stats.Staged == 0 {
		b.Fatal("nothing staged")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(p.Stats.Events), "ns/event")
}

func BenchmarkBareDecode(b *testing.B) {
	_, lines, size := loadSample(b)
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		for _, l := range lines {
			var m map[string]any
			_ = json.Unmarshal(l, &m)
		}
	}
}

// BenchmarkChunk is stage 1 as ingest runs it on a chunk: BenchmarkProcess
// plus encoding the staged events (Avro) and errors (JSON) into blocks per
// partition.
func BenchmarkChunk(b *testing.B) {
	tenants, lines, size := loadSample(b)
	p, err := NewProcessor(tenants, Options{MaxRecordBytes: FileLineLimit})
	if err != nil {
		b.Fatal(err)
	}
	out := newBlockOutput(tenants)
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		for i, l := range lines {
			p.Process(l, records.Lineage{File: "bench", Line: int64(i + 1)}, out)
		}
		staged, _, _, err := out.finish()
		if err != nil || len(staged) == 0 {
			b.Fatal("nothing staged", err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(p.Stats.Events), "ns/event")
}

// TestBlockOutputReuse checks that the events a Processor builds for an
// encoding output (blockOutput: fields as typed slices, strings that are
// views into the record, memory reused between events) encode exactly as
// the events it gives an Output that keeps them: every staged event of the
// sample decodes back equal to the one a collector kept.
func TestBlockOutputReuse(t *testing.T) {
	tenants, lines, _ := loadSample(t)
	now := func() time.Time { return time.UnixMilli(1_700_000_000_000) }
	kept, err := NewProcessor(tenants, Options{MaxRecordBytes: FileLineLimit, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := NewProcessor(tenants, Options{MaxRecordBytes: FileLineLimit, Now: now})
	if n := encodedEqualsKept(t, kept, enc, newBlockOutput(tenants), lines); n == 0 {
		t.Fatal("nothing staged")
	}
}

// encodedEqualsKept runs lines through kept into a collector and through
// enc into out, fails t unless both made the same staged events, and
// returns how many.
func encodedEqualsKept(t testing.TB, kept, enc *Processor, out *blockOutput, lines [][]byte) int {
	t.Helper()
	var c collector
	for i, l := range lines {
		src := records.Lineage{File: "sample", Line: int64(i + 1)}
		kept.Process(l, src, &c)
		enc.Process(l, src, out)
	}
	staged, _, _, err := out.finish()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*records.Event{} // by id and source: the sample has re-deliveries
	for _, ev := range c.staged {
		want[ev.ID+" "+ev.Source.String()+" "+strconv.Itoa(ev.Source.Index)] = ev
	}
	n := 0
	for _, b := range staged {
		if err := archive.DecodeBlock(b, func(ev *records.Event) error {
			n++
			w := want[ev.ID+" "+ev.Source.String()+" "+strconv.Itoa(ev.Source.Index)]
			if w != nil && len(w.Fields) == 0 && len(ev.Fields) == 0 {
				w.Fields, ev.Fields = nil, nil // no fields, whether nil or empty
			}
			if !reflect.DeepEqual(ev, w) {
				return fmt.Errorf("decoded %+v, want %+v", ev, w)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n != len(c.staged) {
		t.Fatalf("%d events decoded, %d staged", n, len(c.staged))
	}
	return n
}
