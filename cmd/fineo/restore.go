package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
)

// cmdRestore runs "fineo restore": it loads fast-restore backup files
// (gzip JSON Lines in DynamoDB's export format) into the nearline table.
func cmdRestore(ctx context.Context, args []string) error {
	return runRestore(ctx, args, os.Stdout)
}

func runRestore(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fineo restore", flag.ContinueOnError)
	backup := fs.String("backup", "", "where the backup files are: a directory or s3://bucket/prefix (required)")
	prefix := fs.String("prefix", "", "restore only the files whose path under --backup starts with this")
	table := fs.String("table", "", "the DynamoDB table to restore into (required)")
	create := fs.Bool("create-table", false, "create the nearline table first if it is missing (TTL on expires_at where supported)")
	concurrency := fs.Int("concurrency", 4, "BatchWriteItem calls in flight")
	maxAttempts := fs.Int("max-attempts", 8, "calls per batch of 25 items before its remaining items count as failed")
	failedOut := fs.String("failed-out", "", "write the items that failed to this local file, as a backup file that restore can read again")
	quiet := fs.Bool("quiet", false, "no progress lines")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fineo restore --backup DIR|s3://... --table NAME [--create-table] [--prefix P]\n\n"+
			"Writes every item of the backup files (*.jsonl.gz, and *.json.gz of a native DynamoDB export)\n"+
			"into the table. Restoring twice is harmless: items overwrite themselves. DynamoDB endpoint and\n"+
			"credentials come from the standard AWS configuration (AWS_ENDPOINT_URL_DYNAMODB, ...).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err)
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *backup == "":
		return usageError(errors.New("--backup is required"))
	case *table == "":
		return usageError(errors.New("--table is required"))
	}

	st, err := blob.Open(ctx, *backup)
	if err != nil {
		return err
	}
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fineo restore: %s → table %s\n", st.URL(*prefix), *table)
	if *create {
		rep, err := dynamodbio.EnsureTable(ctx, client, *table)
		if err != nil {
			return err
		}
		printTableReport(out, rep)
	}

	start := time.Now()
	var mu sync.Mutex
	lastPrint := start
	progress := func(files, items int64) {
		if *quiet {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if now.Sub(lastPrint) < time.Second {
			return
		}
		lastPrint = now
		fmt.Fprintf(out, "  … %d file(s) done, %d item(s), %.0f items/s\n", files, items, float64(items)/now.Sub(start).Seconds())
	}
	o := dynamodbio.WriterOptions{MaxAttempts: *maxAttempts, Concurrency: *concurrency}
	stats, failed, rerr := dynamodbio.Restore(ctx, client, *table, st, *prefix, o, progress)

	elapsed := stats.Elapsed
	rate := 0.0
	if elapsed > 0 {
		rate = float64(stats.Written) / elapsed.Seconds()
	}
	fmt.Fprintf(out, "  %-12s %d\n", "files", stats.Files)
	fmt.Fprintf(out, "  %-12s %d\n", "items", stats.Items)
	fmt.Fprintf(out, "  %-12s %d\n", "written", stats.Written)
	if stats.Duplicates > 0 {
		fmt.Fprintf(out, "  %-12s %d (same key again; the last copy was written)\n", "duplicates", stats.Duplicates)
	}
	fmt.Fprintf(out, "  %-12s %d\n", "failed", stats.Failed)
	fmt.Fprintf(out, "  %-12s %d calls, %d retries, %d throttled, %d unprocessed\n", "requests",
		stats.Writes.Calls, stats.Writes.Retries, stats.Writes.Throttles, stats.Writes.Unprocessed)
	fmt.Fprintf(out, "  %-12s %s (%.0f items/s)\n", "elapsed", elapsed.Round(time.Millisecond), rate)

	if len(failed) > 0 {
		for i, f := range failed {
			if i == 5 {
				fmt.Fprintf(out, "  … and %d more\n", len(failed)-5)
				break
			}
			fmt.Fprintf(out, "  failed %s/%s: %s\n", attrString(f.Item, dynamodbio.AttrPK), attrString(f.Item, dynamodbio.AttrSK), f.Reason)
		}
		if *failedOut != "" {
			if err := writeFailed(*failedOut, failed); err != nil {
				return fmt.Errorf("write --failed-out: %w (and %d item(s) failed)", err, len(failed))
			}
			fmt.Fprintf(out, "  the failed items are in %s (restore them with --backup of its directory)\n", *failedOut)
		}
	}
	if rerr != nil {
		return rerr
	}
	if len(failed) > 0 {
		return &exitError{code: 3, err: fmt.Errorf("%d of %d item(s) were not restored", len(failed), stats.Items)}
	}
	return nil
}

// attrString renders a string or number attribute for messages.
func attrString(item map[string]types.AttributeValue, name string) string {
	switch v := item[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case nil:
		return "(no " + name + ")"
	}
	return "(" + name + " not a string)"
}

func writeFailed(path string, failed []dynamodbio.FailedItem) error {
	items := make([]map[string]types.AttributeValue, len(failed))
	for i, f := range failed {
		items[i] = f.Item
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := dynamodbio.WriteBackup(f, items); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
