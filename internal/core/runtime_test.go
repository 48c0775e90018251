package core_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/testbuf"
	"github.com/strandws/strand/sdk/bufpool"
)

// recHost records what a plugin sends and closes, and the closes the
// runtime makes after a panic.
type recHost struct {
	mu     sync.Mutex
	sent   []string
	closed []core.CloseCode
	panics []string // ClosePanic reasons
}

func (h *recHost) Write(_ core.MessageType, b *bufpool.Buffer) error {
	h.mu.Lock()
	h.sent = append(h.sent, string(b.B))
	h.mu.Unlock()
	b.Release()
	return nil
}

func (h *recHost) Close(code core.CloseCode, _ string) error {
	h.mu.Lock()
	h.closed = append(h.closed, code)
	h.mu.Unlock()
	return nil
}

func (h *recHost) ClosePanic(reason string) error {
	h.mu.Lock()
	h.panics = append(h.panics, reason)
	h.mu.Unlock()
	return nil
}

func newRuntime(t *testing.T, h core.WebSocketHandlers, cfg core.RuntimeConfig) (*core.Runtime, *core.WebSocketHandlers) {
	t.Helper()
	p := core.NewPlugin("t")
	rt, err := core.NewRuntime(p, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, rt.Close(ctx))
	})
	return rt, &h
}

func msg(rt *core.Runtime, s string) *bufpool.Buffer {
	b := rt.Buffers().Get(len(s))
	copy(b.B, s)
	return b
}

func TestRuntimeOrderOpenMessagesClose(t *testing.T) {
	var mu sync.Mutex
	var trace []string
	rec := func(s string) { mu.Lock(); trace = append(trace, s); mu.Unlock() }
	closed := make(chan struct{})
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnOpen:    func(c *core.Conn) { rec("open") },
		OnMessage: func(c *core.Conn, m core.Message) { rec(string(m.Data)) },
		OnClose: func(c *core.Conn, code core.CloseCode, reason string) {
			rec(fmt.Sprint("close ", code, " ", reason))
			close(closed)
		},
	}, core.RuntimeConfig{})
	ctx := context.Background()
	c, err := rt.Open(ctx, &recHost{}, core.ConnInfo{ID: 7, Handlers: h})
	require.NoError(t, err)
	want := []string{"open"}
	for i := range 500 {
		s := fmt.Sprint(i)
		want = append(want, s)
		require.NoError(t, rt.Message(ctx, c, core.Text, msg(rt, s)))
	}
	rt.Closed(c, core.CloseNormal, "bye")
	rt.Closed(c, core.CloseGoingAway, "again") // idempotent
	<-closed
	<-c.Context().Done()
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, append(want, "close 1000 bye"), trace)
	assert.EqualValues(t, 0, rt.Stats().Open)
}

// TestConnContext: one context per connection, whoever asks first and
// whenever; it is cancelled once OnClose ran, also when it was first asked
// for while the close was under way.
func TestConnContext(t *testing.T) {
	rt, h := newRuntime(t, core.WebSocketHandlers{}, core.RuntimeConfig{})
	for id := range uint64(200) {
		c, err := rt.Open(context.Background(), &recHost{}, core.ConnInfo{ID: id + 1, Handlers: h})
		require.NoError(t, err)
		early := id%2 == 0
		var first context.Context
		if early {
			first = c.Context()
			require.NoError(t, first.Err(), "cancelled before the close")
		}
		var wg sync.WaitGroup
		ctxs := make([]context.Context, 4)
		for i := range ctxs {
			wg.Go(func() { ctxs[i] = c.Context() })
		}
		rt.Closed(c, core.CloseNormal, "")
		wg.Wait()
		for _, ctx := range ctxs {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("conn %d: context not cancelled after OnClose", id)
			}
			require.True(t, ctx == ctxs[0], "conn %d: more than one context", id)
		}
		if early {
			require.True(t, first == ctxs[0], "conn %d: more than one context", id)
		}
	}
}

