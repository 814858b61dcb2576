package archive

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/records"
)

// StagedRead counts staged records read back from the archive.
const StagedRead = "staged_read"

func init() {
	register.DoFn4x1[context.Context, string, func(string, Block), func(string, Block), error](&readFn{})
}

// ReadStagedFiles reads staged archive files (paths under root) back into
// blocks of staged events keyed by their partition, one block per file, for
// replaying a stage. A file that cannot be read becomes a processing error
// naming it.
func ReadStagedFiles(s beam.Scope, root string, files []string) (staged, errs beam.PCollection) {
	s = s.Scope("archive.ReadStagedFiles")
	names := beam.Reshuffle(s, beam.CreateList(s, files))
	return beam.ParDo2(s, &readFn{Root: root}, names)
}

type readFn struct {
	Root  string
	store blob.Store
}

func (f *readFn) Setup(ctx context.Context) (err error) {
	f.store, err = blob.Open(ctx, f.Root)
	return err
}

func (f *readFn) ProcessElement(ctx context.Context, file string, emit, emitErr func(string, Block)) error {
	b, err := f.read(ctx, file)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now().UTC()
		e := &records.Error{Kind: records.ReadFailed, Stage: "replay", Time: now, Events: 1,
			Message: fmt.Sprintf("staged archive file %s is unreadable: %v", f.store.URL(file), err),
			Source:  records.Lineage{File: f.store.URL(file)}}
		metrics.Counter(metrics.ProcessingErrors).Inc(ctx, 1)
		emitErr(ErrorPartition(records.Processing, now), Block{Count: 1, Data: AppendErrorJSON(nil, e)})
		return nil
	}
	metrics.Counter(StagedRead).Inc(ctx, b.Count)
	emit(path.Dir(file), b)
	return nil
}

func (f *readFn) read(ctx context.Context, file string) (Block, error) {
	data, err := blob.ReadFile(ctx, f.store, file)
	if err != nil {
		return Block{}, err
	}
	var b Block
	err = ReadStagedFile(data, func(ev *records.Event) error {
		var err error
		b.Data, err = AppendEvent(b.Data, ev)
		b.Count++
		return err
	})
	return b, err
}
