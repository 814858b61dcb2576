// Package schemachange builds the schema-change report of a batch run: per
// tenant and metric, the fields the current schema does not type (unknown
// fields, kept as raw JSON text in unknown_fields) and the declared fields
// whose values failed to cast, with counts, event-time range, samples and an
// inferred type. Suggest turns a report into proposed schema versions that
// `fineo schema apply` accepts.
//
// Reports are built in parts (one per worker or bundle) and combined with
// Merge, which is associative and commutative: merging the same parts in any
// order or grouping yields byte-identical JSON. Every piece of state is in
// exported fields, so a report survives a JSON round trip (Read) without
// losing anything Merge needs.
package schemachange

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// MaxSamples is the number of distinct sample values kept per field.
const MaxSamples = 5

// MaxFieldsPerMetric bounds the field names a report keeps per tenant and
// metric, in each of unknown fields and failed casts: the smallest names
// (in byte order) are kept, and the observations of the others only
// counted (MetricChanges.OtherUnknown, OtherFailedCasts). Keeping the k
// smallest names keeps Merge exact and associative: a name one part drops
// has k smaller names there, which the merged report holds as well. A
// device sending a new field name per event would otherwise grow the
// report with every event (issue 19, defect 6: 300,000 names, an 88 MB
// report).
const MaxFieldsPerMetric = 1000

// summaryFields is how many fields per section Summary prints: the
// report file holds the rest.
const summaryFields = 20

// MaxSampleLen is the longest sample kept, in bytes; longer raw values are
// cut at a UTF-8 boundary and end in "…" (so such a sample is not valid
// JSON). Cutting happens before samples are compared, so it does not affect
// determinism.
const MaxSampleLen = 256

// FieldStats describes one field name as seen in the data.
type FieldStats struct {
	Count     int64     `json:"count"`      // values seen, nulls included
	FirstSeen time.Time `json:"first_seen"` // event time, UTC
	LastSeen  time.Time `json:"last_seen"`  // event time, UTC
	// Samples holds up to MaxSamples distinct raw JSON values: the smallest
	// in byte order, which makes the choice independent of merge order.
	Samples []string `json:"samples"`
	// Types counts the values by InferType (nulls are not counted).
	Types map[string]int64 `json:"types"`
	// Inferred is the overall type: long, double, boolean, timestamp or
	// string; long and double mixed give double, any other mix gives string;
	// "" when every value was null. Objects and arrays count as string (their
	// JSON text): see InferType and Structured.
	Inferred string `json:"inferred_type"`
	// Structured counts the values (also counted as string in Types) that
	// were JSON objects or arrays, which stage 1 does not cast to string.
	Structured int64 `json:"structured_values,omitempty"`
	// Declared is, for failed casts only, the field's declared type. If the
	// merged parts disagree (the schema changed during the run), it is the
	// one of the part seen last in event time.
	Declared string `json:"declared_type,omitempty"`
}

// MetricChanges lists the schema changes seen for one tenant and metric.
type MetricChanges struct {
	Tenant      string                 `json:"tenant"`
	Metric      string                 `json:"metric"`         // canonical metric name
	Unknown     map[string]*FieldStats `json:"unknown_fields"` // keyed by the device's field name
	FailedCasts map[string]*FieldStats `json:"failed_casts"`   // keyed by canonical field name
	// Observations of names beyond MaxFieldsPerMetric, counted only.
	OtherUnknown     int64 `json:"other_unknown_observations,omitempty"`
	OtherFailedCasts int64 `json:"other_failed_cast_observations,omitempty"`
}

// Report is the schema-change report of one batch run.
type Report struct {
	Run       string           `json:"run"`
	Generated time.Time        `json:"generated"`
	From      string           `json:"from,omitempty"` // date range of the batch run
	To        string           `json:"to,omitempty"`
	Metrics   []*MetricChanges `json:"metrics"` // sorted by tenant, metric
}

// NewReport returns an empty report.
func NewReport() *Report {
	return &Report{Metrics: []*MetricChanges{}}
}

// ObserveUnknown records one value of a field the schema does not type, as
// the raw JSON text kept in unknown_fields under the device's name, for an
// event at tsMillis (UTC epoch milliseconds).
func (r *Report) ObserveUnknown(tenant, metric, name, raw string, tsMillis int64) {
	m := r.metric(tenant, metric)
	if admit(m.Unknown, name, &m.OtherUnknown) {
		observe(m.Unknown, name, raw, tsMillis, "")
	}
}

// ObserveFailedCast records one value of a declared field (canonical name)
// that did not cast to its declared type.
func (r *Report) ObserveFailedCast(tenant, metric, field, declared, raw string, tsMillis int64) {
	m := r.metric(tenant, metric)
	if admit(m.FailedCasts, field, &m.OtherFailedCasts) {
		observe(m.FailedCasts, field, raw, tsMillis, declared)
	}
}

