package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// runFineoEnv runs the binary with extra environment variables.
func runFineoEnv(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestNoSecretsInOutput runs failing jobs with credentials in the
// environment and in the locations, and checks no marker is printed.
func TestNoSecretsInOutput(t *testing.T) {
	bin := fineoBinary(t)
	dir := t.TempDir()
	schemas := filepath.Join("..", "..", "testdata", "sample", "schemas")
	markers := []string{"AKIDMARKER0123456789", "SECRETMARKERwJalrXUtnFEMI", "SESSIONMARKERFwoGZXIvYXdz", "URLPASSMARKER", "SIGMARKER", "CREDMARKER"}
	env := []string{
		"AWS_ACCESS_KEY_ID=" + markers[0], "AWS_SECRET_ACCESS_KEY=" + markers[1], "AWS_SESSION_TOKEN=" + markers[2],
		"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_S3=http://127.0.0.1:1", "AWS_MAX_ATTEMPTS=1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	bare := filepath.Join(dir, "bare.jsonl")
	os.WriteFile(bare, []byte(`{"metrictype":"weather","timestamp":"2023-11-14T22:13:21Z","temperature":20}`+"\n"+`{"metrictype":"nope","timestamp":1}`+"\n"), 0o644)
	signed := "s3://user:" + markers[3] + "@bucket/x?X-Amz-Signature=" + markers[4] + "&X-Amz-Credential=" + markers[5]
	for _, args := range [][]string{
		{"ingest", "--input", signed, "--schemas", schemas, "--archive", filepath.Join(dir, "a"), "--log-level", "debug"},
		{"ingest", "--input", "s3://bucket/in/?X-Amz-Signature=" + markers[4], "--schemas", schemas, "--archive", "s3://user:" + markers[3] + "@out/prefix", "--log-level", "debug", "--log-format", "json"},
		{"ingest", "--input", bare, "--tenant", "harbor", "--schemas", schemas, "--archive", "s3://arch/p?X-Amz-Signature=" + markers[4], "--log-level", "info", "--notify", "http://u:" + markers[3] + "@127.0.0.1:1/h?sig=" + markers[4]},
		{"batch", "--archive", signed, "--lake", "s3://l:" + markers[3] + "@lake/x", "--schemas", schemas, "--log-level", "debug"},
		{"ingest", "--input", signed, "--schemas", schemas, "--archive", dir, "--notify", "ftp://u:" + markers[3] + "@host/?X-Amz-Signature=" + markers[4]},
	} {
		out, errOut, code := runFineoEnv(t, bin, env, args...)
		if code == 0 {
			t.Errorf("%v: exit 0, want a failure\n%s\n%s", args[:3], out, errOut)
		}
		for _, m := range markers {
			if strings.Contains(out, m) || strings.Contains(errOut, m) {
				t.Errorf("%v: output contains marker %s\nstdout:\n%s\nstderr:\n%s", args[:3], m, out, errOut)
			}
		}
		if errOut == "" {
			t.Errorf("%v: no error on stderr", args[:3])
		}
	}
}

func TestLogFormatJSON(t *testing.T) {
	bin := fineoBinary(t)
	schemas := filepath.Join("..", "..", "testdata", "sample", "schemas")
	bare := filepath.Join(t.TempDir(), "bare.jsonl")
	os.WriteFile(bare, []byte(`{"metrictype":"weather","timestamp":"2023-11-14T22:13:21Z","temperature":20}`+"\n"), 0o644)
	_, errOut, code := runFineo(t, bin, "ingest", "--input", bare, "--tenant", "harbor", "--schemas", schemas,
		"--archive", t.TempDir(), "--log-level", "info", "--log-format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] == nil {
			t.Errorf("not a JSON log line: %q", line)
		}
		n++
	}
	if n == 0 {
		t.Error("no log lines at --log-level info")
	}
	if _, errOut, code := runFineo(t, bin, "ingest", "--log-format", "xml"); code != 2 || !strings.Contains(errOut, "--log-format") {
		t.Errorf("bad --log-format: exit %d, %s", code, errOut)
	}
}

func TestQuietHasNoProgress(t *testing.T) {
	bin := fineoBinary(t)
	sample := filepath.Join("..", "..", "testdata", "sample")
	arch := t.TempDir()
	_, errOut, code := runFineo(t, bin, "ingest", "--quiet", "--input", filepath.Join(sample, "raw"), "--schemas", filepath.Join(sample, "schemas"), "--archive", arch)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, "ingest:") || strings.Contains(errOut, "events/s") {
		t.Errorf("--quiet ingest printed progress:\n%s", errOut)
	}
	_, errOut, code = runFineo(t, bin, "batch", "--quiet", "--archive", arch, "--lake", t.TempDir(), "--schemas", filepath.Join(sample, "schemas"))
	if code != 0 {
		t.Fatalf("batch exit %d: %s", code, errOut)
	}
	if strings.TrimSpace(errOut) != "" {
		t.Errorf("--quiet batch printed on stderr:\n%s", errOut)
	}
}

