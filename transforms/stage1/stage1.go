// Package stage1 is Fineo's first stage: it turns raw device records into
// staged events by late binding each tenant's schema.
//
// Per raw record (one Kinesis record or one line of a JSON Lines file):
//
//	envelope  {"tenant": T, "event": {...}} or {"tenant": T, "events": [...]}
//	metric    the first of the tenant's metric keys, by canonical name or alias
//	time      the first of the tenant's timestamp keys → UTC epoch milliseconds
//	fields    by canonical name, alias or conversion key → cast → converted
//	unknown   everything else, kept as raw JSON text under the device's name
//	id        deterministic from tenant, metric, time and canonical content
//
// Every event ends as exactly one staged event or one classified customer
// error (records.Error); nothing panics and nothing is dropped. The
// Processor is plain Go so that Beam DoFns call it for a whole batch of
// records per element (see beam.go).
package stage1

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/fineo-io/ingest/records"
	"github.com/fineo-io/ingest/schema"
)

// Limits on raw input.
const (
	KinesisRecordLimit = 1 << 20  // one Kinesis record: 1 MiB
	FileLineLimit      = 10 << 20 // one line of a batch-ingest file: 10 MiB
	DefaultMaxDepth    = 32       // nesting inside one event
	// DefaultMaxFields bounds the fields (members) of one event: an event
	// of 300,000 unknown fields cost a batch 1.5 GB and a one-row file of
	// 38 MB.
	DefaultMaxFields = 10_000
	// RawKeep is how much of an oversized record an error record keeps.
	RawKeep = 64 << 10
)

// StageName names stage 1 in error records.
const StageName = "stage1"

// idNamespace seeds event ids (UUID v5 over the canonical content).
var idNamespace = uuid.MustParse("6f1c9a52-3c1e-4d0b-9a5e-0f1e7e0a1b2c")

// Options configure a Processor. The zero value means sensible defaults.
type Options struct {
	// MaxRecordBytes is the largest raw record accepted (default KinesisRecordLimit).
	MaxRecordBytes int
	// MaxDepth is the deepest nesting accepted inside one event (default 32).
	MaxDepth int
	// MaxFields is the most fields one event may have (default
	// DefaultMaxFields); past it the event is a too_many_fields error.
	MaxFields int
	// BareTenant, when set, makes every record a bare event of this tenant
	// (no envelope); a "tenant" key inside it is ordinary data.
	BareTenant string
	// Now returns the ingest time (default time.Now).
	Now func() time.Time
}

// Output receives what a Processor makes of a record.
type Output interface {
	Staged(ev *records.Event)
	Error(e *records.Error)
}

// encodingOutput is an Output that encodes each staged event before
// stagedFlat returns. The Processor hands it the event's fields as sorted
// slices instead of maps, values unboxed and strings possibly views into
// the raw record or the Processor's memory, all valid only until it
// returns (boxing the values and a field map per event were a fifth of
// stage 1's CPU).
type encodingOutput interface {
	Output
	stagedFlat(ev *records.Event, fields []records.Field, unknown []records.RawField)
}

// Stats counts what a Processor did; the Beam layer turns them into counters.
type Stats struct {
	Records     int64 // raw records seen
	Events      int64 // events seen (a record that cannot be split counts 1)
	Staged      int64
	Errors      int64 // customer errors, in events
	Uncastable  int64 // values kept in unknown_fields because they did not cast
	WithUnknown int64 // staged events carrying at least one unknown field
}

// Processor applies stage 1 to raw records. It is safe for use by one
// goroutine at a time.
type Processor struct {
	reg     *registry
	opts    Options
	Stats   Stats
	buf     []byte // scratch for ids
	idText  []byte // the current event's id
	header  records.Event
	flds    []records.Field    // the current event's fields
	unks    []records.RawField // and unknown fields
	fsrc    []int              // index in members of the member that set flds[i]
	rank    []int              // the rank of flds[i] (fieldRef.rank)
	slot    []int              // by rank: the index in flds of the field of that rank, or -1
	sorted  []records.Field    // flds in name order (swapped with flds per event)
	from    map[string]int
	members []member
	scan    eventScan // what the envelope walk collected of the record's events
	rescan  bool      // tests: walk each event again, as before eventScan
}

