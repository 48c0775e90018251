package strandtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/sdk/strandtest"
)

// journal records one connection's events. It has no lock on purpose: a
// connection's handlers never run concurrently, and Conn.Wait makes what
// they wrote visible to the test, which the race detector checks.
type journal struct {
	events []string
	kept   []byte // a message buffer kept past its handler (a bug)
}

// entry returns an entry whose handlers record into j. Messages steer the
// plugin: "quit" closes 1000, "boom" panics, "keep" keeps msg.Data, "kept..."
// sends the kept bytes back, "echo:x" sends x back.
func (j *journal) entry() *sdk.Entry {
	p := sdk.NewPlugin("journal")
	return p.Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(*sdk.Conn) { j.events = append(j.events, "open") },
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			s := string(m.Data)
			j.events = append(j.events, m.Type.String()+" "+s)
			switch {
			case s == "quit":
				_ = c.Close(sdk.CloseNormal, "quit")
			case s == "boom":
				panic("boom")
			case s == "keep":
				j.kept = m.Data
			case strings.HasPrefix(s, "kept"):
				_ = c.SendBinary(j.kept)
			case strings.HasPrefix(s, "echo:"):
				_ = c.SendText(strings.TrimPrefix(s, "echo:"))
			}
		},
		OnError: func(_ *sdk.Conn, err error) { j.events = append(j.events, "error "+err.Error()) },
		OnClose: func(_ *sdk.Conn, code sdk.CloseCode, reason string) {
			j.events = append(j.events, fmt.Sprintf("close %d %s", code, reason))
		},
	})
}

func TestEventOrder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		drive      func(k *strandtest.Kit, c *strandtest.Conn)
		want       []string
		serverCode sdk.CloseCode // 0: the client closed
	}{
		{
			name:  "client close",
			drive: func(_ *strandtest.Kit, c *strandtest.Conn) { c.Close(sdk.CloseNormal, "bye") },
			want:  []string{"close 1000 bye"},
		},
		{
			name:  "client close without status",
			drive: func(_ *strandtest.Kit, c *strandtest.Conn) { c.Close(sdk.CloseNoStatus, "dropped reason") },
			want:  []string{"close 1005 "},
		},
		{
			name:  "drop",
			drive: func(_ *strandtest.Kit, c *strandtest.Conn) { c.Drop() },
			want:  []string{"close 1006 "},
		},
		{
			name:       "plugin close",
			drive:      func(_ *strandtest.Kit, c *strandtest.Conn) { c.SendText("quit") },
			want:       []string{"text quit", "close 1000 quit"},
			serverCode: sdk.CloseNormal,
		},
		{
			name:       "handler panic",
			drive:      func(_ *strandtest.Kit, c *strandtest.Conn) { c.SendText("boom") },
			want:       []string{"text boom", "error sdk: handler panic: boom", "close 1011 internal error"},
			serverCode: sdk.CloseInternalError,
		},
		{
			name:       "kit close",
			drive:      func(k *strandtest.Kit, _ *strandtest.Conn) { k.Close() },
			want:       []string{"close 1001 server shutting down"},
			serverCode: sdk.CloseGoingAway,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var j journal
			kit := strandtest.New(t, j.entry())
			c := kit.Open()
			for i := range 50 {
				if i%2 == 0 {
					c.SendText(fmt.Sprint(i))
				} else {
					c.SendBinary([]byte(fmt.Sprint(i)))
				}
			}
			tc.drive(kit, c)
			c.Wait()
			select {
			case <-c.Done():
			default:
				t.Fatal("Wait returned before OnClose was handled")
			}
			// Nothing reaches the plugin after OnClose.
			assert.ErrorIs(t, c.Send(sdk.Text, []byte("late")), sdk.ErrClosed)
			c.Error(errors.New("late"))
			c.Close(sdk.CloseNormal, "again")
			c.Drop()
			c.Wait()

			want := []string{"open"}
			for i := range 50 {
				if i%2 == 0 {
					want = append(want, fmt.Sprint("text ", i))
				} else {
					want = append(want, fmt.Sprint("binary ", i))
				}
			}
			want = append(want, tc.want...)
			assert.Equal(t, want, j.events)

			code, _, ok := c.Closed()
			assert.Equal(t, tc.serverCode != 0, ok, "server close recorded")
			assert.Equal(t, tc.serverCode, code)
			assert.Equal(t, int64(0), kit.Stats().Open, "the runtime counts the connection closed")
		})
	}
}

