package wsframework_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// phaseServer starts a Server with one route and returns its base URL.
func phaseServer(t *testing.T, cfg wsframework.Config, pattern string, terminal http.Handler, entries ...*sdk.Entry) (*wsframework.Server, string) {
	t.Helper()
	srv, err := wsframework.New(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Route(pattern, terminal, entries...))
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
	})
	return srv, hs.URL
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func okTerminal(called *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if called != nil {
			called.Add(1)
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "terminal")
	})
}

func TestRequestFilterRejectSkipsTerminal(t *testing.T) {
	var called atomic.Int32
	p := sdk.NewPlugin("auth")
	e := p.Entry("auth").RequestFilter(func(ctx *sdk.RequestContext) {
		if ctx.Request().Header.Get("Authorization") != "Bearer ok" {
			ctx.Reject(http.StatusUnauthorized, "no")
			return
		}
		ctx.Next()
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", okTerminal(&called), e)

	resp, body := get(t, url+"/x")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "no", body)
	assert.EqualValues(t, 0, called.Load(), "the terminal must not run")

	resp, body = get(t, url+"/x", "Authorization", "Bearer ok")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "terminal", body)
	assert.EqualValues(t, 1, called.Load())
}

func TestHeaderEditsSeenByTerminalAndClient(t *testing.T) {
	p := sdk.NewPlugin("hdr")
	e := p.Entry("hdr").RequestFilter(func(ctx *sdk.RequestContext) {
		ctx.SetHeader("X-Plugin", "yes")
		ctx.Next()
	}).ResponseFilter(func(ctx *sdk.ResponseContext) {
		ctx.SetHeader("X-Seen-Status", strconv.Itoa(ctx.ResponseStatus()))
		ctx.RemoveHeader("X-Secret")
		ctx.SetStatus(http.StatusAccepted)
		ctx.Next()
	})
	var sawHeader atomic.Value
	term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawHeader.Store(w.Header().Get("X-Plugin"))
		w.Header().Set("X-Secret", "hidden")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "made")
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", term, e)
	resp, body := get(t, url+"/")
	assert.Equal(t, "yes", sawHeader.Load(), "terminal sees the request filter's edit")
	assert.Equal(t, "yes", resp.Header.Get("X-Plugin"), "client sees it too")
	assert.Equal(t, "201", resp.Header.Get("X-Seen-Status"))
	assert.Empty(t, resp.Header.Get("X-Secret"))
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, "made", body)
}

func TestBodyFilterReplacesBody(t *testing.T) {
	p := sdk.NewPlugin("body")
	e := p.Entry("body").ResponseBodyFilter(func(ctx *sdk.BodyContext) {
		ctx.SetBody(bytes.ToUpper(append([]byte("filtered: "), ctx.Body()...)))
		ctx.Next()
	})
	term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", term, e)
	resp, body := get(t, url+"/")
	assert.Equal(t, "FILTERED: HELLO", body)
	assert.Equal(t, int64(len(body)), resp.ContentLength)
	assert.Equal(t, strconv.Itoa(len(body)), resp.Header.Get("Content-Length"))
}

func TestBodyFilterOverCap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failOpen bool
		status   int
	}{{"closed", false, http.StatusBadGateway}, {"open", true, http.StatusOK}} {
		t.Run(tc.name, func(t *testing.T) {
			p := sdk.NewPlugin("big")
			e := p.Entry("big").ResponseBodyFilter(func(ctx *sdk.BodyContext) {
				ctx.SetBody([]byte("never"))
				ctx.Next()
			})
			big := strings.Repeat("x", 100)
			term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for range 10 {
					_, _ = io.WriteString(w, big)
				}
			})
			cfg := wsframework.Config{MaxBodyFilterBytes: 250, Plugins: map[string]wsframework.PluginPolicy{"big": {FailOpen: tc.failOpen}}}
			srv, url := phaseServer(t, cfg, "/", term, e)
			resp, body := get(t, url+"/")
			assert.Equal(t, tc.status, resp.StatusCode)
			st := srv.Stats()
			if tc.failOpen {
				assert.Equal(t, strings.Repeat(big, 10), body, "passed through unfiltered")
				assert.EqualValues(t, 1, st.BodyPassed)
			} else {
				assert.EqualValues(t, 1, st.BodyRefused)
			}
		})
	}
}

