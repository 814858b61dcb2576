// Package dynamodbio holds Fineo's DynamoDB nearline table: its key layout
// (defined once, for streaming writes and for backup/restore), the mapping of
// staged events to items, a batch writer that retries throttling and never
// drops an item silently, time-range queries, and fast-restore backups.
//
// Key layout (one table, on-demand billing):
//
//	pk (S, HASH)  "<tenant>#<metric>#<bucket start, epoch millis>"
//	sk (S, RANGE) "<event time, epoch millis, 13 digits zero-padded>#<event id>"
//
// The time bucket (default one hour) spreads one busy metric over many
// partitions; a query by tenant, metric and time range visits the buckets
// that overlap the range and never scans. Within a bucket items sort by
// event time. The event id makes the key deterministic: a replayed event
// overwrites itself, and two events with the same timestamp never collide.
package dynamodbio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/fineo-io/ingest/internal/awsconf"
	"github.com/fineo-io/ingest/internal/backoff"
	"github.com/fineo-io/ingest/records"
)

// Attribute names of the nearline table.
const (
	AttrPK            = "pk"
	AttrSK            = "sk"
	AttrTenant        = "tenant"
	AttrMetric        = "metric"
	AttrMetricAlias   = "metric_alias"
	AttrTimestamp     = "ts"
	AttrEventID       = "event_id"
	AttrSchemaVersion = "schema_version"
	AttrIngestTime    = "ingest_time"
	AttrFields        = "fields"
	AttrUnknown       = "unknown_fields"
	AttrSource        = "source"
	// AttrExpiresAt is the TTL attribute: epoch seconds.
	AttrExpiresAt = "expires_at"
)

// Defaults of the layout.
const (
	DefaultBucket    = time.Hour
	DefaultRetention = 30 * 24 * time.Hour
)

// PartitionKey returns the partition key of an event of tenant and metric at
// tsMillis: "<tenant>#<metric>#<bucket start in epoch millis>". A bucket of 0
// or less means DefaultBucket. Buckets are aligned to the Unix epoch.
func PartitionKey(tenant, metric string, tsMillis int64, bucket time.Duration) string {
	return tenant + "#" + metric + "#" + strconv.FormatInt(BucketStart(tsMillis, bucket), 10)
}

// BucketStart returns the start, in epoch millis, of the time bucket holding
// tsMillis.
func BucketStart(tsMillis int64, bucket time.Duration) int64 {
	b := bucketMillis(bucket)
	s := tsMillis / b * b
	if tsMillis < 0 && s != tsMillis {
		s -= b // floor, not truncation
	}
	return s
}

func bucketMillis(bucket time.Duration) int64 {
	if bucket <= 0 {
		bucket = DefaultBucket
	}
	b := bucket.Milliseconds()
	if b < 1 {
		b = 1
	}
	return b
}

// SortKey returns the sort key of an event: its time as 13 zero-padded
// digits of epoch millis (good until the year 2286), "#", its event id.
func SortKey(tsMillis int64, eventID string) string {
	return fmt.Sprintf("%013d#%s", tsMillis, eventID)
}

// ItemOptions says how events become items. The zero value uses
// DefaultBucket and DefaultRetention.
type ItemOptions struct {
	// Bucket is the partition time bucket; it must match what queries use.
	Bucket time.Duration
	// Retention is how long after its event time an item expires (the TTL
	// attribute expires_at). Negative: items carry no TTL attribute.
	Retention time.Duration
	// Overflow is the store (a directory or s3://bucket/prefix) where an
	// event too large for an item even compressed is kept, the item naming
	// it (WriteBlock). Empty: such an event fails to write.
	Overflow string
}

