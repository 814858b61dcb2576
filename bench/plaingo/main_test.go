package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

const input = `{"tenant":"harbor","event":{"metrictype":"weather","timestamp":1262304000,"t":1}}
{"tenant":"harbor","event":{"metrictype":"weather","timestamp":1262304000,"t":1}}
{"tenant":"harbor","events":[{"metrictype":"weather","ts":1262304000500,"t":2},{"metrictype":"daily","timestamp":"2010-01-02T00:00:00Z"},42,{"timestamp":1262304000}]}
{"tenant":"quakenet","event":{"type":"eq","time":1517966773840000}}
{"tenant":"quakenet","event":{"type":"eq","time":1517966773840000}}
{"event":{"metrictype":"weather","timestamp":1262304000}}
{"tenant":"harbor","event":{"metrictype":"weather","timestamp":"yesterday"}}
{"tenant":"harbor","event":{"metrictype":"weather","timestamp":-5}}
{"tenant":"harbor","event":{"metrictype":"weather"}}
{"tenant":"harbor","event":{"metrictype":"wea

[{"tenant":"harbor","event":{}}]
{"tenant":"harbor"}
{"tenant":"harbor","event":"not an object"}
{"tenant":"a/../b","event":{"metrictype":"x","timestamp":1262304000}}
{"tenant":"skyline","event":{"metrictype":"flight","timestamp":1262304000}}`

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	got, err := run(out, []string{in}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := counts{Lines: 15, Events: 18, Errors: 5, NoTenant: 1, NoMetric: 1, BadTimestamp: 3,
		Duplicates: 2, Rows: 6, Partitions: 5}
	if got != want {
		t.Fatalf("counts\n got %+v\nwant %+v", got, want)
	}
	if got.Events != got.Errors+got.Dropped()+got.Duplicates+got.Rows {
		t.Fatalf("conservation: %+v", got)
	}

	files := map[string]int{
		"tenant=harbor/metric=weather/date=2010-01-01": 2,
		"tenant=harbor/metric=daily/date=2010-01-02":   1,
		"tenant=quakenet/metric=eq/date=2018-02-07":    1,
		"tenant=a%2F..%2Fb/metric=x/date=2010-01-01":   1,
		"tenant=skyline/metric=flight/date=2010-01-01": 1,
	}
	var found []string
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, p)
			found = append(found, rel)
		}
		return err
	})
	if len(found) != len(files) {
		t.Fatalf("files: %v", found)
	}
	for part, n := range files {
		rows, err := parquet.ReadFile[row](filepath.Join(out, part, "part-0.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != n {
			t.Errorf("%s: %d rows, want %d", part, len(rows), n)
		}
		for i, r := range rows {
			if !strings.HasPrefix(string(r.Event), "{") || r.ID == 0 || (i > 0 && r.Timestamp < rows[i-1].Timestamp) {
				t.Errorf("%s: bad row %+v", part, r)
			}
		}
	}
	rows, _ := parquet.ReadFile[row](filepath.Join(out, "tenant=harbor/metric=weather/date=2010-01-01/part-0.parquet"))
	if len(rows) == 2 && (rows[0].Timestamp != 1262304000000 || rows[1].Timestamp != 1262304000500 ||
		string(rows[0].Event) != `{"metrictype":"weather","timestamp":1262304000,"t":1}`) {
		t.Errorf("weather rows: %+v", rows)
	}
	if rows, _ := parquet.ReadFile[row](filepath.Join(out, "tenant=quakenet/metric=eq/date=2018-02-07/part-0.parquet")); len(rows) != 1 || rows[0].Timestamp != 1517966773840 {
		t.Errorf("quake rows: %+v", rows)
	}
}

func TestMillis(t *testing.T) {
	for in, want := range map[string]int64{
		`1262304000`: 1262304000000, `1262304000.25`: 1262304000250, `1262304000123`: 1262304000123,
		`1262304000123456`: 1262304000123, `1262304000123456789`: 1262304000123,
		`"2010-01-01T00:00:00.5+01:00"`: 1262300400500,
		`-1262304000`:                   -1, `0`: -1, `99999999999999999999999`: -1, `"yesterday"`: -1, `true`: -1, `""`: -1,
	} {
		got, ok := millis([]byte(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("millis(%s) = %d, want %d", in, got, want)
		}
	}
}