func TestPoisonCatchesKeptMessageData(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noPoison bool
		want     string
	}{
		{"poisoned", false, "\xdb\xdb\xdb\xdb"},
		{"not poisoned", true, "keep"},
	} {
		if tc.noPoison && bufpool.New(bufpool.Config{}).Poisoning() {
			tc.want = "\xdb\xdb\xdb\xdb" // -tags strand_debug poisons every pool
		}
		t.Run(tc.name, func(t *testing.T) {
			var j journal
			kit := strandtest.New(t, j.entry(), strandtest.Options{NoPoison: tc.noPoison})
			c := kit.Open()
			c.SendText("keep")
			c.SendText(keptTrigger)
			c.Wait()
			require.Len(t, c.Sent(), 1)
			assert.Equal(t, strandtest.Binary([]byte(tc.want)), c.Sent()[0])
		})
	}
}

// keptTrigger asks the journal plugin for the kept bytes. It is longer than
// 64 bytes, so its buffer comes from another size class than the kept
// "keep" buffer, which then stays as the release left it.
var keptTrigger = "kept" + strings.Repeat(".", 100)

func TestPoisonHintInFailure(t *testing.T) {
	var j journal
	kit := strandtest.New(t, j.entry())
	c := kit.Open()
	c.SendText("keep")
	c.SendText(keptTrigger)
	r := newRecT(t)
	r.run(func() { c.ExpectBinary(r, []byte("keep")) })
	errs, fatal := r.failures()
	require.True(t, fatal)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0], "want binary 6b656570 (message 1 of 1), got binary dbdbdbdb (0xDB bytes")
	assert.Contains(t, errs[0], "copy msg.Data to keep it")
}

func TestHandlerPanic(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       func(rec *[]string) sdk.WebSocketHandlers
		trigger func(c *strandtest.Conn)
		want    []string
	}{
		{
			name: "OnOpen",
			h: func(rec *[]string) sdk.WebSocketHandlers {
				return sdk.WebSocketHandlers{
					OnOpen:  func(*sdk.Conn) { panic("open failed") },
					OnError: func(_ *sdk.Conn, err error) { *rec = append(*rec, err.Error()) },
					OnClose: func(_ *sdk.Conn, code sdk.CloseCode, _ string) { *rec = append(*rec, fmt.Sprint(code)) },
				}
			},
			trigger: func(*strandtest.Conn) {},
			want:    []string{"sdk: handler panic: open failed", "1011"},
		},
		{
			name: "OnText",
			h: func(rec *[]string) sdk.WebSocketHandlers {
				return sdk.WebSocketHandlers{
					OnText:  func(*sdk.Conn, []byte) { panic("text failed") },
					OnError: func(_ *sdk.Conn, err error) { *rec = append(*rec, err.Error()) },
					OnClose: func(_ *sdk.Conn, code sdk.CloseCode, _ string) { *rec = append(*rec, fmt.Sprint(code)) },
				}
			},
			trigger: func(c *strandtest.Conn) {
				c.SendText("x")
				c.Wait()
				c.SendText("discarded: the server closed")
			},
			want: []string{"sdk: handler panic: text failed", "1011"},
		},
		{
			name: "OnClose panics: no second close",
			h: func(rec *[]string) sdk.WebSocketHandlers {
				return sdk.WebSocketHandlers{
					OnError: func(_ *sdk.Conn, err error) { *rec = append(*rec, err.Error()) },
					OnClose: func(_ *sdk.Conn, code sdk.CloseCode, _ string) {
						*rec = append(*rec, fmt.Sprint(code))
						panic("close failed")
					},
				}
			},
			trigger: func(c *strandtest.Conn) { c.Close(4000, "app") },
			want:    []string{"4000"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec []string
			kit := strandtest.New(t, sdk.NewPlugin("p").Entry("e").WebSocket(tc.h(&rec)))
			c := kit.Open()
			tc.trigger(c)
			c.Wait()
			assert.Equal(t, tc.want, rec)
			if tc.want[len(tc.want)-1] == "1011" {
				c.ExpectClosed(t, sdk.CloseInternalError)
				_, reason, _ := c.Closed()
				assert.Equal(t, "internal error", reason)
			}
			assert.EqualValues(t, 1, kit.Stats().Panics)
		})
	}
}

