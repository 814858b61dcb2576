package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/io/dynamodbio"
)

// cmdTable runs "fineo table ...": management of the DynamoDB nearline table.
func cmdTable(ctx context.Context, args []string) error {
	return runTable(ctx, args, os.Stdout)
}

const tableUsage = `Usage:
  fineo table create --table NAME [--shards N] [--bucket 1h]
  fineo table shards --table NAME --tenant T --metric M [--set N]

create makes the nearline table if it is missing (pk S HASH, sk S RANGE,
on-demand billing), waits until it is ACTIVE, enables TTL on expires_at where
the service supports it, and records the key layout in the table: events of a
tenant's metric in one time bucket (--bucket) are spread over N partition keys
by their event id (--shards, default 8 for every metric without its own N).
Running it again is harmless; the recorded layout does not change.

shards prints the N recorded for one metric, or with --set records a larger N
from one minute from now on (N is never lowered; writers also raise it by
themselves when DynamoDB throttles a metric for a while).

The DynamoDB endpoint and credentials come from the standard AWS
configuration (AWS_ENDPOINT_URL_DYNAMODB, ...).
`

func runTable(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, tableUsage)
		return usageError(errors.New("missing subcommand (create or shards)"))
	}
	switch args[0] {
	case "create", "shards":
	case "help", "-h", "--help":
		fmt.Fprint(out, tableUsage)
		return nil
	default:
		return usageError(fmt.Errorf("unknown subcommand %q (want create or shards)", args[0]))
	}
	fs := flag.NewFlagSet("fineo table "+args[0], flag.ContinueOnError)
	table := fs.String("table", "", "the table's name (required)")
	var shards, set int
	var bucket time.Duration
	var tenant, metric string
	if args[0] == "create" {
		fs.IntVar(&shards, "shards", dynamodbio.DefaultShards, fmt.Sprintf("partition keys per metric and time bucket, for metrics without their own (1-%d)", dynamodbio.MaxShards))
		fs.DurationVar(&bucket, "bucket", dynamodbio.DefaultBucket, "time bucket of the partition key")
	} else {
		fs.StringVar(&tenant, "tenant", "", "tenant id (required)")
		fs.StringVar(&metric, "metric", "", "canonical metric name (required)")
		fs.IntVar(&set, "set", 0, "record this N (larger than the current one) from one minute from now on")
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tableUsage+"\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err)
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *table == "":
		return usageError(errors.New("--table is required"))
	case args[0] == "create" && (shards < 1 || shards > dynamodbio.MaxShards):
		return usageError(fmt.Errorf("--shards %d: want 1 to %d", shards, dynamodbio.MaxShards))
	case args[0] == "create" && bucket < time.Minute:
		return usageError(errors.New("--bucket must be at least 1m"))
	case args[0] == "shards" && (tenant == "" || metric == ""):
		return usageError(errors.New("--tenant and --metric are required"))
	case args[0] == "shards" && (set < 0 || set > dynamodbio.MaxShards):
		return usageError(fmt.Errorf("--set %d: want 1 to %d", set, dynamodbio.MaxShards))
	}
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return err
	}
	if args[0] == "create" {
		rep, err := dynamodbio.EnsureTable(ctx, client, *table, dynamodbio.LayoutOptions{Shards: shards, Bucket: bucket})
		if err != nil {
			return err
		}
		printTableReport(out, rep)
		return nil
	}
	l, err := openTableLayout(ctx, client, *table, dynamodbio.LayoutOptions{})
	if err != nil {
		return err
	}
	if set > 0 {
		sc, err := l.Raise(ctx, tenant, metric, set, "fineo table shards --set")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "recorded: %s/%s has %d shards for events from %s on\n", tenant, metric, sc.Shards, time.UnixMilli(sc.From).UTC().Format(time.RFC3339))
	}
	def, counts, err := l.ShardCounts(ctx, tenant, metric)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "table %s: %s\n", *table, layoutText(l))
	fmt.Fprintf(out, "%s/%s: %d shards (the table's default) until a recorded change\n", tenant, metric, def)
	for _, c := range counts {
		fmt.Fprintf(out, "%s/%s: %d shards for events from %s on\n", tenant, metric, c.Shards, time.UnixMilli(c.From).UTC().Format(time.RFC3339))
	}
	return nil
}

// openTableLayout opens table's recorded layout; a missing table is a usage
// error that says how to create it.
func openTableLayout(ctx context.Context, api dynamodbio.API, table string, lo dynamodbio.LayoutOptions) (*dynamodbio.Layout, error) {
	l, err := dynamodbio.OpenLayout(ctx, api, table, lo)
	var missing *types.ResourceNotFoundException
	if errors.As(err, &missing) {
		return nil, usageError(fmt.Errorf("nearline table %s does not exist: create it with `fineo table create --table %[1]s`, or pass --create-table", table))
	}
	return l, err
}

// prepareTable makes the nearline table ready for a job that writes it:
// with create, EnsureTable (its report printed to out); else the table must
// exist, and a table with no recorded layout gets one (InitLayout).
func prepareTable(ctx context.Context, api dynamodbio.API, table string, create bool, lo dynamodbio.LayoutOptions, out io.Writer) error {
	if create {
		rep, err := dynamodbio.EnsureTable(ctx, api, table, lo)
		if err != nil {
			return err
		}
		printTableReport(out, rep)
		return nil
	}
	if _, err := openTableLayout(ctx, api, table, lo); err != nil {
		return err
	}
	l, err := dynamodbio.InitLayout(ctx, api, table, lo)
	if err == nil && l.Since > 0 && time.Until(time.UnixMilli(l.Since)) > 0 {
		fmt.Fprintf(out, "table %s: upgraded to the sharded key layout for events from %s on (stop writers of older versions)\n",
			table, time.UnixMilli(l.Since).UTC().Format(time.RFC3339))
	}
	return err
}

func printTableReport(out io.Writer, rep dynamodbio.TableReport) {
	what := "exists already"
	if rep.Created {
		what = "created"
	}
	fmt.Fprintf(out, "table %s: %s, %s (pk S HASH, sk S RANGE, on-demand billing)\n", rep.Table, what, rep.Status)
	fmt.Fprintf(out, "TTL: %s\n", rep.TTL)
	if rep.Layout != nil {
		fmt.Fprintf(out, "key layout: %s\n", layoutText(rep.Layout))
	}
}

func layoutText(l *dynamodbio.Layout) string {
	if l.Version == dynamodbio.LayoutV1 {
		return fmt.Sprintf("v1, one partition key per metric and %s bucket", l.Bucket)
	}
	t := fmt.Sprintf("v2, %d partition keys per metric and %s bucket unless a metric records its own", l.Shards, l.Bucket)
	if l.Since > 0 {
		t += fmt.Sprintf(" (v1 keys for events before %s)", time.UnixMilli(l.Since).UTC().Format(time.RFC3339))
	}
	return t
}
