package wsproto

import (
	"encoding/binary"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// MaxControlPayload is the largest control frame payload.
const MaxControlPayload = 125

// MaxHeader is the largest client frame header (masked, 64-bit length).
const MaxHeader = 14

// FirstChunk bounds what a data frame's declared length reserves: a
// message buffer starts at most this large and doubles as payload arrives,
// never past what the frames declared. A client that declares a large
// message and sends little of it costs little memory.
const FirstChunk = 4 << 10

// Limits are the rules a Parser applies beyond RFC 6455's. They are shared
// by every Parser of a server and must not change once in use.
type Limits struct {
	// MaxMessage is the largest message after reassembly; a frame whose
	// declared length would pass it is refused with 1009 before any of its
	// payload is read. It must be positive.
	MaxMessage int64
	// MaxFragments bounds the frames of one data message (1008 beyond).
	// Zero means no bound.
	MaxFragments int
	// Buffers supplies message buffers.
	Buffers *bufpool.Pool
	// Inflated, when set, counts the compressed messages inflated
	// (permessage-deflate, Parser.Deflate).
	Inflated *atomic.Uint64
	// Inflaters pools inflaters for compressed messages. Nil means a new
	// inflater per compressed message.
	Inflaters *Inflaters
}

// Kind says what an Event is.
type Kind uint8

// Event kinds.
const (
	// None: the input was consumed and no event is complete.
	None Kind = iota
	// Message: a complete data message. Event.Op is OpText or OpBinary and
	// Event.Msg holds it; the caller owns Msg from then on.
	Message
	// Ping and Pong: a control frame; Event.Payload holds its payload.
	Ping
	Pong
	// Close: the peer's close frame, valid: Event.Code (core.CloseNoStatus
	// for an empty body) and Event.Reason.
	Close
	// Violation: the input broke a rule. Event.Code is the close code to
	// answer with (1002, 1007, 1008 or 1009) and Event.Reason says why
	// (BadDeflate for a compressed message that does not inflate). The
	// Parser is done: every later call returns the same violation.
	Violation
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Message:
		return "message"
	case Ping:
		return "ping"
	case Pong:
		return "pong"
	case Close:
		return "close"
	case Violation:
		return "violation"
	}
	return "unknown"
}

// Event is what a Parser found. It belongs to the Parser and is valid until
// the next call on it; Payload may point into the input given to Feed.
type Event struct {
	Kind    Kind
	Op      byte
	Code    core.CloseCode
	Msg     *bufpool.Buffer
	Payload []byte
	Reason  string
	// Wire is a compressed message's size as it arrived (0 for one that
	// was not compressed).
	Wire int
}

// Parser is an incremental reader of the frames a WebSocket client sends
// (RFC 6455): fed bytes in chunks cut anywhere, it yields messages,
// control frames, the peer's close, or the first violation with its close
// code. It checks header rules (reserved bits, masking, opcodes,
// fragmentation, control frame size, 64-bit length), the message size and
// fragment budgets, UTF-8 of text messages as each byte arrives (a code
// point split between fragments is valid; an invalid byte is a violation
// at once), and close frame bodies. With permessage-deflate (Deflate) it
// inflates compressed messages too (inflate.go).
//
// A Parser is used by one goroutine at a time. Its zero value is not
// usable: call Init.
type Parser struct {
	lim *Limits

	// The frame being read.
	length int64 // declared payload length
	got    int64 // payload bytes read so far
	mask   [4]byte
	op     byte
	fin    bool
	inHdr  bool // a header is partly read (hdr[:hn])
	inBody bool // a header was read; its payload is being read

	hn    uint8
	hdr   [MaxHeader]byte
	frame uint32 // frames started, mod 2^32

	// The data message being assembled (msgOp != 0): its opcode, with
	// rsv1 set when it is compressed (its bytes are then checked once
	// inflated, not as they arrive).
	msgOp    byte
	frags    int32
	msgFrame uint32 // the frame that started the message
	text     utf8State
	msg      *bufpool.Buffer // the payload so far: msg.B (nil until a byte or a final frame)

	ctl     *bufpool.Buffer // a control payload that arrived in pieces
	ctlUsed bool            // ctl was handed out in an event: release it next call
	dead    bool            // a violation was found: ev holds it for good

	// permessage-deflate (inflate.go).
	deflate  bool            // negotiated: RSV1 marks a compressed message
	takeover bool            // the peer compresses with context takeover: hist is kept
	hist     *bufpool.Buffer // the last Window bytes of the compressed messages inflated (takeover)

	ev Event // the last event
}