// admit says whether an observation of name is kept in fields: yes if
// the name is there or there is room, or if it is smaller than the
// largest name there (which is dropped into *other). Otherwise it is
// counted in *other.
func admit(fields map[string]*FieldStats, name string, other *int64) bool {
	if _, ok := fields[name]; ok || len(fields) < MaxFieldsPerMetric {
		return true
	}
	largest := ""
	for n := range fields {
		largest = max(largest, n)
	}
	if name > largest {
		*other++
		return false
	}
	*other += fields[largest].Count
	delete(fields, largest)
	return true
}

// trim drops the largest names beyond MaxFieldsPerMetric into *other.
func trim(fields map[string]*FieldStats, other *int64) {
	if len(fields) <= MaxFieldsPerMetric {
		return
	}
	names := slices.Sorted(maps.Keys(fields))
	for _, n := range names[MaxFieldsPerMetric:] {
		*other += fields[n].Count
		delete(fields, n)
	}
}

func observe(fields map[string]*FieldStats, name, raw string, tsMillis int64, declared string) {
	ts := time.UnixMilli(tsMillis).UTC()
	fs := fields[name]
	if fs == nil {
		fs = newFieldStats()
		fs.FirstSeen, fs.LastSeen = ts, ts
		fs.Declared = declared
		fields[name] = fs
	}
	fs.Count++
	// The same rules as Merge, for a part holding this one value.
	if ts.Before(fs.FirstSeen) {
		fs.FirstSeen = ts
	}
	switch {
	case ts.After(fs.LastSeen):
		fs.LastSeen = ts
		fs.Declared = declared
	case ts.Equal(fs.LastSeen):
		fs.Declared = max(fs.Declared, declared)
	}
	typ, structured := inferValue(raw)
	if typ != "" {
		fs.Types[typ]++
		fs.Inferred = combineTypes(fs.Types)
	}
	if structured {
		fs.Structured++
	}
	fs.Samples = addSample(fs.Samples, sampleOf(raw))
}

func newFieldStats() *FieldStats {
	return &FieldStats{Samples: []string{}, Types: map[string]int64{}}
}

// sampleOf cuts raw to MaxSampleLen bytes.
func sampleOf(raw string) string {
	if len(raw) <= MaxSampleLen {
		return raw
	}
	cut := MaxSampleLen - len("…")
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return raw[:cut] + "…"
}

// addSample inserts s into the sorted, distinct samples, keeping the
// MaxSamples smallest.
func addSample(samples []string, s string) []string {
	i, found := slices.BinarySearch(samples, s)
	if found || i >= MaxSamples {
		return samples
	}
	samples = slices.Insert(samples, i, s)
	if len(samples) > MaxSamples {
		samples = samples[:MaxSamples]
	}
	return samples
}

// metric returns the entry for tenant and metric, creating it in sorted
// position.
func (r *Report) metric(tenant, metric string) *MetricChanges {
	i, found := slices.BinarySearchFunc(r.Metrics, [2]string{tenant, metric}, func(m *MetricChanges, k [2]string) int {
		if c := strings.Compare(m.Tenant, k[0]); c != 0 {
			return c
		}
		return strings.Compare(m.Metric, k[1])
	})
	if found {
		return r.Metrics[i]
	}
	m := &MetricChanges{Tenant: tenant, Metric: metric, Unknown: map[string]*FieldStats{}, FailedCasts: map[string]*FieldStats{}}
	r.Metrics = slices.Insert(r.Metrics, i, m)
	return m
}

// Merge adds o into r; o is not modified and shares nothing with r
// afterwards. Merge is associative and commutative: counts add up, first
// and last seen take the min and max, samples keep the MaxSamples smallest
// distinct values, Generated takes the latest time, From the earliest date
// and To the latest, and Run the smallest non-empty id (parts of one run
// share it).
func (r *Report) Merge(o *Report) {
	if o == nil {
		return
	}
	if r.Metrics == nil {
		r.Metrics = []*MetricChanges{}
	}
	r.Run = minNonEmpty(r.Run, o.Run)
	r.From = minNonEmpty(r.From, o.From)
	r.To = max(r.To, o.To)
	if o.Generated.After(r.Generated) {
		r.Generated = o.Generated
	}
	r.Generated = r.Generated.UTC()
	for _, om := range o.Metrics {
		if om == nil {
			continue
		}
		m := r.metric(om.Tenant, om.Metric)
		mergeFields(m.Unknown, om.Unknown)
		mergeFields(m.FailedCasts, om.FailedCasts)
		m.OtherUnknown += om.OtherUnknown
		m.OtherFailedCasts += om.OtherFailedCasts
		trim(m.Unknown, &m.OtherUnknown)
		trim(m.FailedCasts, &m.OtherFailedCasts)
	}
}

func minNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return min(a, b)
}

