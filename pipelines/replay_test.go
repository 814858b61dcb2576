package pipelines_test

import (
	"context"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/runners"
)

// TestReplayStaged replays the staged archive into a table, then again into
// a second (dark-launch) table: both hold exactly the distinct valid events,
// and a second replay into the first table changes nothing.
func TestReplayStaged(t *testing.T) {
	ctx := context.Background()
	exp := loadExpected(t)
	archiveDir := ingestSample(t)
	testenv.DynamoDB(t)
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	days, err := archive.PlanDays(ctx, archiveDir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	replay := func(table string) metrics.Summary {
		p, s := beam.NewPipelineWithRoot()
		pipelines.ReplayStaged(s, pipelines.ReplayStagedConfig{Archive: archiveDir, Days: days, Write: dynamodbio.WriteConfig{Table: table}})
		pr, err := runners.Run(ctx, runners.Bounded, p)
		if err != nil {
			t.Fatal(err)
		}
		return metrics.FromResult(pr)
	}
	count := func(table string) int32 { return int32(testenv.ScanItems(t, client, table, dynamodbio.AttrPK, nil)) }
	live, dark := testenv.UniqueName(t, "live"), testenv.UniqueName(t, "dark")
	for _, table := range []string{live, dark} {
		if err := dynamodbio.CreateTable(ctx, client, table, dynamodbio.LayoutOptions{}); err != nil {
			t.Fatal(err)
		}
		sum := replay(table)
		if sum[archive.StagedRead] != int64(exp.ValidEvents) ||
			sum[dynamodbio.NearlineWritten]+sum[dynamodbio.NearlineDuplicates] != int64(exp.ValidEvents) || sum[dynamodbio.NearlineFailed] != 0 {
			t.Fatalf("replay into %s: %v", table, sum)
		}
	}
	if a, b := count(live), count(dark); a != int32(exp.DistinctValid) || b != a {
		t.Errorf("tables hold %d and %d items, want %d each", a, b, exp.DistinctValid)
	}
	replay(live)
	if a := count(live); a != int32(exp.DistinctValid) {
		t.Errorf("second replay left %d items, want %d (replays overwrite by key)", a, exp.DistinctValid)
	}
}
