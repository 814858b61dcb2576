package kinesisio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/fineo-io/ingest/internal/awsconf"
	"github.com/fineo-io/ingest/internal/backoff"
)

// API is the part of the Kinesis client this package uses.
// *kinesis.Client implements it; tests wrap a real client to inject faults.
type API interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ API = (*kinesis.Client)(nil)

// ownRetries turns off the SDK's retries for a call that this package
// retries itself (GetRecords, GetShardIterator, PutRecords), so that every
// throttle is seen, counted and backed off with jitter exactly once.
func ownRetries(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

// NewClient returns a Kinesis client from the standard AWS configuration
// (environment, profile, instance role); the endpoint comes from
// AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL when set. The region defaults
// to us-east-1. The SDK's own retries stay on (standard mode) without its
// client-side retry quota: under sustained throttling that quota turns
// throttles into "failed to get rate limit token" errors, and this package
// does its own backoff.
func NewClient(ctx context.Context) (*kinesis.Client, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("kinesisio: %w", err)
	}
	return kinesis.NewFromConfig(cfg), nil
}

// WaitActive polls DescribeStreamSummary until stream is ACTIVE (after
// CreateStream, SplitShard, MergeShards or UpdateShardCount), at most ten
// minutes, honouring ctx.
func WaitActive(ctx context.Context, api StreamDescriber, stream string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	delay := 10 * time.Millisecond
	for {
		out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		var nf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			// Just created; not visible yet.
		case err != nil && classify(err) == errThrottle:
		case err != nil:
			return fmt.Errorf("kinesisio: describe stream %s: %w", stream, err)
		case out.StreamDescriptionSummary != nil:
			switch out.StreamDescriptionSummary.StreamStatus {
			case types.StreamStatusActive:
				return nil
			case types.StreamStatusDeleting:
				return fmt.Errorf("kinesisio: stream %s is being deleted", stream)
			}
		}
		if err := backoff.Sleep(ctx, delay); err != nil {
			return fmt.Errorf("kinesisio: waiting for stream %s to be ACTIVE: %w", stream, err)
		}
		delay = min(delay*2, 2*time.Second)
	}
}

type errClass int

const (
	errFatal    errClass = iota // stop: no retry will help
	errThrottle                 // retry after a backoff, counted as throttling
	errRetry                    // retry after a backoff: transient (5xx, connection)
	errExpired                  // the shard iterator expired: get a new one
	errInvalid                  // the request is invalid (bad argument, too large)
)

var (
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
)

func classify(err error) errClass {
	switch errorCode(err) {
	case "ExpiredIteratorException":
		return errExpired
	case "ProvisionedThroughputExceededException", "ProvisionedThroughputExceeded",
		"ThrottlingException", "Throttling", "LimitExceededException",
		"KMSThrottlingException", "RequestLimitExceeded":
		return errThrottle
	case "InternalFailure", "InternalFailureException", "InternalServerError", "ServiceUnavailable":
		return errRetry
	case "InvalidArgumentException", "ValidationException", "SerializationException":
		return errInvalid
	case "ResourceNotFoundException", "AccessDeniedException", "ResourceInUseException",
		"KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException",
		"KMSNotFoundException", "KMSOptInRequired", "ExpiredNextTokenException":
		return errFatal
	}
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return errThrottle // the SDK's own retry budget ran out on throttles
	}
	if throttles.IsErrorThrottle(err) == aws.TrueTernary {
		return errThrottle
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

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
