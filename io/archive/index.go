package archive

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/fineo-io/ingest/io/blob"
)

// A staged archive file holds its records grouped by (tenant, metric): each
// group is a run of consecutive Avro container blocks, and the file's
// header carries an index of the groups (metadata key IndexKey). A reader
// of one lake partition reads only its groups' byte ranges (one ranged GET
// each on S3), so the batch's unit of work can be a partition instead of a
// whole day without every unit reading every file of the day. The files
// stay coarse (one per staged day per writer flush): the index, not the
// file layout, finds a partition's records.
//
// The index is a JSON object in the header:
//
//	{"v":1,"groups":[{"tenant":"t","metric":"m","off":0,"len":1234,"count":10,"plain":5678}, ...]}
//
// off is relative to the end of the header (the first block's start), len
// spans whole container blocks (sync markers included), plain is the
// records' uncompressed size. Groups are sorted by tenant, then metric.
// Files written before the index (and by other tools) have none; they are
// still read, whole (see PlanFile).
const IndexKey = "fineo.index"

// ErrCorrupt is wrapped by PlanFile's and ReadRange's errors when the
// bytes were read but are not a valid staged file or range: damage that a
// retry cannot mend. Any other error is the store's (a timeout,
// throttling) and worth retrying.
var ErrCorrupt = errors.New("corrupt staged data")

// Group is one (tenant, metric) run of records: a sub-block of a Block, or
// a byte range of a staged file.
type Group struct {
	Tenant string `json:"tenant"`
	Metric string `json:"metric"`
	Off    int64  `json:"off,omitempty"` // in a file: from the end of the header
	Len    int64  `json:"len"`           // in a Block: its compressed length in Data
	Count  int64  `json:"count"`
	Plain  int64  `json:"plain"`
}

type fileIndex struct {
	V      int     `json:"v"`
	Groups []Group `json:"groups"`
}

// subBlock is one group's records as one compressed container block.
type subBlock struct {
	tenant, metric string
	count, plain   int64
	data           []byte // Snappy block data (with its CRC)
}

// subBlocks returns b's records as one compressed block per group, in
// first-seen order: b's own groups when it has them, or its records
// regrouped (a block from the stream or a replay).
func subBlocks(b Block, out []subBlock) ([]subBlock, error) {
	if b.Count == 0 {
		return out, nil
	}
	if len(b.Groups) > 0 {
		data := b.Data
		for _, g := range b.Groups {
			if g.Len > int64(len(data)) {
				return out, errors.New("archive: block groups exceed its data")
			}
			if g.Count == 0 {
				data = data[g.Len:]
				continue // the writer skips empty blocks: so does the index
			}
			out = append(out, subBlock{tenant: g.Tenant, metric: g.Metric, count: g.Count, plain: g.Plain, data: data[:g.Len]})
			data = data[g.Len:]
		}
		return out, nil
	}
	plain, err := b.Plain()
	if err != nil {
		return out, err
	}
	type acc struct {
		tenant, metric string
		count          int64
		buf            []byte
	}
	var groups []*acc
	d := frozenDecoder(plain)
	for i := int64(0); i < b.Count; i++ {
		var s Staged
		if err := d.staged(&s); err != nil {
			return out, fmt.Errorf("archive: staged record %d of block: %w", i, err)
		}
		var a *acc
		for _, g := range groups {
			if g.tenant == s.Tenant && g.metric == s.Metric {
				a = g
				break
			}
		}
		if a == nil {
			a = &acc{tenant: s.Tenant, metric: s.Metric}
			groups = append(groups, a)
		}
		a.buf = append(a.buf, s.rec...)
		a.count++
	}
	for _, a := range groups {
		out = append(out, subBlock{tenant: a.tenant, metric: a.metric, count: a.count, plain: int64(len(a.buf)), data: appendSnappy(nil, a.buf)})
	}
	return out, nil
}