// TestUsageAndNotify ingests the sample with a local webhook: the usage
// file's staged counts per tenant equal the generator's ground truth, and
// exactly one alert arrives with the customer errors per tenant and kind.
// A clean run sends nothing.
func TestUsageAndNotify(t *testing.T) {
	bin := fineoBinary(t)
	sample := filepath.Join("..", "..", "testdata", "sample")
	var mu sync.Mutex
	var posts [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, b)
		mu.Unlock()
	}))
	defer srv.Close()

	arch := t.TempDir()
	out, errOut, code := runFineo(t, bin, "ingest", "--quiet", "--input", filepath.Join(sample, "raw"), "--schemas", filepath.Join(sample, "schemas"),
		"--archive", arch, "--notify", srv.URL+"/hook")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var exp struct {
		Errors        map[string]int64 `json:"errors"`
		ValidByTenant map[string]int64 `json:"valid_by_tenant"`
		ErrorEvents   int64            `json:"error_events"`
	}
	b, err := os.ReadFile(filepath.Join(sample, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &exp)

	files, _ := filepath.Glob(filepath.Join(arch, "_usage", "ingest-*.json"))
	if len(files) != 1 {
		t.Fatalf("usage files: %v\n%s", files, out)
	}
	var u struct {
		Job     string                               `json:"job"`
		Status  string                               `json:"status"`
		Tenants map[string]map[string]map[string]any `json:"tenants"`
	}
	b, _ = os.ReadFile(files[0])
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("usage file: %v", err)
	}
	for tenant, want := range exp.ValidByTenant {
		if got, _ := u.Tenants[tenant]["stage1"]["staged"].(float64); int64(got) != want {
			t.Errorf("usage: tenant %s staged %v, want %d", tenant, got, want)
		}
	}
	if len(exp.ValidByTenant) != 3 || u.Job != "ingest" || u.Status != "customer_errors" {
		t.Errorf("usage: job %q status %q, expected %v", u.Job, u.Status, exp.ValidByTenant)
	}
	if !strings.Contains(out, "per-tenant usage:") || !strings.Contains(out, "harbor") {
		t.Errorf("summary lacks per-tenant usage:\n%s", out)
	}

	mu.Lock()
	if len(posts) != 1 {
		t.Fatalf("%d POSTs, want 1", len(posts))
	}
	var n struct {
		Job, Run, Status string
		Tenants          map[string]struct {
			Kinds  map[string]int64 `json:"kinds"`
			Events int64            `json:"events"`
		} `json:"tenants"`
		ErrorArchive     struct{ Customer, Processing string } `json:"error_archive"`
		ProcessingErrors struct{ Count int64 }                 `json:"processing_errors"`
	}
	if err := json.Unmarshal(posts[0], &n); err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	byKind := map[string]int64{}
	var total int64
	for _, te := range n.Tenants {
		for k, c := range te.Kinds {
			byKind[k] += c
		}
		total += te.Events
	}
	if total != exp.ErrorEvents || n.Job != "ingest" || n.Status != "customer_errors" || n.ProcessingErrors.Count != 0 || !strings.HasSuffix(n.ErrorArchive.Customer, "/errors/customer/") {
		t.Errorf("notification: %s", posts[0])
	}
	for k, want := range exp.Errors {
		if byKind[k] != want {
			t.Errorf("notification kind %s: %d, want %d", k, byKind[k], want)
		}
	}
	if n.Tenants["harbor"].Kinds["unknown_metric"] == 0 || n.Tenants["_unknown"].Kinds["malformed_json"] != exp.Errors["malformed_json"] {
		t.Errorf("per-tenant sections: %s", posts[0])
	}

	// A clean run: no POST.
	clean := filepath.Join(t.TempDir(), "clean.jsonl")
	os.WriteFile(clean, []byte(`{"metrictype":"weather","timestamp":"2023-11-14T22:13:21Z","temperature":20}`+"\n"), 0o644)
	if _, errOut, code := runFineo(t, bin, "ingest", "--quiet", "--input", clean, "--tenant", "harbor", "--schemas", filepath.Join(sample, "schemas"),
		"--archive", t.TempDir(), "--notify", srv.URL+"/hook"); code != 0 {
		t.Fatalf("clean run: exit %d\n%s", code, errOut)
	}
	mu.Lock()
	if len(posts) != 1 {
		t.Errorf("clean run sent a notification: %d POSTs", len(posts))
	}
	mu.Unlock()

	// A processing error (corrupt gzip) → one more POST, processing section; exit 3 unchanged.
	corrupt := filepath.Join(t.TempDir(), "bad.jsonl.gz")
	os.WriteFile(corrupt, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, 0o644)
	if _, errOut, code := runFineo(t, bin, "ingest", "--quiet", "--input", corrupt, "--schemas", filepath.Join(sample, "schemas"),
		"--archive", t.TempDir(), "--notify", srv.URL+"/hook", "--notify", "http://127.0.0.1:1/down"); code != 3 {
		t.Fatalf("corrupt input: exit %d, want 3\n%s", code, errOut)
	} else if !strings.Contains(errOut, "notification(s) failed") {
		t.Errorf("failed notification not reported:\n%s", errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 2 || !strings.Contains(string(posts[1]), `"status":"processing_errors"`) || !strings.Contains(string(posts[1]), `"read_failed":1`) {
		t.Errorf("processing-error notification: %d POSTs, last %s", len(posts), posts[len(posts)-1])
	}
}