func TestRuntimePanicClosesWith1011(t *testing.T) {
	gotErr := make(chan error, 1)
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnMessage: func(c *core.Conn, m core.Message) { panic("boom") },
		OnError:   func(c *core.Conn, err error) { gotErr <- err },
	}, core.RuntimeConfig{})
	host := &recHost{}
	c, err := rt.Open(context.Background(), host, core.ConnInfo{ID: 1, Handlers: h})
	require.NoError(t, err)
	require.NoError(t, rt.Message(context.Background(), c, core.Binary, msg(rt, "x")))
	err = <-gotErr
	assert.ErrorContains(t, err, "boom")
	host.mu.Lock()
	assert.Equal(t, []string{"internal error"}, host.panics, "a panic closes through ClosePanic")
	assert.Empty(t, host.closed)
	host.mu.Unlock()
	assert.EqualValues(t, 1, rt.Stats().Panics)
	rt.Closed(c, core.CloseInternalError, "")
}

// TestRuntimePluginClose1011IsNotAPanic: a plugin's own Close with 1011
// reaches the host's Close, not ClosePanic, and counts no panic.
func TestRuntimePluginClose1011IsNotAPanic(t *testing.T) {
	done := make(chan error, 1)
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnMessage: func(c *core.Conn, m core.Message) { done <- c.Close(core.CloseInternalError, "plugin's choice") },
	}, core.RuntimeConfig{})
	host := &recHost{}
	c, err := rt.Open(context.Background(), host, core.ConnInfo{ID: 1, Handlers: h})
	require.NoError(t, err)
	require.NoError(t, rt.Message(context.Background(), c, core.Binary, msg(rt, "x")))
	require.NoError(t, <-done)
	host.mu.Lock()
	assert.Equal(t, []core.CloseCode{core.CloseInternalError}, host.closed)
	assert.Empty(t, host.panics)
	host.mu.Unlock()
	assert.Zero(t, rt.Stats().Panics)
	rt.Closed(c, core.CloseInternalError, "")
}

func TestRuntimePendingBytesBackpressure(t *testing.T) {
	release := make(chan struct{})
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnMessage: func(c *core.Conn, m core.Message) { <-release },
	}, core.RuntimeConfig{MaxPendingBytes: 10})
	c, err := rt.Open(context.Background(), &recHost{}, core.ConnInfo{ID: 3, Handlers: h})
	require.NoError(t, err)
	require.NoError(t, rt.Message(context.Background(), c, core.Binary, msg(rt, "12345")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Message(ctx, c, core.Binary, msg(rt, "1234567890")) }()
	// 15 bytes pending > 10: Message accepted the event but waits for room.
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	close(release)
	require.NoError(t, rt.Message(context.Background(), c, core.Binary, msg(rt, "z")))
	rt.Closed(c, core.CloseNormal, "")
}

func TestRuntimeClosedRefusesEvents(t *testing.T) {
	p := core.NewPlugin("t")
	rt, err := core.NewRuntime(p, core.RuntimeConfig{})
	require.NoError(t, err)
	require.NoError(t, rt.Close(context.Background()))
	require.NoError(t, rt.Close(context.Background()), "Close is idempotent")
	_, err = rt.Open(context.Background(), &recHost{}, core.ConnInfo{ID: 1})
	assert.ErrorIs(t, err, core.ErrRuntimeClosed)
	_, err = core.NewRuntime(nil, core.RuntimeConfig{})
	assert.Error(t, err)
}

func TestRuntimeTryMessageFull(t *testing.T) {
	release := make(chan struct{})
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnMessage: func(c *core.Conn, m core.Message) { <-release },
	}, core.RuntimeConfig{Dispatcher: dispatcher.ShardedConfig{Shards: 1, Workers: 1, QueueSize: 1, TasksPerTurn: 1}})
	c, err := rt.Open(context.Background(), &recHost{}, core.ConnInfo{ID: 1, Handlers: h})
	require.NoError(t, err)
	woken := make(chan struct{})
	var full bool
	for range 10 {
		b := msg(rt, "m")
		if err := rt.TryMessage(c, core.Binary, b, func() { close(woken) }); err != nil {
			require.True(t, errors.Is(err, dispatcher.ErrFull))
			b.Release() // not taken on error
			full = true
			break
		}
	}
	require.True(t, full, "a one-slot shard behind a blocked handler fills up")
	close(release)
	<-woken
	rt.Closed(c, core.CloseNormal, "")
}

