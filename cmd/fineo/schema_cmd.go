package main

import (
	"context"
	"os"

	"github.com/fineo-io/ingest/schema"
)

// cmdSchema runs "fineo schema ...".
func cmdSchema(ctx context.Context, args []string) error {
	return schema.CLI(ctx, args, os.Stdout, os.Stderr)
}
