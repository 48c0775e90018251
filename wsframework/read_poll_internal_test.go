package wsframework

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/netpoll"
	"github.com/strandws/strand/sdk/bufpool"
)

// This file drives the poll reader's parser (pollTurn) from a scripted byte
// source instead of a socket, so that a stream can be cut at every byte.

// clientFrame returns one masked client frame.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	p := append([]byte(nil), payload...)
	ws.Cipher(p, mask, 0)
	return append(out, p...)
}

type gotMessage struct {
	typ  core.MessageType
	data string
}

// pollHarness is a host connection whose poll reader reads script chunks.
type pollHarness struct {
	c     *conn
	nc    *memConn
	got   chan gotMessage
	chunk []byte // what pollRead returns next; nil: would block
}

func newPollHarness(t *testing.T, bufs *bufpool.Pool) *pollHarness {
	t.Helper()
	s := newRoomServer(t, Config{Buffers: bufs, IdleTimeout: -1, PingInterval: -1})
	h := &pollHarness{got: make(chan gotMessage, 64)}
	rt, err := s.runtimeFor(core.NewPlugin("split"))
	require.NoError(t, err)
	h.nc = newMemConn()
	h.nc.record = true
	h.c = newConn(s, s.nextID.Add(1), h.nc, nil, rt)
	s.hooks.pollRead = func(_ *conn, b []byte) (int, error) { return h.read(b) }
	h.c.poll = &pollState{}
	h.c.sc, err = rt.Open(context.Background(), h.c, core.ConnInfo{ID: h.c.id, Handlers: &core.WebSocketHandlers{
		OnMessage: func(_ *core.Conn, m core.Message) { h.got <- gotMessage{m.Type, string(m.Data)} },
	}})
	require.NoError(t, err)
	t.Cleanup(func() {
		closeMemberConn(h.c)
		rt.Closed(h.c.sc, core.CloseNormal, "")
	})
	return h
}

func (h *pollHarness) read(b []byte) (int, error) {
	if len(h.chunk) == 0 {
		return 0, netpoll.ErrWouldBlock
	}
	n := copy(b, h.chunk)
	h.chunk = h.chunk[n:]
	return n, nil
}

// feed hands chunk to the reader as one readiness report.
func (h *pollHarness) feed(t *testing.T, chunk []byte) {
	t.Helper()
	h.chunk = chunk
	h.c.Ready()
	require.False(t, h.c.poll.done, "the reader ended")
	require.Empty(t, h.chunk, "bytes left unread")
}

func TestPollReaderSplitFrames(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 30) // a 16-bit length
	var stream []byte
	stream = append(stream, maskedFrame(true, opText, []byte("hello"))...)
	stream = append(stream, maskedFrame(true, opPing, []byte("p"))...)
	stream = append(stream, maskedFrame(false, opText, []byte("frag"))...)
	stream = append(stream, maskedFrame(true, opPong, nil)...) // between fragments
	stream = append(stream, maskedFrame(true, opContinuation, []byte("ment"))...)
	stream = append(stream, maskedFrame(true, opBinary, big)...)
	stream = append(stream, maskedFrame(true, opText, nil)...)
	want := []gotMessage{{core.Text, "hello"}, {core.Text, "fragment"}, {core.Binary, string(big)}, {core.Text, ""}}

	var cases []struct {
		name   string
		chunks [][]byte
	}
	for k := 1; k < len(stream); k++ {
		cases = append(cases, struct {
			name   string
			chunks [][]byte
		}{fmt.Sprintf("cut=%d", k), [][]byte{stream[:k], stream[k:]}})
	}
	var ones [][]byte
	for i := range stream {
		ones = append(ones, stream[i:i+1])
	}
	cases = append(cases, struct {
		name   string
		chunks [][]byte
	}{"one_byte_at_a_time", ones})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bufs := bufpool.New(bufpool.Config{Poison: true})
			h := newPollHarness(t, bufs)
			for _, ch := range tc.chunks {
				h.feed(t, ch)
			}
			p := h.c.poll
			require.Nil(t, h.c.parser, "a connection between messages holds a parser")
			require.Nil(t, p.feed.rb, "read buffer kept between frames")
			for _, w := range want {
				select {
				case g := <-h.got:
					require.Equal(t, w, g)
				case <-time.After(roomTestTimeout):
					t.Fatalf("message %q not delivered", w.data)
				}
			}
			waitWritten(t, h.c)
			fs := h.nc.frames(t)
			require.Len(t, fs, 1)
			require.Equal(t, byte(opPong), fs[0].op)
			require.Equal(t, "p", string(fs[0].payload))
		})
	}
}

// TestPollReaderPartialFrame: a frame cut in its payload keeps only its own
// buffer, and the frame deadline is armed until it completes.
func TestPollReaderPartialFrame(t *testing.T) {
	h := newPollHarness(t, bufpool.New(bufpool.Config{Poison: true}))
	f := maskedFrame(true, opBinary, []byte("abcdefgh"))
	h.feed(t, f[:len(f)-3])
	p := h.c.poll
	require.NotNil(t, h.c.parser, "a partly read frame lost its parser")
	require.False(t, h.c.parser.AtBoundary())
	require.Nil(t, p.feed.rb, "the read buffer outlived its bytes")
	require.NotZero(t, p.frameDeadline)
	require.Equal(t, p.frameDeadline, h.c.pollDue(), "the timer is not due at the frame deadline")
	h.feed(t, f[len(f)-3:])
	require.Nil(t, h.c.parser, "the parser was not given back between messages")
	select {
	case g := <-h.got:
		require.Equal(t, gotMessage{core.Binary, "abcdefgh"}, g)
	case <-time.After(roomTestTimeout):
		t.Fatal("message not delivered")
	}
}

// TestPollReaderProtocolErrors: the poll reader applies readLoop's rules.
func TestPollReaderProtocolErrors(t *testing.T) {
	unmasked := maskedFrame(true, opText, []byte("x"))
	unmasked[1] &^= 0x80
	unmasked = append(unmasked[:2], unmasked[6:]...)
	tests := []struct {
		name   string
		stream []byte
		reason CloseReason
	}{
		{"unmasked", unmasked, ReasonProtocol},
		{"reserved_opcode", maskedFrame(true, 0x3, nil), ReasonProtocol},
		{"fragmented_control", maskedFrame(false, opPing, nil), ReasonProtocol},
		{"bad_utf8", maskedFrame(true, opText, []byte{0xff}), ReasonBadUTF8},
		{"continuation_first", maskedFrame(true, opContinuation, []byte("x")), ReasonProtocol},
		{"close_1_byte", maskedFrame(true, opClose, []byte{1}), ReasonProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newPollHarness(t, bufpool.New(bufpool.Config{Poison: true}))
			h.chunk = tc.stream
			res, done := h.c.pollTurn(h.c.srv.clock.Now())
			require.True(t, done)
			require.Equal(t, tc.reason, res.reason)
			require.Equal(t, tc.reason.code(), res.code)
			require.True(t, res.violation)
			h.c.poll.done = true
			releaseAll(&h.c.poll.feed.rb, &h.c.poll.held)
			h.c.dropParser(false)
		})
	}
}
