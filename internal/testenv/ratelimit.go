package testenv

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// The rate limits of a Proxy emulate the per-key write limits of AWS that
// the stand-ins (dynalite, kinesalite) do not enforce, so that tests and
// benchmarks see hot keys and hot shards. Each is a token bucket per key
// or shard that holds one second's worth of writes (the burst), starts
// full and refills continuously. A write is let through when its bucket
// holds its cost, or, for a write that costs more than the bucket can
// hold, when the bucket is full; it then takes its whole cost, possibly
// leaving the bucket in debt that the refill pays off first. A write held
// back takes nothing. All writes of one request are judged at one instant,
// in request order. A request a fault rule injects into is not judged
// (and takes nothing); SetEnabled does not touch the limits. The SDK's
// standard retryer retries a ProvisionedThroughputExceededException (3
// attempts by default), but not UnprocessedItems or failed records.

// LimitKeyWrites limits the writes per DynamoDB partition key to
// unitsPerSecond write units, as DynamoDB limits every partition key to
// 1,000 write units per second (pass 1000 for AWS's limit; 0 turns the
// limit off, as it starts). The key is the table name and the value of
// the partition key attribute ("pk" unless SetKeyAttribute names
// another); an item without that attribute is not limited.
//
// A write costs one unit per started KB (1,024 bytes) of its item's size,
// at least one. The size is estimated as DynamoDB documents it: the UTF-8
// lengths of the attribute names plus the sizes of their values, where a
// string is its UTF-8 length, a number len/2+1 of its decimal text, a
// binary its decoded length, a Boolean or null 1, a set the sum of its
// elements, and a map or list 3 plus, per element, 1 and the element's
// size (and, in a map, its name's length). A delete costs the size of its
// key (one unit, as a rule), not of the item it deletes, which the proxy
// does not know.
//
// Limited: a BatchWriteItem's PutRequests and DeleteRequests over the
// limit are held back and answered in UnprocessedItems (200), the others
// forwarded; when every item of the request is held back the answer is
// 400 ProvisionedThroughputExceededException and nothing is forwarded, as
// DynamoDB answers. A PutItem over the limit is answered 400
// ProvisionedThroughputExceededException. Other writes (UpdateItem,
// DeleteItem, transactions) are neither limited nor charged.
//
// Each call replaces the limit and refills every key's bucket. It is safe
// for concurrent use.
func (p *Proxy) LimitKeyWrites(unitsPerSecond int) {
	p.lim.mu.Lock()
	defer p.lim.mu.Unlock()
	p.lim.keyRate = float64(max(unitsPerSecond, 0))
	p.lim.keys = map[string]*tokenBucket{}
}

// SetKeyAttribute names the partition key attribute LimitKeyWrites reads
// from items, in every table ("pk" at the start).
func (p *Proxy) SetKeyAttribute(name string) {
	p.lim.mu.Lock()
	defer p.lim.mu.Unlock()
	p.lim.keyAttr = name
}

// LimitShardWrites limits the writes per Kinesis shard to bytesPerSecond
// bytes and recordsPerSecond records, as Kinesis limits every shard to
// 1 MiB and 1,000 records per second (pass 1<<20, 1000 for AWS's limits).
// A 0 leaves that measure unlimited; 0, 0 turns the limit off, as it
// starts. A record's bytes are its data (after base64 decoding) and its
// partition key.
//
// A record goes to the shard Kinesis puts it in: the open shard (one
// without an EndingSequenceNumber) whose HashKeyRange holds the 128-bit
// MD5 of its partition key, read as an unsigned big-endian integer, or
// its ExplicitHashKey when given. The proxy learns a stream's shards with
// ListShards on the target (sent with the request's Authorization header,
// which the stand-ins do not verify; the rules do not apply to it), and
// asks again when its list is 5 s old or a record falls in no shard of it
// (at most every 200 ms): after a reshard the old list is used until
// then. A record that still falls in no shard (or whose shards cannot be
// listed) is not limited.
//
// Limited: a PutRecords' records over the limit are not forwarded; the
// answer (200) has Records in request order, those failed with ErrorCode
// ProvisionedThroughputExceededException, the others as the server
// answered them, and FailedRecordCount to match. When no record can be
// forwarded, every record is failed so, as Kinesis answers. A PutRecord
// over the limit is answered 400 ProvisionedThroughputExceededException.
//
// Each call replaces the limits and refills every shard's buckets. It is
// safe for concurrent use.
func (p *Proxy) LimitShardWrites(bytesPerSecond, recordsPerSecond int) {
	p.lim.mu.Lock()
	defer p.lim.mu.Unlock()
	p.lim.shardBytes = float64(max(bytesPerSecond, 0))
	p.lim.shardRecords = float64(max(recordsPerSecond, 0))
	p.lim.shards = map[string]*shardBuckets{}
}

