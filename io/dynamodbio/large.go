package dynamodbio

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/zstd"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/records"
)

// ItemLimit is DynamoDB's largest item: 400 KB, attribute names included.
const ItemLimit = 400 << 10

// compactAbove is the estimated size over which an item is made compact:
// ItemSize's estimate errs on the large side, and the margin covers the
// rest.
const compactAbove = ItemLimit - 16<<10

// Attributes of large items. A compact item keeps its keys and scalar
// attributes and holds the event as its staged Avro record (as the staged
// archive has it), zstd-compressed, in place of fields, unknown_fields and
// source. Where even that is over the limit, the compressed record is a file
// of the overflow store (the streaming job's archive root) under
// nearline/tenant=<tenant>/<event id>.avro.zst, and the item names it.
const (
	AttrStaged       = "staged"        // B
	AttrOverflowRoot = "overflow_root" // S: the store, a directory or s3://bucket/prefix
	AttrOverflowPath = "overflow_path" // S: the file's path in it
)

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	// A staged record is at most a 10 MiB line's worth of fields.
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(64<<20))
)

// ItemSize estimates the size DynamoDB counts for item (and bills in
// write units of 1 KB): every attribute's name and value; a number as its
// digits (DynamoDB stores about half of that), a map or list with 3 bytes of
// its own and 1 per element. The estimate is never below DynamoDB's.
func ItemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(av types.AttributeValue) int {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return len(v.Value) + 1
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberSS:
		n := 0
		for _, e := range v.Value {
			n += len(e)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, e := range v.Value {
			n += len(e) + 1
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, e := range v.Value {
			n += len(e)
		}
		return n
	}
	return 0
}

// stores opens overflow stores once per root.
type stores struct {
	mu sync.Mutex
	m  map[string]blob.Store
}

func (c *stores) open(ctx context.Context, root string) (blob.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[root]; ok {
		return st, nil
	}
	st, err := blob.Open(ctx, root)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]blob.Store{}
	}
	c.m[root] = st
	return st, nil
}

// OverflowDir is the folder of the overflow store (the archive root, for
// the streaming job) that holds large events' records.
const OverflowDir = "nearline"

// overflowPath is where an event's compressed record goes in the overflow
// store; the event id names it, so a rewrite replaces it.
func overflowPath(tenant, id string) string {
	return OverflowDir + "/tenant=" + tenant + "/" + id + ".avro.zst"
}

// fit makes item fit DynamoDB's limit: unchanged when it does; else compact
// (the event's staged record compressed in place of its maps); else the
// compressed record in the overflow store at root and the item naming it.
// An event that fits nowhere (no root) is an error naming its size.
func (c *stores) fit(ctx context.Context, item map[string]types.AttributeValue, ev *records.Event, root string) error {
	size := ItemSize(item)
	if size <= compactAbove {
		return nil
	}
	rec, err := archive.AppendEvent(nil, ev)
	if err != nil {
		return fmt.Errorf("item of %d bytes: encoding its staged record: %w", size, err)
	}
	z := zenc.EncodeAll(rec, nil)
	delete(item, AttrFields)
	delete(item, AttrUnknown)
	delete(item, AttrSource)
	if ItemSize(item)+len(AttrStaged)+len(z) <= compactAbove {
		item[AttrStaged] = &types.AttributeValueMemberB{Value: z}
		return nil
	}
	if root == "" {
		return fmt.Errorf("item of %d bytes is over DynamoDB's %d even compressed (%d bytes), and no overflow store is set (the stream's --archive)", size, ItemLimit, len(z))
	}
	st, err := c.open(ctx, root)
	if err != nil {
		return fmt.Errorf("item of %d bytes: overflow store: %w", size, err)
	}
	path := overflowPath(ev.Tenant, ev.ID)
	w, err := st.Create(ctx, path)
	if err != nil {
		return fmt.Errorf("item of %d bytes: overflow %s: %w", size, st.URL(path), err)
	}
	defer w.Abort()
	if _, err := w.Write(z); err != nil {
		return fmt.Errorf("item of %d bytes: overflow %s: %w", size, st.URL(path), err)
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("item of %d bytes: overflow %s: %w", size, st.URL(path), err)
	}
	item[AttrOverflowRoot] = s(root)
	item[AttrOverflowPath] = s(path)
	return nil
}

// load brings an overflow item's record into the item (as AttrStaged), so
// that EventFromItem reads it. The file must be the one of the item's own
// tenant and event id: an item cannot make a reader open another tenant's
// files.
func (c *stores) load(ctx context.Context, item map[string]types.AttributeValue) error {
	root, ok1 := item[AttrOverflowRoot].(*types.AttributeValueMemberS)
	path, ok2 := item[AttrOverflowPath].(*types.AttributeValueMemberS)
	if !ok1 && !ok2 {
		return nil
	}
	tenant, _ := item[AttrTenant].(*types.AttributeValueMemberS)
	id, _ := item[AttrEventID].(*types.AttributeValueMemberS)
	if !ok1 || !ok2 || tenant == nil || id == nil || path.Value != overflowPath(tenant.Value, id.Value) {
		return fmt.Errorf("dynamodbio: item's overflow reference is not its own event's file")
	}
	st, err := c.open(ctx, root.Value)
	if err != nil {
		return fmt.Errorf("dynamodbio: overflow store of event %s: %w", id.Value, err)
	}
	z, err := blob.ReadFile(ctx, st, path.Value)
	if err != nil {
		return fmt.Errorf("dynamodbio: overflow of event %s: %w", id.Value, err)
	}
	item[AttrStaged] = &types.AttributeValueMemberB{Value: z}
	return nil
}

// eventFromStaged decodes a compact item's record and checks that it is the
// item's own event.
func eventFromStaged(item map[string]types.AttributeValue, z []byte) (*records.Event, error) {
	rec, err := zdec.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("dynamodbio: compact item: %w", err)
	}
	ev, rest, err := archive.DecodeEvent(rec)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d bytes after the record", len(rest))
	}
	if err != nil {
		return nil, fmt.Errorf("dynamodbio: compact item: %w", err)
	}
	tenant, _ := item[AttrTenant].(*types.AttributeValueMemberS)
	id, _ := item[AttrEventID].(*types.AttributeValueMemberS)
	if tenant == nil || id == nil || tenant.Value != ev.Tenant || id.Value != ev.ID {
		return nil, fmt.Errorf("dynamodbio: compact item's record is event %s of tenant %s, not the item's", ev.ID, ev.Tenant)
	}
	return ev, nil
}