// eventScan is what the walk over an envelope collected of its events:
// each event object's members, so that resolving an event does not walk it
// again. Stage 1 used to walk every event of an "events" array three
// times (validating the envelope, splitting the array, resolving the
// event); now it is walked once, with the same validation.
type eventScan struct {
	members     []member       // every collected member, back to back
	event       scannedEvent   // the last "event" value
	events      []scannedEvent // the elements of the last "events" value
	eventsArray bool           // the last "events" value was an array
}

// scannedEvent is one event value of an envelope: when it is an object,
// its members are eventScan.members[lo:hi].
type scannedEvent struct {
	raw    []byte
	object bool
	lo, hi int
}

func (sc *eventScan) reset() {
	sc.members, sc.events = sc.members[:0], sc.events[:0]
	sc.event, sc.eventsArray = scannedEvent{}, false
}

// walk is the envelope's valueWalker: it walks the values of "event" and
// "events", collecting event members; other values are skipped.
func (sc *eventScan) walk(key []byte, escaped bool, b []byte, i int) (int, error) {
	m := member{key: key, escaped: escaped}
	switch {
	case m.is("event"):
		sc.event = scannedEvent{}
		return sc.element(b, i, &sc.event)
	case m.is("events"):
		sc.events, sc.eventsArray = sc.events[:0], false
		if i < len(b) && b[i] == '[' {
			sc.eventsArray = true
			return walkArrayWith(b, i, func(b []byte, i int) (int, error) {
				sc.events = append(sc.events, scannedEvent{})
				return sc.element(b, i, &sc.events[len(sc.events)-1])
			})
		}
	}
	return skipValue(b, i)
}

// element walks the value at b[i] into e.
func (sc *eventScan) element(b []byte, i int, e *scannedEvent) (int, error) {
	if i >= len(b) || b[i] != '{' {
		end, err := skipValue(b, i)
		if err == nil {
			e.raw = b[i:end]
		}
		return end, err
	}
	lo := len(sc.members)
	end, err := walkObject(b, i, func(m member) { sc.members = append(sc.members, m) })
	if err == nil {
		*e = scannedEvent{raw: b[i:end], object: true, lo: lo, hi: len(sc.members)}
	}
	return end, err
}

// NewProcessor compiles the tenants' current schemas.
func NewProcessor(tenants []*schema.Tenant, opts Options) (*Processor, error) {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = KinesisRecordLimit
	}
	if opts.MaxFields <= 0 {
		opts.MaxFields = DefaultMaxFields
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reg, err := compile(tenants)
	if err != nil {
		return nil, err
	}
	return &Processor{reg: reg, opts: opts, from: map[string]int{}}, nil
}

// envelope holds the raw values of an envelope's keys.
type envelope struct {
	Tenant, Event, Events []byte
}

// Reject records raw as one customer error of kind k, as Process does with
// a record it cannot split into events (a KPL aggregate that does not
// parse, for one): its bytes are kept, with src.
func (p *Processor) Reject(k records.Kind, raw []byte, src records.Lineage, msg string, out Output) {
	p.Stats.Records++
	p.Stats.Events++
	p.Stats.Errors++
	out.Error(newError(k, "", raw, src, p.opts.Now().UTC(), msg))
}

