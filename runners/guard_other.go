//go:build !linux

package runners

import "context"

// startGuardedPrism is Linux-only (socket filters); elsewhere prism starts
// its own job server, listening on every interface (see the README).
func startGuardedPrism(context.Context) (string, error) { return "", nil }
