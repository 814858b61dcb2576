package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is a failure FaultProxy injects into a Kinesis or DynamoDB request.
type Fault int

const (
	// Throttle answers 400 ProvisionedThroughputExceededException (Kinesis
	// and DynamoDB) without forwarding the request.
	Throttle Fault = iota + 1
	// ExpiredIterator answers a Kinesis GetRecords with 400
	// ExpiredIteratorException without forwarding it.
	ExpiredIterator
	// Unprocessed forwards only the first half of a DynamoDB
	// BatchWriteItem's items of each table (len/2, so at least one is kept
	// back from two items on, and a lone item is kept back) and answers 200
	// with the kept-back items added to UnprocessedItems. When nothing is
	// left to forward, the request is answered without forwarding it.
	Unprocessed
	// PartialFailure forwards only the records at even indexes of a Kinesis
	// PutRecords and answers 200 with Records in request order: the
	// forwarded ones as the server answered them, the others failed with
	// ErrorCode ProvisionedThroughputExceededException, and
	// FailedRecordCount to match. A one-record request passes whole.
	PartialFailure
	// ServerError answers 500 without forwarding the request:
	// InternalFailureException for Kinesis (the SDK's
	// *types.InternalFailureException), InternalServerError for DynamoDB.
	ServerError
)

// FaultRule says which requests get which fault.
type FaultRule struct {
	Op    string // operation: the part of X-Amz-Target after the dot, e.g. "GetRecords", "PutRecords", "BatchWriteItem"
	Fault Fault
	Every int // inject on every Every-th matching request (1 or 0: every one)
	Limit int // at most this many injections by this rule (0: no limit)
}

// Proxy is a fault-injecting and rate-limiting reverse proxy started by
// NewProxy or FaultProxy.
type Proxy struct {
	URL string // http://127.0.0.1:PORT, an endpoint URL for the AWS SDK

	target *url.URL
	tr     *http.Transport
	rules  []FaultRule
	srv    *http.Server
	closed sync.Once

	mu       sync.Mutex
	disabled bool
	seen     []int // matching requests per rule
	hits     []int // injections per rule
	injected map[string]int

	lim limiter // the rate limits (ratelimit.go)
}

// NewProxy starts a reverse proxy on 127.0.0.1 (free port) in front of
// target (an endpoint URL such as the one Kinesis or DynamoDB returns) and
// returns it; Close stops it. Requests pass through unchanged (same
// method, path, headers and body; nothing is re-signed, the stand-ins
// ignore signatures) unless a rule matches or a rate limit (LimitKeyWrites,
// LimitShardWrites; off at the start) holds part of the request back.
//
// Rules apply to the AWS JSON protocols (Content-Type
// application/x-amz-json-1.0 or 1.1) as the Go SDK v2 speaks them for
// Kinesis and DynamoDB. Other requests, such as the CBOR that other SDKs
// use for Kinesis, always pass through. Rules are tried in order: each
// counts the requests for its Op, and the first that is due injects; a
// request no rule injects into then goes through the rate limits.
// Unprocessed needs Op BatchWriteItem, PartialFailure PutRecords and
// ExpiredIterator GetRecords; a rule that breaks this, or a target that is
// not an endpoint URL, is an error.
//
// NewProxy is for programs such as benchmarks; tests use FaultProxy.
func NewProxy(target string, rules ...FaultRule) (*Proxy, error) {
	p, err := newProxy(target, rules)
	if err != nil {
		return nil, fmt.Errorf("testenv.NewProxy: %w", err)
	}
	return p, nil
}

// FaultProxy is NewProxy for a test: an error fails the test, and
// t.Cleanup closes the proxy.
func FaultProxy(t testing.TB, target string, rules ...FaultRule) *Proxy {
	t.Helper()
	p, err := newProxy(target, rules)
	if err != nil {
		t.Fatalf("testenv.FaultProxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// newProxy is NewProxy, with errors that do not name it.
func newProxy(target string, rules []FaultRule) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("target %q is not an endpoint URL", target)
	}
	need := map[Fault]string{Unprocessed: "BatchWriteItem", PartialFailure: "PutRecords", ExpiredIterator: "GetRecords"}
	for _, r := range rules {
		if r.Op == "" || r.Fault < Throttle || r.Fault > ServerError || r.Every < 0 || r.Limit < 0 ||
			(need[r.Fault] != "" && need[r.Fault] != r.Op) {
			return nil, fmt.Errorf("invalid rule %+v", r)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	p := &Proxy{
		URL:      "http://" + l.Addr().String(),
		target:   u,
		tr:       tr,
		rules:    slices.Clone(rules),
		seen:     make([]int, len(rules)),
		hits:     make([]int, len(rules)),
		injected: map[string]int{},
		lim:      newLimiter(),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}
	go p.srv.Serve(l)
	return p, nil
}

// Close stops the proxy: it stops listening and waits (at most 10 s) for
// the requests in flight to be answered. Further calls do nothing.
func (p *Proxy) Close() {
	p.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if p.srv.Shutdown(ctx) != nil {
			p.srv.Close()
		}
		p.tr.CloseIdleConnections()
	})
}

// Injected returns how many faults were injected for op ("GetRecords",
// ...) so far. It is safe for concurrent use.
func (p *Proxy) Injected(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[op]
}

// SetEnabled turns the rules' injection on or off (it starts on). While it
// is off, no rule injects and no request counts towards Every or Limit.
// The rate limits are apart from it: LimitKeyWrites(0) and
// LimitShardWrites(0, 0) turn them off.
func (p *Proxy) SetEnabled(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disabled = !on
}

// pick returns the fault to inject into a request for op, or 0.
func (p *Proxy) pick(op string) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disabled {
		return 0
	}
	var fault Fault
	for i, r := range p.rules {
		if r.Op != op {
			continue
		}
		p.seen[i]++
		due := r.Every <= 1 || p.seen[i]%r.Every == 0
		if fault == 0 && due && (r.Limit == 0 || p.hits[i] < r.Limit) {
			p.hits[i]++
			p.injected[op]++
			fault = r.Fault
		}
	}
	return fault
}

