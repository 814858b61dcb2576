package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest schema document Parse accepts.
const MaxFileSize = 4 << 20

// Parse decodes one tenant schema from YAML or JSON. Unknown keys, duplicate
// keys and trailing documents are refused; the error names the key and its
// line. Parse does not validate: call [Tenant.Validate].
//
// A conversion that omits scale gets Scale 1. An explicit "scale: 0" stays 0
// and is refused by Validate.
func Parse(data []byte) (*Tenant, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("schema: document is %d bytes, larger than the %d byte limit", len(data), MaxFileSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("schema: empty document")
	}
	dec := yaml.NewDecoder(bytes.NewReader(yamlSafeJSON(data)))
	dec.KnownFields(true)
	var t Tenant
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("schema: %w", rewriteYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("schema: more than one document (only one tenant per file)")
	}
	return &t, nil
}

// Marshal encodes t as YAML with two-space indentation, the form Parse reads.
func Marshal(t *Tenant) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(t); err != nil {
		return nil, fmt.Errorf("schema: encode %s: %w", t.Tenant, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("schema: encode %s: %w", t.Tenant, err)
	}
	return buf.Bytes(), nil
}

// marshalJSON encodes t as indented JSON, for schema files kept as .json.
func marshalJSON(t *Tenant) ([]byte, error) {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("schema: encode %s: %w", t.Tenant, err)
	}
	return append(b, '\n'), nil
}

// UnmarshalYAML decodes a conversion strictly (only scale and offset) and
// gives an omitted scale the value 1.
func (c *Conversion) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a conversion must be a mapping with scale and offset", n.Line)}}
	}
	out := Conversion{Scale: 1}
	var problems []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		var dst *float64
		switch key.Value {
		case "scale":
			dst = &out.Scale
		case "offset":
			dst = &out.Offset
		default:
			problems = append(problems, fmt.Sprintf("line %d: unknown key %q in conversion (want scale, offset)", key.Line, key.Value))
			continue
		}
		if err := val.Decode(dst); err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %s must be a number, not %q", val.Line, key.Value, val.Value))
		}
	}
	if len(problems) > 0 {
		return &yaml.TypeError{Errors: problems}
	}
	*c = out
	return nil
}

var unknownFieldRe = regexp.MustCompile(`^line (\d+): field (.+) not found in type schema\.(\w+)$`)

// rewriteYAMLError turns yaml.v3's "field x not found in type schema.Field"
// into `unknown key "x" in field (want ...)`, keeping the line.
func rewriteYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	lines := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		lines[i] = e
		m := unknownFieldRe.FindStringSubmatch(e)
		if m == nil {
			continue
		}
		kind := strings.ToLower(m[3])
		lines[i] = fmt.Sprintf("line %s: unknown key %q in %s (want %s)", m[1], m[2], kind, strings.Join(knownKeys[kind], ", "))
	}
	if len(lines) == 1 {
		return errors.New(lines[0])
	}
	return errors.New(strings.Join(lines, "\n  "))
}

// knownKeys lists the YAML keys of each document type, for error messages.
var knownKeys = map[string][]string{
	"tenant": yamlKeys(reflect.TypeFor[Tenant]()),
	"metric": yamlKeys(reflect.TypeFor[Metric]()),
	"field":  yamlKeys(reflect.TypeFor[Field]()),
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// yamlSafeJSON rewrites the string literals of a JSON document that use
// escapes YAML lacks (such as \/ or surrogate pairs) into equivalent YAML
// double-quoted strings. Line structure is unchanged, so error lines still
// point into the original. Anything that is not valid JSON is returned as is.
func yamlSafeJSON(data []byte) []byte {
	if !bytes.Contains(data, []byte(`\`)) || !json.Valid(data) {
		return data
	}
	var out bytes.Buffer
	out.Grow(len(data))
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			out.WriteByte(data[i])
			continue
		}
		end := jsonStringEnd(data, i)
		lit := data[i:end]
		i = end - 1
		if !bytes.Contains(lit, []byte(`\`)) {
			out.Write(lit)
			continue
		}
		var s string
		if err := json.Unmarshal(lit, &s); err != nil {
			return data
		}
		out.WriteString(strconv.Quote(s))
	}
	return out.Bytes()
}

// jsonStringEnd returns the index just past the string literal that starts
// with the quote at data[start].
func jsonStringEnd(data []byte, start int) int {
	for j := start + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}
