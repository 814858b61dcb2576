package dynamostore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fineo-io/ingest/schema"
)

// TestOpenStoreAndCLI runs "fineo schema" over --schemas dynamodb://TABLE,
// as cmd/fineo does (it imports this package).
func TestOpenStoreAndCLI(t *testing.T) {
	ctx := context.Background()
	_, table := dynalite(t)
	t.Setenv("FINEO_SCHEMAS", "")
	spec := "dynamodb://" + table

	s, err := schema.OpenStore(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := s.(*Store); !ok || d.Table() != table {
		t.Fatalf("OpenStore(%q) = %T", spec, s)
	}
	if _, err := schema.OpenStore(ctx, "dynamodb://x"); err == nil || !strings.Contains(err.Error(), "not a DynamoDB table name") {
		t.Fatalf("OpenStore of a bad table name: %v", err)
	}

	v1 := filepath.Join("..", "..", "testdata", "sample", "schemas", "harbor.yaml")
	data, err := os.ReadFile(v1)
	if err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(t.TempDir(), "harbor.yaml")
	edited := strings.Replace(string(data), "      - name: seq\n        type: long\n", "      - name: seq\n        type: long\n        hidden: true\n", 1)
	if err := os.WriteFile(v2, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name    string
		args    []string
		want    []string // regexps of lines that must appear, in order
		wantErr string
	}{
		{"list before the table exists", []string{"list"}, nil, "table " + table + " does not exist"},
		{"dry run on a missing table", []string{"apply", v1, "--dry-run"}, []string{`^\+ metric weather$`, `^dry run: would apply harbor version 1$`}, ""},
		{"dry run created nothing", []string{"list"}, nil, "does not exist"},
		{"apply creates the table", []string{"apply", v1}, []string{`^\+ metric weather$`, `^applied harbor version 1$`}, ""},
		{"apply again is a no-op", []string{"apply", v1}, []string{`^no changes to harbor \(version 1\)$`}, ""},
		{"apply v2", []string{"apply", v2}, []string{`^- field weather.seq hidden$`, `^applied harbor version 2$`}, ""},
		{"list", []string{"list"}, []string{`^TENANT\s+VERSION`, `^harbor\s+2\s+\d{4}-\d\d-\d\dT\S+Z\s+2$`}, ""},
		{"show", []string{"show", "harbor"}, []string{`^tenant: harbor$`, `^version: 2$`, `^\s+hidden: true$`}, ""},
		{"show version 1", []string{"show", "harbor", "--version", "1"}, []string{`^version: 1$`}, ""},
		{"history", []string{"history", "harbor"}, []string{`^v1  \S+Z  \d+ changes$`, `^v2  \S+Z  1 change$`, `^  - field weather.seq hidden$`}, ""},
		{"show missing tenant", []string{"show", "dock"}, nil, `tenant not found: "dock"`},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := schema.CLI(ctx, append(st.args, "--schemas", spec), &stdout, &stderr)
			if matchError(t, err, st.wantErr); err != nil {
				return
			}
			// The wanted lines, in order, with anything between them.
			if re := regexp.MustCompile("(?m)" + strings.Join(st.want, "(?s:.*)")); !re.MatchString(stdout.String()) {
				t.Fatalf("output does not match %s:\n%s", re, stdout.String())
			}
		})
	}
}
