package wsframework_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// TestRouteRefusesMistakes: each mistake a plugin author can make when
// mounting entries fails at Route, with an error that names it.
func TestRouteRefusesMistakes(t *testing.T) {
	newServer := func(t *testing.T) *wsframework.Server {
		srv, err := wsframework.New(wsframework.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		return srv
	}
	t.Run("entry_never_registered", func(t *testing.T) {
		p := sdk.NewPlugin("echo")
		p.Entry("echo").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}})
		err := newServer(t).Route("/echo", nil, p.Entry("ecoh")) // misspelled
		require.EqualError(t, err, `wsframework: Route "/echo": sdk: entry echo/ecoh has no handlers: is the name misspelled, or was it never registered?`)
	})
	t.Run("on_message_and_on_text", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("both").WebSocket(sdk.WebSocketHandlers{
			OnMessage: func(*sdk.Conn, sdk.Message) {},
			OnText:    func(*sdk.Conn, []byte) {},
		})
		err := newServer(t).Route("/ws", nil, e)
		require.EqualError(t, err, `wsframework: Route "/ws": sdk: entry p/both: WebSocket handlers set both OnMessage and OnText/OnBinary: OnMessage would shadow them; set one or the other`)
	})
	t.Run("on_message_and_on_binary", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("both").WebSocket(sdk.WebSocketHandlers{
			OnMessage: func(*sdk.Conn, sdk.Message) {},
			OnBinary:  func(*sdk.Conn, []byte) {},
		})
		err := newServer(t).Route("/ws", nil, e)
		require.EqualError(t, err, `wsframework: Route "/ws": sdk: entry p/both: WebSocket handlers set both OnMessage and OnText/OnBinary: OnMessage would shadow them; set one or the other`)
	})
	t.Run("registered_but_empty_entry", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("empty") // named, given nothing
		err := newServer(t).Route("/e", nil, e)
		require.EqualError(t, err, `wsframework: Route "/e": sdk: entry p/empty has no handlers: is the name misspelled, or was it never registered?`)
	})
	t.Run("all_nil_websocket_handlers", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("ws").WebSocket(sdk.WebSocketHandlers{})
		err := newServer(t).Route("/ws", nil, e)
		require.EqualError(t, err, `wsframework: Route "/ws": sdk: entry p/ws has no handlers: its WebSocketHandlers are all nil`)
	})
	t.Run("register_after_mount", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("ws").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}})
		require.NoError(t, newServer(t).Route("/ws", nil, e))
		require.PanicsWithError(t, "sdk: entry p/ws: RequestFilter after the entry was mounted on a host: register handlers before mounting it", func() {
			e.RequestFilter(func(*sdk.RequestContext) {})
		})
		require.PanicsWithError(t, "sdk: entry p/ws: WebSocket after the entry was mounted on a host: register handlers before mounting it", func() {
			e.WebSocket(sdk.WebSocketHandlers{OnBinary: func(*sdk.Conn, []byte) {}})
		})
	})
	t.Run("refused_entry_is_not_mounted", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("late")
		require.Error(t, newServer(t).Route("/l", nil, e))
		require.NotPanics(t, func() { e.Logging(func(*sdk.LogEntry) {}) }, "a refused entry may still be completed")
		require.NoError(t, newServer(t).Route("/l", nil, e))
	})
	t.Run("two_plugins_one_name", func(t *testing.T) {
		srv := newServer(t)
		a := sdk.NewPlugin("auth").Entry("check").RequestFilter(func(*sdk.RequestContext) {})
		b := sdk.NewPlugin("auth").Entry("check").RequestFilter(func(*sdk.RequestContext) {})
		require.NoError(t, srv.Route("/a", nil, a))
		require.NoError(t, srv.Route("/a2", nil, a), "the same plugin on two routes is fine")
		err := srv.Route("/b", nil, b)
		require.EqualError(t, err, `wsframework: two plugins named "auth": plugin names must be unique on a server`)
	})
	t.Run("valid", func(t *testing.T) {
		e := sdk.NewPlugin("p").Entry("ok").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}, OnBinary: func(*sdk.Conn, []byte) {}})
		require.NoError(t, newServer(t).Route("/ws", nil, e))
	})
}

// TestPhaseReturnWithoutDecidingIsNext: in every phase, a handler that
// returns without deciding lets the request go on at once; one that calls
// Defer and never decides fails the phase at its timeout (504).
func TestPhaseReturnWithoutDecidingIsNext(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "terminal") })
	for _, tc := range []struct {
		name  string
		entry func(p *sdk.Plugin, deferred bool) *sdk.Entry
	}{
		{"request_filter", func(p *sdk.Plugin, d bool) *sdk.Entry {
			return p.Entry("e").RequestFilter(func(c *sdk.RequestContext) {
				if d {
					c.Defer()
				}
			})
		}},
		{"response_filter", func(p *sdk.Plugin, d bool) *sdk.Entry {
			return p.Entry("e").ResponseFilter(func(c *sdk.ResponseContext) {
				c.SetHeader("X-Seen", "yes")
				if d {
					c.Defer()
				}
			})
		}},
		{"body_filter", func(p *sdk.Plugin, d bool) *sdk.Entry {
			return p.Entry("e").ResponseBodyFilter(func(c *sdk.BodyContext) {
				if d {
					c.Defer()
				}
			})
		}},
	} {
		for _, deferred := range []bool{false, true} {
			name := tc.name + map[bool]string{false: "/returns", true: "/defers"}[deferred]
			t.Run(name, func(t *testing.T) {
				srv, err := wsframework.New(wsframework.Config{PhaseTimeout: timeout})
				require.NoError(t, err)
				require.NoError(t, srv.Route("/", ok, tc.entry(sdk.NewPlugin("p"), deferred)))
				hs := httptest.NewServer(srv)
				defer hs.Close()
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					require.NoError(t, srv.Shutdown(ctx))
				}()
				resp, err := http.Get(hs.URL + "/")
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if deferred {
					require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
					return
				}
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, "terminal", string(body))
				if tc.name == "response_filter" {
					require.Equal(t, "yes", resp.Header.Get("X-Seen"))
				}
			})
		}
	}
}