func TestConcurrentPluginSends(t *testing.T) {
	const senders, each = 8, 200
	var wg sync.WaitGroup
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnText: func(c *sdk.Conn, _ []byte) {
			for g := range senders {
				wg.Go(func() {
					for i := range each {
						if err := c.SendText(fmt.Sprintf("%d/%d", g, i)); err != nil {
							t.Errorf("send: %v", err)
							return
						}
					}
				})
			}
		},
	})
	kit := strandtest.New(t, entry)
	c := kit.Open()
	c.SendText("go")
	c.Wait()
	wg.Wait()

	sent := c.Sent()
	require.Len(t, sent, senders*each)
	next := make([]int, senders)
	for _, f := range sent {
		var g, i int
		_, err := fmt.Sscanf(f.Data, "%d/%d", &g, &i)
		require.NoError(t, err)
		require.Equal(t, next[g], i, "sender %d's messages arrive in its order", g)
		next[g]++
	}
}

func TestConcurrentConns(t *testing.T) {
	const conns, msgs = 8, 300
	kit := strandtest.New(t, echoEntry())
	cs := make([]*strandtest.Conn, conns)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Go(func() {
			c := kit.Open()
			cs[i] = c
			for j := range msgs {
				if err := c.Send(sdk.Binary, fmt.Append(nil, c.ID(), "-", j)); err != nil {
					t.Errorf("send: %v", err)
					return
				}
			}
			if err := c.WaitContext(context.Background()); err != nil {
				t.Errorf("wait: %v", err)
			}
			c.Drop() // the plugin's sends fail from here on
		})
	}
	wg.Wait()
	for _, c := range cs {
		c.Wait()
		sent := c.Sent()
		require.Len(t, sent, msgs)
		for j, f := range sent {
			require.Equal(t, strandtest.Binary(fmt.Append(nil, c.ID(), "-", j)), f)
		}
	}
	assert.EqualValues(t, 0, kit.Stats().Open)
}

// echoEntry echoes every message with its type.
func echoEntry() *sdk.Entry {
	return sdk.NewPlugin("echo").Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) { _ = c.Send(m.Type, m.Data) },
	})
}

func TestHostWriteAfterClose(t *testing.T) {
	errs := make(chan error, 2)
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnText: func(c *sdk.Conn, _ []byte) {
			_ = c.SendText("before")
			_ = c.Close(sdk.CloseCode(1006), strings.Repeat("r", 200)) // not sendable: becomes 1000, reason cut
			errs <- c.SendText("after")
			errs <- c.Close(sdk.CloseGoingAway, "second")
		},
	})
	kit := strandtest.New(t, entry)
	c := kit.Open()
	c.SendText("go")
	c.ExpectText(t, "before")
	c.ExpectClosed(t, sdk.CloseNormal)
	assert.ErrorIs(t, <-errs, sdk.ErrClosed)
	assert.NoError(t, <-errs, "Close is idempotent")
	_, reason, _ := c.Closed()
	assert.Len(t, reason, 123)
	_, err := c.NextSent(context.Background())
	assert.ErrorIs(t, err, strandtest.ErrNoMore)
}

func TestSlowConsumer(t *testing.T) {
	errs := make(chan error, 4)
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnText: func(c *sdk.Conn, n []byte) {
			for range int(n[0] - '0') {
				errs <- c.SendText("x")
			}
		},
	})
	kit := strandtest.New(t, entry, strandtest.Options{WriteQueueLimit: 2})
	c := kit.Open()

	c.SendText("2")
	c.Wait()
	c.ExpectText(t, "x") // reading makes room
	c.SendText("2")
	c.Wait()
	for range 3 {
		require.NoError(t, <-errs)
	}
	require.ErrorIs(t, <-errs, sdk.ErrSlowConsumer)
	c.ExpectClosed(t, sdk.ClosePolicyViolation)
	assert.Len(t, c.Sent(), 3)
}

