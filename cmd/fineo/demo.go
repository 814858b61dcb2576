package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	ingest "github.com/fineo-io/ingest"
	"github.com/fineo-io/ingest/io/blob"
)

func cmdDemo(ctx context.Context, args []string) error {
	var out, sample string
	err := parseBeamFlags("demo", args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "fineo-demo", "folder for everything the demo writes (replaced on each run)")
		fs.StringVar(&sample, "sample", "", "sample data: raw/ and schemas/ (default: the sample built into the binary)")
	})
	if err != nil {
		return err
	}
	if sample == "" {
		// The sample built into the binary, written under --out, so the
		// demo runs from any folder (an installed binary, the image).
		sample = filepath.Join(out, "sample")
		if err := extractSample(sample); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(sample, "raw")); err != nil {
		return fmt.Errorf("sample data not found at %s (--sample): %v", sample, err)
	}
	archiveDir := filepath.Join(out, "archive")
	lakeDir := filepath.Join(out, "lake")
	backupDir := filepath.Join(out, "backup")
	for _, d := range []string{archiveDir, lakeDir, backupDir} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	fmt.Printf("Fineo demo: batch ingest of %s into %s (no AWS needed)\n\n", sample, archiveDir)
	_, err = runIngest(ctx, ingestFlags{
		input:   filepath.Join(sample, "raw"),
		schemas: filepath.Join(sample, "schemas"),
		archive: archiveDir,
	}, os.Stdout)
	if err != nil {
		return err
	}
	if err := describeArchive(ctx, os.Stdout, archiveDir); err != nil {
		return err
	}
	fmt.Printf("\nFineo demo: batch from the staged archive into the Parquet lake %s\n\n", lakeDir)
	if _, err := runBatch(ctx, batchFlags{
		archive: archiveDir, lake: lakeDir, backup: backupDir,
		schemas: filepath.Join(sample, "schemas"), compression: "zstd", quiet: true,
	}, os.Stdout); err != nil {
		return err
	}
	if err := describeLake(ctx, os.Stdout, lakeDir); err != nil {
		return err
	}
	if !standinsRunning() {
		fmt.Print(standinsHint)
		return nil
	}
	return demoStream(ctx, os.Stdout, sample, out)
}

// describeLake prints the lake's tables and the SQL to try.
func describeLake(ctx context.Context, w io.Writer, root string) error {
	st, err := blob.Open(ctx, root)
	if err != nil {
		return err
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		return err
	}
	type agg struct{ files, days int }
	tables := map[string]*agg{}
	for _, o := range objs {
		if !strings.HasSuffix(o.Path, ".parquet") {
			continue
		}
		parts := strings.Split(o.Path, "/") // tenant=/metric=/date=/part
		if len(parts) != 4 {
			continue
		}
		k := parts[0] + "/" + parts[1]
		if tables[k] == nil {
			tables[k] = &agg{}
		}
		tables[k].files++
		if strings.HasSuffix(o.Path, "part-00000.parquet") {
			tables[k].days++
		}
	}
	keys := make([]string, 0, len(tables))
	for k := range tables {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "\nLake tables under %s (Hive layout tenant=/metric=/date=):\n", root)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-40s %4d day partition(s)\n", k, tables[k].days)
	}
	fmt.Fprintf(w, `
Try it with DuckDB (typed columns, one table per tenant and metric):
  duckdb -c "SELECT tenant, metric, date, count(*) AS events FROM read_parquet('%[1]s/*/*/*/*.parquet', hive_partitioning = true, union_by_name = true) GROUP BY ALL ORDER BY date DESC LIMIT 10"
  duckdb -c "SELECT date, avg(temperature) FROM read_parquet('%[1]s/tenant=harbor/metric=weather/*/*.parquet', hive_partitioning = true) GROUP BY date ORDER BY date LIMIT 5"
`, root)
	return nil
}

// describeArchive prints what an ingest wrote and where to look next.
func describeArchive(ctx context.Context, w io.Writer, root string) error {
	st, err := blob.Open(ctx, root)
	if err != nil {
		return err
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		return err
	}
	type agg struct {
		files int
		bytes int64
		parts map[string]bool
	}
	byKind := map[string]*agg{}
	for _, o := range objs {
		parts := strings.Split(o.Path, "/")
		kind := parts[0]
		if kind == "errors" && len(parts) > 1 {
			kind += "/" + parts[1]
		}
		a := byKind[kind]
		if a == nil {
			a = &agg{parts: map[string]bool{}}
			byKind[kind] = a
		}
		a.files++
		a.bytes += o.Size
		a.parts[filepath.Dir(o.Path)] = true
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "\nWritten under %s:\n", root)
	for _, k := range kinds {
		a := byKind[k]
		fmt.Fprintf(w, "  %-20s %4d file(s) in %4d partition(s), %8.1f KiB\n", k+"/", a.files, len(a.parts), float64(a.bytes)/1024)
	}
	fmt.Fprintf(w, `
Next:
  - Staged events are Avro container files (schema embedded); any Avro tool reads them, e.g.
      ls %[1]s/staged/
  - Errors are JSON Lines; count them by kind with DuckDB:
      duckdb -c "SELECT class, kind, count(*) AS n FROM read_json_auto('%[1]s/errors/*/*/*.jsonl.gz', hive_partitioning=true) GROUP BY ALL ORDER BY n DESC"
  - Change a tenant schema and re-run: fineo schema apply FILE --schemas SAMPLE/schemas
    (SAMPLE: the demo's sample, written to <--out>/sample unless --sample names one)
`, root)
	return nil
}

// extractSample writes the sample built into the binary (ingest.Sample) to
// dir, replacing what was there.
func extractSample(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return fs.WalkDir(ingest.Sample, "testdata/sample", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimPrefix(path, "testdata/sample"))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := ingest.Sample.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
