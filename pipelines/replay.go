package pipelines

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
)

// ReplayStagedConfig configures a replay of the staged archive into the
// nearline table (stage 2 again), e.g. after a table was lost or to
// dark-launch a new table beside the live one.
type ReplayStagedConfig struct {
	Archive string        // staged archive root
	Errors  string        // where processing errors go (default: Archive)
	Days    []archive.Day // from archive.PlanDays
	Write   dynamodbio.WriteConfig
}

// ReplayStaged adds the graph: staged files → blocks → nearline table;
// failed writes and unreadable files → processing errors.
func ReplayStaged(s beam.Scope, cfg ReplayStagedConfig) {
	s = s.Scope("ReplayStaged")
	var files []string
	for _, d := range cfg.Days {
		files = append(files, d.Paths()...)
	}
	staged, readErrs := archive.ReadStagedFiles(s, cfg.Archive, files)
	writeErrs := dynamodbio.Write(s, cfg.Write, staged)
	errRoot := cfg.Errors
	if errRoot == "" {
		errRoot = cfg.Archive
	}
	archive.WriteErrors(s, errRoot, archive.WriteOptions{}, beam.Flatten(s, readErrs, writeErrs))
}