func TestLoggingSeesExactFigures(t *testing.T) {
	got := make(chan sdk.LogEntry, 1)
	p := sdk.NewPlugin("log")
	e := p.Entry("log").Logging(func(l *sdk.LogEntry) { got <- *l })
	term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write(bytes.Repeat(b, 3))
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", term, e)
	start := time.Now()
	resp, err := http.Post(url+"/tea", "text/plain", strings.NewReader("abcd"))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	l := <-got
	assert.Equal(t, http.StatusTeapot, l.Status)
	assert.EqualValues(t, 4, l.BytesIn)
	assert.EqualValues(t, 12, l.BytesOut)
	assert.Equal(t, "/tea", l.Request.Path)
	assert.Equal(t, http.MethodPost, l.Request.Method)
	assert.Positive(t, l.Duration)
	assert.LessOrEqual(t, l.Duration, elapsed)
	assert.NoError(t, l.Err)
}

func TestChainOrderThreePlugins(t *testing.T) {
	var mu sync.Mutex
	var trace []string
	rec := func(s string) {
		mu.Lock()
		trace = append(trace, s)
		mu.Unlock()
	}
	logged := make(chan struct{}, 3)
	var entries []*sdk.Entry
	for _, name := range []string{"a", "b", "c"} {
		p := sdk.NewPlugin(name)
		entries = append(entries, p.Entry(name).
			RequestFilter(func(ctx *sdk.RequestContext) { rec("req:" + name); ctx.Next() }).
			ResponseFilter(func(ctx *sdk.ResponseContext) { rec("resp:" + name); ctx.Next() }).
			ResponseBodyFilter(func(ctx *sdk.BodyContext) {
				rec("body:" + name)
				ctx.SetBody(append(append([]byte{}, ctx.Body()...), name...))
				ctx.Next()
			}).
			Logging(func(*sdk.LogEntry) { logged <- struct{}{} }))
	}
	term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec("terminal")
		_, _ = io.WriteString(w, "t:")
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", term, entries...)
	_, body := get(t, url+"/")
	for range 3 {
		<-logged
	}
	assert.Equal(t, "t:cba", body)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"req:a", "req:b", "req:c", "terminal", "resp:c", "resp:b", "resp:a", "body:c", "body:b", "body:a"}, trace)
}

func TestChainEndSkipsLaterPlugins(t *testing.T) {
	var trace []string
	var mu sync.Mutex
	rec := func(s string) { mu.Lock(); trace = append(trace, s); mu.Unlock() }
	logged := make(chan string, 3)
	mk := func(name string, end bool) *sdk.Entry {
		return sdk.NewPlugin(name).Entry(name).
			RequestFilter(func(ctx *sdk.RequestContext) {
				rec("req:" + name)
				if end {
					ctx.SetBody([]byte("ended by " + name))
					ctx.End()
					return
				}
				ctx.Next()
			}).
			ResponseFilter(func(ctx *sdk.ResponseContext) { rec("resp:" + name); ctx.Next() }).
			Logging(func(l *sdk.LogEntry) { logged <- fmt.Sprint(name, l.Status) })
	}
	var called atomic.Int32
	_, url := phaseServer(t, wsframework.Config{}, "/", okTerminal(&called), mk("a", false), mk("b", true), mk("c", false))
	resp, body := get(t, url+"/")
	assert.Equal(t, "ended by b", body)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 0, called.Load())
	got := map[string]bool{}
	for range 3 {
		got[<-logged] = true
	}
	assert.Equal(t, map[string]bool{"a200": true, "b200": true, "c200": true}, got, "every plugin's Logging runs once")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"req:a", "req:b", "resp:b", "resp:a"}, trace)
}

func TestPhaseTimeoutAndFailOpen(t *testing.T) {
	// The slow handler never decides. It is released by a cleanup
	// registered after the server's, so it runs first (last-in first-out)
	// and Shutdown can drain the phase pool.
	slow := func() (*sdk.Entry, func()) {
		release := make(chan struct{})
		e := sdk.NewPlugin("slow").Entry("slow").RequestFilter(func(ctx *sdk.RequestContext) {
			<-release
		})
		return e, func() { close(release) }
	}
	t.Run("closed", func(t *testing.T) {
		var called atomic.Int32
		e, release := slow()
		srv, url := phaseServer(t, wsframework.Config{PhaseTimeout: 50 * time.Millisecond}, "/", okTerminal(&called), e)
		t.Cleanup(release)
		resp, _ := get(t, url+"/")
		assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
		assert.EqualValues(t, 0, called.Load())
		st := srv.Stats()
		assert.EqualValues(t, 1, st.PhaseTimeouts)
		assert.EqualValues(t, 1, st.PhaseStuck, "the handler is still running: reported as stuck")
	})
	t.Run("open", func(t *testing.T) {
		var called atomic.Int32
		e, release := slow()
		cfg := wsframework.Config{PhaseTimeout: 50 * time.Millisecond, Plugins: map[string]wsframework.PluginPolicy{"slow": {FailOpen: true}}}
		srv, url := phaseServer(t, cfg, "/", okTerminal(&called), e)
		t.Cleanup(release)
		resp, body := get(t, url+"/")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "terminal", body)
		assert.EqualValues(t, 1, called.Load())
		assert.EqualValues(t, 1, srv.Stats().FailOpenSkips)
	})
}