// Init prepares p for a new connection with lim.
func (p *Parser) Init(lim *Limits) {
	*p = Parser{lim: lim}
}

// Release returns the Parser's buffers to the pool. The Parser may be
// Init'ed again.
func (p *Parser) Release() {
	if p.msg != nil {
		p.msg.Release()
		p.msg = nil
	}
	if p.hist != nil {
		p.hist.Release()
		p.hist = nil
	}
	p.releaseCtl()
}

func (p *Parser) releaseCtl() {
	p.ctlUsed = false
	if p.ctl != nil {
		p.ctl.Release()
		p.ctl = nil
	}
}

// Parked is what a Parser at rest keeps between uses (Park, Unpark): a
// connection that is between messages holds this instead of a Parser.
type Parked struct {
	frame    uint32
	deflate  bool
	takeover bool
}

// Deflate marks the state as having negotiated permessage-deflate, as
// Parser.Deflate does.
func (s *Parked) Deflate(takeover bool) { s.deflate, s.takeover = true, takeover }

// Park reports whether p is at rest (between messages, holding no buffer
// and no violation) and, if so, returns what Unpark needs to go on where p
// stopped; p may then be reused for another connection. A control payload
// handed out in the last event is released first: the caller is done with
// that event. A Parser with a context-takeover history never parks.
func (p *Parser) Park() (Parked, bool) {
	p.dropUsedCtl()
	if p.inHdr || p.inBody || p.msgOp != 0 || p.msg != nil || p.ctl != nil || p.hist != nil || p.dead {
		return Parked{}, false
	}
	return Parked{frame: p.frame, deflate: p.deflate, takeover: p.takeover}, true
}

// Unpark prepares p, for lim, to go on from s.
func (p *Parser) Unpark(lim *Limits, s Parked) {
	*p = Parser{lim: lim, frame: s.frame, deflate: s.deflate, takeover: s.takeover}
}

// AtBoundary reports that no frame is partly read: the next byte starts a
// header.
func (p *Parser) AtBoundary() bool { return !p.inHdr && !p.inBody }

// Frame identifies the frame being read: it changes with the first byte
// of each header.
func (p *Parser) Frame() uint32 { return p.frame }

// InMessage reports that a fragmented data message is being assembled.
func (p *Parser) InMessage() bool { return p.msgOp != 0 }

// MessageID identifies the data message being assembled (while InMessage):
// it differs from one message to the next.
func (p *Parser) MessageID() uint32 { return p.msgFrame }

// Feed parses bytes of in and returns how many it consumed. It stops at
// the first event so that the caller handles it before feeding in[n:]; with
// Kind None all of in was consumed. Feed unmasks payload in place: in's
// bytes are changed.
func (p *Parser) Feed(in []byte) (n int, ev *Event) {
	p.dropUsedCtl()
	if p.dead {
		return 0, &p.ev
	}
	p.ev.Kind, p.ev.Msg, p.ev.Wire = None, nil, 0
	for n < len(in) {
		if !p.inBody {
			k, ok := p.takeHeader(in[n:])
			n += k
			if !ok {
				return n, &p.ev
			}
			if p.startFrame() != None {
				return n, &p.ev
			}
			if !p.inBody {
				continue
			}
			if isControl(p.op) && int64(len(in)-n) >= p.length {
				// The whole control payload is here: unmask it in place.
				pl := in[n : n+int(p.length)]
				n += len(pl)
				ws.Cipher(pl, p.mask, 0)
				p.inBody = false
				p.control(pl)
				return n, &p.ev
			}
		}
		if isControl(p.op) {
			if p.ctl == nil {
				p.ctl = p.lim.Buffers.Get(int(p.length))
			}
			k := copy(p.ctl.B[p.got:], in[n:])
			n += k
			p.got += int64(k)
			if p.got < p.length {
				continue
			}
			p.inBody = false
			ws.Cipher(p.ctl.B, p.mask, 0)
			p.ctlUsed = true // released at the next call, after the caller used it
			p.control(p.ctl.B)
			return n, &p.ev
		}
		dst := p.room()
		k := copy(dst, in[n:])
		n += k
		if p.wrote(dst[:k]) != None {
			return n, &p.ev
		}
	}
	return n, &p.ev
}

