package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fineo-io/ingest/schema"
	"github.com/fineo-io/ingest/transforms/schemachange"
)

const suggestUsage = `usage: fineo schema suggest --report FILE --schemas DIR [--out DIR] [--min-count N]

Turns a schema-change report written by "fineo batch" into proposed schema
files, one per tenant with fields to add, and prints the diff of each and the
command that applies it. Nothing is applied.

flags:
  --report FILE   schema-change report (JSON; "-" reads stdin)
  --schemas DIR   schema store directory (default $FINEO_SCHEMAS)
  --out DIR       where to write <tenant>.yaml proposals (default ./schema-proposals)
  --min-count N   propose only unknown fields seen at least N times (default 1)`

// cmdSchemaSuggest runs "fineo schema suggest ARGS..."; args are the words
// after "suggest" (a leading "suggest" is accepted too).
func cmdSchemaSuggest(ctx context.Context, args []string) error {
	return schemaSuggest(ctx, args, os.Stdin, os.Stdout)
}

func schemaSuggest(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "suggest" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("fineo schema suggest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reportPath := fs.String("report", "", "")
	dir := fs.String("schemas", os.Getenv("FINEO_SCHEMAS"), "")
	out := fs.String("out", "schema-proposals", "")
	minCount := fs.Int64("min-count", 1, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, suggestUsage)
			return err
		}
		return fmt.Errorf("schema suggest: %v (see fineo schema suggest -h)", err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("schema suggest: unexpected argument %q (see fineo schema suggest -h)", fs.Arg(0))
	case *reportPath == "":
		return errors.New("schema suggest: missing --report FILE")
	case *dir == "":
		return errors.New("schema suggest: no schema store: pass --schemas DIR or set FINEO_SCHEMAS")
	case *out == "":
		return errors.New("schema suggest: --out must not be empty")
	case *minCount < 1:
		return fmt.Errorf("schema suggest: --min-count %d: want 1 or more", *minCount)
	}
	if same, err := sameDir(*out, *dir); err != nil {
		return fmt.Errorf("schema suggest: %w", err)
	} else if same {
		return fmt.Errorf("schema suggest: --out %s is the schema store; proposals must not overwrite its files (apply them instead)", *out)
	}

	report, err := readReport(*reportPath, stdin)
	if err != nil {
		return err
	}
	store, err := schema.OpenStore(ctx, *dir)
	if err != nil {
		return err
	}
	current, err := schema.LoadAll(ctx, store)
	if err != nil {
		return err
	}
	proposals, notes, err := schemachange.Suggest(report, current, *minCount)
	if err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(stdout, "notes:")
		for _, n := range notes {
			fmt.Fprintln(stdout, "  "+n)
		}
	}
	if len(proposals) == 0 {
		if report.Empty() {
			fmt.Fprintln(stdout, "the report has no unknown fields and no failed casts: nothing to propose")
		} else {
			fmt.Fprintln(stdout, "no fields to propose")
		}
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("schema suggest: %w", err)
	}
	byTenant := map[string]*schema.Tenant{}
	for _, t := range current {
		byTenant[t.Tenant] = t
	}
	for _, p := range proposals {
		data, err := schema.Marshal(p)
		if err != nil {
			return err
		}
		path := filepath.Join(*out, p.Tenant+".yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("schema suggest: %w", err)
		}
		fmt.Fprintf(stdout, "\n%s: proposal based on version %d written to %s\n", p.Tenant, p.Version, path)
		for _, ch := range schema.Diff(byTenant[p.Tenant], p) {
			fmt.Fprintf(stdout, "  %s\n", ch)
		}
		fmt.Fprintf(stdout, "review it, then run:\n  fineo schema apply %s --schemas %s\n", shellQuote(path), shellQuote(*dir))
	}
	return nil
}

func readReport(path string, stdin io.Reader) (*schemachange.Report, error) {
	var rd io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("schema suggest: %w", err)
		}
		defer f.Close()
		rd = f
	}
	r, err := schemachange.Read(rd)
	if err != nil {
		return nil, fmt.Errorf("schema suggest: %s: %w", path, err)
	}
	return r, nil
}

// sameDir reports whether a and b name the same existing directory (a need
// not exist).
func sameDir(a, b string) (bool, error) {
	ai, err := os.Stat(a)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	bi, err := os.Stat(b)
	if err != nil {
		return false, nil // OpenStore reports it
	}
	return os.SameFile(ai, bi), nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
