package wsproto

import (
	"bytes"
	"compress/flate"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// deflateMessages compresses each message as permessage-deflate does: one
// sync flush per message, its 0x00 0x00 0xff 0xff tail removed. With
// takeover one compressor runs through all of them (later messages may
// refer back to earlier ones); without, each starts afresh.
func deflateMessages(t testing.TB, takeover bool, msgs ...[]byte) [][]byte {
	t.Helper()
	var out [][]byte
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	require.NoError(t, err)
	for _, m := range msgs {
		if !takeover {
			fw.Reset(&buf)
		}
		buf.Reset()
		_, err := fw.Write(m)
		require.NoError(t, err)
		require.NoError(t, fw.Flush())
		b := buf.Bytes()
		require.Equal(t, []byte{0, 0, 0xff, 0xff}, b[len(b)-4:])
		out = append(out, append([]byte(nil), b[:len(b)-4]...))
	}
	return out
}

func deflated(t testing.TB, msg []byte) []byte { return deflateMessages(t, false, msg)[0] }

// compressed is a whole, compressed data frame (RSV1 set).
func compressed(op byte, payload []byte) []byte {
	return frame(true, 4, op, uint64(len(payload)), payload)
}

func TestParserDeflate(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	lim := &Limits{MaxMessage: 64, MaxFragments: 4, Buffers: pool, Inflaters: NewInflaters()}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hello := deflated(t, []byte("héllo"))
	big := deflated(t, bytes.Repeat([]byte("a"), 200)) // a few bytes, 200 once inflated
	full := deflated(t, bytes.Repeat([]byte("b"), 64)) // exactly MaxMessage once inflated
	for _, tc := range []struct {
		name    string
		deflate bool
		stream  []byte
		events  []string
		kind    Kind
		code    core.CloseCode
	}{
		{"text", true, compressed(OpText, hello), []string{"1:héllo"}, None, 0},
		{"binary_fragmented_with_ping", true, cat(
			frame(false, 4, OpBinary, 3, hello[:3]), whole(true, OpPing, []byte("p")),
			frame(true, 0, OpContinuation, uint64(len(hello)-3), hello[3:])),
			[]string{"ping:p", "2:héllo"}, None, 0},
		{"uncompressed_too", true, cat(whole(true, OpText, []byte("plain")), compressed(OpText, hello)), []string{"1:plain", "1:héllo"}, None, 0},
		// RFC 7692 section 7.2.3: "Hello" in one block, with BFINAL set
		// (then the header of an empty stored block), in a stored block,
		// and in two blocks.
		{"rfc_one_block", true, compressed(OpText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), []string{"1:Hello"}, None, 0},
		{"rfc_bfinal", true, compressed(OpText, []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), []string{"1:Hello"}, None, 0},
		{"rfc_stored", true, compressed(OpText, []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}), []string{"1:Hello"}, None, 0},
		{"rfc_two_blocks", true, compressed(OpText, []byte{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}), []string{"1:Hello"}, None, 0},
		{"empty_message", true, compressed(OpBinary, []byte{0x00}), []string{"2:"}, None, 0},
		{"exactly_the_limit", true, compressed(OpText, full), []string{"1:" + string(bytes.Repeat([]byte("b"), 64))}, None, 0},
		{"not_negotiated", false, compressed(OpText, hello), nil, Violation, 1002},
		{"rsv1_on_continuation", true, cat(frame(false, 4, OpText, 2, hello[:2]), frame(true, 4, OpContinuation, uint64(len(hello)-2), hello[2:])), nil, Violation, 1002},
		{"rsv1_on_uncompressed_continuation", true, cat(whole(false, OpText, []byte("a")), frame(true, 4, OpContinuation, 1, []byte("b"))), nil, Violation, 1002},
		{"rsv1_on_ping", true, frame(true, 4, OpPing, 0, nil), nil, Violation, 1002},
		{"rsv1_on_close", true, frame(true, 4, OpClose, 2, []byte{0x03, 0xe8}), nil, Violation, 1002},
		{"rsv2", true, frame(true, 2, OpText, 0, nil), nil, Violation, 1002},
		{"rsv1_rsv3", true, frame(true, 5, OpText, 0, nil), nil, Violation, 1002},
		{"bad_data", true, compressed(OpBinary, []byte{0xff, 0xff, 0xff}), nil, Violation, 1007},
		{"empty_payload", true, compressed(OpBinary, nil), nil, Violation, 1007},
		{"truncated_data", true, compressed(OpBinary, hello[:2]), nil, Violation, 1007},
		{"bomb", true, compressed(OpBinary, big), nil, Violation, 1009},
		{"compressed_frame_too_big", true, frame(true, 4, OpBinary, 65, nil), nil, Violation, 1009},
		{"bad_utf8_inflated", true, compressed(OpText, deflated(t, []byte("ok\xff"))), nil, Violation, 1007},
		{"utf8_unfinished_inflated", true, compressed(OpText, deflated(t, []byte("ok\xe2\x82"))), nil, Violation, 1007},
		// Invalid UTF-8 before the limit is found before the size.
		{"bad_utf8_before_the_limit", true, compressed(OpText, deflated(t, append([]byte("\xff"), bytes.Repeat([]byte("a"), 100)...))), nil, Violation, 1007},
		// A rune cut at the limit: the message ends there, invalid.
		{"utf8_unfinished_at_the_limit", true, compressed(OpText, deflated(t, append(bytes.Repeat([]byte("a"), 63), 0xc3))), nil, Violation, 1007},
		{"binary_not_checked", true, compressed(OpBinary, deflated(t, []byte("ok\xff"))), []string{"2:ok\xff"}, None, 0},
	} {
		setup := func(p *Parser) {
			if tc.deflate {
				p.Deflate(false)
			}
		}
		for _, step := range []int{0, 1, 2, 3, 7} {
			for _, direct := range []bool{false, true} {
				out := runWith(t, lim, tc.stream, step, direct, setup)
				require.Equal(t, tc.events, out.events, "%s step %d direct %v", tc.name, step, direct)
				require.Equal(t, tc.kind, out.final.Kind, "%s step %d direct %v: %+v", tc.name, step, direct, out.final)
				require.Equal(t, tc.code, out.final.Code, "%s step %d direct %v", tc.name, step, direct)
			}
		}
	}
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases, "buffers not released: %+v", st)
}

