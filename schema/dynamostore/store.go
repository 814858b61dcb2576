// Package dynamostore is the DynamoDB-backed [schema.Store]. Importing it
// registers the "dynamodb" scheme, so that schema.OpenStore (and every
// --schemas flag) accepts "dynamodb://TABLE"; cmd/fineo imports it.
//
// # Table
//
// One item per tenant version, on-demand billing:
//
//	tenant     (S, HASH)   the tenant id
//	version    (N, RANGE)  1, 2, ...
//	schema     (S)         that version as JSON, the form schema.Parse reads
//	updated_at (S)         RFC 3339, for people browsing the table
//
// Versions are never overwritten: Apply reads the current version, applies
// the rules of schema.Prepare and writes version current+1 on the condition
// that no item has that key. Of two concurrent Apply calls that computed the
// same number exactly one is recorded; the other fails with ErrConflict
// ("version N of T was recorded concurrently; apply again"), as DirStore
// does. Apply creates the table when it is missing (EnsureTable); the read
// methods never create it and report a missing table as an error, so that
// readers need no CreateTable permission and a mistyped name creates
// nothing.
//
// # Reads, caching and staleness
//
// Every read is strongly consistent. Tenants and Get are served from an
// in-memory snapshot (the latest version of every tenant) taken with one
// consistent, paginated Scan of the table. The first call after the snapshot
// is RefreshInterval old (default 30s) takes a new one, so a long-running
// job sees a version applied by another process at most RefreshInterval
// after it was applied (at its next call after that), without restarting.
// Meanwhile Get keeps returning the previous version, and a tenant created
// elsewhere is reported as not found. A version applied through this Store
// is visible to it at once. History, Plan and Apply always read the table.
// When a refresh fails the error is returned and the next call tries again;
// the stale snapshot is not served in its place.
//
// A refresh reads the whole table: its cost in read units is the table's
// size in 4 KB units, once per RefreshInterval per process that reads.
//
// A Store is safe for concurrent use; concurrent callers that find the
// snapshot expired share one Scan.
package dynamostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/fineo-io/ingest/internal/awsconf"
	"github.com/fineo-io/ingest/schema"
)

// Scheme is the store scheme this package registers: "dynamodb://TABLE".
const Scheme = "dynamodb"

// Attribute names of the schema table.
const (
	AttrTenant    = "tenant"
	AttrVersion   = "version"
	AttrSchema    = "schema"
	AttrUpdatedAt = "updated_at"
)

// DefaultRefreshInterval is how long Tenants and Get serve a snapshot when
// Options.RefreshInterval is zero.
const DefaultRefreshInterval = 30 * time.Second

// MaxSchemaBytes is the largest schema (as JSON) the store records; a
// DynamoDB item holds at most 400 KB.
const MaxSchemaBytes = 380 << 10

// ErrConflict is wrapped by the error of an Apply whose version was recorded
// concurrently by another Apply. Applying again builds on that version.
var ErrConflict = errors.New("recorded concurrently")

// API is the part of the DynamoDB client the store uses. *dynamodb.Client
// implements it; tests wrap a real client to count or delay calls.
type API interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// RefreshInterval is how long Tenants and Get serve one snapshot of the
	// table. Zero means DefaultRefreshInterval; negative means every call
	// reads the table.
	RefreshInterval time.Duration
	// Now is the clock of the snapshot's age and of the UpdatedAt of applied
	// versions. Nil means time.Now.
	Now func() time.Time
}

// Store is a schema.Store (and schema.Planner) over one DynamoDB table.
type Store struct {
	api      API
	table    string
	interval time.Duration
	now      func() time.Time

	refresh chan struct{} // one slot, held by the caller taking a snapshot

	mu   sync.Mutex
	snap *snapshot // nil until the first read
	gen  uint64    // counts the versions this Store recorded
}

var (
	_ schema.Store   = (*Store)(nil)
	_ schema.Planner = (*Store)(nil)
)

func init() {
	schema.RegisterScheme(Scheme, func(ctx context.Context, spec string) (schema.Store, error) {
		table, err := ParseSpec(spec)
		if err != nil {
			return nil, err
		}
		return Open(ctx, table, Options{})
	})
}

var tableNameRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// ParseSpec returns the table named by "dynamodb://TABLE".
func ParseSpec(spec string) (string, error) {
	table, ok := strings.CutPrefix(spec, Scheme+"://")
	if !ok {
		return "", fmt.Errorf("schema: store %q: want %s://TABLE", spec, Scheme)
	}
	if !tableNameRe.MatchString(table) {
		return "", fmt.Errorf("schema: store %q: %q is not a DynamoDB table name (3-255 characters of a-z, A-Z, 0-9, '_', '-', '.')", spec, table)
	}
	return table, nil
}

