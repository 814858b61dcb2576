// Package pipelines builds Fineo's Beam pipeline graphs from the transforms
// and IO packages. Each builder is a plain function over a beam.Scope, so the
// same graph runs on every runner (see package runners).
//
// Ingest (batch ingest, a bounded job):
//
//	files ──jsonlio.Read──▶ chunks ──stage1.FromChunks──▶ staged blocks ──archive.WriteStaged──▶ <archive>/staged/
//	  │                                  │                                   │ (failed writes)
//	  │ read failures                    │ customer errors                   ▼
//	  └──────────────────────────────────┴──────────▶ error blocks ◀── archive.ToProcessingErrors
//	                                                      │
//	                                           archive.WriteErrors ──▶ <archive>/errors/{customer,processing}/
package pipelines

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/jsonlio"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/stage1"
	"github.com/fineo-io/ingest/transforms/streaming"
)

// IngestConfig configures the batch-ingest pipeline.
type IngestConfig struct {
	Files      []string         // input locations (blob.ExpandInput)
	Tenants    []*schema.Tenant // schema snapshot
	Archive    string           // archive root: a directory or s3://bucket/prefix
	BareTenant string           // --tenant: lines are bare events of this tenant
	Read       jsonlio.Options
	Write      archive.WriteOptions
}

// Ingest adds the batch-ingest graph to s. Files ending in .avro are
// raw-archive files of the streaming job (a raw replay): their records go
// through the same stage 1, keeping their stream lineage.
func Ingest(s beam.Scope, cfg IngestConfig) {
	s = s.Scope("Ingest")
	var lineFiles, rawFiles []string
	for _, f := range cfg.Files {
		if streaming.IsRawFile(f) {
			rawFiles = append(rawFiles, f)
		} else {
			lineFiles = append(lineFiles, f)
		}
	}
	var staged, errs []beam.PCollection
	if len(lineFiles) > 0 || len(rawFiles) == 0 {
		chunks, readErrs := jsonlio.Read(s, lineFiles, cfg.Read)
		maxLine := cfg.Read.MaxLine
		if maxLine <= 0 {
			maxLine = jsonlio.DefaultMaxLine
		}
		st, custErrs := stage1.FromChunks(s, stage1.Config{
			Tenants:        cfg.Tenants,
			MaxRecordBytes: maxLine,
			BareTenant:     cfg.BareTenant,
			ReleaseChunks:  true, // stage 1 is the chunks' one consumer
		}, chunks)
		staged = append(staged, st)
		errs = append(errs, readErrs, custErrs)
	}
	if len(rawFiles) > 0 {
		pages, readErrs := streaming.ReadRawFiles(s, rawFiles)
		results := streaming.Stage1Pages(s, streaming.Stage1Config{Tenants: cfg.Tenants}, pages)
		st, custErrs := streaming.SplitParts(s, results)
		staged = append(staged, st)
		errs = append(errs, readErrs, custErrs)
	}
	failed := archive.WriteStaged(s, cfg.Archive, cfg.Write, beam.Flatten(s, staged...))
	procErrs := archive.ToProcessingErrors(s, failed)
	archive.WriteErrors(s, cfg.Archive, cfg.Write, beam.Flatten(s, append(errs, procErrs)...))
}