// Item returns the nearline item of a staged event.
//
// Field values map to DynamoDB types: bool→BOOL, int64 and float64→N,
// string→S, []byte→B, nil→NULL (other integer types→N). DynamoDB cannot
// store NaN or ±Inf as numbers, so those are stored as S ("NaN", "+Inf",
// "-Inf"). Numbers outside DynamoDB's range (magnitude over 9.99e125 or under
// 1e-130) are rejected by the service; WriteItems then returns that item as a
// FailedItem.
func Item(ev *records.Event, o ItemOptions) map[string]types.AttributeValue {
	item := make(map[string]types.AttributeValue, 14)
	item[AttrPK] = s(PartitionKey(ev.Tenant, ev.Metric, ev.Timestamp, o.Bucket))
	item[AttrSK] = s(SortKey(ev.Timestamp, ev.ID))
	item[AttrTenant] = s(ev.Tenant)
	item[AttrMetric] = s(ev.Metric)
	item[AttrMetricAlias] = s(ev.MetricAlias)
	item[AttrTimestamp] = n(ev.Timestamp)
	item[AttrEventID] = s(ev.ID)
	item[AttrSchemaVersion] = n(int64(ev.SchemaVersion))
	item[AttrIngestTime] = n(ev.IngestTime)
	fields := make(map[string]types.AttributeValue, len(ev.Fields))
	for k, v := range ev.Fields {
		fields[k] = fieldValue(v)
	}
	item[AttrFields] = &types.AttributeValueMemberM{Value: fields}
	unknown := make(map[string]types.AttributeValue, len(ev.Unknown))
	for k, v := range ev.Unknown {
		unknown[k] = s(v)
	}
	item[AttrUnknown] = &types.AttributeValueMemberM{Value: unknown}
	item[AttrSource] = &types.AttributeValueMemberM{Value: sourceValue(ev.Source)}
	retention := o.Retention
	if retention == 0 {
		retention = DefaultRetention
	}
	if retention > 0 {
		item[AttrExpiresAt] = n(floorDiv(ev.Timestamp, 1000) + int64(retention/time.Second))
	}
	return item
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func fieldValue(v any) types.AttributeValue {
	switch x := v.(type) {
	case nil:
		return &types.AttributeValueMemberNULL{Value: true}
	case bool:
		return &types.AttributeValueMemberBOOL{Value: x}
	case int64:
		return n(x)
	case int:
		return n(int64(x))
	case int32:
		return n(int64(x))
	case uint32:
		return n(int64(x))
	case uint64:
		return &types.AttributeValueMemberN{Value: strconv.FormatUint(x, 10)}
	case float32:
		return floatValue(float64(x))
	case float64:
		return floatValue(x)
	case string:
		return s(x)
	case []byte:
		b := x
		if b == nil {
			b = []byte{}
		}
		return &types.AttributeValueMemberB{Value: b}
	default:
		// Not a type stage 1 produces; keep its text rather than lose it.
		return s(fmt.Sprint(x))
	}
}

func floatValue(f float64) types.AttributeValue {
	switch {
	case math.IsNaN(f):
		return s("NaN")
	case math.IsInf(f, 1):
		return s("+Inf")
	case math.IsInf(f, -1):
		return s("-Inf")
	}
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'g', -1, 64)}
}

func sourceValue(l records.Lineage) map[string]types.AttributeValue {
	m := make(map[string]types.AttributeValue, 4)
	if l.File != "" {
		m["file"] = s(l.File)
	}
	if l.Line != 0 {
		m["line"] = n(l.Line)
	}
	if l.Stream != "" {
		m["stream"] = s(l.Stream)
	}
	if l.Shard != "" {
		m["shard"] = s(l.Shard)
	}
	if l.Sequence != "" {
		m["sequence"] = s(l.Sequence)
	}
	if l.Index != 0 {
		m["index"] = n(int64(l.Index))
	}
	return m
}

// EventFromItem is the inverse of Item. Numbers come back as int64 when
// their text is integral and fits, else as float64: DynamoDB normalises
// numbers ("3.0" is stored as "3"), so an integral float64 field comes back
// as int64 — the tenant schema says which type a field has.
//
// A compact item (see AttrStaged) is read from its staged record; an
// overflow item must have been loaded first (Layout.Query does it).
func EventFromItem(item map[string]types.AttributeValue) (*records.Event, error) {
	if z, ok := item[AttrStaged].(*types.AttributeValueMemberB); ok {
		return eventFromStaged(item, z.Value)
	}
	if _, ok := item[AttrOverflowPath]; ok {
		return nil, fmt.Errorf("dynamodbio: item of event in the overflow store was not loaded")
	}
	ev := &records.Event{}
	var err error
	// lookup returns the attribute, or nil when it is absent (an error
	// when required) or an earlier attribute failed.
	lookup := func(name string, required bool) types.AttributeValue {
		if err != nil {
			return nil
		}
		av, ok := item[name]
		if !ok && required {
			err = fmt.Errorf("dynamodbio: item has no %q attribute", name)
		}
		return av
	}
	str := func(name string, dst *string, required bool) {
		av := lookup(name, required)
		if av == nil {
			return
		}
		v, ok := av.(*types.AttributeValueMemberS)
		if !ok {
			err = fmt.Errorf("dynamodbio: attribute %q is %s, want S", name, typeName(av))
			return
		}
		*dst = v.Value
	}
	num := func(name string, dst *int64, required bool) {
		av := lookup(name, required)
		if av == nil {
			return
		}
		v, ok := av.(*types.AttributeValueMemberN)
		if !ok {
			err = fmt.Errorf("dynamodbio: attribute %q is %s, want N", name, typeName(av))
			return
		}
		*dst, err = strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			err = fmt.Errorf("dynamodbio: attribute %q: %w", name, err)
		}
	}
	var sv int64
	str(AttrTenant, &ev.Tenant, true)
	str(AttrMetric, &ev.Metric, true)
	str(AttrMetricAlias, &ev.MetricAlias, false)
	str(AttrEventID, &ev.ID, true)
	num(AttrTimestamp, &ev.Timestamp, true)
	num(AttrSchemaVersion, &sv, false)
	num(AttrIngestTime, &ev.IngestTime, false)
	if err != nil {
		return nil, err
	}
	ev.SchemaVersion = int(sv)

	if m, err := mapAttr(item, AttrFields); err != nil {
		return nil, err
	} else if len(m) > 0 {
		ev.Fields = make(map[string]any, len(m))
		for k, av := range m {
			v, err := fieldFromValue(av)
			if err != nil {
				return nil, fmt.Errorf("dynamodbio: field %q: %w", k, err)
			}
			ev.Fields[k] = v
		}
	}
	if m, err := mapAttr(item, AttrUnknown); err != nil {
		return nil, err
	} else if len(m) > 0 {
		ev.Unknown = make(map[string]string, len(m))
		for k, av := range m {
			v, ok := av.(*types.AttributeValueMemberS)
			if !ok {
				return nil, fmt.Errorf("dynamodbio: unknown field %q is %s, want S", k, typeName(av))
			}
			ev.Unknown[k] = v.Value
		}
	}
	m, err := mapAttr(item, AttrSource)
	if err != nil {
		return nil, err
	}
	for k, av := range m {
		switch v := av.(type) {
		case *types.AttributeValueMemberS:
			switch k {
			case "file":
				ev.Source.File = v.Value
			case "stream":
				ev.Source.Stream = v.Value
			case "shard":
				ev.Source.Shard = v.Value
			case "sequence":
				ev.Source.Sequence = v.Value
			}
		case *types.AttributeValueMemberN:
			i, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("dynamodbio: source %q: %w", k, err)
			}
			switch k {
			case "line":
				ev.Source.Line = i
			case "index":
				ev.Source.Index = int(i)
			}
		}
	}
	return ev, nil
}

