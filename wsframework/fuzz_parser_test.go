package wsframework

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/netpoll"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

// The limits the fuzzer's parsers run with: small, so that the size and
// fragment budgets are reached.
const (
	fuzzMaxMessage   = 300
	fuzzMaxFragments = 6
)

// verdict is what a reading of a byte stream found: the events in order,
// and how it ended (a close code: the peer's, or the one a violation is
// answered with; 0 when the stream ended first).
type verdict struct {
	Events []string
	Close  int
}

func (v *verdict) add(kind string, b []byte) { v.Events = append(v.Events, kind+":"+string(b)) }

// fuzzMode is how the fuzzer's connections negotiated permessage-deflate.
type fuzzMode struct {
	name     string
	deflate  bool // negotiated
	takeover bool // the client may compress with context takeover
}

var fuzzModes = []fuzzMode{{"plain", false, false}, {"deflate", true, false}, {"deflate_takeover", true, true}}

// referenceVerdict reads stream by RFC 6455, RFC 7692 (as negotiated in
// mode) and Strand's limits, with gobwas/ws's ReadHeader and Cipher,
// compress/flate and unicode/utf8: a differential oracle that shares no
// code with the parser. UTF-8 is judged fail-fast: a text message whose
// bytes so far cannot begin valid UTF-8 ends the stream with 1007 even if
// the rest never arrives (for a compressed message, its inflated bytes,
// once its last frame is in).
func referenceVerdict(stream []byte, mode fuzzMode) verdict {
	var v verdict
	r := bytes.NewReader(stream)
	var (
		msg        []byte
		msgOp      ws.OpCode
		inMsg      bool
		compressed bool
		frames     int
		window     []byte // the inflated bytes a compressed message may refer to (takeover)
	)
	for {
		h, err := ws.ReadHeader(r)
		if errors.Is(err, ws.ErrHeaderLengthMSB) {
			v.Close = 1002
			return v
		}
		if err != nil {
			return v // the stream ended inside a header (or before one)
		}
		rsv1 := ws.Rsv(true, false, false)
		switch {
		case h.Rsv != 0 && !(mode.deflate && h.Rsv == rsv1 && (h.OpCode == ws.OpText || h.OpCode == ws.OpBinary)), !h.Masked:
			v.Close = 1002
			return v
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > 125 || h.OpCode > ws.OpPong {
				v.Close = 1002
				return v
			}
			if int64(r.Len()) < h.Length {
				return v
			}
			p := make([]byte, h.Length)
			_, _ = io.ReadFull(r, p)
			ws.Cipher(p, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				v.add("ping", p)
				continue
			case ws.OpPong:
				v.add("pong", p)
				continue
			}
			switch {
			case len(p) == 0:
				v.Close = 1005
			case len(p) == 1:
				v.Close = 1002
			default:
				code := int(binary.BigEndian.Uint16(p))
				valid := code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999
				switch {
				case !valid:
					v.Close = 1002
				case !utf8.Valid(p[2:]):
					v.Close = 1007
				default:
					v.Close = code
				}
			}
			return v
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if inMsg {
				v.Close = 1002
				return v
			}
		case ws.OpContinuation:
			if !inMsg {
				v.Close = 1002
				return v
			}
		default:
			v.Close = 1002
			return v
		}
		if h.Length > fuzzMaxMessage-int64(len(msg)) {
			v.Close = 1009
			return v
		}
		if h.OpCode != ws.OpContinuation {
			msg, msgOp, inMsg, frames = nil, h.OpCode, true, 0
			compressed = h.Rsv != 0
		}
		frames++
		if frames > fuzzMaxFragments {
			v.Close = 1008
			return v
		}
		p := make([]byte, min(h.Length, int64(r.Len())))
		_, _ = io.ReadFull(r, p)
		ws.Cipher(p, h.Mask, 0)
		msg = append(msg, p...)
		if msgOp == ws.OpText && !compressed && !validUTF8Prefix(msg) {
			v.Close = 1007
			return v
		}
		if int64(len(p)) < h.Length {
			return v
		}
		if !h.Fin {
			continue
		}
		if compressed {
			var code int
			if msg, code = referenceInflate(msg, window, msgOp == ws.OpText); code != 0 {
				v.Close = code
				return v
			}
			if mode.takeover {
				window = append(window, msg...)
				window = window[max(0, len(window)-1<<15):] // RFC 7692: a 32 KiB window
			}
		}
		if msgOp == ws.OpText && !utf8.Valid(msg) {
			v.Close = 1007
			return v
		}
		if msgOp == ws.OpText {
			v.add("text", msg)
		} else {
			v.add("binary", msg)
		}
		msg, inMsg = nil, false
	}
}

