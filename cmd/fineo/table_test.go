package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
)

// TestTableShards runs the README's commands for the nearline key layout:
// `fineo table create --table T --shards 8 --bucket 1h` and `fineo table
// shards --table T --tenant acme --metric temp [--set 32]`.
func TestTableShards(t *testing.T) {
	ctx := context.Background()
	testenv.DynamoDB(t)
	table := testenv.UniqueName(t, "nearline")
	var out bytes.Buffer
	if err := runTable(ctx, []string{"create", "--table", table, "--shards", "8", "--bucket", "1h"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "key layout: v2, 8 partition keys per metric and 1h0m0s bucket") {
		t.Errorf("create output:\n%s", out.String())
	}
	out.Reset()
	if err := runTable(ctx, []string{"shards", "--table", table, "--tenant", "acme", "--metric", "temp", "--set", "32"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "recorded: acme/temp has 32 shards for events from ") ||
		!strings.Contains(out.String(), "acme/temp: 8 shards (the table's default)") {
		t.Errorf("shards --set output:\n%s", out.String())
	}
	out.Reset()
	if err := runTable(ctx, []string{"shards", "--table", table, "--tenant", "acme", "--metric", "temp"}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "acme/temp: 32 shards for events from") != 1 {
		t.Errorf("shards output:\n%s", out.String())
	}
	// What the table records is what every writer and reader uses.
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, err := dynamodbio.OpenLayout(ctx, client, table, dynamodbio.LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	def, counts, err := l.ShardCounts(ctx, "acme", "temp")
	if err != nil || def != 8 || len(counts) != 1 || counts[0].Shards != 32 {
		t.Errorf("recorded: default %d, %+v, %v", def, counts, err)
	}
	// N is never lowered; bad invocations are usage errors.
	if err := runTable(ctx, []string{"shards", "--table", table, "--tenant", "acme", "--metric", "temp", "--set", "16"}, &out); err == nil || !strings.Contains(err.Error(), "never lowered") {
		t.Errorf("lowering N: %v", err)
	}
	for _, args := range [][]string{
		{"shards", "--table", table},
		{"shards", "--table", table, "--tenant", "acme", "--metric", "temp", "--set", "1000"},
		{"create", "--table", table, "--shards", "0"},
		{"create", "--table", table, "--bucket", "1s"},
	} {
		if code := exitCode(runTable(ctx, args, &out)); code != 2 {
			t.Errorf("table %q: exit code %d, want 2", args, code)
		}
	}
	if code := exitCode(runTable(ctx, []string{"shards", "--table", "no-such-table", "--tenant", "a", "--metric", "b"}, &out)); code != 2 {
		t.Errorf("shards of a missing table: exit code %d, want 2", code)
	}
}
