package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
)

// instance is one `fineo stream` process of the multi-instance B3.
type instance struct {
	cmd   *exec.Cmd
	out   *testenv.SyncBuffer
	owner string
}

// runInstances is B3 with several `fineo stream` processes sharing the
// stream by leases: the bare loops give the stand-ins' capacity as in B3;
// then the instances drain a backlog of n events (the rate from the first
// instance's start to the last event readable, and sustained between 10%
// and 90% of it), then take events at half the sustained rate (or of the
// capacity, if lower) for 10 s
// (p99 latency), then one instance is killed while events keep coming at
// that rate, and the time until its last lease is taken over by another
// instance is measured.
func runInstances(n, shards, count, samples, conc int, schemaDir string, lease time.Duration) error {
	ctx := context.Background()
	kin, ddb, tenants, err := setup(ctx, schemaDir)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fineo-bench-instances-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "fineo")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/fineo-io/ingest/cmd/fineo").CombinedOutput(); err != nil {
		return fmt.Errorf("building fineo: %v\n%s", err, out)
	}
	id := time.Now().UTC().Format("150405")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	recs := benchRecords(base, n)
	fmt.Printf("B3 with %d instances (fineo stream processes sharing the shards by leases, --lease-duration %v): %d events, %d shards\n", count, lease, n, shards)

	raw := "bench-inst-raw-" + id
	putRate, err := barePut(ctx, kin, raw, shards, recs)
	if err != nil {
		return err
	}
	items, err := itemsOf(ctx, kin, raw, tenants)
	if err != nil {
		return err
	}
	baseTable := "bench-inst-base-" + id
	bare, err := bareWrite(ctx, ddb, baseTable, items, conc, standinCPU("dynalite"))
	if err != nil {
		return err
	}
	if err := dropTables(ctx, ddb, baseTable); err != nil {
		return err
	}
	fmt.Printf("  dynamodb stand-in, bare BatchWriteItem loop: %8.0f items/s\n", bare.rate)
	capacity := min(putRate, bare.rate)

	table := "bench-inst-nearline-" + id
	if err := dynamodbio.CreateTable(ctx, ddb, table, dynamodbio.LayoutOptions{}); err != nil {
		return err
	}
	defer dropTables(ctx, ddb, table, table+"-checkpoints")
	insts := make([]*instance, count)
	for i := range insts {
		cmd := exec.Command(bin, "stream", "--raw-stream", raw, "--table", table, "--archive", filepath.Join(tmp, "archive"),
			"--schemas", schemaDir, "--consumer", "bench", "--lease-duration", lease.String(), "--progress", "0", "--log-level", "warn")
		out := &testenv.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return err
		}
		insts[i] = &instance{cmd: cmd, out: out}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}()
	}
	jobStart := time.Now()
	every := max(1, n/samples)
	sm := startSampler(ctx, ddb, table, tenants, base, n/every+2, 100*time.Millisecond)
	for i := range n {
		if sampled(i, n, every) {
			sm.add(i, jobStart)
		}
	}
	drain := sm.wait()
	drainRate := float64(n) / drain.lastSeen.Sub(jobStart).Seconds()
	steady, lo, hi := drain.sustained(n)
	fmt.Printf("  %d instances, drain (a backlog of %d events): %8.0f events/s from the first start (all readable after %.1f s)\n",
		count, n, drainRate, drain.lastSeen.Sub(jobStart).Seconds())
	fmt.Printf("  %d instances, drain, sustained (from %d%% to %d%% of the backlog readable, %.1f s to %.1f s): %8.0f events/s\n",
		count, 100*lo.i/n, 100*hi.i/n, lo.lat.Seconds(), hi.lat.Seconds(), steady)

	// Latency at half the sustained rate (at most half the stand-ins'
	// capacity: a small backlog's sustained rate says little), all
	// instances up.
	pace := min(steady, capacity) / 2
	m := int(pace * 10)
	base2 := base + int64(n)
	recs2 := benchRecords(base2, m)
	paced := sendAndWait(ctx, kin, ddb, raw, table, tenants, base2, recs2, max(1, m/samples), pace)
	if paced.err != nil {
		return paced.err
	}
	fmt.Printf("  latency PutRecords → readable by Query (%.0f events/s for 10 s, %d samples): p50 %v  p99 %v  max %v\n",
		pace, len(paced.lat), paced.q(0.5), paced.q(0.99), paced.q(1))

	// Take-over: kill the instance that holds the most leases while
	// events keep coming at the same rate.
	cps := &dynamodbio.Checkpoints{API: ddb, Table: table + "-checkpoints", Consumer: "bench"}
	leases, _, err := cps.Leases(ctx, raw)
	if err != nil {
		return err
	}
	held := map[string]int{}
	for _, l := range leases {
		if l.Owner != "" && !l.Ended {
			held[l.Owner]++
		}
	}
	var victim *instance
	for _, in := range insts {
		in.owner = ownerOf(in.out.String())
		if victim == nil || held[in.owner] > held[victim.owner] {
			victim = in
		}
	}
	fmt.Printf("  leases held before the kill: %v\n", held)
	victim.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	victim.cmd.Wait()
	m3 := int(pace * (lease + 10*time.Second).Seconds())
	base3 := base2 + int64(m)
	recs3 := benchRecords(base3, m3)
	takeover := make(chan time.Duration, 1)
	go func() {
		for {
			leases, _, err := cps.Leases(ctx, raw)
			left := 0
			for _, l := range leases {
				if l.Owner == victim.owner && !l.Ended {
					left++
				}
			}
			if err == nil && left == 0 {
				takeover <- time.Since(killed)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	during := sendAndWait(ctx, kin, ddb, raw, table, tenants, base3, recs3, max(1, m3/samples), pace)
	if during.err != nil {
		return during.err
	}
	var took time.Duration
	select {
	case took = <-takeover:
	case <-time.After(lease + time.Minute):
		return fmt.Errorf("the killed instance's leases were not taken over within %v", lease+time.Minute)
	}
	fmt.Printf("  take-over: the killed instance's %d leases all taken by the others %.1f s after the kill (target ≤ lease + 5 s = %v)\n",
		held[victim.owner], took.Seconds(), lease+5*time.Second)
	fmt.Printf("  latency during the take-over (%.0f events/s for %v, %d samples): p50 %v  p99 %v  max %v\n",
		pace, lease+10*time.Second, len(during.lat), during.q(0.5), during.q(0.99), during.q(1))
	fmt.Printf("B3 with %d instances, ratio vs the slower stand-in's capacity (kinesis %.0f/s, dynamodb %.0f/s): drain sustained %.2f (target ≥ 0.80), from the first start %.2f; p99 %v outside the take-over (target < 2s); take-over %.1f s (target ≤ %v)\n",
		count, putRate, bare.rate, steady/capacity, drainRate/capacity, paced.q(0.99), took.Seconds(), lease+5*time.Second)
	return nil
}

// ownerOf returns the lease owner a `fineo stream` start line names.
func ownerOf(out string) string {
	_, rest, _ := strings.Cut(out, "shared by leases as ")
	owner, _, _ := strings.Cut(rest, " ")
	return owner
}