// utf8BOM is the UTF-8 encoding of U+FEFF, the byte order mark.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Process applies stage 1 to one raw record.
func (p *Processor) Process(raw []byte, src records.Lineage, out Output) {
	p.Stats.Records++
	now := p.opts.Now().UTC()
	fail := func(k records.Kind, tenant string, raw []byte, src records.Lineage, format string, args ...any) {
		p.Stats.Events++
		p.Stats.Errors++
		out.Error(newError(k, tenant, raw, src, now, fmt.Sprintf(format, args...)))
	}
	// A UTF-8 byte order mark before a record (the first line of a file
	// saved by some editors) is not part of the JSON.
	raw = bytes.TrimPrefix(raw, utf8BOM)
	if len(raw) > p.opts.MaxRecordBytes {
		fail(records.TooLarge, "", raw, src, "record is %d bytes, over the limit of %d", len(raw), p.opts.MaxRecordBytes)
		return
	}
	envDepth := 2 // envelope object + events array
	if p.opts.BareTenant != "" {
		envDepth = 0
	}
	rawDepth := nesting(raw, p.opts.MaxDepth+envDepth)
	if rawDepth > p.opts.MaxDepth+envDepth {
		fail(records.TooDeep, "", raw, src, "record nests deeper than %d levels", p.opts.MaxDepth)
		return
	}
	if p.opts.BareTenant != "" {
		t := p.reg.tenants[p.opts.BareTenant]
		if t == nil {
			fail(records.UnknownTenant, p.opts.BareTenant, raw, src, "no schema is registered for tenant %q", p.opts.BareTenant)
			return
		}
		p.event(t, raw, src, now, out, records.BadEnvelope)
		return
	}
	if !utf8.Valid(raw) {
		fail(records.MalformedJSON, "", raw, src, "record is not valid UTF-8 (JSON text must be UTF-8)")
		return
	}
	var env envelope
	var repeated string // an envelope key given twice: which tenant or event is meant is unclear
	p.scan.reset()
	err := scanObjectWith(raw, func(m member) {
		var dst *[]byte
		var name string
		switch {
		case m.is("tenant"):
			dst, name = &env.Tenant, "tenant"
		case m.is("event"):
			dst, name = &env.Event, "event"
		case m.is("events"):
			dst, name = &env.Events, "events"
		default:
			return
		}
		if *dst != nil && repeated == "" {
			repeated = name
		}
		*dst = m.val
	}, p.scan.walk)
	if err != nil {
		if jsonKind(raw) != "object" && validValue(raw) {
			fail(records.BadEnvelope, "", raw, src, "record is a JSON %s, not an envelope object {\"tenant\":..., \"event\"|\"events\":...}", jsonKind(raw))
			return
		}
		fail(records.MalformedJSON, "", raw, src, "malformed JSON: %s", shortErr(err))
		return
	}
	if repeated != "" {
		fail(records.BadEnvelope, "", raw, src, "envelope has the key %q more than once (an escaped spelling counts too)", repeated)
		return
	}
	tenant, terr := tenantOf(env.Tenant)
	if terr != nil {
		fail(records.MissingTenant, "", raw, src, "%v", terr)
		return
	}
	t := p.reg.tenants[tenant]
	if t == nil {
		fail(records.UnknownTenant, tenant, raw, src, "no schema is registered for tenant %q", tenant)
		return
	}
	hasEvent, hasEvents := present(env.Event), present(env.Events)
	switch {
	case hasEvent && hasEvents:
		fail(records.BadEnvelope, tenant, raw, src, "envelope has both \"event\" and \"events\"")
	case hasEvent:
		// The pre-check above allows for an events array; a single event
		// sits one level higher, so check its own nesting — unless the
		// record is shallow enough that the event, inside the envelope,
		// cannot be too deep (the common case: no second scan).
		if rawDepth > p.opts.MaxDepth+1 {
			if d := depth(env.Event, p.opts.MaxDepth); d > p.opts.MaxDepth {
				fail(records.TooDeep, "", raw, src, "record nests deeper than %d levels", p.opts.MaxDepth)
				return
			}
		}
		p.scanned(t, p.scan.event, src, now, out, records.BadEnvelope)
	case hasEvents:
		p.events(t, raw, src, now, out)
	default:
		fail(records.BadEnvelope, tenant, raw, src, "envelope has neither \"event\" nor \"events\"")
	}
}

// events resolves the elements of the envelope's "events" array, which
// the envelope walk collected (eventScan).
func (p *Processor) events(t *ctenant, raw []byte, src records.Lineage, now time.Time, out Output) {
	evs := p.scan.events
	if !p.scan.eventsArray || len(evs) == 0 {
		p.Stats.Events++
		p.Stats.Errors++
		msg := "\"events\" is not an array"
		if p.scan.eventsArray {
			msg = "\"events\" is an empty array"
		}
		out.Error(newError(records.BadEnvelope, t.name, raw, src, now, msg))
		return
	}
	for i, e := range evs {
		s := src
		s.Index = i
		p.scanned(t, e, s, now, out, records.BadEvent)
	}
}

// scanned resolves an event the envelope walk collected.
func (p *Processor) scanned(t *ctenant, e scannedEvent, src records.Lineage, now time.Time, out Output, notObject records.Kind) {
	if !e.object || p.rescan {
		p.event(t, e.raw, src, now, out, notObject)
		return
	}
	p.Stats.Events++
	p.resolve(t, e.raw, p.scan.members[e.lo:e.hi], src, now, out)
}

