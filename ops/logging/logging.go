// Package logging sets up Fineo's structured logs: log/slog, text or JSON,
// on stderr, with every line redacted (package redact). Beam's own logs
// (beam/log) go through slog's default logger once beam.Init has run, and
// so does the standard library's log package, so one call to Install after
// beam.Init covers Fineo's, Beam's and the runners' log lines.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"github.com/fineo-io/ingest/ops/redact"
)

// Formats accepted by --log-format.
const (
	Text = "text"
	JSON = "json"
)

// Config is the parsed --log-level and --log-format.
type Config struct {
	Level  slog.Level
	Format string
}

// Parse validates --log-level and --log-format and tells Beam about them, so
// that beam.Init (and SDK workers started with these flags) log the same way.
func Parse(level, format string) (Config, error) {
	var c Config
	if err := c.Level.UnmarshalText([]byte(level)); err != nil {
		return c, fmt.Errorf("--log-level: %v", err)
	}
	c.Format = strings.ToLower(format)
	if c.Format != Text && c.Format != JSON {
		return c, fmt.Errorf("--log-format %q: want text or json", format)
	}
	beamlog.LogLevel = strings.ToLower(level)
	beamlog.LogKind = c.Format
	return c, nil
}

// Handler returns the redacting handler for c writing to w.
func (c Config) Handler(w io.Writer) slog.Handler {
	opts := &slog.HandlerOptions{Level: c.Level}
	var h slog.Handler
	if c.Format == JSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return redact.Handler(h)
}

// Install makes the redacting handler slog's default. Call it after
// beam.Init, which replaces the default with its own handler.
func (c Config) Install(w io.Writer) {
	slog.SetDefault(slog.New(c.Handler(w)))
}
