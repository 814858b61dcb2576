package pipelines_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/pipelines"
	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/transforms/streaming"
)

// faultChain starts one testenv.FaultProxy per layer of rules in front of
// target, the first layer outermost, and returns them in that order. One
// rule kind per layer lets a test tell from Injected that every rule
// injected (Injected counts per operation, not per rule); an inner layer
// counts only the requests the outer ones let through.
func faultChain(t *testing.T, target string, layers ...[]testenv.FaultRule) []*testenv.Proxy {
	t.Helper()
	ps := make([]*testenv.Proxy, len(layers))
	for i := len(layers) - 1; i >= 0; i-- {
		ps[i] = testenv.FaultProxy(t, target, layers[i]...)
		target = ps[i].URL
	}
	return ps
}

// throughProxies points the pipeline's Kinesis and DynamoDB clients (made
// in the DoFns' Setup from the environment) at the proxies given (nil:
// direct); the test's own clients were made before and stay direct. It
// also asks for no SDK retries (AWS_MAX_ATTEMPTS=1), so that each injected
// fault reaches Fineo's own retry loops and counters. (The SDK ignores
// AWS_MAX_ATTEMPTS when given a retryer, as awsconf.Load gives it, so
// awsconf.Load reads the variable itself and sets the retryer's attempts.)
func throughProxies(t *testing.T, kin, ddb *testenv.Proxy) {
	t.Helper()
	if kin != nil {
		t.Setenv("AWS_ENDPOINT_URL_KINESIS", kin.URL)
	}
	if ddb != nil {
		t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb.URL)
	}
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
}

// stopFaultsAfter turns the proxies' injection off if the run is still
// going after d, so that a run the faults slow down beyond reason ends and
// fails on the test's assertions instead of on its timeout. Call the
// returned func when the run ended: it says whether injection was stopped.
func stopFaultsAfter(d time.Duration, ps ...*testenv.Proxy) (stopped func() bool) {
	var fired sync.WaitGroup
	fired.Add(1)
	timer := time.AfterFunc(d, func() {
		for _, p := range ps {
			p.SetEnabled(false)
		}
		fired.Done()
	})
	return func() bool {
		if timer.Stop() {
			return false
		}
		fired.Wait()
		return true
	}
}

// newStagedStream creates a staged stream beside e's raw stream.
func newStagedStream(t *testing.T, e *streamEnv, shards int) string {
	t.Helper()
	name := testenv.UniqueName(t, "staged")
	testenv.CreateStream(t, e.kin, name, shards)
	return name
}

// stagedStream is what a staged stream holds, read back directly.
type stagedStream struct {
	records int             // Kinesis records
	lineage map[string]bool // distinct staged events by lineage
	ids     map[string]bool // distinct event ids
	last    map[string]string
	shards  []kinesisio.Shard
}

// readStagedStream reads every shard of a staged stream from its start to
// its tip and decodes each record as one staged event of rawStream.
func readStagedStream(t *testing.T, api kinesisio.API, stream, rawStream string) stagedStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shards, err := kinesisio.ListShards(ctx, api, stream)
	if err != nil {
		t.Fatal(err)
	}
	s := stagedStream{lineage: map[string]bool{}, ids: map[string]bool{}, last: map[string]string{}, shards: shards}
	for _, sh := range shards {
		r := kinesisio.NewShardReader(api, stream, sh.ID, kinesisio.Position{}, kinesisio.ReaderOptions{MinInterval: -1})
		for {
			page, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range page.Records {
				ev, rest, err := archive.DecodeEvent(rec.Data)
				if err != nil || len(rest) != 0 {
					t.Fatalf("staged stream %s/%s@%s: not one staged event (%v, %d bytes left)", stream, sh.ID, rec.Sequence, err, len(rest))
				}
				if ev.Source.Stream != rawStream || ev.Source.Sequence == "" {
					t.Fatalf("staged stream record without raw-stream lineage: %+v", ev.Source)
				}
				s.records++
				s.lineage[fmt.Sprintf("%s#%d", ev.Source, ev.Source.Index)] = true
				s.ids[ev.ID] = true
				s.last[sh.ID] = rec.Sequence
			}
			if page.ShardClosed || len(page.Records) == 0 {
				break
			}
		}
	}
	return s
}

