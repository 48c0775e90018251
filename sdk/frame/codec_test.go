package frame_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk/frame"
	"github.com/strandws/strand/sdk/frame/wire"
)

func TestRoundTrip(t *testing.T) {
	cached := frame.EncodeHeaders(typicalHeaders())
	cases := sampleFrames()
	// One case per field with an extreme or unusual value.
	cases["session_id"] = frame.Frame{SessionID: math.MaxUint64}
	cases["sequence"] = frame.Frame{Sequence: math.MaxUint64}
	cases["kind"] = frame.Frame{Kind: frame.KindCall}
	cases["kind unknown to this minor"] = frame.Frame{Kind: frame.Kind(200)}
	cases["phase"] = frame.Frame{Phase: frame.PhaseLogging}
	cases["method"] = frame.Frame{Method: frame.MethodEventError}
	cases["method max"] = frame.Frame{Method: frame.Method(math.MaxUint16)}
	cases["call_id"] = frame.Frame{CallID: math.MaxUint64 - 1}
	cases["status"] = frame.Frame{Status: frame.StatusPluginGone}
	cases["payload binary"] = frame.Frame{Payload: []byte{0, 1, 2, 0xff, 0}}
	cases["payload empty"] = frame.Frame{Payload: []byte{}}
	cases["payload large"] = frame.Frame{Payload: bytes.Repeat([]byte("x"), 100_000)}
	cases["response_status"] = frame.Frame{ResponseStatus: 599}
	cases["close_code"] = frame.Frame{CloseCode: 4999}
	cases["close_reason utf8"] = frame.Frame{CloseReason: "ok ✓ ปิด"}
	cases["handshake zero"] = frame.Frame{Handshake: &frame.Handshake{}}
	cases["handshake max"] = frame.Frame{Handshake: &frame.Handshake{Magic: math.MaxUint32, ABIMajor: math.MaxUint16, ABIMinor: 1}}
	cases["request empty"] = frame.Frame{Request: &frame.Request{}}
	cases["request negative timestamp"] = frame.Frame{Request: &frame.Request{TimestampUnixNano: -1}}
	cases["request empty header value"] = frame.Frame{Request: &frame.Request{Headers: []frame.Header{{Name: "X-Empty"}, {Value: "no name"}}}}
	cases["request repeated header"] = frame.Frame{Request: &frame.Request{Headers: []frame.Header{{"A", "1"}, {"A", "2"}, {"A", "1"}}}}
	cases["request cached headers"] = frame.Frame{SessionID: 3, Payload: []byte("body"), Request: &frame.Request{
		Method: "POST", Path: "/x", Params: []frame.Header{{"id", "1"}}, CachedHeaders: cached, Host: "h",
	}}
	cases["request cached headers override Headers"] = frame.Frame{Request: &frame.Request{
		Headers: []frame.Header{{"Ignored", "yes"}}, CachedHeaders: cached,
	}}
	cases["hello"] = frame.Frame{Kind: frame.KindHandshake, Method: frame.MethodHello, Hello: &frame.Hello{
		PluginName: "echo", MaxFrameSize: 1 << 20, InitialCredits: 4096,
		Entries: []frame.EntryDecl{{Name: "echo", Phases: 1<<frame.PhaseRequestFilter | 1<<frame.PhaseWebSocket}, {Name: "log", Phases: 1 << frame.PhaseLogging}},
	}}
	cases["hello empty"] = frame.Frame{Hello: &frame.Hello{}}
	cases["abi 1.1 fields"] = frame.Frame{
		Credits: math.MaxUint32, ResponseHeaders: []frame.Header{{"Content-Type", "text/plain"}, {"X", ""}},
		Subprotocol: "chat.v1", Room: "lobby", ExcludeSelf: true, BytesIn: -1, BytesOut: math.MaxInt64,
		DurationNanos: 12345, Error: "plugin speaks ABI 2.0, host 1.1", Entry: "echo",
		Request: &frame.Request{RemoteAddr: "127.0.0.1:5555", CachedHeaders: cached, ExtraHeaders: []frame.Header{{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}},
	}
	cases["abi 1.2 fields"] = frame.Frame{Kind: frame.KindCall, Method: frame.MethodWebSocketSendText, SessionID: 7, Payload: []byte("secret"), Uncompressed: true, Route: "/rooms/{room}"}
	cases["header edit empty"] = frame.Frame{HeaderEdits: []frame.HeaderEdit{{}}}
	cases["everything"] = frame.Frame{
		SessionID: 1, Sequence: 2, Kind: frame.KindCall, Phase: frame.PhaseResponseBodyFilter,
		Method: frame.MethodSetResponseFullBody, CallID: 3, Status: frame.StatusTimeout,
		Payload: []byte("payload"), Request: sampleFrames()["request filter"].Request,
		HeaderEdits:    sampleFrames()["reply with edits"].HeaderEdits,
		ResponseStatus: 404, CloseCode: 1008, CloseReason: "policy",
		Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: 1, ABIMinor: 2},
	}

	enc := frame.NewEncoder()
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			buf := enc.Encode(&f)
			v, err := frame.Decode(buf)
			require.NoError(t, err)
			want := normalize(f)
			require.Equal(t, want, copyOut(t, &v))
			checkGenerated(t, buf, want)

			// The stream form carries the same bytes after a length prefix.
			stream := enc.AppendFrame([]byte("prev"), &f)
			require.Equal(t, "prev", string(stream[:4]))
			v2, err := frame.Decode(stream[8:])
			require.NoError(t, err)
			require.Equal(t, want, copyOut(t, &v2))
		})
	}
}

