package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/records"
)

// maxQueryBuckets bounds a query: each time bucket in the range costs one
// DynamoDB Query call per shard of the bucket, even when it is empty.
const maxQueryBuckets = 24 * 31

// cmdQuery runs "fineo query": prints nearline events of one tenant and metric.
func cmdQuery(ctx context.Context, args []string) error {
	return runQuery(ctx, args, os.Stdout)
}

func runQuery(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fineo query", flag.ContinueOnError)
	table := fs.String("table", "", "nearline table (required)")
	tenant := fs.String("tenant", "", "tenant id (required)")
	metric := fs.String("metric", "", "canonical metric name (required)")
	from := fs.String("from", "", "start of the time range, inclusive: RFC 3339 or epoch millis (required)")
	to := fs.String("to", "", "end of the time range, exclusive: RFC 3339 or epoch millis (default: now)")
	format := fs.String("format", "jsonl", "output: jsonl (one event per line) or table")
	limit := fs.Int("limit", 1000, "print at most this many events (0: all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err)
	}
	if *table == "" || *tenant == "" || *metric == "" || *from == "" {
		return usageError(errors.New("--table, --tenant, --metric and --from are required"))
	}
	lo, err := parseWhen(*from)
	if err != nil {
		return usageError(fmt.Errorf("--from: %v", err))
	}
	hi := time.Now().UnixMilli()
	if *to != "" {
		if hi, err = parseWhen(*to); err != nil {
			return usageError(fmt.Errorf("--to: %v", err))
		}
	}
	if hi <= lo {
		return usageError(errors.New("--to must be after --from"))
	}
	if n := (hi - lo) / dynamodbio.DefaultBucket.Milliseconds(); n > maxQueryBuckets {
		return usageError(fmt.Errorf("range spans %d hourly buckets (a request per shard of each); query at most %d days at a time", n, maxQueryBuckets/24))
	}
	if *format != "jsonl" && *format != "table" {
		return usageError(fmt.Errorf("--format %q: want jsonl or table", *format))
	}
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		return err
	}
	var tw *tabwriter.Writer
	if *format == "table" {
		tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIMESTAMP\tEVENT_ID\tFIELDS\tUNKNOWN_FIELDS")
	}
	n := 0
	errLimit := errors.New("limit reached")
	layout, err := openTableLayout(ctx, client, *table, dynamodbio.LayoutOptions{})
	if err != nil {
		return err
	}
	qs, err := layout.Query(ctx, *tenant, *metric, lo, hi, func(ev *records.Event) error {
		if *limit > 0 && n >= *limit {
			return errLimit
		}
		n++
		if tw == nil {
			_, err := fmt.Fprintf(out, "%s\n", archive.EventJSON(ev))
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", time.UnixMilli(ev.Timestamp).UTC().Format(time.RFC3339Nano), ev.ID, fieldsText(ev.Fields), unknownText(ev.Unknown))
		return nil
	})
	if tw != nil {
		tw.Flush()
	}
	if err != nil && !errors.Is(err, errLimit) {
		return err
	}
	more := ""
	if errors.Is(err, errLimit) {
		more = fmt.Sprintf(" (stopped at --limit %d)", *limit)
	}
	fmt.Fprintf(os.Stderr, "%d event(s)%s; %d bucket(s) × their partition keys = %d keys, %d DynamoDB Query call(s)\n", n, more, qs.Buckets, qs.Keys, qs.Calls)
	return nil
}

func parseWhen(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither RFC 3339 nor epoch millis", s)
	}
	return t.UnixMilli(), nil
}

func fieldsText(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, m[k])
	}
	return strings.Join(parts, " ")
}

func unknownText(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}