// checkStagedStream checks that s holds every valid event of the sample.
func checkStagedStream(t *testing.T, s stagedStream, exp expected) {
	t.Helper()
	if len(s.lineage) != exp.ValidEvents || len(s.ids) != exp.DistinctValid {
		t.Errorf("staged stream: %d events by lineage, %d distinct ids (%d records); want %d and %d",
			len(s.lineage), len(s.ids), s.records, exp.ValidEvents, exp.DistinctValid)
	}
}

// checkSinkCounters checks the counters of a stage-1 run whose archive
// writes all succeeded: every input event is archived once as staged or
// customer error, and every staged event went to each sink (written,
// merged with an equal event of the same write, or failed).
//
// metrics.Summary.Conserved (events_in = staged_written +
// customer_errors_written + processing_errors_written) holds only while no
// sink write fails: the streaming job archives every staged event AND
// turns a failed nearline or staged-stream write into a processing error,
// so such an event is counted twice. The equations that hold for streaming
// are pipelines.StreamConservation's: events_in = staged_written +
// customer_errors_written + processing_errors_written - nearline_failed -
// staged_stream_failed (a raw record that cannot be archived adds one more
// processing error per record), and, with the nearline table, staged =
// nearline written + duplicates + failed.
func checkSinkCounters(t *testing.T, sum metrics.Summary, exp expected, nearline, stagedStream bool) {
	t.Helper()
	if sum[metrics.EventsIn] != int64(exp.TotalEvents) {
		t.Errorf("events_in = %d, want %d", sum[metrics.EventsIn], exp.TotalEvents)
	}
	if sum[metrics.StagedWritten]+sum[metrics.CustomerWritten] != sum[metrics.EventsIn] || sum[metrics.Staged] != int64(exp.ValidEvents) {
		t.Errorf("archive does not hold every event once: %v", sum)
	}
	stages := pipelines.Stage1
	if nearline {
		stages = pipelines.StagesAll
	}
	eqs := pipelines.StreamConservation(sum, stages)
	if !eqs[0].Holds() || sum[metrics.ProcessingErrors] != sum[dynamodbio.NearlineFailed]+sum[streaming.StagedStreamFailed] {
		t.Errorf("streaming counters do not conserve (%s): %v", eqs[0], sum)
	}
	if nearline && !eqs[1].Holds() {
		t.Errorf("nearline: written + duplicates + failed != staged (%s): %v", eqs[1], sum)
	}
	if stagedStream && sum[streaming.StagedStreamWritten]+sum[streaming.StagedStreamFailed] < sum[metrics.Staged] {
		t.Errorf("staged stream: written + failed < staged: %v", sum)
	}
	if sum[streaming.PagesProcessed] == 0 || sum[streaming.PagesProcessed] != sum[streaming.PagesCommitted] {
		t.Errorf("pages: %d processed, %d committed", sum[streaming.PagesProcessed], sum[streaming.PagesCommitted])
	}
}

