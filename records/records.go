// Package records holds the data that flows between Fineo's stages: the
// lineage of a raw record, the staged event that stage 1 produces, and the
// classified error record that every rejected record or failed write becomes.
//
// The error model follows upspin's errors package: one record type with a
// Kind enum. Kinds only ever grow at the end, so their numbers are stable;
// archives store the kind's name, never its number.
package records

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Class says who has to act on an error record.
type Class string

const (
	// Customer errors are bad input: the tenant's device or front door has to fix them.
	Customer Class = "customer"
	// Processing errors are failures of the pipeline or its dependencies:
	// operators fix them, then replay the record.
	Processing Class = "processing"
)

// Kind classifies an error record. New kinds are added at the end only.
type Kind uint8

const (
	Other            Kind = iota // unclassified; should not occur
	MalformedJSON                // the record is not valid JSON
	BadEnvelope                  // valid JSON, but not {"tenant":..,"event"|"events":..}
	MissingTenant                // the envelope names no tenant
	UnknownTenant                // no schema is registered for the tenant
	MissingMetric                // the event has none of the tenant's metric keys
	UnknownMetric                // the metric is neither a name nor an alias in the schema
	MissingTimestamp             // the event has none of the tenant's timestamp keys
	BadTimestamp                 // the timestamp is not epoch s/ms/µs/ns or RFC 3339
	TooLarge                     // the record is over the size limit
	TooDeep                      // the record nests deeper than the limit
	BadEvent                     // an event is not a JSON object
	ReadFailed                   // processing: an input file or stream could not be read
	WriteFailed                  // processing: an output could not be written after retries
	Internal                     // processing: a bug; the record is kept for replay
	BadAggregate                 // a KPL-aggregated Kinesis record whose checksum or protobuf is bad
	TooManyFields                // an event has more fields than the limit
)

var kindNames = [...]string{
	Other:            "other",
	MalformedJSON:    "malformed_json",
	BadEnvelope:      "bad_envelope",
	MissingTenant:    "missing_tenant",
	UnknownTenant:    "unknown_tenant",
	MissingMetric:    "missing_metric",
	UnknownMetric:    "unknown_metric",
	MissingTimestamp: "missing_timestamp",
	BadTimestamp:     "bad_timestamp",
	TooLarge:         "too_large",
	TooDeep:          "too_deep",
	BadEvent:         "bad_event",
	ReadFailed:       "read_failed",
	WriteFailed:      "write_failed",
	Internal:         "internal",
	BadAggregate:     "bad_aggregate",
	TooManyFields:    "too_many_fields",
}

// String returns the kind's stable name, as stored in archives.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Class returns who has to act on errors of this kind.
func (k Kind) Class() Class {
	switch k {
	case ReadFailed, WriteFailed, Internal, Other:
		return Processing
	}
	return Customer
}

// Kinds returns every kind, in enum order.
func Kinds() []Kind {
	ks := make([]Kind, len(kindNames))
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// ParseKind returns the kind with the given name.
func ParseKind(name string) (Kind, bool) {
	for i, n := range kindNames {
		if n == name {
			return Kind(i), true
		}
	}
	return Other, false
}

// Lineage says where a raw record came from: a line of a file, or a record
// of a stream shard.
type Lineage struct {
	File     string `json:"file,omitempty"`
	Line     int64  `json:"line,omitempty"` // 1-based
	Stream   string `json:"stream,omitempty"`
	Shard    string `json:"shard,omitempty"`
	Sequence string `json:"sequence,omitempty"`
	Index    int    `json:"index,omitempty"` // position of the event in an "events" array, 0-based
}

// String renders the lineage for messages: file:line or stream/shard@seq.
func (l Lineage) String() string {
	if l.Stream != "" {
		return fmt.Sprintf("%s/%s@%s", l.Stream, l.Shard, l.Sequence)
	}
	if l.Line > 0 {
		return fmt.Sprintf("%s:%d", l.File, l.Line)
	}
	return l.File
}

// Error is one classified error record, as archived under
// errors/<class>/date=YYYY-MM-DD/ in JSON Lines.
type Error struct {
	Kind    Kind      `json:"-"`
	Tenant  string    `json:"tenant,omitempty"`
	Stage   string    `json:"stage"`
	Message string    `json:"message"`
	Raw     []byte    `json:"-"`
	RawSize int       `json:"-"` // size of the original; Raw may keep only a prefix of an oversized record
	Source  Lineage   `json:"source"`
	Time    time.Time `json:"time"`
	// Events is how many input events this record stands for (at least 1):
	// a record whose events array could not be read is one error for one event.
	Events int `json:"events"`
}

// Class is the class of the error's kind.
func (e *Error) Class() Class { return e.Kind.Class() }

// Error makes *Error an error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Kind, e.Message, e.Source)
}

