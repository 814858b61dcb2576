// Package lakebuild turns the staged archive into the lake: read →
// deduplicate → bind to the current schema → typed Parquet, plus the
// fast-restore backup and the schema-change observations. Its unit of work
// is one lake partition (tenant, metric, day): BuildPartition reads only
// that partition's ranges of the staged files (archive.PlanFile), so
// partitions are independent elements a runner spreads over its workers,
// and a partition larger than the memory budget is split by a hash of the
// event id into buckets spilled to local files, one part file each.
//
// A partition is a complete unit for deduplication because a re-delivered
// event has the same tenant, metric and event time, so every copy of an
// event is staged in the same day under the same (tenant, metric); within
// a partition every copy lands in the same bucket.
package lakebuild

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
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

// Memory budget of one partition (see Config.Budget).
const (
	// recordOverhead is what a staged record costs in memory beyond its
	// encoded bytes while its partition is built: its head (archive.Staged),
	// its sort key and its place in the deduplication map.
	recordOverhead = 320
	// maxBuckets bounds the spill files of one partition (each has a write
	// buffer of spillBuffer bytes while it is split).
	maxBuckets  = 1024
	spillBuffer = 16 << 10
)

// Config is what every partition needs.
type Config struct {
	Lake        blob.Store
	Backup      blob.Store // nil: no backup
	Binder      *stage1.Binder
	Parquet     lake.Options
	ItemOptions dynamodbio.ItemOptions
	Run         string // run id, recorded in manifests
	// Budget is the memory one partition may use, estimated from its
	// ranges before it is read (records' bytes + recordOverhead each). A
	// partition over it is split into buckets by a hash of the event id,
	// spilled to files under TempDir, and built a bucket at a time, one
	// part file each. 0: DefaultBudget().
	Budget  int64
	TempDir string // "" = os.TempDir()
}

// Unit is one lake partition to build: its tenant, its canonical metric
// and its day. Unbound is a staged (tenant, metric) the current schemas do
// not know: its records become processing errors.
type Unit struct {
	Date, Tenant, Metric string
	Unbound              bool
}

// Key is the unit's key in the pipeline's grouping of ranges.
func (u Unit) Key() string {
	k := u.Date + "\x00" + u.Tenant + "\x00" + u.Metric
	if u.Unbound {
		k += "\x00unbound"
	}
	return k
}

// ParseUnit is the inverse of Unit.Key.
func ParseUnit(key string) (Unit, error) {
	f := strings.Split(key, "\x00")
	if len(f) < 3 || len(f) > 4 || (len(f) == 4 && f[3] != "unbound") {
		return Unit{}, fmt.Errorf("lakebuild: bad unit key %q", key)
	}
	return Unit{Date: f[0], Tenant: f[1], Metric: f[2], Unbound: len(f) == 4}, nil
}

// UnitOf returns the unit a staged range of date belongs to under the
// binder's schemas.
func UnitOf(b *stage1.Binder, date string, r archive.Range) Unit {
	canonical, _, ok := b.Table(r.Tenant, r.Metric)
	if !ok {
		return Unit{Date: date, Tenant: r.Tenant, Metric: r.Metric, Unbound: true}
	}
	return Unit{Date: date, Tenant: r.Tenant, Metric: canonical}
}

// Manifest records how a partition was made. A reader that lists the
// files of a partition from its manifest sees one run's files only.
type Manifest struct {
	Tenant        string    `json:"tenant"`
	Metric        string    `json:"metric"`
	Date          string    `json:"date"`
	Run           string    `json:"run"`
	Created       time.Time `json:"created"`
	SchemaVersion int       `json:"schema_version"`
	Rows          int64     `json:"rows"`
	Files         []string  `json:"files"`
	Buckets       int       `json:"buckets,omitempty"` // > 1: split by event id over the memory budget
	Inputs        []string  `json:"inputs"`            // staged archive files read for the partition
	Columns       []string  `json:"columns"`
}

// FileError is a staged range that could not be read: its records are
// left out of the partition.
type FileError struct {
	File   string
	Events int64
	Err    error
}

