package pipelines

import (
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/streaming"
)

// Stages a streaming job runs.
const (
	StagesAll = "all" // raw stream → stage 1 → nearline table (and the staged stream, if named)
	Stage1    = "1"   // raw stream → stage 1 → staged stream
	Stage2    = "2"   // staged stream → nearline table
)

// StreamConfig configures the streaming pipeline.
type StreamConfig struct {
	Stages       string // StagesAll (default), Stage1 or Stage2
	RawStream    string // read by StagesAll and Stage1
	StagedStream string // written by Stage1 (and StagesAll, if set); read by Stage2
	Table        string // nearline table: StagesAll and Stage2
	Archive      string // archive root: a directory or s3://bucket/prefix
	Tenants      []*schema.Tenant
	// SchemaStore and SchemaRefresh: stage 1 reads the store again every
	// SchemaRefresh while it runs (see streaming.Stage1Config).
	SchemaStore   string
	SchemaRefresh time.Duration
	// Read positions the source: Start, Resume (from the checkpoint table),
	// StopAfterIdle, PollInterval. Its Stream is set from the stage.
	Read   kinesisio.ReadConfig
	Window time.Duration // archive window; default 1 minute
	// CheckpointTable and Consumer name the durable checkpoint table.
	CheckpointTable, Consumer string
	// LeaseOwner names this job among the jobs that share the stream's
	// shards by leases in the checkpoint table (kinesisio.Leaser); ""
	// reads every shard without leases. LeaseDuration: see
	// kinesisio.DefaultLeaseDuration.
	LeaseOwner    string
	LeaseDuration time.Duration
	// Notify: alert targets, one alert per shard and window with errors.
	Notify []string
	Items  dynamodbio.ItemOptions
	// Layout: how the workers keep the nearline table's key layout (the
	// table's layout record must exist: dynamodbio.InitLayout).
	Layout dynamodbio.LayoutOptions
	Writer dynamodbio.WriterOptions
	Put    kinesisio.WriterOptions
}

// overflowItems is Items with the archive as the overflow store of
// events too large for a nearline item, unless Items names one.
func (c StreamConfig) overflowItems() dynamodbio.ItemOptions {
	it := c.Items
	if it.Overflow == "" {
		it.Overflow = c.Archive
	}
	return it
}

// SourceStream is the stream the job reads.
func (c StreamConfig) SourceStream() string {
	if c.Stages == Stage2 {
		return c.StagedStream
	}
	return c.RawStream
}

// Validate checks that the streams and table the stages need are named.
func (c StreamConfig) Validate() error {
	switch c.Stages {
	case "", StagesAll:
		if c.RawStream == "" || c.Table == "" {
			return fmt.Errorf("--stages %q needs --raw-stream and --table", StagesAll)
		}
	case Stage1:
		if c.RawStream == "" || c.StagedStream == "" {
			return fmt.Errorf("--stages 1 needs --raw-stream and --staged-stream")
		}
	case Stage2:
		if c.StagedStream == "" || c.Table == "" {
			return fmt.Errorf("--stages 2 needs --staged-stream and --table")
		}
	default:
		return fmt.Errorf("--stages must be all, 1 or 2, not %q", c.Stages)
	}
	if c.Archive == "" {
		return fmt.Errorf("--archive is required")
	}
	return nil
}

// Stream adds the streaming graph to s:
//
//	Kinesis ──kinesisio.Read──▶ pages ──streaming.Stage1Pages / Stage2Pages──▶ page results
//	  ──streaming.Commit──▶ raw/, staged/, errors/ files per window, then the checkpoint table
//
// Stage 1 writes staged events to the nearline table (all stages) and/or
// the staged stream (stage 1, or all with a staged stream named) as it
// processes each page; the archive and the checkpoint follow per window.
func Stream(s beam.Scope, cfg StreamConfig) {
	s = s.Scope("Stream")
	rc := cfg.Read
	rc.Stream = cfg.SourceStream()
	// Parents before children, decided by the checkpoint table: the same
	// table and consumer the commit writes.
	rc.CheckpointTable, rc.Consumer = cfg.CheckpointTable, cfg.Consumer
	rc.LeaseOwner, rc.LeaseDuration = cfg.LeaseOwner, cfg.LeaseDuration
	pages := kinesisio.Read(s, rc)
	var results beam.PCollection
	switch cfg.Stages {
	case Stage2:
		results = streaming.Stage2Pages(s, streaming.Stage2Config{Table: cfg.Table, Items: cfg.overflowItems(), Layout: cfg.Layout, Writer: cfg.Writer}, pages)
	default:
		sc := streaming.Stage1Config{Tenants: cfg.Tenants, SchemaStore: cfg.SchemaStore, SchemaRefresh: cfg.SchemaRefresh, StagedStream: cfg.StagedStream,
			Items: cfg.overflowItems(), Layout: cfg.Layout, Writer: cfg.Writer, Put: cfg.Put}
		if cfg.Stages != Stage1 {
			sc.Table = cfg.Table
		}
		results = streaming.Stage1Pages(s, sc, pages)
	}
	streaming.Commit(s, streaming.CommitConfig{Archive: cfg.Archive, Window: cfg.Window,
		CheckpointTable: cfg.CheckpointTable, Consumer: cfg.Consumer, LeaseOwner: cfg.LeaseOwner, Notify: cfg.Notify, Job: "stream"}, results)
}

// StreamConservation returns the equations the counters of a streaming run
// of stages keep once every window is committed. Stage 1: every event read
// is staged (archived), a customer error or a processing error of stage 1.
// Sinks: every staged event is in the nearline table (written, or merged
// with a same-key duplicate of its write) or a failed write, which is also
// a processing error: the event is archived and is a processing error of
// stage 2, so sink failures are subtracted from stage 1's processing
// errors. (Summary.Conserved, the file jobs' equation, holds for a
// streaming run only while no sink write fails.)
func StreamConservation(sum metrics.Summary, stages string) []metrics.Equation {
	written := metrics.Term{Label: "nearline written", N: sum[dynamodbio.NearlineWritten]}
	dups := metrics.Term{Label: "same-key duplicates", N: sum[dynamodbio.NearlineDuplicates]}
	if stages == Stage2 {
		return []metrics.Equation{{Total: metrics.Term{Label: "records read", N: sum[metrics.EventsIn]},
			Parts: []metrics.Term{written, dups, {Label: "processing errors", N: sum[metrics.ProcessingWritten]}}}}
	}
	failed := sum[dynamodbio.NearlineFailed]
	stage1 := sum.Events()
	stage1.Parts[2].N -= failed + sum[streaming.StagedStreamFailed] // processing errors
	eqs := []metrics.Equation{stage1}
	if stages != Stage1 {
		eqs = append(eqs, metrics.Equation{Total: metrics.Term{Label: "staged", N: sum[metrics.Staged]},
			Parts: []metrics.Term{written, dups, {Label: "failed", N: failed}}})
	}
	return eqs
}
