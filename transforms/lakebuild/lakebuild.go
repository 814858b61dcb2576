// Package lakebuild turns one day of the staged archive into the lake's
// partitions for that day: read → deduplicate → bind to the current schema
// → typed Parquet, plus the fast-restore backup and the schema-change
// observations. It is plain Go; pipelines.Batch runs it once per day.
//
// A day is the unit because the staged archive is partitioned by event
// time and a re-delivered event has the same event time, so every
// duplicate of an event lands in the same staged day: deduplication never
// needs to look across days.
package lakebuild

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	json "github.com/goccy/go-json"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/lake"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/schemachange"
	"github.com/fineo-io/ingest/transforms/stage1"
)

// Layout under the lake root.
const (
	ManifestName = "_manifest.json"
	ReportsDir   = "_schema_changes"
	// MaxRowsPerFile splits very large partitions into several files.
	MaxRowsPerFile = 4 << 20
)

// PartitionDir is the lake (and backup) folder of one tenant, metric and day.
func PartitionDir(tenant, metric, date string) string {
	return "tenant=" + tenant + "/metric=" + metric + "/date=" + date
}

// PartName is the deterministic name of the i-th file of a partition, so a
// re-run replaces files instead of adding to them.
func PartName(i int, ext string) string { return fmt.Sprintf("part-%05d%s", i, ext) }

// Config is what every day needs.
type Config struct {
	Lake        blob.Store
	Backup      blob.Store // nil: no backup
	Binder      *stage1.Binder
	Parquet     lake.Options
	ItemOptions dynamodbio.ItemOptions
	Run         string // run id, recorded in manifests
}

// Day is the input of one day: its staged files (paths in the archive).
type Day struct {
	Date  string
	Files []string
}

// Manifest records how a partition was made.
type Manifest struct {
	Tenant        string    `json:"tenant"`
	Metric        string    `json:"metric"`
	Date          string    `json:"date"`
	Run           string    `json:"run"`
	Created       time.Time `json:"created"`
	SchemaVersion int       `json:"schema_version"`
	Rows          int64     `json:"rows"`
	Files         []string  `json:"files"`
	Inputs        []string  `json:"inputs"` // staged archive files read for the day
	Columns       []string  `json:"columns"`
}

// FileError is a staged file that could not be read.
type FileError struct {
	File string
	Err  error
}

// Result is what one day produced.
type Result struct {
	Date        string
	Read        int64 // staged records read
	Duplicates  int64 // records dropped as duplicates of another with the same event id
	Unbound     int64 // records whose tenant or metric is not in the current schemas
	Rows        int64 // lake rows written
	Partitions  []Manifest
	BackupItems int64
	FileErrors  []FileError
	Unbound1    []*records.Event // the unbound records (become processing errors)
	Report      *schemachange.Report
}

type group struct {
	tenant, metric string
	columns        []schema.Field
	events         []*archive.Staged
}

// ProcessDay builds every lake partition of one day.
func ProcessDay(ctx context.Context, cfg Config, archiveStore blob.Store, day Day) (*Result, error) {
	res := &Result{Date: day.Date, Report: schemachange.NewReport()}
	// Records are read as heads (archive.Staged): duplicates are dropped
	// and the rest grouped before any field is decoded.
	var heads []*archive.Staged
	for _, f := range day.Files {
		var err error
		if heads, err = readStaged(ctx, archiveStore, f, heads); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.FileErrors = append(res.FileErrors, FileError{File: archiveStore.URL(f), Err: err})
		}
	}
	res.Read = int64(len(heads))
	byID := make(map[string]*archive.Staged, len(heads)) // sized once: growing it was 2% of a batch
	for _, ev := range heads {
		if prev, dup := byID[ev.ID]; dup {
			res.Duplicates++
			if !earlier(ev, prev) {
				continue
			}
		}
		byID[ev.ID] = ev
	}
	groups := map[string]*group{}
	var tables tableCache
	for _, ev := range byID {
		t := tables.lookup(cfg.Binder, ev.Tenant, ev.Metric)
		if !t.ok {
			full, err := ev.Event()
			if err != nil {
				return nil, fmt.Errorf("staged record %s: %w", ev.ID, err)
			}
			res.Unbound++
			res.Unbound1 = append(res.Unbound1, full)
			continue
		}
		g := t.group
		if g == nil {
			k := ev.Tenant + "\x00" + t.canonical
			if g = groups[k]; g == nil {
				g = &group{tenant: ev.Tenant, metric: t.canonical, columns: t.columns}
				groups[k] = g
			}
			t.group = g
		}
		g.events = append(g.events, ev)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	obs := observer{res.Report}
	for _, k := range keys {
		m, n, err := writePartition(ctx, cfg, groups[k], day, obs)
		if err != nil {
			return nil, err
		}
		res.Rows += m.Rows
		res.BackupItems += n
		res.Partitions = append(res.Partitions, m)
	}
	return res, nil
}

