// Package deploy_test keeps the deployment files under deploy/ (and the
// production guide) from rotting: every manifest, policy and unit must parse
// and follow the rules below.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// knownCommands are the commands of the fineo binary (cmd/fineo). Update the
// list when a command is added or removed.
var knownCommands = []string{"ingest", "batch", "stream", "restore", "replay", "table", "query", "demo", "schema"}

// productionGuide is checked for fineo invocations too.
const productionGuide = "../docs/PRODUCTION.md"

// files returns the paths under deploy/ (this directory) whose names match one of exts.
func files(t *testing.T, root string, exts ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		for _, e := range exts {
			if strings.HasSuffix(d.Name(), e) {
				out = append(out, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// yamlDocs decodes every document of a YAML file into a map.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for i := 0; ; i++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i+1, err)
		}
		if m != nil { // an empty document (comments only)
			docs = append(docs, m)
		}
	}
	return docs
}

func get(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any { l, _ := v.([]any); return l }

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		default:
			out = append(out, "")
		}
	}
	return out
}

var workloadPodSpec = map[string][]string{
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

func TestKubernetesManifests(t *testing.T) {
	paths := files(t, ".", ".yaml", ".yml")
	if len(paths) == 0 {
		t.Fatal("no YAML files under deploy/")
	}
	var kinds []string
	for _, path := range paths {
		for i, doc := range yamlDocs(t, path) {
			where := fmt.Sprintf("%s document %d", path, i+1)
			kind := str(doc["kind"])
			if str(doc["apiVersion"]) == "" || kind == "" || str(get(doc, "metadata", "name")) == "" {
				t.Errorf("%s: a Kubernetes document needs apiVersion, kind and metadata.name", where)
				continue
			}
			where = path + ": " + kind + " " + str(get(doc, "metadata", "name"))
			kinds = append(kinds, kind)
			if kind == "ConfigMap" {
				checkFlinkConf(t, where, doc)
			}
			specPath, ok := workloadPodSpec[kind]
			if !ok {
				continue
			}
			pod, _ := get(doc, specPath...).(map[string]any)
			if pod == nil {
				t.Errorf("%s: no pod spec at %s", where, strings.Join(specPath, "."))
				continue
			}
			checkPod(t, where, kind, pod)
		}
	}
	for _, k := range []string{"Deployment", "Service", "Job", "CronJob", "ConfigMap", "NetworkPolicy"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s in deploy/ any more", k)
		}
	}
}

// checkPod: every container has an image and CPU and memory limits; a
// container running the fineo image runs fineo with a known command; a Job
// or CronJob runs fineo.
func checkPod(t *testing.T, where, kind string, pod map[string]any) {
	t.Helper()
	runsFineo := false
	all := append(list(pod["initContainers"]), list(pod["containers"])...)
	if len(list(pod["containers"])) == 0 {
		t.Errorf("%s: no containers", where)
	}
	for _, c := range all {
		c, _ := c.(map[string]any)
		name := str(c["name"])
		image := str(c["image"])
		if image == "" {
			t.Errorf("%s: container %q has no image", where, name)
		}
		limits, _ := get(c, "resources", "limits").(map[string]any)
		if limits["cpu"] == nil || limits["memory"] == nil {
			t.Errorf("%s: container %q needs resources.limits.cpu and .memory", where, name)
		}
		argv := append(strs(c["command"]), strs(c["args"])...)
		if strings.Contains(strings.ToLower(image), "fineo") {
			if len(argv) < 2 || filepath.Base(argv[0]) != "fineo" {
				t.Errorf("%s: container %q (image %s) must run command [\"/fineo\"] with the subcommand as first argument, got %q", where, name, image, argv)
				continue
			}
			runsFineo = true
			if !slices.Contains(knownCommands, argv[1]) {
				t.Errorf("%s: container %q runs unknown fineo command %q", where, name, argv[1])
			}
			for _, a := range argv[2:] {
				if strings.HasPrefix(a, "--runner=") && strings.Contains(a, "flink") || strings.HasPrefix(a, "--runner=spark") {
					if !slices.Contains(argv, "--worker_binary=/fineo") {
						t.Errorf("%s: container %q submits to a portable runner without --worker_binary=/fineo", where, name)
					}
					if !slices.ContainsFunc(argv, func(s string) bool { return strings.HasPrefix(s, "--endpoint=") }) {
						t.Errorf("%s: container %q submits to a portable runner without --endpoint", where, name)
					}
				}
			}
			if argv[1] == "stream" && slices.Contains(argv, "--runner=spark") {
				t.Errorf("%s: fineo stream cannot run on Spark", where)
			}
		}
	}
	if (kind == "Job" || kind == "CronJob") && !runsFineo {
		t.Errorf("%s: a %s here should run fineo", where, kind)
	}
}

