package kinesisio

import (
	"context"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fineo-io/ingest/internal/backoff"
)

// Limits of the Kinesis PutRecords API.
const (
	MaxPutRecords      = 500     // records per PutRecords call
	MaxPutBytes        = 5 << 20 // bytes per call, data plus partition keys
	MaxRecordBytes     = 1 << 20 // bytes per record, data plus partition key
	MaxPartitionKeyLen = 256     // Unicode characters per partition key
)

// EventPartitionKey returns the partition key of a staged event's record:
// its event id. The ids of one busy metric hash evenly over every shard of
// the stream, so no metric is held to one shard's write rate (1 MB/s,
// 1,000 records/s). Stage 2 needs no order (its writes are keyed by event
// id and each carries its event time); a record put again after a retry or
// a replay keeps its shard, as its id does.
func EventPartitionKey(id string) string { return id }

// PutRecord is one record to write.
type PutRecord struct {
	Data         []byte
	PartitionKey string
}

// size is what the record counts against the call and record limits.
func (r PutRecord) size() int { return len(r.Data) + len(r.PartitionKey) }

// FailedRecord is a record PutRecords could not write, with the reason. The
// caller turns it into a processing-error record (write_failed) so that it
// can be replayed.
type FailedRecord struct {
	Record PutRecord
	Reason string
}

// WriterOptions tunes PutRecords. The zero value means the defaults.
type WriterOptions struct {
	// MaxAttempts is how many PutRecords calls one batch of records gets
	// (the first call and its retries) before its remaining records fail.
	// Default 8.
	MaxAttempts int
	// BaseDelay and MaxDelay bound the backoff before retry n: a uniformly
	// random delay in [0, min(MaxDelay, BaseDelay·2^(n-1))] ("full
	// jitter"). Defaults 100ms and 5s.
	BaseDelay, MaxDelay time.Duration

	// sleep waits between attempts; tests fake it.
	sleep func(ctx context.Context, d time.Duration) error
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 100 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	if o.MaxDelay < o.BaseDelay {
		o.MaxDelay = o.BaseDelay
	}
	if o.sleep == nil {
		o.sleep = backoff.Sleep
	}
	return o
}

// WriteStats counts what PutRecords did. For every call:
// Written + Failed == the number of input records.
type WriteStats struct {
	Calls          int64 // PutRecords calls made
	Written        int64 // records the service accepted
	Bytes          int64 // data plus partition key bytes of the written records
	Failed         int64 // records returned as FailedRecord
	Retries        int64 // calls that were retries of an earlier call
	Throttles      int64 // whole calls that failed with throttling
	EntryThrottles int64 // entries answered ProvisionedThroughputExceeded (each time)
	EntryErrors    int64 // entries answered with another error code (each time)
	Errors         int64 // whole calls that failed with any other error
}

// PutRecords writes recs to stream, in order, in calls of at most
// MaxPutRecords records and MaxPutBytes bytes, one call at a time. Entries
// the service answers with ProvisionedThroughputExceeded or InternalFailure
// (or KMS throttling) are retried, and only they; a whole call that is
// throttled or meets a server error is retried whole; both with
// exponential backoff and full jitter, honouring ctx. A record larger than
// MaxRecordBytes, or with an empty or too long partition key, fails at once
// without a call.
//
// Every record is accounted for: written, or returned as a FailedRecord
// with its reason (in input order). The error is non-nil only when writing
// stopped early — ctx ended, or an error no retry can help (missing stream,
// access denied) — and then every record not written is in the failed list
// too.
func PutRecords(ctx context.Context, api API, stream string, recs []PutRecord, o WriterOptions) (WriteStats, []FailedRecord, error) {
	w := &writer{api: api, stream: stream, o: o.withDefaults()}
	var batch []entry
	bytes := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if w.fatal != nil {
			w.fail(batch, "not written: "+w.fatal.Error())
		} else if err := w.writeBatch(ctx, batch); err != nil {
			w.fatal = err
		}
		batch, bytes = nil, 0
	}
	for i, r := range recs {
		if reason := invalid(r); reason != "" {
			w.fail([]entry{{i, r}}, reason)
			continue
		}
		if len(batch) == MaxPutRecords || bytes+r.size() > MaxPutBytes {
			flush()
		}
		batch = append(batch, entry{i, r})
		bytes += r.size()
	}
	flush()
	sort.SliceStable(w.failed, func(a, b int) bool { return w.failed[a].index < w.failed[b].index })
	var failed []FailedRecord
	if len(w.failed) > 0 {
		failed = make([]FailedRecord, len(w.failed))
		for i, f := range w.failed {
			failed[i] = f.FailedRecord
		}
	}
	w.stats.Failed = int64(len(failed))
	return w.stats, failed, w.fatal
}