// dropUsedCtl releases a control payload handed out by the last call.
func (p *Parser) dropUsedCtl() {
	if p.ctlUsed {
		p.ctlUsed = false
		p.releaseCtl()
	}
}

// Direct returns where the current data frame's next payload bytes may be
// read straight from the socket, bypassing Feed's copy, or nil when the
// next bytes are a header or a control payload. Its length is at most what
// the frame has left, and at most the room the message buffer has before
// it must grow. After reading k bytes into it, call Wrote(k).
func (p *Parser) Direct() []byte {
	p.dropUsedCtl()
	if p.dead || !p.inBody || isControl(p.op) {
		return nil
	}
	return p.room()
}

// Wrote handles k payload bytes read into the slice Direct returned.
func (p *Parser) Wrote(k int) *Event {
	if p.dead {
		return &p.ev
	}
	p.ev.Kind, p.ev.Msg, p.ev.Wire = None, nil, 0
	if k > 0 {
		p.wrote(p.msg.B[len(p.msg.B) : len(p.msg.B)+k])
	}
	return &p.ev
}

// DirectRemaining reports how many payload bytes the current data frame
// still expects (0 outside one).
func (p *Parser) DirectRemaining() int64 {
	if p.dead || !p.inBody || isControl(p.op) {
		return 0
	}
	return p.length - p.got
}

// takeHeader collects a header from in; ok reports that hdr[:hn] holds a
// whole header (inHdr is then false).
func (p *Parser) takeHeader(in []byte) (used int, ok bool) {
	if p.hn == 0 {
		p.frame++ // a new frame begins with this byte
	}
	if p.hn == 0 && len(in) >= 2 {
		if n := headerLen(in[1]); len(in) >= n {
			copy(p.hdr[:], in[:n])
			p.hn = uint8(n)
			return n, true
		}
	}
	need := 2
	if p.hn >= 2 {
		need = headerLen(p.hdr[1])
	}
	for int(p.hn) < need && used < len(in) {
		p.hdr[p.hn] = in[used]
		p.hn++
		used++
		if p.hn == 2 {
			need = headerLen(p.hdr[1])
		}
	}
	p.inHdr = int(p.hn) < need
	return used, !p.inHdr
}

// headerLen returns the size of a client frame header whose second byte is
// b1.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

func isControl(op byte) bool { return op&0x8 != 0 }

// startFrame checks the whole header in hdr[:hn] and prepares for its
// payload. A frame with no payload is finished at once (an event, or
// inBody false).
func (p *Parser) startFrame() Kind {
	h := p.hdr[:p.hn]
	p.hn = 0
	b0, b1 := h[0], h[1]
	p.fin = b0&0x80 != 0
	p.op = b0 & 0x0f
	rsv := b0 & 0x70
	masked := b1&0x80 != 0
	var length int64
	switch l := b1 & 0x7f; l {
	case 126:
		length = int64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(h[2:10])
		if u>>63 != 0 {
			return p.violate(core.CloseProtocolError, "64-bit length with the most significant bit set")
		}
		length = int64(u)
	default:
		length = int64(l)
	}
	if rsv != 0 {
		if k := p.reserved(rsv); k != None {
			return k
		}
	}
	if !masked {
		return p.violate(core.CloseProtocolError, "client frame is not masked")
	}
	copy(p.mask[:], h[len(h)-4:])
	p.length, p.got = length, 0
	switch p.op {
	case OpClose, OpPing, OpPong:
		if !p.fin {
			return p.violate(core.CloseProtocolError, "fragmented control frame")
		}
		if length > MaxControlPayload {
			return p.violate(core.CloseProtocolError, "control frame payload over 125 bytes")
		}
		if length == 0 {
			return p.control(nil)
		}
		p.inBody = true
		return None
	case OpText, OpBinary:
		if p.msgOp != 0 {
			return p.violate(core.CloseProtocolError, "new data frame inside a fragmented message")
		}
	case OpContinuation:
		if p.msgOp == 0 {
			return p.violate(core.CloseProtocolError, "continuation frame without a message to continue")
		}
	default:
		return p.violate(core.CloseProtocolError, "reserved opcode")
	}
	var have int64
	if p.msg != nil {
		have = int64(len(p.msg.B))
	}
	// Against what is left of the budget: length may be near 2^63, and
	// length+have would overflow.
	if length > p.lim.MaxMessage-have {
		return p.violate(core.CloseMessageTooBig, "message too big")
	}
	if p.op != OpContinuation {
		// rsv is 0, or rsv1 on a compressed message's first frame.
		p.msgOp, p.frags, p.text, p.msgFrame = p.op|rsv, 0, utf8State{}, p.frame
	}
	p.frags++
	if m := p.lim.MaxFragments; m > 0 && int(p.frags) > m {
		return p.violate(core.ClosePolicyViolation, "too many fragments in one message")
	}
	if length == 0 {
		return p.frameDone()
	}
	p.inBody = true
	return None
}

