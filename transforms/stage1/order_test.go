package stage1

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// TestFieldRanks: a visible field's rank is its place among the metric's
// visible field names in ascending order, under every name a device may
// send for it; declaration order, aliases and hidden fields do not count.
func TestFieldRanks(t *testing.T) {
	reg, err := compile([]*schema.Tenant{{Tenant: "acme", Metrics: []schema.Metric{{Name: "m", Fields: []schema.Field{
		{Name: "zeta", Type: schema.Double, Aliases: []string{"a"}},
		{Name: "old", Type: schema.Double, Hidden: true},
		{Name: "Beta", Type: schema.String},
		{Name: "alpha", Type: schema.Double, Conversions: map[string]schema.Conversion{"alpha_f": {Scale: 2}}},
		{Name: "beta", Type: schema.Long, Aliases: []string{"zz"}},
	}}}}})
	if err != nil {
		t.Fatal(err)
	}
	m := reg.tenants["acme"].metrics["m"]
	want := map[string]int{"Beta": 0, "alpha": 1, "alpha_f": 1, "beta": 2, "zz": 2, "zeta": 3, "a": 3}
	for n, r := range want {
		if got := m.fields[n]; got.rank != r {
			t.Errorf("rank of %q (field %s) = %d, want %d", n, got.name, got.rank, r)
		}
	}
}

// TestByNameMatchesSort: byName orders any set of distinct ranked fields
// as records.SortFields does, and keeps doing so as its buffers swap.
func TestByNameMatchesSort(t *testing.T) {
	names := []string{"A", "a", "b", "ba", "c", "temp", "temperature", "z"} // ascending: rank = index
	p := &Processor{}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		perm := r.Perm(len(names))[:r.IntN(len(names)+1)]
		var flds []records.Field
		var rank []int
		for _, i := range perm {
			flds = append(flds, records.Field{Name: names[i], Value: records.Value{Kind: records.LongValue, Int: int64(i)}})
			rank = append(rank, i)
		}
		want := slices.Clone(flds)
		records.SortFields(want)
		got := p.byName(slices.Clone(flds), rank, len(names))
		if !slices.EqualFunc(got, want, func(a, b records.Field) bool { return a.Name == b.Name && a.Value.Int == b.Value.Int }) {
			t.Fatalf("round %d: byName %v, want %v", round, got, want)
		}
	}
}

// TestLookupMatchesMap: lookup finds what the name map holds, under every
// name, and nothing else: for names of a crowded length (looked up in the
// map), names too long to index, and names of no field.
func TestLookupMatchesMap(t *testing.T) {
	var crowd []string
	for i := range byLenCrowd + 3 {
		crowd = append(crowd, fmt.Sprintf("al%d", i)) // all of length 3
	}
	long := strings.Repeat("x", byLenMax+5)
	reg, err := compile([]*schema.Tenant{{Tenant: "acme", Metrics: []schema.Metric{{Name: "m", Fields: []schema.Field{
		{Name: "temp", Type: schema.Double, Aliases: crowd},
		{Name: long, Type: schema.Long},
		{Name: "", Type: schema.String, Aliases: []string{"e"}},
		{Name: "hid", Type: schema.Long, Hidden: true},
		{Name: "t", Type: schema.Double, Conversions: map[string]schema.Conversion{"t_f": {Scale: 2}}},
	}}}}})
	if err != nil {
		t.Fatal(err)
	}
	m := reg.tenants["acme"].metrics["m"]
	if m.byLen[3] != nil {
		t.Fatalf("%d names of length 3 are indexed, want them left to the map", len(m.byLen[3]))
	}
	probes := []string{"", "x", "tem", "temps", "al9", "al99", long + "x", long[1:], "hi", "t_g", strings.Repeat("y", byLenMax-1)}
	for n := range m.fields {
		probes = append(probes, n)
	}
	for _, n := range probes {
		want, wok := m.fields[n]
		got, ok := m.lookup(n)
		if ok != wok || got != want {
			t.Errorf("lookup(%q) = %+v, %t; the map holds %+v, %t", n, got, ok, want, wok)
		}
	}
}
