package wsproto

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// frame builds a masked client frame with a declared length (payload may
// be shorter: a truncated frame).
func frame(fin bool, rsv, op byte, declared uint64, payload []byte) []byte {
	var b []byte
	b0 := op | rsv<<4
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	switch {
	case declared <= 125:
		b = append(b, 0x80|byte(declared))
	case declared <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(declared))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, declared)
	}
	mask := [4]byte{1, 2, 3, 4}
	b = append(b, mask[:]...)
	p := append([]byte(nil), payload...)
	ws.Cipher(p, mask, 0)
	return append(b, p...)
}

func whole(fin bool, op byte, payload []byte) []byte {
	return frame(fin, 0, op, uint64(len(payload)), payload)
}

type outcome struct {
	events []string
	final  Event
}

// run feeds stream in chunks of size step (0: whole) and records events.
func run(t *testing.T, lim *Limits, stream []byte, step int, direct bool) outcome {
	t.Helper()
	return runWith(t, lim, stream, step, direct, nil)
}

// runWith is run with setup applied to the Parser after Init.
func runWith(t *testing.T, lim *Limits, stream []byte, step int, direct bool, setup func(*Parser)) outcome {
	t.Helper()
	var p Parser
	p.Init(lim)
	if setup != nil {
		setup(&p)
	}
	defer p.Release()
	var out outcome
	in := append([]byte(nil), stream...)
	record := func(ev *Event) bool {
		switch ev.Kind {
		case None:
			return false
		case Message:
			out.events = append(out.events, string(rune('0'+ev.Op))+":"+string(ev.Msg.B))
			ev.Msg.Release()
			return false
		case Ping, Pong:
			out.events = append(out.events, ev.Kind.String()+":"+string(ev.Payload))
			return false
		}
		out.final = *ev
		return true
	}
	for len(in) > 0 {
		if direct {
			if d := p.Direct(); len(d) > 0 {
				k := copy(d, in[:min(len(in), max(step, 1))])
				in = in[k:]
				if record(p.Wrote(k)) {
					return out
				}
				continue
			}
		}
		chunk := in
		if step > 0 && len(chunk) > step {
			chunk = chunk[:step]
		}
		for len(chunk) > 0 {
			n, ev := p.Feed(chunk)
			chunk, in = chunk[n:], in[n:]
			if record(ev) {
				return out
			}
		}
	}
	return out
}

func TestParser(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	lim := &Limits{MaxMessage: 64, MaxFragments: 4, Buffers: pool, Inflaters: NewInflaters()}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name   string
		stream []byte
		events []string
		kind   Kind
		code   core.CloseCode
	}{
		{"text", whole(true, OpText, []byte("héllo")), []string{"1:héllo"}, None, 0},
		{"empty_binary", whole(true, OpBinary, nil), []string{"2:"}, None, 0},
		{"fragments_with_ping", cat(whole(false, OpText, []byte("ab\xc3")), whole(true, OpPing, []byte("p")), whole(true, OpContinuation, []byte("\xa9c"))),
			[]string{"ping:p", "1:abéc"}, None, 0},
		{"close", whole(true, OpClose, []byte{0x03, 0xe8, 'b', 'y', 'e'}), nil, Close, 1000},
		{"close_empty", whole(true, OpClose, nil), nil, Close, core.CloseNoStatus},
		{"close_one_byte", whole(true, OpClose, []byte{3}), nil, Violation, 1002},
		{"close_bad_code", whole(true, OpClose, []byte{0x03, 0xed}), nil, Violation, 1002},
		{"close_bad_utf8", whole(true, OpClose, []byte{0x03, 0xe8, 0xff}), nil, Violation, 1007},
		{"rsv", frame(true, 4, OpText, 0, nil), nil, Violation, 1002},
		{"unmasked", []byte{0x81, 0x00}, nil, Violation, 1002},
		{"reserved_op", whole(true, 3, nil), nil, Violation, 1002},
		{"fragmented_control", whole(false, OpPing, nil), nil, Violation, 1002},
		{"big_control", whole(true, OpPing, make([]byte, 126)), nil, Violation, 1002},
		{"continuation_first", whole(true, OpContinuation, nil), nil, Violation, 1002},
		{"text_in_message", cat(whole(false, OpText, nil), whole(true, OpText, nil)), nil, Violation, 1002},
		{"msb", frame(true, 0, OpBinary, math.MaxUint64, nil), nil, Violation, 1002},
		{"too_big", frame(true, 0, OpBinary, 65, nil), nil, Violation, 1009},
		{"overflow", cat(whole(false, OpText, []byte("a")), frame(true, 0, OpContinuation, math.MaxInt64, nil)), nil, Violation, 1009},
		{"max_int63", frame(true, 0, OpBinary, math.MaxInt64, nil), nil, Violation, 1009},
		{"too_many_fragments", cat(whole(false, OpBinary, nil), whole(false, OpContinuation, nil), whole(false, OpContinuation, nil), whole(false, OpContinuation, nil), whole(true, OpContinuation, nil)), nil, Violation, 1008},
		{"bad_utf8_first_fragment", cat(whole(false, OpText, []byte("a\xff")), frame(false, 0, OpContinuation, 10, nil)), nil, Violation, 1007},
		// The invalid byte is found before the frame's payload ends.
		{"bad_utf8_fail_fast", frame(true, 0, OpText, 60, []byte("ok\xed\xa0")), nil, Violation, 1007},
		{"utf8_unfinished_at_end", cat(whole(false, OpText, []byte("a")), whole(true, OpContinuation, []byte("\xe2\x82"))), nil, Violation, 1007},
		{"truncated", frame(true, 0, OpText, 10, []byte("abc")), nil, None, 0},
	} {
		for _, step := range []int{0, 1, 2, 3, 7} {
			for _, direct := range []bool{false, true} {
				out := run(t, lim, tc.stream, step, direct)
				require.Equal(t, tc.events, out.events, "%s step %d direct %v", tc.name, step, direct)
				require.Equal(t, tc.kind, out.final.Kind, "%s step %d direct %v: %+v", tc.name, step, direct, out.final)
				require.Equal(t, tc.code, out.final.Code, "%s step %d direct %v", tc.name, step, direct)
			}
		}
	}
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases, "buffers not released: %+v", st)
}