// referenceInflate inflates a compressed message's payload by RFC 7692
// section 7.2.2 (the payload, then 0x00 0x00 0xff 0xff; an empty final
// block after them, so that compress/flate ends with io.EOF) with window as
// the preset dictionary, reading at most one byte past the size limit, and
// judges it: invalid UTF-8 within the limit first (1007), then the size
// (1009), then a DEFLATE error (1007). Bytes after a final block are not
// read, as compress/flate does.
func referenceInflate(payload, window []byte, text bool) ([]byte, int) {
	src := io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}))
	out, err := io.ReadAll(io.LimitReader(flate.NewReaderDict(src, window), fuzzMaxMessage+1))
	switch {
	case text && !validUTF8Prefix(out[:min(len(out), fuzzMaxMessage)]):
		return nil, 1007
	case len(out) > fuzzMaxMessage:
		return nil, 1009
	case err != nil:
		return nil, 1007
	}
	return out, 0
}

// validUTF8Prefix reports whether b can begin valid UTF-8: valid, but for
// an unfinished code point at its end that some continuation completes.
func validUTF8Prefix(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	for j := len(b) - 1; j >= 0 && j >= len(b)-3; j-- {
		if utf8.RuneStart(b[j]) {
			// FullRune is false only for a proper prefix of a valid
			// encoding.
			return !utf8.FullRune(b[j:]) && utf8.Valid(b[:j])
		}
	}
	return false
}

// record adds a parser event to v; it reports whether the stream ended.
func record(v *verdict, ev *wsproto.Event) bool {
	if ev == nil {
		return false
	}
	switch ev.Kind {
	case wsproto.None:
		return false
	case wsproto.Message:
		kind := "binary"
		if ev.Op == opText {
			kind = "text"
		}
		v.add(kind, ev.Msg.B)
		ev.Msg.Release()
		return false
	case wsproto.Ping:
		v.add("ping", ev.Payload)
		return false
	case wsproto.Pong:
		v.add("pong", ev.Payload)
		return false
	}
	v.Close = int(ev.Code)
	return true
}

// chunks cuts stream into pieces whose sizes cycle through cuts.
func chunks(stream, cuts []byte) [][]byte {
	var out [][]byte
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(cuts) > 0 {
			n = min(n, int(cuts[i%len(cuts)])+1)
		}
		out = append(out, append([]byte(nil), stream[:n]...))
		stream = stream[n:]
	}
	return out
}

// newFuzzParser returns a Parser for lim, negotiated as mode says.
func newFuzzParser(lim *wsproto.Limits, mode fuzzMode) *wsproto.Parser {
	ps := new(wsproto.Parser)
	ps.Init(lim)
	if mode.deflate {
		ps.Deflate(mode.takeover)
	}
	return ps
}

// parserVerdict feeds the pieces to a Parser directly.
func parserVerdict(lim *wsproto.Limits, mode fuzzMode, pieces [][]byte) verdict {
	var v verdict
	ps := newFuzzParser(lim, mode)
	defer ps.Release()
	for _, in := range pieces {
		for len(in) > 0 {
			n, ev := ps.Feed(in)
			in = in[n:]
			if record(&v, ev) {
				return v
			}
		}
	}
	return v
}

// pieceReader returns one piece per Read (the socket of the goroutine
// reader).
type pieceReader struct{ pieces [][]byte }

