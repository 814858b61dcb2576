// Package notify sends one alert per job run that produced customer or
// processing errors (or failed), to webhooks and SNS topics given with
// --notify:
//
//	https://host/path          POST of the JSON notification (Content-Type application/json)
//	http://127.0.0.1:PORT/...  plain HTTP only to the loopback host (tests, local relays)
//	sns://arn:aws:sns:REGION:ACCOUNT:TOPIC   SNS Publish of the same JSON (standard AWS
//	                           configuration; AWS_ENDPOINT_URL_SNS for a local endpoint)
//
// Each target gets up to 1+Retries attempts with exponential backoff
// (HTTP: network errors, 429 and 5xx are retried). A notification that
// still fails is logged, redacted, and never changes the job's exit code.
// Every attempt of one run carries the same Fineo-Notification-Id header
// (and SNS message attribute), so a receiver can drop duplicates.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/fineo-io/ingest/ops/redact"
)

// Notification is the JSON body of one alert.
type Notification struct {
	Version int    `json:"version"`
	ID      string `json:"id"` // <job>-<run>: the same for every attempt
	Job     string `json:"job"`
	Run     string `json:"run"`
	// Status: customer_errors, processing_errors or failed.
	Status string    `json:"status"`
	Time   time.Time `json:"time"`
	// Tenants holds customers' bad data: per tenant, error events by kind.
	// Errors with no known tenant are under "_unknown".
	Tenants map[string]TenantErrors `json:"tenants"`
	// ErrorArchive holds where the error records are.
	ErrorArchive ErrorArchive `json:"error_archive"`
	// ProcessingErrors is the operators' part: our failures.
	ProcessingErrors Processing `json:"processing_errors"`
	// Usage is the location of the run's usage file, if written.
	Usage string `json:"usage,omitempty"`
}

// TenantErrors is one tenant's customer errors.
type TenantErrors struct {
	Kinds  map[string]int64 `json:"kinds"`
	Events int64            `json:"events"`
}

// ErrorArchive names the error archive's folders.
type ErrorArchive struct {
	Customer   string `json:"customer"`
	Processing string `json:"processing"`
}

// Processing is the operator section.
type Processing struct {
	Count int64            `json:"count"`
	Kinds map[string]int64 `json:"kinds,omitempty"` // where the kind is known
	// Failure is the job's one-line reason when the job itself failed.
	Failure string `json:"failure,omitempty"`
}

// Target is one parsed --notify destination.
type Target struct {
	raw   string
	url   *url.URL // http(s)
	arn   string   // sns
	isSNS bool
}

// String names the target without any secret: webhook paths and queries
// often carry tokens, so only the scheme and host are shown.
func (t Target) String() string {
	if t.isSNS {
		return "sns://" + t.arn
	}
	return t.url.Scheme + "://" + t.url.Host + "/…"
}

// Spec returns the --notify value the target was parsed from, secrets
// included (to hand to a worker; never log it).
func (t Target) Spec() string { return t.raw }

// ParseAll parses --notify values (Target.Spec's, as a worker receives
// them) with Parse, stopping at the first error.
func ParseAll(specs []string) ([]Target, error) {
	var targets []Target
	for _, spec := range specs {
		t, err := Parse(spec)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// Parse validates a --notify value.
func Parse(s string) (Target, error) {
	if arn, ok := strings.CutPrefix(s, "sns://"); ok {
		p := strings.Split(arn, ":")
		if len(p) != 6 || p[0] != "arn" || p[2] != "sns" || p[3] == "" || p[5] == "" {
			return Target{}, fmt.Errorf("--notify %s: want sns://arn:aws:sns:REGION:ACCOUNT:TOPIC", redact.String(s))
		}
		return Target{raw: s, arn: arn, isSNS: true}, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return Target{}, fmt.Errorf("--notify %s: not a URL (want https://..., or sns://arn:...)", redact.String(s))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return Target{}, fmt.Errorf("--notify %s: plain http is only allowed to localhost/127.0.0.1; use https", redact.URL(s))
		}
	default:
		return Target{}, fmt.Errorf("--notify %s: scheme %q is not supported (https, http to localhost, sns)", redact.URL(s), u.Scheme)
	}
	return Target{raw: s, url: u}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Sender sends notifications.
type Sender struct {
	Retries int           // retries after the first attempt (default 3)
	Backoff time.Duration // first backoff, doubled each retry (default 1s)
	Timeout time.Duration // per attempt (default 10s)
	Client  *http.Client
	// SNS publishes to SNS; nil means a client from the standard AWS configuration.
	SNS func(ctx context.Context, in *sns.PublishInput) error
}

// Send sends n to every target and returns the targets' final errors
// (redacted), one per failed target. It logs each failure.
func (s *Sender) Send(ctx context.Context, targets []Target, n *Notification) []error {
	if len(targets) == 0 {
		return nil
	}
	body, err := json.Marshal(n)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, t := range targets {
		if err := s.send(ctx, t, n.ID, body); err != nil {
			err = redact.Error(fmt.Errorf("notify %s: %w", t, err))
			slog.Error("notification failed; the job's result stands", "target", t.String(), "err", err)
			errs = append(errs, err)
		} else {
			slog.Info("notification sent", "target", t.String(), "status", n.Status)
		}
	}
	return errs
}

type permanent struct{ error }

func (s *Sender) send(ctx context.Context, t Target, id string, body []byte) error {
	retries, backoff := s.Retries, s.Backoff
	if retries == 0 {
		retries = 3
	}
	if retries < 0 {
		retries = 0
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	var err error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		if t.isSNS {
			err = s.publish(ctx, t, id, body)
		} else {
			err = s.post(ctx, t, id, body)
		}
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		slog.Warn("notification attempt failed", "target", t.String(), "attempt", attempt+1, "err", redact.String(err.Error()))
	}
	return fmt.Errorf("%w (after %d attempts)", err, retries+1)
}

func (s *Sender) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 10 * time.Second
}

func (s *Sender) post(ctx context.Context, t Target, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.raw, bytes.NewReader(body))
	if err != nil {
		return permanent{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fineo-notify/1")
	req.Header.Set("Fineo-Notification-Id", id)
	c := s.Client
	if c == nil {
		c = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the full URL, tokens included
		}
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %s", resp.Status)
	default:
		return permanent{fmt.Errorf("HTTP %s (not retried)", resp.Status)}
	}
}

func (s *Sender) publish(ctx context.Context, t Target, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	in := &sns.PublishInput{
		TopicArn: aws.String(t.arn),
		Message:  aws.String(string(body)),
		Subject:  aws.String("fineo " + id),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"Fineo-Notification-Id": {DataType: aws.String("String"), StringValue: aws.String(id)},
		},
	}
	if s.SNS != nil {
		return s.SNS(ctx, in)
	}
	region := strings.Split(t.arn, ":")[3]
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return permanent{err}
	}
	_, err = sns.NewFromConfig(cfg, func(o *sns.Options) { o.RetryMaxAttempts = 1 }).Publish(ctx, in)
	return err
}
