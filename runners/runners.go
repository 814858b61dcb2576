// Package runners selects and runs the Beam runner for a Fineo job from
// Beam's standard flags (--runner, --endpoint, --environment_type, ...).
//
// Defaults: bounded jobs (ingest, batch, replay) run on Beam's in-process
// direct runner, which opens no network port and needs less memory than
// embedded prism (measured: ~15% less for ingest, ~35% less for batch);
// unbounded jobs need prism. --runner=prism|direct|universal|flink|spark|dataflow
// chooses explicitly.
package runners

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"

	beamrunners "github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dot"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/flink"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/spark"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"
	"github.com/fineo-io/ingest/metrics"
)

// Kind says whether a job is bounded (batch) or unbounded (streaming).
type Kind int

const (
	Bounded Kind = iota
	Unbounded
)

// Name returns the runner a job of this kind will use.
func Name(k Kind) string {
	r := strings.ToLower(*beamrunners.Runner)
	if r != "" {
		return r
	}
	if k == Bounded && *jobopts.Endpoint == "" {
		return "direct"
	}
	return "prism"
}

// Supported are the runners fineo runs on: direct and prism in process;
// universal (portable), flink, spark and dataflow through a job service;
// dot and vet only look at the graph.
var Supported = []string{"direct", "prism", "universal", "portable", "flink", "spark", "dataflow", "dot", "vet"}

// CheckName refuses a --runner that is not one of Supported, naming them.
func CheckName() error {
	r := strings.ToLower(*beamrunners.Runner)
	if r == "" || slices.Contains(Supported, r) {
		return nil
	}
	return fmt.Errorf("--runner %q: fineo runs on %s", *beamrunners.Runner, strings.Join(Supported, ", "))
}

// Check refuses runner and job combinations that cannot work.
func Check(k Kind) error {
	switch r := Name(k); {
	case k == Unbounded && r == "direct":
		return fmt.Errorf("the direct runner cannot run streaming jobs; use --runner=prism (default) or a portable runner")
	case k == Unbounded && r == "spark":
		return fmt.Errorf("Spark's portable runner runs only bounded Go pipelines; use --runner=flink or prism for streaming")
	}
	return nil
}

// Run runs p on the selected runner and waits for it.
//
// Embedded prism (--runner=prism, or a streaming job, without --endpoint)
// runs on a job server this process starts and guards so that only
// loopback peers reach it (see guard_linux.go), submitted to through the
// Job API with the LOOPBACK environment — the same path as a remote job
// server.
func Run(ctx context.Context, k Kind, p *beam.Pipeline) (beam.PipelineResult, error) {
	if err := Check(k); err != nil {
		return nil, err
	}
	runner := Name(k)
	if runner == "prism" && *jobopts.Endpoint == "" {
		atLeastTwoPs()
		ep, err := embeddedPrism(ctx)
		if err != nil {
			return nil, err
		}
		if ep != "" {
			oldEnv := *jobopts.EnvironmentType
			*jobopts.Endpoint = ep
			if oldEnv == "" {
				*jobopts.EnvironmentType = "loopback"
			}
			defer func() { *jobopts.Endpoint, *jobopts.EnvironmentType = "", oldEnv }()
		}
	}
	defaultWorkerBinary(runner)
	return beam.Run(ctx, runner, p)
}

// atLeastTwoPs raises GOMAXPROCS to 2 where it is 1 (one CPU, or a
// container limited to one CPU, which Go reads since 1.25). With one P,
// embedded prism v2.77.0 stalled streaming jobs for good: in bench/stream,
// six runs of seven with GOMAXPROCS=1 (the three with counters after every
// record was written, every shard polling an idle stream), with eight
// bundles (prism's limit) waiting for input its data stream did not send.
// With GOMAXPROCS=2 on one CPU, none of three stalled, nor any of three
// with GOMAXPROCS=1 in the environment once this raised it. A second P
// costs a thread, not a CPU.
func atLeastTwoPs() {
	if goruntime.GOMAXPROCS(0) < 2 {
		goruntime.GOMAXPROCS(2)
	}
}

// InProcess says whether a job of kind k runs all its workers in this
// process (direct, embedded prism, or a LOOPBACK environment), so that the
// process-local counter totals (metrics.Local) are the job's counters.
func InProcess(k Kind) bool {
	r := Name(k)
	return r == "direct" || (r == "prism" && *jobopts.Endpoint == "") || strings.EqualFold(*jobopts.EnvironmentType, "loopback")
}

// CountersOf returns, before a job of kind k runs, the function that gives
// its Fineo counters afterwards: the process-local totals when every
// worker runs in this process (exact; prism v2.77.0 can lose the value of
// a counter two bundles first report at once, see metrics.Local), else
// the runner's metrics.
func CountersOf(k Kind) func(beam.PipelineResult) metrics.Summary {
	if !InProcess(k) {
		return metrics.FromResult
	}
	before := metrics.Local()
	return func(beam.PipelineResult) metrics.Summary { return metrics.Local().Since(before) }
}

// embedded is the process's guarded prism job server, started once.
var embedded struct {
	sync.Mutex
	endpoint string
}

func embeddedPrism(ctx context.Context) (string, error) {
	embedded.Lock()
	defer embedded.Unlock()
	if embedded.endpoint != "" {
		return embedded.endpoint, nil
	}
	ep, err := startGuardedPrism(context.WithoutCancel(ctx))
	embedded.endpoint = ep
	return ep, err
}

// defaultWorkerBinary makes a portable submission whose workers run outside
// this process (PROCESS, DOCKER, EXTERNAL environments) use this very binary
// as the SDK worker — fineo re-executes itself with --worker — instead of
// Beam's default of running `go build` on the main package at every submit,
// which needs the source and a Go toolchain. Only on linux/amd64, the
// platform of the SDK harness images; elsewhere pass --worker_binary.
func defaultWorkerBinary(runner string) {
	switch runner {
	case "universal", "portable", "flink", "spark", "prism":
	default:
		return
	}
	env := strings.ToLower(*jobopts.EnvironmentType)
	if *jobopts.Endpoint == "" || env == "loopback" || *jobopts.WorkerBinary != "" ||
		goruntime.GOOS != "linux" || goruntime.GOARCH != "amd64" {
		return
	}
	if exe, err := os.Executable(); err == nil {
		*jobopts.WorkerBinary = exe
	}
}
