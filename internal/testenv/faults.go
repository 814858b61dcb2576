package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
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

// Proxy is a fault-injecting reverse proxy started by FaultProxy.
type Proxy struct {
	URL string // http://127.0.0.1:PORT, an endpoint URL for the AWS SDK

	target *url.URL
	tr     *http.Transport
	rules  []FaultRule

	mu       sync.Mutex
	disabled bool
	seen     []int // matching requests per rule
	hits     []int // injections per rule
	injected map[string]int
}

// FaultProxy starts a reverse proxy on 127.0.0.1 (free port) in front of
// target (an endpoint URL such as the one Kinesis or DynamoDB returns) and
// returns it; t.Cleanup closes it. Requests pass through unchanged (same
// method, path, headers and body; nothing is re-signed, the stand-ins
// ignore signatures) unless a rule matches.
//
// Rules apply to the AWS JSON protocols (Content-Type
// application/x-amz-json-1.0 or 1.1) as the Go SDK v2 speaks them for
// Kinesis and DynamoDB. Other requests, such as the CBOR that other SDKs
// use for Kinesis, always pass through. Rules are tried in order: each
// counts the requests for its Op, and the first that is due injects.
// Unprocessed needs Op BatchWriteItem, PartialFailure PutRecords and
// ExpiredIterator GetRecords; a rule that breaks this fails the test.
func FaultProxy(t testing.TB, target string, rules ...FaultRule) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		t.Fatalf("testenv.FaultProxy: target %q is not an endpoint URL", target)
	}
	need := map[Fault]string{Unprocessed: "BatchWriteItem", PartialFailure: "PutRecords", ExpiredIterator: "GetRecords"}
	for _, r := range rules {
		if r.Op == "" || r.Fault < Throttle || r.Fault > ServerError || r.Every < 0 || r.Limit < 0 ||
			(need[r.Fault] != "" && need[r.Fault] != r.Op) {
			t.Fatalf("testenv.FaultProxy: invalid rule %+v", r)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	p := &Proxy{
		target:   u,
		tr:       tr,
		rules:    rules,
		seen:     make([]int, len(rules)),
		hits:     make([]int, len(rules)),
		injected: map[string]int{},
	}
	srv := httptest.NewServer(p)
	p.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return p
}

// Injected returns how many faults were injected for op ("GetRecords",
// ...) so far. It is safe for concurrent use.
func (p *Proxy) Injected(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[op]
}

// SetEnabled turns injection on or off (it starts on). While it is off,
// every request passes through and none counts towards Every or Limit.
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

// ServeHTTP injects the fault due for the request, if any, and forwards
// what is left to the target.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	service, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	ct := r.Header.Get("Content-Type")
	var fault Fault
	if strings.HasPrefix(ct, "application/x-amz-json-") {
		fault = p.pick(op)
	}
	fwd := body                           // what to forward
	var edit func([]byte) ([]byte, error) // how to rewrite the answer
	switch fault {
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
// typed error named code (X-Amzn-Errortype and __type).
func writeAWSError(w http.ResponseWriter, contentType string, status int, code, msg string) {
	w.Header().Set("X-Amzn-Errortype", code)
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg + " (injected by testenv.FaultProxy)"})
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
	var records []json.RawMessage
	body, err := editJSON(body, func(m map[string]json.RawMessage) (err error) {
		if err = json.Unmarshal(m["Records"], &records); err != nil {
			return err
		}
		var even []json.RawMessage
		for i := 0; i < len(records); i += 2 {
			even = append(even, records[i])
		}
		m["Records"], err = json.Marshal(even)
		return err
	})
	failed, _ := json.Marshal(map[string]string{
		"ErrorCode":    "ProvisionedThroughputExceededException",
		"ErrorMessage": "Rate exceeded for shard (injected by testenv.FaultProxy)",
	})
	edit := func(resp []byte) ([]byte, error) {
		var got struct {
			FailedRecordCount int
			Records           []json.RawMessage
		}
		if err := json.Unmarshal(resp, &got); err != nil {
			return nil, err
		}
		if len(got.Records) != (len(records)+1)/2 {
			return nil, fmt.Errorf("%d records answered, %d sent", len(got.Records), (len(records)+1)/2)
		}
		all := make([]json.RawMessage, len(records))
		for i := range all {
			all[i] = failed
			if i%2 == 0 {
				all[i] = got.Records[i/2]
			}
		}
		return editJSON(resp, func(m map[string]json.RawMessage) (err error) {
			m["FailedRecordCount"], _ = json.Marshal(got.FailedRecordCount + len(records)/2)
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
