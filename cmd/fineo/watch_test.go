package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/kinesisio"
)

// TestStreamWatch runs `fineo stream --metrics-listen 127.0.0.1:0
// --progress 500ms` and watches it while it runs: the metrics endpoint
// answers on loopback with counters that move as records are put, a
// progress line comes on stderr, and the usage file is written while the
// job runs (status running), not only when it ends.
func TestStreamWatch(t *testing.T) {
	testenv.Kinesis(t)
	testenv.DynamoDB(t)
	bin := fineoBinary(t)
	ctx := context.Background()
	kin := testenv.KinesisClient(t)
	raw := testenv.UniqueName(t, "raw")
	testenv.CreateStream(t, kin, raw, 2)
	archiveDir := t.TempDir()
	lines, _ := sampleStreamLines(t)
	put := func(from, to int) {
		t.Helper()
		recs := make([]kinesisio.PutRecord, 0, to-from)
		for j := from; j < to; j++ {
			recs = append(recs, kinesisio.PutRecord{Data: lines[j], PartitionKey: fmt.Sprintf("device-%d", j)})
		}
		if _, failed, err := kinesisio.PutRecords(ctx, kin, raw, recs, kinesisio.WriterOptions{}); err != nil || len(failed) > 0 {
			t.Fatalf("put: %v (%d failed)", err, len(failed))
		}
	}
	cmd := exec.Command(bin, "stream", "--raw-stream", raw, "--table", testenv.UniqueName(t, "nearline"), "--archive", archiveDir,
		"--schemas", filepath.Join("..", "..", "testdata", "sample", "schemas"), "--create-table",
		"--window", "1s", "--poll", "100ms", "--log-level", "warn", "--metrics-listen", "127.0.0.1:0", "--progress", "500ms")
	var stdout, stderr testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	addrRE := regexp.MustCompile(`metrics: http://([^/\s]+)/metrics`)
	var addr string
	for deadline := time.Now().Add(60 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no metrics address printed:\n%s\n%s", stdout.String(), stderr.String())
	}
	if host, _, _ := net.SplitHostPort(addr); !net.ParseIP(host).IsLoopback() {
		t.Fatalf("metrics endpoint on %s, want loopback", addr)
	}
	recordsRE := regexp.MustCompile(`(?m)^fineo_kinesis_records_total (\d+)$`)
	scraped := func() int {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if m := recordsRE.FindSubmatch(b); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			return n
		}
		return 0
	}
	waitScraped := func(atLeast int) int {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			n := scraped()
			if n >= atLeast {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("scraped %d records, want %d; stderr:\n%s", n, atLeast, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	put(0, 500)
	first := waitScraped(500)
	put(500, 1000)
	if second := waitScraped(1000); second <= first {
		t.Errorf("the records counter did not move: %d then %d", first, second)
	}
	// The usage file is there while the job runs.
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(archiveDir, "_usage", "stream-*.json"))
		if len(files) > 0 {
			b, _ := os.ReadFile(files[0])
			if strings.Contains(string(b), `"status": "running"`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usage file with status running while the job runs: %v", files)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "stream: ") || !strings.Contains(stderr.String(), " records (") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, stderr.String())
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("the metrics endpoint outlived the job")
	}
}

// TestStreamWatchFlags: a bad --metrics-listen or --progress is a usage
// error before any work starts.
func TestStreamWatchFlags(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--raw-stream", "r", "--table", "t", "--archive", dir, "--schemas", filepath.Join("..", "..", "testdata", "sample", "schemas")}
	for _, extra := range [][]string{{"--metrics-listen", "127.0.0.1:99999"}, {"--metrics-listen", "a:b:c"}, {"--progress", "-1s"}} {
		if code := exitCode(cmdStream(context.Background(), append(append([]string{}, base...), extra...))); code != 2 {
			t.Errorf("%v: exit code %d, want 2", extra, code)
		}
	}
}
