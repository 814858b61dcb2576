// Package redact keeps credentials out of Fineo's logs and error messages.
//
// String rewrites any text before it is printed: URLs lose their userinfo
// (s3://user:pass@bucket → s3://bucket); every query value of a URL is
// replaced (?token=REDACTED&page=REDACTED: a name list would miss the next
// api_key), and a URL that carries a request signature (X-Amz-Signature,
// X-Amz-Credential, X-Amz-Security-Token, Signature, sig) loses its whole
// query string; stray signature parameters lose their values; and the values of the AWS credential
// environment variables (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_ACCESS_KEY_ID), wherever they appear, become "REDACTED".
//
// Error wraps an error so that its message is redacted while errors.Is and
// errors.As still see the original; Handler wraps a slog.Handler so that
// every message and string attribute is redacted.
package redact

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Mark replaces what is removed.
const Mark = "REDACTED"

// SecretEnv lists the environment variables whose values never appear in
// output.
var SecretEnv = []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECURITY_TOKEN"}

var (
	urlRe = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>\x60]+`)
	// userinfo in anything that looks like scheme://user[:pass]@host
	userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s"'<>@?#]*@`)
	// signature parameters anywhere (also outside URLs, e.g. in a quoted query)
	// (also percent-encoded: "X-Amz-Signature%3D...")
	paramRe = regexp.MustCompile(`(?i)\b(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|sig|AWSAccessKeyId)(=|%3D)[^&\s"'<>%]*`)

	secretsOnce sync.Once
	mu          sync.RWMutex
	secrets     []string
)

// signedParams are the query keys that make a URL a signed (credential
// carrying) URL.
var signedParams = []string{"x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "sig", "awsaccesskeyid"}

func loadSecrets() {
	for _, k := range SecretEnv {
		// Very short values are not credentials; replacing them would garble text.
		if v := os.Getenv(k); len(v) >= 8 {
			secrets = append(secrets, v)
		}
	}
}

// AddSecret makes v (and its URL-escaped forms) redacted wherever it
// appears from now on. Values shorter than 4 bytes are ignored.
func AddSecret(v string) {
	secretsOnce.Do(loadSecrets)
	if len(v) < 4 {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range []string{v, url.PathEscape(v), url.QueryEscape(v)} {
		if !slices.Contains(secrets, f) {
			secrets = append(secrets, f)
		}
	}
}

// AddLocation registers the credentials a location given on the command
// line may carry (userinfo, signature query values), so that they stay
// redacted even where a library echoes them in another form (a bucket name
// in an escaped request path, say).
func AddLocation(loc string) {
	if !strings.Contains(loc, "://") {
		return
	}
	scheme, rest, _ := strings.Cut(loc, "://")
	_ = scheme
	host := rest
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		user, pass, hasPass := strings.Cut(host[:at], ":")
		AddSecret(host[:at])
		if hasPass {
			AddSecret(pass)
		}
		_ = user
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q, _ := url.ParseQuery(rest[i+1:])
		for _, vs := range q {
			for _, v := range vs {
				AddSecret(v) // an echo of it elsewhere (a request path in an SDK error) too
			}
		}
	}
}

// Reload re-reads the secret environment variables (for tests).
func Reload() {
	secretsOnce.Do(func() {})
	mu.Lock()
	defer mu.Unlock()
	secrets = nil
	loadSecrets()
}

// String returns s with credentials removed.
func String(s string) string {
	secretsOnce.Do(loadSecrets)
	mu.RLock()
	sec := secrets
	mu.RUnlock()
	for _, v := range sec {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Mark)
		}
	}
	if strings.Contains(s, "://") {
		s = urlRe.ReplaceAllStringFunc(s, func(u string) string {
			// Punctuation after a URL in a message is not part of it.
			t := strings.TrimRight(u, ".,:;)")
			return URL(t) + u[len(t):]
		})
		s = userinfoRe.ReplaceAllString(s, "${1}")
	}
	if strings.Contains(s, "=") || strings.Contains(s, "%3") {
		s = paramRe.ReplaceAllString(s, "${1}${2}"+Mark)
	}
	return s
}

// URL returns a location with its userinfo removed and every query value
// replaced by Mark (the keys kept); a signed URL loses its whole query.
// Text that is not a URL is returned with the same rules applied as well as
// can be.
func URL(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme == "" {
		loc = userinfoRe.ReplaceAllString(loc, "${1}")
		if i := strings.IndexByte(loc, '?'); i >= 0 {
			loc = loc[:i] + "?" + query(loc[i+1:])
		}
		return loc
	}
	changed := false
	if u.User != nil {
		u.User = nil
		changed = true
	}
	if u.RawQuery != "" {
		if q := query(u.RawQuery); q != u.RawQuery {
			u.RawQuery = q
			changed = true
		}
	}
	if !changed {
		return loc
	}
	return u.String()
}

// query returns a raw query with every value replaced by Mark, or Mark for
// a signed one.
func query(raw string) string {
	if signed(raw) {
		return Mark
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + Mark
		}
	}
	return strings.Join(parts, "&")
}

func signed(query string) bool {
	q := strings.ToLower(query)
	for _, p := range signedParams {
		if strings.HasPrefix(q, p+"=") || strings.Contains(q, "&"+p+"=") {
			return true
		}
	}
	return false
}

// Error returns err with a redacted message; nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := String(msg); red != msg {
		return &redacted{msg: red, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Is lets errors.Is see through.
func (r *redacted) Is(target error) bool { return errors.Is(r.err, target) }

// Handler returns h with every log message and string (and error) attribute
// redacted.
func Handler(h slog.Handler) slog.Handler { return &handler{h} }

type handler struct{ h slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = attr(a)
	}
	return &handler{h.h.WithAttrs(red)}
}

func (h *handler) WithGroup(name string) slog.Handler { return &handler{h.h.WithGroup(name)} }

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = attr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, String(x.Error()))
		case []byte:
			return slog.String(a.Key, String(string(x)))
		default:
			// Stringers, structs, ...: render, then redact.
			return slog.String(a.Key, String(v.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
