package stage1

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	json "github.com/goccy/go-json"

	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// Epoch timestamps are told apart by magnitude (absolute value):
//
//	below 1e11          seconds      (fractions allowed; up to year 5138)
//	1e11 up to 1e14     milliseconds
//	1e14 up to 1e17     microseconds
//	1e17 and above      nanoseconds
//
// A timestamp must fall after 1970-01-01T00:00:00Z and before
// 2200-01-01T00:00:00Z; anything else is a bad_timestamp.
const (
	maxSeconds = 1e11
	maxMillis  = 1e14
	maxMicros  = 1e17
)

var maxValidMillis = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

var (
	errNotTimestamp = errors.New("not epoch seconds/milliseconds/microseconds/nanoseconds or an RFC 3339 string")
	errOutOfRange   = errors.New("outside 1970-01-01 .. 2200-01-01")
)

// parseTimestamp turns a raw JSON value into UTC epoch milliseconds.
func parseTimestamp(raw []byte) (int64, error) {
	if len(raw) == 0 {
		return 0, errNotTimestamp
	}
	var ms int64
	switch c := raw[0]; {
	case c == '"':
		s, err := unquoteView(raw)
		if err != nil {
			return 0, errNotTimestamp
		}
		v, err := parseTimestampString(s)
		if err != nil {
			return 0, err
		}
		ms = v
	case c == '-' || (c >= '0' && c <= '9'):
		v, err := epochMillis(view(raw))
		if err != nil {
			return 0, err
		}
		ms = v
	default:
		return 0, errNotTimestamp
	}
	if ms <= 0 || ms >= maxValidMillis {
		return 0, errOutOfRange
	}
	return ms, nil
}

func parseTimestampString(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errNotTimestamp
	}
	// A number never holds ':' — an RFC 3339 time always does, and trying
	// it as a number first cost two error allocations (10% of stage 1's).
	if c := s[0]; (c == '-' || (c >= '0' && c <= '9')) && strings.IndexByte(s, ':') < 0 {
		if ms, err := epochMillis(s); err == nil {
			return ms, nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, errNotTimestamp
	}
	return t.UnixMilli(), nil
}

// epochMillis converts a decimal epoch number in any of the four units.
func epochMillis(s string) (int64, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		a := i
		if a < 0 {
			a = -a
		}
		switch {
		case a < maxSeconds:
			return i * 1000, nil
		case a < maxMillis:
			return i, nil
		case a < maxMicros:
			return i / 1000, nil
		default:
			return i / 1_000_000, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errNotTimestamp
	}
	a := math.Abs(f)
	switch {
	case a < maxSeconds:
		f *= 1000
	case a < maxMillis:
	case a < maxMicros:
		f /= 1000
	default:
		f /= 1e6
	}
	if math.Abs(f) > math.MaxInt64/2 {
		return 0, errOutOfRange
	}
	return int64(math.Floor(f)), nil
}

// castFlat converts a raw JSON value to the field's declared type, applying
// the alias's conversion. ok is false when the value cannot be cast; the
// caller then keeps the raw text in unknown_fields.
//
// Cast rules (documented in the README):
//
//	boolean    JSON true/false; strings "true"/"false" (any case)
//	long       JSON integers, and floats and numeric strings with an integral value
//	double     any JSON number; numeric strings
//	string     JSON strings; numbers and booleans as their JSON text
//	bytes      base64 (standard, padded) strings
//	timestamp  like the event timestamp: epoch s/ms/µs/ns or RFC 3339 → UTC millis
//	null       stays null for every type
//
// A conversion (value*scale + offset) applies to long and double fields; a
// long result is rounded to the nearest integer.
//
// The value is not boxed, and a string value may be a view into raw: the
// caller must copy it before raw changes (stage 1 encodes it first; see
// Processor.keep).
func castFlat(raw []byte, f fieldRef) (records.Value, bool) {
	if len(raw) == 0 {
		return records.Value{}, false
	}
	if raw[0] == 'n' {
		return records.Value{}, string(raw) == "null"
	}
	switch f.typ {
	case schema.Boolean:
		return castBool(raw)
	case schema.Long:
		if f.conv == nil && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
			// A JSON integer, the common case: parsed once, exactly (up
			// to the int64 limits) — not as a float first.
			if i, err := strconv.ParseInt(view(raw), 10, 64); err == nil {
				return records.Value{Kind: records.LongValue, Int: i}, true
			}
		}
		v, ok := castNumber(raw)
		if !ok {
			return records.Value{}, false
		}
		if f.conv != nil {
			v = v*f.conv.Scale + f.conv.Offset
			v = math.Round(v)
		}
		if f.conv == nil && raw[0] != '"' {
			// Exact for integers beyond 2^53 (up to the int64 limits).
			if i, err := strconv.ParseInt(view(raw), 10, 64); err == nil {
				return records.Value{Kind: records.LongValue, Int: i}, true
			}
		}
		if v != math.Trunc(v) || math.Abs(v) > 1<<63-1024 {
			return records.Value{}, false
		}
		return records.Value{Kind: records.LongValue, Int: int64(v)}, true
	case schema.Double:
		v, ok := castNumber(raw)
		if !ok {
			return records.Value{}, false
		}
		if f.conv != nil {
			v = v*f.conv.Scale + f.conv.Offset
		}
		return records.Value{Kind: records.DoubleValue, Float: v}, true
	case schema.String:
		switch raw[0] {
		case '"':
			s, err := unquoteView(raw)
			if err != nil {
				return records.Value{}, false
			}
			return records.Value{Kind: records.StringValue, Str: s}, true
		case '{', '[':
			return records.Value{}, false
		}
		return records.Value{Kind: records.StringValue, Str: view(raw)}, true // number or boolean text
	case schema.Bytes:
		if raw[0] != '"' {
			return records.Value{}, false
		}
		s, err := unquoteView(raw)
		if err != nil {
			return records.Value{}, false
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return records.Value{}, false
		}
		return records.Value{Kind: records.BytesValue, Bytes: b}, true
	case schema.Timestamp:
		ms, err := parseTimestamp(raw)
		if err != nil {
			return records.Value{}, false
		}
		return records.Value{Kind: records.LongValue, Int: ms}, true
	}
	return records.Value{}, false
}

func castBool(raw []byte) (records.Value, bool) {
	t, f := records.Value{Kind: records.BoolValue, Int: 1}, records.Value{Kind: records.BoolValue}
	switch string(raw) {
	case "true":
		return t, true
	case "false":
		return f, true
	}
	if raw[0] != '"' {
		return records.Value{}, false
	}
	s, err := unquoteView(raw)
	if err != nil {
		return records.Value{}, false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return t, true
	case "false":
		return f, true
	}
	return records.Value{}, false
}

func castNumber(raw []byte) (float64, bool) {
	s := view(raw)
	if raw[0] == '"' {
		var err error
		if s, err = unquoteView(raw); err != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	} else if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// unquote decodes a JSON string value into a string of its own.
func unquote(raw []byte, s *string) error {
	v, err := unquoteView(raw)
	if err != nil {
		return err
	}
	*s = strings.Clone(v)
	return nil
}

// unquoteView decodes a JSON string value. A string without escapes, the
// common case, comes back as a view into raw (no copy: the caller copies
// it if it outlives raw); others go through the JSON decoder.
func unquoteView(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return view(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// view returns b's bytes as a string without copying them. b must not
// change while the string is in use.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
