package main

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/fineo-io/ingest/schema"
)

// cmdSchema runs "fineo schema ...".
func cmdSchema(ctx context.Context, args []string) error {
	err := schema.CLI(ctx, args, os.Stdout, os.Stderr)
	if err != nil && strings.HasPrefix(err.Error(), "fineo schema: ") {
		// run prints "fineo schema: " itself.
		err = &prefixed{msg: strings.TrimPrefix(err.Error(), "fineo schema: "), err: err}
	}
	if errors.Is(err, schema.ErrUsage) {
		return usageError(err)
	}
	return err
}

// prefixed is err with another message.
type prefixed struct {
	msg string
	err error
}

func (p *prefixed) Error() string { return p.msg }
func (p *prefixed) Unwrap() error { return p.err }