// Result is what one partition produced.
type Result struct {
	Unit          Unit
	Read          int64 // staged records read
	Duplicates    int64 // records dropped as duplicates of another with the same event id
	Unbound       int64 // records whose tenant or metric is not in the current schemas
	Rows          int64 // lake rows written
	Partition     *Manifest
	BackupItems   int64
	FileErrors    []FileError
	UnboundEvents []*records.Event // the unbound records (become processing errors)
	Report        *schemachange.Report
}

// BuildPartition builds the lake partition of unit u from its staged
// ranges: in memory when they fit cfg.Budget, else bucket by bucket
// through spill files.
func BuildPartition(ctx context.Context, cfg Config, archiveStore blob.Store, u Unit, ranges []archive.Range) (*Result, error) {
	res := &Result{Unit: u, Report: schemachange.NewReport()}
	ranges = slices.Clone(ranges)
	slices.SortFunc(ranges, func(a, b archive.Range) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Off, b.Off), cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Metric, b.Metric))
	})
	est := Estimate(ranges)
	budget := cfg.Budget
	if budget <= 0 {
		budget = DefaultBudget()
	}
	b := &builder{cfg: cfg, u: u, res: res, store: archiveStore, obs: observer{res.Report}}
	if !u.Unbound {
		b.canonical, b.columns, _ = cfg.Binder.Table(u.Tenant, u.Metric)
	}
	for _, r := range ranges {
		if len(b.inputs) == 0 || b.inputs[len(b.inputs)-1] != r.File {
			b.inputs = append(b.inputs, r.File)
		}
	}
	buckets := 1
	if est > budget {
		buckets = min(maxBuckets, 1<<bits.Len64(uint64((est-1)/budget)))
	}
	var err error
	if buckets == 1 {
		err = b.inMemory(ctx, ranges)
	} else {
		err = b.spilled(ctx, ranges, buckets)
	}
	if err != nil {
		return nil, err
	}
	return res, b.finish(ctx, buckets)
}

// Estimate is the memory a partition of these ranges needs when built in
// memory: its records' plain bytes and recordOverhead each.
func Estimate(ranges []archive.Range) int64 {
	var est int64
	for _, r := range ranges {
		est += r.Plain + r.Count*recordOverhead
	}
	return est
}

// DefaultBudget is the memory budget of a partition when none is given: a
// share of the memory the process may use (GOMEMLIMIT, which main sets
// from the container's limit) for each partition built at once, between
// 32 MiB and 128 MiB. Past that a larger budget buys little: the buckets'
// part files (tens of MB) are large enough for readers either way, and a
// smaller one keeps the batch's peak low (bench/RESULTS.md, B5).
func DefaultBudget() int64 {
	return BudgetFor(debug.SetMemoryLimit(-1), runtime.GOMAXPROCS(0))
}

// BudgetFor is the default budget for a process limited to limit bytes
// that builds n partitions at once.
func BudgetFor(limit int64, n int) int64 {
	return min(max(limit/int64(4*max(n, 1)), 32<<20), 128<<20)
}

// builder holds one partition's build.
type builder struct {
	cfg       Config
	u         Unit
	res       *Result
	store     blob.Store
	obs       observer
	canonical string
	columns   []schema.Field
	inputs    []string
	files     []string // parquet files written, in order
	backups   []string
	rows      int64
}

// readRange appends the records of r to heads, or, when r cannot be read
// whole, records a FileError and appends nothing: a range contributes all
// its records or none.
func (b *builder) readRange(ctx context.Context, r archive.Range, heads []*archive.Staged) ([]*archive.Staged, error) {
	n := len(heads)
	err := archive.ReadRange(ctx, b.store, r, func(s *archive.Staged) error {
		heads = append(heads, s)
		return nil
	})
	if err != nil {
		if !unreadable(err) {
			return nil, err // the store's (a timeout, throttling): the runner retries the partition
		}
		clear(heads[n:])
		b.res.FileErrors = append(b.res.FileErrors, FileError{File: b.store.URL(r.File), Events: r.Count, Err: err})
		return heads[:n], nil
	}
	b.res.Read += int64(len(heads) - n)
	return heads, nil
}