// event resolves one event object. notObject is the kind used when the
// event is not a JSON object.
func (p *Processor) event(t *ctenant, raw []byte, src records.Lineage, now time.Time, out Output, notObject records.Kind) {
	p.Stats.Events++
	fail := func(k records.Kind, format string, args ...any) {
		p.Stats.Errors++
		out.Error(newError(k, t.name, raw, src, now, fmt.Sprintf(format, args...)))
	}
	if jsonKind(raw) != "object" {
		if !validValue(raw) { // only a bare record can be invalid here
			fail(records.MalformedJSON, "malformed JSON: not a JSON value")
			return
		}
		fail(notObject, "event is a JSON %s, not an object", jsonKind(raw))
		return
	}
	obj := p.members[:0]
	err := scanObject(raw, func(m member) { obj = append(obj, m) })
	p.members = obj[:0]
	if err != nil {
		fail(records.MalformedJSON, "malformed event: %s", shortErr(err))
		return
	}
	p.resolve(t, raw, obj, src, now, out)
}

// resolve is event for an object whose members obj are scanned.
func (p *Processor) resolve(t *ctenant, raw []byte, obj []member, src records.Lineage, now time.Time, out Output) {
	fail := func(k records.Kind, format string, args ...any) {
		p.Stats.Errors++
		out.Error(newError(k, t.name, raw, src, now, fmt.Sprintf(format, args...)))
	}
	if len(obj) > p.opts.MaxFields {
		fail(records.TooManyFields, "event has %d fields, over the limit of %d", len(obj), p.opts.MaxFields)
		return
	}
	metricKey, metricRaw := lastKey(obj, t.metricKeys)
	if metricKey == "" {
		fail(records.MissingMetric, "event has none of the metric keys %q", t.metricKeys)
		return
	}
	alias, ok := stringValue(metricRaw)
	if !ok {
		fail(records.UnknownMetric, "metric key %q holds %s, not a metric name", metricKey, metricRaw)
		return
	}
	m := t.metrics[alias]
	if m == nil {
		fail(records.UnknownMetric, "metric %q is not a metric or alias of tenant %q", alias, t.name)
		return
	}
	tsKey, tsRaw := lastKey(obj, t.timestampKeys)
	if tsKey == "" {
		if nulls := nullKeys(obj, t.timestampKeys); len(nulls) > 0 {
			fail(records.MissingTimestamp, "event's timestamp key %q is null (timestamp keys %q)", nulls, t.timestampKeys)
			return
		}
		fail(records.MissingTimestamp, "event has none of the timestamp keys %q", t.timestampKeys)
		return
	}
	ts, err := parseTimestamp(tsRaw)
	if err != nil {
		fail(records.BadTimestamp, "timestamp %q = %s: %v", tsKey, clip(tsRaw, 64), err)
		return
	}
	ev := &p.header
	*ev = records.Event{Tenant: t.name, Metric: m.name, MetricAlias: alias, Timestamp: ts,
		SchemaVersion: t.version, IngestTime: now.UnixMilli(), Source: src}
	flds, unks := p.flds[:0], p.unks[:0]
	fsrc := p.fsrc[:0] // index in obj of the member that set flds[i]
	rank := p.rank[:0]
	from := p.from // canonical name → index in flds, for events of many fields
	useMap := len(obj) > linearFields
	if useMap {
		clear(from)
	}
	for i := range obj {
		mb := &obj[i]
		if mb.is(metricKey) || mb.is(tsKey) {
			continue
		}
		var f fieldRef
		var known bool
		if !mb.escaped {
			f, known = m.lookup(view(mb.key))
		} else {
			f, known = m.lookup(mb.name())
		}
		if !known || f.hidden {
			unks = append(unks, records.RawField{Name: mb.nameView(), Raw: mb.val})
			continue
		}
		val, ok := castFlat(mb.val, f)
		if !ok {
			p.Stats.Uncastable++
			unks = append(unks, records.RawField{Name: mb.nameView(), Raw: mb.val})
			continue
		}
		j := -1
		if useMap {
			if k, dup := from[f.name]; dup {
				j = k
			}
		} else {
			for k := range flds {
				if flds[k].Name == f.name {
					j = k
					break
				}
			}
		}
		if j >= 0 {
			// Two device names for one field: the smaller name wins, so the
			// outcome does not depend on the order of keys; the other is kept
			// unknown. A repeated key: the last one wins.
			prev := &obj[fsrc[j]]
			if c := compareNames(mb, prev); c > 0 {
				unks = append(unks, records.RawField{Name: mb.nameView(), Raw: mb.val})
				continue
			} else if c < 0 {
				unks = append(unks, records.RawField{Name: prev.nameView(), Raw: prev.val})
			}
			flds[j].Value, fsrc[j] = val, i
			continue
		}
		if useMap {
			from[f.name] = len(flds)
		}
		flds = append(flds, records.Field{Name: f.name, Value: val})
		fsrc = append(fsrc, i)
		rank = append(rank, f.rank)
	}
	p.fsrc, p.rank = fsrc, rank
	flds = p.byName(flds, rank, len(m.columns))
	unks = lastByName(unks)
	p.flds, p.unks = flds, unks
	if len(unks) > 0 {
		p.Stats.WithUnknown++
	}
	ev.ID = p.eventID(ev, flds, unks)
	p.Stats.Staged++
	if eo, ok := out.(encodingOutput); ok {
		eo.stagedFlat(ev, flds, unks)
		return
	}
	out.Staged(keep(ev, flds, unks))
}