// TestStreamFaults runs the fused pipeline, with a staged stream, through
// fault-injecting proxies in front of Kinesis and DynamoDB and an S3
// archive that fails the first staged-file uploads: nothing may be lost or
// doubled, and every fault must have been injected and retried.
func TestStreamFaults(t *testing.T) {
	e := newStreamEnv(t, 2)
	lines, exp := sampleRecords(t)
	staged := newStagedStream(t, e, 2)
	putLines(t, e.kin, e.raw, lines, 0)

	// The first staged files each fail their first uploads.
	const failFiles, failPuts = 2, 3
	var mu sync.Mutex
	puts := map[string]int{}
	bucket := testenv.S3Faulty(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/archive/staged/") {
				mu.Lock()
				if _, ok := puts[r.URL.Path]; ok || len(puts) < failFiles {
					puts[r.URL.Path]++
				}
				fail := puts[r.URL.Path] > 0 && puts[r.URL.Path] <= failPuts
				mu.Unlock()
				if fail {
					w.Header().Set("Content-Type", "application/xml")
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	kin := faultChain(t, os.Getenv("AWS_ENDPOINT_URL_KINESIS"),
		[]testenv.FaultRule{
			{Op: "GetRecords", Fault: testenv.Throttle, Every: 3, Limit: 15},
			{Op: "PutRecords", Fault: testenv.Throttle, Every: 4, Limit: 10},
		},
		[]testenv.FaultRule{
			{Op: "GetRecords", Fault: testenv.ExpiredIterator, Every: 5, Limit: 10},
			{Op: "PutRecords", Fault: testenv.PartialFailure, Every: 3, Limit: 20},
		})
	ddb := faultChain(t, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"),
		[]testenv.FaultRule{{Op: "BatchWriteItem", Fault: testenv.Throttle, Every: 4, Limit: 12}},
		[]testenv.FaultRule{{Op: "BatchWriteItem", Fault: testenv.Unprocessed, Every: 3, Limit: 20}})
	throughProxies(t, kin[0], ddb[0])

	cfg := e.cfg
	cfg.StagedStream = staged
	cfg.Archive = bucket + "/archive"
	// Budgets that outlast the bounded faults: up to half of the calls of
	// an op fail while the rules inject, and calls of concurrent writers
	// interleave, so the default 8 attempts could by chance all meet a
	// fault (that case is TestStreamRetriesExhausted's).
	cfg.Writer = dynamodbio.WriterOptions{MaxAttempts: 20, BaseDelay: 5 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	cfg.Put = kinesisio.WriterOptions{MaxAttempts: 20, BaseDelay: 5 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	sum := e.run(t, cfg)
	t.Logf("counters: %v", sum)

	a := readStreamArchive(t, cfg.Archive)
	checkStream(t, e, lines, exp, a)
	checkSinkCounters(t, sum, exp, true, true)
	if !sum.Conserved() || sum[metrics.ProcessingErrors] != 0 || sum[dynamodbio.NearlineFailed] != 0 || sum[streaming.StagedStreamFailed] != 0 {
		t.Errorf("writes failed for good: %v", sum)
	}
	checkStagedStream(t, readStagedStream(t, e.kin, staged, e.raw), exp)

	for _, c := range []struct {
		p        *testenv.Proxy
		op, rule string
	}{
		{kin[0], "GetRecords", "Throttle"}, {kin[0], "PutRecords", "Throttle"},
		{kin[1], "GetRecords", "ExpiredIterator"}, {kin[1], "PutRecords", "PartialFailure"},
		{ddb[0], "BatchWriteItem", "Throttle"}, {ddb[1], "BatchWriteItem", "Unprocessed"},
	} {
		t.Logf("%s %s: %d injected", c.op, c.rule, c.p.Injected(c.op))
		if c.p.Injected(c.op) == 0 {
			t.Errorf("no %s injected into %s", c.rule, c.op)
		}
	}
	for _, name := range []string{kinesisio.KinesisThrottles, dynamodbio.NearlineThrottles, dynamodbio.NearlineRetries, streaming.StagedStreamRetries} {
		if sum[name] == 0 {
			t.Errorf("%s = 0 under injected faults", name)
		}
	}
	// The failed uploads were retried by the commit (and then succeeded:
	// checkStream found every staged event).
	mu.Lock()
	defer mu.Unlock()
	if len(puts) != failFiles || sum[metrics.WriteRetries] < failFiles {
		t.Errorf("uploads of the failed staged files: %v; write_retries = %d, want at least %d", puts, sum[metrics.WriteRetries], failFiles)
	}
}

// TestStreamRetriesExhausted throttles every BatchWriteItem: each valid
// event must end as a write_failed processing error (nothing in the
// table, nothing lost), and the checkpoints must still advance.
func TestStreamRetriesExhausted(t *testing.T) {
	e := newStreamEnv(t, 2)
	lines, exp := sampleRecords(t)
	putLines(t, e.kin, e.raw, lines, 0)
	ddb := faultChain(t, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"), []testenv.FaultRule{{Op: "BatchWriteItem", Fault: testenv.Throttle}})
	throughProxies(t, nil, ddb[0])

	cfg := e.cfg
	cfg.Writer = dynamodbio.WriterOptions{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	const budget = 30 * time.Second
	stopped := stopFaultsAfter(budget, ddb[0])
	start := time.Now()
	sum := e.run(t, cfg)
	if stopped() {
		t.Errorf("throttling stopped after %v: the run had not turned every write into a processing error yet "+
			"(%d BatchWriteItem calls throttled; it ran %v)", budget, ddb[0].Injected("BatchWriteItem"), time.Since(start).Round(time.Second))
	}
	t.Logf("counters: %v (Conserved: %v)", sum, sum.Conserved())
	a := readStreamArchive(t, e.archive)

	if _, items := nearlineIDs(t, e.ddb, e.table, nil); items != 0 {
		t.Errorf("nearline table holds %d items; every write was throttled", items)
	}
	stagedLineage := map[string]bool{}
	for _, ev := range a.staged {
		stagedLineage[fmt.Sprintf("%s#%d", ev.Source, ev.Source.Index)] = true
	}
	// The processing errors, collapsed by lineage (a page processed twice
	// fails twice).
	procIDs := map[string]bool{}
	procLineage := map[string]bool{}
	var customer []*archive.ErrorRecord
	for _, r := range a.errs {
		if r.Class != string(records.Processing) {
			customer = append(customer, r)
			continue
		}
		raw, err := r.RawBytes()
		var ev struct {
			ID     string          `json:"event_id"`
			Source records.Lineage `json:"source"`
		}
		if err == nil {
			err = json.Unmarshal(raw, &ev)
		}
		if err != nil || r.Kind != records.WriteFailed.String() || r.Stage != "stage2" || r.Events != 1 ||
			!strings.Contains(r.Message, e.table) || ev.ID == "" || ev.Source != r.Source {
			t.Fatalf("processing error is not a replayable write_failed of an event: %+v (%v)", r, err)
		}
		procIDs[ev.ID] = true
		procLineage[fmt.Sprintf("%s#%d", r.Source, r.Source.Index)] = true
	}
	for l := range procLineage {
		if !stagedLineage[l] {
			t.Fatalf("processing error for %s, which is no staged event", l)
		}
	}
	// Equal events within one write are merged first (nearline_duplicates):
	// those fail as one item, one record; every distinct event fails.
	if len(procIDs) != exp.DistinctValid || len(procLineage)+int(sum[dynamodbio.NearlineDuplicates]) != exp.ValidEvents {
		t.Errorf("processing errors: %d distinct ids, %d events (+%d merged duplicates); want %d ids, %d events",
			len(procIDs), len(procLineage), sum[dynamodbio.NearlineDuplicates], exp.DistinctValid, exp.ValidEvents)
	}
	checkSinkCounters(t, sum, exp, true, false)
	if sum[dynamodbio.NearlineWritten] != 0 || sum[dynamodbio.NearlineFailed] != int64(len(procLineage)) ||
		sum[metrics.ProcessingWritten] != sum[dynamodbio.NearlineFailed] || sum[dynamodbio.NearlineThrottles] == 0 {
		t.Errorf("nearline counters: %v; want all %d distinct writes failed and archived", sum, len(procLineage))
	}
	if ddb[0].Injected("BatchWriteItem") < 2*len(procLineage)/dynamodbio.MaxBatch {
		t.Errorf("only %d BatchWriteItem calls throttled", ddb[0].Injected("BatchWriteItem"))
	}

	// Recover the table from the staged archive (what `fineo replay
	// --stage staged` does), without the proxy; then the rest of the run —
	// raw, staged and customer-error archive, checkpoints at the last
	// record of every shard — must check like a run without faults.
	layout, err := dynamodbio.OpenLayout(context.Background(), e.ddb, e.table, dynamodbio.LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]map[string]types.AttributeValue, 0, len(a.staged))
	for _, ev := range a.staged {
		it := dynamodbio.Item(ev, cfg.Items)
		if err := layout.Place(context.Background(), it, ""); err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	if _, failed, err := dynamodbio.WriteItems(context.Background(), e.ddb, e.table, items, dynamodbio.WriterOptions{}); err != nil || len(failed) > 0 {
		t.Fatalf("replaying the staged archive: %v (%d failed)", err, len(failed))
	}
	a.errs = customer
	checkStream(t, e, lines, exp, a)
}

// TestStreamReshard splits one shard and merges two while the job runs:
// every record is read once, in order (children after their parents), and
// every shard, closed parents included, is checkpointed at its last record.
func TestStreamReshard(t *testing.T) {
	e := newStreamEnv(t, 2)
	lines, exp := sampleRecords(t)
	half := len(lines) / 2
	putLines(t, e.kin, e.raw, lines[:half], 0)

	cfg := e.cfg
	// Long enough for the resharding below to happen before the parents
	// stop on idle (a parent stopped on idle stops its children unread).
	cfg.Read.StopAfterIdle = 5 * time.Second
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := reshardWhileRunning(e); err != nil {
			t.Error(err)
			return
		}
		putLines(t, e.kin, e.raw, lines[half:], half)
	})
	sum := e.run(t, cfg)
	wg.Wait()
	t.Logf("counters: %v", sum)

	a := readStreamArchive(t, e.archive)
	checkStream(t, e, lines, exp, a)
	checkSinkCounters(t, sum, exp, true, false)
	if sum[metrics.ProcessingErrors] != 0 {
		t.Errorf("processing errors: %d", sum[metrics.ProcessingErrors])
	}

	shards, err := kinesisio.ListShards(context.Background(), e.kin, e.raw)
	if err != nil {
		t.Fatal(err)
	}
	first, last := rawWindows(t, a.files)
	var children []string
	for _, s := range shards {
		if s.ParentID == "" {
			continue
		}
		if _, ok := first[s.ID]; !ok {
			continue // closed before any record reached it
		}
		children = append(children, s.ID)
		t.Logf("child %s (parents %s %s): windows %v..%v", s.ID, s.ParentID, s.AdjacentParentID, first[s.ID].Format("15:04"), last[s.ID].Format("15:04"))
		for _, p := range []string{s.ParentID, s.AdjacentParentID} {
			if pl, ok := last[p]; ok && first[s.ID].Before(pl) {
				t.Errorf("child %s archived from window %v, before the last window %v of its parent %s", s.ID, first[s.ID], pl, p)
			}
		}
	}
	// The split's lower child and the merged shard take the second half.
	if len(shards) != 5 || len(children) != 2 {
		t.Errorf("%d shards, %d children with records (%v); want 5 and 2", len(shards), len(children), children)
	}
	// Every closed shard is recorded as ended: what lets its children be
	// read by another process, or after a restore.
	cps := &dynamodbio.Checkpoints{API: e.ddb, Table: e.checkpoints, Consumer: cfg.Consumer}
	for _, s := range shards {
		ended, err := cps.Ended(context.Background(), e.raw, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if closed := s.EndSeq != ""; ended != closed {
			t.Errorf("shard %s: closed %v, ended in the checkpoint table %v", s.ID, closed, ended)
		}
	}
}

// reshardWhileRunning waits until the job has written to the nearline
// table, then splits the first shard of e's raw stream at its middle and
// merges the split's upper child with the next shard.
func reshardWhileRunning(e *streamEnv) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		res, err := e.ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(e.table), Select: "COUNT",
			FilterExpression: aws.String("attribute_exists(event_id)")}) // events, not the table's layout records
		if err != nil {
			return err
		}
		if res.Count > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing in the nearline table: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return testenv.SplitAndMerge(ctx, e.kin, e.raw)
}

// rawFileName is a raw-archive file: <window start>_<stream>_<shard>_<first sequence>-<hash of the last>.avro.
var rawFileName = regexp.MustCompile(`^(\d{8}T\d{6}Z)_.*_(shardId-\d+)_(\d+)-[0-9a-f]{8}\.avro$`)

// rawWindows returns the first and the last archive window of each shard
// from the names of the raw files.
func rawWindows(t *testing.T, files []string) (first, last map[string]time.Time) {
	t.Helper()
	first, last = map[string]time.Time{}, map[string]time.Time{}
	for _, f := range files {
		if !strings.HasPrefix(f, archive.RawDir+"/") {
			continue
		}
		m := rawFileName.FindStringSubmatch(path.Base(f))
		if m == nil {
			t.Fatalf("raw file %s is not named <window>_<stream>_<shard>_<sequence>.avro", f)
		}
		w, err := time.Parse("20060102T150405Z", m[1])
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := first[m[2]]; !ok || w.Before(f) {
			first[m[2]] = w
		}
		if l, ok := last[m[2]]; !ok || w.After(l) {
			last[m[2]] = w
		}
	}
	return first, last
}

// TestStreamStagesSplit runs stage 1 (raw stream → staged stream) and then
// stage 2 (staged stream → nearline table) as separate jobs.
func TestStreamStagesSplit(t *testing.T) {
	e := newStreamEnv(t, 2)
	lines, exp := sampleRecords(t)
	staged := newStagedStream(t, e, 2)
	putLines(t, e.kin, e.raw, lines, 0)

	s1 := e.cfg
	s1.Stages, s1.StagedStream, s1.Consumer = pipelines.Stage1, staged, "s1"
	sum1 := e.run(t, s1)
	t.Logf("stage 1 counters: %v", sum1)
	checkSinkCounters(t, sum1, exp, false, true)
	if !sum1.Conserved() || sum1[metrics.ProcessingErrors] != 0 || sum1[dynamodbio.NearlineWritten] != 0 {
		t.Errorf("stage 1 counters: %v", sum1)
	}
	if _, items := nearlineIDs(t, e.ddb, e.table, nil); items != 0 {
		t.Errorf("stage 1 alone wrote %d items to the nearline table", items)
	}
	ss := readStagedStream(t, e.kin, staged, e.raw)
	checkStagedStream(t, ss, exp)

	s2 := e.cfg
	s2.Stages, s2.StagedStream, s2.Consumer, s2.Archive = pipelines.Stage2, staged, "s2", t.TempDir()
	sum2 := e.run(t, s2)
	t.Logf("stage 2 counters: %v", sum2)
	if sum2[metrics.EventsIn] != int64(ss.records) || sum2[kinesisio.KinesisRecords] != int64(ss.records) ||
		sum2[dynamodbio.NearlineWritten]+sum2[dynamodbio.NearlineDuplicates] != int64(ss.records) || sum2[metrics.ProcessingErrors] != 0 {
		t.Errorf("stage 2 counters: %v; want %d staged-stream records written", sum2, ss.records)
	}
	a2 := readStreamArchive(t, s2.Archive)
	for _, f := range a2.files {
		if !strings.HasPrefix(f, archive.ErrorsDir+"/"+string(records.Processing)+"/") && !strings.HasPrefix(f, "_") {
			t.Errorf("stage 2 archived %s; it archives processing errors only", f)
		}
	}
	if len(a2.raw)+len(a2.staged)+len(a2.errs) != 0 {
		t.Errorf("stage 2 archived %d raw, %d staged, %d error records", len(a2.raw), len(a2.staged), len(a2.errs))
	}
	cps := &dynamodbio.Checkpoints{API: e.ddb, Table: e.checkpoints, Consumer: s2.Consumer}
	committed, err := cps.Load(context.Background(), staged)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range ss.shards {
		if ss.last[sh.ID] == "" || committed[sh.ID] != ss.last[sh.ID] {
			t.Errorf("stage 2 checkpoint of staged shard %s = %q, want its last record %q", sh.ID, committed[sh.ID], ss.last[sh.ID])
		}
	}

	// Stage 1's archive and checkpoints, and the table stage 2 filled.
	e.cfg = s1
	checkStream(t, e, lines, exp, readStreamArchive(t, s1.Archive))
}

// TestStreamResume stops a job on idle and starts another from the
// checkpoint table: it reads exactly the records that arrived since.
func TestStreamResume(t *testing.T) {
	e := newStreamEnv(t, 2)
	lines, exp := sampleRecords(t)
	half := len(lines) / 2
	putLines(t, e.kin, e.raw, lines[:half], 0)
	sum1 := e.run(t, e.cfg)
	putLines(t, e.kin, e.raw, lines[half:], half)
	sum2 := e.run(t, e.cfg)
	t.Logf("run 1: %v", sum1)
	t.Logf("run 2: %v", sum2)
	if sum1[kinesisio.KinesisRecords] != int64(half) || sum2[kinesisio.KinesisRecords] != int64(len(lines)-half) {
		t.Errorf("runs read %d and %d records, want %d and %d", sum1[kinesisio.KinesisRecords], sum2[kinesisio.KinesisRecords], half, len(lines)-half)
	}
	both := metrics.Summary{}
	for _, s := range []metrics.Summary{sum1, sum2} {
		for k, v := range s {
			both[k] += v
		}
	}
	checkSinkCounters(t, both, exp, true, false)
	if !both.Conserved() || both[metrics.ProcessingErrors] != 0 {
		t.Errorf("counters of both runs: %v", both)
	}
	checkStream(t, e, lines, exp, readStreamArchive(t, e.archive))
}