// checkGenerated reads buf with the flatc-generated accessors: the schema's
// slots and the hand-written decoder must agree.
func checkGenerated(t *testing.T, buf []byte, want frame.Frame) {
	t.Helper()
	require.True(t, bytes.Equal(buf[4:8], []byte("STRW")), "file identifier")
	g := wire.GetRootAsFrame(buf, 0)
	require.Equal(t, want.SessionID, g.SessionId())
	require.Equal(t, want.Sequence, g.Sequence())
	require.Equal(t, want.Kind, g.Kind())
	require.Equal(t, want.Phase, g.Phase())
	require.Equal(t, want.Method, g.Method())
	require.Equal(t, want.CallID, g.CallId())
	require.Equal(t, want.Status, g.Status())
	require.Equal(t, string(want.Payload), string(g.PayloadBytes()))
	require.Equal(t, want.ResponseStatus, g.ResponseStatus())
	require.Equal(t, want.CloseCode, g.CloseCode())
	require.Equal(t, want.CloseReason, string(g.CloseReason()))
	require.Equal(t, len(want.HeaderEdits), g.HeaderEditsLength())
	for i, e := range want.HeaderEdits {
		var ge wire.HeaderEdit
		require.True(t, g.HeaderEdits(&ge, i))
		require.Equal(t, e, frame.HeaderEdit{Op: ge.Op(), Name: string(ge.Name()), Value: string(ge.Value())})
	}
	if hs := g.Handshake(nil); want.Handshake == nil {
		require.Nil(t, hs)
	} else {
		require.NotNil(t, hs)
		require.Equal(t, *want.Handshake, frame.Handshake{Magic: hs.Magic(), ABIMajor: hs.AbiMajor(), ABIMinor: hs.AbiMinor()})
	}
	require.Equal(t, want.Credits, g.Credits())
	require.Equal(t, want.Subprotocol, string(g.Subprotocol()))
	require.Equal(t, want.Room, string(g.Room()))
	require.Equal(t, want.ExcludeSelf, g.ExcludeSelf())
	require.Equal(t, want.BytesIn, g.BytesIn())
	require.Equal(t, want.BytesOut, g.BytesOut())
	require.Equal(t, want.DurationNanos, g.DurationNanos())
	require.Equal(t, want.Error, string(g.Error()))
	require.Equal(t, want.Entry, string(g.Entry()))
	require.Equal(t, want.Uncompressed, g.Uncompressed())
	require.Equal(t, want.Route, string(g.Route()))
	require.Equal(t, len(want.ResponseHeaders), g.ResponseHeadersLength())
	for i, h := range want.ResponseHeaders {
		var kv wire.KV
		require.True(t, g.ResponseHeaders(&kv, i))
		require.Equal(t, h, frame.Header{Name: string(kv.Name()), Value: string(kv.Value())})
	}
	if gh := g.Hello(nil); want.Hello == nil {
		require.Nil(t, gh)
	} else {
		require.NotNil(t, gh)
		require.Equal(t, want.Hello.PluginName, string(gh.PluginName()))
		require.Equal(t, want.Hello.MaxFrameSize, gh.MaxFrameSize())
		require.Equal(t, want.Hello.InitialCredits, gh.InitialCredits())
		require.Equal(t, len(want.Hello.Entries), gh.EntriesLength())
		for i, e := range want.Hello.Entries {
			var ge wire.EntryDecl
			require.True(t, gh.Entries(&ge, i))
			require.Equal(t, e, frame.EntryDecl{Name: string(ge.Name()), Phases: ge.Phases()})
		}
	}
	r := g.Request(nil)
	if want.Request == nil {
		require.Nil(t, r)
		return
	}
	require.NotNil(t, r)
	w := want.Request
	require.Equal(t, w.Method, string(r.Method()))
	require.Equal(t, w.Path, string(r.Path()))
	require.Equal(t, w.Query, string(r.Query()))
	require.Equal(t, w.Host, string(r.Host()))
	require.Equal(t, w.ClientAddr, string(r.ClientAddr()))
	require.Equal(t, w.TimestampUnixNano, r.TimestampUnixNano())
	require.Equal(t, w.RemoteAddr, string(r.RemoteAddr()))
	var kv wire.KV
	require.Equal(t, len(w.Params), r.ParamsLength())
	for i, p := range w.Params {
		require.True(t, r.Params(&kv, i))
		require.Equal(t, p, frame.Header{Name: string(kv.Name()), Value: string(kv.Value())})
	}
	require.Equal(t, len(w.Headers), r.HeadersLength())
	for i, h := range w.Headers {
		require.True(t, r.Headers(&kv, i))
		require.Equal(t, h, frame.Header{Name: string(kv.Name()), Value: string(kv.Value())})
	}
}

