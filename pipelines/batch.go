package pipelines

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/lake"
	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/lakebuild"
)

// Batch counters (see package lakebuild).
const (
	StagedRead      = lakebuild.StagedRead
	Duplicates      = lakebuild.Duplicates
	LakeRows        = lakebuild.LakeRows
	LakePartitions  = lakebuild.LakePartitions
	BackupItems     = lakebuild.BackupItems
	UnreadableFiles = lakebuild.UnreadableFiles
	Unbound         = lakebuild.Unbound
	PartitionsDone  = lakebuild.PartitionsDone
)

// BatchConfig configures the batch pipeline.
type BatchConfig struct {
	Archive string           // staged archive root (read) and error archive root (write)
	Lake    string           // lake root
	Backup  string           // backup root; "" for none
	Tenants []*schema.Tenant // current schemas
	Days    []archive.Day    // from archive.PlanDays
	Run     string           // run id: names the schema-change report
	Parquet lake.Options
	Items   dynamodbio.ItemOptions
	Budget  int64 // memory budget of one partition; 0: lakebuild.DefaultBudget
	Quiet   bool  // no progress lines on stderr
}

// Batch adds the batch graph: the planned days' staged files, spread by a
// Reshuffle → lakebuild.Build (each file's index → one element per lake
// partition → Parquet + backup + schema-change report) → unreadable staged
// files and unbound records as processing errors in the error archive.
func Batch(s beam.Scope, cfg BatchConfig) {
	s = s.Scope("Batch")
	var files []archive.StagedFile
	for _, d := range cfg.Days {
		files = append(files, d.Files...)
	}
	staged := beam.Reshuffle(s, beam.CreateList(s, files))
	errs := lakebuild.Build(s, lakebuild.BuildConfig{
		Archive: cfg.Archive, Lake: cfg.Lake, Backup: cfg.Backup, Tenants: cfg.Tenants, Run: cfg.Run,
		Parquet: cfg.Parquet, Items: cfg.Items, Budget: cfg.Budget, Quiet: cfg.Quiet,
	}, staged)
	archive.WriteErrors(s, cfg.Archive, archive.WriteOptions{}, errs)
}

// ReportPath is where a run's schema-change report lands in the lake.
func ReportPath(run string) string { return lakebuild.ReportPath(run) }
