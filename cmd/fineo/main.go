// Command fineo is the single binary of Fineo Ingest: it builds and runs the
// Beam pipelines (ingest, demo), manages tenant schemas, and doubles as its
// own Beam SDK worker when a runner re-executes it with --worker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
)

const usage = `fineo — IoT events from ingest to SQL with no hand-built ETL.

Usage:
  fineo ingest --input PATH|GLOB|s3://... --schemas DIR --archive DIR|s3://... [--tenant T]
  fineo batch  --archive DIR|s3://... --lake DIR|s3://... --schemas DIR [--date D|yesterday | --from D --to D] [--backup DIR|s3://...]
  fineo restore --backup DIR|s3://... --table NAME [--create-table]
  fineo table create --table NAME
  fineo query  --table NAME --tenant T --metric M --from TIME [--to TIME] [--format jsonl|table]
  fineo replay --archive DIR|s3://... --stage staged --table NAME [--from D --to D]
  fineo replay --archive DIR|s3://... --stage raw --out-archive DIR|s3://... --schemas DIR [--from D --to D]
  fineo demo   [--out ./fineo-demo] [--sample testdata/sample]
  fineo schema list|show|history|apply FILE --schemas DIR
  fineo schema suggest --report FILE --schemas DIR [--out DIR]
  fineo help

Beam's runner flags (--runner, --endpoint, --environment_type, ...) apply to
ingest, batch and demo. Run "fineo COMMAND --help" for a command's flags.
`

// exitError carries a process exit code with its one-line reason.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

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
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "ingest":
		err = cmdIngest(ctx, rest)
	case "demo":
		err = cmdDemo(ctx, rest)
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
	fmt.Fprintf(os.Stderr, "fineo %s: %v\n", cmd, err)
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
	cpuProfile := own.String("cpuprofile", "", "write a CPU profile (pprof) of the job to this file")
	fs := flag.CommandLine
	fs.Init("fineo "+name, flag.ContinueOnError)
	own.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of fineo %s:\n", name)
		own.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nBeam runner flags are accepted too: --runner (direct|prism|universal|flink|spark|dataflow),\n"+
			"--endpoint, --environment_type, --environment_config, --worker_binary, ... (see README, Runners).\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError(fmt.Errorf("--log-level: %v", err))
	}
	beamlog.LogLevel = strings.ToLower(*logLevel) // beam.Init sets up slog with it
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
	return nil
}
