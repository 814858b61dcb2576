package streaming

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/redact"
	"github.com/fineo-io/ingest/records"
)

// RawRead counts raw records read back from raw-archive files.
const RawRead = "raw_read"

// replayPageRecords is how many records of a raw file make one page.
const replayPageRecords = 1000

func init() {
	register.DoFn4x1[context.Context, string, func(kinesisio.ShardPage), func(string, archive.Block), error](&readRawFn{})
	register.DoFn4x0[context.Context, PageOut, func(string, archive.Block), func(string, archive.Block)](&splitPartsFn{})
	register.Emitter1[kinesisio.ShardPage]()
}

// IsRawFile says whether a location is a raw-archive Avro file (as the
// streaming job writes them) rather than JSON Lines.
func IsRawFile(location string) bool { return strings.HasSuffix(location, ".avro") }

// ReadRawFiles reads raw-archive files (locations: paths or s3:// URLs)
// back into pages of stream records, in file order, keeping each record's
// stream, shard and sequence number — so that replaying the raw archive
// through Stage1Pages makes the same staged events and errors the stream
// made. A file that cannot be read becomes a processing error naming it.
func ReadRawFiles(s beam.Scope, files []string) (pages, errs beam.PCollection) {
	s = s.Scope("streaming.ReadRawFiles")
	names := beam.Reshuffle(s, beam.CreateList(s, files))
	return beam.ParDo2(s, &readRawFn{}, names)
}

type readRawFn struct{}

func (f *readRawFn) ProcessElement(ctx context.Context, file string, emit func(kinesisio.ShardPage), emitErr func(string, archive.Block)) error {
	data, err := readLocation(ctx, file)
	var page kinesisio.ShardPage
	flush := func() {
		if len(page.Records) > 0 {
			metrics.Counter(RawRead).Inc(ctx, int64(len(page.Records)))
			emit(page)
		}
		page = kinesisio.ShardPage{Stream: page.Stream, Shard: page.Shard, After: page.Last()}
	}
	if err == nil {
		err = archive.ReadRawFile(data, func(r *archive.RawRecord) error {
			if r.Stream != page.Stream || r.Shard != page.Shard || len(page.Records) == replayPageRecords {
				flush()
				if r.Stream != page.Stream || r.Shard != page.Shard {
					page = kinesisio.ShardPage{Stream: r.Stream, Shard: r.Shard}
				}
			}
			page.Records = append(page.Records, kinesisio.PageRecord{Data: r.Data, Sequence: r.Sequence,
				PartitionKey: r.PartitionKey, ArrivalMillis: r.ArrivalMillis})
			return nil
		})
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// What was read before the damage is replayed; the file is named
		// in one processing error, for a person to look at.
		flush()
		now := time.Now().UTC()
		e := &records.Error{Kind: records.ReadFailed, Stage: "replay", Time: now, Events: 1,
			Message: redact.String(fmt.Sprintf("raw archive file %s is unreadable: %v", file, err)),
			Source:  records.Lineage{File: redact.URL(file)}}
		metrics.Counter(metrics.ProcessingErrors).Inc(ctx, 1)
		metrics.Counter(metrics.EventsIn).Inc(ctx, 1)
		emitErr(archive.ErrorPartition(records.Processing, now), archive.Block{Count: 1, Data: archive.AppendErrorJSON(nil, e)})
		return nil
	}
	flush()
	return nil
}

func readLocation(ctx context.Context, location string) ([]byte, error) {
	rc, err := blob.OpenLocation(ctx, location)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return blob.ReadAll(rc)
}

// SplitParts turns page results into the staged blocks and error blocks
// (KV<partition, Block>) the batch archive writers take; the raw records
// are dropped (they are archived already).
func SplitParts(s beam.Scope, results beam.PCollection) (staged, errs beam.PCollection) {
	s = s.Scope("streaming.SplitParts")
	return beam.ParDo2(s, &splitPartsFn{}, beam.DropKey(s, results))
}

type splitPartsFn struct{}

func (splitPartsFn) ProcessElement(_ context.Context, p PageOut, emitStaged, emitErr func(string, archive.Block)) {
	for _, pt := range p.Parts {
		if strings.HasPrefix(pt.Partition, archive.StagedDir+"/") {
			emitStaged(pt.Partition, pt.Block)
		} else {
			emitErr(pt.Partition, pt.Block)
		}
	}
}