func mapAttr(item map[string]types.AttributeValue, name string) (map[string]types.AttributeValue, error) {
	av, ok := item[name]
	if !ok {
		return nil, nil
	}
	m, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return nil, fmt.Errorf("dynamodbio: attribute %q is %s, want M", name, typeName(av))
	}
	return m.Value, nil
}

func fieldFromValue(av types.AttributeValue) (any, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberNULL:
		return nil, nil
	case *types.AttributeValueMemberBOOL:
		return v.Value, nil
	case *types.AttributeValueMemberS:
		return v.Value, nil
	case *types.AttributeValueMemberB:
		return v.Value, nil
	case *types.AttributeValueMemberN:
		return parseNumber(v.Value)
	}
	return nil, fmt.Errorf("unsupported type %s", typeName(av))
}

func parseNumber(t string) (any, error) {
	if !strings.ContainsAny(t, ".eE") {
		if i, err := strconv.ParseInt(t, 10, 64); err == nil {
			return i, nil
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return nil, fmt.Errorf("bad number %q: %w", t, err)
	}
	return f, nil
}

func typeName(av types.AttributeValue) string {
	switch av.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case nil:
		return "nil"
	}
	return fmt.Sprintf("%T", av)
}

// API is the part of the DynamoDB client this package uses. *dynamodb.Client
// implements it; tests wrap a real client to inject faults.
type API interface {
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	// GetItem and PutItem read and write the table's layout records.
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// NewClient returns a DynamoDB client from the standard AWS configuration
// (environment, profile, instance role); the endpoint comes from
// AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL when set. The region defaults
// to us-east-1. The SDK's own retries stay on (standard mode), but without
// its client-side retry quota: under sustained throttling that quota turns
// throttles into "failed to get rate limit token" errors, and WriteItems
// does its own backoff.
func NewClient(ctx context.Context) (*dynamodb.Client, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("dynamodbio: %w", err)
	}
	return dynamodb.NewFromConfig(cfg), nil
}

// TableReport says what EnsureTable found and did.
type TableReport struct {
	Table   string
	Created bool   // false: the table existed already
	Status  string // the table status at the end (ACTIVE)
	// TTL describes the TTL setting: "enabled on expires_at",
	// "already enabled on expires_at", or why it is not enabled.
	TTL        string
	TTLEnabled bool
	// Layout is the table's key layout as recorded.
	Layout *Layout
}

// CreateTable makes sure the nearline table exists and is ACTIVE, that
// TTL is enabled on expires_at, and that its key layout is recorded
// (InitLayout with lo). It is idempotent. Where the service does not
// support TTL (dynalite), that is logged and is not an error.
func CreateTable(ctx context.Context, api API, table string, lo LayoutOptions) error {
	rep, err := EnsureTable(ctx, api, table, lo)
	if err != nil {
		return err
	}
	if !rep.TTLEnabled {
		slog.WarnContext(ctx, "dynamodbio: TTL not enabled", "table", table, "ttl", rep.TTL)
	}
	return nil
}