func TestPhasePanicGives500AndServerKeepsServing(t *testing.T) {
	e := sdk.NewPlugin("boom").Entry("boom").RequestFilter(func(ctx *sdk.RequestContext) {
		if ctx.Request().Path == "/boom" {
			panic("kaboom")
		}
		ctx.Next()
	})
	srv, url := phaseServer(t, wsframework.Config{}, "/", okTerminal(nil), e)
	resp, _ := get(t, url+"/boom")
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	resp, body := get(t, url+"/fine")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "terminal", body)
	assert.EqualValues(t, 1, srv.Stats().PhasePanics)
}

func TestConcurrentHostCallsEachGetTheirReply(t *testing.T) {
	e := sdk.NewPlugin("calls").Entry("calls").RequestFilter(func(ctx *sdk.RequestContext) {
		var wg sync.WaitGroup
		bodies := make([][]byte, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { bodies[i], errs[i] = ctx.ReadBody() })
		}
		wg.Wait()
		for i := range 2 {
			if errs[i] != nil || string(bodies[i]) != "payload" {
				ctx.Reject(http.StatusInternalServerError, fmt.Sprintf("call %d: %q %v", i, bodies[i], errs[i]))
				return
			}
		}
		ctx.SetBody(bodies[0])
		ctx.End()
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", nil, e)
	resp, err := http.Post(url+"/", "text/plain", strings.NewReader("payload"))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	assert.Equal(t, "payload", string(b))
}

func TestReadBodyOverCapIs413(t *testing.T) {
	var called atomic.Int32
	e := sdk.NewPlugin("rb").Entry("rb").RequestFilter(func(ctx *sdk.RequestContext) {
		if _, err := ctx.ReadBody(); err != nil {
			return // the host has answered 413
		}
		ctx.Next()
	})
	srv, url := phaseServer(t, wsframework.Config{MaxRequestBodyBytes: 10}, "/", okTerminal(&called), e)
	resp, err := http.Post(url+"/", "text/plain", strings.NewReader(strings.Repeat("y", 11)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.EqualValues(t, 0, called.Load())
	assert.EqualValues(t, 1, srv.Stats().BodyTooLarge)
}

func TestStreamingResponseFromPlugin(t *testing.T) {
	e := sdk.NewPlugin("stream").Entry("stream").RequestFilter(func(ctx *sdk.RequestContext) {
		ctx.SetHeader("Content-Type", "text/event-stream")
		if err := ctx.StreamHeader(http.StatusOK); err != nil {
			panic(err)
		}
		for i := range 3 {
			if err := ctx.StreamWrite([]byte(fmt.Sprintf("chunk%d\n", i))); err != nil {
				panic(err)
			}
		}
		_ = ctx.StreamEnd()
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", nil, e)
	resp, body := get(t, url+"/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "chunk0\nchunk1\nchunk2\n", body)
}

func TestFlusherWorksWithoutBodyFilter(t *testing.T) {
	logged := make(chan struct{}, 1)
	e := sdk.NewPlugin("l").Entry("l").Logging(func(*sdk.LogEntry) { logged <- struct{}{} })
	step := make(chan struct{})
	term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		require.NoError(t, http.NewResponseController(w).Flush())
		<-step // the client must see "first" before we go on
		_, _ = io.WriteString(w, "second\n")
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", term, e)
	resp, err := http.Get(url + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, 6)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	assert.Equal(t, "first\n", string(buf))
	close(step)
	rest, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "second\n", string(rest))
	<-logged
}

func TestTrustedProxyClientIP(t *testing.T) {
	ips := make(chan string, 4)
	mk := func() *sdk.Entry {
		return sdk.NewPlugin("ip").Entry("ip").RequestFilter(func(ctx *sdk.RequestContext) {
			ips <- ctx.Request().ClientIP
			ctx.Next()
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		_, url := phaseServer(t, wsframework.Config{}, "/", okTerminal(nil), mk())
		get(t, url+"/", "X-Forwarded-For", "203.0.113.9")
		assert.Equal(t, "127.0.0.1", <-ips, "headers from an untrusted peer are ignored")
	})
	t.Run("trusted", func(t *testing.T) {
		cfg := wsframework.Config{TrustedProxies: []string{"127.0.0.0/8", "10.0.0.1"}}
		_, url := phaseServer(t, cfg, "/", okTerminal(nil), mk())
		get(t, url+"/", "X-Forwarded-For", "203.0.113.9, 10.0.0.1")
		assert.Equal(t, "203.0.113.9", <-ips)
		get(t, url+"/", "Forwarded", `for="[2001:db8::1]:4711";proto=https`)
		assert.Equal(t, "2001:db8::1", <-ips)
	})
	_, err := wsframework.New(wsframework.Config{TrustedProxies: []string{"not-an-ip"}})
	assert.Error(t, err)
}

func TestClaimsFlowFromFilterToOnOpen(t *testing.T) {
	opened := make(chan any, 1)
	logged := make(chan int, 1)
	e := sdk.NewPlugin("claims").Entry("ws").
		RequestFilter(func(ctx *sdk.RequestContext) {
			ctx.Set("user", "ada")
			ctx.Upgrade(nil)
		}).
		Logging(func(l *sdk.LogEntry) { logged <- l.Status }).
		WebSocket(sdk.WebSocketHandlers{OnOpen: func(c *sdk.Conn) { opened <- c.Value("user") }})
	_, url := phaseServer(t, wsframework.Config{}, "/ws", nil, e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws")
	require.NoError(t, err)
	assert.Equal(t, "ada", <-opened)
	assert.Equal(t, http.StatusSwitchingProtocols, <-logged)
	require.NoError(t, wsutil.WriteClientMessage(conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	_, _, _ = wsutil.ReadServerData(conn)
	conn.Close()
}

// TestLateResponseFilterDoesNotShareItsContext: a response filter that
// outlives its timeout keeps its (pooled) context to itself: later requests
// get other contexts, so its late writes race with nothing (-race checks).
func TestLateResponseFilterDoesNotShareItsContext(t *testing.T) {
	release := make(chan struct{})
	var first atomic.Bool
	e := sdk.NewPlugin("late").Entry("late").ResponseFilter(func(ctx *sdk.ResponseContext) {
		if first.CompareAndSwap(false, true) {
			<-release
			ctx.SetHeader("X-Late", "1") // after the host gave up
			ctx.SetStatus(599)
			ctx.Next()
			return
		}
		ctx.SetHeader("X-On-Time", "1")
		ctx.Next()
	})
	cfg := wsframework.Config{PhaseTimeout: 30 * time.Millisecond, Plugins: map[string]wsframework.PluginPolicy{"late": {FailOpen: true}}}
	srv, url := phaseServer(t, cfg, "/", okTerminal(nil), e)
	resp, _ := get(t, url+"/")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "fail open: the late filter is skipped")
	assert.Empty(t, resp.Header.Get("X-Late"))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			resp, _ := get(t, url+"/")
			assert.Equal(t, "1", resp.Header.Get("X-On-Time"))
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
	close(release)
	wg.Wait()
	assert.EqualValues(t, 1, srv.Stats().PhaseTimeouts)
}

func TestOriginDefaultPortMatchesHost(t *testing.T) {
	e := sdk.NewPlugin("o").Entry("o").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}})
	srv, err := wsframework.New(wsframework.Config{})
	require.NoError(t, err)
	defer srv.Close()
	require.NoError(t, srv.Route("/ws", nil, e))
	for _, tc := range []struct {
		host, origin string
		want         int
	}{
		{"example.com:80", "http://example.com", http.StatusSwitchingProtocols},
		{"example.com", "http://example.com:80", http.StatusSwitchingProtocols},
		{"example.com:443", "https://example.com", http.StatusSwitchingProtocols},
		{"example.com:8080", "http://example.com", http.StatusForbidden},
		{"example.com", "https://evil.example", http.StatusForbidden},
	} {
		t.Run(tc.host+" "+tc.origin, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/ws", nil)
			req.Host = tc.host
			req.Header.Set("Origin", tc.origin)
			if tc.want == http.StatusForbidden {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				assert.Equal(t, tc.want, w.Code)
				return
			}
			// An allowed origin proceeds to the handshake; a recorder
			// cannot be hijacked, so the upgrade fails after the origin
			// check: anything but 403 shows the check passed.
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			assert.NotEqual(t, http.StatusForbidden, w.Code)
		})
	}
}