// byName returns flds (of distinct names, flds[i] of rank rank[i] among
// n) in name order, as records.SortFields would: each field goes to the
// slot of its rank, and the slots are read in order. The result is in
// p.sorted, which swaps with p.flds, so both are reused.
func (p *Processor) byName(flds []records.Field, rank []int, n int) []records.Field {
	if len(flds) < 2 {
		return flds
	}
	slot := slices.Grow(p.slot[:0], n)[:n]
	for i := range slot {
		slot[i] = -1
	}
	for i, r := range rank {
		slot[r] = i
	}
	out := p.sorted[:0]
	for _, i := range slot {
		if i >= 0 {
			out = append(out, flds[i])
		}
	}
	p.slot, p.sorted = slot, flds[:0]
	return out
}

// linearFields is the number of members up to which an event's fields are
// checked for a repeat by a scan instead of a map.
const linearFields = 32

// lastByName sorts unknown fields by name and keeps, of a repeated name,
// the one added last (as a map assignment would).
func lastByName(u []records.RawField) []records.RawField {
	if len(u) < 2 {
		return u
	}
	records.SortRawFields(u)
	out := u[:0]
	for i := range u {
		if i+1 < len(u) && u[i+1].Name == u[i].Name {
			continue
		}
		out = append(out, u[i])
	}
	return out
}

// keep returns an event of its own (maps, copied strings) for an Output
// that keeps events: the Processor's values may be views into the raw
// record and its scratch memory is reused.
func keep(h *records.Event, flds []records.Field, unks []records.RawField) *records.Event {
	ev := *h
	ev.ID = strings.Clone(h.ID)
	ev.MetricAlias = strings.Clone(h.MetricAlias)
	ev.Fields = make(map[string]any, len(flds))
	for _, f := range flds {
		if f.Value.Kind == records.StringValue {
			f.Value.Str = strings.Clone(f.Value.Str)
		}
		ev.Fields[f.Name] = f.Value.Any()
	}
	for _, u := range unks {
		ev.AddUnknown(strings.Clone(u.Name), u.Raw)
	}
	return &ev
}

// eventID hashes tenant, metric, time and canonical content (fields and
// unknown fields sorted by name): an exact re-delivery gets the same id,
// two different events never share one. The id is a view into the
// Processor's memory, valid until the next event.
func (p *Processor) eventID(ev *records.Event, flds []records.Field, unks []records.RawField) string {
	b := append(p.buf[:0], idNamespace[:]...)
	b = append(b, ev.Tenant...)
	b = append(b, 0)
	b = append(b, ev.Metric...)
	b = append(b, 0)
	b = strconv.AppendInt(b, ev.Timestamp, 10)
	for i := range flds {
		b = append(b, 0, 'f')
		b = append(b, flds[i].Name...)
		b = append(b, 0)
		b = appendFlat(b, &flds[i].Value)
	}
	for i := range unks {
		b = append(b, 0, 'u')
		b = append(b, unks[i].Name...)
		b = append(b, 0)
		b = append(b, unks[i].Raw...)
	}
	p.buf = b
	p.idText = appendUUID(p.idText[:0], uuidV5(b))
	return view(p.idText)
}

// appendUUID appends u's canonical text form (as uuid.UUID.String).
func appendUUID(b []byte, u uuid.UUID) []byte {
	const hexDigits = "0123456789abcdef"
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0x0f])
	}
	return b
}

