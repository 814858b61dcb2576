package testenv

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Kinesis returns the endpoint URL of a Kinesis protocol server for the
// test, and points the AWS SDK at it.
//
// If AWS_ENDPOINT_URL_KINESIS is already set (CI may start a server), that
// endpoint is returned and the ambient credentials are used. Otherwise a
// kinesalite server (npm kinesalite, installed by `npm ci` from the
// committed lock file) is started on 127.0.0.1 with a fresh in-memory
// store and no create/delete/update delay, and AWS_ENDPOINT_URL_KINESIS,
// dummy AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and AWS_REGION=us-east-1
// are set with t.Setenv (so the calling test cannot use t.Parallel). The
// server is stopped with t.Cleanup; if the test process dies, it exits too
// (it watches its stdin). Each call starts its own server (about a third
// of a second): share one per top-level test and use UniqueName for
// streams.
//
// Without node or kinesalite the test is skipped locally, but fails under
// CI (CI set), where they must be present.
//
// kinesalite's gaps: MillisBehindLatest is always 0, GetRecords returns no
// ChildShards, ListShards ignores MaxResults and ShardFilter (one page),
// no UpdateShardCount and no enhanced fan-out; it never throttles and
// iterators expire only after 5 minutes: inject those by wrapping the
// client. Sequence numbers carry whole seconds, so a closed shard may need
// an extra empty GetRecords page before it reports its end. GetShardIterator
// AT_TIMESTAMP never answers when no record of the shard arrived at or after
// the timestamp (real Kinesis returns an iterator at the tip): give such
// calls a context deadline.
func Kinesis(t testing.TB) string {
	t.Helper()
	return nodeStandIn(t, "kinesalite", "AWS_ENDPOINT_URL_KINESIS", filepath.Join("kinesalite", "index.js"),
		func(node, watchdog, modules string) (string, error) {
			return startKinesalite(t, node, watchdog, modules)
		})
}

const kinesaliteReady = "testenv: kinesalite listening"

// startKinesalite starts one kinesalite on a free loopback port and waits
// (at most 10 s) until it accepts connections. Its CLI would bind every
// interface, so it is started through its module API instead.
func startKinesalite(t testing.TB, node, watchdog, modules string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	script := fmt.Sprintf("require('kinesalite')({createStreamMs:0, deleteStreamMs:0, updateStreamMs:0, shardLimit:100})"+
		".listen(%d, '127.0.0.1', function(err){ if (err) { console.error(err); process.exit(1) } console.log(%q) })",
		port, kinesaliteReady)
	cmd := exec.Command(node, "--require", watchdog, "-e", script)
	cmd.Dir = filepath.Dir(modules) // require() resolves from <repo>/node_modules
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	ready := make(chan struct{}, 1)
	cmd.Stdout = &lineWatcher{fn: func(line string) {
		if strings.Contains(line, kinesaliteReady) {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	}}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		stdin.Close()
		cmd.Process.Kill()
		<-exited
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	url := "http://" + addr
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		stop()
		return "", fmt.Errorf("kinesalite exited at start (%v): %s", err, strings.TrimSpace(stderr.String()))
	case <-deadline.C:
		stop()
		return "", fmt.Errorf("kinesalite did not start listening on %s within 10s: %s", url, strings.TrimSpace(stderr.String()))
	}
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-deadline.C:
			stop()
			return "", fmt.Errorf("kinesalite does not accept connections on %s: %v", url, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Cleanup(stop)
	return url, nil
}

// KinesisClient returns a Kinesis client for the server Kinesis started
// (call Kinesis first), from the standard configuration.
func KinesisClient(t testing.TB) *kinesis.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("testenv.KinesisClient: %v", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return kinesis.NewFromConfig(cfg)
}

// StreamAPI is the part of a Kinesis client CreateStream uses.
type StreamAPI interface {
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	DeleteStream(ctx context.Context, in *kinesis.DeleteStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.DeleteStreamOutput, error)
}

// CreateStream creates stream name with shards shards and waits (at most
// 20 s) until it is ACTIVE; it fails the test otherwise. The stream is
// deleted when the test ends: kinesalite, like an AWS account, allows only
// so many shards at once (scripts/standins.sh: 100), and a whole test run
// creates more than that.
func CreateStream(t testing.TB, api StreamAPI, name string, shards int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := api.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(int32(shards)),
	}); err != nil {
		t.Fatalf("testenv.CreateStream %s: %v", name, err)
	}
	t.Cleanup(func() {
		api.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	})
	if err := WaitStreamActive(ctx, api, name); err != nil {
		t.Fatalf("testenv.CreateStream %s: %v", name, err)
	}
}

// WaitStreamActive polls DescribeStreamSummary until stream is ACTIVE
// (after CreateStream, SplitShard or MergeShards), honouring ctx.
func WaitStreamActive(ctx context.Context, api StreamAPI, name string) error {
	for {
		out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var nf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
		case err != nil:
			return err
		case out.StreamDescriptionSummary != nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s is not ACTIVE: %w", name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ReshardAPI is the part of a Kinesis client SplitAndMerge uses.
type ReshardAPI interface {
	StreamAPI
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	SplitShard(ctx context.Context, in *kinesis.SplitShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error)
	MergeShards(ctx context.Context, in *kinesis.MergeShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error)
}

// SplitAndMerge reshards stream twice, as a user scaling it would: it
// splits the stream's first shard at the middle of its hash range, then
// merges the split's upper child with the open shard whose range follows
// it, waiting for the stream to be ACTIVE after each.
func SplitAndMerge(ctx context.Context, api ReshardAPI, stream string) error {
	shards, err := listShards(ctx, api, stream)
	if err != nil {
		return err
	}
	s0 := shards[0]
	lo, _ := new(big.Int).SetString(aws.ToString(s0.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(s0.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	if _, err := api.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
		ShardToSplit: s0.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		return err
	}
	if err := WaitStreamActive(ctx, api, stream); err != nil {
		return err
	}
	if shards, err = listShards(ctx, api, stream); err != nil {
		return err
	}
	var upper, next string
	for _, s := range shards {
		if aws.ToString(s.ParentShardId) != aws.ToString(s0.ShardId) || aws.ToString(s.HashKeyRange.StartingHashKey) != mid.String() {
			continue
		}
		upper = aws.ToString(s.ShardId)
		end, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
		after := end.Add(end, big.NewInt(1)).String()
		for _, n := range shards {
			if n.SequenceNumberRange.EndingSequenceNumber == nil && aws.ToString(n.HashKeyRange.StartingHashKey) == after {
				next = aws.ToString(n.ShardId)
			}
		}
	}
	if upper == "" || next == "" {
		return fmt.Errorf("testenv.SplitAndMerge: no adjacent open shards to merge in %s", stream)
	}
	if _, err := api.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream),
		ShardToMerge: aws.String(upper), AdjacentShardToMerge: aws.String(next)}); err != nil {
		return err
	}
	return WaitStreamActive(ctx, api, stream)
}

// listShards lists every shard of stream, closed ones included.
func listShards(ctx context.Context, api ReshardAPI, stream string) ([]types.Shard, error) {
	var out []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		res, err := api.ListShards(ctx, in)
		if err != nil {
			return nil, err
		}
		out = append(out, res.Shards...)
		if res.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: res.NextToken}
	}
}
