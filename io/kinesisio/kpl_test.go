package kinesisio

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/fineo-io/ingest/internal/testenv"
)

func TestDeaggregate(t *testing.T) {
	var items []testenv.KPLItem
	for i := range 25 {
		items = append(items, testenv.KPLItem{Key: fmt.Sprintf("device-%d", i%4), Data: fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i*40))})
	}
	recs := testenv.KPLAggregate(t, 10, items)
	if len(recs) != 3 {
		t.Fatalf("%d aggregates of 25 items by 10, want 3", len(recs))
	}
	var got []UserRecord
	for _, r := range recs {
		if !IsAggregated(r) {
			t.Fatalf("not recognised as aggregated: % x", r[:8])
		}
		urs, err := Deaggregate(r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, urs...)
	}
	if len(got) != len(items) {
		t.Fatalf("%d user records, want %d", len(got), len(items))
	}
	for i := range items {
		if got[i].PartitionKey != items[i].Key || string(got[i].Data) != items[i].Data {
			t.Errorf("user record %d = %q %q, want %q %q", i, got[i].PartitionKey, got[i].Data, items[i].Key, items[i].Data)
		}
	}
	// A plain JSON record is not an aggregate.
	if IsAggregated([]byte(`{"tenant":"acme"}`)) {
		t.Error("a JSON record taken for an aggregate")
	}
	// Damaged aggregates are errors, never panics or silent drops.
	good := recs[0]
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	for name, bad := range map[string][]byte{
		"md5":        flip(len(good) - 1),
		"body":       flip(10),
		"truncated":  append(bytes.Clone(good[:len(good)/2]), good[len(good)-16:]...),
		"magic only": append(bytes.Clone(kplMagic), make([]byte, 16)...),
	} {
		if urs, err := Deaggregate(bad); err == nil {
			t.Errorf("%s: %d user records, no error", name, len(urs))
		}
	}
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(append(bytes.Clone(kplMagic), make([]byte, 16)...))
	f.Add([]byte(`{"tenant":"acme"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		urs, err := Deaggregate(b)
		if err == nil && !IsAggregated(b) {
			t.Fatalf("%d records from a non-aggregate", len(urs))
		}
	})
}
