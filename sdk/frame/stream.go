package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The stream form: frames back to back, each a little-endian uint32 length
// followed by that many bytes of one FlatBuffers buffer.
const prefixSize = 4

// Defaults of ReaderConfig and WriterConfig.
const (
	DefaultMaxFrameSize = 16 << 20
	DefaultBufferSize   = 64 << 10
)

// ReaderConfig configures a Reader. The zero value is valid.
type ReaderConfig struct {
	// MaxFrameSize is the largest frame accepted, not counting its length
	// prefix. Zero means DefaultMaxFrameSize (16 MiB); it must not be
	// negative or over 2 GiB - 1.
	MaxFrameSize int
	// BufferSize is the initial read buffer; it grows to hold the largest
	// frame seen. Zero means DefaultBufferSize (64 KiB).
	BufferSize int
}

// Reader splits a byte stream into frames. It reads in large chunks, so one
// read from a socket usually yields many frames.
//
// A Reader is not safe for concurrent use: it belongs to the connection's
// read loop.
type Reader struct {
	r          io.Reader
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	max        int
	err        error // sticky
}

// NewReader returns a Reader of frames from r.
func NewReader(r io.Reader, cfg ReaderConfig) (*Reader, error) {
	limit, err := maxFrameSize(cfg.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	size := cfg.BufferSize
	switch {
	case size < 0:
		return nil, errors.New("frame: ReaderConfig.BufferSize is negative")
	case size == 0:
		size = DefaultBufferSize
	case size < 2*prefixSize:
		size = 2 * prefixSize
	}
	return &Reader{r: r, buf: make([]byte, size), max: limit}, nil
}

// Next returns the next frame, without its length prefix, ready for
// [Decode]. The slice aliases the Reader's buffer: it is valid until the
// next call to Next.
//
// At a clean end of stream Next returns io.EOF; a stream that ends inside a
// frame returns io.ErrUnexpectedEOF; a length over MaxFrameSize returns an
// error wrapping ErrTooLarge without reading the frame. Errors are sticky:
// the stream cannot be resynchronised, so its connection should end.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.fill(prefixSize, true); err != nil {
		r.err = err
		return nil, err
	}
	n64 := uint64(binary.LittleEndian.Uint32(r.buf[r.start:]))
	if n64 > uint64(r.max) {
		r.err = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n64, r.max)
		return nil, r.err
	}
	n := int(n64)
	if err := r.fill(prefixSize+n, false); err != nil {
		r.err = err
		return nil, err
	}
	s := r.start + prefixSize
	r.start = s + n
	return r.buf[s : s+n : s+n], nil
}

// fill reads until buf[start:end] holds need bytes. atBoundary says that
// an end of stream with nothing unread is a clean io.EOF.
// Buffered returns how many bytes the Reader holds that Next has not
// returned yet: zero means the next call reads the stream.
func (r *Reader) Buffered() int { return r.end - r.start }

func (r *Reader) fill(need int, atBoundary bool) error {
	if r.end-r.start >= need {
		return nil
	}
	if r.start+need > len(r.buf) {
		// Make room: move the unread bytes to the front, or grow.
		buf := r.buf
		if need > len(buf) {
			size := 2 * len(buf)
			if size < need {
				size = need
			}
			if limit := prefixSize + r.max; size > limit {
				size = limit
			}
			buf = make([]byte, size)
		}
		r.end = copy(buf, r.buf[r.start:r.end])
		r.start = 0
		r.buf = buf
	}
	empty := 0
	for r.end-r.start < need {
		n, err := r.r.Read(r.buf[r.end:])
		r.end += n
		if r.end-r.start >= need {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if atBoundary && r.end == r.start {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if n == 0 {
			if empty++; empty >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// WriterConfig configures a Writer. The zero value is valid.
type WriterConfig struct {
	// MaxFrameSize is the largest frame the Writer sends; a larger one is
	// refused with ErrTooLarge before anything is written, since the peer
	// would refuse it. Zero means DefaultMaxFrameSize (16 MiB); it must not
	// be negative or over 2 GiB - 1.
	MaxFrameSize int
	// FlushSize makes WriteFrame write the batch out once it holds that
	// many bytes. Zero means DefaultBufferSize (64 KiB).
	FlushSize int
}

// Writer batches frames so that one write carries many: WriteFrame encodes
// into the batch, Flush writes the batch with a single Write.
//
// A Writer is not safe for concurrent use: it belongs to the connection's
// write loop, which calls Flush when it has nothing more queued.
type Writer struct {
	w       io.Writer
	enc     *Encoder
	buf     []byte
	max     int
	flushAt int
	err     error // sticky write error
}

// NewWriter returns a Writer of frames to w.
func NewWriter(w io.Writer, cfg WriterConfig) (*Writer, error) {
	limit, err := maxFrameSize(cfg.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	flushAt := cfg.FlushSize
	switch {
	case flushAt < 0:
		return nil, errors.New("frame: WriterConfig.FlushSize is negative")
	case flushAt == 0:
		flushAt = DefaultBufferSize
	}
	return &Writer{w: w, enc: NewEncoder(), buf: make([]byte, 0, flushAt), max: limit, flushAt: flushAt}, nil
}

// WriteFrame encodes f into the batch, and writes the batch out if it has
// reached FlushSize. f is not retained.
func (w *Writer) WriteFrame(f *Frame) error {
	return w.WriteEncoded(w.enc.Encode(f))
}

// WriteEncoded adds a frame already encoded (by [Encoder.Encode]) to the
// batch, copying it, and writes the batch out if it has reached FlushSize.
func (w *Writer) WriteEncoded(buf []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(buf) > w.max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(buf), w.max)
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(buf)))
	w.buf = append(w.buf, buf...)
	if len(w.buf) >= w.flushAt {
		return w.Flush()
	}
	return nil
}

// Buffered returns the number of bytes waiting in the batch.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes the batch with one Write. After a write error the Writer
// returns that error from every call.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.w.Write(w.buf)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
		return err
	}
	if cap(w.buf) > 4*w.flushAt {
		// A large frame grew the batch; do not keep that memory.
		w.buf = make([]byte, 0, w.flushAt)
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}

func maxFrameSize(n int) (int, error) {
	switch {
	case n < 0:
		return 0, errors.New("frame: MaxFrameSize is negative")
	case n == 0:
		return DefaultMaxFrameSize, nil
	case n > maxBuffer:
		return 0, errors.New("frame: MaxFrameSize is over 2 GiB - 1")
	}
	return n, nil
}