// WriteStagedFile writes blocks of staged records as one indexed staged
// file at path (see IndexKey): committed whole, or not at all.
func WriteStagedFile(ctx context.Context, st blob.Store, path string, blocks []Block) error {
	var subs []subBlock
	for _, b := range blocks {
		var err error
		if subs, err = subBlocks(b, subs); err != nil {
			return err
		}
	}
	slices.SortStableFunc(subs, func(a, b subBlock) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.metric, b.metric))
	})
	var idx fileIndex
	idx.V = 1
	var off int64
	for _, sb := range subs {
		size := int64(varintLen(sb.count)+varintLen(int64(len(sb.data)))+len(sb.data)) + 16
		if n := len(idx.Groups); n > 0 && idx.Groups[n-1].Tenant == sb.tenant && idx.Groups[n-1].Metric == sb.metric {
			g := &idx.Groups[n-1]
			g.Len += size
			g.Count += sb.count
			g.Plain += sb.plain
		} else {
			idx.Groups = append(idx.Groups, Group{Tenant: sb.tenant, Metric: sb.metric, Off: off, Len: size, Count: sb.count, Plain: sb.plain})
		}
		off += size
	}
	meta, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeWhole(ctx, st, path, func(w io.Writer) error {
		o, err := newOCFWriterMeta(w, StagedSchema, meta)
		if err != nil {
			return err
		}
		for _, sb := range subs {
			if err := o.writeBlock(Block{Count: sb.count, Data: sb.data, Snappy: true}); err != nil {
				return err
			}
		}
		return nil
	})
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

// Range is a part of one staged file for one lake partition: the file's
// records of one (tenant, metric), or, for a file without an index, the
// whole file with Filter set (the reader keeps only Tenant and Metric).
type Range struct {
	File           string // path under the archive root
	Tenant, Metric string // staged tenant and metric
	Off, Len       int64  // absolute byte range; Len 0: the whole file
	Sync           string // the file's sync marker, hex (ranges only): a runner's coder keeps text intact
	Count, Plain   int64  // records and their plain bytes (estimates for whole files)
	Filter         bool
}

// headerProbe is how much of a file PlanFile reads first for its header:
// the schema (1.3 KB) and an index of a few dozen groups fit; a larger
// header is read again, 4x larger each time. 64 KiB read half of a
// backfill's small staged files just to plan them (bench/RESULTS.md, B1).
const headerProbe = 8 << 10

// PlanFile returns the ranges of one staged file, one per (tenant, metric)
// it holds. An indexed file costs one small read of its header; a file
// without an index is read whole once to learn its groups, and its ranges
// are the whole file, filtered.
func PlanFile(ctx context.Context, st blob.Store, file string, size int64) ([]Range, error) {
	probe := int64(headerProbe)
	for {
		n := min(probe, size)
		if size <= 0 {
			n = probe
		}
		head, err := st.ReadRange(ctx, file, 0, n)
		if err != nil {
			return nil, err
		}
		h, err := parseHeader(head)
		if errors.Is(err, errShortHeader) && int64(len(head)) == n && (size <= 0 || n < size) {
			probe *= 4 // a header larger than the probe: a file of very many groups
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, file, err)
		}
		raw, ok := h.meta[IndexKey]
		if !ok || h.schema != StagedSchema {
			return planWhole(ctx, st, file)
		}
		var idx fileIndex
		if err := json.Unmarshal(raw, &idx); err != nil || idx.V != 1 {
			return nil, fmt.Errorf("%w: %s: bad %s: %v", ErrCorrupt, file, IndexKey, err)
		}
		out := make([]Range, 0, len(idx.Groups))
		for _, g := range idx.Groups {
			if g.Off < 0 || g.Len <= 0 || g.Count < 0 || g.Plain < 0 || (size > 0 && int64(h.size)+g.Off+g.Len > size) {
				return nil, fmt.Errorf("%w: %s: index group %s/%s at %d+%d is outside the file", ErrCorrupt, file, g.Tenant, g.Metric, g.Off, g.Len)
			}
			out = append(out, Range{File: file, Tenant: g.Tenant, Metric: g.Metric, Off: int64(h.size) + g.Off, Len: g.Len,
				Sync: hex.EncodeToString(h.sync), Count: g.Count, Plain: g.Plain})
		}
		return out, nil
	}
}

// planWhole reads a file without an index and returns a filtered
// whole-file range per (tenant, metric) in it.
func planWhole(ctx context.Context, st blob.Store, file string) ([]Range, error) {
	data, err := blob.ReadFile(ctx, st, file)
	if err != nil {
		return nil, err
	}
	var out []Range
	err = ReadStagedHeads(data, func(s *Staged) error {
		for i := range out {
			if out[i].Tenant == s.Tenant && out[i].Metric == s.Metric {
				out[i].Count++
				return nil
			}
		}
		out = append(out, Range{File: file, Tenant: s.Tenant, Metric: s.Metric, Count: 1, Filter: true})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, file, err)
	}
	for i := range out {
		out[i].Plain = int64(len(data)) // at most: the whole file is read for each
	}
	slices.SortFunc(out, func(a, b Range) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Metric, b.Metric))
	})
	return out, nil
}

