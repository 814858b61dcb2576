package stage1

import (
	stdjson "encoding/json"
	"testing"
	"unicode/utf8"
)

var scanCases = []string{
	`{}`, `[]`, `{"a":1}`, ` {"a" : [1, 2.5e-3, -0, true, false, null, "x\u00e9\n"], "b":{}} `,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}",
	`{"a":1,}`, `[1,]`, `{"a" 1}`, `{a:1}`, `{"a":tru}`, `{"a":nul}`, `{"a":1}}`, `{"a":1} x`, `[`, `{"a":`,
	`"str"`, `42`, `true`, ``, ` `, `{"a":"\ud83d\ude00"}`, `{"k\"ey":1}`, `[[[[]]]]`, `{"a":[{"b":[{}]}]}`,
}

// TestValidMatchesStdlib: the scanner accepts exactly what encoding/json
// accepts (on UTF-8 input; stage 1 rejects invalid UTF-8 before scanning).
func TestValidMatchesStdlib(t *testing.T) {
	for _, c := range scanCases {
		if got, want := validValue([]byte(c)), stdjson.Valid([]byte(c)); got != want {
			t.Errorf("validValue(%q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

func TestScanObjectMembers(t *testing.T) {
	var keys, vals []string
	err := scanObject([]byte(` { "a" : 1 , "b\"c":{"x":[1,2]}, "a":"z" } `), func(m member) {
		keys = append(keys, m.name())
		vals = append(vals, string(m.val))
	})
	if err != nil || len(keys) != 3 || keys[1] != `b"c` || vals[1] != `{"x":[1,2]}` || vals[2] != `"z"` {
		t.Fatalf("keys %q vals %q err %v", keys, vals, err)
	}
}

func FuzzValidMatchesStdlib(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) || depth(b, 64) > 64 {
			return
		}
		if got, want := validValue(b), stdjson.Valid(b); got != want {
			t.Fatalf("validValue(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}
