package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/ops/progress"
	"github.com/fineo-io/ingest/runners"
)

// cmdRestore runs "fineo restore": it loads fast-restore backup files
// (gzip JSON Lines in DynamoDB's export format) into the nearline table.
func cmdRestore(ctx context.Context, args []string) error {
	return runRestore(ctx, args, os.Stdout)
}

func runRestore(ctx context.Context, args []string, out io.Writer) error {
	var (
		backup, prefix, table, failedOut string
		create, quiet                    bool
		concurrency, maxAttempts         int
		ttl                              time.Duration
	)
	err := parseBeamFlags("restore", args, func(fs *flag.FlagSet) {
		fs.StringVar(&backup, "backup", "", "where the backup files are: a directory or s3://bucket/prefix (required)")
		fs.StringVar(&prefix, "prefix", "", "restore only the files whose path under --backup starts with this")
		fs.StringVar(&table, "table", "", "the DynamoDB table to restore into (required)")
		fs.BoolVar(&create, "create-table", false, "create the nearline table first if it is missing (TTL on expires_at where supported)")
		fs.IntVar(&concurrency, "concurrency", 4, "BatchWriteItem calls in flight per worker")
		fs.IntVar(&maxAttempts, "max-attempts", 8, "calls per batch of 25 items before its remaining items count as failed")
		fs.StringVar(&failedOut, "failed-out", "", "write the items that failed to this file (a directory path or s3://...), as a backup file that restore can read again")
		fs.BoolVar(&quiet, "quiet", false, "no progress lines")
		fs.DurationVar(&ttl, "ttl", dynamodbio.DefaultRetention, "restored items expire this long after the restore (expires_at; negative: no TTL). A backup's own expires_at counts from each event's time, which would delete old data at once")
	})
	if err != nil {
		return err
	}
	if err := requireFlags("backup", backup, "table", table); err != nil {
		return err
	}

	st, err := blob.Open(ctx, backup)
	if err != nil {
		return err
	}
	objs, err := dynamodbio.ListBackupFiles(ctx, st, prefix)
	if err != nil {
		return err
	}
	files := make([]string, len(objs))
	for i, o := range objs {
		files[i] = o.Path
	}
	fmt.Fprintf(out, "fineo restore: %s (%d file(s)) → table %s, runner %s\n", st.URL(prefix), len(files), table, runners.Name(runners.Bounded))
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return err
	}
	if err := prepareTable(ctx, client, table, create, dynamodbio.LayoutOptions{}, out); err != nil {
		return err
	}

	// Why items failed: in-process workers report them here (remote
	// workers log counts only).
	var mu sync.Mutex
	var reasons []dynamodbio.FailedItem
	dynamodbio.SetRestoreFailureSink(func(fi dynamodbio.FailedItem) {
		mu.Lock()
		defer mu.Unlock()
		if len(reasons) < 5 {
			reasons = append(reasons, fi)
		}
	})
	defer dynamodbio.SetRestoreFailureSink(nil)

	expiresAt := int64(-1)
	if ttl >= 0 {
		expiresAt = time.Now().Add(ttl).Unix()
		fmt.Fprintf(out, "restored items expire at %s (--ttl %s from now)\n", time.Unix(expiresAt, 0).UTC().Format(time.RFC3339), ttl)
	} else {
		fmt.Fprintln(out, "restored items do not expire (--ttl negative)")
	}
	p, s := beam.NewPipelineWithRoot()
	dynamodbio.RestoreFiles(s, dynamodbio.RestoreConfig{Backup: backup, Table: table, FailedOut: failedOut, ExpiresAt: expiresAt,
		Writer: dynamodbio.WriterOptions{MaxAttempts: maxAttempts, Concurrency: concurrency}}, files)
	stop := startProgress(quiet, "restore", progress.Totals{Files: int64(len(files))},
		map[string]progress.Field{dynamodbio.RestoreFilesDone: progress.Files, dynamodbio.RestoreItems: progress.Events})
	counters := runners.CountersOf(runners.Bounded)
	start := time.Now()
	pr, rerr := runners.Run(ctx, runners.Bounded, p)
	stop()
	elapsed := time.Since(start)
	sum := counters(pr)

	rate := 0.0
	if elapsed > 0 {
		rate = float64(sum[dynamodbio.RestoreWritten]) / elapsed.Seconds()
	}
	fmt.Fprintf(out, "  %-12s %d\n", "files", sum[dynamodbio.RestoreFilesDone])
	fmt.Fprintf(out, "  %-12s %d\n", "items", sum[dynamodbio.RestoreItems])
	fmt.Fprintf(out, "  %-12s %d\n", "written", sum[dynamodbio.RestoreWritten])
	if n := sum[dynamodbio.RestoreDuplicates]; n > 0 {
		fmt.Fprintf(out, "  %-12s %d (same key again; the last copy was written)\n", "duplicates", n)
	}
	failed := sum[dynamodbio.RestoreFailed]
	fmt.Fprintf(out, "  %-12s %d\n", "failed", failed)
	fmt.Fprintf(out, "  %-12s %d calls, %d retries, %d throttled, %d unprocessed\n", "requests",
		sum[dynamodbio.RestoreCalls], sum[dynamodbio.RestoreRetries], sum[dynamodbio.RestoreThrottles], sum[dynamodbio.RestoreUnprocessed])
	fmt.Fprintf(out, "  %-12s %s (%.0f items/s)\n", "elapsed", elapsed.Round(time.Millisecond), rate)
	for i, f := range reasons {
		fmt.Fprintf(out, "  failed %s/%s: %s\n", attrString(f.Item, dynamodbio.AttrPK), attrString(f.Item, dynamodbio.AttrSK), f.Reason)
		if i == len(reasons)-1 && failed > int64(len(reasons)) {
			fmt.Fprintf(out, "  … and %d more\n", failed-int64(len(reasons)))
		}
	}
	if failed > 0 && failedOut != "" && rerr == nil {
		fmt.Fprintf(out, "  the failed items are in %s (restore them with --backup of its directory)\n", failedOut)
	}
	if rerr != nil {
		return fmt.Errorf("pipeline failed: %w", rerr)
	}
	if failed > 0 {
		return &exitError{code: 3, err: fmt.Errorf("%d of %d item(s) were not restored", failed, sum[dynamodbio.RestoreItems])}
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
