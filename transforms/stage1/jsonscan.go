package stage1

import (
	"errors"
	"fmt"

	json "github.com/goccy/go-json"
)

// A validating JSON scanner that walks the members of an object or the
// elements of an array without building Go values. Stage 1 needs each
// member's key and raw value text, nothing more; decoding into
// map[string]json.RawMessage cost about a third of stage 1's time in
// profiles (reflection, a map per event, a copy per value). The scanner
// validates the full RFC 8259 grammar of everything it passes over, so
// malformed input is still classified as malformed_json. Nesting is bounded
// by the depth pre-check in Process before any scanning.

type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

func errAt(off int, msg string) error { return &syntaxError{off: off, msg: msg} }

var errTrailing = errors.New("data after the top-level value")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// validValue reports whether b holds exactly one JSON value.
func validValue(b []byte) bool {
	i := skipSpace(b, 0)
	end, err := skipValue(b, i)
	return err == nil && skipSpace(b, end) == len(b)
}

// skipValue validates the JSON value starting at b[i] and returns the
// offset just after it.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, errAt(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '{':
		return walkObject(b, i, nil)
	case c == '[':
		return walkArray(b, i)
	case c == '"':
		end, _, err := skipString(b, i)
		return end, err
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	}
	return i, errAt(i, fmt.Sprintf("invalid character %q", b[i]))
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, errAt(i, "invalid literal")
	}
	return i + len(lit), nil
}

func skipNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return start, errAt(start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return start, errAt(start, "invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return start, errAt(start, "invalid number")
		}
	}
	return i, nil
}

// plainInString marks the bytes that stand for themselves inside a JSON
// string: all but the quote, the backslash and control characters.
var plainInString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipString validates the string starting at b[i] (a quote) and returns the
// offset after its closing quote and whether it holds escapes. Runs of
// plain bytes cost one table lookup each; only the quote, escapes and
// control characters take the slow path.
func skipString(b []byte, i int) (int, bool, error) {
	start := i
	i++
	escaped := false
	for {
		for i < len(b) && plainInString[b[i]] {
			i++
		}
		if i >= len(b) {
			return start, false, errAt(start, "unterminated string")
		}
		switch b[i] {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return start, false, errAt(i, "unterminated escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return start, false, errAt(i, "invalid \\u escape")
				}
				i += 6
			default:
				return start, false, errAt(i, "invalid escape")
			}
		default: // below 0x20
			return start, false, errAt(i, "control character in string")
		}
	}
}

func isHex4(h []byte) bool {
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// member is one key and raw value of an object. key holds the raw key
// text between the quotes; escaped says it must be unquoted before use.
type member struct {
	key     []byte
	escaped bool
	val     []byte
}

// walkObject validates the object starting at b[i] ('{'), calling fn for
// each member when fn is not nil, and returns the offset after it.
func walkObject(b []byte, i int, fn func(member)) (int, error) {
	return walkObjectWith(b, i, fn, nil)
}

// valueWalker validates the value starting at b[i] as skipValue does and
// returns the offset after it; a caller's own walks value the object's
// members (key, escaped) that it wants to look inside on the way.
type valueWalker func(key []byte, escaped bool, b []byte, i int) (int, error)

// walkObjectWith is walkObject with each member's value walked by value
// (nil: skipValue).
func walkObjectWith(b []byte, i int, fn func(member), value valueWalker) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, errAt(i, "expected a string key")
		}
		kend, esc, err := skipString(b, i)
		if err != nil {
			return i, err
		}
		key := b[i+1 : kend-1]
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return i, errAt(i, "expected ':'")
		}
		i = skipSpace(b, i+1)
		vstart := i
		if value != nil {
			i, err = value(key, esc, b, i)
		} else {
			i, err = skipValue(b, i)
		}
		if err != nil {
			return i, err
		}
		if fn != nil {
			fn(member{key: key, escaped: esc, val: b[vstart:i]})
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, errAt(i, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, errAt(i, "expected ',' or '}'")
		}
	}
}

// walkArray validates the array starting at b[i] ('[') and returns the
// offset after it.
func walkArray(b []byte, i int) (int, error) {
	return walkArrayWith(b, i, skipValue)
}

// walkArrayWith is walkArray with each element walked by value.
func walkArrayWith(b []byte, i int, value func(b []byte, i int) (int, error)) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := value(b, i)
		if err != nil {
			return end, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return i, errAt(i, "unterminated array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, errAt(i, "expected ',' or ']'")
		}
	}
}

// scanObject walks b, which must hold exactly one JSON object, member by member.
func scanObject(b []byte, fn func(member)) error {
	return scanObjectWith(b, fn, nil)
}

// scanObjectWith is scanObject with its members' values walked by value
// (see walkObjectWith).
func scanObjectWith(b []byte, fn func(member), value valueWalker) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errAt(i, "not an object")
	}
	end, err := walkObjectWith(b, i, fn, value)
	if err != nil {
		return err
	}
	if skipSpace(b, end) != len(b) {
		return errAt(end, errTrailing.Error())
	}
	return nil
}

// is reports whether the member's key is k.
func (m *member) is(k string) bool {
	if !m.escaped {
		return string(m.key) == k
	}
	return m.name() == k
}

// name returns the member's key as a string, unescaped.
func (m *member) name() string {
	if !m.escaped {
		return string(m.key)
	}
	var s string
	q := make([]byte, 0, len(m.key)+2)
	q = append(append(append(q, '"'), m.key...), '"')
	if err := json.Unmarshal(q, &s); err != nil {
		return string(m.key) // validated already; cannot happen
	}
	return s
}

// nameView is name without a copy for an unescaped key: a view into the
// raw record.
func (m *member) nameView() string {
	if !m.escaped {
		return view(m.key)
	}
	return m.name()
}

// compareNames orders two members by key.
func compareNames(a, b *member) int {
	an, bn := a.name(), b.name()
	switch {
	case an < bn:
		return -1
	case an > bn:
		return 1
	}
	return 0
}
