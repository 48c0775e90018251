package remote_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/sdk"
)

type logged struct {
	path   string
	status int
	err    string
}

// phasePlugin has one entry per phase, plus one that never decides.
func phasePlugin(logs chan<- logged) *sdk.Plugin {
	p := sdk.NewPlugin("phases")
	p.Entry("auth").
		RequestFilter(func(ctx *sdk.RequestContext) {
			req := ctx.Request()
			if req.Header.Get("X-Token") != "t" {
				ctx.SetHeader("X-Why", "token")
				ctx.Reject(http.StatusUnauthorized, "no token\n")
				return
			}
			if req.Method == http.MethodPost {
				body, err := ctx.ReadBody()
				if err != nil {
					ctx.Reject(http.StatusBadRequest, err.Error())
					return
				}
				ctx.SetStatus(http.StatusCreated)
				ctx.SetHeader("X-Plugin", "yes")
				ctx.SetBody(append([]byte("got "), body...))
				ctx.End()
				return
			}
			if q := req.Query().Get("name"); q != "" {
				ctx.Set("name", q) // stays in the plugin's process, for its Conn
				ctx.SetHeader("X-Hello", q)
				ctx.Upgrade(nil)
				return
			}
			ctx.SetHeader("X-Passed", "1")
			ctx.Next()
		}).
		WebSocket(sdk.WebSocketHandlers{
			OnOpen: func(c *sdk.Conn) {
				name, _ := c.Value("name").(string)
				_ = c.SendText("hello " + name + " " + c.Request().Path)
			},
		})
	p.Entry("edit").
		ResponseFilter(func(ctx *sdk.ResponseContext) {
			ctx.SetHeader("X-Status-Seen", strconv.Itoa(ctx.ResponseStatus()))
			ctx.SetHeader("X-Type-Seen", ctx.ResponseHeader().Get("Content-Type"))
			ctx.Next()
		}).
		ResponseBodyFilter(func(ctx *sdk.BodyContext) {
			ctx.SetBody(bytes.ToUpper(ctx.Body()))
			ctx.Next()
		}).
		Logging(func(l *sdk.LogEntry) {
			le := logged{path: l.Request.Path, status: l.Status}
			if l.Err != nil {
				le.err = l.Err.Error()
			}
			logs <- le
		})
	p.Entry("stuck").RequestFilter(func(ctx *sdk.RequestContext) {
		ctx.Defer() // and never decides
	})
	return p
}

func terminal() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "terminal says hi")
	})
}

func do(t *testing.T, method, url string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: ioTimeout}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestHTTPPhasesThroughSocket: request filters decide (Reject, End with a
// body read through a host call, Next with header edits, Upgrade with
// values kept in the plugin), response and body filters edit the answer,
// and logging sees it.
func TestHTTPPhasesThroughSocket(t *testing.T) {
	logs := make(chan logged, 16)
	e := startEnv(t, phasePlugin(logs), envOpts{
		routes:   map[string]string{"/auth": "auth", "/edit": "edit"},
		terminal: map[string]http.Handler{"/auth": terminal(), "/edit": terminal()},
	})
	base := "http://" + e.addr

	resp, body := do(t, "GET", base+"/auth", nil, "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "token", resp.Header.Get("X-Why"))
	require.Equal(t, "no token\n", body)

	resp, body = do(t, "POST", base+"/auth", map[string]string{"X-Token": "t"}, "the body")
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, "yes", resp.Header.Get("X-Plugin"))
	require.Equal(t, "got the body", body)

	resp, body = do(t, "GET", base+"/auth", map[string]string{"X-Token": "t"}, "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("X-Passed"))
	require.Equal(t, "terminal says hi", body)

	c, err := e.connect("/auth?name=ann", map[string][]string{"X-Token": {"t"}})
	require.NoError(t, err)
	f, err := c.read(ioTimeout)
	require.NoError(t, err)
	require.Equal(t, ws.OpText, f.op)
	require.Equal(t, "hello ann /auth", string(f.payload))

	resp, body = do(t, "GET", base+"/edit", nil, "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, "202", resp.Header.Get("X-Status-Seen"))
	require.Equal(t, "text/plain", resp.Header.Get("X-Type-Seen"))
	require.Equal(t, "TERMINAL SAYS HI", body)
	select {
	case l := <-logs:
		require.Equal(t, logged{path: "/edit", status: http.StatusAccepted}, l)
	case <-time.After(ioTimeout):
		t.Fatal("no logging event")
	}
}

// TestCallTimeoutFailsClosed: a plugin that never decides gets 502 after
// the call timeout; fail-open lets the request through instead.
func TestCallTimeoutFailsClosed(t *testing.T) {
	for _, open := range []bool{false, true} {
		e := startEnv(t, phasePlugin(make(chan logged, 16)), envOpts{
			cfg:      remote.Config{CallTimeout: 100 * time.Millisecond, FailOpen: open},
			routes:   map[string]string{"/stuck": "stuck"},
			terminal: map[string]http.Handler{"/stuck": terminal()},
		})
		resp, _ := do(t, "GET", "http://"+e.addr+"/stuck", nil, "")
		if open {
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
		} else {
			require.Equal(t, http.StatusBadGateway, resp.StatusCode)
		}
		e.close()
	}
}

// TestPhasesWhileDown: with no session, HTTP phases fail closed (502) or
// pass (fail-open).
func TestPhasesWhileDown(t *testing.T) {
	for _, open := range []bool{false, true} {
		e := startEnv(t, phasePlugin(make(chan logged, 16)), envOpts{
			cfg:      remote.Config{FailOpen: open},
			routes:   map[string]string{"/auth": "auth"},
			terminal: map[string]http.Handler{"/auth": terminal()},
		})
		require.NoError(t, e.stopPlugin())
		e.waitEnd()
		resp, body := do(t, "GET", "http://"+e.addr+"/auth", map[string]string{"X-Token": "t"}, "")
		if open {
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
		} else {
			require.Equal(t, http.StatusBadGateway, resp.StatusCode)
			require.Contains(t, body, "plugin phases unavailable")
		}
		e.close()
	}
}