// TestParserGrowsWithPayload: a declared length reserves at most
// FirstChunk; the buffer doubles as bytes arrive.
func TestParserGrowsWithPayload(t *testing.T) {
	pool := bufpool.New(bufpool.Config{})
	lim := &Limits{MaxMessage: 1 << 20, Buffers: pool, Inflaters: NewInflaters()}
	var p Parser
	p.Init(lim)
	defer p.Release()
	hdr := frame(true, 0, OpBinary, 1<<20, nil)
	n, ev := p.Feed(hdr)
	require.Equal(t, len(hdr), n)
	require.Equal(t, None, ev.Kind)
	d := p.Direct()
	require.LessOrEqual(t, cap(d), FirstChunk)
	p.Wrote(2)
	require.LessOrEqual(t, cap(p.msg.B), FirstChunk)
	require.Equal(t, int64(1<<20-2), p.DirectRemaining())
}

// FuzzUTF8State: fed in two pieces cut anywhere, the incremental check
// agrees with utf8.Valid on the whole, and fails no later than the first
// chunk that holds an invalid byte.
func FuzzUTF8State(f *testing.F) {
	f.Add([]byte("héllo wörld"), 3)
	f.Add([]byte("\xed\xa0\x80"), 1)
	f.Add([]byte("\xf4\x90\x80\x80"), 2)
	f.Add([]byte("a\xe2\x82"), 2)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if len(b) == 0 {
			return
		}
		cut = int(uint(cut) % uint(len(b)+1))
		var s utf8State
		ok1 := s.valid(b[:cut])
		ok := ok1 && s.valid(b[cut:])
		want := utf8.Valid(b)
		require.Equal(t, want, ok && s.need == 0, "%q cut %d", b, cut)
		if !ok1 {
			// The first piece alone is not a prefix of any valid text.
			require.False(t, utf8.Valid(b[:cut]))
		}
	})
}

// BenchmarkParserFeed: one 64-byte binary frame from bytes in memory to a
// message buffer (header, unmask, copy), the buffer released.
func BenchmarkParserFeed(b *testing.B) {
	for _, tc := range []struct {
		name string
		op   byte
	}{{"binary", OpBinary}, {"text", OpText}} {
		b.Run(tc.name, func(b *testing.B) {
			lim := &Limits{MaxMessage: 1 << 20, Buffers: bufpool.New(bufpool.Config{}), Inflaters: NewInflaters()}
			var p Parser
			p.Init(lim)
			f := whole(true, tc.op, bytes.Repeat([]byte("a"), 64))
			in := make([]byte, len(f))
			b.ReportAllocs()
			b.SetBytes(64)
			for b.Loop() {
				copy(in, f)
				_, ev := p.Feed(in)
				ev.Msg.Release()
			}
		})
	}
}

// TestParserPark: a Parser parks only at rest, and one unparked from that
// state goes on as the first would have (frame numbers, deflate).
func TestParserPark(t *testing.T) {
	lim := &Limits{MaxMessage: 1 << 20, MaxFragments: 16, Buffers: bufpool.New(bufpool.Config{Poison: true})}
	var p Parser
	p.Init(lim)
	p.Deflate(false)

	// Mid-header, mid-payload and mid-message: no parking.
	f := whole(true, 0x2, []byte("abcdef"))
	n, ev := p.Feed(bytes.Clone(f[:1]))
	require.Equal(t, 1, n)
	require.Equal(t, None, ev.Kind)
	_, ok := p.Park()
	require.False(t, ok, "parked inside a header")
	_, ev = p.Feed(bytes.Clone(f[1 : len(f)-2]))
	require.Equal(t, None, ev.Kind)
	_, ok = p.Park()
	require.False(t, ok, "parked inside a payload")
	_, ev = p.Feed(bytes.Clone(f[len(f)-2:]))
	require.Equal(t, Message, ev.Kind)
	ev.Msg.Release()
	_, ev = p.Feed(whole(false, 0x1, []byte("ab")))
	require.Equal(t, None, ev.Kind)
	_, ok = p.Park()
	require.False(t, ok, "parked inside a fragmented message")
	_, ev = p.Feed(whole(true, 0x0, []byte("cd")))
	require.Equal(t, Message, ev.Kind)
	require.Equal(t, "abcd", string(ev.Msg.B))
	ev.Msg.Release()

	// At rest: parks, and the state carries on in another Parser.
	frames := p.Frame()
	st, ok := p.Park()
	require.True(t, ok)
	p.Release()
	var q Parser
	q.Unpark(lim, st)
	require.True(t, q.deflate)
	require.False(t, q.takeover)
	_, ev = q.Feed(whole(true, 0x1, []byte("x")))
	require.Equal(t, Message, ev.Kind)
	require.NotEqual(t, frames, q.Frame(), "frame numbers restarted")
	ev.Msg.Release()

	// A violation is kept: no parking.
	_, ev = q.Feed(whole(true, 0x3, nil))
	require.Equal(t, Violation, ev.Kind)
	_, ok = q.Park()
	require.False(t, ok, "parked a dead parser")
	q.Release()
}
