// Package ingest is the root of Fineo Ingest: the one binary is cmd/fineo,
// and docs/ARCHITECTURE.md says where every piece lives. This package holds
// only the committed sample, embedded so that an installed binary's
// `fineo demo` needs no checkout.
package ingest

import "embed"

// Sample is testdata/sample: raw/ (the raw JSON Lines files), schemas/
// (the tenants' schemas) and expected.json (the generator's ground truth).
//
//go:embed testdata/sample
var Sample embed.FS
