package runners_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fineo-io/ingest/internal/sampledata"
	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/io/kinesisio"
	"github.com/fineo-io/ingest/records"
)

var sample = filepath.Join("..", "testdata", "sample")

// tmpRoot holds what the tests build once per test binary.
var tmpRoot string

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "fineo-runners-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

var fineoBuild struct {
	once sync.Once
	path string
	err  error
}

// fineoBinary builds the real fineo binary once: these tests run it as a
// user (and a runner) would.
func fineoBinary(t *testing.T) string {
	t.Helper()
	fineoBuild.once.Do(func() {
		bin := filepath.Join(tmpRoot, "fineo")
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/fineo").CombinedOutput(); err != nil {
			fineoBuild.err = fmt.Errorf("go build ./cmd/fineo: %v\n%s", err, out)
			return
		}
		fineoBuild.path = bin
	})
	if fineoBuild.err != nil {
		t.Fatal(fineoBuild.err)
	}
	return fineoBuild.path
}

// runFineo runs the binary and fails the test on a non-zero exit or after
// the timeout (a portable job whose workers never start would wait forever).
func runFineo(t *testing.T, timeout time.Duration, bin string, args ...string) (stdout string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		err = fmt.Errorf("killed after %s", timeout)
	}
	if err != nil {
		t.Fatalf("fineo %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, o.String(), e.String())
	}
	t.Logf("fineo %s %s: %s", args[0], strings.Join(runnerArgs(args), " "), time.Since(start).Round(time.Millisecond))
	return o.String()
}

// runnerArgs are the Beam flags among args, for logs.
func runnerArgs(args []string) []string {
	var r []string
	for _, a := range args {
		if strings.HasPrefix(a, "--runner") || strings.HasPrefix(a, "--environment_type") || strings.HasPrefix(a, "--worker_binary") {
			r = append(r, a)
		}
	}
	if len(r) == 0 {
		return []string{"(default runner)"}
	}
	return r
}

// counters parses the "  name   value" lines a job prints before its
// conservation line, and requires the conservation line to say ok.
func counters(t *testing.T, out string) map[string]int64 {
	t.Helper()
	c := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "conservation:") {
			if !strings.HasSuffix(strings.TrimSpace(line), ": ok") {
				t.Errorf("conservation does not hold: %s", line)
			}
			return c
		}
		f := strings.Fields(line)
		if len(f) != 2 || !strings.HasPrefix(line, "  ") {
			continue
		}
		if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			c[f[0]] = n
		}
	}
	t.Fatalf("no conservation line in output:\n%s", out)
	return nil
}

// bundleDependent counters change with how a runner cuts bundles (a writer
// writes one file per partition per bundle), not with the data.
var bundleDependent = map[string]bool{"files_written": true}

func compareCounters(t *testing.T, what string, want, got map[string]int64) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: no counters in the reference run", what)
	}
	for _, k := range sortedKeys(want, got) {
		if bundleDependent[k] {
			continue
		}
		w, wok := want[k]
		g, gok := got[k]
		if w != g || wok != gok {
			t.Errorf("%s counter %s = %d (present %v), direct says %d (present %v)", what, k, g, gok, w, wok)
		}
	}
}

func sortedKeys(ms ...map[string]int64) []string {
	var ks []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
	}
	slices.Sort(ks)
	return ks
}

