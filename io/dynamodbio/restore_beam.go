package dynamodbio

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"sync/atomic"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/metrics"
)

// Restore counters (RestoreFiles).
const (
	RestoreFilesDone   = "restore_files"
	RestoreItems       = "restore_items"
	RestoreWritten     = "restore_written"
	RestoreDuplicates  = "restore_duplicates"
	RestoreFailed      = "restore_failed"
	RestoreCalls       = "restore_calls"
	RestoreRetries     = "restore_retries"
	RestoreThrottles   = "restore_throttles"
	RestoreUnprocessed = "restore_unprocessed"
)

func init() {
	register.DoFn3x1[context.Context, string, func(string, archive.Block), error](&restoreFn{})
	register.DoFn3x1[context.Context, string, func(*archive.Block) bool, error](&writeFailedFn{})
	register.Iter1[archive.Block]()
}

// RestoreConfig configures RestoreFiles.
type RestoreConfig struct {
	Backup string // backup root: a directory or s3://bucket/prefix
	Table  string // its layout must be recorded (EnsureTable or InitLayout) first
	Writer WriterOptions
	// Overflow is where events too large for an item even compressed go
	// (ItemOptions.Overflow); default the backup root.
	Overflow string
	// ExpiresAt replaces the items' expires_at (RestoreOptions.ExpiresAt).
	ExpiresAt int64
	// FailedOut, when set, is where the items that could not be written go,
	// as one backup file (restore can read it again).
	FailedOut string
}

// RestoreFiles is `fineo restore` as a Beam graph: backup files (paths
// under cfg.Backup) → Reshuffle → one RestoreFile per file (25-item
// BatchWriteItem calls, retried) → the restore counters. Items that still
// fail are reported to the process's failure sink (SetRestoreFailureSink,
// for in-process runs) and, with cfg.FailedOut, written to one backup file.
// A file that cannot be read fails the job, as it stops the plain restore.
func RestoreFiles(s beam.Scope, cfg RestoreConfig, files []string) {
	s = s.Scope("dynamodbio.Restore")
	names := beam.Reshuffle(s, beam.CreateList(s, files))
	failed := beam.ParDo(s, &restoreFn{Backup: cfg.Backup, Table: cfg.Table, Writer: cfg.Writer,
		Options: RestoreOptions{Overflow: cmp.Or(cfg.Overflow, cfg.Backup), ExpiresAt: cfg.ExpiresAt}, KeepFailed: cfg.FailedOut != ""}, names)
	if cfg.FailedOut != "" {
		beam.ParDo0(s, &writeFailedFn{Path: cfg.FailedOut}, beam.GroupByKey(s, failed))
	}
}

var failureSink atomic.Pointer[func(FailedItem)]

// SetRestoreFailureSink makes restore workers in this process pass every
// item that failed to f (nil: none), so that the launching command can
// show why; remote workers only log counts.
func SetRestoreFailureSink(f func(FailedItem)) {
	if f == nil {
		failureSink.Store(nil)
		return
	}
	failureSink.Store(&f)
}

type restoreFn struct {
	Backup, Table string
	Writer        WriterOptions
	Options       RestoreOptions
	KeepFailed    bool // emit the failed items (only --failed-out reads them)

	layout *Layout
	store  blob.Store
}

func (f *restoreFn) Setup(ctx context.Context) error {
	st, err := blob.Open(ctx, f.Backup)
	if err != nil {
		return err
	}
	c, err := NewClient(ctx)
	if err != nil {
		return err
	}
	f.store = st
	f.layout, err = OpenLayout(ctx, c, f.Table, LayoutOptions{})
	return err
}

func (f *restoreFn) ProcessElement(ctx context.Context, file string, emit func(string, archive.Block)) error {
	stats, failed, err := RestoreFile(ctx, f.layout, f.store, file, f.Writer, f.Options, nil)
	for name, n := range map[string]int64{
		RestoreFilesDone: stats.Files, RestoreItems: stats.Items, RestoreWritten: stats.Written,
		RestoreDuplicates: stats.Duplicates, RestoreFailed: stats.Failed, RestoreCalls: stats.Writes.Calls,
		RestoreRetries: stats.Writes.Retries, RestoreThrottles: stats.Writes.Throttles, RestoreUnprocessed: stats.Writes.Unprocessed,
	} {
		if n != 0 {
			metrics.Counter(name).Inc(ctx, n)
		}
	}
	if len(failed) > 0 {
		sink := failureSink.Load()
		var b archive.Block
		for _, fi := range failed {
			if sink != nil {
				(*sink)(fi)
			}
			if !f.KeepFailed {
				continue
			}
			line, merr := MarshalItemJSON(fi.Item)
			if merr != nil {
				continue
			}
			b.Data = append(append(b.Data, line...), '\n')
			b.Count++
		}
		if b.Count > 0 {
			emit("failed", b)
		}
	}
	return err
}

// writeFailedFn writes the failed items as one backup file.
type writeFailedFn struct{ Path string }

func (f *writeFailedFn) ProcessElement(ctx context.Context, _ string, blocks func(*archive.Block) bool) error {
	var all []archive.Block
	var b archive.Block
	for blocks(&b) {
		all = append(all, b)
		b = archive.Block{}
	}
	dir, name := path.Split(f.Path)
	if dir == "" {
		dir = "."
	}
	st, err := blob.Open(ctx, dir)
	if err != nil {
		return err
	}
	if err := archive.WriteJSONLFile(ctx, st, name, all); err != nil {
		return fmt.Errorf("dynamodbio: writing the failed items to %s: %w", f.Path, err)
	}
	return nil
}