// room returns where the current data frame's next payload bytes go: the
// free capacity of the message buffer, grown (doubling, from FirstChunk)
// when it has none, and never longer than the frame has left.
func (p *Parser) room() []byte {
	rem := p.length - p.got
	if p.msg == nil {
		p.msg = p.lim.Buffers.Get(int(min(rem, FirstChunk)))
		p.msg.B = p.msg.B[:0]
	}
	b := p.msg.B
	if cap(b) == len(b) {
		grow := min(rem, max(int64(len(b)), FirstChunk))
		p.msg = p.lim.Buffers.Grow(p.msg, len(b)+int(grow))
		b = p.msg.B
	}
	free := b[len(b):cap(b)]
	if int64(len(free)) > rem {
		free = free[:rem]
	}
	return free
}

// wrote takes payload bytes just placed at the end of msg.B's length (dst
// is msg.B[len:len+k]): it unmasks and checks them.
func (p *Parser) wrote(dst []byte) Kind {
	ws.Cipher(dst, p.mask, int(p.got&3))
	p.got += int64(len(dst))
	p.msg.B = p.msg.B[:len(p.msg.B)+len(dst)]
	if p.msgOp == OpText && !p.text.valid(dst) {
		return p.violate(core.CloseInvalidPayload, "invalid UTF-8 in text message")
	}
	if p.got < p.length {
		return None
	}
	return p.frameDone()
}

// frameDone ends a data frame whose payload is complete.
func (p *Parser) frameDone() Kind {
	p.inBody = false
	if !p.fin {
		return None
	}
	if p.msgOp == OpText && p.text.need != 0 {
		return p.violate(core.CloseInvalidPayload, "invalid UTF-8 in text message")
	}
	msg := p.msg
	if msg == nil {
		msg = p.lim.Buffers.Get(0)
	}
	if p.msgOp&rsv1 != 0 {
		p.msg = nil
		return p.inflate(msg)
	}
	p.ev.Kind, p.ev.Op, p.ev.Msg = Message, p.msgOp, msg
	p.msg, p.msgOp = nil, 0
	return Message
}

// control makes the event of a complete, unmasked control frame.
func (p *Parser) control(pl []byte) Kind {
	switch p.op {
	case OpPing:
		return p.setControl(Ping, pl)
	case OpPong:
		return p.setControl(Pong, pl)
	}
	switch {
	case len(pl) == 0:
		p.ev = Event{Kind: Close, Op: OpClose, Code: core.CloseNoStatus}
		return Close
	case len(pl) == 1:
		return p.violate(core.CloseProtocolError, "close frame with a 1-byte payload")
	}
	code := core.CloseCode(binary.BigEndian.Uint16(pl))
	if !code.ValidOnWire() {
		return p.violate(core.CloseProtocolError, "invalid close code")
	}
	if !utf8.Valid(pl[2:]) {
		return p.violate(core.CloseInvalidPayload, "invalid UTF-8 in close reason")
	}
	p.ev = Event{Kind: Close, Op: OpClose, Code: code, Payload: pl, Reason: string(pl[2:])}
	return Close
}

func (p *Parser) setControl(k Kind, pl []byte) Kind {
	p.ev.Kind, p.ev.Op, p.ev.Payload = k, p.op, pl
	return k
}

// violate ends the Parser with a violation.
func (p *Parser) violate(code core.CloseCode, reason string) Kind {
	p.ev = Event{Kind: Violation, Code: code, Reason: reason}
	p.dead = true
	p.inHdr, p.inBody = false, false
	p.Release()
	return Violation
}