func (b *builder) inMemory(ctx context.Context, ranges []archive.Range) error {
	var heads []*archive.Staged
	for _, r := range ranges {
		var err error
		if heads, err = b.readRange(ctx, r, heads); err != nil {
			return err
		}
	}
	return b.build(ctx, heads)
}

// spilled splits the partition's records into buckets by a hash of the
// event id, each a local file of records back to back, then builds the
// buckets one at a time. Records go to their bucket as they are read, a
// block at a time: at most one range's compressed bytes and one bucket
// are in memory. A range that fails half-way is rolled back (each bucket
// file cut back to where it was), so it contributes all its records or none.
func (b *builder) spilled(ctx context.Context, ranges []archive.Range, buckets int) (err error) {
	dir, err := os.MkdirTemp(b.cfg.TempDir, spillPrefix+"*")
	if err != nil {
		return fmt.Errorf("lakebuild: spill directory: %w", err)
	}
	defer os.RemoveAll(dir)
	// A lock held while the build runs tells RemoveSpills the directory is
	// in use, however old it is.
	lock, err := os.Create(dir + "/" + spillLock)
	if err != nil {
		return fmt.Errorf("lakebuild: spill lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lakebuild: spill lock: %w", err)
	}
	sp := make([]spillFile, buckets)
	defer func() {
		for i := range sp {
			if sp[i].f != nil {
				sp[i].f.Close()
			}
		}
	}()
	for i := range sp {
		if sp[i].f, err = os.Create(fmt.Sprintf("%s/bucket-%05d", dir, i)); err != nil {
			return fmt.Errorf("lakebuild: spill file: %w", err)
		}
		sp[i].w = bufio.NewWriterSize(sp[i].f, spillBuffer)
	}
	for _, r := range ranges {
		for i := range sp {
			sp[i].mark()
		}
		var n int64
		rerr := archive.ReadRange(ctx, b.store, r, func(s *archive.Staged) error {
			raw, err := s.Raw()
			if err != nil {
				return fmt.Errorf("staged record %s: %w", s.ID, err)
			}
			n++
			return sp[bucketOf(s.ID, buckets)].add(raw)
		})
		if rerr == nil {
			b.res.Read += n
			continue
		}
		if !unreadable(rerr) {
			return rerr // the store's or the spill's: the runner retries the partition
		}
		for i := range sp {
			if err := sp[i].rollback(); err != nil {
				return fmt.Errorf("lakebuild: spill: %w", err)
			}
		}
		b.res.FileErrors = append(b.res.FileErrors, FileError{File: b.store.URL(r.File), Events: r.Count, Err: rerr})
	}
	var heads []*archive.Staged
	for i := range sp {
		if err := sp[i].w.Flush(); err != nil {
			return fmt.Errorf("lakebuild: spill: %w", err)
		}
		if err := sp[i].f.Close(); err != nil {
			return fmt.Errorf("lakebuild: spill: %w", err)
		}
		sp[i].f = nil
	}
	for i := range sp {
		data, err := os.ReadFile(fmt.Sprintf("%s/bucket-%05d", dir, i))
		if err != nil {
			return fmt.Errorf("lakebuild: spill: %w", err)
		}
		heads = heads[:0]
		if err := archive.DecodeStaged(data, sp[i].count, func(s *archive.Staged) error {
			heads = append(heads, s)
			return nil
		}); err != nil {
			return fmt.Errorf("lakebuild: spill file %d: %w", i, err)
		}
		if err := b.build(ctx, heads); err != nil {
			return err
		}
		clear(heads)
	}
	return nil
}

// spillFile is one bucket's spill file being written.
type spillFile struct {
	f            *os.File
	w            *bufio.Writer
	count, size  int64 // records and bytes written
	mCount, mLen int64 // at the mark
}

func (s *spillFile) add(raw []byte) error {
	if _, err := s.w.Write(raw); err != nil {
		return err
	}
	s.count++
	s.size += int64(len(raw))
	return nil
}

// mark remembers where the file is, for rollback.
func (s *spillFile) mark() { s.mCount, s.mLen = s.count, s.size }