// EnsureTable is CreateTable returning what it did.
func EnsureTable(ctx context.Context, api API, table string, lo LayoutOptions) (TableReport, error) {
	rep := TableReport{Table: table}
	desc, created, err := ensureTable(ctx, api, table)
	if err != nil {
		return rep, err
	}
	rep.Created = created
	rep.Status = string(desc.TableStatus)
	if rep.Layout, err = InitLayout(ctx, api, table, lo); err != nil {
		return rep, err
	}

	ttl, err := api.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		if isUnknownOperation(err) {
			rep.TTL = "not supported by this service (DescribeTimeToLive: " + errorCode(err) + "); items carry expires_at but will not expire"
			return rep, nil
		}
		return rep, fmt.Errorf("dynamodbio: describe TTL of %s: %w", table, err)
	}
	if d := ttl.TimeToLiveDescription; d != nil {
		switch d.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			if aws.ToString(d.AttributeName) != AttrExpiresAt {
				return rep, fmt.Errorf("dynamodbio: table %s has TTL on %q, want %q", table, aws.ToString(d.AttributeName), AttrExpiresAt)
			}
			rep.TTL = "already " + strings.ToLower(string(d.TimeToLiveStatus)) + " on " + AttrExpiresAt
			rep.TTLEnabled = true
			return rep, nil
		case types.TimeToLiveStatusDisabling:
			rep.TTL = "being disabled right now; run again later to enable it on " + AttrExpiresAt
			return rep, nil
		}
	}
	_, err = api.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(AttrExpiresAt),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		if isUnknownOperation(err) {
			rep.TTL = "not supported by this service (UpdateTimeToLive: " + errorCode(err) + "); items carry expires_at but will not expire"
			return rep, nil
		}
		return rep, fmt.Errorf("dynamodbio: enable TTL on %s: %w", table, err)
	}
	rep.TTL = "enabled on " + AttrExpiresAt
	rep.TTLEnabled = true
	return rep, nil
}

// ensureTable makes sure table exists with the (pk, sk) key schema and is
// ACTIVE: DescribeTable first, so that a job whose role may not create
// tables runs against an existing one; CreateTable (on-demand) only when it
// is missing.
func ensureTable(ctx context.Context, api API, table string) (desc *types.TableDescription, created bool, err error) {
	_, err = api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var missing *types.ResourceNotFoundException
	if errors.As(err, &missing) {
		_, err = api.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName: aws.String(table),
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(AttrSK), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
			},
			BillingMode: types.BillingModePayPerRequest,
		})
		var inUse *types.ResourceInUseException
		switch {
		case err == nil:
			created = true
		case errors.As(err, &inUse): // created meanwhile
			err = nil
		default:
			return nil, false, fmt.Errorf("dynamodbio: create table %s: %w", table, err)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("dynamodbio: describe table %s: %w", table, err)
	}
	desc, err = waitActive(ctx, api, table)
	if err != nil {
		return nil, created, err
	}
	if err := checkKeySchema(desc); err != nil {
		return nil, created, fmt.Errorf("dynamodbio: table %s: %w", table, err)
	}
	return desc, created, nil
}

func checkKeySchema(desc *types.TableDescription) error {
	var hash, rng string
	for _, k := range desc.KeySchema {
		switch k.KeyType {
		case types.KeyTypeHash:
			hash = aws.ToString(k.AttributeName)
		case types.KeyTypeRange:
			rng = aws.ToString(k.AttributeName)
		}
	}
	if hash != AttrPK || rng != AttrSK {
		return fmt.Errorf("key schema is (%q, %q), want (%q, %q)", hash, rng, AttrPK, AttrSK)
	}
	return nil
}

// waitActive polls DescribeTable until the table is ACTIVE.
func waitActive(ctx context.Context, api API, table string) (*types.TableDescription, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var nf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			// Just created; not visible yet (eventual consistency).
		case err != nil:
			return nil, fmt.Errorf("dynamodbio: describe table %s: %w", table, err)
		case out.Table != nil && out.Table.TableStatus == types.TableStatusActive:
			return out.Table, nil
		case out.Table != nil && out.Table.TableStatus != types.TableStatusCreating && out.Table.TableStatus != types.TableStatusUpdating:
			return nil, fmt.Errorf("dynamodbio: table %s is %s", table, out.Table.TableStatus)
		}
		if err := backoff.Sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("dynamodbio: waiting for table %s to be ACTIVE: %w", table, err)
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func isUnknownOperation(err error) bool {
	switch errorCode(err) {
	case "UnknownOperationException", "UnknownOperation", "NotImplemented", "InvalidAction":
		return true
	}
	return false
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
