package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/records"
)

func TestQuery(t *testing.T) {
	ctx := context.Background()
	testenv.DynamoDB(t)
	client, err := dynamodbio.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	table := testenv.UniqueName(t, "q")
	if err := dynamodbio.CreateTable(ctx, client, table, dynamodbio.LayoutOptions{}); err != nil {
		t.Fatal(err)
	}
	base := int64(1700000000000) // 2023-11-14T22:13:20Z
	var items []map[string]types.AttributeValue
	for i := int64(0); i < 5; i++ {
		ev := &records.Event{ID: "e" + string(rune('a'+i)), Tenant: "harbor", Metric: "weather", MetricAlias: "wx",
			Timestamp: base + i*1800_000, Fields: map[string]any{"temperature": 20.5 + float64(i)}}
		items = append(items, dynamodbio.Item(ev, dynamodbio.ItemOptions{}))
	}
	other := &records.Event{ID: "x", Tenant: "skyline", Metric: "weather", Timestamp: base}
	items = append(items, dynamodbio.Item(other, dynamodbio.ItemOptions{}))
	layout, err := dynamodbio.OpenLayout(ctx, client, table, dynamodbio.LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := layout.Place(ctx, it, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, failed, err := dynamodbio.WriteItems(ctx, client, table, items, dynamodbio.WriterOptions{}); err != nil || len(failed) > 0 {
		t.Fatal(err, failed)
	}

	var out bytes.Buffer
	// [base+30min, base+2h): events b, c, d — across two hourly buckets, in time order.
	err = runQuery(ctx, []string{"--table", table, "--tenant", "harbor", "--metric", "weather",
		"--from", "2023-11-14T22:43:20Z", "--to", "1700007200000"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"eb", "ec", "ed"} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil || m["event_id"] != want || m["tenant"] != "harbor" {
			t.Errorf("line %d = %s (%v), want event %s", i, lines[i], err, want)
		}
	}

	out.Reset()
	if err := runQuery(ctx, []string{"--table", table, "--tenant", "harbor", "--metric", "weather", "--from", "1700000000000", "--to", "1700009000000", "--format", "table", "--limit", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "TIMESTAMP") || !strings.Contains(got, "temperature=20.5") || strings.Count(got, "\n") != 3 {
		t.Errorf("table output:\n%s", got)
	}

	for _, bad := range [][]string{
		{"--table", table},
		{"--table", table, "--tenant", "harbor", "--metric", "weather", "--from", "yesterday"},
		{"--table", table, "--tenant", "harbor", "--metric", "weather", "--from", "0", "--to", "1700000000000"},
	} {
		var ee *exitError
		if err := runQuery(ctx, bad, &out); err == nil || !asExit(err, &ee) || ee.code != 2 {
			t.Errorf("%v: want a usage error, got %v", bad, err)
		}
	}
}

func asExit(err error, target **exitError) bool {
	e, ok := err.(*exitError)
	if ok {
		*target = e
	}
	return ok
}
