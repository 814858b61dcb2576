package main

import (
	"context"
	"strings"
	"testing"
)

func TestCmdSchema(t *testing.T) {
	ctx := context.Background()
	t.Setenv("FINEO_SCHEMAS", t.TempDir())
	if err := cmdSchema(ctx, []string{"list"}); err != nil {
		t.Fatalf("list over an empty store: %v", err)
	}
	err := cmdSchema(ctx, []string{"show", "harbor"})
	if err == nil || !strings.Contains(err.Error(), "tenant not found") {
		t.Fatalf("show of a missing tenant: %v", err)
	}
}