// uuidV5 is uuid.NewSHA1(idNamespace, data) for b = idNamespace + data,
// without its hasher and digest allocations (a tenth of eventID's cost).
func uuidV5(b []byte) uuid.UUID {
	sum := sha1.Sum(b)
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u
}

// appendFlat appends a value's id form: a type letter, then the value
// (the form ids have always had; TestEventIDsStable pins it).
func appendFlat(b []byte, v *records.Value) []byte {
	switch v.Kind {
	case records.NullValue:
		return append(b, 'n')
	case records.BoolValue:
		return strconv.AppendBool(append(b, 'b'), v.Int != 0)
	case records.LongValue:
		return strconv.AppendInt(append(b, 'l'), v.Int, 10)
	case records.DoubleValue:
		return strconv.AppendUint(append(b, 'd'), math.Float64bits(v.Float), 16)
	case records.StringValue:
		return append(append(b, 's'), v.Str...)
	case records.BytesValue:
		return append(append(b, 'y'), v.Bytes...)
	}
	return append(b, '?')
}

func tenantOf(raw json.RawMessage) (string, error) {
	if !present(raw) {
		return "", errors.New("envelope has no \"tenant\"")
	}
	s, ok := stringValue(raw)
	if !ok {
		return "", fmt.Errorf("envelope \"tenant\" is %s, not a string", clip(raw, 64))
	}
	if s == "" {
		return "", errors.New("envelope \"tenant\" is empty")
	}
	return s, nil
}

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// lastKey returns the first of keys that the event holds with a non-null
// value (the last occurrence of a repeated key).
func lastKey(obj []member, keys []string) (string, []byte) {
	for _, k := range keys {
		for i := len(obj) - 1; i >= 0; i-- {
			if obj[i].is(k) {
				if present(obj[i].val) {
					return k, obj[i].val
				}
				break
			}
		}
	}
	return "", nil
}

// nullKeys returns the keys of keys the event holds, but only as null: the
// reason a timestamp is missing, for the message.
func nullKeys(obj []member, keys []string) []string {
	var out []string
	for _, k := range keys {
		for i := range obj {
			if obj[i].is(k) {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

func stringValue(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := unquote(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// nesting is depth(raw, limit) when that exceeds limit, and otherwise a
// number from depth(raw) to limit. A record cannot nest deeper than it has
// opening brackets, and counting them is a vectorized pass: for almost
// every record that settles it without the scan, which was 7% of stage 1.
func nesting(raw []byte, limit int) int {
	if n := bytes.Count(raw, openBrace) + bytes.Count(raw, openBracket); n <= limit {
		return n
	}
	return depth(raw, limit)
}

var openBrace, openBracket = []byte{'{'}, []byte{'['}

// depth returns the deepest nesting of objects and arrays in raw, stopping
// early once it exceeds limit.
func depth(raw []byte, limit int) int {
	d, maxD := 0, 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			// Jump to the closing quote: one not preceded by an odd run of
			// backslashes. IndexByte is vectorized; strings are most of a
			// record's bytes (this scan was a tenth of stage 1, measured).
			for {
				j := bytes.IndexByte(raw[i+1:], '"')
				if j < 0 {
					return maxD // unterminated: the parser reports it
				}
				i += 1 + j
				bs := 0
				for k := i - 1; k >= 0 && raw[k] == '\\'; k-- {
					bs++
				}
				if bs%2 == 0 {
					break
				}
			}
		case '{', '[':
			d++
			if d > maxD {
				maxD = d
				if maxD > limit {
					return maxD
				}
			}
		case '}', ']':
			d--
		}
	}
	return maxD
}

func jsonKind(raw []byte) string {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return "array"
		case '{':
			return "object"
		case '"':
			return "string"
		case 't', 'f':
			return "boolean"
		case 'n':
			return "null"
		}
		return "number"
	}
	return "empty value"
}

func shortErr(err error) string { return clip([]byte(err.Error()), 200) }

func clip(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

func newError(k records.Kind, tenant string, raw []byte, src records.Lineage, now time.Time, msg string) *records.Error {
	keep := raw
	if len(keep) > RawKeep && k == records.TooLarge {
		keep = keep[:RawKeep]
	}
	return &records.Error{
		Kind:    k,
		Tenant:  tenant,
		Stage:   StageName,
		Message: msg,
		Raw:     append([]byte(nil), keep...),
		RawSize: len(raw),
		Source:  src,
		Time:    now,
		Events:  1,
	}
}
