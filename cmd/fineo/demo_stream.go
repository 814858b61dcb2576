package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fineo-io/ingest/internal/sampledata"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// standinsRunning says whether the SDK points at Kinesis and DynamoDB
// endpoints on this host (scripts/standins.sh): the demo's streaming part
// never creates streams or tables in a real AWS account.
func standinsRunning() bool {
	for _, v := range []string{"AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_DYNAMODB"} {
		u, err := url.Parse(os.Getenv(v))
		if err != nil || u.Host == "" {
			return false
		}
		switch u.Hostname() {
		case "127.0.0.1", "localhost", "::1":
		default:
			return false
		}
	}
	return true
}

const standinsHint = `
Streaming part skipped: it needs local Kinesis and DynamoDB stand-ins. Start them and run the demo again:
  npm ci                                  # once: kinesalite and dynalite from the committed lock file
  eval "$(scripts/standins.sh start)"     # 127.0.0.1 only; prints the AWS_* variables it exports
  go run ./cmd/fineo demo
  scripts/standins.sh stop
`

// demoStream puts the sample into a fresh Kinesis stream (2 shards) and
// runs the streaming job over it until it has caught up: raw stream →
// stage 1 → nearline table, with windowed raw/staged/error archives.
func demoStream(ctx context.Context, w io.Writer, sample, out string) error {
	archiveDir := filepath.Join(out, "stream-archive")
	if err := os.RemoveAll(archiveDir); err != nil {
		return err
	}
	kc, err := kinesisio.NewClient(ctx)
	if err != nil {
		return err
	}
	stream := "fineo-demo-" + time.Now().UTC().Format("20060102-150405")
	table := "fineo-demo-nearline"
	if err := kinesisio.CreateStream(ctx, kc, stream, 2); err != nil {
		return err
	}
	lines, _, err := sampledata.KinesisLines(ctx, filepath.Join(sample, "raw"))
	if err != nil {
		return err
	}
	recs := make([]kinesisio.PutRecord, len(lines))
	for i, l := range lines {
		recs[i] = kinesisio.PutRecord{Data: l, PartitionKey: fmt.Sprintf("device-%d", i%97)}
	}
	if _, failed, err := kinesisio.PutRecords(ctx, kc, stream, recs, kinesisio.WriterOptions{}); err != nil || len(failed) > 0 {
		return fmt.Errorf("putting the sample into %s: %v (%d failed)", stream, err, len(failed))
	}
	fmt.Fprintf(w, "\nFineo demo: streaming. Put %d sample records into Kinesis stream %s (%s)\n\n", len(recs), stream, os.Getenv("AWS_ENDPOINT_URL_KINESIS"))

	st, err := schema.OpenStore(ctx, filepath.Join(sample, "schemas"))
	if err != nil {
		return err
	}
	tenants, err := schema.LoadAll(ctx, st)
	if err != nil {
		return err
	}
	cfg := pipelines.StreamConfig{
		RawStream: stream, Table: table, Archive: archiveDir, Tenants: tenants,
		Read:            kinesisio.ReadConfig{StopAfterIdle: 3 * time.Second},
		Window:          10 * time.Second,
		CheckpointTable: table + "-checkpoints", Consumer: "fineo-demo",
	}
	if _, err := runStream(ctx, cfg, true, nil, w); err != nil {
		return err
	}
	if err := describeArchive(ctx, io.Discard, archiveDir); err != nil {
		return err
	}
	// Show one tenant's metric for the hour of its first archived event.
	var ev *records.Event
	filepath.WalkDir(filepath.Join(archiveDir, archive.StagedDir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || ev != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return archive.ReadStagedFile(data, func(e *records.Event) error {
			if ev == nil {
				ev = e
			}
			return nil
		})
	})
	fmt.Fprintf(w, "\nThe stream's archive is under %s (raw/ byte for byte, staged/, errors/), one file per partition per window.\n", archiveDir)
	if ev == nil {
		return nil
	}
	from := time.UnixMilli(ev.Timestamp).UTC().Truncate(time.Hour)
	args := []string{"--table", table, "--tenant", ev.Tenant, "--metric", ev.Metric,
		"--from", from.Format(time.RFC3339), "--to", from.Add(time.Hour).Format(time.RFC3339), "--format", "table", "--limit", "5"}
	fmt.Fprintf(w, "\nWhat the nearline table serves (DynamoDB Query, no scan):\n  fineo query %s\n\n", strings.Join(args, " "))
	return runQuery(ctx, args, w)
}
