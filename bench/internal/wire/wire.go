package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Header lengths of the two payload flavours.
const (
	BinaryHeaderLen = 4 + 8 + 8 // conn id, seq, send time
	TextHeaderLen   = 8 + 16 + 16
)

// period is the length of the repeating fill pattern. It is prime so that
// the fills of neighbouring (conn, seq) pairs differ.
const period = 251

// Errors returned by Decode and Tracker.Observe; match them with errors.Is.
var (
	ErrSize     = errors.New("wire: unexpected payload size")
	ErrHeader   = errors.New("wire: malformed header")
	ErrFill     = errors.New("wire: fill mismatch (corrupted payload)")
	ErrSender   = errors.New("wire: unknown sender")
	ErrGap      = errors.New("wire: sequence gap (lost or reordered message)")
	ErrBackward = errors.New("wire: sequence went backwards (duplicate or reordered message)")
)

// Header is what every payload carries in its first bytes.
type Header struct {
	Conn      uint32 // id of the sending connection
	Seq       uint64 // per-sender sequence number, from 1
	SentNanos int64  // send time in nanoseconds on the sender's clock
}

// Codec encodes and verifies payloads of one fixed size and flavour.
type Codec struct {
	size    int
	text    bool
	pattern []byte // fill pattern repeated to size+period bytes
}

// NewCodec returns a codec for payloads of exactly size bytes; text selects
// the UTF-8 flavour. size must hold at least the header.
func NewCodec(size int, text bool) (*Codec, error) {
	min := BinaryHeaderLen
	if text {
		min = TextHeaderLen
	}
	if size < min {
		return nil, fmt.Errorf("%w: size %d is below the %d-byte header", ErrSize, size, min)
	}
	base := make([]byte, period)
	for i := range base {
		if text {
			base[i] = byte(0x21 + (i*37+11)%94) // printable ASCII
		} else {
			base[i] = byte(i*131 + 7)
		}
	}
	pat := make([]byte, 0, size+period)
	for len(pat) < size+period {
		pat = append(pat, base...)
	}
	return &Codec{size: size, text: text, pattern: pat[:size+period]}, nil
}

// Size is the payload size in bytes.
func (c *Codec) Size() int { return c.size }

// Text reports whether payloads are the UTF-8 flavour.
func (c *Codec) Text() bool { return c.text }

// HeaderLen is the length of the header for this codec's flavour.
func (c *Codec) HeaderLen() int {
	if c.text {
		return TextHeaderLen
	}
	return BinaryHeaderLen
}

func fillOffset(conn uint32, seq uint64) int {
	return int((uint64(conn)*7 + seq) % period)
}

// Encode writes the payload for h into dst, which must be at least Size()
// bytes long, and returns dst[:Size()].
func (c *Codec) Encode(dst []byte, h Header) []byte {
	dst = dst[:c.size]
	hl := c.HeaderLen()
	if c.text {
		putHex(dst[0:8], uint64(h.Conn))
		putHex(dst[8:24], h.Seq)
		putHex(dst[24:40], uint64(h.SentNanos))
	} else {
		binary.LittleEndian.PutUint32(dst[0:4], h.Conn)
		binary.LittleEndian.PutUint64(dst[4:12], h.Seq)
		binary.LittleEndian.PutUint64(dst[12:20], uint64(h.SentNanos))
	}
	off := fillOffset(h.Conn, h.Seq)
	copy(dst[hl:], c.pattern[off:off+c.size-hl])
	return dst
}

// Decode checks p's size, header and fill and returns its header. Any
// mismatch is an error wrapping ErrSize, ErrHeader or ErrFill.
func (c *Codec) Decode(p []byte) (Header, error) {
	var h Header
	if len(p) != c.size {
		return h, fmt.Errorf("%w: got %d bytes, want %d", ErrSize, len(p), c.size)
	}
	hl := c.HeaderLen()
	if c.text {
		conn, ok1 := parseHex(p[0:8])
		seq, ok2 := parseHex(p[8:24])
		ts, ok3 := parseHex(p[24:40])
		if !ok1 || !ok2 || !ok3 {
			return h, fmt.Errorf("%w: %q", ErrHeader, p[:hl])
		}
		h = Header{Conn: uint32(conn), Seq: seq, SentNanos: int64(ts)}
	} else {
		h = Header{
			Conn:      binary.LittleEndian.Uint32(p[0:4]),
			Seq:       binary.LittleEndian.Uint64(p[4:12]),
			SentNanos: int64(binary.LittleEndian.Uint64(p[12:20])),
		}
	}
	if h.Seq == 0 {
		return h, fmt.Errorf("%w: sequence number 0", ErrHeader)
	}
	off := fillOffset(h.Conn, h.Seq)
	if !bytes.Equal(p[hl:], c.pattern[off:off+c.size-hl]) {
		return h, fmt.Errorf("%w: conn %d seq %d", ErrFill, h.Conn, h.Seq)
	}
	return h, nil
}

const hexDigits = "0123456789abcdef"

func putHex(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

func parseHex(src []byte) (uint64, bool) {
	var v uint64
	for _, ch := range src {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// Tracker checks that every sender's messages arrive in order: 1, 2, 3, ...
// After a gap it resynchronises on the sequence number it saw, so one lost
// message is reported once, not for every message after it.
type Tracker struct {
	last []uint64 // last sequence number seen per sender
}

// NewTracker tracks senders numbered 0 .. senders-1.
func NewTracker(senders int) *Tracker {
	return &Tracker{last: make([]uint64, senders)}
}

// Observe records seq from sender and returns an error wrapping ErrSender,
// ErrGap or ErrBackward if it is not the next one expected.
func (t *Tracker) Observe(sender uint32, seq uint64) error {
	if int(sender) >= len(t.last) {
		return fmt.Errorf("%w: %d", ErrSender, sender)
	}
	want := t.last[sender] + 1
	switch {
	case seq == want:
		t.last[sender] = seq
		return nil
	case seq > want:
		t.last[sender] = seq
		return fmt.Errorf("%w: sender %d sent seq %d, want %d", ErrGap, sender, seq, want)
	default:
		return fmt.Errorf("%w: sender %d sent seq %d, want %d", ErrBackward, sender, seq, want)
	}
}

// Last returns the highest in-order sequence number seen from sender.
func (t *Tracker) Last(sender uint32) uint64 {
	if int(sender) >= len(t.last) {
		return 0
	}
	return t.last[sender]
}