func TestEncoderReuse(t *testing.T) {
	// A big frame then a small one: the second must not carry anything of
	// the first.
	enc := frame.NewEncoder()
	big := sampleFrames()["request filter"]
	big.Payload = bytes.Repeat([]byte("b"), 10_000)
	enc.Encode(&big)
	small := frame.Frame{SessionID: 1, Method: frame.MethodEnd}
	v, err := frame.Decode(enc.Encode(&small))
	require.NoError(t, err)
	require.Equal(t, small, copyOut(t, &v))
}

func TestEncoderPool(t *testing.T) {
	var p frame.EncoderPool
	e := p.Get()
	require.NotNil(t, e)
	f := sampleFrames()["text message"]
	buf := append([]byte(nil), e.Encode(&f)...)
	p.Put(e)
	p.Put(nil)
	e2 := p.Get()
	require.Equal(t, buf, e2.Encode(&f))

	// An encoder grown by a large frame is dropped, not pooled: the pool
	// hands out something that encodes correctly either way.
	big := frame.Frame{Payload: make([]byte, 2<<20)}
	e2.Encode(&big)
	p.Put(e2)
	require.Equal(t, buf, p.Get().Encode(&f))
}

// TestWireNumbers pins the method IDs and statuses of
// ARCHITECTURE.md ("The boundary between host and plugin"): they are only
// appended, never renumbered. A new schema value must be added here too.
func TestWireNumbers(t *testing.T) {
	methods := map[frame.Method]uint16{
		frame.MethodNone: 0, frame.MethodNext: 1, frame.MethodEnd: 2, frame.MethodGetPayload: 3,
		frame.MethodSetResponseHeader: 100, frame.MethodRemoveResponseHeader: 101,
		frame.MethodSetResponseStatus: 102, frame.MethodSetResponseFullBody: 103,
		frame.MethodResponseStreamData: 104, frame.MethodResponseStreamEnd: 105,
		frame.MethodResponseStreamHeader: 106, frame.MethodReadResponseFullBody: 107,
		frame.MethodReadResponseStatus: 108, frame.MethodReadResponseBytes: 109,
		frame.MethodReadResponseHeaders: 110, frame.MethodReadResponseDuration: 111,
		frame.MethodReadResponseError:   112,
		frame.MethodReadRequestFullBody: 200, frame.MethodReadRequestHeader: 201,
		frame.MethodReadRequestHeaders: 202, frame.MethodReadRequestURL: 203,
		frame.MethodReadRequestPath: 204, frame.MethodReadRequestQuery: 205,
		frame.MethodReadRequestParams: 206, frame.MethodReadRequestHost: 207,
		frame.MethodReadRequestClientIP: 208, frame.MethodReadRequestMethod: 209,
		frame.MethodReadRequestBytes: 210, frame.MethodReadRequestTimestamp: 211,
		frame.MethodWebSocketUpgrade: 300, frame.MethodWebSocketSendText: 301,
		frame.MethodWebSocketSendBinary: 302, frame.MethodWebSocketClose: 303,
		frame.MethodRoomJoin: 310, frame.MethodRoomLeave: 311,
		frame.MethodRoomBroadcastText: 312, frame.MethodRoomBroadcastBinary: 313,
		frame.MethodEventWebSocketOpen: 350, frame.MethodEventTextMessage: 351,
		frame.MethodEventBinaryMessage: 352, frame.MethodEventClose: 353,
		frame.MethodEventError: 354,
		frame.MethodHello:      400, frame.MethodAccept: 401, frame.MethodRefuse: 402,
		frame.MethodPing: 403, frame.MethodPong: 404, frame.MethodGoodbye: 405,
		frame.MethodCredits: 406,
	}
	require.Len(t, methods, 49, "a method constant is duplicated")
	for m, id := range methods {
		require.Equal(t, id, uint16(m), m.String())
	}
	require.Len(t, wire.EnumNamesMethod, len(methods), "schema and this table differ")

	statuses := []frame.Status{
		frame.StatusOk, frame.StatusError, frame.StatusInvalid, frame.StatusUnsupported,
		frame.StatusStreamEnd, frame.StatusPanic, frame.StatusBackpressure, frame.StatusTimeout,
		frame.StatusPluginGone,
	}
	for i, s := range statuses {
		require.Equal(t, uint8(i), uint8(s), s.String())
	}
	require.Len(t, wire.EnumNamesStatus, len(statuses), "schema and this table differ")

	require.Equal(t, uint16(1), frame.ABIMajor)
	require.Equal(t, uint16(2), frame.ABIMinor)
	require.Equal(t, "STRN", string(binary.LittleEndian.AppendUint32(nil, frame.Magic)))
}