// stagedEvents reads every staged Avro file under <archive>/staged and
// counts each event by id and source line (re-deliveries share an id).
func stagedEvents(t *testing.T, root string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	err := filepath.WalkDir(filepath.Join(root, "staged"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(p, ".avro") {
			return fmt.Errorf("unexpected file in the staged archive: %s", p)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return archive.ReadStaged(f, func(ev *records.Event) error {
			ids[ev.ID+"@"+ev.Source.String()]++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// lakeRows returns the rows of every lake partition from its manifest.
func lakeRows(t *testing.T, root string) map[string]int64 {
	t.Helper()
	rows := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "_manifest.json" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var m struct{ Rows int64 }
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rows[rel] = m.Rows
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// result is what one runner made of the sample.
type result struct {
	ingest, batch map[string]int64
	staged        map[string]int
	lake          map[string]int64
}

// runSample runs fineo ingest (and fineo batch unless ingestOnly) on the
// sample with the given runner flags.
func runSample(t *testing.T, bin string, ingestOnly bool, runnerFlags ...string) result {
	t.Helper()
	dir := t.TempDir()
	arch, lake := filepath.Join(dir, "archive"), filepath.Join(dir, "lake")
	schemas := filepath.Join(sample, "schemas")
	args := append([]string{"ingest", "--input", filepath.Join(sample, "raw"), "--schemas", schemas, "--archive", arch}, runnerFlags...)
	var r result
	r.ingest = counters(t, runFineo(t, 2*time.Minute, bin, args...))
	r.staged = stagedEvents(t, arch)
	if ingestOnly {
		return r
	}
	args = append([]string{"batch", "--archive", arch, "--lake", lake, "--schemas", schemas, "--quiet"}, runnerFlags...)
	r.batch = counters(t, runFineo(t, 2*time.Minute, bin, args...))
	r.lake = lakeRows(t, lake)
	return r
}

func compareResults(t *testing.T, want, got result) {
	t.Helper()
	compareCounters(t, "ingest", want.ingest, got.ingest)
	if len(want.staged) == 0 || int64(sum(want.staged)) != want.ingest["staged_written"] {
		t.Fatalf("direct: %d staged events read back, staged_written %d", sum(want.staged), want.ingest["staged_written"])
	}
	if missing, extra := diff(want.staged, got.staged); len(missing)+len(extra) > 0 {
		t.Errorf("staged events differ from direct's: %d missing (e.g. %v), %d extra (e.g. %v)",
			len(missing), first(missing), len(extra), first(extra))
	}
	if want.batch == nil || got.batch == nil { // ingest only
		return
	}
	compareCounters(t, "batch", want.batch, got.batch)
	var rows int64
	for _, n := range want.lake {
		rows += n
	}
	if len(want.lake) == 0 || rows != want.batch["lake_rows"] {
		t.Fatalf("direct: %d lake partitions with %d rows, lake_rows %d", len(want.lake), rows, want.batch["lake_rows"])
	}
	for _, p := range sortedKeys(want.lake, got.lake) {
		if want.lake[p] != got.lake[p] {
			t.Errorf("lake partition %s: %d rows, direct wrote %d", p, got.lake[p], want.lake[p])
		}
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// diff returns the keys whose counts want has more of (missing) and fewer
// of (extra) than got.
func diff(want, got map[string]int) (missing, extra []string) {
	for k, n := range want {
		if got[k] < n {
			missing = append(missing, k)
		}
	}
	for k, n := range got {
		if want[k] < n {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}

func first(s []string) []string { return s[:min(len(s), 3)] }

// TestPortableMatchesDirect runs the sample through fineo ingest and fineo
// batch on the default (direct) runner and on a standalone prism job server
// reached through Beam's portable Job API, as a Flink or Spark job server
// would be, and requires the same counters, staged events and lake.
func TestPortableMatchesDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fineo and prism")
	}
	bin := fineoBinary(t)
	endpoint := testenv.PrismJobServer(t)
	direct := runSample(t, bin, false)
	t.Logf("direct: ingest %v; batch %v; %d lake partitions", direct.ingest, direct.batch, len(direct.lake))

	t.Run("universal-loopback", func(t *testing.T) {
		got := runSample(t, bin, false, "--runner=universal", "--endpoint="+endpoint, "--environment_type=LOOPBACK")
		compareResults(t, direct, got)
	})
	// --runner=prism with --endpoint submits to that job server instead of
	// starting one in-process. Without --environment_type it would ask for
	// a DOCKER environment (and cross-compile the worker first).
	t.Run("prism-endpoint-loopback", func(t *testing.T) {
		got := runSample(t, bin, false, "--runner=prism", "--endpoint="+endpoint, "--environment_type=LOOPBACK")
		compareResults(t, direct, got)
	})
	// LOOPBACK runs the workers inside the submitting process: the binary
	// is never re-executed. A PROCESS environment makes the job server start
	// Beam's Go boot loader, which fetches the staged --worker_binary and
	// runs it with --worker=true: that proves fineo works as its own worker.
	t.Run("process-worker-binary", func(t *testing.T) {
		boot := bootLoader(t)
		got := runSample(t, bin, true, "--runner=universal", "--endpoint="+endpoint,
			"--environment_type=PROCESS", `--environment_config={"command":"`+boot+`"}`, "--worker_binary="+bin)
		compareResults(t, direct, got)
	})
}

// bootLoader builds Beam's Go SDK boot loader (the entry point of the
// apache/beam_go_sdk container) and returns a wrapper script for a PROCESS
// environment. The wrapper works around prism v2.77.0, which passes
// --id='ID' with literal quotes (environments.go, processEnvironment: no
// shell removes them), so that the boot loader's worker id is unknown to
// prism and the job waits forever; it also keeps the boot loader's staged
// files and pipeline_options.json in the test's temp directory. Workers left behind by the boot
// loader (prism SIGKILLs the loader at the end of the job, orphaning the
// worker it started) are killed, and their copied binaries removed, when
// the test ends.
func bootLoader(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	boot := filepath.Join(dir, "boot")
	cmd := exec.Command("go", "build", "-o", boot, "github.com/apache/beam/sdks/v2/go/container")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build boot loader: %v\n%s", err, out)
	}
	persist := filepath.Join(dir, "persist")
	if err := os.Mkdir(persist, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "boot.sh")
	script := fmt.Sprintf(`#!/bin/sh
id=$(printf '%%s' "$1" | sed "s/^--id='\(.*\)'\$/--id=\1/")
shift
cd %q || exit 1 # the boot loader writes pipeline_options.json to its working directory
exec %q "$id" --semi_persist_dir=%q "$@"
`, dir, boot, persist)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killWorkers(t, persist) })
	return wrapper
}

// killWorkers kills the SDK workers started with --semi_persist_dir=persist
// and removes the copies of the worker binary the boot loader made under
// /tmp/binNNN/.
func killWorkers(t *testing.T, persist string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("--semi_persist_dir="+persist+"\x00")) {
			continue
		}
		exe := string(bytes.SplitN(cmdline, []byte{0}, 2)[0])
		if proc, err := os.FindProcess(pid); err == nil {
			proc.Kill()
			for i := 0; i < 100; i++ { // wait for it to go before removing its binary
				if _, err := os.Stat(filepath.Join("/proc", p.Name())); errors.Is(err, fs.ErrNotExist) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if d := filepath.Dir(exe); filepath.Base(exe) == "worker" && strings.HasPrefix(d, "/tmp/bin") {
			os.RemoveAll(d)
		}
		t.Logf("killed left-over SDK worker %d (%s)", pid, exe)
	}
}

// TestPortableStream runs a bounded streaming job (fineo stream
// --stop-after-idle) over the sample in Kinesis on the embedded prism
// runner and through a standalone prism job server (universal, LOOPBACK):
// the Job API path a Flink job server takes. Both must make the same
// counts, the same staged events and the same nearline items.
func TestPortableStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fineo and prism")
	}
	testenv.Kinesis(t)
	testenv.DynamoDB(t)
	bin := fineoBinary(t)
	endpoint := testenv.PrismJobServer(t)
	ctx := context.Background()
	kin := testenv.KinesisClient(t)
	raw := testenv.UniqueName(t, "raw")
	testenv.CreateStream(t, kin, raw, 2)
	var recs []kinesisio.PutRecord
	for i, l := range sampleLines(t) {
		recs = append(recs, kinesisio.PutRecord{Data: l, PartitionKey: strconv.Itoa(i)})
	}
	if _, failed, err := kinesisio.PutRecords(ctx, kin, raw, recs, kinesisio.WriterOptions{}); err != nil || len(failed) > 0 {
		t.Fatalf("put: %v (%d failed)", err, len(failed))
	}
	ddb, err := dynamodbio.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, runnerFlags ...string) (map[string]int64, map[string]int, int) {
		arch := filepath.Join(t.TempDir(), "archive")
		table := testenv.UniqueName(t, name)
		args := append([]string{"stream", "--raw-stream", raw, "--table", table, "--create-table", "--archive", arch,
			"--schemas", filepath.Join(sample, "schemas"), "--consumer", name, "--window", "5s",
			"--poll", "100ms", "--stop-after-idle", "3s"}, runnerFlags...)
		stdout := runFineo(t, 3*time.Minute, bin, args...)
		if !strings.Contains(stdout, ": ok") || strings.Contains(stdout, "MISMATCH") {
			// Say what the archive holds, to tell lost files from lost counts.
			var errFiles, errRecords int
			filepath.WalkDir(filepath.Join(arch, archive.ErrorsDir), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				errFiles++
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				return archive.ReadErrors(f, func(*archive.ErrorRecord) error { errRecords++; return nil })
			})
			t.Logf("%s run: the archive holds %d error records in %d files; output:\n%s", name, errRecords, errFiles, stdout)
		}
		c := counters(t, stdout)
		return c, stagedEvents(t, arch), testenv.ScanItems(t, ddb, table, dynamodbio.AttrPK, nil)
	}
	wantC, wantStaged, wantItems := run("embedded")
	gotC, gotStaged, gotItems := run("universal", "--runner=universal", "--endpoint="+endpoint, "--environment_type=LOOPBACK")
	for _, k := range []string{"events_in", "staged", "staged_written", "customer_errors_written", "raw_archived", "kinesis_records"} {
		if wantC[k] == 0 || gotC[k] != wantC[k] {
			t.Errorf("counter %s: universal %d, embedded %d", k, gotC[k], wantC[k])
		}
	}
	if missing, extra := diff(wantStaged, gotStaged); len(missing)+len(extra) > 0 || len(wantStaged) == 0 {
		t.Errorf("staged events differ: %d missing (e.g. %v), %d extra (e.g. %v)", len(missing), first(missing), len(extra), first(extra))
	}
	if gotItems != wantItems || wantItems == 0 {
		t.Errorf("nearline items: universal %d, embedded %d", gotItems, wantItems)
	}
}

// sampleLines returns the sample's lines that fit in a Kinesis record.
func sampleLines(t *testing.T) [][]byte {
	t.Helper()
	lines, _, err := sampledata.KinesisLines(context.Background(), filepath.Join(sample, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	return lines
}
