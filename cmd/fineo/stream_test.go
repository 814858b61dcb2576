package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/fineo-io/ingest/internal/sampledata"
	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/transforms/streaming"
)

// sampleStreamLines returns the sample's lines that fit in a Kinesis record
// and the number of distinct valid events they hold (from the generator's
// ground truth: the one line left out is a too_large error).
func sampleStreamLines(t *testing.T) ([][]byte, int) {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "sample")
	var exp struct {
		Distinct int `json:"distinct_valid_events"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	lines, _, err := sampledata.KinesisLines(context.Background(), filepath.Join(dir, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	return lines, exp.Distinct
}

// nearlineCount scans the table: items, and distinct event ids.
func nearlineCount(t *testing.T, api *dynamodb.Client, table string) (items, ids int) {
	t.Helper()
	seen := map[string]bool{}
	items = testenv.ScanItems(t, api, table, dynamodbio.AttrEventID, func(it map[string]types.AttributeValue) {
		if v, ok := it[dynamodbio.AttrEventID].(*types.AttributeValueMemberS); ok {
			seen[v.Value] = true
		}
	})
	return items, len(seen)
}

// streamFixture is what a test of `fineo stream` runs on: the binary,
// clients of the stand-ins, a fresh raw stream, a table name (not created)
// and archive directory, and the sample's lines with its count of distinct
// valid events.
type streamFixture struct {
	bin, raw, table, archive string
	kin                      *kinesis.Client
	ddb                      *dynamodb.Client
	lines                    [][]byte
	distinct                 int
}

func newStreamFixture(t *testing.T, shards int) streamFixture {
	t.Helper()
	testenv.Kinesis(t)
	testenv.DynamoDB(t)
	f := streamFixture{bin: fineoBinary(t), kin: testenv.KinesisClient(t), raw: testenv.UniqueName(t, "raw"),
		table: testenv.UniqueName(t, "nearline"), archive: t.TempDir()}
	var err error
	if f.ddb, err = dynamodbio.NewClient(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.CreateStream(t, f.kin, f.raw, shards)
	f.lines, f.distinct = sampleStreamLines(t)
	return f
}

// produce puts lines into stream in batches of batch records, one batch
// every pause, until all are in. produced is closed then, halfway once
// half are in; the test waits for the producer when it ends.
func produce(t *testing.T, kin kinesisio.API, stream string, lines [][]byte, batch int, pause time.Duration) (produced, halfway <-chan struct{}) {
	done, half := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		defer close(done)
		halfOpen := true
		for i := 0; i < len(lines); i += batch {
			if i >= len(lines)/2 && halfOpen {
				close(half)
				halfOpen = false
			}
			end := min(i+batch, len(lines))
			recs := make([]kinesisio.PutRecord, 0, end-i)
			for j := i; j < end; j++ {
				recs = append(recs, kinesisio.PutRecord{Data: lines[j], PartitionKey: fmt.Sprintf("device-%d", j)})
			}
			if _, failed, err := kinesisio.PutRecords(context.Background(), kin, stream, recs, kinesisio.WriterOptions{}); err != nil || len(failed) > 0 {
				t.Errorf("put: %v (%d failed)", err, len(failed))
				return
			}
			time.Sleep(pause)
		}
	})
	return done, half
}

// rawArchived reads the raw archive under dir: every record's shard and
// sequence number, and the last sequence number of each shard.
func rawArchived(t *testing.T, dir string) (seen map[string]bool, last map[string]string) {
	t.Helper()
	seen, last = map[string]bool{}, map[string]string{}
	err := filepath.WalkDir(filepath.Join(dir, archive.RawDir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return archive.ReadRawFile(data, func(r *archive.RawRecord) error {
			seen[r.Shard+"@"+r.Sequence] = true
			if last[r.Shard] == "" || dynamodbio.SequenceLess(last[r.Shard], r.Sequence) {
				last[r.Shard] = r.Sequence
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen, last
}

// TestStreamKillRestart runs `fineo stream` as a user would, against
// kinesalite and dynalite: records keep arriving; the job is killed
// without warning (SIGKILL) mid-stream and started again, then stopped
// with SIGTERM (a clean stop: exit 0), then run once more until it has
// caught up. Every valid event must be in the nearline table exactly once,
// the raw archive must hold every record, and the checkpoint table must
// end at each shard's last record.
func TestStreamKillRestart(t *testing.T) {
	f := newStreamFixture(t, 4)
	bin, kin, ddb, raw, table, archiveDir, lines, distinct := f.bin, f.kin, f.ddb, f.raw, f.table, f.archive, f.lines, f.distinct
	ctx := context.Background()
	var err error

	// Producer: batches of 200 records every 150 ms.
	produced, _ := produce(t, kin, raw, lines, 200, 150*time.Millisecond)

	args := []string{"stream", "--raw-stream", raw, "--table", table, "--archive", archiveDir,
		"--schemas", filepath.Join("..", "..", "testdata", "sample", "schemas"),
		"--window", "2s", "--poll", "100ms", "--discover", "1s", "--log-level", "warn", "--create-table",
		"--lease-duration", "3s"} // the killed run's leases lapse in 3s
	start := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, append(append([]string{}, args...), extra...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	waitItems := func(atLeast int, limit time.Duration) int {
		deadline := time.Now().Add(limit)
		for {
			n := 0
			if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}); err == nil {
				n, _ = nearlineCount(t, ddb, table)
			}
			if n >= atLeast || time.Now().After(deadline) {
				return n
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Run 1: killed without warning once part of the stream is in.
	cmd, out := start()
	n := waitItems(1000, 90*time.Second)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if n < 1000 {
		t.Fatalf("run 1: only %d items before the kill; output:\n%s", n, out)
	}
	t.Logf("run 1 killed with %d items in the table", n)

	// Run 2: resumes from the checkpoints; a SIGTERM stops it cleanly.
	cmd, out = start()
	<-produced
	waitItems(distinct, 90*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run 2: SIGTERM should stop cleanly with exit 0, got %v; output:\n%s", err, out)
	}
	if !strings.Contains(out.String(), "shard(s) resumed") || !strings.Contains(out.String(), "stopped after") {
		t.Errorf("run 2 output:\n%s", out)
	}

	// Run 3: catches up on what run 2 had not archived yet, and ends on idle.
	cmd, out = start("--stop-after-idle", "3s")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run 3: %v; output:\n%s", err, out)
	}

	// Each run that ran writes its per-tenant usage beside the archive.
	if usage, _ := filepath.Glob(filepath.Join(archiveDir, "_usage", "stream-*.json")); len(usage) < 2 {
		t.Errorf("usage files: %v; want one per completed or stopped run", usage)
	}
	if !strings.Contains(out.String(), "conservation: events_in") || strings.Contains(out.String(), "MISMATCH") {
		t.Errorf("run 3 output lacks a holding conservation check:\n%s", out)
	}

	items, ids := nearlineCount(t, ddb, table)
	if items != distinct || ids != distinct {
		t.Errorf("nearline: %d items, %d distinct event ids; want exactly %d of each", items, ids, distinct)
	}
	// The raw archive holds every record (some twice: what a killed run
	// had archived but not checkpointed is archived again).
	seen, last := rawArchived(t, archiveDir)
	if len(seen) != len(lines) {
		t.Errorf("raw archive: %d distinct records, want %d", len(seen), len(lines))
	}
	cps := &dynamodbio.Checkpoints{API: ddb, Table: table + "-checkpoints", Consumer: "fineo-stream"}
	committed, err := cps.Load(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	for shard, seq := range last {
		if committed[shard] != seq {
			t.Errorf("checkpoint of %s = %q, want %q", shard, committed[shard], seq)
		}
	}

	// fineo query shows what was written: pick one archived staged event.
	var ev struct {
		tenant, metric string
		ts             int64
	}
	filepath.WalkDir(filepath.Join(archiveDir, archive.StagedDir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || ev.tenant != "" {
			return err
		}
		data, _ := os.ReadFile(path)
		return archive.ReadStagedFile(data, func(e *records.Event) error {
			if ev.tenant == "" {
				ev.tenant, ev.metric, ev.ts = e.Tenant, e.Metric, e.Timestamp
			}
			return nil
		})
	})
	qout, qerr, code := runFineo(t, bin, "query", "--table", table, "--tenant", ev.tenant, "--metric", ev.metric,
		"--from", fmt.Sprint(ev.ts), "--to", fmt.Sprint(ev.ts+1))
	if code != 0 || !strings.Contains(qout, `"tenant":"`+ev.tenant+`"`) {
		t.Errorf("fineo query: exit %d\n%s\n%s", code, qout, qerr)
	}
}

// TestPrintStreamConservation pins the conservation lines of each stage
// setting, with sink failures counted as processing errors of stage 1.
func TestPrintStreamConservation(t *testing.T) {
	sum := metrics.Summary{metrics.EventsIn: 10, metrics.StagedWritten: 7, metrics.CustomerWritten: 2,
		metrics.ProcessingWritten: 4, metrics.Staged: 7, dynamodbio.NearlineWritten: 4,
		dynamodbio.NearlineDuplicates: 1, dynamodbio.NearlineFailed: 2, streaming.StagedStreamFailed: 1}
	counters := func() string {
		var b bytes.Buffer
		sum.PrintCounters(&b)
		return b.String()
	}()
	for _, c := range []struct{ stages, want string }{
		{pipelines.StagesAll, "  conservation: events_in 10 = staged 7 + customer errors 2 + processing errors 1: ok\n" +
			"  conservation: staged 7 = nearline written 4 + same-key duplicates 1 + failed 2: ok\n"},
		{pipelines.Stage1, "  conservation: events_in 10 = staged 7 + customer errors 2 + processing errors 1: ok\n"},
		{pipelines.Stage2, "  conservation: records read 10 = nearline written 4 + same-key duplicates 1 + processing errors 4: MISMATCH\n"},
	} {
		var out bytes.Buffer
		printStreamConservation(&out, sum, c.stages)
		if got := strings.TrimPrefix(out.String(), counters); got != c.want {
			t.Errorf("stages %s:\n%s\nwant\n%s", c.stages, got, c.want)
		}
	}
}