// Limited returns how many writes the rate limits held back for op so
// far: items for "BatchWriteItem", records for "PutRecords", calls for
// "PutItem" and "PutRecord". It is safe for concurrent use.
func (p *Proxy) Limited(op string) int {
	p.lim.mu.Lock()
	defer p.lim.mu.Unlock()
	return p.lim.limited[op]
}

const (
	shardListTTL   = 5 * time.Second        // ask ListShards again after this
	shardListRetry = 200 * time.Millisecond // or after this, when a record falls in no shard
	keySweepSize   = 10000                  // forget full key buckets once there are this many
)

// limiter holds a Proxy's rate limits.
type limiter struct {
	mu      sync.Mutex
	limited map[string]int // held back per op

	keyAttr string
	keyRate float64                 // write units per second per key, 0: off
	keys    map[string]*tokenBucket // table + "\x00" + key value
	swept   time.Time               // when keys was last swept

	shardBytes, shardRecords float64                  // per second per shard, 0: off
	shards                   map[string]*shardBuckets // stream + "\x00" + shard id
	streams                  map[string]*shardList    // by stream name (or ARN)
}

func newLimiter() limiter {
	return limiter{
		limited: map[string]int{},
		keyAttr: "pk",
		keys:    map[string]*tokenBucket{},
		shards:  map[string]*shardBuckets{},
		streams: map[string]*shardList{},
	}
}

// tokenBucket is a token bucket that holds rate tokens (one second's worth)
// when full and refills at rate tokens per second.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// newTokenBucket returns a full bucket.
func newTokenBucket(now time.Time, rate float64) *tokenBucket {
	return &tokenBucket{tokens: rate, last: now}
}

// refill adds the tokens from b.last to now, up to rate.
func (b *tokenBucket) refill(now time.Time, rate float64) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(rate, b.tokens+dt*rate)
		b.last = now
	}
}

// has says whether b can give cost tokens: it holds them, or, for a cost
// beyond a full bucket, it is full. Call refill first.
func (b *tokenBucket) has(cost, rate float64) bool {
	return b.tokens >= min(cost, rate)
}

// take takes cost tokens if b has them (refilled to now) and says whether
// it did.
func (b *tokenBucket) take(now time.Time, cost, rate float64) bool {
	b.refill(now, rate)
	if !b.has(cost, rate) {
		return false
	}
	b.tokens -= cost
	return true
}

// shardBuckets are the buckets of one shard.
type shardBuckets struct{ bytes, records tokenBucket }

// limit applies the rate limits to a request no fault was injected into.
// It returns the body to forward and the rewrite of the answer, or
// answered when it answered the request itself.
func (p *Proxy) limit(w http.ResponseWriter, r *http.Request, service, op, ct string, body []byte) (fwd []byte, edit func([]byte) ([]byte, error), answered bool) {
	switch {
	case strings.HasPrefix(service, "DynamoDB_") && (op == "BatchWriteItem" || op == "PutItem"):
		return p.limitKeys(w, op, ct, body)
	case strings.HasPrefix(service, "Kinesis_") && (op == "PutRecords" || op == "PutRecord"):
		return p.limitShards(w, r, op, ct, body)
	}
	return body, nil, false
}

// keyWrite is a write LimitKeyWrites charges.
type keyWrite struct {
	key  string  // bucket: table + "\x00" + key value
	cost float64 // write units
	held bool
}