func (r *pieceReader) Read(b []byte) (int, error) {
	if len(r.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.pieces[0])
	if r.pieces[0] = r.pieces[0][n:]; len(r.pieces[0]) == 0 {
		r.pieces = r.pieces[1:]
	}
	return n, nil
}

type noHook struct{}

func (noHook) beforeRead(*wsproto.Parser) {}

// goroutineReaderVerdict feeds the pieces the way the goroutine reader
// does (readEvent over a bufio.Reader).
func goroutineReaderVerdict(lim *wsproto.Limits, mode fuzzMode, pieces [][]byte) verdict {
	var v verdict
	ps := newFuzzParser(lim, mode)
	defer ps.Release()
	br := bufio.NewReaderSize(&pieceReader{pieces: pieces}, 16)
	for {
		ev, err := readEvent(br, ps, noHook{})
		if err != nil {
			return v
		}
		if record(&v, ev) {
			return v
		}
	}
}

// pollReaderVerdict feeds the pieces the way the poll reader does
// (pollFeed.step): each piece is one readiness report, after which the
// socket would block (or a short read told the feed it had all there was).
func pollReaderVerdict(lim *wsproto.Limits, mode fuzzMode, pieces [][]byte) verdict {
	var v verdict
	ps := newFuzzParser(lim, mode)
	defer ps.Release()
	var f pollFeed
	defer releaseAll(&f.rb)
	for _, piece := range pieces {
		f.read, f.drained = 0, false // a new turn, as pollTurn starts one
		read := func(b []byte) (int, error) {
			if len(piece) == 0 {
				return 0, netpoll.ErrWouldBlock
			}
			n := copy(b, piece)
			piece = piece[n:]
			return n, nil
		}
		for {
			ev, more, err := f.step(ps, lim.Buffers, read)
			if !more {
				if err != nil && !errors.Is(err, netpoll.ErrWouldBlock) {
					panic(fmt.Sprintf("unexpected read error %v", err))
				}
				break
			}
			if record(&v, ev) {
				return v
			}
		}
	}
	return v
}

// FuzzFrameParser feeds arbitrary byte streams, cut at arbitrary points,
// through the frame parser and through each reader's way of feeding it,
// without permessage-deflate and with it (with and without context
// takeover), and checks that every one reaches the reference reading's
// verdict, with every pooled buffer given back.
func FuzzFrameParser(f *testing.F) {
	for _, seed := range frameParserSeeds(f) {
		f.Add(seed, []byte{0})
		f.Add(seed, []byte{2, 9, 0, 200})
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		for _, mode := range fuzzModes {
			want := referenceVerdict(stream, mode)
			pool := bufpool.New(bufpool.Config{Poison: true})
			lim := &wsproto.Limits{MaxMessage: fuzzMaxMessage, MaxFragments: fuzzMaxFragments, Buffers: pool, Inflaters: wsproto.NewInflaters()}
			for _, way := range []struct {
				name string
				run  func(*wsproto.Limits, fuzzMode, [][]byte) verdict
			}{
				{"parser", parserVerdict},
				{"goroutine_reader", goroutineReaderVerdict},
				{"poll_reader", pollReaderVerdict},
			} {
				got := way.run(lim, mode, chunks(stream, cuts))
				require.Equal(t, want, got, "%s, %s, stream %x cut by %v", way.name, mode.name, stream, cuts)
			}
			st := pool.Stats()
			require.Equal(t, st.Gets-st.Oversize, st.Releases, "%s: pooled buffers not released: %+v", mode.name, st)
		}
	})
}

