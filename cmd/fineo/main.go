// Command fineo is the single binary of Fineo Ingest: it builds and runs the
// Beam pipelines (ingest, demo), manages tenant schemas, and doubles as its
// own Beam SDK worker when a runner re-executes it with --worker.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/logging"
	"github.com/fineo-io/ingest/ops/notify"
	"github.com/fineo-io/ingest/ops/progress"
	"github.com/fineo-io/ingest/ops/redact"
	usagefile "github.com/fineo-io/ingest/ops/usage"
	"github.com/fineo-io/ingest/runners"
	"github.com/fineo-io/ingest/schema"
	_ "github.com/fineo-io/ingest/schema/dynamostore" // --schemas dynamodb://TABLE
)

const usage = `fineo — IoT events from ingest to SQL with no hand-built ETL.

Usage:
  fineo ingest --input PATH|GLOB|s3://... --schemas DIR --archive DIR|s3://... [--tenant T]
  fineo batch  --archive DIR|s3://... --lake DIR|s3://... --schemas DIR [--date D|yesterday | --from D --to D] [--backup DIR|s3://...]
  fineo stream --raw-stream NAME --table NAME --archive DIR|s3://... --schemas DIR|dynamodb://T
               [--staged-stream NAME] [--stages all|1|2] [--start trim_horizon|latest|RFC3339]
               [--checkpoint-table NAME] [--window 1m]
  fineo restore --backup DIR|s3://... --table NAME [--create-table]
  fineo table create --table NAME
  fineo query  --table NAME --tenant T --metric M --from TIME [--to TIME] [--format jsonl|table]
  fineo replay --archive DIR|s3://... --stage staged --table NAME [--from D --to D]
  fineo replay --archive DIR|s3://... --stage raw --out-archive DIR|s3://... --schemas DIR [--from D --to D]
  fineo demo   [--out ./fineo-demo] [--sample testdata/sample]
  fineo schema list|show|history|apply FILE --schemas DIR
  fineo schema suggest --report FILE --schemas DIR [--out DIR]
  fineo help

ingest and batch also take --quiet, --notify URL (repeatable), and every job
--log-level and --log-format text|json.
Beam's runner flags (--runner, --endpoint, --environment_type, ...) apply to
ingest, batch, stream, replay, restore and demo. Run "fineo COMMAND --help" for a command's flags.
`

// exitError carries a process exit code with its one-line reason.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// requireFlags returns a usage error naming the first of the (name,
// value) pairs whose value is empty.
func requireFlags(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usageError(fmt.Errorf("--%s is required", pairs[i]))
		}
	}
	return nil
}

// usageError marks a command-line mistake: exit code 2.
func usageError(err error) error { return &exitError{code: 2, err: err} }

// atExit holds what must run before the process exits (profiles).
var atExit []func()

func main() {
	code := run(os.Args[1:])
	for _, f := range atExit {
		f()
	}
	os.Exit(code)
}