// invalid says why the service would reject r (and with it the whole call),
// or "".
func invalid(r PutRecord) string {
	switch {
	case r.size() > MaxRecordBytes:
		return fmt.Sprintf("record too large: %d bytes of data and partition key, over the Kinesis limit of %d (1 MiB)", r.size(), MaxRecordBytes)
	case r.PartitionKey == "":
		return "empty partition key"
	case utf8.RuneCountInString(r.PartitionKey) > MaxPartitionKeyLen:
		return fmt.Sprintf("partition key too long: %d characters, over the Kinesis limit of %d", utf8.RuneCountInString(r.PartitionKey), MaxPartitionKeyLen)
	}
	return ""
}

type entry struct {
	index int // in the input
	rec   PutRecord
}

type failedEntry struct {
	index int
	FailedRecord
}

type writer struct {
	api    API
	stream string
	o      WriterOptions
	stats  WriteStats
	failed []failedEntry
	fatal  error
}

func (w *writer) fail(es []entry, reason string) {
	for _, e := range es {
		w.failed = append(w.failed, failedEntry{e.index, FailedRecord{Record: e.rec, Reason: reason}})
	}
}

// writeBatch writes one batch until every record is written or failed. It
// returns an error only when writing must stop altogether; the batch's
// unwritten records are then already failed.
func (w *writer) writeBatch(ctx context.Context, pending []entry) error {
	last := "" // why the previous attempt did not finish
	for attempt := 1; len(pending) > 0; attempt++ {
		if attempt > w.o.MaxAttempts {
			w.fail(pending, fmt.Sprintf("gave up after %d attempts: %s", w.o.MaxAttempts, last))
			return nil
		}
		if attempt > 1 {
			if err := w.o.sleep(ctx, backoff.FullJitter(w.o.BaseDelay, w.o.MaxDelay, attempt-1)); err != nil {
				return w.stop(pending, err)
			}
			w.stats.Retries++
		}
		if err := ctx.Err(); err != nil {
			return w.stop(pending, err)
		}
		in := &kinesis.PutRecordsInput{
			StreamName: aws.String(w.stream),
			Records:    make([]types.PutRecordsRequestEntry, len(pending)),
		}
		for i, e := range pending {
			in.Records[i] = types.PutRecordsRequestEntry{Data: e.rec.Data, PartitionKey: aws.String(e.rec.PartitionKey)}
		}
		out, err := w.api.PutRecords(ctx, in, ownRetries)
		w.stats.Calls++
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return w.stop(pending, cerr)
			}
			switch classify(err) {
			case errThrottle:
				w.stats.Throttles++
				last = err.Error()
				continue
			case errRetry:
				w.stats.Errors++
				last = err.Error()
				continue
			case errInvalid:
				w.stats.Errors++
				if len(pending) == 1 {
					w.fail(pending, "rejected: "+err.Error())
					return nil
				}
				// Split to find the offending records; each half gets a fresh budget.
				h := len(pending) / 2
				if err := w.writeBatch(ctx, pending[:h]); err != nil {
					w.fail(pending[h:], "not written: "+err.Error())
					return err
				}
				return w.writeBatch(ctx, pending[h:])
			default:
				w.stats.Errors++
				w.fail(pending, "not written: "+err.Error())
				return fmt.Errorf("kinesisio: put records to %s: %w", w.stream, err)
			}
		}
		if len(out.Records) != len(pending) {
			// Not a possible answer: nothing says which records were
			// written. Retry them all (a record may be written twice, never
			// lost).
			w.stats.Errors++
			last = fmt.Sprintf("PutRecords answered %d results for %d records", len(out.Records), len(pending))
			continue
		}
		var retry []entry
		var failures int
		for i, res := range out.Records {
			code := aws.ToString(res.ErrorCode)
			if code == "" {
				w.stats.Written++
				w.stats.Bytes += int64(pending[i].rec.size())
				continue
			}
			reason := code
			if m := aws.ToString(res.ErrorMessage); m != "" {
				reason += ": " + m
			}
			failures++
			last = fmt.Sprintf("%d record(s) failed, the last with %s", failures, reason)
			switch code {
			case "ProvisionedThroughputExceededException", "ProvisionedThroughputExceeded", "KMSThrottlingException":
				w.stats.EntryThrottles++
				retry = append(retry, pending[i])
			case "InternalFailure", "InternalFailureException", "ServiceUnavailable":
				w.stats.EntryErrors++
				retry = append(retry, pending[i])
			default: // KMS access or state errors: a retry will not help
				w.stats.EntryErrors++
				w.fail(pending[i:i+1], "rejected: "+reason)
			}
		}
		pending = retry
	}
	return nil
}

// stop fails pending because writing stops with err.
func (w *writer) stop(pending []entry, err error) error {
	w.fail(pending, "not written: "+err.Error())
	return fmt.Errorf("kinesisio: put records to %s: %w", w.stream, err)
}
