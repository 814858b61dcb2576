package archive

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	gzip "github.com/klauspost/compress/gzip"

	"github.com/fineo-io/ingest/records"
)

// ErrorRecord is the archived JSON form of a records.Error: one object per
// line of errors/<class>/date=YYYY-MM-DD/*.jsonl.gz.
//
// raw holds the original bytes: as text when they are UTF-8
// (raw_encoding "text"), otherwise base64 ("base64"). raw_size is the size
// of the original and raw_truncated says when only a prefix was kept.
type ErrorRecord struct {
	Kind         string          `json:"kind"`
	Class        string          `json:"class"`
	Tenant       string          `json:"tenant,omitempty"`
	Stage        string          `json:"stage"`
	Message      string          `json:"message"`
	Raw          string          `json:"raw"`
	RawEncoding  string          `json:"raw_encoding"`
	RawSize      int             `json:"raw_size"`
	RawTruncated bool            `json:"raw_truncated"`
	Source       records.Lineage `json:"source"`
	Time         time.Time       `json:"time"`
	Events       int             `json:"events"`
}

// NewErrorRecord converts an error to its archived form.
func NewErrorRecord(e *records.Error) ErrorRecord {
	r := ErrorRecord{
		Kind:    e.Kind.String(),
		Class:   string(e.Class()),
		Tenant:  e.Tenant,
		Stage:   e.Stage,
		Message: e.Message,
		RawSize: e.RawSize,
		Source:  e.Source,
		Time:    e.Time.UTC(),
		Events:  max(e.Events, 1),
	}
	if r.RawSize < len(e.Raw) {
		r.RawSize = len(e.Raw)
	}
	r.RawTruncated = r.RawSize > len(e.Raw)
	if utf8.Valid(e.Raw) {
		r.Raw, r.RawEncoding = string(e.Raw), "text"
	} else {
		r.Raw, r.RawEncoding = base64.StdEncoding.EncodeToString(e.Raw), "base64"
	}
	return r
}

// RawBytes returns the original bytes of the record.
func (r *ErrorRecord) RawBytes() ([]byte, error) {
	if r.RawEncoding == "base64" {
		return base64.StdEncoding.DecodeString(r.Raw)
	}
	return []byte(r.Raw), nil
}

// AppendErrorJSON appends e as one JSON line (with its newline) to b.
func AppendErrorJSON(b []byte, e *records.Error) []byte {
	j, err := json.Marshal(NewErrorRecord(e))
	if err != nil { // cannot happen for these field types; never drop the record
		j = fmt.Appendf(nil, `{"kind":%q,"class":%q,"stage":%q,"message":%q,"events":%d}`,
			e.Kind.String(), e.Class(), e.Stage, "unencodable error record: "+err.Error(), max(e.Events, 1))
	}
	b = append(b, j...)
	return append(b, '\n')
}

// ReadErrors reads an error archive file (gzip JSON Lines, or plain).
func ReadErrors(r io.Reader, fn func(*ErrorRecord) error) error {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var rec ErrorRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("archive: error record: %w", err)
		}
		if err := fn(&rec); err != nil {
			return err
		}
	}
	return sc.Err()
}