func run(args []string) int {
	// A runner re-executes this binary as its SDK worker with only flags
	// (--worker=true ...): hand those straight to Beam, which never returns.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && isWorker(args) {
			flag.CommandLine.Parse(args)
			beam.Init()
			return 0
		}
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Print(usage)
			return 0
		}
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := args[0], args[1:]
	tuneGC(cmd)
	var err error
	switch cmd {
	case "ingest":
		err = cmdIngest(ctx, rest)
	case "demo":
		err = cmdDemo(ctx, rest)
	case "stream":
		err = cmdStream(ctx, rest)
	case "batch":
		err = cmdBatch(ctx, rest)
	case "restore":
		err = cmdRestore(ctx, rest)
	case "table":
		err = cmdTable(ctx, rest)
	case "query":
		err = cmdQuery(ctx, rest)
	case "replay":
		err = cmdReplay(ctx, rest)
	case "schema":
		if len(rest) > 0 && rest[0] == "suggest" {
			err = cmdSchemaSuggest(ctx, rest[1:])
		} else {
			err = cmdSchema(ctx, rest)
		}
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "fineo: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	// Credentials never reach the terminal: locations in errors may carry
	// userinfo or signed queries.
	fmt.Fprintf(os.Stderr, "fineo %s: %s\n", cmd, redact.String(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func isWorker(args []string) bool {
	for _, a := range args {
		if a == "--worker" || a == "-worker" || strings.HasPrefix(a, "--worker=") || strings.HasPrefix(a, "-worker=") {
			return !strings.HasSuffix(a, "=false")
		}
	}
	return false
}

// parseBeamFlags parses a command's flags together with Beam's own, which
// live on the global flag set, and initialises Beam.
func parseBeamFlags(name string, args []string, define func(fs *flag.FlagSet)) error {
	own := flag.NewFlagSet("fineo "+name, flag.ContinueOnError)
	define(own)
	logLevel := own.String("log-level", "warn", "log level of the runner's and Fineo's logs: debug|info|warn|error")
	logFormat := own.String("log-format", "text", "format of the runner's and Fineo's logs on stderr (log/slog): text|json")
	cpuProfile := own.String("cpuprofile", "", "write a CPU profile (pprof) of the job to this file")
	fs := flag.CommandLine
	fs.Init("fineo "+name, flag.ContinueOnError)
	fs.SetOutput(redactWriter{os.Stderr}) // the flag package echoes bad values
	own.VisitAll(func(f *flag.Flag) {
		// A second command in one process (tests) rebinds the flag to
		// this call's variables instead of redefining it.
		if prev := fs.Lookup(f.Name); prev != nil {
			prev.Value, prev.Usage, prev.DefValue = f.Value, f.Usage, f.DefValue
			return
		}
		fs.Var(f.Value, f.Name, f.Usage)
	})
	usage := func() {
		fmt.Fprintf(fs.Output(), "Usage of fineo %s:\n", name)
		own.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nBeam runner flags are accepted too: --runner (direct|prism|universal|flink|spark|dataflow),\n"+
			"--endpoint, --environment_type, --environment_config, --worker_binary, ... (see README, Runners).\n")
	}
	// A bad flag is one line (the caller prints the error), not the error
	// and every flag: the usage is printed for --help only.
	fs.Usage = func() {}
	// Credentials inside locations (userinfo, signed queries) are redacted
	// from every later line, in whatever form a library echoes them.
	for _, a := range args {
		redact.AddLocation(a)
	}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(redactWriter{os.Stderr})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return err
		}
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if err := runners.CheckName(); err != nil {
		return usageError(err)
	}
	lc, err := logging.Parse(*logLevel, *logFormat) // beam.Init sets up slog with them
	if err != nil {
		return usageError(err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		atExit = append(atExit, func() { pprof.StopCPUProfile(); f.Close() })
	}
	beam.Init()
	// beam.Init installed Beam's slog handler; replace it with the same
	// format and level, redacted. Beam's log package and the standard log
	// package both write through slog's default.
	logCfg = lc
	logCfg.Install(os.Stderr)
	return nil
}

// logCfg is the parsed --log-level/--log-format of this process.
var logCfg = logging.Config{Level: slog.LevelWarn, Format: logging.Text}

// redactWriter redacts what is written through it (whole lines at a time,
// as the flag package writes them).
type redactWriter struct{ w *os.File }

func (r redactWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(r.w, redact.String(string(b))); err != nil {
		return 0, err
	}
	return len(b), nil
}

// notifyFlag is the repeatable --notify flag.
type notifyFlag []notify.Target

func (n *notifyFlag) String() string {
	if n == nil {
		return ""
	}
	s := make([]string, len(*n))
	for i, t := range *n {
		s[i] = t.String()
	}
	return strings.Join(s, ",")
}

func (n *notifyFlag) Set(v string) error {
	redact.AddLocation(v)
	t, err := notify.Parse(v)
	if err != nil {
		return err
	}
	*n = append(*n, t)
	return nil
}

const notifyUsage = "send one alert per run with customer or processing errors (repeatable): https://..., http://127.0.0.1:PORT/... or sns://arn:aws:sns:REGION:ACCOUNT:TOPIC"

// newRunID names a run: UTC time to the second plus 6 random hex digits, so
// two runs in the same second get different usage files.
func newRunID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// startProgress starts the progress line on stderr (unless quiet) and feeds
// it from the Fineo counters DoFns increment in this process. The returned
// func stops it.
func startProgress(quiet bool, job string, t progress.Totals, fields map[string]progress.Field) func() {
	if quiet {
		return func() {}
	}
	progress.Start(os.Stderr, job, t, logCfg.Format == logging.JSON)
	metrics.SetObserver(func(name string, n int64) {
		if f, ok := fields[name]; ok {
			progress.Add(f, n)
		}
	})
	return func() {
		metrics.SetObserver(nil)
		progress.Stop()
	}
}

// jobEnd is what finishJob needs about a finished (or failed) bounded job.
type jobEnd struct {
	job, run string
	started  time.Time
	archive  string // where errors and the usage file go
	lake     string
	sum      metrics.Summary // nil when the job did not run to the end
	err      error           // the job's error, if any
	notify   []notify.Target
	order    []string // the per-tenant counts to print first
	// extra adds to the usage report before it is written (batch: lake rows per tenant).
	extra func(r *usagefile.Report)
}

// usageReport is the per-tenant usage report of e so far (Status unset).
func usageReport(e jobEnd) *usagefile.Report {
	r := &usagefile.Report{Version: 1, Job: e.job, Run: e.run, Started: e.started.UTC(), Finished: time.Now().UTC(),
		Archive: redact.URL(e.archive), Tenants: map[string]map[string]*usagefile.Stage{}, Totals: map[string]int64{}}
	if e.lake != "" {
		r.Lake = redact.URL(e.lake)
	}
	if e.sum != nil {
		r.Tenants, r.Totals = usagefile.FromSummary(e.sum)
		if e.extra != nil {
			e.extra(r)
		}
	}
	return r
}

// finishJob writes and prints the per-tenant usage and sends the alert.
// A usage file that could not be written is returned (the caller fails a
// job that otherwise succeeded: usage is what tenants are billed from); a
// failed alert is only logged (redacted).
func finishJob(ctx context.Context, out io.Writer, e jobEnd) (usageErr error) {
	r := usageReport(e)
	var ee *exitError
	customer := e.sum[metrics.CustomerWritten]
	processing := e.sum[metrics.ProcessingWritten]
	switch {
	case e.err != nil && !(errors.As(e.err, &ee) && ee.code == 3):
		r.Status = "failed"
	case processing > 0:
		r.Status = "processing_errors"
	case customer > 0:
		r.Status = "customer_errors"
	default:
		r.Status = "ok"
	}
	var usageURL string
	if e.sum != nil && e.archive != "" {
		r.Print(out, e.order)
		loc, err := usagefile.Write(ctx, e.archive, r)
		if err != nil {
			usageErr = fmt.Errorf("usage file not written: %s", redact.String(err.Error()))
			fmt.Fprintf(out, "usage: NOT written: %s\n", redact.String(err.Error()))
		} else {
			usageURL = redact.URL(loc)
			fmt.Fprintf(out, "usage: %s\n", usageURL)
		}
	}
	if r.Status == "ok" || len(e.notify) == 0 {
		return
	}
	n := &notify.Notification{
		Version: 1, ID: e.job + "-" + e.run, Job: e.job, Run: e.run, Status: r.Status, Time: r.Finished,
		Tenants: map[string]notify.TenantErrors{}, Usage: usageURL,
		ErrorArchive: notify.ErrorArchive{
			Customer:   redact.URL(strings.TrimSuffix(e.archive, "/") + "/errors/customer/"),
			Processing: redact.URL(strings.TrimSuffix(e.archive, "/") + "/errors/processing/"),
		},
		ProcessingErrors: notify.Processing{Count: processing, Kinds: r.ProcessingErrors()},
	}
	for t, kinds := range r.CustomerErrors() {
		te := notify.TenantErrors{Kinds: kinds}
		for _, c := range kinds {
			te.Events += c
		}
		n.Tenants[t] = te
	}
	if r.Status == "failed" {
		n.ProcessingErrors.Failure = redact.String(e.err.Error())
	}
	// The alert is sent even when the job's context was cancelled (SIGTERM):
	// give it its own bounded time.
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if errs := notifySender.Send(nctx, e.notify, n); len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "fineo %s: %d notification(s) failed (the job's result is unchanged): %s\n", e.job, len(errs), redact.String(errors.Join(errs...).Error()))
	}
	return usageErr
}