// Event is one staged event: the output of stage 1 and the unit of the
// staged archive, the nearline table and the lake.
type Event struct {
	ID          string // deterministic: same tenant, metric, time and content ⇒ same ID
	Tenant      string
	Metric      string // canonical metric name
	MetricAlias string // the metric-type value the device sent
	Timestamp   int64  // UTC epoch milliseconds
	// Fields holds the known fields by canonical name with values of their
	// declared type: bool, int64 (long and timestamp millis), float64,
	// string, []byte, or nil for a JSON null.
	Fields map[string]any
	// Unknown holds every field the schema does not type (unknown names,
	// hidden fields and values that could not be cast), as the raw JSON
	// text the device sent, under the name the device used.
	Unknown       map[string]string
	SchemaVersion int
	IngestTime    int64 // UTC epoch milliseconds
	Source        Lineage
}

// AddUnknown keeps a field the schema does not type, as raw JSON text.
func (e *Event) AddUnknown(name string, raw []byte) {
	if e.Unknown == nil {
		e.Unknown = make(map[string]string, 4)
	}
	e.Unknown[name] = string(raw)
}

// ValueKind says which type a Value holds.
type ValueKind uint8

const (
	NullValue ValueKind = iota
	BoolValue
	LongValue // long, and timestamp millis
	DoubleValue
	StringValue
	BytesValue
)

// Value is one typed field value held without an interface: the same
// values Event.Fields holds boxed (nil, bool, int64, float64, string,
// []byte). Stage 1 builds and encodes events as Values, because boxing
// each cast value and filling a map per event were a fifth of its CPU.
type Value struct {
	Kind  ValueKind
	Int   int64 // LongValue; BoolValue as 0 or 1
	Float float64
	Str   string
	Bytes []byte
}

// Any returns v as Event.Fields holds it.
func (v Value) Any() any {
	switch v.Kind {
	case BoolValue:
		return v.Int != 0
	case LongValue:
		return v.Int
	case DoubleValue:
		return v.Float
	case StringValue:
		return v.Str
	case BytesValue:
		return v.Bytes
	}
	return nil
}

// ValueOf returns x (a value of Event.Fields) as a Value; ok is false for
// a type Event.Fields does not hold.
func ValueOf(x any) (v Value, ok bool) {
	switch x := x.(type) {
	case nil:
		return Value{}, true
	case bool:
		v = Value{Kind: BoolValue}
		if x {
			v.Int = 1
		}
		return v, true
	case int64:
		return Value{Kind: LongValue, Int: x}, true
	case float64:
		return Value{Kind: DoubleValue, Float: x}, true
	case string:
		return Value{Kind: StringValue, Str: x}, true
	case []byte:
		return Value{Kind: BytesValue, Bytes: x}, true
	}
	return Value{}, false
}

// Field is a known field of an event: canonical name and typed value.
type Field struct {
	Name  string
	Value Value
}

// RawField is an unknown field of an event: the device's name and the raw
// JSON text it sent.
type RawField struct {
	Name string
	Raw  []byte
}

// SortFields sorts fields by name, the order they are encoded and hashed in.
func SortFields(f []Field) {
	slices.SortFunc(f, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
}

// SortRawFields sorts unknown fields by name, keeping the order of fields
// of one name.
func SortRawFields(f []RawField) {
	slices.SortStableFunc(f, func(a, b RawField) int { return strings.Compare(a.Name, b.Name) })
}

// Chunk is a batch of consecutive raw lines of one input file: the element
// that carries batch-ingest input through the pipeline.
type Chunk struct {
	File      string // the input's location
	FirstLine int64  // 1-based line number of the first line in Data
	Lines     int64  // how many lines Data holds
	Data      []byte // the lines, each ended by '\n'
	// Oversize lists lines over the size limit, in place of their bytes.
	Oversize []OversizeLine
}

// OversizeLine stands for a line that was too large to carry.
type OversizeLine struct {
	Line   int64
	Size   int64  // bytes read, its line terminator included
	Length int64  // the line's own bytes, without "\n" or "\r\n": what the limit applies to
	Prefix []byte // the first bytes of the line, kept for the error record
}
