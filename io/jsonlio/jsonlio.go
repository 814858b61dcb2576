// Package jsonlio reads JSON Lines files (plain or gzip, local or S3) into
// chunks of lines: the batch-ingest source of Fineo.
//
// One element per chunk (about ChunkBytes of lines), not per line, so that
// the runner's per-element cost is paid per batch. A line over the limit is
// carried as an OversizeLine (its size and first bytes), so stage 1 can turn
// it into a too_large error without holding it. A file that cannot be read
// becomes a processing-error record naming the file.
package jsonlio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	gzip "github.com/klauspost/compress/gzip"

	"github.com/fineo-io/ingest/io/archive"
	"github.com/fineo-io/ingest/io/blob"
	"github.com/fineo-io/ingest/metrics"
	"github.com/fineo-io/ingest/ops/progress"
	"github.com/fineo-io/ingest/ops/redact"
	"github.com/fineo-io/ingest/records"
)

// Defaults.
const (
	DefaultChunkBytes = 1 << 20
	DefaultMaxLine    = 10 << 20 // one line of a batch-ingest file
	keepPrefix        = 64 << 10
)

func init() {
	beam.RegisterType(reflect.TypeOf((*records.Chunk)(nil)).Elem())
	register.DoFn4x0[context.Context, string, func(records.Chunk), func(string, archive.Block)](&readFn{})
	register.Emitter1[records.Chunk]()
	register.Emitter2[string, archive.Block]()
}

// Options configure Read. The zero value means the defaults.
type Options struct {
	ChunkBytes int
	MaxLine    int
	// Progress enables progress reports: in the launching process (where
	// progress.Start runs) the reader feeds the progress line on stderr
	// with files and input bytes done; in a remote worker, which has no
	// terminal, it logs one info line per file instead.
	Progress bool
}

// Read reads every file in files (locations from blob.ExpandInput) into
// chunks. errs holds processing-error blocks keyed by archive partition.
func Read(s beam.Scope, files []string, opts Options) (chunks, errs beam.PCollection) {
	s = s.Scope("jsonlio.Read")
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	names := beam.CreateList(s, files)
	names = beam.Reshuffle(s, names)
	return beam.ParDo2(s, &readFn{ChunkBytes: opts.ChunkBytes, MaxLine: opts.MaxLine, Progress: opts.Progress}, names)
}

type readFn struct {
	ChunkBytes int
	MaxLine    int
	Progress   bool
}

func (f *readFn) ProcessElement(ctx context.Context, file string, emit func(records.Chunk), emitErr func(string, archive.Block)) {
	metrics.Counter(metrics.FilesIn).Inc(ctx, 1)
	start := time.Now()
	var raw atomic.Int64 // input bytes consumed (compressed, for gzip files)
	var onRaw func(int)
	local := f.Progress && progress.Running()
	if f.Progress {
		onRaw = func(n int) {
			raw.Add(int64(n))
			if local {
				progress.Add(progress.Bytes, int64(n))
			}
		}
	}
	var lines int64
	line, err := readFile(ctx, file, Options{ChunkBytes: f.ChunkBytes, MaxLine: f.MaxLine}, func(c records.Chunk) error {
		metrics.Counter(metrics.RecordsIn).Inc(ctx, c.Lines)
		metrics.Counter(metrics.BytesIn).Inc(ctx, int64(len(c.Data)))
		lines += c.Lines
		emit(c)
		return nil
	}, onRaw)
	switch {
	case local:
		progress.Add(progress.Files, 1)
	case f.Progress:
		slog.Info("jsonlio: input file done", "file", redact.URL(file), "lines", lines, "bytes", raw.Load(),
			"took", time.Since(start).Round(time.Millisecond).String(), "failed", err != nil)
	}
	if err == nil {
		return
	}
	// The lines before the failure were emitted; the failure itself is one
	// processing error that names the file and where reading stopped.
	now := time.Now().UTC()
	e := &records.Error{
		Kind:    records.ReadFailed,
		Stage:   "read",
		Message: redact.String(fmt.Sprintf("reading %s stopped at line %d: %v", file, line, err)),
		Source:  records.Lineage{File: redact.URL(file), Line: line},
		Time:    now,
		Events:  1,
	}
	metrics.Counter(metrics.EventsIn).Inc(ctx, 1)
	metrics.Counter(metrics.ProcessingErrors).Inc(ctx, 1)
	metrics.TenantCounter(metrics.UnknownTenant, "read", metrics.ProcessingErrorPfx+records.ReadFailed.String()).Inc(ctx, 1)
	emitErr(archive.ErrorPartition(records.Processing, now), archive.Block{Count: 1, Data: archive.AppendErrorJSON(nil, e)})
}

// ReadFile reads one file into chunks, calling fn for each. On failure it
// returns the 1-based number of the line where reading stopped.
func ReadFile(ctx context.Context, file string, opts Options, fn func(records.Chunk) error) (int64, error) {
	return readFile(ctx, file, opts, fn, nil)
}

