package stage1

import (
	"bufio"
	"context"
	"os"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

const benchLines = 1000

func loadSample(b *testing.B) (tenants []*schema.Tenant, lines [][]byte, size int64) {
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