// withUsage is the job's error, or, for a job that succeeded, the usage
// file's failure.
func withUsage(err, usageErr error) error {
	if err == nil {
		return usageErr
	}
	return err
}

// notifySender sends --notify alerts; tests may shorten its backoff.
var notifySender = &notify.Sender{}

// loadSchemas opens the schema store spec and loads every tenant's current
// schema. A store that holds none is an error: every event would become a
// customer error (unknown_tenant), which is a typo in --schemas, not data.
func loadSchemas(ctx context.Context, spec string) ([]*schema.Tenant, error) {
	st, err := schema.OpenStore(ctx, spec)
	if err != nil {
		return nil, err
	}
	tenants, err := schema.LoadAll(ctx, st)
	if err == nil && len(tenants) == 0 {
		err = fmt.Errorf("schema store %s holds no tenant schema (see fineo schema apply)", redact.URL(spec))
	}
	return tenants, err
}

// existingRoot checks that an archive a job reads exists: a local
// directory that is missing is an error (opening it would create it, and a
// typo in a nightly job would look like "nothing to do"); an empty one, or
// an empty date range, is not.
func existingRoot(root string) error {
	if strings.Contains(root, "://") {
		return nil // s3://: a missing bucket fails the listing itself
	}
	fi, err := os.Stat(root)
	switch {
	case err != nil:
		return fmt.Errorf("archive %s: %w", root, err)
	case !fi.IsDir():
		return fmt.Errorf("archive %s is not a directory", root)
	}
	return nil
}
