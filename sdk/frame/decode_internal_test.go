package frame

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecodeCorrupt corrupts one offset or length deep inside a valid
// frame and checks that Decode names it.
func TestDecodeCorrupt(t *testing.T) {
	full := Frame{
		SessionID: 1, Payload: []byte("payload"), CloseReason: "bye",
		Request: &Request{
			Method:  "GET",
			Headers: []Header{{"A", "1"}, {"B", "2"}},
		},
		HeaderEdits: []HeaderEdit{{Op: HeaderSet, Name: "X", Value: "y"}},
		Handshake:   &Handshake{Magic: Magic},
	}
	put := binary.LittleEndian.PutUint32
	// fieldAt returns the position of a field of the table at pos.
	fieldAt := func(t *testing.T, b []byte, pos uint64, slot int) uint32 {
		t.Helper()
		tb, why := tableAt(b, pos)
		require.Empty(t, why)
		p := tb.field(b, slot)
		require.NotZero(t, p)
		return p
	}
	target := func(b []byte, p uint32) uint32 { return p + le32(b[p:]) }
	root := func(b []byte) uint64 { return uint64(le32(b)) }
	request := func(t *testing.T, b []byte) uint64 {
		return uint64(target(b, fieldAt(t, b, root(b), slotFrameRequest)))
	}
	// header returns the position of the i-th request header table.
	header := func(t *testing.T, b []byte, i uint32) uint64 {
		vecPos := target(b, fieldAt(t, b, request(t, b), slotRequestHeaders))
		e := vecPos + 4 + 4*i
		return uint64(target(b, e))
	}
	cases := []struct {
		name    string
		corrupt func(t *testing.T, b []byte)
		why     string
	}{
		{"payload length", func(t *testing.T, b []byte) {
			put(b[target(b, fieldAt(t, b, root(b), slotFramePayload)):], 0xffffffff)
		}, "payload: vector data out of bounds"},
		{"payload offset past end", func(t *testing.T, b []byte) {
			put(b[fieldAt(t, b, root(b), slotFramePayload):], uint32(len(b)))
		}, "payload: vector length out of bounds"},
		{"close reason offset wraps", func(t *testing.T, b []byte) {
			put(b[fieldAt(t, b, root(b), slotFrameCloseReason):], 0xffffffff)
		}, "close_reason: vector length out of bounds"},
		{"request offset past end", func(t *testing.T, b []byte) {
			put(b[fieldAt(t, b, root(b), slotFrameRequest):], uint32(len(b)))
		}, "request: table out of bounds"},
		{"request vtable", func(t *testing.T, b []byte) {
			put(b[request(t, b):], 0x7fffffff)
		}, "request: vtable out of bounds"},
		{"request method length", func(t *testing.T, b []byte) {
			put(b[target(b, fieldAt(t, b, request(t, b), slotRequestMethod)):], uint32(len(b)))
		}, "request.method: vector data out of bounds"},
		{"headers count", func(t *testing.T, b []byte) {
			put(b[target(b, fieldAt(t, b, request(t, b), slotRequestHeaders)):], 0x40000000)
		}, "request.headers: vector data out of bounds"},
		{"header element offset", func(t *testing.T, b []byte) {
			vecPos := target(b, fieldAt(t, b, request(t, b), slotRequestHeaders))
			put(b[vecPos+8:], uint32(len(b)))
		}, "request.headers: table out of bounds"},
		{"header element vtable", func(t *testing.T, b []byte) {
			put(b[header(t, b, 1):], 0x80000000)
		}, "request.headers: vtable out of bounds"},
		{"header name length", func(t *testing.T, b []byte) {
			p := fieldAt(t, b, header(t, b, 0), slotKVName)
			put(b[target(b, p):], 1000)
		}, "request.headers: vector data out of bounds"},
		{"header value offset", func(t *testing.T, b []byte) {
			p := fieldAt(t, b, header(t, b, 1), slotKVValue)
			put(b[p:], 0xfffffff0)
		}, "request.headers: vector length out of bounds"},
		{"edit op past end", func(t *testing.T, b []byte) {
			vecPos := target(b, fieldAt(t, b, root(b), slotFrameHeaderEdits))
			tb, _ := tableAt(b, uint64(target(b, vecPos+4)))
			binary.LittleEndian.PutUint16(b[tb.vt+4+2*slotEditOp:], 0xfff0)
		}, "header_edits: field out of bounds"},
		{"handshake vtable size", func(t *testing.T, b []byte) {
			hs := uint64(target(b, fieldAt(t, b, root(b), slotFrameHandshake)))
			tb, _ := tableAt(b, hs)
			binary.LittleEndian.PutUint16(b[tb.vt:], 0xfffe)
		}, "handshake: bad vtable size"},
		{"root field past end", func(t *testing.T, b []byte) {
			tb, _ := tableAt(b, root(b))
			binary.LittleEndian.PutUint16(b[tb.vt+4+2*slotFrameSessionID:], 0xfff0)
		}, "session_id: field out of bounds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), NewEncoder().Encode(&full)...)
			_, err := Decode(b)
			require.NoError(t, err)
			tc.corrupt(t, b)
			v, err := Decode(b)
			require.ErrorIs(t, err, ErrMalformed)
			require.ErrorContains(t, err, tc.why)
			require.Equal(t, View{}, v)
		})
	}
}

// TestSplicedHeadersKeepAlignment splices a cached set at every alignment
// a builder can be in and checks the result decodes to the same headers.
func TestSplicedHeadersKeepAlignment(t *testing.T) {
	enc := EncodeHeaders([]Header{{"Host", "h"}, {"X-Odd", "abc"}, {"Y", ""}})
	require.Zero(t, len(enc.region)%4)
	e := NewEncoder()
	for pad := range 9 {
		f := Frame{
			Payload: make([]byte, pad),
			Request: &Request{Method: string(make([]byte, pad)), CachedHeaders: enc},
		}
		v, err := Decode(e.Encode(&f))
		require.NoError(t, err)
		r, ok := v.Request()
		require.True(t, ok)
		require.Equal(t, 3, r.NumHeaders())
		for i, h := range enc.headers {
			n, val := r.Header(i)
			require.Equal(t, h, Header{string(n), string(val)}, "pad %d", pad)
		}
	}
}
