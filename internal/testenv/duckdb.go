package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// DuckDB runs one SQL statement with DuckDB (npm @duckdb/node-api, installed
// by `npm ci` from the committed lock file) and returns the rows, numbers
// as JSON strings or numbers as DuckDB renders them. It is the independent
// SQL reader of Fineo's outputs. Without node or the package the test is
// skipped locally, but fails under CI (CI=true), where they must be present.
func DuckDB(t testing.TB, sql string) []map[string]any {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	root := filepath.Join(dir, "..", "..")
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(root, "node_modules", "@duckdb", "node-api")); err != nil {
		missing = "@duckdb/node-api is not installed (run npm ci)"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv.DuckDB: %s", missing)
		}
		t.Skipf("testenv.DuckDB: %s", missing)
	}
	cmd := exec.Command("node", filepath.Join(dir, "duckdb_query.mjs"), sql)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\nsql: %s", err, sql)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output: %v: %s", err, out)
	}
	return rows
}
