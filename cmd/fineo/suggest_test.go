package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/schemachange"
)

const suggestSchema = `tenant: harbor
metrics:
  - name: weather
    fields:
      - {name: temperature, type: double, aliases: [temp_c]}
      - {name: pressure, type: long}
`

func TestCmdSchemaSuggest(t *testing.T) {
	ctx := context.Background()
	t.Setenv("FINEO_SCHEMAS", "")
	schemas := t.TempDir()
	if err := os.WriteFile(filepath.Join(schemas, "harbor.yaml"), []byte(suggestSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := schemachange.NewReport()
	rep.Run = "run-1"
	for i, raw := range []string{"41", "42.5", "40"} {
		rep.ObserveUnknown("harbor", "weather", "humidity", raw, 1714521600000+int64(i))
	}
	rep.ObserveUnknown("harbor", "weather", "temp_c", "12", 1714521600000)
	rep.ObserveFailedCast("harbor", "weather", "pressure", "long", "1013.25", 1714521600000)
	work := t.TempDir()
	reportPath := filepath.Join(work, "report.json")
	var buf bytes.Buffer
	if err := rep.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reportPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "proposals")

	tests := []struct {
		name    string
		args    []string
		want    []string // substrings of stdout
		wantErr string
	}{
		{"missing report", []string{"--schemas", schemas}, nil, "missing --report"},
		{"missing store", []string{"--report", reportPath}, nil, "no schema store"},
		{"positional", []string{"--report", reportPath, "--schemas", schemas, "extra"}, nil, `unexpected argument "extra"`},
		{"bad min count", []string{"--report", reportPath, "--schemas", schemas, "--min-count", "0"}, nil, "--min-count 0"},
		{"out is the store", []string{"--report", reportPath, "--schemas", schemas, "--out", schemas}, nil, "is the schema store"},
		{"no such report", []string{"--report", filepath.Join(work, "nope.json"), "--schemas", schemas}, nil, "nope.json"},
		{"min count too high", []string{"--report", reportPath, "--schemas", schemas, "--out", out, "--min-count", "10"},
			[]string{"fewer than --min-count 10", "no fields to propose"}, ""},
		{"suggest", []string{"suggest", "--report", reportPath, "--schemas", schemas, "--out", out}, []string{
			"notes:",
			"harbor: weather.temp_c: is already an alias",
			"harbor: weather.pressure: 1 value(s) failed to cast to long", "consider type double",
			"harbor: proposal based on version 1 written to " + filepath.Join(out, "harbor.yaml"),
			"+ field weather.humidity (double)",
			"fineo schema apply " + filepath.Join(out, "harbor.yaml") + " --schemas " + schemas,
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := schemaSuggest(ctx, tt.args, strings.NewReader(""), &stdout)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v\n%s", err, stdout.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}

	// The proposal applies with "fineo schema apply" and adds the field.
	var stdout, stderr bytes.Buffer
	if err := schema.CLI(ctx, []string{"apply", filepath.Join(out, "harbor.yaml"), "--schemas", schemas}, &stdout, &stderr); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !strings.Contains(stdout.String(), "+ field weather.humidity (double)") || !strings.Contains(stdout.String(), "applied harbor version 2") {
		t.Errorf("apply output:\n%s", stdout.String())
	}
	// Suggesting again from the same report now proposes nothing.
	stdout.Reset()
	rd, _ := os.ReadFile(reportPath)
	if err := schemaSuggest(ctx, []string{"--report", "-", "--schemas", schemas, "--out", out}, bytes.NewReader(rd), &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "harbor: weather.humidity: is already field weather.humidity (double) in version 2") ||
		!strings.Contains(stdout.String(), "no fields to propose") {
		t.Errorf("second run output:\n%s", stdout.String())
	}
	// -h prints the usage.
	stdout.Reset()
	if err := schemaSuggest(ctx, []string{"-h"}, nil, &stdout); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stdout.String(), "usage: fineo schema suggest") {
		t.Errorf("-h: %v %q", err, stdout.String())
	}
}
