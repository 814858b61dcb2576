package schema

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCLI runs the CLI and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := CLI(context.Background(), args, &stdout, &stderr)
	return stdout.String(), err
}

func TestCLI(t *testing.T) {
	t.Setenv("FINEO_SCHEMAS", "")
	dir := t.TempDir()
	work := t.TempDir()
	v1 := filepath.Join(work, "harbor.yaml")
	writeFile(t, v1, exampleYAML)
	v2 := filepath.Join(work, "harbor-v2.yaml")
	writeFile(t, v2, strings.Replace(exampleYAML, "{name: station, type: string}", "{name: station, type: string, hidden: true}", 1))

	steps := []struct {
		name    string
		args    []string
		want    []string // lines (regexps) that must appear, in order
		wantErr string
	}{
		{"dry run", []string{"apply", v1, "--dry-run", "--schemas", dir},
			[]string{`^\+ metric weather$`, `^\+ field weather.temperature \(double\)$`, `^dry run: would apply harbor version 1$`}, ""},
		{"list after dry run is empty", []string{"--schemas=" + dir, "list"}, []string{`^TENANT\s+VERSION\s+UPDATED\s+METRICS$`}, ""},
		{"apply", []string{"--schemas", dir, "apply", v1},
			[]string{`^\+ metric weather$`, `^\+ alias weather.temperature: temp_c$`, `^applied harbor version 1$`}, ""},
		{"apply again is a no-op", []string{"apply", "--schemas=" + dir, v1}, []string{`^no changes to harbor \(version 1\)$`}, ""},
		{"apply v2", []string{"apply", v2, "--schemas", dir},
			[]string{`^- field weather.station hidden$`, `^applied harbor version 2$`}, ""},
		{"list", []string{"list", "--schemas", dir}, []string{`^TENANT`, `^harbor\s+2\s+\d{4}-\d\d-\d\dT\S+Z\s+1$`}, ""},
		{"show", []string{"show", "harbor", "--schemas", dir},
			[]string{`^tenant: harbor$`, `^version: 2$`, `^\s+hidden: true$`, `^\s+hidden_at: `}, ""},
		{"show version 1", []string{"show", "--version", "1", "harbor", "--schemas", dir}, []string{`^version: 1$`}, ""},
		{"history", []string{"history", "harbor", "--schemas", dir},
			[]string{`^v1  \S+Z  9 changes$`, `^  \+ metric weather$`, `^v2  \S+Z  1 change$`, `^  - field weather.station hidden$`}, ""},
		{"show missing version", []string{"show", "--version", "7", "harbor", "--schemas", dir}, nil, "tenant harbor has no version 7 (current is 2)"},
		{"show missing tenant", []string{"show", "dock", "--schemas", dir}, nil, `tenant not found: "dock"`},
		{"no store", []string{"list"}, nil, "pass --schemas DIR or set FINEO_SCHEMAS"},
		{"no command", []string{"--schemas", dir}, nil, "missing command"},
		{"unknown command", []string{"drop", "--schemas", dir}, nil, `unknown command "drop"`},
		{"unknown flag", []string{"list", "--force", "--schemas", dir}, nil, "flag provided but not defined: -force"},
		{"missing argument", []string{"show", "--schemas", dir}, nil, "want 1 argument(s), got 0"},
		{"flag for another command", []string{"list", "--dry-run", "--schemas", dir}, nil, "--dry-run only applies to apply"},
		{"apply missing file", []string{"apply", filepath.Join(work, "nope.yaml"), "--schemas", dir}, nil, "no such file"},
		{"dynamodb", []string{"list", "--schemas", "dynamodb://t"}, nil, "not supported yet"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out, err := runCLI(t, st.args...)
			if st.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), st.wantErr) {
					t.Fatalf("error %v, want %q", err, st.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CLI: %v", err)
			}
			lines := strings.Split(out, "\n")
			i := 0
			for _, w := range st.want {
				re := regexp.MustCompile(w)
				for i < len(lines) && !re.MatchString(lines[i]) {
					i++
				}
				if i == len(lines) {
					t.Fatalf("output lacks a line matching %s (in order):\n%s", w, out)
				}
			}
		})
	}
}

func TestCLIEnvAndRemoval(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FINEO_SCHEMAS", dir)
	f := filepath.Join(t.TempDir(), "x.yaml")
	writeFile(t, f, exampleYAML)
	if _, err := runCLI(t, "apply", f); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, strings.Replace(exampleYAML, "      - {name: station, type: string}\n", "", 1))
	_, err := runCLI(t, "apply", f)
	if err == nil || !strings.Contains(err.Error(), `field "weather.station" cannot be removed`) {
		t.Fatalf("removal: %v", err)
	}
	writeFile(t, f, strings.Replace(exampleYAML, "type: string", "type: text", 1))
	_, err = runCLI(t, "apply", f, "--dry-run")
	if err == nil || !strings.Contains(err.Error(), `has type "text"`) {
		t.Fatalf("invalid: %v", err)
	}
}
