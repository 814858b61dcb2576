package dynamodbio

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/io/blob"
)

func TestBackupRoundTrip(t *testing.T) {
	items := itemsOf(events("harbor", "weather", t0, 100, 1000))
	items = append(items, Item(sampleEvent(), ItemOptions{}))
	// Every DynamoDB type, including the ones the nearline layout does not use.
	items = append(items, map[string]types.AttributeValue{
		"pk": s("x"), "sk": s("y"),
		"l":  &types.AttributeValueMemberL{Value: []types.AttributeValue{n(1), s("a"), &types.AttributeValueMemberNULL{Value: true}}},
		"ss": &types.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"ns": &types.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
		"bs": &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}},
		"em": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
		"eb": &types.AttributeValueMemberB{Value: []byte{}},
	})
	var buf bytes.Buffer
	if err := WriteBackup(&buf, items); err != nil {
		t.Fatal(err)
	}
	var got []map[string]types.AttributeValue
	if err := ReadBackup(bytes.NewReader(buf.Bytes()), func(item map[string]types.AttributeValue) error {
		got = append(got, item)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, items) {
		t.Fatalf("round trip differs: %d items back, want %d", len(got), len(items))
	}

	// The lines are DynamoDB's export JSON.
	zr, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	first := strings.SplitN(string(plain), "\n", 2)[0]
	if !strings.HasPrefix(first, `{"Item":{`) || !strings.Contains(first, `"pk":{"S":"harbor#weather#1699999200000#`) || !strings.Contains(first, `"ts":{"N":"1700000001000"}`) {
		t.Errorf("first line is not DynamoDB export JSON: %s", first)
	}
}

func TestReadBackupExportLine(t *testing.T) {
	// A line as DynamoDB's export to S3 writes it (DYNAMODB_JSON), plain text.
	line := `{"Item":{"Id":{"N":"103"},"Title":{"S":"Book 103"},"Authors":{"SS":["Author1","Author2"]},"InPrint":{"BOOL":false},` +
		`"Pic":{"B":"AAEC"},"Gone":{"NULL":true},"Dims":{"M":{"w":{"N":"8.5"}}},"Tags":{"L":[{"S":"a"},{"N":"1"}]}}}` + "\n\n"
	var got []map[string]types.AttributeValue
	if err := ReadBackup(strings.NewReader(line), func(item map[string]types.AttributeValue) error {
		got = append(got, item)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]types.AttributeValue{
		"Id": n(103), "Title": s("Book 103"),
		"Authors": &types.AttributeValueMemberSS{Value: []string{"Author1", "Author2"}},
		"InPrint": &types.AttributeValueMemberBOOL{Value: false},
		"Pic":     &types.AttributeValueMemberB{Value: []byte{0, 1, 2}},
		"Gone":    &types.AttributeValueMemberNULL{Value: true},
		"Dims":    &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"w": &types.AttributeValueMemberN{Value: "8.5"}}},
		"Tags":    &types.AttributeValueMemberL{Value: []types.AttributeValue{s("a"), n(1)}},
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %#v", got)
	}
	for _, bad := range []string{
		`{"Item":{"a":{"S":"x","N":"1"}}}`,
		`{"Item":{"a":{"Q":"x"}}}`,
		`{"Other":{}}`,
		`not json`,
	} {
		err := ReadBackup(strings.NewReader("\n"+bad+"\n"), func(map[string]types.AttributeValue) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("ReadBackup(%s) = %v, want an error naming line 2", bad, err)
		}
	}
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	client, newTable := setup(t)
	st, err := blob.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	evs := events("harbor", "weather", t0, 2500, 5000) // ~3.5 h
	put := func(path string, items []map[string]types.AttributeValue) {
		w, err := st.Create(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if err := WriteBackup(w, items); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	items := itemsOf(evs)
	put("backups/nearline/part-0000.jsonl.gz", items[:1200])
	put("backups/nearline/part-0001.jsonl.gz", items[1200:2000])
	put("backups/nearline/sub/part-0002.jsonl.gz", items[2000:])
	put("backups/other/part-0000.jsonl.gz", itemsOf(events("quay", "x", t0, 10, 1000))) // outside the prefix
	w, _ := st.Create(ctx, "backups/nearline/manifest.json")                            // not a backup file
	fmt.Fprint(w, `{"files":3}`)
	w.Commit()

	table := newTable(t)
	var calls int
	var lastFiles, lastItems int64
	l, err := OpenLayout(ctx, client, table, LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stats, failed, err := Restore(ctx, l, st, "backups/nearline/", fast, RestoreOptions{}, func(files, items int64) {
		calls++
		lastFiles, lastItems = files, items
	})
	if err != nil || len(failed) > 0 {
		t.Fatalf("restore: %v, %d failed", err, len(failed))
	}
	t.Logf("restore: %+v", stats)
	if stats.Files != 3 || stats.Items != 2500 || stats.Written != 2500 || stats.Failed != 0 {
		t.Errorf("stats %+v, want 3 files, 2500 items written", stats)
	}
	if calls < 3 || lastFiles != 3 || lastItems != 2500 {
		t.Errorf("progress: %d calls, last (%d, %d)", calls, lastFiles, lastItems)
	}
	got := queryAll(t, client, table, "harbor", "weather", t0, t0+4*3600_000)
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("query after restore: %d events, want %d (first diff %d)", len(got), len(evs), firstDiff(ids(got), ids(evs)))
	}

	// Restoring again changes nothing.
	if _, failed, err := Restore(ctx, layoutOf(t, client, table), st, "backups/nearline/", fast, RestoreOptions{}, nil); err != nil || len(failed) > 0 {
		t.Fatalf("second restore: %v %v", err, failed)
	}
	if n := count(t, client, table); n != 2500 {
		t.Errorf("after a second restore the table holds %d items", n)
	}

	// Faults during restore are retried like any write.
	table2 := newTable(t)
	f := &faulty{API: client, unprocessedCalls: 5, throttleCalls: 3}
	stats, failed, err = Restore(ctx, layoutOf(t, f, table2), st, "backups/nearline/", fast, RestoreOptions{}, nil)
	if err != nil || len(failed) > 0 || stats.Written != 2500 || stats.Writes.Throttles != 3 || stats.Writes.Retries < 5 {
		t.Fatalf("restore through faults: %+v, %v, %d failed", stats, err, len(failed))
	}

	// No backup files: an error, not an empty success.
	if _, _, err := Restore(ctx, layoutOf(t, client, table), st, "nothing/", fast, RestoreOptions{}, nil); err == nil {
		t.Error("restore of an empty prefix succeeded")
	}
	// A corrupt file stops the restore with its name; what was read before is written or failed.
	put("bad/part-0000.jsonl.gz", items[:30])
	w, _ = st.Create(ctx, "bad/part-0001.jsonl.gz")
	WriteBackup(w, items[30:40])
	w.Write([]byte("garbage after the gzip stream"))
	w.Commit()
	stats, failed, err = Restore(ctx, layoutOf(t, client, newTable(t)), st, "bad/", fast, RestoreOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "part-0001.jsonl.gz") {
		t.Errorf("corrupt backup: err = %v", err)
	}
	if stats.Items != stats.Written+stats.Duplicates+int64(len(failed)) {
		t.Errorf("corrupt backup: items not accounted for: %+v, %d failed", stats, len(failed))
	}
}

func layoutOf(t *testing.T, api API, table string) *Layout {
	t.Helper()
	l, err := OpenLayout(context.Background(), api, table, LayoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