func TestDecodeTruncated(t *testing.T) {
	enc := frame.NewEncoder()
	for name, f := range sampleFrames() {
		t.Run(name, func(t *testing.T) {
			buf := append([]byte(nil), enc.Encode(&f)...)
			want := normalize(f)
			failed := 0
			for n := range len(buf) {
				// A fresh copy at each length, so nothing past n is readable.
				v, err := frame.Decode(append([]byte(nil), buf[:n]...))
				if err != nil {
					require.ErrorIs(t, err, frame.ErrMalformed, "prefix of %d/%d bytes", n, len(buf))
					failed++
					continue
				}
				// Only trailing padding (string terminators, alignment)
				// may be cut without harm.
				require.Equal(t, want, copyOut(t, &v), "prefix of %d/%d bytes", n, len(buf))
			}
			require.Greater(t, failed, len(buf)-8)
		})
	}
}

func TestDecodeBadInput(t *testing.T) {
	valid := frame.NewEncoder().Encode(&frame.Frame{SessionID: 1})
	ident := []byte("STRW")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name string
		buf  []byte
		why  string
	}{
		{"nil", nil, "shorter than root offset"},
		{"short", []byte{1, 2, 3}, "shorter than root offset"},
		{"wrong identifier", cat(valid[:4], []byte("XXXX"), valid[8:]), "wrong file identifier"},
		{"root past end", cat([]byte{0xff, 0xff, 0xff, 0x7f}, valid[4:]), "frame: table out of bounds"},
		{"root overlaps end", cat([]byte{10, 0, 0, 0}, ident, []byte{0, 0, 0, 0}), "frame: table out of bounds"},
		{"all zero", cat([]byte{0, 0, 0, 0}, ident, make([]byte, 32)), "frame: bad vtable size"},
		{"all ones", cat([]byte{8, 0, 0, 0}, ident, bytes.Repeat([]byte{0xff}, 32)), "frame: bad vtable size"},
		{"root at identifier", cat([]byte{4, 0, 0, 0}, valid[4:]), "frame: vtable out of bounds"},
		{"vtable before buffer", cat([]byte{8, 0, 0, 0}, ident, []byte{0x10, 0, 0, 0}), "frame: vtable out of bounds"},
		{"vtable after buffer", cat([]byte{8, 0, 0, 0}, ident, []byte{0xf0, 0xff, 0xff, 0xff}), "frame: vtable out of bounds"},
		// Root table at 12, its vtable at 8.
		{"vtable size odd", cat([]byte{12, 0, 0, 0}, ident, []byte{5, 0, 4, 0, 4, 0, 0, 0}), "frame: bad vtable size"},
		{"vtable size too small", cat([]byte{12, 0, 0, 0}, ident, []byte{2, 0, 4, 0, 4, 0, 0, 0}), "frame: bad vtable size"},
		{"vtable size past end", cat([]byte{12, 0, 0, 0}, ident, []byte{40, 0, 4, 0, 4, 0, 0, 0}), "frame: bad vtable size"},
		// Root table at 16, vtable at 8 with session_id at table+6: 8 bytes
		// from 22 do not fit in 20.
		{"scalar past end", cat([]byte{16, 0, 0, 0}, ident, []byte{6, 0, 8, 0, 6, 0, 0, 0, 8, 0, 0, 0}), "session_id: field out of bounds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := frame.Decode(tc.buf)
			require.ErrorIs(t, err, frame.ErrMalformed)
			require.ErrorContains(t, err, tc.why)
			require.Equal(t, frame.View{}, v)
		})
	}
}

