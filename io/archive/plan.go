package archive

import (
	"context"
	"sort"
	"strings"

	"github.com/fineo-io/ingest/io/blob"
)

// StagedFile is one file of the staged archive: its day (from the layout)
// and its size.
type StagedFile struct {
	Date string
	Path string // under the archive root
	Size int64
}

// Day is one staged day and its files, sorted by path.
type Day struct {
	Date  string
	Files []StagedFile
}

// Paths returns the day's file paths.
func (d Day) Paths() []string {
	out := make([]string, len(d.Files))
	for i, f := range d.Files {
		out[i] = f.Path
	}
	return out
}

// PlanDays lists the staged archive's days in [from, to] (YYYY-MM-DD,
// inclusive; "" = open) with their files: staged/date=D/<file>.avro, and
// staged/date=D/hour=HH/<file>.avro of older archives.
func PlanDays(ctx context.Context, archiveRoot, from, to string) ([]Day, error) {
	st, err := blob.Open(ctx, archiveRoot)
	if err != nil {
		return nil, err
	}
	objs, err := st.List(ctx, StagedDir+"/")
	if err != nil {
		return nil, err
	}
	byDate := map[string][]StagedFile{}
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Path, StagedDir+"/date=")
		if !ok || len(rest) < 10 || !strings.HasSuffix(o.Path, ".avro") {
			continue
		}
		d := rest[:10]
		if (from != "" && d < from) || (to != "" && d > to) {
			continue
		}
		byDate[d] = append(byDate[d], StagedFile{Date: d, Path: o.Path, Size: o.Size})
	}
	days := make([]Day, 0, len(byDate))
	for d, files := range byDate {
		sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
		days = append(days, Day{Date: d, Files: files})
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Date < days[j].Date })
	return days, nil
}
