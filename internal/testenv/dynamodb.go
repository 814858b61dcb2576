package testenv

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB returns the endpoint URL of a DynamoDB protocol server for the
// test, and points the AWS SDK at it.
//
// If AWS_ENDPOINT_URL_DYNAMODB is already set (CI may start a server), that
// endpoint is returned and the ambient credentials are used. Otherwise a
// dynalite server (npm dynalite, installed by `npm ci` from the committed
// lock file) is started on 127.0.0.1 with a fresh in-memory store, and
// AWS_ENDPOINT_URL_DYNAMODB, dummy AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
// and AWS_REGION=us-east-1 are set with t.Setenv (so the calling test cannot
// use t.Parallel). The server is stopped with t.Cleanup; if the test process
// dies, it exits too (it watches its stdin). Each call starts its own server
// (about half a second): share one per top-level test and use UniqueName
// for tables.
//
// Without node or dynalite the test is skipped locally, but fails under CI
// (CI set), where they must be present.
//
// dynalite's gaps: no UpdateTimeToLive (UnknownOperationException;
// DescribeTimeToLive answers DISABLED), no transactions, and it never
// returns UnprocessedItems or throttles: inject those by wrapping the client.
func DynamoDB(t testing.TB) string {
	t.Helper()
	return nodeStandIn(t, "dynalite", "AWS_ENDPOINT_URL_DYNAMODB", filepath.Join("dynalite", "cli.js"),
		func(node, watchdog, modules string) (string, error) {
			return startDynalite(t, node, watchdog, filepath.Join(modules, "dynalite", "cli.js"))
		})
}

// nodeStandIn returns the endpoint of an AWS stand-in: the one CI names in
// envVar, or one started from the repository's node_modules with start
// (retried on another port, twice). module is the file that must exist
// under node_modules. Without node or the module the test is skipped
// locally and fails under CI. It points the AWS SDK at the stand-in with
// dummy credentials.
//
//go:embed standin_guard.js
var standinGuard string

func nodeStandIn(t testing.TB, name, envVar, module string, start func(node, watchdog, modules string) (string, error)) string {
	t.Helper()
	if ep := os.Getenv(envVar); ep != "" {
		return ep
	}
	_, file, _, _ := runtime.Caller(0)
	modules := filepath.Join(filepath.Dir(file), "..", "..", "node_modules")
	node, err := exec.LookPath("node")
	missing := ""
	if err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(modules, module)); err != nil {
		missing = name + " is not installed (run npm ci)"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv: %s", missing)
		}
		t.Skipf("testenv: %s", missing)
	}

	// A preloaded watchdog ends the server when its stdin closes, that is
	// when this test process exits, however it exits; and it keeps the
	// server up when a client dies mid-request (standin_guard.js).
	watchdog := filepath.Join(t.TempDir(), "watchdog.js")
	if err := os.WriteFile(watchdog, []byte(standinGuard+"process.stdin.on('end',()=>process.exit(0));process.stdin.on('error',()=>process.exit(0));process.stdin.resume();\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	var lastErr error
	for try := 0; try < 3; try++ {
		url, err := start(node, watchdog, modules)
		if err == nil {
			t.Setenv(envVar, url)
			t.Setenv("AWS_ACCESS_KEY_ID", "testenv-dummy-key")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "testenv-dummy-secret")
			t.Setenv("AWS_SESSION_TOKEN", "")
			t.Setenv("AWS_REGION", "us-east-1")
			t.Setenv("AWS_PROFILE", "")
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			return url
		}
		lastErr = err // most likely the port was taken meanwhile: try another
	}
	t.Fatalf("testenv: start %s: %v", name, lastErr)
	return ""
}

var dynaliteListening = regexp.MustCompile(`Dynalite listening at: (\S+)`)

// startDynalite starts one dynalite on a free loopback port and waits (at
// most 10 s) until it accepts connections.
func startDynalite(t testing.TB, node, watchdog, cli string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(node, "--require", watchdog, cli,
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	ready := make(chan string, 1)
	cmd.Stdout = &lineWatcher{fn: func(line string) {
		if m := dynaliteListening.FindStringSubmatch(line); m != nil {
			select {
			case ready <- m[1]:
			default:
			}
		}
	}}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		stdin.Close()
		cmd.Process.Kill()
		<-exited
	}

	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		stop()
		return "", fmt.Errorf("dynalite exited at start (%v): %s", err, strings.TrimSpace(stderr.String()))
	case <-deadline.C:
		stop()
		return "", fmt.Errorf("dynalite did not start listening on %s within 10s: %s", url, strings.TrimSpace(stderr.String()))
	}
	// It says it listens; make sure it accepts.
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-deadline.C:
			stop()
			return "", fmt.Errorf("dynalite does not accept connections on %s: %v", url, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Cleanup(stop)
	return url, nil
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lineWatcher calls fn with each complete line written to it.
type lineWatcher struct {
	fn  func(string)
	buf []byte
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.fn(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// UniqueName returns a name for a table, stream or bucket of this test:
// prefix, the test's name (made safe, shortened) and random hex, joined by
// '-', at most 200 characters of [a-zA-Z0-9_.-].
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	name := nameUnsafe.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	s := nameUnsafe.ReplaceAllString(prefix, "_") + "-" + name + "-" + randHex(t, 4)
	if len(s) > 200 {
		s = s[len(s)-200:]
	}
	return strings.Trim(s, "-")
}

// ScanAPI is the part of the DynamoDB client ScanItems uses.
type ScanAPI interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// ScanItems scans the whole table (every page), calling fn, if not nil,
// with each item (only the attributes in projection, when not ""), and
// returns how many items there are. Items whose pk starts with "_fineo#"
// (a nearline table's own layout records, not events) are left out.
func ScanItems(t testing.TB, api ScanAPI, table, projection string, fn func(map[string]types.AttributeValue)) int {
	t.Helper()
	in := &dynamodb.ScanInput{TableName: aws.String(table),
		FilterExpression:          aws.String("NOT begins_with(#scanpk, :scanmeta)"),
		ExpressionAttributeNames:  map[string]string{"#scanpk": "pk"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":scanmeta": &types.AttributeValueMemberS{Value: "_fineo#"}}}
	if projection != "" {
		in.ProjectionExpression = aws.String(projection)
	}
	n := 0
	for pages := dynamodb.NewScanPaginator(api, in); pages.HasMorePages(); {
		res, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("testenv: scan %s: %v", table, err)
		}
		for _, it := range res.Items {
			n++
			if fn != nil {
				fn(it)
			}
		}
	}
	return n
}