func TestRequestFilter(t *testing.T) {
	type user struct{ name string }
	entry := sdk.NewPlugin("auth").Entry("ws").
		RequestFilter(func(ctx *sdk.RequestContext) {
			tok := ctx.Request().Header.Get("Authorization")
			if tok != "Bearer good" {
				ctx.Reject(http.StatusUnauthorized, "no")
				return
			}
			ctx.Set("user", user{"ann"})
			ctx.SetHeader("X-Hello", "ann")
			ctx.Upgrade(nil)
		}).
		WebSocket(sdk.WebSocketHandlers{
			OnOpen: func(c *sdk.Conn) {
				_ = c.SendText(c.Value("user").(user).name + " " + c.Value("tenant").(string) + " " + c.Request().Query().Get("room"))
			},
		})
	kit := strandtest.New(t, entry, strandtest.Options{Values: map[string]any{"tenant": "acme"}})

	t.Run("reject", func(t *testing.T) {
		res := kit.RequestFilter(nil)
		require.NoError(t, res.Err)
		assert.Equal(t, strandtest.End, res.Decision)
		assert.Equal(t, http.StatusUnauthorized, res.Status)
		assert.Equal(t, "no", string(res.Body))
		assert.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))

		r := newRecT(t)
		rk := strandtest.New(r, entry)
		r.run(func() { rk.Open() })
		errs, fatal := r.failures()
		require.True(t, fatal)
		assert.Contains(t, errs[0], `did not upgrade: it answered 401 "no"`)
	})
	t.Run("accept", func(t *testing.T) {
		req := strandtest.NewRequest("/chat?room=42")
		req.Header.Set("Authorization", "Bearer good")
		res := kit.RequestFilter(req)
		require.NoError(t, res.Err)
		assert.Equal(t, strandtest.Upgrade, res.Decision)
		assert.Equal(t, "ann", res.Header.Get("X-Hello"))
		assert.Equal(t, user{"ann"}, res.Values["user"])

		c := kit.OpenRequest(req)
		c.ExpectText(t, "ann acme 42")
	})
	t.Run("panic", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("e").RequestFilter(func(*sdk.RequestContext) { panic("bad filter") })
		res := strandtest.New(t, e).RequestFilter(nil)
		assert.ErrorContains(t, res.Err, "bad filter")
	})
	t.Run("next", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("e").RequestFilter(func(ctx *sdk.RequestContext) { ctx.Next() })
		assert.Equal(t, strandtest.Next, strandtest.New(t, e).RequestFilter(nil).Decision)
	})
}

func TestClientClose(t *testing.T) {
	for _, tc := range []struct {
		name       string
		close      func(t *testing.T, c *strandtest.Conn)
		wantEnd    string
		serverCode sdk.CloseCode
	}{
		{"app code", func(_ *testing.T, c *strandtest.Conn) { c.Close(4000, "app") }, "4000 app", 0},
		{"no status", func(_ *testing.T, c *strandtest.Conn) { c.Close(sdk.CloseNoStatus, "") }, "1005 ", 0},
		{"drop", func(_ *testing.T, c *strandtest.Conn) { c.Drop() }, "1006 ", 0},
		{"code a client may not send", func(_ *testing.T, c *strandtest.Conn) { c.Close(sdk.CloseAbnormal, "") }, "1002 invalid close code", sdk.CloseProtocolError},
		{"reason too long", func(_ *testing.T, c *strandtest.Conn) { c.Close(sdk.CloseNormal, strings.Repeat("r", 124)) }, "1002 control frame too long", sdk.CloseProtocolError},
		{"reason not UTF-8", func(_ *testing.T, c *strandtest.Conn) { c.Close(sdk.CloseNormal, "\xff") }, "1007 invalid UTF-8 in close reason", sdk.CloseInvalidPayload},
		{"text not UTF-8", func(t *testing.T, c *strandtest.Conn) {
			assert.Equal(t, sdk.CloseInvalidPayload, sdk.CloseStatus(c.Send(sdk.Text, []byte{0xff})))
		}, "1007 invalid UTF-8 in text message", sdk.CloseInvalidPayload},
		{"message too big", func(_ *testing.T, c *strandtest.Conn) { c.SendBinary(make([]byte, 11)) }, "1009 message too big", sdk.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var end []string
			entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
				OnMessage: func(*sdk.Conn, sdk.Message) { end = append(end, "message") },
				OnClose: func(_ *sdk.Conn, code sdk.CloseCode, reason string) {
					end = append(end, fmt.Sprintf("%d %s", code, reason))
				},
			})
			kit := strandtest.New(t, entry, strandtest.Options{MaxMessageBytes: 10})
			c := kit.Open()
			c.SendBinary(make([]byte, 10))
			tc.close(t, c)
			c.Wait()
			assert.Equal(t, []string{"message", tc.wantEnd}, end)
			code, _, ok := c.Closed()
			assert.Equal(t, tc.serverCode != 0, ok)
			assert.Equal(t, tc.serverCode, code)
		})
	}
}

