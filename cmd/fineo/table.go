package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/fineo-io/ingest/io/dynamodbio"
)

// cmdTable runs "fineo table ...": management of the DynamoDB nearline table.
func cmdTable(ctx context.Context, args []string) error {
	return runTable(ctx, args, os.Stdout)
}

const tableUsage = `Usage: fineo table create --table NAME

Creates the nearline table if it is missing (pk S HASH, sk S RANGE, on-demand
billing), waits until it is ACTIVE and enables TTL on expires_at where the
service supports it. Running it again is harmless. The DynamoDB endpoint and
credentials come from the standard AWS configuration (AWS_ENDPOINT_URL_DYNAMODB, ...).
`

func runTable(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, tableUsage)
		return usageError(errors.New("missing subcommand (create)"))
	}
	switch args[0] {
	case "create":
	case "help", "-h", "--help":
		fmt.Fprint(out, tableUsage)
		return nil
	default:
		return usageError(fmt.Errorf("unknown subcommand %q (want create)", args[0]))
	}
	fs := flag.NewFlagSet("fineo table create", flag.ContinueOnError)
	table := fs.String("table", "", "the table's name (required)")
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
	}
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return err
	}
	rep, err := dynamodbio.EnsureTable(ctx, client, *table)
	if err != nil {
		return err
	}
	printTableReport(out, rep)
	return nil
}

func printTableReport(out io.Writer, rep dynamodbio.TableReport) {
	what := "exists already"
	if rep.Created {
		what = "created"
	}
	fmt.Fprintf(out, "table %s: %s, %s (pk S HASH, sk S RANGE, on-demand billing)\n", rep.Table, what, rep.Status)
	fmt.Fprintf(out, "TTL: %s\n", rep.TTL)
}