// tableCache remembers Binder.Table's answers, and each pair's group, for
// the few tenant and metric pairs of a day: two map lookups per event were
// 3% of a batch, and building a group key per event another 2%.
type tableCache []tableEntry

type tableEntry struct {
	tenant, metric, canonical string
	columns                   []schema.Field
	ok                        bool
	group                     *group // set by the caller
}

// lookup returns the entry of tenant and metric, valid until the next call.
func (c *tableCache) lookup(b *stage1.Binder, tenant, metric string) *tableEntry {
	for i := range *c {
		if e := &(*c)[i]; e.tenant == tenant && e.metric == metric {
			return e
		}
	}
	canonical, cols, ok := b.Table(tenant, metric)
	e := tableEntry{tenant: tenant, metric: metric, canonical: canonical, columns: cols, ok: ok}
	if len(*c) >= 64 { // a day of many metrics: the rest are looked up each time
		return &e
	}
	*c = append(*c, e)
	return &(*c)[len(*c)-1]
}

// earlier says whether a should survive over b: the earliest ingest wins,
// ties broken by lineage, so the survivor is the same on every run.
func earlier(a, b *archive.Staged) bool {
	if a.IngestTime != b.IngestTime {
		return a.IngestTime < b.IngestTime
	}
	return a.Source.String() < b.Source.String()
}

// readStaged appends the record heads of the staged file at path to heads.
func readStaged(ctx context.Context, st blob.Store, path string, heads []*archive.Staged) ([]*archive.Staged, error) {
	data, err := blob.ReadFile(ctx, st, path)
	if err != nil {
		return heads, err
	}
	// A file that is corrupt half-way contributes nothing, so a day's
	// result does not depend on where a file broke.
	n := len(heads)
	if err := archive.ReadStagedHeads(data, func(ev *archive.Staged) error {
		heads = append(heads, ev)
		return nil
	}); err != nil {
		clear(heads[n:])
		return heads[:n], err
	}
	return heads, nil
}

type observer struct{ r *schemachange.Report }

func (o observer) Unknown(tenant, metric, name, raw string, ts int64) {
	o.r.ObserveUnknown(tenant, metric, name, raw, ts)
}

func (o observer) FailedCast(tenant, metric, field, declared, raw string, ts int64) {
	o.r.ObserveFailedCast(tenant, metric, field, declared, raw, ts)
}