// New returns a store over table through api. It does not touch the table.
func New(api API, table string, o Options) *Store {
	s := &Store{api: api, table: table, interval: o.RefreshInterval, now: o.Now, refresh: make(chan struct{}, 1)}
	if s.interval == 0 {
		s.interval = DefaultRefreshInterval
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Open returns a store over table with a client from the standard AWS
// configuration (see internal/awsconf; the endpoint comes from
// AWS_ENDPOINT_URL_DYNAMODB when set). It does not touch the table.
func Open(ctx context.Context, table string, o Options) (*Store, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return New(dynamodb.NewFromConfig(cfg), table, o), nil
}

// Table returns the name of the store's table.
func (s *Store) Table() string { return s.table }

// Tenants lists the tenants with a recorded version, from the snapshot.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	snap, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Clone(snap.tenants), nil
}

// Get returns the latest version of tenant in the snapshot.
func (s *Store) Get(ctx context.Context, tenant string) (*schema.Tenant, error) {
	if err := validateTenant(tenant); err != nil {
		return nil, err
	}
	snap, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := snap.latest[tenant]
	if !ok {
		return nil, notFound(tenant)
	}
	return t.Clone(), nil
}

// History returns every version of tenant, oldest first, read from the table.
func (s *Store) History(ctx context.Context, tenant string) ([]*schema.Tenant, error) {
	if err := validateTenant(tenant); err != nil {
		return nil, err
	}
	var out []*schema.Tenant
	p := dynamodb.NewQueryPaginator(s.api, s.tenantQuery(tenant))
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.readError(err)
		}
		for _, item := range page.Items {
			t, err := s.decode(item)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, notFound(tenant)
	}
	return out, nil
}

// Plan returns what Apply would record and report, without writing. A
// missing table counts as an empty store.
func (s *Store) Plan(ctx context.Context, t *schema.Tenant) (*schema.Tenant, []schema.Change, error) {
	_, next, changes, err := s.prepare(ctx, t)
	return next, changes, err
}

// prepare reads the current version of t's tenant (nil if none) and returns
// it with the result of schema.Prepare.
func (s *Store) prepare(ctx context.Context, t *schema.Tenant) (cur, next *schema.Tenant, changes []schema.Change, err error) {
	if err := validateTenant(t.Tenant); err != nil {
		return nil, nil, nil, err
	}
	if cur, err = s.latest(ctx, t.Tenant); err != nil {
		return nil, nil, nil, err
	}
	next, changes, err = schema.Prepare(cur, t, s.now())
	return cur, next, changes, err
}

// Apply records t as the tenant's next version (see schema.Prepare),
// creating the table first if it is missing. When another Apply recorded
// that version number first, the error wraps ErrConflict and nothing is
// recorded.
func (s *Store) Apply(ctx context.Context, t *schema.Tenant) (*schema.Tenant, []schema.Change, error) {
	cur, next, changes, err := s.prepare(ctx, t)
	if err != nil || next == cur {
		return next, changes, err // invalid, or nothing changed
	}
	item, err := encode(next)
	if err != nil {
		return nil, nil, err
	}
	err = s.put(ctx, item)
	if isNotFound(err) {
		if err = s.EnsureTable(ctx); err == nil {
			err = s.put(ctx, item)
		}
	}
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return nil, nil, fmt.Errorf("schema: version %d of %s was %w; apply again", next.Version, next.Tenant, ErrConflict)
	case err != nil:
		return nil, nil, fmt.Errorf("schema: record version %d of %s in DynamoDB table %s: %w", next.Version, next.Tenant, s.table, err)
	}
	s.recorded(next)
	return next, changes, nil
}

// Refresh takes a new snapshot now, whatever the age of the current one.
func (s *Store) Refresh(ctx context.Context) error {
	_, err := s.takeSnapshot(ctx, true)
	return err
}

// tableKey is the key schema of the table.
var tableKey = []struct {
	name string
	typ  types.ScalarAttributeType
	kind types.KeyType
}{
	{AttrTenant, types.ScalarAttributeTypeS, types.KeyTypeHash},
	{AttrVersion, types.ScalarAttributeTypeN, types.KeyTypeRange},
}

