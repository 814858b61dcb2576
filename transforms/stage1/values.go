package stage1

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

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
		var s string
		if err := unquote(raw, &s); err != nil {
			return 0, errNotTimestamp
		}
		v, err := parseTimestampString(s)
		if err != nil {
			return 0, err
		}
		ms = v
	case c == '-' || (c >= '0' && c <= '9'):
		v, err := epochMillis(string(raw))
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

// castValue converts a raw JSON value to the field's declared type, applying
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
func castValue(raw []byte, f fieldRef) (any, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	if raw[0] == 'n' {
		return nil, string(raw) == "null"
	}
	switch f.typ {
	case schema.Boolean:
		return castBool(raw)
	case schema.Long:
		v, ok := castNumber(raw)
		if !ok {
			return nil, false
		}
		if f.conv != nil {
			v = v*f.conv.Scale + f.conv.Offset
			v = math.Round(v)
		}
		if f.conv == nil && raw[0] != '"' {
			// Exact for integers beyond 2^53 (up to the int64 limits).
			if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
				return i, true
			}
		}
		if v != math.Trunc(v) || math.Abs(v) > 1<<63-1024 {
			return nil, false
		}
		return int64(v), true
	case schema.Double:
		v, ok := castNumber(raw)
		if !ok {
			return nil, false
		}
		if f.conv != nil {
			v = v*f.conv.Scale + f.conv.Offset
		}
		return v, true
	case schema.String:
		switch raw[0] {
		case '"':
			var s string
			if err := unquote(raw, &s); err != nil {
				return nil, false
			}
			return s, true
		case '{', '[':
			return nil, false
		}
		return string(raw), true // number or boolean text
	case schema.Bytes:
		if raw[0] != '"' {
			return nil, false
		}
		var s string
		if err := unquote(raw, &s); err != nil {
			return nil, false
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, false
		}
		return b, true
	case schema.Timestamp:
		ms, err := parseTimestamp(raw)
		if err != nil {
			return nil, false
		}
		return ms, true
	}
	return nil, false
}

func castBool(raw []byte) (any, bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	if raw[0] != '"' {
		return nil, false
	}
	var s string
	if err := unquote(raw, &s); err != nil {
		return nil, false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return nil, false
}

func castNumber(raw []byte) (float64, bool) {
	s := string(raw)
	if raw[0] == '"' {
		if err := unquote(raw, &s); err != nil {
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

// unquote decodes a JSON string value. Strings without escapes, the common
// case, are copied directly; others go through the JSON decoder.
func unquote(raw []byte, s *string) error {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		*s = string(raw[1 : len(raw)-1])
		return nil
	}
	return json.Unmarshal(raw, s)
}
