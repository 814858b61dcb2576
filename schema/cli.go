package schema

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"
)

const cliUsage = `usage: fineo schema [--schemas DIR] COMMAND
commands:
  list                      list tenants with their current version
  show TENANT [--version N] print the current (or Nth) version as YAML
  history TENANT            list every version and its changes
  apply FILE [--dry-run]    validate FILE, show the diff and record it
  suggest --report FILE     propose schema changes from a batch's schema-change report
                            (see fineo schema suggest -h)
flags:
  --schemas DIR             schema store directory (default $FINEO_SCHEMAS)`

// ErrUsage is wrapped by the errors of CLI that are a mistake in the
// command line (the command exits 2).
var ErrUsage = errors.New("usage")

// CLI runs "fineo schema ARGS...". Flags may come before or after the
// command word. Output goes to stdout; the returned error is the message to
// show the user.
func CLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fineo schema", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	dir := fs.String("schemas", os.Getenv("FINEO_SCHEMAS"), "")
	dryRun := fs.Bool("dry-run", false, "")
	version := fs.Int("version", 0, "")
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, cliUsage)
		return nil
	}
	if err != nil {
		return fmt.Errorf("fineo schema: %v (see fineo schema -h)%w", err, usageMark)
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, cliUsage)
		return fmt.Errorf("fineo schema: missing command: list, show, history, apply or suggest%w", usageMark)
	}
	cmd, rest := pos[0], pos[1:]
	if err := checkFlags(fs, cmd); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("fineo schema: no schema store: pass --schemas DIR or set FINEO_SCHEMAS")
	}
	store, err := OpenStore(ctx, *dir)
	if err != nil {
		return err
	}
	c := &cli{store: store, out: stdout}
	switch cmd {
	case "list":
		return c.withArgs(cmd, rest, 0, func([]string) error { return c.list(ctx) })
	case "show":
		return c.withArgs(cmd, rest, 1, func(a []string) error { return c.show(ctx, a[0], *version) })
	case "history":
		return c.withArgs(cmd, rest, 1, func(a []string) error { return c.history(ctx, a[0]) })
	case "apply":
		return c.withArgs(cmd, rest, 1, func(a []string) error { return c.apply(ctx, a[0], *dryRun) })
	}
	return fmt.Errorf("fineo schema: unknown command %q: want list, show, history or apply", cmd)
}

// parseInterleaved parses flags that may appear before, between or after the
// positional arguments, and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// checkFlags refuses command-specific flags given to another command.
func checkFlags(fs *flag.FlagSet, cmd string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		only := map[string]string{"dry-run": "apply", "version": "show"}[f.Name]
		if only != "" && only != cmd && err == nil {
			err = fmt.Errorf("fineo schema: --%s only applies to %s", f.Name, only)
		}
	})
	return err
}

type cli struct {
	store Store
	out   io.Writer
}

func (c *cli) withArgs(cmd string, args []string, n int, run func([]string) error) error {
	if len(args) != n {
		return fmt.Errorf("fineo schema %s: want %d argument(s), got %d (see fineo schema -h)", cmd, n, len(args))
	}
	return run(args)
}

func (c *cli) list(ctx context.Context) error {
	tenants, err := LoadAll(ctx, c.store)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tVERSION\tUPDATED\tMETRICS")
	for _, t := range tenants {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", t.Tenant, t.Version, formatTime(t.UpdatedAt), len(t.Metrics))
	}
	return w.Flush()
}

func (c *cli) show(ctx context.Context, tenant string, version int) error {
	t, err := c.version(ctx, tenant, version)
	if err != nil {
		return err
	}
	data, err := Marshal(t)
	if err != nil {
		return err
	}
	_, err = c.out.Write(data)
	return err
}

// version returns the given version of tenant, or the current one for 0.
func (c *cli) version(ctx context.Context, tenant string, version int) (*Tenant, error) {
	if version == 0 {
		return c.store.Get(ctx, tenant)
	}
	hist, err := c.store.History(ctx, tenant)
	if err != nil {
		return nil, err
	}
	for _, t := range hist {
		if t.Version == version {
			return t, nil
		}
	}
	return nil, fmt.Errorf("fineo schema: tenant %s has no version %d (current is %d)", tenant, version, hist[len(hist)-1].Version)
}

func (c *cli) history(ctx context.Context, tenant string) error {
	hist, err := c.store.History(ctx, tenant)
	if err != nil {
		return err
	}
	var prev *Tenant
	for _, t := range hist {
		changes := Diff(prev, t)
		fmt.Fprintf(c.out, "v%d  %s  %s\n", t.Version, formatTime(t.UpdatedAt), plural(len(changes), "change"))
		for _, ch := range changes {
			fmt.Fprintf(c.out, "  %s\n", ch)
		}
		prev = t
	}
	return nil
}

func (c *cli) apply(ctx context.Context, path string, dryRun bool) error {
	t, err := ReadFile(path)
	if err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	run := c.store.Apply
	if dryRun {
		run = func(ctx context.Context, t *Tenant) (*Tenant, []Change, error) { return Plan(ctx, c.store, t) }
	}
	next, changes, err := run(ctx, t)
	if err != nil {
		return err
	}
	for _, ch := range changes {
		fmt.Fprintln(c.out, ch)
	}
	switch {
	case len(changes) == 0:
		fmt.Fprintf(c.out, "no changes to %s (version %d)\n", next.Tenant, next.Version)
	case dryRun:
		fmt.Fprintf(c.out, "dry run: would apply %s version %d\n", next.Tenant, next.Version)
	default:
		fmt.Fprintf(c.out, "applied %s version %d\n", next.Tenant, next.Version)
	}
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// usageMark wraps ErrUsage into an error without adding to its message.
var usageMark = markErr{}

type markErr struct{}

func (markErr) Error() string { return "" }
func (markErr) Unwrap() error { return ErrUsage }
