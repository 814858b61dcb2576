package redact

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY")
	t.Setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzSESSIONTOKEN")
	Reload()
	defer Reload()
	for in, want := range map[string]string{
		"s3://user:pass@bucket/x":                                                   "s3://bucket/x",
		"open s3://AKIA:secret@bucket/key.jsonl: denied":                            "open s3://bucket/key.jsonl: denied",
		"https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&X-Amz-Signature=abc123&x=1": "https://b.s3.amazonaws.com/k?REDACTED",
		"s3://user:pass@bucket/x?X-Amz-Signature=SECRET":                            "s3://bucket/x?REDACTED",
		"get \"https://h/p?Signature=zzz&Expires=1\": EOF":                          "get \"https://h/p?REDACTED\": EOF",
		"query X-Amz-Credential=AKIA/2024/us-east-1 here":                           "query X-Amz-Credential=REDACTED here",
		"key wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY leaked":                          "key REDACTED leaked",
		"token=FwoGZXIvYXdzSESSIONTOKEN":                                            "token=REDACTED",
		"/data/in/part-1.jsonl:17":                                                  "/data/in/part-1.jsonl:17",
		"s3://bucket/prefix/?list-type=2":                                           "s3://bucket/prefix/?list-type=REDACTED",
		// Every query value, not a list of names (issue 19, defect 8).
		"https://hooks.example/notify?token=t0ps3cret&channel=ops": "https://hooks.example/notify?token=REDACTED&channel=REDACTED",
		"post http://127.0.0.1:9/x?password=hunter22: refused":     "post http://127.0.0.1:9/x?password=REDACTED: refused",
		"https://api.example/v1?api_key=ak_live_123456&flag":       "https://api.example/v1?api_key=REDACTED&flag",
		"https://api.example/v1?apiKey=ak_live_123456#frag":        "https://api.example/v1?apiKey=REDACTED#frag",
		"http://127.0.0.1:1/bucket/x":                              "http://127.0.0.1:1/bucket/x",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

func TestErrorAndHandler(t *testing.T) {
	base := &fs.PathError{Op: "open", Path: "s3://u:p@b/k", Err: fs.ErrNotExist}
	err := Error(base)
	if strings.Contains(err.Error(), "u:p") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Error: %v (is ErrNotExist: %v)", err, errors.Is(err, fs.ErrNotExist))
	}
	var buf bytes.Buffer
	l := slog.New(Handler(slog.NewJSONHandler(&buf, nil))).With("loc", "s3://a:b@c/d")
	l.Info("reading s3://x:y@z/w?X-Amz-Signature=S", "err", base, "grp", slog.Group("g", "u", "https://h/?sig=Q"))
	out := buf.String()
	for _, bad := range []string{"a:b@", "x:y@", "X-Amz-Signature=S", "u:p@", "sig=Q"} {
		if strings.Contains(out, bad) {
			t.Errorf("log line keeps %q: %s", bad, out)
		}
	}
}

func TestAddLocation(t *testing.T) {
	AddLocation("s3://someuser:Pa55+word@bucket/x?X-Amz-Signature=SIGVALUE1&y=2")
	got := String(`Get "http://127.0.0.1:1/someuser%3APa55%2Bword%40bucket?prefix=x%3FX-Amz-Signature%3DSIGVALUE1%26y": refused; Pa55+word SIGVALUE1`)
	for _, bad := range []string{"Pa55", "SIGVALUE1"} {
		if strings.Contains(got, bad) {
			t.Errorf("keeps %q: %s", bad, got)
		}
	}
}

// TestLocationQueryValuesEverywhere: a query value of a location given on
// the command line is redacted also where a library echoes it without its
// URL (an SDK error repeating the request path).
func TestLocationQueryValuesEverywhere(t *testing.T) {
	Reload()
	defer Reload()
	AddLocation("https://hooks.example/notify?token=t0ps3cret-xyz")
	if got := String(`operation error: POST /notify?token=t0ps3cret-xyz, status 403`); strings.Contains(got, "t0ps3cret-xyz") {
		t.Errorf("the query value leaked: %s", got)
	}
}