// checkFlinkConf: a ConfigMap holding flink-conf.yaml parses as YAML, and one
// that configures checkpointing configures all of it.
func checkFlinkConf(t *testing.T, where string, cm map[string]any) {
	t.Helper()
	text := str(get(cm, "data", "flink-conf.yaml"))
	if text == "" {
		return
	}
	var conf map[string]any
	if err := yaml.Unmarshal([]byte(text), &conf); err != nil {
		t.Errorf("%s: flink-conf.yaml: %v", where, err)
		return
	}
	if conf["execution.checkpointing.interval"] == nil {
		return
	}
	for _, k := range []string{"state.backend.type", "state.checkpoints.dir", "state.savepoints.dir", "execution.checkpointing.externalized-checkpoint-retention"} {
		if conf[k] == nil {
			t.Errorf("%s: flink-conf.yaml sets a checkpoint interval but not %s", where, k)
		}
	}
	if v := str(conf["state.backend.type"]); v != "rocksdb" {
		t.Errorf("%s: state.backend.type is %q, want rocksdb", where, v)
	}
	if p := str(conf["execution.savepoint.path"]); p != "" {
		t.Errorf("%s: execution.savepoint.path is set (%s): every job would restore from it; keep it commented out in git", where, p)
	}
}

type statement struct {
	Sid       string
	Effect    string
	Action    any
	NotAction any
	Resource  any
	Principal any
	Condition any
}

func TestIAMPolicies(t *testing.T) {
	paths := files(t, "iam", ".json")
	if len(paths) == 0 {
		t.Fatal("no IAM policies under deploy/iam")
	}
	readme, err := os.ReadFile("iam/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Version   string
			Statement []statement
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if p.Version != "2012-10-17" {
			t.Errorf("%s: Version %q, want 2012-10-17", path, p.Version)
		}
		if len(p.Statement) == 0 {
			t.Errorf("%s: no Statement", path)
		}
		for i, s := range p.Statement {
			where := fmt.Sprintf("%s statement %d %s", path, i+1, s.Sid)
			if s.Effect != "Allow" && s.Effect != "Deny" {
				t.Errorf("%s: Effect %q", where, s.Effect)
			}
			if s.NotAction != nil {
				t.Errorf("%s: NotAction grants everything else; list actions", where)
			}
			actions := anyStrings(s.Action)
			if len(actions) == 0 {
				t.Errorf("%s: no Action", where)
			}
			for _, a := range actions {
				svc, op, ok := strings.Cut(a, ":")
				if !ok || svc == "" || op == "" || strings.Contains(a, "*") {
					t.Errorf("%s: action %q: want service:Operation, no wildcards", where, a)
				}
			}
			if s.Principal != nil { // a trust policy
				continue
			}
			resources := anyStrings(s.Resource)
			if len(resources) == 0 {
				t.Errorf("%s: no Resource", where)
			}
			for _, r := range resources {
				if r == "*" || !strings.HasPrefix(r, "arn:") {
					t.Errorf("%s: resource %q is not a scoped ARN", where, r)
				}
			}
		}
		for _, v := range placeholders(data) {
			if !bytes.Contains(readme, []byte("${"+v+"}")) {
				t.Errorf("%s: ${%s} is not documented in deploy/iam/README.md", path, v)
			}
		}
	}
}

func anyStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

var placeholderRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func placeholders(data []byte) []string {
	var out []string
	for _, m := range placeholderRE.FindAllSubmatch(data, -1) {
		if v := string(m[1]); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// TestPlaceholdersDefined: every ${NAME} in a manifest, policy or unit is
// defined in fineo.env.example (render.sh substitutes only those; systemd
// reads the same file as EnvironmentFile).
func TestPlaceholdersDefined(t *testing.T) {
	data, err := os.ReadFile("fineo.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if name, _, ok := strings.Cut(line, "="); ok && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(name) {
			defined[name] = true
		}
	}
	for _, path := range files(t, ".", ".yaml", ".yml", ".json", ".service", ".timer") {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range placeholders(b) {
			if !defined[v] {
				t.Errorf("%s: ${%s} is not defined in deploy/fineo.env.example", path, v)
			}
		}
	}
}

// TestSystemdUnits: units parse as INI-like sections; a .service has [Unit]
// and [Service] with ExecStart, a .timer has [Unit] and [Timer].
func TestSystemdUnits(t *testing.T) {
	paths := files(t, ".", ".service", ".timer")
	if len(paths) == 0 {
		t.Fatal("no systemd units under deploy/")
	}
	for _, path := range paths {
		sections, err := parseUnit(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		want := "Service"
		if strings.HasSuffix(path, ".timer") {
			want = "Timer"
		}
		if sections["Unit"] == nil {
			t.Errorf("%s: no [Unit] section", path)
		}
		if sections[want] == nil {
			t.Errorf("%s: no [%s] section", path, want)
			continue
		}
		switch want {
		case "Service":
			exec := sections["Service"]["ExecStart"]
			if len(exec) != 1 || !strings.Contains(exec[0], "fineo ") {
				t.Errorf("%s: want one ExecStart running fineo, got %q", path, exec)
			}
		case "Timer":
			if len(sections["Timer"]["OnCalendar"]) == 0 {
				t.Errorf("%s: no OnCalendar", path)
			}
			if got := sections["Timer"]["Persistent"]; len(got) != 1 || got[0] != "true" {
				t.Errorf("%s: want Persistent=true, got %q", path, got)
			}
			if unit := sections["Timer"]["Unit"]; len(unit) == 1 {
				if _, err := os.Stat(filepath.Join(filepath.Dir(path), unit[0])); err != nil {
					t.Errorf("%s: Unit=%s: %v", path, unit[0], err)
				}
			}
		}
	}
}

var sectionRE = regexp.MustCompile(`^\[([A-Za-z]+)\]$`)
var keyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)

func parseUnit(path string) (map[string]map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sections := map[string]map[string][]string{}
	var cur map[string][]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			if sections[m[1]] != nil {
				return nil, fmt.Errorf("section [%s] twice", m[1])
			}
			cur = map[string][]string{}
			sections[m[1]] = cur
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || !keyRE.MatchString(key) {
			return nil, fmt.Errorf("line %d: not Key=Value: %s", n, line)
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: key outside a section", n)
		}
		cur[key] = append(cur[key], val)
	}
	return sections, sc.Err()
}

// fineoRE finds invocations: "fineo" as a word (after start, space, '/',
// quote, backtick or '(') followed by blanks and a lower-case word.
var fineoRE = regexp.MustCompile("(?m)(?:^|[\\s/\"'`(])fineo[ \\t]+([a-z][a-z0-9-]*)")

// TestFineoInvocations: every `fineo <command>` written in deploy/ and in
// the code of docs/PRODUCTION.md uses a command the binary knows.
func TestFineoInvocations(t *testing.T) {
	paths := files(t, ".", ".yaml", ".yml", ".service", ".timer", ".md", ".sh", ".example", "Dockerfile")
	paths = append(paths, productionGuide)
	found := 0
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		if strings.HasSuffix(path, ".md") {
			text = markdownCode(text)
		} else {
			text = codeAndQuotedComments(text)
		}
		for _, m := range fineoRE.FindAllStringSubmatch(text, -1) {
			found++
			if !slices.Contains(knownCommands, m[1]) {
				t.Errorf("%s: `fineo %s`: unknown command (known: %s)", path, m[1], strings.Join(knownCommands, ", "))
			}
		}
	}
	if found < 10 {
		t.Errorf("found only %d fineo invocations; is the pattern broken?", found)
	}
}

// codeAndQuotedComments keeps the non-comment lines of a config file and,
// of its comment lines, only the `backticked` spans.
func codeAndQuotedComments(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			parts := strings.Split(line, "`")
			for i := 1; i < len(parts); i += 2 {
				b.WriteString(parts[i] + "\n")
			}
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// markdownCode returns the fenced code blocks and inline code spans of a
// Markdown text, one per line (prose like "the fineo binary" is not a command).
func markdownCode(md string) string {
	var b strings.Builder
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			b.WriteString(line + "\n")
			continue
		}
		parts := strings.Split(line, "`")
		for i := 1; i < len(parts); i += 2 {
			b.WriteString(parts[i] + "\n")
		}
	}
	return b.String()
}

// TestIndex: deploy/README.md mentions every file under deploy/.
func TestIndex(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == "README.md" || strings.HasSuffix(path, "_test.go") {
			return err
		}
		if !bytes.Contains(readme, []byte(path)) {
			t.Errorf("deploy/README.md does not mention %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(productionGuide); err != nil {
		t.Errorf("the production guide is missing: %v", err)
	}
}