// ServeHTTP injects the fault due for the request, if any, or else applies
// the rate limits, and forwards what is left to the target.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	service, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	ct := r.Header.Get("Content-Type")
	awsJSON := strings.HasPrefix(ct, "application/x-amz-json-")
	var fault Fault
	if awsJSON {
		fault = p.pick(op)
	}
	fwd := body                           // what to forward
	var edit func([]byte) ([]byte, error) // how to rewrite the answer
	switch fault {
	case 0:
		if awsJSON {
			var answered bool
			if fwd, edit, answered = p.limit(w, r, service, op, ct, body); answered {
				return
			}
		}
	case Throttle:
		writeAWSError(w, ct, 400, "ProvisionedThroughputExceededException", "Rate exceeded")
		return
	case ExpiredIterator:
		writeAWSError(w, ct, 400, "ExpiredIteratorException", "Iterator expired")
		return
	case ServerError:
		if strings.HasPrefix(service, "Kinesis") {
			writeAWSError(w, ct, 500, "InternalFailureException", "Internal service failure")
		} else {
			writeAWSError(w, ct, 500, "InternalServerError", "Internal server error")
		}
		return
	case PartialFailure:
		fwd, edit, err = partialFailure(body)
	case Unprocessed:
		var held map[string][]json.RawMessage
		fwd, held, err = unprocessed(body)
		if err == nil && fwd == nil { // nothing left to forward
			b, _ := json.Marshal(map[string]any{"UnprocessedItems": held})
			WriteJSON(w, ct, 200, b)
			return
		}
		edit = func(resp []byte) ([]byte, error) { return addUnprocessed(resp, held) }
	}
	if err != nil { // not the JSON the SDK sends (the fault still counts): let the server judge it
		fwd, edit = body, nil
	}
	p.forward(w, r, fwd, edit)
}

// forward sends the request with body to the target. If edit is not nil,
// a 200 answer's body is replaced by edit's result.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, body []byte, edit func([]byte) ([]byte, error)) {
	rp := &httputil.ReverseProxy{
		Transport: p.tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			pr.Out.Body = io.NopCloser(bytes.NewReader(body))
			pr.Out.ContentLength = int64(len(body))
			pr.Out.TransferEncoding = nil
			if edit != nil {
				pr.Out.Header.Del("Accept-Encoding") // an answer we can read
			}
		},
	}
	if edit != nil {
		rp.ModifyResponse = func(resp *http.Response) error {
			if resp.StatusCode != http.StatusOK {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				b, err = edit(b)
			}
			if err != nil {
				return fmt.Errorf("testenv.FaultProxy: rewrite %s answer: %w", r.Header.Get("X-Amz-Target"), err)
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			if resp.Header.Get("X-Amz-Crc32") != "" { // DynamoDB's, checked by its SDK
				resp.Header.Set("X-Amz-Crc32", crc32Header(b))
			}
			return nil
		}
	}
	rp.ServeHTTP(w, r)
}

// writeAWSError answers an AWS JSON protocol error the SDK resolves to the
// typed error named code (X-Amzn-Errortype and __type), its message marked
// as injected.
func writeAWSError(w http.ResponseWriter, contentType string, status int, code, msg string) {
	writeAWSErrorMessage(w, contentType, status, code, msg+" (injected by testenv.FaultProxy)")
}

// writeAWSErrorMessage is writeAWSError with msg as it is.
func writeAWSErrorMessage(w http.ResponseWriter, contentType string, status int, code, msg string) {
	w.Header().Set("X-Amzn-Errortype", code)
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	WriteJSON(w, contentType, status, b)
}