// TestParserDeflateTakeover: with context takeover a message may refer
// back to earlier ones (and to more than one window's worth of them);
// without it, such a message does not inflate.
func TestParserDeflateTakeover(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	lim := &Limits{MaxMessage: 1 << 20, Buffers: pool, Inflaters: NewInflaters()}
	first := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog "), 1000) // 44 KB: more than the window
	msgs := [][]byte{first, []byte("the quick brown fox jumps over the lazy dog"), []byte("xyz"), []byte("the lazy dog xyz")}
	z := deflateMessages(t, true, msgs...)
	require.Less(t, len(z[1]), 10, "the second message refers back to the first")
	var stream []byte
	var want []string
	for i := range msgs {
		stream = append(stream, compressed(OpBinary, z[i])...)
		want = append(want, "2:"+string(msgs[i]))
	}
	for _, step := range []int{0, 5, 1000} {
		out := runWith(t, lim, stream, step, true, func(p *Parser) { p.Deflate(true) })
		require.Equal(t, want, out.events, "step %d", step)
		require.Equal(t, None, out.final.Kind)

		out = runWith(t, lim, stream, step, true, func(p *Parser) { p.Deflate(false) })
		require.Equal(t, want[:1], out.events)
		require.Equal(t, Violation, out.final.Kind)
		require.Equal(t, core.CloseInvalidPayload, out.final.Code)
		require.Equal(t, BadDeflate, out.final.Reason)
	}
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases, "buffers not released: %+v", st)
}

// TestInflateStopsAtTheLimit: a decompression bomb (100 MiB of zeros, 100
// KiB compressed) is refused once MaxMessage bytes came out, with most of
// its input never read and no buffer past the limit.
func TestInflateStopsAtTheLimit(t *testing.T) {
	pool := bufpool.New(bufpool.Config{})
	lim := &Limits{MaxMessage: 1 << 20, Buffers: pool, Inflaters: NewInflaters()}
	bomb := zeroBomb(100 << 20)
	var p Parser
	p.Init(lim)
	defer p.Release()
	z := newInflater()
	z.src = source{b: bomb}
	require.NoError(t, z.fr.(flate.Resetter).Reset(&z.src, nil))
	out, code, _ := p.inflateTo(z, false, int64(len(bomb)))
	require.Nil(t, out)
	require.Equal(t, core.CloseMessageTooBig, code)
	require.Less(t, z.src.i, len(bomb)/50, "inflated on past the limit: read %d of %d bytes", z.src.i, len(bomb))
	require.Zero(t, pool.Stats().Oversize, "a buffer past the limit")
}

