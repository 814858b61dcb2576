package dynamodbio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/backoff"
)

// MaxBatch is the most items one BatchWriteItem call may carry.
const MaxBatch = 25

// WriterOptions tunes WriteItems. The zero value means the defaults.
type WriterOptions struct {
	// MaxAttempts is how many BatchWriteItem calls one batch of items gets
	// (the first call and its retries) before its remaining items fail.
	// Default 8.
	MaxAttempts int
	// BaseDelay and MaxDelay bound the backoff before retry n:
	// a uniformly random delay in [0, min(MaxDelay, BaseDelay·2^(n-1))]
	// ("full jitter"). Defaults 50ms and 5s.
	BaseDelay, MaxDelay time.Duration
	// Concurrency is how many BatchWriteItem calls may be in flight at
	// once. Default 4.
	Concurrency int
}

// ownRetries turns off the SDK's retries for a call that WriteItems retries
// itself, so that every throttle is seen, counted and backed off once.
func ownRetries(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }

func (o WriterOptions) withDefaults() WriterOptions {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 50 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	if o.MaxDelay < o.BaseDelay {
		o.MaxDelay = o.BaseDelay
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	return o
}

// backoff returns the delay before retry n (n ≥ 1).
func (o WriterOptions) backoff(n int) time.Duration {
	return backoff.FullJitter(o.BaseDelay, o.MaxDelay, n)
}

// WriteStats counts what WriteItems did. For every call:
// Written + Duplicates + Failed == the number of input items.
type WriteStats struct {
	Calls       int64 // BatchWriteItem calls made
	Written     int64 // distinct items the service accepted
	Duplicates  int64 // input items superseded by a later item with the same (pk, sk)
	Failed      int64 // items returned as FailedItem
	Retries     int64 // calls that were retries of an earlier call
	Throttles   int64 // calls that failed with a throttling error
	Unprocessed int64 // items the service returned as UnprocessedItems (each time)
	Errors      int64 // calls that failed with any other error
}

func (s *WriteStats) add(o WriteStats) {
	s.Calls += o.Calls
	s.Written += o.Written
	s.Duplicates += o.Duplicates
	s.Failed += o.Failed
	s.Retries += o.Retries
	s.Throttles += o.Throttles
	s.Unprocessed += o.Unprocessed
	s.Errors += o.Errors
}

// FailedItem is an item WriteItems could not write, with the reason. The
// caller turns it into a processing-error record (write_failed) so that it
// can be replayed.
type FailedItem struct {
	Item   map[string]types.AttributeValue
	Reason string
}

// WriteItems writes items to table with BatchWriteItem, at most MaxBatch
// items per call. Items with the same (pk, sk) are merged first, the last
// one winning (DynamoDB rejects a batch holding one key twice; the result
// equals writing them in order). Unprocessed items and throttling or
// server errors are retried with exponential backoff and full jitter,
// honouring ctx. A batch rejected as invalid (ValidationException) is split
// until the offending items are alone, so only they fail.
//
// Every input item is accounted for: written, superseded by a duplicate, or
// returned as a FailedItem with its reason. The error is non-nil only when
// writing stopped early — ctx ended, or an error that no retry or split can
// help (missing table, access denied) — and then every item not written is
// in the failed list too.
func WriteItems(ctx context.Context, api API, table string, items []map[string]types.AttributeValue, o WriterOptions) (WriteStats, []FailedItem, error) {
	return writeItems(ctx, api, table, items, o, nil)
}

// writeItems is WriteItems telling throttled, if not nil, of every item
// an attempt did not write because of throttling: in a call answered with a
// throttling error, or returned in UnprocessedItems. It is called from the
// writer goroutines, one at a time.
func writeItems(ctx context.Context, api API, table string, items []map[string]types.AttributeValue, o WriterOptions, throttled func([]types.WriteRequest)) (WriteStats, []FailedItem, error) {
	o = o.withDefaults()
	var stats WriteStats
	uniq := dedupe(items)
	stats.Duplicates = int64(len(items) - len(uniq))

	w := &writer{api: api, table: table, o: o, throttled: throttled}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	batches := make(chan []types.WriteRequest)
	var wg sync.WaitGroup
	for range min(o.Concurrency, (len(uniq)+MaxBatch-1)/MaxBatch) {
		wg.Go(func() {
			for reqs := range batches {
				if w.fatalErr() != nil {
					w.failAll(reqs, w.fatalErr())
					continue
				}
				if err := w.writeBatch(ctx, reqs); err != nil {
					w.setFatal(err)
					cancel()
				}
			}
		})
	}
	for i := 0; i < len(uniq); i += MaxBatch {
		j := min(i+MaxBatch, len(uniq))
		reqs := make([]types.WriteRequest, 0, j-i)
		for _, item := range uniq[i:j] {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		}
		batches <- reqs
	}
	close(batches)
	wg.Wait()

	stats.add(w.stats)
	stats.Failed = int64(len(w.failed))
	return stats, w.failed, w.fatal
}

// dedupe merges items with the same (pk, sk), keeping the last one at the
// position of the first.
func dedupe(items []map[string]types.AttributeValue) []map[string]types.AttributeValue {
	pos := make(map[string]int, len(items))
	out := make([]map[string]types.AttributeValue, 0, len(items))
	for _, item := range items {
		k, ok := itemKey(item)
		if !ok {
			out = append(out, item) // no key: let the service reject it
			continue
		}
		if i, dup := pos[k]; dup {
			out[i] = item
			continue
		}
		pos[k] = len(out)
		out = append(out, item)
	}
	return out
}

func itemKey(item map[string]types.AttributeValue) (string, bool) {
	pk, ok1 := item[AttrPK].(*types.AttributeValueMemberS)
	sk, ok2 := item[AttrSK].(*types.AttributeValueMemberS)
	if !ok1 || !ok2 {
		return "", false
	}
	return pk.Value + "\x00" + sk.Value, true
}

type writer struct {
	api       API
	table     string
	o         WriterOptions
	throttled func([]types.WriteRequest)

	mu     sync.Mutex
	stats  WriteStats
	failed []FailedItem
	fatal  error
}

func (w *writer) count(f func(s *WriteStats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

func (w *writer) fail(reqs []types.WriteRequest, reason string) {
	w.mu.Lock()
	for _, r := range reqs {
		w.failed = append(w.failed, FailedItem{Item: r.PutRequest.Item, Reason: reason})
	}
	w.mu.Unlock()
}

// failAll fails reqs because writing stopped: err, or the error that
// stopped the other writers.
func (w *writer) failAll(reqs []types.WriteRequest, err error) {
	if f := w.fatalErr(); f != nil {
		err = f
	}
	w.fail(reqs, "not written: "+err.Error())
}

func (w *writer) tellThrottled(reqs []types.WriteRequest) {
	if w.throttled == nil || len(reqs) == 0 {
		return
	}
	w.mu.Lock()
	w.throttled(reqs)
	w.mu.Unlock()
}

func (w *writer) setFatal(err error) {
	w.mu.Lock()
	if w.fatal == nil {
		w.fatal = err
	}
	w.mu.Unlock()
}

func (w *writer) fatalErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fatal
}

// writeBatch writes one batch until every item is written or failed. It
// returns an error only when writing must stop altogether; the batch's
// unwritten items are then already failed.
func (w *writer) writeBatch(ctx context.Context, pending []types.WriteRequest) error {
	var last string // why the previous attempt did not finish
	for attempt := 1; len(pending) > 0; attempt++ {
		if attempt > w.o.MaxAttempts {
			w.fail(pending, fmt.Sprintf("gave up after %d attempts: %s", w.o.MaxAttempts, last))
			return nil
		}
		if attempt > 1 {
			if err := backoff.Sleep(ctx, w.o.backoff(attempt-1)); err != nil {
				w.failAll(pending, err)
				return fmt.Errorf("dynamodbio: write to %s: %w", w.table, err)
			}
			w.count(func(s *WriteStats) { s.Retries++ })
		}
		if err := ctx.Err(); err != nil {
			w.failAll(pending, err)
			return fmt.Errorf("dynamodbio: write to %s: %w", w.table, err)
		}
		out, err := w.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{w.table: pending},
		}, ownRetries)
		w.count(func(s *WriteStats) { s.Calls++ })
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				w.failAll(pending, cerr)
				return fmt.Errorf("dynamodbio: write to %s: %w", w.table, cerr)
			}
			switch classify(err) {
			case errThrottle:
				w.count(func(s *WriteStats) { s.Throttles++ })
				w.tellThrottled(pending)
				last = err.Error()
				continue
			case errRetry:
				w.count(func(s *WriteStats) { s.Errors++ })
				last = err.Error()
				continue
			case errItems:
				w.count(func(s *WriteStats) { s.Errors++ })
				if len(pending) == 1 {
					w.fail(pending, "rejected: "+err.Error())
					return nil
				}
				// Split to find the offending items; each half gets a fresh budget.
				h := len(pending) / 2
				if err := w.writeBatch(ctx, pending[:h]); err != nil {
					w.failAll(pending[h:], err)
					return err
				}
				return w.writeBatch(ctx, pending[h:])
			default:
				w.count(func(s *WriteStats) { s.Errors++ })
				w.fail(pending, "not written: "+err.Error())
				return fmt.Errorf("dynamodbio: write to %s: %w", w.table, err)
			}
		}
		un := out.UnprocessedItems[w.table]
		if len(un) > len(pending) {
			// Not a possible answer; do not trust it to count.
			un = pending
		}
		written := len(pending) - len(un)
		w.count(func(s *WriteStats) {
			s.Written += int64(written)
			s.Unprocessed += int64(len(un))
		})
		w.tellThrottled(un)
		pending = un
		last = fmt.Sprintf("%d item(s) still unprocessed by DynamoDB (UnprocessedItems)", len(un))
	}
	return nil
}

type errClass int

const (
	errFatal    errClass = iota // stop writing: nothing else will succeed either
	errThrottle                 // retry, counted as throttling
	errRetry                    // retry: transient (5xx, connection)
	errItems                    // the request's items are invalid: split, fail the bad ones
)

var (
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
)

func classify(err error) errClass {
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return errThrottle // the SDK's own retry budget ran out on throttles
	}
	if throttles.IsErrorThrottle(err) == aws.TrueTernary {
		return errThrottle
	}
	switch errorCode(err) {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded":
		return errThrottle
	case "InternalServerError", "ServiceUnavailable":
		return errRetry
	case "ValidationException", "SerializationException", "ItemCollectionSizeLimitExceededException":
		return errItems
	}
	if retryables.IsErrorRetryable(err) == aws.TrueTernary {
		return errRetry
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) && hs.HTTPStatusCode() >= 500 {
		return errRetry
	}
	if strings.Contains(err.Error(), "connection reset") {
		return errRetry
	}
	return errFatal
}