// takeKeys judges writes at one instant, in order, and marks those held
// back. It returns how many were held back and the limit (0: off).
func (p *Proxy) takeKeys(op string, writes []keyWrite) (held int, rate float64) {
	l := &p.lim
	l.mu.Lock()
	defer l.mu.Unlock()
	rate = l.keyRate
	if rate == 0 {
		return 0, 0
	}
	now := time.Now()
	if len(l.keys) >= keySweepSize && now.Sub(l.swept) > time.Second {
		for k, b := range l.keys { // a full bucket is as good as none
			if b.refill(now, rate); b.tokens >= rate {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	for i := range writes {
		b := l.keys[writes[i].key]
		if b == nil {
			b = newTokenBucket(now, rate)
			l.keys[writes[i].key] = b
		}
		if !b.take(now, writes[i].cost, rate) {
			writes[i].held = true
			held++
		}
	}
	l.limited[op] += held
	return held, rate
}

// keyOn returns the limit LimitKeyWrites set (0: off) and the key
// attribute.
func (p *Proxy) keyOn() (float64, string) {
	p.lim.mu.Lock()
	defer p.lim.mu.Unlock()
	return p.lim.keyRate, p.lim.keyAttr
}

// keyThrottled answers a write held back whole by LimitKeyWrites.
func keyThrottled(w http.ResponseWriter, ct string, rate float64) {
	writeAWSErrorMessage(w, ct, 400, "ProvisionedThroughputExceededException", fmt.Sprintf(
		"Throughput exceeds the current capacity of your table or index: over %g write units per second per partition key (rate limit of testenv.Proxy)", rate))
}

// limitKeys applies LimitKeyWrites to a DynamoDB BatchWriteItem or PutItem.
// A body it cannot read is forwarded as it is, for the server to judge.
func (p *Proxy) limitKeys(w http.ResponseWriter, op, ct string, body []byte) ([]byte, func([]byte) ([]byte, error), bool) {
	rate, attr := p.keyOn()
	if rate == 0 {
		return body, nil, false
	}
	if op == "PutItem" {
		var in struct {
			TableName string
			Item      map[string]attrValue
		}
		if json.Unmarshal(body, &in) != nil {
			return body, nil, false
		}
		k, ok := keyValue(in.Item, attr)
		if !ok {
			return body, nil, false
		}
		if held, rate := p.takeKeys(op, []keyWrite{{key: in.TableName + "\x00" + k, cost: writeUnits(in.Item)}}); held > 0 {
			keyThrottled(w, ct, rate)
			return nil, nil, true
		}
		return body, nil, false
	}

	// One pass reads the items; the request is split (a second pass) only
	// when some are held back.
	var in struct {
		RequestItems map[string][]struct {
			PutRequest    *struct{ Item map[string]attrValue }
			DeleteRequest *struct{ Key map[string]attrValue }
		}
	}
	if json.Unmarshal(body, &in) != nil {
		return body, nil, false
	}
	type at struct {
		table string
		i     int
	}
	var writes []keyWrite
	var where []at
	total := 0
	for table, reqs := range in.RequestItems {
		total += len(reqs)
		for i, req := range reqs {
			var item map[string]attrValue
			switch {
			case req.PutRequest != nil:
				item = req.PutRequest.Item
			case req.DeleteRequest != nil:
				item = req.DeleteRequest.Key
			}
			if k, ok := keyValue(item, attr); ok {
				writes = append(writes, keyWrite{key: table + "\x00" + k, cost: writeUnits(item)})
				where = append(where, at{table, i})
			}
		}
	}
	n, rate := p.takeKeys(op, writes)
	if n == 0 {
		return body, nil, false
	}
	if n == total {
		keyThrottled(w, ct, rate)
		return nil, nil, true
	}
	var top map[string]json.RawMessage
	var tables map[string][]json.RawMessage
	if json.Unmarshal(body, &top) != nil || json.Unmarshal(top["RequestItems"], &tables) != nil {
		return body, nil, false
	}
	heldAt := map[string][]bool{}
	for j, wr := range writes {
		if wr.held {
			if heldAt[where[j].table] == nil {
				heldAt[where[j].table] = make([]bool, len(tables[where[j].table]))
			}
			heldAt[where[j].table][where[j].i] = true
		}
	}
	held := map[string][]json.RawMessage{}
	for table, h := range heldAt {
		var keep []json.RawMessage
		for i, raw := range tables[table] {
			if h[i] {
				held[table] = append(held[table], raw)
			} else {
				keep = append(keep, raw)
			}
		}
		if len(keep) == 0 {
			delete(tables, table)
		} else {
			tables[table] = keep
		}
	}
	var err error
	if top["RequestItems"], err = json.Marshal(tables); err != nil {
		return body, nil, false
	}
	fwd, err := json.Marshal(top)
	if err != nil {
		return body, nil, false
	}
	return fwd, func(resp []byte) ([]byte, error) { return addUnprocessed(resp, held) }, false
}

// attrValue is a DynamoDB AttributeValue as the JSON protocol has it.
// Binary values stay base64 text.
type attrValue struct {
	S    *string
	N    *string
	B    *string
	BOOL *bool
	NULL *bool
	SS   []string
	NS   []string
	BS   []string
	M    map[string]attrValue
	L    []attrValue
}

// keyValue returns the value of item's attribute attr as a bucket key
// (type and value), if it has one of a key's types (S, N or B).
func keyValue(item map[string]attrValue, attr string) (string, bool) {
	v, ok := item[attr]
	switch {
	case !ok:
		return "", false
	case v.S != nil:
		return "S:" + *v.S, true
	case v.N != nil:
		return "N:" + *v.N, true
	case v.B != nil:
		return "B:" + *v.B, true
	}
	return "", false
}

// writeUnits is what writing item costs: one unit per started 1,024 bytes
// of itemSize, at least one.
func writeUnits(item map[string]attrValue) float64 {
	return float64(max(1, (itemSize(item)+1023)/1024))
}

// itemSize estimates the size DynamoDB bills for item, as LimitKeyWrites
// says. For a number DynamoDB counts about one byte per two significant
// digits, plus one: len/2+1 of its text is near enough.
func itemSize(item map[string]attrValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + v.size()
	}
	return n
}

func (v *attrValue) size() int {
	switch {
	case v.S != nil:
		return len(*v.S)
	case v.N != nil:
		return numberSize(*v.N)
	case v.B != nil:
		return base64Len(*v.B)
	case v.BOOL != nil, v.NULL != nil:
		return 1
	case v.SS != nil:
		n := 0
		for _, s := range v.SS {
			n += len(s)
		}
		return n
	case v.NS != nil:
		n := 0
		for _, s := range v.NS {
			n += numberSize(s)
		}
		return n
	case v.BS != nil:
		n := 0
		for _, s := range v.BS {
			n += base64Len(s)
		}
		return n
	case v.M != nil:
		n := 3
		for name, e := range v.M {
			n += 1 + len(name) + e.size()
		}
		return n
	case v.L != nil:
		n := 3
		for i := range v.L {
			n += 1 + v.L[i].size()
		}
		return n
	}
	return 0
}

func numberSize(s string) int { return len(s)/2 + 1 }

// base64Len is the decoded length of base64 text s (padded or not).
func base64Len(s string) int {
	return len(strings.TrimRight(s, "=")) * 6 / 8
}

// kinesisRecord is a Kinesis PutRecord request or PutRecords entry, as
// far as the shard limit needs it.
type kinesisRecord struct {
	Data            string // base64
	PartitionKey    string
	ExplicitHashKey *string
}

// shardOn says whether LimitShardWrites set a limit.
func (p *Proxy) shardOn() bool {
	p.lim.mu.Lock()
	defer p.lim.mu.Unlock()
	return p.lim.shardBytes > 0 || p.lim.shardRecords > 0
}

// limitShards applies LimitShardWrites to a Kinesis PutRecords or
// PutRecord. A body it cannot read is forwarded as it is, for the server
// to judge.
func (p *Proxy) limitShards(w http.ResponseWriter, r *http.Request, op, ct string, body []byte) ([]byte, func([]byte) ([]byte, error), bool) {
	if !p.shardOn() {
		return body, nil, false
	}
	// One pass reads the records; the request is split (a second pass)
	// only when some are held back.
	var in struct {
		StreamName, StreamARN string
		Records               []kinesisRecord // PutRecords'
		kinesisRecord                         // PutRecord's
	}
	if json.Unmarshal(body, &in) != nil {
		return body, nil, false
	}
	recs := in.Records
	if op == "PutRecord" {
		recs = []kinesisRecord{in.kinesisRecord}
	}
	hashes := make([]uint128, len(recs))
	for i, rec := range recs {
		var err error
		if hashes[i], err = hashKey(rec.PartitionKey, rec.ExplicitHashKey); err != nil {
			return body, nil, false
		}
	}
	ids := p.shardIDs(r.Context(), r.Header, ct, in.StreamName, in.StreamARN, hashes)
	name := in.StreamName
	if name == "" {
		name = in.StreamARN[strings.LastIndex(in.StreamARN, "/")+1:]
	}
	fail := p.takeShards(op, name, ids, recs)
	held := 0
	for _, f := range fail {
		if f != "" {
			held++
		}
	}
	switch {
	case held == 0:
		return body, nil, false
	case op == "PutRecord":
		writeAWSErrorMessage(w, ct, 400, "ProvisionedThroughputExceededException", fail[0])
		return nil, nil, true
	case held == len(recs):
		all := make([]json.RawMessage, len(recs))
		for i := range all {
			all[i] = failedRecord(fail[i])
		}
		b, _ := json.Marshal(map[string]any{"FailedRecordCount": held, "Records": all})
		WriteJSON(w, ct, 200, b)
		return nil, nil, true
	}
	top, raws, err := putRecordsBody(body)
	if err != nil || len(raws) != len(recs) {
		return body, nil, false
	}
	fwd, edit, err := failRecords(top, raws, fail)
	if err != nil {
		return body, nil, false
	}
	return fwd, edit, false
}

// takeShards judges records of the stream named stream, in shards ids
// ("": none known), at one instant, in order. It returns, per record, ""
// or the message of its failure.
func (p *Proxy) takeShards(op, stream string, ids []string, recs []kinesisRecord) []string {
	fail := make([]string, len(recs))
	l := &p.lim
	l.mu.Lock()
	defer l.mu.Unlock()
	rb, rr := l.shardBytes, l.shardRecords
	if rb == 0 && rr == 0 {
		return fail
	}
	now := time.Now()
	held := 0
	for i, rec := range recs {
		if ids[i] == "" {
			continue
		}
		sb := l.shards[stream+"\x00"+ids[i]]
		if sb == nil {
			sb = &shardBuckets{bytes: *newTokenBucket(now, rb), records: *newTokenBucket(now, rr)}
			l.shards[stream+"\x00"+ids[i]] = sb
		}
		size := float64(base64Len(rec.Data) + len(rec.PartitionKey))
		over := ""
		if rr > 0 {
			if sb.records.refill(now, rr); !sb.records.has(1, rr) {
				over = fmt.Sprintf("%g records", rr)
			}
		}
		if rb > 0 && over == "" {
			if sb.bytes.refill(now, rb); !sb.bytes.has(size, rb) {
				over = fmt.Sprintf("%g bytes", rb)
			}
		}
		if over != "" {
			fail[i] = fmt.Sprintf("Rate exceeded for shard %s in stream %s: over %s per second (rate limit of testenv.Proxy)", ids[i], stream, over)
			held++
			continue
		}
		if rr > 0 {
			sb.records.tokens--
		}
		if rb > 0 {
			sb.bytes.tokens -= size
		}
	}
	l.limited[op] += held
	return fail
}

// uint128 is an unsigned 128-bit integer, a Kinesis hash key.
type uint128 struct{ hi, lo uint64 }

func (a uint128) less(b uint128) bool {
	return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo
}

// hashKey returns the hash key Kinesis places a record by: explicit (a
// decimal string) when not nil, else the MD5 of partitionKey as an
// unsigned big-endian integer.
func hashKey(partitionKey string, explicit *string) (uint128, error) {
	if explicit != nil {
		return parseUint128(*explicit)
	}
	sum := md5.Sum([]byte(partitionKey))
	return uint128{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}, nil
}

// parseUint128 parses a decimal hash key.
func parseUint128(s string) (uint128, error) {
	x, ok := new(big.Int).SetString(s, 10)
	if !ok || x.Sign() < 0 || x.BitLen() > 128 {
		return uint128{}, fmt.Errorf("hash key %q is not a decimal in [0, 2^128)", s)
	}
	var b [16]byte
	x.FillBytes(b[:])
	return uint128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, nil
}

// shardRange is an open shard's hash key range.
type shardRange struct {
	id         string
	start, end uint128
}

// shardList is what the proxy knows of a stream's open shards.
type shardList struct {
	mu      sync.Mutex // held while reading or asking
	fetched time.Time  // when last asked (zero: never)
	open    []shardRange
}

// shardOf returns the shard of open (sorted by start, not overlapping)
// whose range holds h, or "".
func shardOf(open []shardRange, h uint128) string {
	i := sort.Search(len(open), func(i int) bool { return h.less(open[i].start) }) // first start > h
	if i == 0 || open[i-1].end.less(h) {
		return ""
	}
	return open[i-1].id
}

// shardIDs returns the open shard of each hash key in the stream (named
// stream, or with ARN arn), "" where none is known. It asks the target
// for the stream's shards (with header's credentials, if any) when its
// list is shardListTTL old or, at most every shardListRetry, when a key
// falls in no shard of it.
func (p *Proxy) shardIDs(ctx context.Context, header http.Header, ct, stream, arn string, hashes []uint128) []string {
	p.lim.mu.Lock()
	sl := p.lim.streams[stream+arn]
	if sl == nil {
		sl = &shardList{}
		p.lim.streams[stream+arn] = sl
	}
	p.lim.mu.Unlock()

	sl.mu.Lock()
	defer sl.mu.Unlock()
	refresh := func() {
		if open, err := p.listShards(ctx, header, ct, stream, arn); err == nil {
			sl.open = open
		}
		sl.fetched = time.Now()
	}
	lookup := func() ([]string, bool) {
		ids := make([]string, len(hashes))
		miss := false
		for i, h := range hashes {
			ids[i] = shardOf(sl.open, h)
			miss = miss || ids[i] == ""
		}
		return ids, miss
	}
	asked := false
	if sl.fetched.IsZero() || time.Since(sl.fetched) > shardListTTL {
		refresh()
		asked = true
	}
	ids, miss := lookup()
	if miss && !asked && time.Since(sl.fetched) > shardListRetry {
		refresh()
		ids, _ = lookup()
	}
	return ids
}

// listShards asks the target for the open shards of the stream (named
// stream, or with ARN arn), sorted by start. It sends the credentials of
// header (the stand-ins check only that there are some), or dummy ones.
func (p *Proxy) listShards(ctx context.Context, header http.Header, ct, stream, arn string) ([]shardRange, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	in := map[string]string{"StreamName": stream}
	if stream == "" {
		in = map[string]string{"StreamARN": arn}
	}
	var open []shardRange
	for {
		b, _ := json.Marshal(in)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.target.String(), bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListShards")
		for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
			if v := header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		if req.Header.Get("Authorization") == "" {
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testenv/20000101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0")
			req.Header.Set("X-Amz-Date", "20000101T000000Z")
		}
		resp, err := (&http.Client{Transport: p.tr}).Do(req)
		if err != nil {
			return nil, err
		}
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("ListShards %s: %s: %.200s", stream+arn, resp.Status, b)
		}
		var out struct {
			Shards []struct {
				ShardId      string
				HashKeyRange struct {
					StartingHashKey, EndingHashKey string
				}
				SequenceNumberRange struct {
					EndingSequenceNumber *string
				}
			}
			NextToken *string
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
		for _, s := range out.Shards {
			if s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed
			}
			start, err1 := parseUint128(s.HashKeyRange.StartingHashKey)
			end, err2 := parseUint128(s.HashKeyRange.EndingHashKey)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("ListShards %s: shard %s: %w", stream+arn, s.ShardId, err)
			}
			open = append(open, shardRange{id: s.ShardId, start: start, end: end})
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		in = map[string]string{"NextToken": *out.NextToken}
	}
	sort.Slice(open, func(i, j int) bool { return open[i].start.less(open[j].start) })
	return open, nil
}