// EnsureTable creates the table (on-demand billing) if it does not exist,
// waits until it is ACTIVE and checks its key schema. It is idempotent.
func (s *Store) EnsureTable(ctx context.Context) error {
	in := &dynamodb.CreateTableInput{TableName: aws.String(s.table), BillingMode: types.BillingModePayPerRequest}
	for _, k := range tableKey {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(k.name), AttributeType: k.typ})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(k.name), KeyType: k.kind})
	}
	_, err := s.api.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("schema: create DynamoDB table %s: %w", s.table, err)
	}
	w := dynamodb.NewTableExistsWaiter(s.api, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 2*time.Second
	})
	out, err := w.WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)}, 5*time.Minute)
	if err != nil {
		return fmt.Errorf("schema: waiting for DynamoDB table %s to be ACTIVE: %w", s.table, err)
	}
	return s.checkKeySchema(out.Table)
}

// checkKeySchema refuses a table whose key is not tableKey.
func (s *Store) checkKeySchema(desc *types.TableDescription) error {
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, d := range desc.AttributeDefinitions {
		attrTypes[aws.ToString(d.AttributeName)] = d.AttributeType
	}
	var got, want []string
	for _, k := range desc.KeySchema {
		name := aws.ToString(k.AttributeName)
		got = append(got, fmt.Sprintf("%s %s %s", name, attrTypes[name], k.KeyType))
	}
	for _, k := range tableKey {
		want = append(want, fmt.Sprintf("%s %s %s", k.name, k.typ, k.kind))
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("schema: DynamoDB table %s has the key (%s), want (%s): is it a schema table?",
			s.table, strings.Join(got, ", "), strings.Join(want, ", "))
	}
	return nil
}

// snapshot is the latest version of every tenant, as of taken.
type snapshot struct {
	tenants []string // sorted
	latest  map[string]*schema.Tenant
	expires time.Time
}

// with returns a copy of the snapshot that holds t.
func (sn *snapshot) with(t *schema.Tenant) *snapshot {
	out := &snapshot{tenants: sn.tenants, latest: maps.Clone(sn.latest), expires: sn.expires}
	old, known := sn.latest[t.Tenant]
	if !known {
		out.tenants = append(slices.Clone(sn.tenants), t.Tenant)
		slices.Sort(out.tenants)
	}
	if !known || old.Version < t.Version {
		out.latest[t.Tenant] = t.Clone()
	}
	return out
}

// current returns the snapshot, taking a new one if it expired.
func (s *Store) current(ctx context.Context) (*snapshot, error) {
	if snap := s.fresh(); snap != nil {
		return snap, nil
	}
	return s.takeSnapshot(ctx, false)
}

// fresh returns the snapshot if it has not expired.
func (s *Store) fresh() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap != nil && s.now().Before(s.snap.expires) {
		return s.snap
	}
	return nil
}

// takeSnapshot scans the table, one caller at a time: a caller that waited
// for another's scan uses its result unless force is set.
func (s *Store) takeSnapshot(ctx context.Context, force bool) (*snapshot, error) {
	select {
	case s.refresh <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.refresh }()
	if snap := s.fresh(); snap != nil && !force {
		return snap, nil
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	start := s.now()
	snap, err := s.scan(ctx)
	if err != nil {
		return nil, err
	}
	if s.interval > 0 {
		snap.expires = start.Add(s.interval)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		// This Store recorded a version during the scan, which may have
		// missed it: keep the snapshot expired so the next call scans again.
		snap.expires = time.Time{}
	}
	s.snap = snap
	return snap, nil
}

// scan reads the latest version of every tenant.
func (s *Store) scan(ctx context.Context) (*snapshot, error) {
	type head struct {
		version int
		item    map[string]types.AttributeValue
	}
	heads := map[string]head{}
	p := dynamodb.NewScanPaginator(s.api, &dynamodb.ScanInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.readError(err)
		}
		for _, item := range page.Items {
			tenant, version, err := s.key(item)
			if err != nil {
				return nil, err
			}
			if h, seen := heads[tenant]; !seen || version > h.version {
				heads[tenant] = head{version, item}
			}
		}
	}
	snap := &snapshot{latest: make(map[string]*schema.Tenant, len(heads))}
	for tenant, h := range heads {
		t, err := s.decode(h.item)
		if err != nil {
			return nil, err
		}
		snap.latest[tenant] = t
		snap.tenants = append(snap.tenants, tenant)
	}
	slices.Sort(snap.tenants)
	return snap, nil
}