// ReadRange reads the staged records of r and calls fn with each (for a
// filtered range, only those of r's tenant and metric). The records share
// the memory of the range they came from, which they keep alive.
func ReadRange(ctx context.Context, st blob.Store, r Range, fn func(*Staged) error) error {
	if r.Len == 0 {
		data, err := blob.ReadFile(ctx, st, r.File)
		if err != nil {
			return err
		}
		var fnErr error
		err = ReadStagedHeads(data, func(s *Staged) error {
			if r.Filter && (s.Tenant != r.Tenant || s.Metric != r.Metric) {
				return nil
			}
			fnErr = fn(s)
			return fnErr
		})
		switch {
		case fnErr != nil:
			return fnErr // the caller's, as it is
		case err != nil:
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, r.File, err)
		}
		return nil
	}
	data, err := st.ReadRange(ctx, r.File, r.Off, r.Len)
	if err != nil {
		return err
	}
	if int64(len(data)) != r.Len {
		return fmt.Errorf("%w: %s: range %d+%d: file ends after %d bytes", ErrCorrupt, r.File, r.Off, r.Len, len(data))
	}
	sync, err := hex.DecodeString(r.Sync)
	if err != nil || len(sync) != 16 {
		return fmt.Errorf("%w: %s: bad sync marker %q in the range", ErrCorrupt, r.File, r.Sync)
	}
	var slab []Staged
	d := decoder{b: data}
	for len(d.b) > 0 {
		count := d.long()
		block := d.bytes()
		if d.err != nil || count < 0 || len(d.b) < 16 || !bytes.Equal(d.b[:16], sync) {
			return fmt.Errorf("%w: %s: Avro block in range %d+%d", ErrCorrupt, r.File, r.Off, r.Len)
		}
		d.b = d.b[16:]
		plain, err := decompress("snappy", block, nil)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, r.File, err)
		}
		var fnErr error
		err = decodeHeads(plain, count, &slab, func(s *Staged) error {
			if s.Tenant != r.Tenant || s.Metric != r.Metric {
				return fmt.Errorf("archive: %s: record of %s/%s in the range of %s/%s", r.File, s.Tenant, s.Metric, r.Tenant, r.Metric)
			}
			fnErr = fn(s)
			return fnErr
		})
		if err != nil {
			if fnErr != nil {
				return fnErr // the caller's, as it is
			}
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, r.File, err)
		}
	}
	return nil
}

// Raw returns the record Avro-encoded (StagedSchema): the bytes it was
// read from, or, for a record of the generic reader, encoded anew.
func (s *Staged) Raw() ([]byte, error) {
	if s.ev != nil {
		return AppendEvent(nil, s.ev)
	}
	return s.rec, nil
}

// DecodeStaged reads count Avro-encoded staged records held back to back
// in data (as Raw returns them), sharing data's memory.
func DecodeStaged(data []byte, count int64, fn func(*Staged) error) error {
	var slab []Staged
	return decodeHeads(data, count, &slab, fn)
}

type header struct {
	schema string
	meta   map[string][]byte
	sync   []byte
	size   int // bytes, sync marker included
}

var errShortHeader = errors.New("archive: Avro header incomplete")

// parseHeader reads the header of an Avro container file from its first
// bytes.
func parseHeader(data []byte) (header, error) {
	if len(data) < 4 || string(data[:4]) != "Obj\x01" {
		return header{}, errors.New("archive: not an Avro container (bad magic)")
	}
	d := decoder{b: data[4:]}
	meta := map[string][]byte{}
	for n := d.mapBlock(); n > 0 && d.err == nil; n = d.mapBlock() {
		for ; n > 0 && d.err == nil; n-- {
			k := d.string()
			meta[k] = bytes.Clone(d.bytes())
		}
	}
	if d.err != nil || len(d.b) < 16 {
		return header{}, errShortHeader
	}
	return header{schema: string(meta["avro.schema"]), meta: meta, sync: bytes.Clone(d.b[:16]), size: len(data) - len(d.b) + 16}, nil
}

// newSync returns a random sync marker.
func newSync() (s [16]byte) {
	id := uuid.New()
	copy(s[:], id[:])
	return s
}