func TestDecodeEmptyView(t *testing.T) {
	var v frame.View
	require.Equal(t, frame.Frame{}, copyOut(t, &v))
	require.Panics(t, func() { v.HeaderEdit(0) })
}

func TestCheckHandshake(t *testing.T) {
	good := frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor}
	cases := []struct {
		name string
		f    frame.Frame
		why  string // empty: accepted
	}{
		{"ok", frame.Frame{Kind: frame.KindHandshake, Handshake: &good}, ""},
		{"newer minor", frame.Frame{Kind: frame.KindHandshake, Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor + 7}}, ""},
		{"other major", frame.Frame{Kind: frame.KindHandshake, Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor + 1}}, "peer ABI 2.0"},
		{"bad magic", frame.Frame{Kind: frame.KindHandshake, Handshake: &frame.Handshake{Magic: 1, ABIMajor: frame.ABIMajor}}, "magic 0x1"},
		{"not a handshake", frame.Frame{Kind: frame.KindEvent, Handshake: &good}, "first frame is Event"},
		{"no handshake table", frame.Frame{Kind: frame.KindHandshake}, "not a handshake"},
	}
	enc := frame.NewEncoder()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := frame.Decode(enc.Encode(&tc.f))
			require.NoError(t, err)
			err = frame.CheckHandshake(&v)
			if tc.why == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, frame.ErrHandshake)
			require.ErrorContains(t, err, tc.why)
		})
	}
}
