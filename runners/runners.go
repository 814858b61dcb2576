// Package runners selects and runs the Beam runner for a Fineo job from
// Beam's standard flags (--runner, --endpoint, --environment_type, ...).
//
// Defaults: bounded jobs (ingest) run on Beam's in-process direct runner,
// which opens no network port and moves batches with less overhead;
// unbounded jobs need prism. --runner=prism|direct|universal|flink|spark|dataflow
// chooses explicitly.
package runners

import (
	"context"
	"fmt"
	"strings"

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
func Run(ctx context.Context, k Kind, p *beam.Pipeline) (beam.PipelineResult, error) {
	if err := Check(k); err != nil {
		return nil, err
	}
	return beam.Run(ctx, Name(k), p)
}
