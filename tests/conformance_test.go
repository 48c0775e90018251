package tests

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// conformanceLimit is MaxMessageBytes of the conformance server.
const conformanceLimit = 1024

// TestConformance checks RFC 6455 rules over a real socket: for each
// violation, the close code the client receives and the code OnClose
// reports; for each valid exchange, what the client gets back.
//
// Every malformed frame is written so that the server has read all the
// client's bytes when it closes, so the client sees the close frame and a
// clean FIN (never a reset that could discard it).
func TestConformance(t *testing.T) {
	p := newProbe("conformance")
	h := startServer(t, wsframework.Config{MaxMessageBytes: conformanceLimit}, map[string]*sdk.Entry{"/ws": p.entry})

	// open dials a probe connection tagged with the subtest's name and
	// waits until the plugin has it.
	open := func(t *testing.T) (*wsClient, string) {
		t.Helper()
		tag := t.Name()
		c := h.dial(t, tagPath("/ws", tag))
		p.waitOpen(t, tag)
		return c, tag
	}
	// rejects checks that write makes the server close with code, that
	// the TCP connection then ends, and that OnClose sees code.
	rejects := func(t *testing.T, code ws.StatusCode, write func(c *wsClient) error) {
		t.Helper()
		c, tag := open(t)
		require.NoError(t, write(c))
		c.expectClose(t, code)
		c.expectEOF(t)
		p.waitClose(t, tag, sdk.CloseCode(code))
	}
	masked := func(fin bool, rsv byte, op ws.OpCode, n int64) ws.Header {
		return ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: true, Length: n}
	}

	t.Run("too_big", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			write func(c *wsClient) error
		}{
			// The limit is checked on the header: the payload is never sent.
			{"one_frame", func(c *wsClient) error {
				return c.writeHeaderAndPayload(masked(true, 0, ws.OpBinary, conformanceLimit+1), nil)
			}},
			{"fragments", func(c *wsClient) error {
				if err := c.writeFrame(ws.OpText, false, []byte(strings.Repeat("a", conformanceLimit/2+1))); err != nil {
					return err
				}
				return c.writeHeaderAndPayload(masked(true, 0, ws.OpContinuation, conformanceLimit/2), nil)
			}},
			// A declared length near 2^63 once overflowed the size check
			// (the sum went negative) and crashed the server.
			{"continuation_2^63-1", func(c *wsClient) error {
				if err := c.writeFrame(ws.OpText, false, []byte("a")); err != nil {
					return err
				}
				return c.writeHeaderAndPayload(masked(true, 0, ws.OpContinuation, math.MaxInt64), nil)
			}},
			{"one_frame_2^63-1", func(c *wsClient) error {
				return c.writeHeaderAndPayload(masked(true, 0, ws.OpBinary, math.MaxInt64), nil)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				rejects(t, ws.StatusMessageTooBig, tc.write)
			})
		}
	})

	t.Run("at_limit_accepted", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		msg := []byte(strings.Repeat("z", conformanceLimit))
		require.NoError(t, c.writeFrame(ws.OpText, false, msg[:100]))
		require.NoError(t, c.writeFrame(ws.OpContinuation, true, msg[100:]))
		c.expectFrame(t, ws.OpText, msg)
		c.closeHandshake(t, ws.StatusNormalClosure, "")
		p.waitClose(t, tag, sdk.CloseNormal)
	})

	t.Run("bad_utf8", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			write func(c *wsClient) error
		}{
			{"one_frame", func(c *wsClient) error { return c.send(ws.OpText, []byte("ok\xff")) }},
			{"surrogate", func(c *wsClient) error { return c.send(ws.OpText, []byte("\xed\xa0\x80")) }},
			{"split_across_fragments", func(c *wsClient) error {
				// "\xc3" starts a 2-byte rune; "(" cannot continue it.
				if err := c.writeFrame(ws.OpText, false, []byte("ab\xc3")); err != nil {
					return err
				}
				return c.writeFrame(ws.OpContinuation, true, []byte("(cd"))
			}},
			{"truncated_at_end", func(c *wsClient) error {
				if err := c.writeFrame(ws.OpText, false, []byte("ab")); err != nil {
					return err
				}
				return c.writeFrame(ws.OpContinuation, true, []byte("\xe2\x82"))
			}},
			{"close_reason", func(c *wsClient) error {
				return c.send(ws.OpClose, closeBody(1000, "bye\xff"))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				rejects(t, ws.StatusInvalidFramePayloadData, tc.write)
			})
		}
	})

	t.Run("utf8_rune_split_across_fragments_accepted", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		msg := []byte("h\u00e9llo \u20ac \U0001F600!")
		// Cut inside é, inside € and inside the emoji.
		cuts := []int{2, 9, 13, len(msg)}
		prev := 0
		for i, cut := range cuts {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpText
			}
			require.NoError(t, c.writeFrame(op, i == len(cuts)-1, msg[prev:cut]))
			prev = cut
		}
		c.expectFrame(t, ws.OpText, msg)
		c.closeHandshake(t, ws.StatusNormalClosure, "")
		p.waitClose(t, tag, sdk.CloseNormal)
	})

	t.Run("protocol_error", func(t *testing.T) {
		t.Parallel()
		type tcase struct {
			name  string
			write func(c *wsClient) error
		}
		header := func(h ws.Header) func(c *wsClient) error {
			return func(c *wsClient) error { return c.writeHeaderAndPayload(h, nil) }
		}
		cases := []tcase{
			{"rsv1", header(masked(true, 4, ws.OpText, 0))},
			{"rsv2", header(masked(true, 2, ws.OpBinary, 0))},
			{"rsv3", header(masked(true, 1, ws.OpText, 0))},
			{"rsv_on_ping", header(masked(true, 4, ws.OpPing, 0))},
			{"opcode_3", header(masked(true, 0, 0x3, 0))},
			{"opcode_0xB", header(masked(true, 0, 0xB, 0))},
			{"fragmented_ping", header(masked(false, 0, ws.OpPing, 0))},
			{"fragmented_close", header(masked(false, 0, ws.OpClose, 0))},
			// The length is checked on the header: the payload is never sent.
			{"ping_over_125_bytes", header(masked(true, 0, ws.OpPing, 126))},
			{"close_over_125_bytes", header(masked(true, 0, ws.OpClose, 126))},
			{"continuation_without_start", func(c *wsClient) error {
				return c.writeFrame(ws.OpContinuation, true, []byte("x"))
			}},
			{"text_inside_fragmented_message", func(c *wsClient) error {
				if err := c.writeFrame(ws.OpText, false, []byte("ab")); err != nil {
					return err
				}
				return c.writeHeaderAndPayload(masked(true, 0, ws.OpText, 0), nil)
			}},
			{"binary_inside_fragmented_message", func(c *wsClient) error {
				if err := c.writeFrame(ws.OpBinary, false, []byte("ab")); err != nil {
					return err
				}
				return c.writeHeaderAndPayload(masked(false, 0, ws.OpBinary, 0), nil)
			}},
			{"unmasked_frame", header(ws.Header{Fin: true, OpCode: ws.OpText, Length: 0})},
			{"unmasked_with_payload", func(c *wsClient) error {
				return c.writeHeaderAndPayload(ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 5}, []byte("hello"))
			}},
			{"close_with_1_byte_payload", func(c *wsClient) error { return c.send(ws.OpClose, []byte{0x03}) }},
			{"length_with_msb_set", func(c *wsClient) error {
				// 127-form length 2^63: WriteHeader refuses it, so hand-build it.
				return c.writeRaw([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
			}},
		}
		for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
			cases = append(cases, tcase{"close_code_" + strconv.Itoa(int(code)), func(c *wsClient) error {
				return c.send(ws.OpClose, closeBody(code, ""))
			}})
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				rejects(t, ws.StatusProtocolError, tc.write)
			})
		}
	})

	t.Run("handler_panic_closes_only_its_connection", func(t *testing.T) {
		t.Parallel()
		bystander := h.dial(t, tagPath("/ws", t.Name()+"/bystander"))
		bystander.echo(t, ws.OpText, []byte("before"))
		c, tag := open(t)
		c.echo(t, ws.OpBinary, []byte{1, 2, 3})
		require.NoError(t, c.send(ws.OpText, []byte("!panic")))
		c.expectClose(t, ws.StatusInternalServerError)
		// Answer the close so the handshake completes.
		require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusInternalServerError, "")))
		c.expectEOF(t)
		p.waitClose(t, tag, sdk.CloseInternalError)
		for i := range 10 {
			bystander.echo(t, ws.OpBinary, []byte{byte(i)})
		}
		bystander.closeHandshake(t, ws.StatusNormalClosure, "")
	})

	t.Run("ping_between_fragments", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.writeFrame(ws.OpText, false, []byte("hel")))
		require.NoError(t, c.send(ws.OpPing, []byte("p!")))
		require.NoError(t, c.writeFrame(ws.OpContinuation, false, []byte("lo ")))
		require.NoError(t, c.send(ws.OpPong, []byte("unsolicited")))
		require.NoError(t, c.writeFrame(ws.OpContinuation, true, []byte("world")))
		c.expectFrame(t, ws.OpPong, []byte("p!"))
		c.expectFrame(t, ws.OpText, []byte("hello world"))
		c.closeHandshake(t, ws.StatusNormalClosure, "")
		p.waitClose(t, tag, sdk.CloseNormal)
	})

	t.Run("ping_125_bytes", func(t *testing.T) {
		t.Parallel()
		c, _ := open(t)
		payload := make([]byte, 125)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		require.NoError(t, c.send(ws.OpPing, payload))
		c.expectFrame(t, ws.OpPong, payload)
		require.NoError(t, c.send(ws.OpPing, nil))
		c.expectFrame(t, ws.OpPong, []byte{})
	})

	t.Run("client_close_1000", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		c.echo(t, ws.OpText, []byte("hi"))
		c.closeHandshake(t, ws.StatusNormalClosure, "bye")
		ev := p.waitClose(t, tag, sdk.CloseNormal)
		require.Equal(t, "bye", ev.reason)
	})

	t.Run("client_close_application_code", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		c.closeHandshake(t, 4321, "app")
		ev := p.waitClose(t, tag, 4321)
		require.Equal(t, "app", ev.reason)
	})

	t.Run("client_close_without_code", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.send(ws.OpClose, nil))
		f, err := c.readFrame(ioTimeout)
		require.NoError(t, err)
		require.Equal(t, ws.OpClose, f.op)
		require.Empty(t, f.payload, "a close without code is answered without code")
		c.expectEOF(t)
		p.waitClose(t, tag, sdk.CloseNoStatus)
	})

	t.Run("client_close_1001", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "")))
		c.expectClose(t, ws.StatusGoingAway)
		c.expectEOF(t)
		p.waitClose(t, tag, sdk.CloseGoingAway)
	})

	t.Run("client_tcp_close_without_close_frame", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		c.echo(t, ws.OpText, []byte("hi"))
		require.NoError(t, c.nc.Close())
		ev := p.waitClose(t, tag, sdk.CloseAbnormal)
		require.Empty(t, ev.reason)
	})

	t.Run("client_tcp_close_mid_frame", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.writeHeaderAndPayload(masked(true, 0, ws.OpBinary, 100), []byte("partial")))
		require.NoError(t, c.nc.Close())
		p.waitClose(t, tag, sdk.CloseAbnormal)
	})

	t.Run("server_close_sends_queued_data_first", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.send(ws.OpText, []byte("!burst-close")))
		for _, m := range []string{"1", "2", "3"} {
			c.expectFrame(t, ws.OpText, []byte(m))
		}
		require.Equal(t, "x", c.expectClose(t, 4000))
		// Data the client sends after the server's close is discarded.
		require.NoError(t, c.send(ws.OpText, []byte("late")))
		require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(4000, "")))
		c.expectEOF(t)
		p.waitClose(t, tag, 4000)
		require.Equal(t, []string{"!burst-close"}, p.messages(tag))
	})

	t.Run("messages_before_close_delivered_in_order", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		var raw byteBuffer
		want := []string{"m1", "m2", "m3", "m4", "m5"}
		for _, m := range want {
			raw.b = append(raw.b, maskedFrame(ws.OpText, []byte(m))...)
		}
		raw.b = append(raw.b, maskedFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "done"))...)
		require.NoError(t, c.writeRaw(raw.b))
		// Echoes written before the close reply arrive; later ones are refused.
		code, sawClose, _, err := c.drainToClose(ioTimeout)
		require.NoError(t, err)
		require.True(t, sawClose)
		require.Equal(t, ws.StatusNormalClosure, code)
		c.expectEOF(t)
		ev := p.waitClose(t, tag, sdk.CloseNormal)
		require.Equal(t, "done", ev.reason)
		require.Equal(t, want, p.messages(tag), "OnMessage before OnClose, in order")
	})

	t.Run("close_inside_fragmented_message", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.writeFrame(ws.OpText, false, []byte("never ")))
		c.closeHandshake(t, ws.StatusNormalClosure, "")
		p.waitClose(t, tag, sdk.CloseNormal)
		require.Empty(t, p.messages(tag), "an unfinished message reached the plugin")
	})

	t.Run("messages_before_violation_delivered", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		var raw byteBuffer
		raw.b = append(raw.b, maskedFrame(ws.OpText, []byte("ok1"))...)
		raw.b = append(raw.b, maskedFrame(ws.OpBinary, []byte("ok2"))...)
		raw.b = append(raw.b, maskedFrame(ws.OpText, []byte("bad\xc0"))...)
		require.NoError(t, c.writeRaw(raw.b))
		code, sawClose, _, err := c.drainToClose(ioTimeout)
		require.NoError(t, err)
		require.True(t, sawClose)
		require.Equal(t, ws.StatusInvalidFramePayloadData, code)
		c.expectEOF(t)
		p.waitClose(t, tag, sdk.CloseInvalidPayload)
		require.Equal(t, []string{"ok1", "ok2"}, p.messages(tag))
	})

	t.Run("server_close_invalid_code_long_reason", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.send(ws.OpText, []byte("!close-long")))
		// 1005 may not be sent: Close falls back to 1000; the reason is
		// cut to fit a control frame, on a rune boundary.
		reason := c.expectClose(t, ws.StatusNormalClosure)
		require.LessOrEqual(t, len(reason), 123)
		require.NotEmpty(t, reason)
		require.True(t, utf8.ValidString(reason), "close reason %q is not valid UTF-8", reason)
		require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
		c.expectEOF(t)
		p.waitClose(t, tag, sdk.CloseNormal)
	})

	t.Run("client_close_longest_reason", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		reason := strings.Repeat("r", 123)
		c.closeHandshake(t, 4999, reason)
		require.Equal(t, reason, p.waitClose(t, tag, 4999).reason)
	})

	t.Run("many_fragments_with_control_frames", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		msg := make([]byte, conformanceLimit)
		for i := range msg {
			msg[i] = byte(i * 31)
		}
		// Fragments of 0..40 bytes, an empty first one, pings and pongs
		// between them.
		var raw byteBuffer
		frag := func(op ws.OpCode, fin bool, p []byte) {
			mask := ws.NewMask()
			require.NoError(t, ws.WriteHeader(&raw, ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: mask, Length: int64(len(p))}))
			start := len(raw.b)
			raw.b = append(raw.b, p...)
			ws.Cipher(raw.b[start:], mask, 0)
		}
		frag(ws.OpBinary, false, nil)
		pings := 0
		for off, i := 0, 0; off < len(msg); i++ {
			n := min(i%41, len(msg)-off)
			frag(ws.OpContinuation, off+n == len(msg), msg[off:off+n])
			off += n
			if i%7 == 0 && off < len(msg) {
				frag(ws.OpPing, true, []byte{byte(pings)})
				pings++
				frag(ws.OpPong, true, nil)
			}
		}
		require.NoError(t, c.writeRaw(raw.b))
		for i := range pings {
			c.expectFrame(t, ws.OpPong, []byte{byte(i)})
		}
		c.expectFrame(t, ws.OpBinary, msg)
		c.closeHandshake(t, ws.StatusNormalClosure, "")
		p.waitClose(t, tag, sdk.CloseNormal)
	})

	t.Run("server_close_4000", func(t *testing.T) {
		t.Parallel()
		c, tag := open(t)
		require.NoError(t, c.send(ws.OpText, []byte("!close")))
		require.Equal(t, "x", c.expectClose(t, 4000))
		require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(4000, "")))
		c.expectEOF(t)
		ev := p.waitClose(t, tag, 4000)
		require.Equal(t, "x", ev.reason)
	})
}

// TestOpenHandlerPanic: a panic in OnOpen closes that connection with 1011;
// OnClose still runs, with 1011.
func TestOpenHandlerPanic(t *testing.T) {
	closes := make(chan sdk.CloseCode, 1)
	plugin := sdk.NewPlugin("panic-open")
	e := plugin.Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnOpen:  func(*sdk.Conn) { panic("probe: OnOpen") },
		OnClose: func(_ *sdk.Conn, code sdk.CloseCode, _ string) { closes <- code },
	})
	p := newProbe("bystander")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/panic": e, "/ok": p.entry})
	ok := h.dial(t, "/ok")
	c := h.dial(t, "/panic")
	c.expectClose(t, ws.StatusInternalServerError)
	require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusInternalServerError, "")))
	c.expectEOF(t)
	select {
	case code := <-closes:
		require.Equal(t, sdk.CloseInternalError, code)
	case <-time.After(ioTimeout):
		t.Fatal("no OnClose")
	}
	ok.echo(t, ws.OpText, []byte("fine"))
}
