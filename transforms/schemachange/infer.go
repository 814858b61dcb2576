package schemachange

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Inferred type names. They are the schema.FieldType names a proposal can
// declare; bytes is never inferred (a base64 string is indistinguishable
// from any other string).
const (
	TypeBoolean   = "boolean"
	TypeLong      = "long"
	TypeDouble    = "double"
	TypeString    = "string"
	TypeTimestamp = "timestamp"
)

// maxTimestampMillis mirrors stage 1: a timestamp must fall after the epoch
// and before 2200-01-01T00:00:00Z, or it does not cast.
var maxTimestampMillis = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// InferType returns the type of one raw JSON value as kept in unknown_fields:
//
//	true, false                           boolean
//	integers that fit in 64 bits          long
//	other finite numbers (1.5, 1e3, 2^70) double
//	numbers beyond float64 (1e400)        string
//	RFC 3339 strings (1970..2200)         timestamp
//	other strings                         string
//	objects and arrays                    string (their JSON text), see below
//	null                                  "" (a null says nothing about the type)
//
// Inference is by value only: a field name such as "ts" does not make an
// integer a timestamp, and numeric or "true" strings stay string.
//
// Objects and arrays are reported as string, the type that would hold their
// JSON text. Note that stage 1's string cast accepts only strings, numbers
// and booleans, so object and array values of a field declared string still
// end up in unknown_fields; FieldStats.Structured counts them and Suggest
// does not propose a column for a field that only ever held them.
func InferType(raw string) string {
	t, _ := inferValue(raw)
	return t
}

// inferValue is InferType that also reports whether raw is an object or array.
func inferValue(raw string) (typ string, structured bool) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return TypeString, false
	}
	switch c := s[0]; {
	case s == "null":
		return "", false
	case s == "true" || s == "false":
		return TypeBoolean, false
	case c == '{' || c == '[':
		return TypeString, true
	case c == '"':
		var str string
		if err := json.Unmarshal([]byte(s), &str); err == nil && isTimestamp(str) {
			return TypeTimestamp, false
		}
		return TypeString, false
	case c == '-' || (c >= '0' && c <= '9'):
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return TypeLong, false
		}
		// Numbers beyond float64 (1e400) do not cast to double in stage 1.
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return TypeDouble, false
		}
	}
	return TypeString, false
}

// isTimestamp reports whether s is an RFC 3339 time that stage 1's timestamp
// cast accepts (same parser, same range).
func isTimestamp(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) < len("2006-01-02T15:04:05Z") || s[0] < '0' || s[0] > '9' {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return false
	}
	ms := t.UnixMilli()
	return ms > 0 && ms < maxTimestampMillis
}

// combineTypes derives a field's overall type from its per-value type
// counts: one type → that type; only long and double → double; nothing but
// nulls → ""; any other mix → string (which casts numbers, booleans and
// strings alike).
func combineTypes(types map[string]int64) string {
	var present []string
	for t, n := range types {
		if n > 0 {
			present = append(present, t)
		}
	}
	switch len(present) {
	case 0:
		return ""
	case 1:
		return present[0]
	case 2:
		if types[TypeLong] > 0 && types[TypeDouble] > 0 {
			return TypeDouble
		}
	}
	return TypeString
}
