package dynamodbio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	gzip "github.com/klauspost/compress/gzip"

	"github.com/fineo-io/ingest/io/blob"
)

// Backup files are gzip JSON Lines, one item per line in DynamoDB's JSON
// export format, the same as an "export to S3" in DYNAMODB_JSON:
//
//	{"Item":{"pk":{"S":"harbor#weather#1700000000000"},"ts":{"N":"1700000000123"},...}}
//
// Binary values are base64, numbers are strings. An item's pk in a backup is
// the unsharded key of its bucket; restore replaces it with the key the
// target table's layout gives it (Layout.Place). Files end in BackupSuffix;
// Restore also reads the data files of a native DynamoDB export (*.json.gz).
const BackupSuffix = ".jsonl.gz"

// maxBackupLine bounds one line: a 400 KB item grows by base64 and quoting.
const maxBackupLine = 16 << 20

// WriteBackup writes items to w as one gzip JSON Lines stream in DynamoDB's
// export JSON format.
func WriteBackup(w io.Writer, items []map[string]types.AttributeValue) error {
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(zw, 64<<10)
	for i, item := range items {
		line, err := MarshalItemJSON(item)
		if err != nil {
			return fmt.Errorf("dynamodbio: backup item %d: %w", i, err)
		}
		bw.Write(line)
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("dynamodbio: write backup: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dynamodbio: write backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("dynamodbio: write backup: %w", err)
	}
	return nil
}

// ReadBackup calls fn with each item of a backup stream (gzip or plain JSON
// Lines; blank lines are skipped). An error from fn stops reading and is
// returned; a malformed line is an error naming its line number.
func ReadBackup(r io.Reader, fn func(map[string]types.AttributeValue) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("dynamodbio: read backup: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), maxBackupLine)
	for line := int64(1); sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		item, err := UnmarshalItemJSON(b)
		if err != nil {
			return fmt.Errorf("dynamodbio: backup line %d: %w", line, err)
		}
		if err := fn(item); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("dynamodbio: read backup: %w", err)
	}
	return nil
}

// MarshalItemJSON renders one item as a backup line (without the newline):
// {"Item":{...}} in DynamoDB JSON.
func MarshalItemJSON(item map[string]types.AttributeValue) ([]byte, error) {
	m, err := avMapJSON(item)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"Item": m})
}

func avMapJSON(m map[string]types.AttributeValue) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, av := range m {
		v, err := avJSON(av)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func avJSON(av types.AttributeValue) (any, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return map[string]string{"S": v.Value}, nil
	case *types.AttributeValueMemberN:
		return map[string]string{"N": v.Value}, nil
	case *types.AttributeValueMemberB:
		return map[string][]byte{"B": nonNil(v.Value)}, nil
	case *types.AttributeValueMemberBOOL:
		return map[string]bool{"BOOL": v.Value}, nil
	case *types.AttributeValueMemberNULL:
		return map[string]bool{"NULL": true}, nil
	case *types.AttributeValueMemberM:
		m, err := avMapJSON(v.Value)
		if err != nil {
			return nil, err
		}
		return map[string]any{"M": m}, nil
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			x, err := avJSON(e)
			if err != nil {
				return nil, fmt.Errorf("list element %d: %w", i, err)
			}
			l[i] = x
		}
		return map[string]any{"L": l}, nil
	case *types.AttributeValueMemberSS:
		return map[string][]string{"SS": nonNilSlice(v.Value)}, nil
	case *types.AttributeValueMemberNS:
		return map[string][]string{"NS": nonNilSlice(v.Value)}, nil
	case *types.AttributeValueMemberBS:
		return map[string][][]byte{"BS": nonNilSlice(v.Value)}, nil
	}
	return nil, fmt.Errorf("unsupported attribute value %s", typeName(av))
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// UnmarshalItemJSON parses one backup line: {"Item":{...}} in DynamoDB JSON.
func UnmarshalItemJSON(line []byte) (map[string]types.AttributeValue, error) {
	var rec struct {
		Item map[string]json.RawMessage `json:"Item"`
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		return nil, err
	}
	if rec.Item == nil {
		return nil, errors.New(`no "Item" object`)
	}
	return avMapFromJSON(rec.Item)
}

