package wsproto

import (
	"compress/flate"
	"io"
	"sync"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// permessage-deflate (RFC 7692) on the reading side.
//
// When the extension is negotiated (Deflate), RSV1 on the first frame of
// a data message marks the message compressed; RSV1 anywhere else (a
// continuation, a control frame) is a protocol error (1002, section 6.1),
// and so are RSV2 and RSV3. A compressed message's frames are assembled
// as they are: their lengths count against MaxMessage, and their bytes
// are not checked as UTF-8 on the way in. When its last frame is in, the
// message is inflated (section 7.2.2: its payload followed by 0x00 0x00
// 0xff 0xff) with a pooled inflater, and the inflated bytes are counted
// against MaxMessage as they come out: a message that would inflate past
// it is refused with 1009 as soon as one byte more comes out, and nothing
// more of it is inflated (a decompression bomb costs at most MaxMessage
// bytes of output). A text message's inflated bytes are checked as UTF-8
// as they come out (1007 at the first invalid byte). Data that is not
// valid DEFLATE is refused with 1007 (BadDeflate): the frames are well
// formed, their payload does not decode as the message's negotiated
// encoding says, as invalid UTF-8 does not in a text message; RFC 7692
// names no code. Bytes after a DEFLATE block with BFINAL set are ignored,
// as compress/flate and gobwas/ws's wsflate do.
//
// Without context takeover (the default) nothing is kept between messages.
// With it (the peer may refer back to earlier messages) the Parser keeps
// the last Window bytes of the compressed messages it inflated, and each
// inflater starts with them as its dictionary.

// rsv1 is the RSV1 bit of a frame's first byte: "Per-Message Compressed".
const rsv1 = 0x40

// Window is the largest LZ77 window permessage-deflate may refer back
// into (2^15 bytes, RFC 7692 section 7.1.2).
const Window = 1 << 15

// BadDeflate is the Reason of a Violation for a compressed message whose
// data is not valid DEFLATE.
const BadDeflate = "invalid compressed data"

// inflateTail is what a compressed message's payload is followed by when
// it is inflated: the 0x00 0x00 0xff 0xff the sender removed (RFC 7692
// section 7.2.2), then an empty stored block with BFINAL set, so that the
// end of a message that ends on a block boundary is io.EOF for the
// inflater, not an unexpected end of its input.
var inflateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Deflate makes p read permessage-deflate, negotiated for its connection;
// call it after Init, before the first Feed. takeover reports that the
// peer may compress with context takeover (client_no_context_takeover was
// not agreed): p then keeps what the peer may refer back to.
func (p *Parser) Deflate(takeover bool) {
	p.deflate, p.takeover = true, takeover
}

// reserved checks a frame header's reserved bits (rsv, not 0): RSV1 is
// allowed on the first frame of a data message when permessage-deflate was
// negotiated; anything else is a violation.
func (p *Parser) reserved(rsv byte) Kind {
	switch {
	case !p.deflate || rsv != rsv1:
		return p.violate(core.CloseProtocolError, "reserved bits set without a negotiated extension")
	case p.op != OpText && p.op != OpBinary:
		return p.violate(core.CloseProtocolError, "RSV1 set on a control or continuation frame")
	}
	return None
}

// inflater is a pooled DEFLATE reader and the source it reads.
type inflater struct {
	src source
	fr  io.ReadCloser // compress/flate's, reading src
}

func newInflater() *inflater {
	z := new(inflater)
	z.fr = flate.NewReader(&z.src) // src is an io.ByteReader: no bufio under it
	return z
}

// Inflaters pools the inflaters of the Parsers that share a Limits: made
// by NewInflaters, owned by whoever owns the Limits (a Server).
type Inflaters struct{ pool sync.Pool }

// NewInflaters returns an empty pool.
func NewInflaters() *Inflaters {
	return &Inflaters{pool: sync.Pool{New: func() any { return newInflater() }}}
}

func (z *Inflaters) get() *inflater {
	if z == nil {
		return newInflater()
	}
	return z.pool.Get().(*inflater)
}

func (z *Inflaters) put(x *inflater) {
	if z != nil {
		z.pool.Put(x)
	}
}

// source reads b, then inflateTail. It is an io.ByteReader, so that
// compress/flate reads it byte by byte instead of buffering ahead.
type source struct {
	b []byte
	i int
}

func (s *source) ReadByte() (byte, error) {
	if s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		return c, nil
	}
	if j := s.i - len(s.b); j < len(inflateTail) {
		s.i++
		return inflateTail[j], nil
	}
	return 0, io.EOF
}