func ExampleNewPlugin() {
	p := core.NewPlugin("greeter")
	p.Entry("hello").
		RequestFilter(func(ctx *core.RequestContext) {
			if ctx.Request().Query().Get("name") == "" {
				ctx.Reject(400, "name is required")
				return
			}
			ctx.Set("name", ctx.Request().Query().Get("name"))
			ctx.Upgrade(nil) // with the entry's WebSocket handlers
		}).
		WebSocket(core.WebSocketHandlers{
			OnOpen: func(c *core.Conn) { _ = c.SendText("hello, " + c.Value("name").(string)) },
			OnMessage: func(c *core.Conn, m core.Message) {
				_ = c.Send(m.Type, m.Data) // Send copies: m.Data is valid until we return
			},
		})
	e, _ := p.Lookup("hello")
	fmt.Println(e, e.Has(core.PhaseRequestFilter), e.Has(core.PhaseLogging))
	// Output: greeter/hello true false
}

func TestRuntimeSyncRunsAfterEarlierEvents(t *testing.T) {
	release := make(chan struct{})
	var handled []string
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnMessage: func(c *core.Conn, m core.Message) {
			<-release
			handled = append(handled, string(m.Data))
		},
	}, core.RuntimeConfig{})
	c, err := rt.Open(context.Background(), &recHost{}, core.ConnInfo{ID: 9, Handlers: h})
	require.NoError(t, err)
	for _, s := range []string{"a", "b"} {
		require.NoError(t, rt.Message(context.Background(), c, core.Text, msg(rt, s)))
	}
	synced := make(chan []string, 1)
	require.NoError(t, rt.Sync(c, func() { synced <- append([]string(nil), handled...) }))
	close(release)
	assert.Equal(t, []string{"a", "b"}, <-synced, "the barrier runs after both messages")
	rt.Closed(c, core.CloseNormal, "")
	done := make(chan struct{})
	require.NoError(t, rt.Sync(c, func() { close(done) }), "a barrier after OnClose is accepted")
	<-done
}

// TestStatsWhilePhasePoolStarts: Stats may run while the first phase
// starts the pool (it used to read the pool unsynchronized).
func TestStatsWhilePhasePoolStarts(t *testing.T) {
	p := core.NewPlugin("stats")
	e := p.Entry("e").RequestFilter(func(c *core.RequestContext) { c.Next() })
	rt, err := core.NewRuntime(p, core.RuntimeConfig{})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_ = rt.Stats()
		}
	}()
	rc := core.NewRequestContext(context.Background(), &core.Request{}, nil)
	d, err := rt.RequestFilter(e, rc, 5*time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, core.DecisionNext, d)
	<-done
	require.NoError(t, rt.Close(context.Background()))
}

// routedHost is a recHost that names its connection's route.
type routedHost struct {
	recHost
	route string
}

func (h *routedHost) Route() string { return h.route }

// TestSlowHandlerLineNamesRoute: the dispatcher reports a slow handler by
// the connection's ID only; without a host's ConnRoute, the runtime's own
// index of open connections names its route on the line.
func TestSlowHandlerLineNamesRoute(t *testing.T) {
	var logs testbuf.Buffer
	cfg := core.RuntimeConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	cfg.Dispatcher.SlowThreshold = 10 * time.Millisecond
	done := make(chan struct{})
	rt, h := newRuntime(t, core.WebSocketHandlers{
		OnMessage: func(*core.Conn, core.Message) { time.Sleep(100 * time.Millisecond); close(done) },
	}, cfg)
	c, err := rt.Open(context.Background(), &routedHost{route: "/rooms/{room}"}, core.ConnInfo{ID: 7, Handlers: h})
	require.NoError(t, err)
	require.NoError(t, rt.Message(context.Background(), c, core.Text, msg(rt, "slow")))
	<-done
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"msg":"strand: slow handler"`) },
		5*time.Second, time.Millisecond)
	require.Contains(t, logs.String(), `"conn":7,"route":"/rooms/{room}","plugin":"t"`)
}