// WriteJSON answers an AWS JSON-protocol body with its length and CRC32
// (as DynamoDB does, and its SDK checks; Kinesis clients ignore it): for
// fakes of the services in tests.
func WriteJSON(w http.ResponseWriter, contentType string, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amz-Crc32", crc32Header(body))
	w.WriteHeader(status)
	w.Write(body)
}

// crc32Header is the X-Amz-Crc32 header value for body.
func crc32Header(body []byte) string {
	return strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10)
}

// editJSON decodes a JSON object, lets edit change its members and encodes
// it again; members edit does not touch stay as they were.
func editJSON(b []byte, edit func(map[string]json.RawMessage) error) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if err := edit(m); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// partialFailure keeps the records at even indexes of a PutRecords body and
// returns the body to forward and the rewrite of the answer.
func partialFailure(body []byte) ([]byte, func([]byte) ([]byte, error), error) {
	top, records, err := putRecordsBody(body)
	if err != nil {
		return body, nil, err
	}
	fail := make([]string, len(records))
	for i := 1; i < len(records); i += 2 {
		fail[i] = "Rate exceeded for shard (injected by testenv.FaultProxy)"
	}
	fwd, edit, err := failRecords(top, records, fail)
	return fwd, edit, err
}

// putRecordsBody decodes a PutRecords body into its members and its
// Records.
func putRecordsBody(body []byte) (map[string]json.RawMessage, []json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, nil, err
	}
	var records []json.RawMessage
	if err := json.Unmarshal(top["Records"], &records); err != nil {
		return nil, nil, err
	}
	return top, records, nil
}

// failedRecord is a PutRecords answer's entry for a record failed with
// ProvisionedThroughputExceededException and msg.
func failedRecord(msg string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": msg})
	return b
}

// failRecords fails the records of a PutRecords request (top, its members;
// records, its Records) whose fail entry is not "", with ErrorCode
// ProvisionedThroughputExceededException and fail[i] as ErrorMessage. It
// returns the body that forwards the other records (at least one must be
// left) and the rewrite of the answer: Records in request order, the
// forwarded ones as the server answered them, and FailedRecordCount to
// match.
func failRecords(top map[string]json.RawMessage, records []json.RawMessage, fail []string) ([]byte, func([]byte) ([]byte, error), error) {
	var keep []json.RawMessage
	for i, rec := range records {
		if fail[i] == "" {
			keep = append(keep, rec)
		}
	}
	held := len(records) - len(keep)
	var err error
	if top["Records"], err = json.Marshal(keep); err != nil {
		return nil, nil, err
	}
	body, err := json.Marshal(top)
	edit := func(resp []byte) ([]byte, error) {
		var got struct {
			FailedRecordCount int
			Records           []json.RawMessage
		}
		if err := json.Unmarshal(resp, &got); err != nil {
			return nil, err
		}
		if len(got.Records) != len(keep) {
			return nil, fmt.Errorf("%d records answered, %d sent", len(got.Records), len(keep))
		}
		all := make([]json.RawMessage, len(records))
		next := got.Records
		for i := range all {
			if fail[i] != "" {
				all[i] = failedRecord(fail[i])
			} else {
				all[i], next = next[0], next[1:]
			}
		}
		return editJSON(resp, func(m map[string]json.RawMessage) (err error) {
			m["FailedRecordCount"], _ = json.Marshal(got.FailedRecordCount + held)
			m["Records"], err = json.Marshal(all)
			return err
		})
	}
	return body, edit, err
}

// unprocessed keeps the first half of each table's items of a
// BatchWriteItem body. It returns the body to forward (nil when no item is
// left) and the items held back, by table.
func unprocessed(body []byte) ([]byte, map[string][]json.RawMessage, error) {
	held := map[string][]json.RawMessage{}
	left := false
	body, err := editJSON(body, func(m map[string]json.RawMessage) error {
		var items map[string][]json.RawMessage
		if err := json.Unmarshal(m["RequestItems"], &items); err != nil {
			return err
		}
		for table, reqs := range items {
			n := len(reqs) / 2
			held[table] = reqs[n:]
			if n == 0 {
				delete(items, table)
			} else {
				items[table] = reqs[:n]
			}
		}
		left = len(items) > 0
		var err error
		m["RequestItems"], err = json.Marshal(items)
		return err
	})
	if !left && len(held) > 0 {
		body = nil
	}
	return body, held, err
}

// addUnprocessed adds held to the UnprocessedItems of a BatchWriteItem
// answer.
func addUnprocessed(resp []byte, held map[string][]json.RawMessage) ([]byte, error) {
	return editJSON(resp, func(m map[string]json.RawMessage) error {
		un := map[string][]json.RawMessage{}
		if raw, ok := m["UnprocessedItems"]; ok {
			if err := json.Unmarshal(raw, &un); err != nil {
				return err
			}
		}
		for table, reqs := range held {
			un[table] = append(un[table], reqs...)
		}
		var err error
		m["UnprocessedItems"], err = json.Marshal(un)
		return err
	})
}