func avMapFromJSON(m map[string]json.RawMessage) (map[string]types.AttributeValue, error) {
	out := make(map[string]types.AttributeValue, len(m))
	for k, raw := range m {
		av, err := avFromJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		out[k] = av
	}
	return out, nil
}

func avFromJSON(raw json.RawMessage) (types.AttributeValue, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if len(obj) != 1 {
		return nil, fmt.Errorf("want one type key, got %d in %s", len(obj), truncate(raw))
	}
	for typ, v := range obj {
		switch typ {
		case "S":
			var x string
			err := json.Unmarshal(v, &x)
			return &types.AttributeValueMemberS{Value: x}, err
		case "N":
			var x string
			if len(v) > 0 && v[0] != '"' { // a bare JSON number: accept it
				var num json.Number
				if err := json.Unmarshal(v, &num); err != nil {
					return nil, err
				}
				x = num.String()
			} else if err := json.Unmarshal(v, &x); err != nil {
				return nil, err
			}
			return &types.AttributeValueMemberN{Value: x}, nil
		case "B":
			var x []byte
			err := json.Unmarshal(v, &x)
			return &types.AttributeValueMemberB{Value: nonNil(x)}, err
		case "BOOL":
			var x bool
			err := json.Unmarshal(v, &x)
			return &types.AttributeValueMemberBOOL{Value: x}, err
		case "NULL":
			var x bool
			err := json.Unmarshal(v, &x)
			return &types.AttributeValueMemberNULL{Value: true}, err
		case "M":
			var x map[string]json.RawMessage
			if err := json.Unmarshal(v, &x); err != nil {
				return nil, err
			}
			m, err := avMapFromJSON(x)
			if err != nil {
				return nil, err
			}
			if m == nil {
				m = map[string]types.AttributeValue{}
			}
			return &types.AttributeValueMemberM{Value: m}, nil
		case "L":
			var x []json.RawMessage
			if err := json.Unmarshal(v, &x); err != nil {
				return nil, err
			}
			l := make([]types.AttributeValue, len(x))
			for i, e := range x {
				av, err := avFromJSON(e)
				if err != nil {
					return nil, fmt.Errorf("list element %d: %w", i, err)
				}
				l[i] = av
			}
			return &types.AttributeValueMemberL{Value: l}, nil
		case "SS":
			var x []string
			err := json.Unmarshal(v, &x)
			return &types.AttributeValueMemberSS{Value: x}, err
		case "NS":
			var x []string
			err := json.Unmarshal(v, &x)
			return &types.AttributeValueMemberNS{Value: x}, err
		case "BS":
			var x [][]byte
			err := json.Unmarshal(v, &x)
			return &types.AttributeValueMemberBS{Value: x}, err
		default:
			return nil, fmt.Errorf("unknown type key %q", typ)
		}
	}
	panic("unreachable")
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// IsBackupFile reports whether a store path is a file Restore reads: a
// Fineo backup (*.jsonl.gz) or a native DynamoDB export data file (*.json.gz).
func IsBackupFile(path string) bool {
	return strings.HasSuffix(path, BackupSuffix) || strings.HasSuffix(path, ".json.gz")
}

// RestoreOptions says how restored items are kept.
type RestoreOptions struct {
	// Overflow is where events too large for an item even compressed go
	// (ItemOptions.Overflow).
	Overflow string
	// ExpiresAt, in epoch seconds, replaces every item's expires_at: a
	// backup's items expire their retention after their event time, so
	// last year's data would be deleted by TTL as soon as it was restored.
	// Negative: items are restored without expires_at; 0: as backed up.
	ExpiresAt int64
}

func (ro RestoreOptions) expire(item map[string]types.AttributeValue) {
	switch {
	case ro.ExpiresAt > 0:
		item[AttrExpiresAt] = n(ro.ExpiresAt)
	case ro.ExpiresAt < 0:
		delete(item, AttrExpiresAt)
	}
}

// RestoreStats counts what Restore did: Items == Written + Duplicates + Failed.
type RestoreStats struct {
	Files      int64 // backup files read
	Items      int64 // items read from them
	Written    int64
	Duplicates int64 // items superseded by a later copy of the same key
	Failed     int64
	Writes     WriteStats // the writer's counters, summed
}

// restoreChunk is how many items Restore hands to WriteItems at once.
const restoreChunk = 40 * MaxBatch

// Restore writes every item of the backup files under prefix in st (sorted
// by path; see IsBackupFile) into table with WriteItems. progress, if not
// nil, is called after every chunk with the files finished so far and the
// items processed so far. Items that could not be written are returned with
// their reasons; the error is non-nil when the restore stopped early (a
// file could not be read, ctx ended, or writing hit a fatal error). Restoring
// twice is harmless: items overwrite themselves.
func Restore(ctx context.Context, l *Layout, st blob.Store, prefix string, o WriterOptions, ro RestoreOptions, progress func(files, items int64)) (stats RestoreStats, failed []FailedItem, err error) {
	files, err := ListBackupFiles(ctx, st, prefix)
	if err != nil {
		return stats, nil, err
	}
	for _, obj := range files {
		fs, f, err := RestoreFile(ctx, l, st, obj.Path, o, ro, func(items int64) {
			if progress != nil {
				progress(stats.Files, stats.Items+items)
			}
		})
		stats.add(fs)
		failed = append(failed, f...)
		if err != nil {
			return stats, failed, err
		}
	}
	if progress != nil {
		progress(stats.Files, stats.Items)
	}
	return stats, failed, nil
}

// ListBackupFiles lists the backup files under prefix in st (see
// IsBackupFile), sorted by path; none is an error.
func ListBackupFiles(ctx context.Context, st blob.Store, prefix string) ([]blob.Object, error) {
	objs, err := st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("dynamodbio: restore: list %s: %w", st.URL(prefix), err)
	}
	var files []blob.Object
	for _, obj := range objs {
		if IsBackupFile(obj.Path) {
			files = append(files, obj)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("dynamodbio: restore: no backup files (*%s, *.json.gz) under %s", BackupSuffix, st.URL(prefix))
	}
	return files, nil
}

func (s *RestoreStats) add(o RestoreStats) {
	s.Files += o.Files
	s.Items += o.Items
	s.Written += o.Written
	s.Duplicates += o.Duplicates
	s.Failed += o.Failed
	s.Writes.add(o.Writes)
}

// RestoreFile writes every item of one backup file (path in st) into l's
// table, in chunks, each item under the key the table's layout gives it
// (Layout.Place: a backup's own pk is not kept, so a backup restores into
// a table of any layout and shard counts; items over DynamoDB's limit are
// compacted, or go to the overflow store). progress, if not nil, gets the items done so far in
// the file. Items that could not be written are returned with their
// reasons; the error is non-nil when the file could not be read to its
// end (what was read before is written and counted) or writing stopped.
func RestoreFile(ctx context.Context, l *Layout, st blob.Store, path string, o WriterOptions, ro RestoreOptions, progress func(items int64)) (stats RestoreStats, failed []FailedItem, err error) {
	buf := make([]map[string]types.AttributeValue, 0, restoreChunk)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		ws, f, err := WriteItems(ctx, l.api, l.table, buf, o)
		stats.Writes.add(ws)
		stats.Written += ws.Written
		stats.Duplicates += ws.Duplicates
		stats.Failed += int64(len(f))
		failed = append(failed, f...)
		buf = buf[:0]
		if progress != nil {
			progress(stats.Items)
		}
		return err
	}
	rc, err := st.Open(ctx, path)
	if err != nil {
		return stats, nil, fmt.Errorf("dynamodbio: restore: open %s: %w", st.URL(path), err)
	}
	err = ReadBackup(rc, func(item map[string]types.AttributeValue) error {
		stats.Items++
		ro.expire(item)
		if err := l.Place(ctx, item, ro.Overflow); err != nil {
			stats.Failed++
			failed = append(failed, FailedItem{Item: item, Reason: "not placed: " + err.Error()})
			return nil
		}
		buf = append(buf, item)
		if len(buf) >= restoreChunk {
			return flush()
		}
		return nil
	})
	rc.Close()
	if err != nil {
		// Write what was read before the failure, so every item read is
		// accounted for (written or failed), then stop.
		flush()
		return stats, failed, fmt.Errorf("dynamodbio: restore %s: %w", st.URL(path), err)
	}
	if err := flush(); err != nil {
		return stats, failed, fmt.Errorf("dynamodbio: restore: %w", err)
	}
	stats.Files = 1
	return stats, failed, nil
}