// recorded adds a version this Store wrote to the snapshot.
func (s *Store) recorded(t *schema.Tenant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if s.snap != nil {
		s.snap = s.snap.with(t)
	}
}

// latest reads the current version of tenant from the table; nil when it
// has none or the table does not exist.
func (s *Store) latest(ctx context.Context, tenant string) (*schema.Tenant, error) {
	in := s.tenantQuery(tenant)
	in.ScanIndexForward = aws.Bool(false)
	in.Limit = aws.Int32(1)
	out, err := s.api.Query(ctx, in)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.readError(err)
	}
	if len(out.Items) == 0 {
		return nil, nil
	}
	return s.decode(out.Items[0])
}

// tenantQuery queries every version of tenant, ascending, consistently.
func (s *Store) tenantQuery(tenant string) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#t = :t"),
		ExpressionAttributeNames:  map[string]string{"#t": AttrTenant},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: tenant}},
		ConsistentRead:            aws.Bool(true),
	}
}

// put writes a version item unless one with its key exists.
func (s *Store) put(ctx context.Context, item map[string]types.AttributeValue) error {
	_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#t)"),
		ExpressionAttributeNames: map[string]string{"#t": AttrTenant},
	})
	return err
}

func (s *Store) readError(err error) error {
	if isNotFound(err) {
		return fmt.Errorf("schema: DynamoDB table %s does not exist (the first `fineo schema apply --schemas %s://%s` creates it): %w", s.table, Scheme, s.table, err)
	}
	return fmt.Errorf("schema: read DynamoDB table %s: %w", s.table, err)
}

func isNotFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// encode returns the item of a version.
func encode(t *schema.Tenant) (map[string]types.AttributeValue, error) {
	doc, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("schema: encode %s: %w", t.Tenant, err)
	}
	if len(doc) > MaxSchemaBytes {
		return nil, fmt.Errorf("schema: tenant %s version %d is %d bytes as JSON; the DynamoDB store holds at most %d", t.Tenant, t.Version, len(doc), MaxSchemaBytes)
	}
	return map[string]types.AttributeValue{
		AttrTenant:    &types.AttributeValueMemberS{Value: t.Tenant},
		AttrVersion:   &types.AttributeValueMemberN{Value: strconv.Itoa(t.Version)},
		AttrSchema:    &types.AttributeValueMemberS{Value: string(doc)},
		AttrUpdatedAt: &types.AttributeValueMemberS{Value: t.UpdatedAt.UTC().Format(time.RFC3339)},
	}, nil
}

// key returns the tenant and version of an item.
func (s *Store) key(item map[string]types.AttributeValue) (string, int, error) {
	tenant, _ := item[AttrTenant].(*types.AttributeValueMemberS)
	version, _ := item[AttrVersion].(*types.AttributeValueMemberN)
	if tenant == nil || version == nil {
		return "", 0, fmt.Errorf("schema: DynamoDB table %s holds an item without a string %q or a number %q: is it a schema table?", s.table, AttrTenant, AttrVersion)
	}
	v, err := strconv.Atoi(version.Value)
	if err != nil || v < 1 {
		return "", 0, fmt.Errorf("schema: DynamoDB table %s: tenant %s has version %q, want 1, 2, ...", s.table, tenant.Value, version.Value)
	}
	return tenant.Value, v, nil
}

// decode returns the version an item holds.
func (s *Store) decode(item map[string]types.AttributeValue) (*schema.Tenant, error) {
	tenant, version, err := s.key(item)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("DynamoDB table %s, tenant %s version %d", s.table, tenant, version)
	doc, _ := item[AttrSchema].(*types.AttributeValueMemberS)
	if doc == nil {
		return nil, fmt.Errorf("schema: %s: no string %q attribute", where, AttrSchema)
	}
	t, err := schema.Parse([]byte(doc.Value))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if t.Tenant != tenant || t.Version != version {
		return nil, fmt.Errorf("schema: %s: holds tenant %q version %d", where, t.Tenant, t.Version)
	}
	if err := t.Validate(); err != nil { // recorded under older rules: names that reach paths
		return nil, fmt.Errorf("%s: %w (apply a corrected version)", where, err)
	}
	return t, nil
}

func validateTenant(id string) error {
	if err := schema.ValidateTenantID(id); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return nil
}

// notFound is the error of a tenant without versions, as DirStore words it.
func notFound(tenant string) error {
	return fmt.Errorf("%w: %q", schema.ErrNotFound, tenant)
}