// readFile is ReadFile; onRaw, if not nil, is told how many bytes of the
// stored file (before gzip decompression) were consumed, as they are.
func readFile(ctx context.Context, file string, opts Options, fn func(records.Chunk) error, onRaw func(int)) (int64, error) {
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	rc, err := blob.OpenLocation(ctx, file)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var src io.Reader = rc
	if onRaw != nil {
		src = &countingReader{r: rc, n: onRaw}
	}
	br := bufio.NewReaderSize(src, 256<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		// gzip detects a corrupt member only at its end, by its checksum,
		// after its garbage has been decompressed: a flipped byte would
		// stage wrong values and blame the customer for malformed lines.
		// So a gzip file is checked whole first (read a first time,
		// decompressed and discarded: CPU and a second read, no memory or
		// disk), and read only if every member's checksum holds;
		// otherwise nothing of it is read.
		if err := checkGzip(ctx, file); err != nil {
			return 1, fmt.Errorf("gzip: %w; nothing of the file was read (fix or replace it and ingest it again)", err)
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 1, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	return chunkLines(bufio.NewReaderSize(r, 256<<10), file, opts, fn)
}

// checkGzip reads the gzip file to its end, checking every member's
// checksum and length.
func checkGzip(ctx context.Context, file string) error {
	rc, err := blob.OpenLocation(ctx, file)
	if err != nil {
		return err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(rc, 256<<10))
	if err != nil {
		return err
	}
	defer zr.Close()
	_, err = io.Copy(io.Discard, zr)
	return err
}

// chunkBufs recycles chunk buffers (see Release): a chunk read into a
// fresh 1.1 MiB buffer first-touches every page of it, which was 7% of a
// batch ingest's CPU (memmove under page faults, CPU profile).
var chunkBufs sync.Pool // of *[]byte

func newChunkBuf(n int) []byte {
	if p, _ := chunkBufs.Get().(*[]byte); p != nil && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// Release hands the memory of a chunk's lines back for the next chunk
// read. Only the one consumer of a chunk may release it, once it is done
// with c.Data and with everything that shares its memory.
func Release(c records.Chunk) {
	if cap(c.Data) == 0 {
		return
	}
	b := c.Data[:0]
	chunkBufs.Put(&b)
}

func chunkLines(br *bufio.Reader, file string, opts Options, fn func(records.Chunk) error) (int64, error) {
	c := records.Chunk{File: file, FirstLine: 1}
	var line int64
	flush := func() error {
		if c.Lines == 0 {
			return nil
		}
		if err := fn(c); err != nil {
			return err
		}
		c = records.Chunk{File: file, FirstLine: line + 1, Data: newChunkBuf(opts.ChunkBytes + opts.ChunkBytes/8)}
		return nil
	}
	c.Data = newChunkBuf(opts.ChunkBytes + opts.ChunkBytes/8)
	for {
		start := len(c.Data)
		var size, content int64
		over := false
		var prefix []byte
		var err error
		var last byte // the last byte read of the line so far
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			size += int64(len(frag))
			// The line without its terminator: "\n", or "\r\n" (a '\r'
			// that ends a fragment may be the start of one).
			content = size
			if err == nil && len(frag) > 0 {
				content--
				if len(frag) >= 2 && frag[len(frag)-2] == '\r' || len(frag) == 1 && last == '\r' {
					content--
				}
			} else if len(frag) > 0 && frag[len(frag)-1] == '\r' {
				content--
			}
			if len(frag) > 0 {
				last = frag[len(frag)-1]
			}
			switch {
			case over:
			case content > int64(opts.MaxLine):
				over = true
				prefix = append([]byte(nil), c.Data[start:]...)
				if len(prefix) < keepPrefix {
					prefix = append(prefix, frag[:min(len(frag), keepPrefix-len(prefix))]...)
				}
				c.Data = c.Data[:start]
			default:
				c.Data = append(c.Data, frag...)
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && err != io.EOF {
			c.Data = c.Data[:start]
			if ferr := flush(); ferr != nil {
				return line, ferr
			}
			return line + 1, err
		}
		if size == 0 { // EOF
			return line, flush()
		}
		line++
		c.Lines++
		if over {
			c.Oversize = append(c.Oversize, records.OversizeLine{Line: line, Size: size, Length: content, Prefix: prefix})
		} else if c.Data[len(c.Data)-1] != '\n' {
			c.Data = append(c.Data, '\n') // last line without a newline
		}
		if len(c.Data) >= opts.ChunkBytes {
			if err := flush(); err != nil {
				return line, err
			}
		}
		if err == io.EOF {
			return line, flush()
		}
	}
}

type countingReader struct {
	r io.Reader
	n func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n(n)
	}
	return n, err
}
