package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/testenv"
	"github.com/fineo-io/ingest/io/dynamodbio"
	"github.com/fineo-io/ingest/records"
)

const restoreT0 = int64(1700000000000)

func restoreEvents(n int) []*records.Event {
	evs := make([]*records.Event, n)
	for i := range evs {
		evs[i] = &records.Event{
			ID: fmt.Sprintf("ev-%04d", i), Tenant: "harbor", Metric: "weather", MetricAlias: "wx",
			Timestamp: restoreT0 + int64(i)*10_000, SchemaVersion: 1, IngestTime: restoreT0,
			Fields: map[string]any{"temperature": float64(i) / 4, "n": int64(i)},
		}
	}
	return evs
}

func writeBackupFile(t *testing.T, path string, items []map[string]types.AttributeValue) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dynamodbio.WriteBackup(&buf, items); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestCmdTableAndRestore(t *testing.T) {
	ctx := context.Background()
	testenv.DynamoDB(t)

	t.Run("TableCreate", func(t *testing.T) {
		name := testenv.UniqueName(t, "nearline")
		var out bytes.Buffer
		if err := runTable(ctx, []string{"create", "--table", name}, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "table "+name+": created, ACTIVE") || !strings.Contains(out.String(), "TTL: ") {
			t.Errorf("output:\n%s", out.String())
		}
		t.Logf("first:\n%s", out.String())
		out.Reset()
		if err := runTable(ctx, []string{"create", "--table", name}, &out); err != nil {
			t.Fatalf("second create: %v", err)
		}
		if !strings.Contains(out.String(), "exists already, ACTIVE") {
			t.Errorf("second output:\n%s", out.String())
		}
		if err := cmdTable(ctx, []string{"create", "--table", name}); err != nil {
			t.Fatalf("cmdTable: %v", err)
		}
		for _, args := range [][]string{nil, {"drop"}, {"create"}, {"create", "--table", name, "extra"}, {"create", "--nope"}} {
			if code := exitCode(runTable(ctx, args, &out)); code != 2 {
				t.Errorf("table %q: exit code %d, want 2", args, code)
			}
		}
	})

	t.Run("Restore", func(t *testing.T) {
		dir := t.TempDir()
		evs := restoreEvents(600)
		items := make([]map[string]types.AttributeValue, len(evs))
		for i, ev := range evs {
			items[i] = dynamodbio.Item(ev, dynamodbio.ItemOptions{})
		}
		writeBackupFile(t, filepath.Join(dir, "nearline", "a.jsonl.gz"), items[:400])
		writeBackupFile(t, filepath.Join(dir, "nearline", "b.jsonl.gz"), items[400:])
		writeBackupFile(t, filepath.Join(dir, "elsewhere", "c.jsonl.gz"), items[:10])

		table := testenv.UniqueName(t, "restored")
		var out bytes.Buffer
		err := runRestore(ctx, []string{"--backup", dir, "--prefix", "nearline/", "--table", table, "--create-table"}, &out)
		if err != nil {
			t.Fatalf("restore: %v\n%s", err, out.String())
		}
		t.Logf("output:\n%s", out.String())
		for _, want := range []string{"created, ACTIVE", "files        2", "items        600", "written      600", "failed       0", "items/s"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
		client, err := dynamodbio.NewClient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		last := int64(0)
		_, err = dynamodbio.Query(ctx, client, table, "harbor", "weather", restoreT0, restoreT0+2*3600_000, func(ev *records.Event) error {
			if ev.Timestamp < last {
				t.Errorf("out of order at %s", ev.ID)
			}
			last = ev.Timestamp
			n++
			return nil
		})
		if err != nil || n != 600 {
			t.Fatalf("query after restore: %d events, %v", n, err)
		}
		// Restored items expire --ttl (30 days) after the restore, not
		// their retention after their (old) event time: TTL would delete
		// them at once (issue 19, defect 11).
		soon := time.Now().Add(29 * 24 * time.Hour).Unix()
		testenv.ScanItems(t, client, table, dynamodbio.AttrExpiresAt, func(it map[string]types.AttributeValue) {
			v, _ := it[dynamodbio.AttrExpiresAt].(*types.AttributeValueMemberN)
			if exp, err := strconv.ParseInt(v.Value, 10, 64); v == nil || err != nil || exp < soon {
				t.Fatalf("a restored item expires at %v, before %d (now + 29 days)", v, soon)
			}
		})
		if !strings.Contains(out.String(), "restored items expire at") {
			t.Errorf("output does not say when restored items expire:\n%s", out.String())
		}
		// Again, through cmdRestore, into the existing table: same content.
		if err := cmdRestore(ctx, []string{"--backup", dir, "--prefix", "nearline/", "--table", table, "--quiet"}); err != nil {
			t.Fatalf("second restore: %v", err)
		}
	})

	t.Run("RestoreWithFailures", func(t *testing.T) {
		dir := t.TempDir()
		evs := restoreEvents(50)
		evs[10].Fields["bad"] = 1e200 // out of DynamoDB's number range
		items := make([]map[string]types.AttributeValue, len(evs))
		for i, ev := range evs {
			items[i] = dynamodbio.Item(ev, dynamodbio.ItemOptions{})
		}
		writeBackupFile(t, filepath.Join(dir, "x.jsonl.gz"), items)
		table := testenv.UniqueName(t, "restored")
		failedOut := filepath.Join(t.TempDir(), "failed.jsonl.gz")
		var out bytes.Buffer
		err := runRestore(ctx, []string{"--backup", dir, "--table", table, "--create-table", "--failed-out", failedOut}, &out)
		if code := exitCode(err); code != 3 {
			t.Fatalf("exit code %d (%v), want 3\n%s", code, err, out.String())
		}
		if !strings.Contains(out.String(), "failed       1") || !strings.Contains(out.String(), "ValidationException") {
			t.Errorf("output:\n%s", out.String())
		}
		f, err := os.Open(failedOut)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var back []string
		if err := dynamodbio.ReadBackup(f, func(item map[string]types.AttributeValue) error {
			back = append(back, item[dynamodbio.AttrEventID].(*types.AttributeValueMemberS).Value)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(back) != 1 || back[0] != "ev-0010" {
			t.Errorf("--failed-out holds %v, want [ev-0010]", back)
		}
	})

	t.Run("Usage", func(t *testing.T) {
		var out bytes.Buffer
		for _, args := range [][]string{nil, {"--backup", "x"}, {"--table", "abc"}, {"--backup", "x", "--table", "abc", "extra"}, {"--nope"}} {
			if code := exitCode(runRestore(ctx, args, &out)); code != 2 {
				t.Errorf("restore %q: exit code %d, want 2", args, code)
			}
		}
		err := runRestore(ctx, []string{"--backup", t.TempDir(), "--table", testenv.UniqueName(t, "empty"), "--create-table"}, &out)
		if err == nil || !strings.Contains(err.Error(), "no backup files") {
			t.Errorf("restore of an empty directory: %v", err)
		}
	})
}