func (s *source) Read(p []byte) (int, error) {
	n := 0
	if s.i < len(s.b) {
		n = copy(p, s.b[s.i:])
		s.i += n
	}
	if j := s.i - len(s.b); n < len(p) && j < len(inflateTail) {
		k := copy(p[n:], inflateTail[j:])
		s.i += k
		n += k
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// inflate ends a compressed message whose payload, as sent, is in: it is
// released, and the event is the inflated message or a violation.
func (p *Parser) inflate(in *bufpool.Buffer) Kind {
	op := p.msgOp &^ rsv1
	p.msgOp = 0
	var dict []byte
	if p.hist != nil {
		dict = p.hist.B
	}
	z := p.lim.Inflaters.get()
	z.src = source{b: in.B}
	_ = z.fr.(flate.Resetter).Reset(&z.src, dict) // never fails on a Reader made by flate.NewReader
	out, code, reason := p.inflateTo(z, op == OpText, int64(len(in.B)))
	z.src = source{}
	p.lim.Inflaters.put(z)
	wire := len(in.B)
	in.Release()
	if code != 0 {
		return p.violate(code, reason)
	}
	if p.takeover {
		p.remember(out.B)
	}
	if c := p.lim.Inflated; c != nil {
		c.Add(1)
	}
	p.ev.Kind, p.ev.Op, p.ev.Msg, p.ev.Wire = Message, op, out, wire
	return Message
}

// inflateTo inflates what z reads into a pooled buffer of at most
// MaxMessage bytes, grown as bytes come out (from a size guessed from the
// compressed size n); text checks them as UTF-8 as they come. On a
// violation (code set) the buffer was released.
func (p *Parser) inflateTo(z *inflater, text bool, n int64) (out *bufpool.Buffer, code core.CloseCode, reason string) {
	limit := p.lim.MaxMessage
	out = p.lim.Buffers.Get(int(min(limit, max(4*n, FirstChunk))))
	out.B = out.B[:0]
	var utf utf8State
	for code == 0 {
		b := out.B
		room := min(int64(cap(b)), limit) - int64(len(b))
		if room == 0 && int64(len(b)) < limit {
			out = p.lim.Buffers.Grow(out, int(min(2*int64(cap(b)), limit)))
			continue
		}
		var k int
		var err error
		if room == 0 {
			// Full at the limit: one byte more is a message too big, and
			// nothing past it is inflated.
			var one [1]byte
			if k, err = z.fr.Read(one[:]); k > 0 {
				code, reason = core.CloseMessageTooBig, "message too big once inflated"
				break
			}
		} else {
			k, err = z.fr.Read(b[len(b) : len(b)+int(room)])
			out.B = b[:len(b)+k]
		}
		switch {
		case text && !utf.valid(out.B[len(b):]):
			code, reason = core.CloseInvalidPayload, "invalid UTF-8 in text message"
		case err == io.EOF:
			if text && utf.need != 0 {
				code, reason = core.CloseInvalidPayload, "invalid UTF-8 in text message"
				break
			}
			return out, 0, ""
		case err != nil:
			code, reason = core.CloseInvalidPayload, BadDeflate
		}
	}
	out.Release()
	return nil, code, reason
}

// remember keeps the last Window bytes of what the peer sent compressed,
// b being the latest message: the dictionary of the next one (context
// takeover).
func (p *Parser) remember(b []byte) {
	if len(b) == 0 {
		return
	}
	if p.hist == nil {
		p.hist = p.lim.Buffers.Get(Window)
		p.hist.B = p.hist.B[:0]
	}
	h := p.hist.B
	if len(b) >= Window {
		p.hist.B = append(h[:0], b[len(b)-Window:]...)
		return
	}
	if keep := Window - len(b); len(h) > keep {
		h = h[:copy(h, h[len(h)-keep:])]
	}
	p.hist.B = append(h, b...)
}
