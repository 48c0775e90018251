package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Header lengths of the payload flavours.
const (
	BinaryHeaderLen = 4 + 8 + 8 // conn id, seq, send time
	TextHeaderLen   = 8 + 16 + 16
	// JSONHeaderLen is everything of a JSON payload before its text:
	// {"conn":"<8 hex>","seq":"<16 hex>","ts":"<16 hex>","user":"user-<8 hex>","text":"
	JSONHeaderLen = 99
	// JSONMinSize is the smallest JSON payload: the header, an empty text
	// and the closing "}.
	JSONMinSize = JSONHeaderLen + 2
)

// Flavour is the kind of payload a Codec makes.
type Flavour uint8

// Payload flavours.
const (
	Binary Flavour = iota // 20-byte binary header, binary fill
	Text                  // 40-character hex header, printable ASCII fill
	// JSON is a JSON object with the header as fixed-width hex strings and
	// a "text" of common English words in a deterministic pseudo-random
	// order: valid UTF-8 (and valid JSON) that compresses about as well as
	// chat messages do, without repeating itself within a message.
	JSON
)

// ParseFlavour maps "binary", "text" or "json" to a Flavour.
func ParseFlavour(s string) (Flavour, error) {
	switch s {
	case "binary":
		return Binary, nil
	case "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("unknown payload flavour %q: want binary, text or json", s)
}

func (f Flavour) String() string {
	switch f {
	case Text:
		return "text"
	case JSON:
		return "json"
	}
	return "binary"
}

// The fixed parts of a JSON payload, at their offsets.
var jsonLiterals = []struct {
	at  int
	lit string
}{
	{0, `{"conn":"`}, {17, `","seq":"`}, {42, `","ts":"`}, {66, `","user":"user-`}, {89, `","text":"`},
}

// jsonSpan is how many bytes of word text the JSON fill's starting point
// ranges over; the fill of (conn, seq) starts at a word boundary in it,
// picked by a hash of (conn, seq). It is far larger than deflate's 32 KiB
// window, so that with context takeover a message rarely finds its text in
// the connection's earlier ones: it compresses like new text in the same
// vocabulary, not like a repeat.
const jsonSpan = 1 << 20

// jsonWords is the vocabulary of the JSON fill.
var jsonWords = strings.Fields(`the be to of and a in that have I it for not on with he as you do at
this but his by from they we say her she or an will my one all would there their what so up out if
about who get which go me when make can like time no just him know take people into year your good
some could them see other than then now look only come its over think also back after use two how our
work first well way even new want because any these give day most us is was are were been has had did
said message meeting tomorrow today thanks please sure sounds great let's check later deploy release
build test server client room channel team update status ready done review merge branch issue fixed
lunch coffee morning afternoon weekend question answer idea plan schedule call video link file report`)

// jsonPattern returns the word text the JSON fill is cut from (at least n
// bytes) and the offsets below jsonSpan where a word starts.
func jsonPattern(n int) ([]byte, []int) {
	var (
		pat    = make([]byte, 0, n+16)
		starts []int
		x      = uint64(0x9e3779b97f4a7c15)
	)
	for len(pat) < n {
		x ^= x << 13 // xorshift64: the same text on every platform and Go version
		x ^= x >> 7
		x ^= x << 17
		if len(pat) < jsonSpan {
			starts = append(starts, len(pat))
		}
		pat = append(pat, jsonWords[x%uint64(len(jsonWords))]...)
		switch x >> 60 {
		case 0:
			pat = append(pat, ". "...)
		case 1:
			pat = append(pat, ", "...)
		default:
			pat = append(pat, ' ')
		}
	}
	return pat, starts
}

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
	flavour Flavour
	text    bool   // Text or JSON: valid UTF-8
	pattern []byte // fill pattern repeated to size+period bytes; JSON: word text
	starts  []int  // JSON: word starts in pattern, below jsonSpan
}