// frameParserSeeds are the protocol tests' streams, and compressed ones.
func frameParserSeeds(tb testing.TB) [][]byte {
	f := func(fin bool, rsv, op byte, declared uint64, payload []byte) []byte {
		b0 := op | rsv<<4
		if fin {
			b0 |= 0x80
		}
		b := []byte{b0}
		switch {
		case declared <= 125:
			b = append(b, 0x80|byte(declared))
		case declared <= 0xffff:
			b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(declared))
		default:
			b = binary.BigEndian.AppendUint64(append(b, 0x80|127), declared)
		}
		mask := [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
		p := append([]byte(nil), payload...)
		ws.Cipher(p, mask, 0)
		return append(append(b, mask[:]...), p...)
	}
	w := func(fin bool, op byte, p string) []byte { return f(fin, 0, op, uint64(len(p)), []byte(p)) }
	z := func(fin bool, op byte, p []byte) []byte { return f(fin, 4, op, uint64(len(p)), p) }
	// deflateAll compresses messages as permessage-deflate does, with
	// context takeover when one compressor runs through them.
	deflateAll := func(takeover bool, msgs ...[]byte) [][]byte {
		var out [][]byte
		var buf bytes.Buffer
		fw, err := flate.NewWriter(&buf, flate.BestCompression)
		require.NoError(tb, err)
		for _, m := range msgs {
			if !takeover {
				fw.Reset(&buf)
			}
			buf.Reset()
			_, _ = fw.Write(m)
			require.NoError(tb, fw.Flush())
			out = append(out, bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})))
		}
		return out
	}
	deflate := func(m []byte) []byte { return deflateAll(false, m)[0] }
	hello := deflate([]byte("héllo"))
	taken := deflateAll(true, []byte("the quick brown fox"), []byte("the quick brown fox"))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return [][]byte{
		w(true, opText, "hello"),
		cat(w(false, opText, "ab\xc3"), w(true, opPing, "p"), w(true, opContinuation, "\xa9c"), w(true, opBinary, "")),
		cat(w(true, opText, "x"), w(true, opClose, "\x03\xe8bye")),
		cat(w(true, opText, "x"), f(true, 0, 3, 0, nil)),
		w(true, opClose, "\x03"),
		w(true, opClose, "\x03\xe8\xff"),
		w(true, opClose, "\x0b\xb8"),
		f(true, 4, opText, 0, nil),
		{0x81, 0x00},
		w(false, opPing, ""),
		w(true, opPing, string(make([]byte, 126))),
		cat(w(false, opText, "a"), f(true, 0, opContinuation, math.MaxInt64, nil)),
		f(true, 0, opBinary, math.MaxUint64, nil),
		f(true, 0, opBinary, fuzzMaxMessage+1, nil),
		f(true, 0, opBinary, 200, []byte("partial")),
		cat(w(false, opText, "a\xff"), w(true, opContinuation, "b")),
		cat(w(false, opText, "a"), w(true, opContinuation, "\xe2\x82")),
		cat(w(false, opBinary, ""), w(false, opContinuation, ""), w(false, opContinuation, ""), w(false, opContinuation, ""), w(false, opContinuation, ""), w(false, opContinuation, ""), w(true, opContinuation, "")),
		w(true, opText, string(bytes.Repeat([]byte("é"), 140))),

		// permessage-deflate: RSV1 on a message's first frame.
		z(true, opText, hello),
		cat(f(false, 4, opBinary, 3, hello[:3]), w(true, opPing, "p"), f(true, 0, opContinuation, uint64(len(hello)-3), hello[3:])),
		cat(z(true, opText, hello), w(true, opText, "plain"), z(true, opBinary, []byte{0x00})),
		z(true, opText, []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), // RFC 7692's BFINAL example
		z(true, opBinary, deflate(bytes.Repeat([]byte("a"), fuzzMaxMessage+1))),
		z(true, opText, deflate(bytes.Repeat([]byte("é"), fuzzMaxMessage/2))),
		z(true, opText, deflate([]byte("ok\xff"))),
		z(true, opBinary, []byte{0xff, 0xff}),
		z(true, opBinary, nil),
		cat(f(false, 4, opText, 2, hello[:2]), f(true, 4, opContinuation, uint64(len(hello)-2), hello[2:])),
		f(true, 4, opPing, 0, nil),
		cat(z(true, opText, taken[0]), z(true, opText, taken[1])), // the second refers back to the first
	}
}