func writePartition(ctx context.Context, cfg Config, g *group, day Day, obs observer) (Manifest, int64, error) {
	sortEvents(g.events)
	cols := make([]lake.Column, len(g.columns))
	names := make([]string, len(g.columns))
	for i, f := range g.columns {
		cols[i] = lake.Column{Name: f.Name, Type: f.Type}
		names[i] = f.Name
	}
	dir := PartitionDir(g.tenant, g.metric, day.Date)
	m := Manifest{
		Tenant: g.tenant, Metric: g.metric, Date: day.Date, Run: cfg.Run, Created: time.Now().UTC(),
		SchemaVersion: cfg.Binder.Version(g.tenant), Rows: int64(len(g.events)), Inputs: day.Files, Columns: names,
	}
	// Each record is bound straight into the Parquet writer's columns. A
	// partition of several files has its later records' fields checked
	// first, so a corrupt one fails the partition before any file of it
	// is replaced (a check only: no observation is made twice).
	values := make([]records.Value, len(cols))
	if len(g.events) > MaxRowsPerFile {
		for _, ev := range g.events[MaxRowsPerFile:] {
			if _, _, err := cfg.Binder.BindValues(ev, nil, values); err != nil {
				return m, 0, fmt.Errorf("staged record %s: %w", ev.ID, err)
			}
		}
	}
	var buf bytes.Buffer
	for i := 0; i*MaxRowsPerFile < len(g.events) || i == 0; i++ {
		part := g.events[i*MaxRowsPerFile : min((i+1)*MaxRowsPerFile, len(g.events))]
		buf.Reset()
		pw, err := lake.NewWriter(&buf, cols, cfg.Parquet)
		if err != nil {
			return m, 0, fmt.Errorf("lake %s: %w", dir, err)
		}
		pw.Grow(len(part))
		for _, ev := range part {
			unknown, _, err := cfg.Binder.BindValues(ev, obs, values)
			if err != nil {
				return m, 0, fmt.Errorf("staged record %s: %w", ev.ID, err)
			}
			if err := pw.Append(ev.ID, ev.Timestamp, values, unknown); err != nil {
				return m, 0, fmt.Errorf("lake %s: %w", dir, err)
			}
		}
		if err := pw.Close(); err != nil {
			return m, 0, fmt.Errorf("lake %s: %w", dir, err)
		}
		name := PartName(i, ".parquet")
		if err := put(ctx, cfg.Lake, dir+"/"+name, buf.Bytes()); err != nil {
			return m, 0, err
		}
		m.Files = append(m.Files, name)
	}
	if err := removeStale(ctx, cfg.Lake, dir, m.Files, ".parquet"); err != nil {
		return m, 0, err
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := put(ctx, cfg.Lake, dir+"/"+ManifestName, mb); err != nil {
		return m, 0, err
	}
	var items int64
	if cfg.Backup != nil {
		buf.Reset()
		its := make([]map[string]types.AttributeValue, 0, len(g.events))
		for _, st := range g.events {
			ev, err := st.Event()
			if err != nil {
				return m, 0, fmt.Errorf("staged record %s: %w", st.ID, err)
			}
			its = append(its, dynamodbio.Item(ev, cfg.ItemOptions))
		}
		if err := dynamodbio.WriteBackup(&buf, its); err != nil {
			return m, 0, err
		}
		name := PartName(0, ".jsonl.gz")
		if err := put(ctx, cfg.Backup, dir+"/"+name, buf.Bytes()); err != nil {
			return m, 0, err
		}
		if err := removeStale(ctx, cfg.Backup, dir, []string{name}, ".jsonl.gz"); err != nil {
			return m, 0, err
		}
		items = int64(len(its))
	}
	return m, items, nil
}

// sortKey is an event's place in its partition: by time, then id. The id's
// first 8 bytes as a number decide almost every tie without reading the
// record: many events share a time (flights by the minute), and comparing
// their ids through the records' pointers was 5% of a batch.
type sortKey struct {
	ts     int64
	prefix uint64
	ev     *archive.Staged
}

// sortEvents sorts events by time, then id.
func sortEvents(events []*archive.Staged) {
	keys := make([]sortKey, len(events))
	for i, ev := range events {
		var p [8]byte
		copy(p[:], ev.ID)
		keys[i] = sortKey{ev.Timestamp, binary.BigEndian.Uint64(p[:]), ev}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := cmp.Compare(a.ts, b.ts); c != 0 {
			return c
		}
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return strings.Compare(a.ev.ID, b.ev.ID)
	})
	for i := range keys {
		events[i] = keys[i].ev
	}
}

// put writes one file whole, with a few retries.
func put(ctx context.Context, st blob.Store, path string, data []byte) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
			}
		}
		var w blob.Writer
		if w, err = st.Create(ctx, path); err != nil {
			continue
		}
		if _, err = io.Copy(w, bytes.NewReader(data)); err != nil {
			w.Abort()
			continue
		}
		if err = w.Commit(); err == nil {
			return nil
		}
	}
	return fmt.Errorf("writing %s: %w", st.URL(path), err)
}

// tempGrace is how old a temporary file in a partition must be before the
// partition's next run removes it: a younger one may be a writer's at work.
const tempGrace = time.Hour

// removeStale deletes files of a partition that this run did not write
// (left by an earlier run that produced more parts), and, in a local lake,
// the temporary files a killed run left there (older than tempGrace).
func removeStale(ctx context.Context, st blob.Store, dir string, keep []string, ext string) error {
	if ls, ok := st.(*blob.LocalStore); ok {
		if _, err := ls.RemoveTemp(dir, tempGrace); err != nil {
			return err
		}
	}
	objs, err := st.List(ctx, dir+"/")
	if err != nil {
		return err
	}
	kept := map[string]bool{}
	for _, k := range keep {
		kept[dir+"/"+k] = true
	}
	var errs []error
	for _, o := range objs {
		if !kept[o.Path] && len(o.Path) > len(ext) && o.Path[len(o.Path)-len(ext):] == ext {
			errs = append(errs, st.Delete(ctx, o.Path))
		}
	}
	return errors.Join(errs...)
}