// zeroBomb returns a permessage-deflate payload that inflates to n zero
// bytes or a little more, written by hand (compressing n bytes with
// compress/flate would take seconds under the race detector): one block
// with fixed Huffman codes holding a literal 0 and then matches of 258
// bytes at distance 1, 13 bits each, then the header of an empty stored
// block (whose LEN and NLEN are the tail the sender removes).
func zeroBomb(n int) []byte {
	var w bitWriter
	w.bits(0b010, 3)      // BFINAL 0, BTYPE 01 (fixed Huffman)
	w.code(0b00110000, 8) // literal 0
	for range n/258 + 1 { // length 258 (code 285), distance 1 (code 0)
		w.code(0b11000101, 8)
		w.code(0, 5)
	}
	w.code(0, 7)     // end of block (256)
	w.bits(0b000, 3) // BFINAL 0, BTYPE 00 (stored), then padding
	return w.flush()
}

// bitWriter writes DEFLATE's bit stream: values least significant bit
// first, Huffman codes most significant bit first.
type bitWriter struct {
	b   []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) code(c uint64, n uint) {
	var r uint64
	for i := range n {
		r |= (c >> i & 1) << (n - 1 - i)
	}
	w.bits(r, n)
}

func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.b = append(w.b, byte(w.acc))
	}
	return w.b
}

// TestZeroBomb: the hand-made bomb inflates as it says.
func TestZeroBomb(t *testing.T) {
	pool := bufpool.New(bufpool.Config{})
	lim := &Limits{MaxMessage: 1 << 20, Buffers: pool, Inflaters: NewInflaters()}
	out := runWith(t, lim, compressed(OpBinary, zeroBomb(100_000)), 0, false, func(p *Parser) { p.Deflate(false) })
	require.Len(t, out.events, 1)
	require.Equal(t, "2:"+string(make([]byte, 100_000/258*258+258+1)), out.events[0])
}

// FuzzInflateSource: the inflater's source reads as its bytes followed by
// the tail, whichever of ReadByte and Read is used.
func FuzzInflateSource(f *testing.F) {
	f.Add([]byte("abc"), []byte{1, 0, 5})
	f.Fuzz(func(t *testing.T, b, sizes []byte) {
		want := append(append([]byte(nil), b...), inflateTail[:]...)
		s := source{b: b}
		var got []byte
		for i := 0; ; i++ {
			n := 0
			if len(sizes) > 0 {
				n = int(sizes[i%len(sizes)] % 16)
			}
			if n == 0 {
				c, err := s.ReadByte()
				if err != nil {
					break
				}
				got = append(got, c)
				continue
			}
			p := make([]byte, n)
			k, err := s.Read(p)
			got = append(got, p[:k]...)
			if err != nil {
				break
			}
		}
		require.Equal(t, want, got)
	})
}

// BenchmarkParserInflate: one compressed 1 KiB text message (JSON-like,
// 5:1) from bytes in memory to its inflated message, without context
// takeover (a pooled inflater per message).
func BenchmarkParserInflate(b *testing.B) {
	lim := &Limits{MaxMessage: 1 << 20, Buffers: bufpool.New(bufpool.Config{}), Inflaters: NewInflaters()}
	var p Parser
	p.Init(lim)
	p.Deflate(false)
	defer p.Release()
	var msg []byte
	for i := 0; len(msg) < 1024; i++ {
		msg = append(msg, `{"type":"message","room":"lobby","seq":`...)
		msg = append(msg, byte('0'+i%10))
		msg = append(msg, `,"text":"hello there"}`...)
	}
	msg = msg[:1024]
	f := compressed(OpText, deflated(b, msg))
	in := make([]byte, len(f))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		copy(in, f)
		_, ev := p.Feed(in)
		if ev.Kind != Message {
			b.Fatalf("%v %s", ev.Kind, ev.Reason)
		}
		ev.Msg.Release()
	}
}