// rollback cuts the file back to the mark.
func (s *spillFile) rollback() error {
	if s.size == s.mLen {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	if err := s.f.Truncate(s.mLen); err != nil {
		return err
	}
	if _, err := s.f.Seek(s.mLen, io.SeekStart); err != nil {
		return err
	}
	s.count, s.size = s.mCount, s.mLen
	return nil
}

// spillPrefix starts the names of the spill directories under TempDir.
const spillPrefix = "fineo-partition-"

// RemoveSpills removes the spill directories under dir (os.TempDir() when
// "") older than olderThan: those a killed batch left behind. A younger
// one may be another job's at work.
func RemoveSpills(dir string, olderThan time.Duration) (int, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), spillPrefix) {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < olderThan {
			continue
		}
		if inUse(dir + "/" + e.Name()) {
			continue // a long build at work
		}
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// unreadable says whether a range's read error is damage to leave out of
// the partition (corrupt data, a file gone) as a read_failed error. Any
// other error fails the partition, so the runner retries it rather than
// rebuilding the partition without the range's rows.
func unreadable(err error) bool {
	return errors.Is(err, archive.ErrCorrupt) || errors.Is(err, fs.ErrNotExist)
}

// spillLock is the file a spill directory's build holds locked.
const spillLock = ".lock"

// inUse says whether a build holds the spill directory's lock.
func inUse(dir string) bool {
	f, err := os.Open(dir + "/" + spillLock)
	if err != nil {
		return false // no lock file: a directory of a build that died before taking it
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// bucketOf is the bucket of an event id: FNV-1a, so every run and every
// worker puts an id in the same bucket.
func bucketOf(id string, buckets int) int {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int(h.Sum64() % uint64(buckets))
}

// build deduplicates heads (all copies of any event among them) and writes
// them: as parquet files of the partition, or as unbound events.
func (b *builder) build(ctx context.Context, heads []*archive.Staged) error {
	byID := make(map[string]*archive.Staged, len(heads)) // sized once: growing it was 2% of a batch
	for _, ev := range heads {
		if prev, dup := byID[ev.ID]; dup {
			b.res.Duplicates++
			if !earlier(ev, prev) {
				continue
			}
		}
		byID[ev.ID] = ev
	}
	events := make([]*archive.Staged, 0, len(byID))
	for _, ev := range byID {
		events = append(events, ev)
	}
	if b.u.Unbound {
		sortEvents(events)
		for _, ev := range events {
			full, err := ev.Event()
			if err != nil {
				return fmt.Errorf("staged record %s: %w", ev.ID, err)
			}
			b.res.Unbound++
			b.res.UnboundEvents = append(b.res.UnboundEvents, full)
		}
		return nil
	}
	return b.writeParts(ctx, events)
}

// earlier says whether a should survive over b: the earliest ingest wins,
// ties broken by lineage, so the survivor is the same on every run.
func earlier(a, b *archive.Staged) bool {
	if a.IngestTime != b.IngestTime {
		return a.IngestTime < b.IngestTime
	}
	return a.Source.String() < b.Source.String()
}

type observer struct{ r *schemachange.Report }

func (o observer) Unknown(tenant, metric, name, raw string, ts int64) {
	o.r.ObserveUnknown(tenant, metric, name, raw, ts)
}

func (o observer) FailedCast(tenant, metric, field, declared, raw string, ts int64) {
	o.r.ObserveFailedCast(tenant, metric, field, declared, raw, ts)
}

// writeParts writes one bucket's (or the whole partition's) events as
// parquet files, and their backup. Files are named by their content, so a
// re-run of unchanged input writes the same names and bytes, and a reader
// of the old manifest never meets a new file under an old name.
func (b *builder) writeParts(ctx context.Context, events []*archive.Staged) error {
	sortEvents(events)
	cols := make([]lake.Column, len(b.columns))
	for i, f := range b.columns {
		cols[i] = lake.Column{Name: f.Name, Type: f.Type}
	}
	dir := PartitionDir(b.u.Tenant, b.canonical, b.u.Date)
	// Each record is bound straight into the Parquet writer's columns. A
	// part of several files has its later records' fields checked first,
	// so a corrupt one fails the partition before any file of it is
	// written (a check only: no observation is made twice).
	values := make([]records.Value, len(cols))
	if len(events) > MaxRowsPerFile {
		for _, ev := range events[MaxRowsPerFile:] {
			if _, _, err := b.cfg.Binder.BindValues(ev, nil, values); err != nil {
				return fmt.Errorf("staged record %s: %w", ev.ID, err)
			}
		}
	}
	var buf bytes.Buffer
	for i := 0; i*MaxRowsPerFile < len(events); i++ {
		part := events[i*MaxRowsPerFile : min((i+1)*MaxRowsPerFile, len(events))]
		buf.Reset()
		pw, err := lake.NewWriter(&buf, cols, b.cfg.Parquet)
		if err != nil {
			return fmt.Errorf("lake %s: %w", dir, err)
		}
		pw.Grow(len(part))
		for _, ev := range part {
			unknown, _, err := b.cfg.Binder.BindValues(ev, b.obs, values)
			if err != nil {
				return fmt.Errorf("staged record %s: %w", ev.ID, err)
			}
			if err := pw.Append(ev.ID, ev.Timestamp, values, unknown); err != nil {
				return fmt.Errorf("lake %s: %w", dir, err)
			}
		}
		if err := pw.Close(); err != nil {
			return fmt.Errorf("lake %s: %w", dir, err)
		}
		sum := sha256.Sum256(buf.Bytes())
		name := fmt.Sprintf("part-%05d-%s.parquet", len(b.files), hex.EncodeToString(sum[:8]))
		if err := put(ctx, b.cfg.Lake, dir+"/"+name, buf.Bytes()); err != nil {
			return err
		}
		b.files = append(b.files, name)
		b.rows += int64(len(part))
	}
	if b.cfg.Backup != nil && len(events) > 0 {
		buf.Reset()
		its := make([]map[string]types.AttributeValue, 0, len(events))
		for _, st := range events {
			ev, err := st.Event()
			if err != nil {
				return fmt.Errorf("staged record %s: %w", st.ID, err)
			}
			its = append(its, dynamodbio.Item(ev, b.cfg.ItemOptions))
		}
		if err := dynamodbio.WriteBackup(&buf, its); err != nil {
			return err
		}
		name := fmt.Sprintf("part-%05d.jsonl.gz", len(b.backups))
		if err := put(ctx, b.cfg.Backup, dir+"/"+name, buf.Bytes()); err != nil {
			return err
		}
		b.backups = append(b.backups, name)
		b.res.BackupItems += int64(len(its))
	}
	return nil
}

// finish commits a bound partition: its manifest names the files just
// written, and only then are the files of earlier runs that it does not
// name removed.
func (b *builder) finish(ctx context.Context, buckets int) error {
	if b.u.Unbound {
		return nil
	}
	dir := PartitionDir(b.u.Tenant, b.canonical, b.u.Date)
	if len(b.files) == 0 {
		// Every range was unreadable: the partition is left as it was (the
		// ranges are processing errors), not replaced by an empty one.
		return nil
	}
	names := make([]string, len(b.columns))
	for i, f := range b.columns {
		names[i] = f.Name
	}
	m := &Manifest{
		Tenant: b.u.Tenant, Metric: b.canonical, Date: b.u.Date, Run: b.cfg.Run, Created: time.Now().UTC(),
		SchemaVersion: b.cfg.Binder.Version(b.u.Tenant), Rows: b.rows, Files: b.files, Inputs: b.inputs, Columns: names,
	}
	if buckets > 1 {
		m.Buckets = buckets
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := put(ctx, b.cfg.Lake, dir+"/"+ManifestName, mb); err != nil {
		return err
	}
	if err := removeStale(ctx, b.cfg.Lake, dir, b.files, ".parquet"); err != nil {
		return err
	}
	if b.cfg.Backup != nil {
		if err := removeStale(ctx, b.cfg.Backup, dir, b.backups, ".jsonl.gz"); err != nil {
			return err
		}
	}
	b.res.Rows = b.rows
	b.res.Partition = m
	return nil
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