func TestSendAfterOwnCloseFails(t *testing.T) {
	r := newRecT(t)
	c := strandtest.New(r, echoEntry()).Open()
	c.Drop()
	c.SendText("late")
	errs, fatal := r.failures()
	assert.False(t, fatal, "Send methods only mark the test failed")
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0], "after the client closed")
}

func TestBackpressureBlocksSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered, gate := make(chan struct{}), make(chan struct{})
		var got []string
		entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
			OnText: func(_ *sdk.Conn, b []byte) {
				got = append(got, string(b))
				if string(b) == "1" {
					close(entered)
					<-gate
				}
			},
		})
		kit := strandtest.New(t, entry, strandtest.Options{
			Dispatcher: dispatcher.ShardedConfig{Shards: 1, Workers: 1, QueueSize: 1, TasksPerTurn: 1},
		})
		c := kit.Open()
		c.SendText("1")
		<-entered // the worker holds "1"
		c.SendText("2")
		rejected := kit.Stats().Rejected
		sent3 := make(chan struct{})
		go func() {
			defer close(sent3)
			c.SendText("3") // the queue holds "2": this waits for room
		}()
		synctest.Wait()
		select {
		case <-sent3:
			t.Fatal("Send returned while the queue was full")
		default:
		}
		assert.Equal(t, rejected+1, kit.Stats().Rejected, "the shard refused 3 once")
		close(gate)
		<-sent3
		c.Wait()
		assert.Equal(t, []string{"1", "2", "3"}, got)
	})
}

func TestSendTimesOutOnBlockedHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
			OnText: func(*sdk.Conn, []byte) { <-gate },
		})
		kit := strandtest.New(t, entry, strandtest.Options{
			Timeout:    time.Second,
			Dispatcher: dispatcher.ShardedConfig{Shards: 1, Workers: 1, QueueSize: 1, TasksPerTurn: 1, SlowThreshold: -1},
		})
		c := kit.Open()
		require.NoError(t, c.Send(sdk.Text, []byte("1")))
		require.NoError(t, c.Send(sdk.Text, []byte("2")))
		start := time.Now()
		err := c.Send(sdk.Text, []byte("3"))
		assert.ErrorContains(t, err, "queue full for 1s")
		assert.Equal(t, time.Second, time.Since(start))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.ErrorIs(t, c.WaitContext(ctx), context.DeadlineExceeded)
		close(gate)
	})
}

func TestWaitCoversCloseStartedByHandler(t *testing.T) {
	var j journal
	kit := strandtest.New(t, j.entry())
	c := kit.Open()
	c.SendText("quit")
	c.Wait()
	select {
	case <-c.Done():
	default:
		t.Fatal("OnClose of the plugin's close not handled when Wait returned")
	}
	assert.Equal(t, []string{"open", "text quit", "close 1000 quit"}, j.events)
}

func TestCloseInOnOpen(t *testing.T) {
	var closes int
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnOpen:  func(c *sdk.Conn) { _ = c.Close(sdk.ClosePolicyViolation, "go away") },
		OnClose: func(*sdk.Conn, sdk.CloseCode, string) { closes++ },
	})
	kit := strandtest.New(t, entry)
	for range 20 { // the close may come before or after Open returns
		c := kit.Open()
		c.ExpectClosed(t, sdk.ClosePolicyViolation)
	}
	kit.Close()
	assert.Equal(t, 20, closes)
}

