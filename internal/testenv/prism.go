package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// prismBuild is the standalone prism binary, built at most once per test
// binary.
var prismBuild struct {
	once sync.Once
	path string
	err  error
}

// repoRoot is the module root, found from this file's path.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// PrismBinary builds Beam's standalone prism runner
// (github.com/apache/beam/sdks/v2/go/cmd/prism) at the Beam version go.mod
// names, once per test binary, and returns its path. The first build on a
// cold cache can take over a minute; later ones come from Go's build cache.
//
// The binary goes to the user cache directory (fineo-testenv/prism) through
// a temp name and a rename, so test binaries building it at the same time
// never see a half-written file and nothing is left behind per run.
func PrismBinary(t testing.TB) string {
	t.Helper()
	prismBuild.once.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		dir = filepath.Join(dir, "fineo-testenv")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			prismBuild.err = err
			return
		}
		dst := filepath.Join(dir, "prism")
		tmp := dst + ".tmp-" + strconv.Itoa(os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "github.com/apache/beam/sdks/v2/go/cmd/prism")
		cmd.Dir = repoRoot() // go.mod's Beam version
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			prismBuild.err = fmt.Errorf("go build prism: %v\n%s", err, out)
			return
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			prismBuild.err = err
			return
		}
		prismBuild.path = dst
	})
	if prismBuild.err != nil {
		t.Fatalf("testenv: %v", prismBuild.err)
	}
	return prismBuild.path
}

// SyncBuffer is a bytes.Buffer a running process writes while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// PrismJobServer starts Beam's standalone prism job server on a free port
// and returns its endpoint, "localhost:PORT", for
// --runner=universal|prism --endpoint=... --environment_type=LOOPBACK. The
// server is killed when the test ends; its log is shown if the test failed.
//
// Exposure: prism's job server (v2.77.0) listens on all interfaces (":PORT")
// without authentication, and it has no flag to bind loopback only; a job
// server accepts PROCESS environments, which run commands on the host. It
// runs here only for the test's duration, on CI and developer machines
// without external network access; the web UI is turned off
// (--serve_http=false; it would bind localhost only anyway) and the server
// shuts itself down after 10 idle minutes should the test binary die without
// its cleanup.
func PrismJobServer(t testing.TB) (endpoint string) {
	t.Helper()
	bin := PrismBinary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		log := &SyncBuffer{}
		cmd := exec.Command(bin,
			"--job_port="+strconv.Itoa(port),
			"--serve_http=false",
			"--idle_shutdown_timeout=10m",
			"--log_level=warn",
		)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("testenv: start prism: %v", err)
		}
		var waitErr error
		exited := make(chan struct{}) // closed when the process has exited
		go func() { waitErr = cmd.Wait(); close(exited) }()
		endpoint = net.JoinHostPort("localhost", strconv.Itoa(port))
		if err := waitListening(endpoint, exited, &waitErr, 60*time.Second); err != nil {
			cmd.Process.Kill()
			<-exited
			lastErr = fmt.Errorf("%v\n%s", err, log.String())
			continue // most likely the port was taken meanwhile
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("prism job server log (%s):\n%s", endpoint, log.String())
			}
		})
		return endpoint
	}
	t.Fatalf("testenv: prism job server did not start: %v", lastErr)
	return ""
}

// waitListening waits until addr accepts TCP connections, the process
// exits, or the timeout passes.
func waitListening(addr string, exited <-chan struct{}, waitErr *error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("prism exited before listening on %s: %v", addr, *waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prism not listening on %s after %s: %v", addr, timeout, err)
		}
	}
}
