package stage1

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

var fuzzMaxMillis = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// FuzzProcess feeds arbitrary records to Process, as envelopes and as bare
// records, and checks that every event has exactly one outcome, and the
// same outcome as when each event is walked again after the envelope.
func FuzzProcess(f *testing.F) {
	for _, s := range []string{
		`{"tenant":"harbor","event":{"metrictype":"weather","ts":1262304000,"temp_c":1,"old":2,"x":{"y":[1]}}}`,
		`{"tenant":"harbor","events":[{"metrictype":"wx","timestamp":"2010-01-01T00:00:00+01:00","temp_f":212},5,{"metrictype":"weather"}]}`,
		`{"tenant":"acme","events":[{"type":"rd","time":1262304000123456,"v":"1.5"}]}`,
		`{"metrictype":"weather","ts":1262304000,"tenant":"acme","count_k":"2.5","blob":"aGk="}`,
		`{"tenant":"harbor","event":{"metrictype":"weather","ts":1e23}}`,
		`{"tenant":"harbor","event":[]}`,
		`{"tenant":null}`,
		`[{"tenant":"harbor"}]`,
		`{"tenant":"harbor","event":` + nest(33) + `}`,
		`{"tenant":"harbor"`,
		``,
	} {
		f.Add([]byte(s))
	}
	procs, rescans := map[string]*Processor{}, map[string]*Processor{}
	type encPair struct{ kept, enc *Processor }
	encs := map[string]encPair{}
	tenants := []*schema.Tenant{harborSchema(), acmeSchema()}
	for _, bare := range []string{"", "harbor"} {
		procs[bare] = newProc(f, Options{MaxRecordBytes: 4096, BareTenant: bare})
		rescans[bare] = newProc(f, Options{MaxRecordBytes: 4096, BareTenant: bare})
		rescans[bare].rescan = true
		encs[bare] = encPair{newProc(f, Options{MaxRecordBytes: 4096, BareTenant: bare}), newProc(f, Options{MaxRecordBytes: 4096, BareTenant: bare})}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, e := range encs {
			// The encoding path (typed slices, views, reused memory) makes
			// the same events as the path that keeps them.
			encodedEqualsKept(t, e.kept, e.enc, newBlockOutput(tenants), [][]byte{raw})
		}
		for bare, p := range procs {
			before := p.Stats
			c := &collector{}
			p.Process(raw, records.Lineage{File: "fuzz", Line: 1}, c)
			d := Stats{
				Records: p.Stats.Records - before.Records,
				Events:  p.Stats.Events - before.Events,
				Staged:  p.Stats.Staged - before.Staged,
				Errors:  p.Stats.Errors - before.Errors,
			}
			if d.Records != 1 || d.Events < 1 || d.Events != d.Staged+d.Errors {
				t.Fatalf("bare=%q: stats delta %+v", bare, d)
			}
			checkConservation(t, d, c)
			c2 := &collector{}
			rescans[bare].Process(raw, records.Lineage{File: "fuzz", Line: 1}, c2)
			if !reflect.DeepEqual(c, c2) {
				t.Fatalf("bare=%q: events scanned once:\n%+v\nscanned again:\n%+v", bare, c, c2)
			}
			want := bare
			if bare == "" {
				var env struct {
					Tenant string `json:"tenant"`
				}
				if len(c.staged) > 0 {
					if err := json.Unmarshal(raw, &env); err != nil {
						t.Fatalf("staged events from a record encoding/json rejects: %v", err)
					}
				}
				want = env.Tenant
			}
			for _, ev := range c.staged {
				if ev.ID == "" || ev.Tenant != want || ev.Timestamp <= 0 || ev.Timestamp >= fuzzMaxMillis {
					t.Fatalf("bare=%q: bad staged event %+v (want tenant %q)", bare, ev, want)
				}
			}
			for _, e := range c.errs {
				if e.Kind == records.Other || e.Kind.Class() != records.Customer || e.Stage != StageName || e.Message == "" || e.Events != 1 {
					t.Fatalf("bare=%q: bad error record %+v", bare, e)
				}
			}
		}
	})
}