func TestRooms(t *testing.T) {
	entry := sdk.NewPlugin("chat").Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) {
			if err := c.Join("lobby"); err != nil {
				panic(err)
			}
		},
		OnText: func(c *sdk.Conn, b []byte) {
			s := string(b)
			switch {
			case s == "leave":
				_ = c.Leave("lobby")
			case strings.HasPrefix(s, "quiet:"):
				_ = c.Broadcast("lobby", sdk.Text, b, sdk.BroadcastOptions{ExcludeSelf: true})
			default:
				_ = c.Broadcast("lobby", sdk.Text, b, sdk.BroadcastOptions{})
			}
		},
	})
	kit := strandtest.New(t, entry)
	a, b, c := kit.Open(), kit.Open(), kit.Open()
	for _, x := range []*strandtest.Conn{a, b, c} {
		x.Wait()
	}
	assert.Len(t, kit.Members("lobby"), 3)

	a.SendText("hi from a")
	a.Wait()
	b.SendText("quiet:b")
	b.Wait()
	c.SendText("leave")
	c.Wait()
	a.SendText("after leave")
	a.Wait()

	a.Expect(t, strandtest.Text("hi from a"), strandtest.Text("quiet:b"), strandtest.Text("after leave"))
	b.Expect(t, strandtest.Text("hi from a"), strandtest.Text("after leave"))
	c.Expect(t, strandtest.Text("hi from a"), strandtest.Text("quiet:b"))
	for _, x := range []*strandtest.Conn{a, b, c} {
		x.ExpectNoMore(t)
	}

	b.Drop()
	b.Wait()
	a.SendText("last")
	a.Wait()
	assert.Len(t, kit.Members("lobby"), 1)
	a.ExpectText(t, "last")
	assert.Error(t, b.PluginConn().Join("lobby"), "joining after close fails")
}

func TestRoomOrderIsSharedByMembers(t *testing.T) {
	const conns, msgs = 4, 100
	entry := sdk.NewPlugin("chat").Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) { _ = c.Join("r") },
		OnText: func(c *sdk.Conn, b []byte) { _ = c.Broadcast("r", sdk.Text, b, sdk.BroadcastOptions{}) },
	})
	kit := strandtest.New(t, entry)
	cs := make([]*strandtest.Conn, conns)
	for i := range cs {
		cs[i] = kit.Open()
		cs[i].Wait()
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			for i := range msgs {
				c.SendText(fmt.Sprint(c.ID(), "/", i))
			}
		})
	}
	wg.Wait()
	for _, c := range cs {
		c.Wait()
	}
	first := cs[0].Sent()
	require.Len(t, first, conns*msgs)
	for _, c := range cs[1:] {
		assert.Equal(t, first, c.Sent(), "every member sees one order")
	}
}

func TestExpectFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(r *recT, c *strandtest.Conn)
		want string
	}{
		{"wrong text", func(r *recT, c *strandtest.Conn) { c.ExpectText(r, "b") }, `want text "b" (message 1 of 1), got text "a"`},
		{"wrong type", func(r *recT, c *strandtest.Conn) { c.ExpectBinary(r, []byte("a")) }, `want binary 61 (message 1 of 1), got text "a"`},
		{"second missing", func(r *recT, c *strandtest.Conn) {
			c.Close(sdk.CloseNormal, "")
			c.Expect(r, strandtest.Text("a"), strandtest.Text("b"))
		}, "message 2 of 2), got none: strandtest: no more messages"},
		{"extra", func(r *recT, c *strandtest.Conn) { c.ExpectNoMore(r) }, `want no more messages, got 1: [text "a"]`},
		{"not closed by server", func(r *recT, c *strandtest.Conn) {
			c.Close(4001, "me")
			c.ExpectClosed(r, sdk.CloseNormal)
		}, `but the client closed with 4001 "me"`},
		{"other code", func(r *recT, c *strandtest.Conn) {
			c.SendText("echo:quit")
			c.SendText("quit")
			c.ExpectClosed(r, sdk.CloseGoingAway)
		}, `want the server to close with 1001, got 1000 "quit"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var j journal
			kit := strandtest.New(t, j.entry())
			c := kit.Open()
			c.SendText("echo:a")
			c.Wait()
			r := newRecT(t)
			r.run(func() { tc.do(r, c) })
			errs, fatal := r.failures()
			assert.True(t, fatal)
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0], tc.want)
		})
	}
}

func TestExpectTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kit := strandtest.New(t, echoEntry(), strandtest.Options{Timeout: time.Minute})
		c := kit.Open()
		r := newRecT(t)
		start := time.Now()
		r.run(func() { c.ExpectText(r, "never") })
		assert.Equal(t, time.Minute, time.Since(start))
		errs, _ := r.failures()
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0], "context deadline exceeded")
	})
}

func TestNextSentWaitsForMessage(t *testing.T) {
	release := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) {
			wg.Go(func() {
				<-release
				_ = c.SendBinary(nil)
			})
		},
	})
	kit := strandtest.New(t, entry)
	c := kit.Open()
	c.Wait()
	close(release)
	f, err := c.NextSent(context.Background())
	require.NoError(t, err)
	assert.Equal(t, strandtest.Binary(nil), f)
	assert.Equal(t, "binary (empty)", f.String())
}

func TestBufferLeakReported(t *testing.T) {
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnText: func(c *sdk.Conn, b []byte) {
			buf := c.Buffers().Get(len(b)) // never sent nor released: a leak
			copy(buf.B, b)
		},
	})
	r := newRecT(t)
	kit := strandtest.New(r, entry)
	c := kit.Open()
	c.SendText("x")
	kit.Close()
	errs, _ := r.failures()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0], "1 pooled buffer(s) were not released")
}

func TestInvalidUTF8FromPluginReported(t *testing.T) {
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(c *sdk.Conn) { _ = c.Send(sdk.Text, []byte{0xff}) },
	})
	r := newRecT(t)
	kit := strandtest.New(r, entry)
	kit.Open().Wait()
	kit.Close()
	errs, _ := r.failures()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0], "not valid UTF-8")
}

func TestFrameString(t *testing.T) {
	for _, tc := range []struct {
		f    strandtest.Frame
		want string
	}{
		{strandtest.Text("hi"), `text "hi"`},
		{strandtest.Binary([]byte{1, 2, 0xff}), "binary 0102ff"},
		{strandtest.Binary(bytes.Repeat([]byte{0xab}, 65)), "binary " + strings.Repeat("ab", 64) + "... (65 bytes)"},
		{strandtest.Text(strings.Repeat("x", 201)), `text "` + strings.Repeat("x", 200) + `"... (201 bytes)`},
	} {
		t.Run(tc.want[:min(len(tc.want), 20)], func(t *testing.T) {
			assert.Equal(t, tc.want, tc.f.String())
		})
	}
	assert.Equal(t, []byte{1, 2}, strandtest.Binary([]byte{1, 2}).Bytes())
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	kit := strandtest.New(t, echoEntry())
	for range 5 {
		kit.Open().SendText("x")
	}
	kit.Close()
	kit.Close() // idempotent
	goleak.VerifyNone(t, opts)
}

func TestOwnBuffersAreNotChecked(t *testing.T) {
	pool := bufpool.New(bufpool.Config{})
	leaked := pool.Get(10) // someone else's buffer in a shared pool
	r := newRecT(t)
	kit := strandtest.New(r, echoEntry(), strandtest.Options{Buffers: pool})
	assert.Same(t, pool, kit.Buffers())
	kit.Open().SendText("x")
	kit.Close()
	errs, _ := r.failures()
	assert.Empty(t, errs)
	leaked.Release()
}

// TestInvalidMessageType: a send of a type other than Text and Binary fails
// with sdk.ErrMessageType on the plugin's side and on the test's, and the
// connection stays open.
func TestInvalidMessageType(t *testing.T) {
	errs := make(chan error, 2)
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnText: func(c *sdk.Conn, _ []byte) {
			errs <- c.Send(sdk.MessageType(9), []byte("x"))
			errs <- c.Broadcast("r", sdk.MessageType(0), []byte("x"), sdk.BroadcastOptions{})
			_ = c.SendText("still open")
		},
	})
	kit := strandtest.New(t, entry)
	c := kit.Open()
	c.SendText("go")
	c.ExpectText(t, "still open")
	require.ErrorIs(t, <-errs, sdk.ErrMessageType)
	require.ErrorIs(t, <-errs, sdk.ErrMessageType)
	require.ErrorIs(t, c.Send(sdk.MessageType(9), []byte("x")), sdk.ErrMessageType)
	c.ExpectNoMore(t)
	_, _, closed := c.Closed()
	require.False(t, closed)
}

// TestWriteQueueBytes: a message larger than Options.WriteQueueBytes on its
// own is refused with sdk.ErrTooBig and the connection stays open (a
// broadcast too); one that fits on its own but not behind the unread bytes
// is a slow consumer (1008). Reading makes room.
func TestWriteQueueBytes(t *testing.T) {
	errs := make(chan error, 1)
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{
		OnText: func(c *sdk.Conn, b []byte) {
			s := string(b)
			if n, ok := strings.CutPrefix(s, "bcast "); ok {
				_ = c.Join("r")
				errs <- c.Broadcast("r", sdk.Binary, bytes.Repeat([]byte("r"), len(n)), sdk.BroadcastOptions{})
				return
			}
			errs <- c.SendBinary(bytes.Repeat([]byte("x"), len(s)))
		},
	})
	kit := strandtest.New(t, entry, strandtest.Options{WriteQueueBytes: 10})
	c := kit.Open()
	send := func(s string) error {
		c.SendText(s)
		c.Wait()
		return <-errs
	}
	require.ErrorIs(t, send("11 bytes..."), sdk.ErrTooBig)
	require.ErrorIs(t, send("bcast 11 bytes..."), sdk.ErrTooBig)
	_, _, closed := c.Closed()
	require.False(t, closed, "too big on its own closes nothing")
	require.NoError(t, send("6 byte"))
	require.NoError(t, send("4 by"))
	c.ExpectBinary(t, []byte("xxxxxx")) // 4 bytes unread: 6 fit again
	require.NoError(t, send("bcast 6 byte"))
	require.ErrorIs(t, send("1"), sdk.ErrSlowConsumer)
	c.ExpectClosed(t, sdk.ClosePolicyViolation)
	require.Len(t, c.Sent(), 3)
}

// TestMaxRoomsPerConn: the kit caps each connection's rooms as the server
// does, at sdk.DefaultMaxRoomsPerConn unless configured: a Join beyond it
// returns sdk.ErrTooManyRooms and the connection keeps its rooms;
// re-joining does not count and leaving makes room.
func TestMaxRoomsPerConn(t *testing.T) {
	join := func(c *strandtest.Conn, room string) error { return c.PluginConn().Join(room) }
	entry := sdk.NewPlugin("p").Entry("e").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}})

	t.Run("default", func(t *testing.T) {
		kit := strandtest.New(t, entry)
		c := kit.Open()
		for i := range sdk.DefaultMaxRoomsPerConn {
			require.NoError(t, join(c, fmt.Sprint("room-", i)))
		}
		require.NoError(t, join(c, "room-0"), "re-joining does not count")
		require.ErrorIs(t, join(c, "one-too-many"), sdk.ErrTooManyRooms)
		require.NoError(t, join(kit.Open(), "one-too-many"), "the cap is per connection")
	})
	t.Run("configured", func(t *testing.T) {
		kit := strandtest.New(t, entry, strandtest.Options{MaxRoomsPerConn: 2})
		c := kit.Open()
		require.NoError(t, join(c, "a"))
		require.NoError(t, join(c, "b"))
		require.ErrorIs(t, join(c, "c"), sdk.ErrTooManyRooms)
		require.NoError(t, c.PluginConn().Leave("a"))
		require.NoError(t, join(c, "c"))
		require.Len(t, kit.Members("b"), 1)
		require.Empty(t, kit.Members("a"))

		// A closed connection joins nothing, cap or not, and a broadcast
		// reaches the members left.
		other := kit.Open()
		require.NoError(t, join(other, "b"))
		c.Drop()
		c.Wait()
		require.ErrorIs(t, join(c, "d"), sdk.ErrClosed)
		require.NoError(t, other.PluginConn().Broadcast("b", sdk.Text, []byte("x"), sdk.BroadcastOptions{}))
		other.ExpectText(t, "x")
		require.Len(t, kit.Members("b"), 1)
	})
	t.Run("negative", func(t *testing.T) {
		r := newRecT(t)
		r.run(func() { strandtest.New(r, entry, strandtest.Options{MaxRoomsPerConn: -1}) })
		errs, fatal := r.failures()
		require.True(t, fatal)
		assert.Contains(t, errs[0], "MaxRoomsPerConn")
	})
}