func mergeFields(dst, src map[string]*FieldStats) {
	for name, s := range src {
		if s == nil {
			continue
		}
		d := dst[name]
		if d == nil {
			d = newFieldStats()
			d.FirstSeen, d.LastSeen = s.FirstSeen.UTC(), s.LastSeen.UTC()
			d.Declared = s.Declared
			dst[name] = d
		} else {
			d.mergeTimes(s)
		}
		d.Count += s.Count
		d.Structured += s.Structured
		for t, n := range s.Types {
			d.Types[t] += n
		}
		d.Inferred = combineTypes(d.Types)
		for _, v := range s.Samples {
			d.Samples = addSample(d.Samples, sampleOf(v))
		}
	}
}

// mergeTimes widens d's event-time range with s's; Declared follows the
// part with the latest LastSeen (ties: the larger type name).
func (d *FieldStats) mergeTimes(s *FieldStats) {
	if s.FirstSeen.Before(d.FirstSeen) {
		d.FirstSeen = s.FirstSeen.UTC()
	}
	switch {
	case s.LastSeen.After(d.LastSeen):
		d.LastSeen = s.LastSeen.UTC()
		d.Declared = s.Declared
	case s.LastSeen.Equal(d.LastSeen):
		d.Declared = max(d.Declared, s.Declared)
	}
}

// Empty reports whether the report holds no unknown field and no failed cast.
func (r *Report) Empty() bool {
	for _, m := range r.Metrics {
		if len(m.Unknown) > 0 || len(m.FailedCasts) > 0 {
			return false
		}
	}
	return true
}

// Write encodes the report as indented JSON followed by a newline.
func (r *Report) Write(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("schemachange: encode report: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Read decodes a report written by Write (or any JSON encoding of Report)
// and normalises it: metrics sorted and merged by tenant and metric,
// samples sorted and capped, inferred types recomputed from the type counts.
func Read(rd io.Reader) (*Report, error) {
	var in Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("schemachange: read report: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("schemachange: read report: more than one JSON value")
	}
	out := NewReport()
	out.Merge(&in)
	return out, nil
}

// Summary writes a readable summary: per tenant and metric, the unknown
// fields and then the failed casts, each with its count, inferred type,
// event-time range and two samples.
func (r *Report) Summary(w io.Writer) {
	head := "schema-change report"
	if r.Run != "" {
		head += " " + r.Run
	}
	if r.From != "" || r.To != "" {
		head += fmt.Sprintf(" (%s .. %s)", r.From, r.To)
	}
	fmt.Fprintln(w, head)
	if r.Empty() {
		fmt.Fprintln(w, "no unknown fields and no failed casts")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range r.Metrics {
		if len(m.Unknown) == 0 && len(m.FailedCasts) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s/%s\n", m.Tenant, m.Metric)
		section(tw, "unknown fields", m.Unknown, m.OtherUnknown, func(name string, _ *FieldStats) string { return name })
		section(tw, "failed casts", m.FailedCasts, m.OtherFailedCasts, func(name string, fs *FieldStats) string {
			return fmt.Sprintf("%s (declared %s)", name, fs.Declared)
		})
	}
	tw.Flush()
}

// section prints one section of a metric: its summaryFields most seen
// fields (ties by name), then how many more the report file holds.
func section(w io.Writer, title string, fields map[string]*FieldStats, other int64, label func(string, *FieldStats) string) {
	if len(fields) == 0 && other == 0 {
		return
	}
	fmt.Fprintf(w, "  %s:\n", title)
	fmt.Fprintf(w, "    FIELD\tCOUNT\tTYPE\tFIRST SEEN\tLAST SEEN\tSAMPLES\n")
	names := slices.SortedFunc(maps.Keys(fields), func(a, b string) int {
		if c := cmp.Compare(fields[b].Count, fields[a].Count); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, name := range names[:min(len(names), summaryFields)] {
		summaryLine(w, label(name, fields[name]), fields[name])
	}
	if n := len(names) - summaryFields; n > 0 {
		fmt.Fprintf(w, "    ... and %d more field(s), in the report file\n", n)
	}
	if other > 0 {
		fmt.Fprintf(w, "    ... and %d observation(s) of further field names, beyond the report's %d per metric (counted only)\n", other, MaxFieldsPerMetric)
	}
}

func summaryLine(w io.Writer, label string, fs *FieldStats) {
	typ := fs.Inferred
	if typ == "" {
		typ = "null"
	}
	samples := fs.Samples
	if len(samples) > 2 {
		samples = samples[:2]
	}
	fmt.Fprintf(w, "    %s\t%d\t%s\t%s\t%s\t%s\n", label, fs.Count, typ,
		fs.FirstSeen.UTC().Format(time.RFC3339), fs.LastSeen.UTC().Format(time.RFC3339),
		strings.Join(samples, ", "))
}
