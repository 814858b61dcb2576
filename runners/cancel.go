package runners

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	jobpb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/jobmanagement_v1"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var jobSeq atomic.Int64

// RunUntil runs p like Run until the job ends or stop is closed. On stop
// it cancels the job through the Job API of the runner's job server — the
// embedded prism's, or a portable runner's (Flink, a standalone prism) —
// and waits for the job to end. A job cancelled so returns a nil error:
// a clean stop. (Cancelling Run's context instead would fail the job; the
// portable Job API has no drain.)
func RunUntil(ctx context.Context, k Kind, p *beam.Pipeline, stop <-chan struct{}) (beam.PipelineResult, error) {
	if *jobopts.JobName == "" {
		*jobopts.JobName = fmt.Sprintf("fineo-%d-%d", time.Now().UnixNano(), jobSeq.Add(1))
	}
	name := *jobopts.JobName
	done := make(chan struct{})
	defer close(done)
	cancelled := make(chan error, 1)
	go func() {
		select {
		case <-done:
			return
		case <-stop:
		}
		cancelled <- cancelJob(ctx, name, done)
	}()
	pr, err := Run(ctx, k, p)
	select {
	case cerr := <-cancelled:
		if err != nil && cerr == nil {
			// Cancelled: some runners report the end of a cancelled job as an error.
			return pr, nil
		}
	default:
	}
	return pr, err
}

// cancelJob asks the job server at the current endpoint to cancel every
// running job named name, retrying until it has (the job may still be
// starting) or done is closed.
func cancelJob(ctx context.Context, name string, done <-chan struct{}) error {
	for {
		err := cancelOnce(ctx, name)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func cancelOnce(ctx context.Context, name string) error {
	endpoint := *jobopts.Endpoint
	if endpoint == "" {
		return fmt.Errorf("no job server yet")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := jobpb.NewJobServiceClient(conn)
	jobs, err := client.GetJobs(ctx, &jobpb.GetJobsRequest{})
	if err != nil {
		return err
	}
	found := false
	for _, j := range jobs.GetJobInfo() {
		if j.GetJobName() != name {
			continue
		}
		found = true
		switch j.GetState() {
		case jobpb.JobState_DONE, jobpb.JobState_FAILED, jobpb.JobState_CANCELLED, jobpb.JobState_DRAINED, jobpb.JobState_UPDATED:
			continue
		}
		if _, err := client.Cancel(ctx, &jobpb.CancelJobRequest{JobId: j.GetJobId()}); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("job %s not submitted yet", name)
	}
	return nil
}