// NewCodec returns a codec for payloads of exactly size bytes; text selects
// the UTF-8 flavour. size must hold at least the header.
func NewCodec(size int, text bool) (*Codec, error) {
	if text {
		return NewFlavourCodec(size, Text)
	}
	return NewFlavourCodec(size, Binary)
}

// NewFlavourCodec returns a codec for payloads of exactly size bytes of
// flavour f. size must hold at least the header (JSON: JSONMinSize).
func NewFlavourCodec(size int, f Flavour) (*Codec, error) {
	text := f != Binary
	min := BinaryHeaderLen
	switch f {
	case Text:
		min = TextHeaderLen
	case JSON:
		min = JSONMinSize
	}
	if size < min {
		return nil, fmt.Errorf("%w: size %d is below the %d-byte header", ErrSize, size, min)
	}
	if f == JSON {
		pat, starts := jsonPattern(size + jsonSpan)
		return &Codec{size: size, flavour: f, text: true, pattern: pat, starts: starts}, nil
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
	return &Codec{size: size, flavour: f, text: text, pattern: pat[:size+period]}, nil
}

// Size is the payload size in bytes.
func (c *Codec) Size() int { return c.size }

// Text reports whether payloads are valid UTF-8 (the text and JSON
// flavours), to be sent as text messages.
func (c *Codec) Text() bool { return c.text }

// Flavour is the codec's payload flavour.
func (c *Codec) Flavour() Flavour { return c.flavour }

// HeaderLen is the length of the header for this codec's flavour.
func (c *Codec) HeaderLen() int {
	switch c.flavour {
	case Text:
		return TextHeaderLen
	case JSON:
		return JSONHeaderLen
	}
	return BinaryHeaderLen
}

// jsonFill is the text of (conn, seq)'s JSON payload.
func (c *Codec) jsonFill(conn uint32, seq uint64) []byte {
	x := uint64(conn)<<40 ^ seq // splitmix64 finalizer
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	off := c.starts[x%uint64(len(c.starts))]
	return c.pattern[off : off+c.size-JSONMinSize]
}

func fillOffset(conn uint32, seq uint64) int {
	return int((uint64(conn)*7 + seq) % period)
}

// Encode writes the payload for h into dst, which must be at least Size()
// bytes long, and returns dst[:Size()].
func (c *Codec) Encode(dst []byte, h Header) []byte {
	dst = dst[:c.size]
	if c.flavour == JSON {
		for _, l := range jsonLiterals {
			copy(dst[l.at:], l.lit)
		}
		putHex(dst[9:17], uint64(h.Conn))
		putHex(dst[26:42], h.Seq)
		putHex(dst[50:66], uint64(h.SentNanos))
		putHex(dst[81:89], uint64(h.Conn))
		copy(dst[JSONHeaderLen:], c.jsonFill(h.Conn, h.Seq))
		copy(dst[c.size-2:], `"}`)
		return dst
	}
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
	if c.flavour == JSON {
		return c.decodeJSON(p)
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

func (c *Codec) decodeJSON(p []byte) (Header, error) {
	var h Header
	for _, l := range jsonLiterals {
		if string(p[l.at:l.at+len(l.lit)]) != l.lit {
			return h, fmt.Errorf("%w: %q", ErrHeader, p[:JSONHeaderLen])
		}
	}
	conn, ok1 := parseHex(p[9:17])
	seq, ok2 := parseHex(p[26:42])
	ts, ok3 := parseHex(p[50:66])
	user, ok4 := parseHex(p[81:89])
	if !ok1 || !ok2 || !ok3 || !ok4 || user != conn || string(p[c.size-2:]) != `"}` {
		return h, fmt.Errorf("%w: %q", ErrHeader, p[:JSONHeaderLen])
	}
	h = Header{Conn: uint32(conn), Seq: seq, SentNanos: int64(ts)}
	if h.Seq == 0 {
		return h, fmt.Errorf("%w: sequence number 0", ErrHeader)
	}
	if !bytes.Equal(p[JSONHeaderLen:c.size-2], c.jsonFill(h.Conn, h.Seq)) {
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
