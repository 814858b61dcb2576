// Package awsconf loads the AWS configuration every Fineo client uses: the
// standard chain (environment, profile, instance role; per-service
// endpoints from AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL), us-east-1
// when no region is configured, and the SDK's standard retries without its
// client-side retry quota — under sustained throttling that quota turns
// throttles into "failed to get rate limit token" errors, while Fineo's IO
// packages do their own backoff with jitter. AWS_MAX_ATTEMPTS sets the
// attempts per call (a custom retryer makes the SDK ignore it otherwise).
// Calls that Fineo retries itself (BatchWriteItem, GetRecords,
// GetShardIterator, PutRecords) turn the SDK's retries off per call.
//
// Clients keep up to MaxIdleConnsPerHost idle connections to an endpoint,
// not the SDK's 10, so that calls in flight beyond ten do not each open a
// new connection (on AWS, a new TLS handshake).
package awsconf

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// DefaultRegion is used when the configuration names none.
const DefaultRegion = "us-east-1"

// MaxIdleConnsPerHost is how many idle connections a client keeps to one
// endpoint. The SDK keeps 10, fewer than Fineo has in flight to one
// endpoint: a streaming job writes each shard's page with up to 4
// BatchWriteItem calls in flight (16 with 4 shards on a worker), and every
// call beyond the tenth then opened a connection of its own and closed it
// after (about 100 sockets a minute in TIME_WAIT against the DynamoDB
// stand-in during a 4-shard drain).
const MaxIdleConnsPerHost = 128

// httpClient is the SDK's default client with MaxIdleConnsPerHost. It is
// a BuildableClient, so AWS_CA_BUNDLE and the other transport settings of
// the configuration still apply to it.
func httpClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		t.MaxIdleConns = max(t.MaxIdleConns, 2*MaxIdleConnsPerHost)
	})
}

// Load returns the AWS configuration. Errors name files and settings, never secrets.
func Load(ctx context.Context) (aws.Config, error) {
	attempts := 0 // the SDK's default (3)
	if v := os.Getenv("AWS_MAX_ATTEMPTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return aws.Config{}, fmt.Errorf("load AWS config: AWS_MAX_ATTEMPTS=%q is not a positive number", v)
		}
		attempts = n
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(httpClient()), config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.None
			if attempts > 0 {
				o.MaxAttempts = attempts
			}
		})
	}))
	if err != nil {
		return cfg, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return cfg, nil
}
