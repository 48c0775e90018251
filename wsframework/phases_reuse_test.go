package wsframework_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// Exchanges and phase contexts are recycled. These tests keep a context
// past its phase (a deferred decision that arrives after the host timed
// out, a handler that blocks past its timeout) while other requests run
// through the same route, and check, under -race, that neither side sees
// the other's request: a recycled object still in use would be reported as
// a race or show up as a wrong header or body.

// reuseTraffic sends n requests from 4 goroutines and checks that each
// answer carries its own path in every phase's output.
func reuseTraffic(t *testing.T, url string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range n {
				p := "/r" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				resp, body := get(t, url+p)
				assert.Equal(t, http.StatusOK, resp.StatusCode, p)
				assert.Equal(t, p, resp.Header.Get("X-Req"), p)
				assert.Equal(t, p, resp.Header.Get("X-Resp"), p)
				assert.Equal(t, "terminal"+p, body, p)
			}
		})
	}
	wg.Wait()
}

func TestLateDecisionDoesNotTouchARecycledContext(t *testing.T) {
	for _, phase := range []string{"request", "response", "body"} {
		for _, how := range []string{"defer", "block"} {
			t.Run(phase+"/"+how, func(t *testing.T) {
				kept := make(chan func(), 1)
				release := make(chan struct{})
				// late keeps the context past its timeout, then uses it.
				late := func(path string, use func()) bool {
					if path != "/late" {
						return false
					}
					if how == "block" {
						<-release
						use()
						return true
					}
					kept <- use
					return true
				}
				e := sdk.NewPlugin("p").Entry("e").
					RequestFilter(func(c *sdk.RequestContext) {
						p := c.Request().Path
						c.Set("path", p)
						if phase == "request" {
							if how == "defer" {
								c.Defer()
							}
							if late(p, func() {
								assert.Equal(t, "/late", c.Request().Path)
								assert.Equal(t, "/late", c.Value("path"))
								c.SetHeader("X-Req", "late")
								c.Reject(599, "late")
							}) {
								return
							}
						}
						c.SetHeader("X-Req", p)
						c.Next()
					}).
					ResponseFilter(func(c *sdk.ResponseContext) {
						p := c.Request().Path
						if phase == "response" {
							if how == "defer" {
								c.Defer()
							}
							if late(p, func() {
								assert.Equal(t, "/late", c.Request().Path)
								assert.Equal(t, "/late", c.Value("path"))
								assert.Equal(t, http.StatusOK, c.ResponseStatus())
								c.SetHeader("X-Resp", "late")
								c.SetStatus(599)
								c.Next()
							}) {
								return
							}
						}
						assert.Equal(t, p, c.Value("path"))
						c.SetHeader("X-Resp", p)
						c.Next()
					}).
					ResponseBodyFilter(func(c *sdk.BodyContext) {
						p := c.Request().Path
						if phase == "body" {
							if how == "defer" {
								c.Defer()
							}
							if late(p, func() {
								assert.Equal(t, "/late", c.Request().Path)
								assert.Equal(t, "terminal", string(c.Body()))
								c.SetBody([]byte("late"))
								c.SetStatus(599)
								c.Next()
							}) {
								return
							}
						}
						assert.Equal(t, p, c.Value("path"))
						c.SetBody(append(append([]byte(nil), c.Body()...), p...))
						c.Next()
					})
				cfg := wsframework.Config{PhaseTimeout: 250 * time.Millisecond, Plugins: map[string]wsframework.PluginPolicy{"p": {FailOpen: phase != "request"}}}
				srv, url := phaseServer(t, cfg, "/", okTerminal(nil), e)
				var once sync.Once
				releaseOnce := func() { once.Do(func() { close(release) }) }
				t.Cleanup(releaseOnce) // before the server's cleanup: Shutdown drains the pool

				resp, body := get(t, url+"/late")
				if phase == "request" {
					assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
				} else {
					assert.Equal(t, http.StatusOK, resp.StatusCode, "fail open")
					assert.Equal(t, "/late", resp.Header.Get("X-Req"))
					if phase == "body" {
						assert.Equal(t, "/late", resp.Header.Get("X-Resp"))
						assert.Equal(t, "terminal", body, "the late body filter is skipped")
					} else {
						assert.Empty(t, resp.Header.Get("X-Resp"), "the late response filter is skipped")
						assert.Equal(t, "terminal/late", body)
					}
				}
				// (A timeout long enough that the other requests, under -race on
				// a loaded machine, never reach it: they must all be answered.)
				assert.EqualValues(t, 1, srv.Stats().PhaseTimeouts)

				var wg sync.WaitGroup
				wg.Go(func() { reuseTraffic(t, url, 25) })
				// The late decision lands while other requests use the pools.
				time.Sleep(5 * time.Millisecond)
				if how == "block" {
					releaseOnce()
				} else {
					use := <-kept
					use()
				}
				wg.Wait()
				reuseTraffic(t, url, 5)
				assert.EqualValues(t, 1, srv.Stats().PhaseTimeouts, "only the late request timed out")
			})
		}
	}
}

// A terminal that reads the body after a request filter read it, with
// Logging counting the bytes: the counter is the request's, not the
// recycled exchange's.
func TestLoggingCountsBodyAcrossRecycledExchanges(t *testing.T) {
	logged := make(chan int64, 64)
	e := sdk.NewPlugin("p").Entry("e").
		RequestFilter(func(c *sdk.RequestContext) { c.Next() }).
		Logging(func(l *sdk.LogEntry) { logged <- l.BytesIn })
	term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", term, e)
	for i := range 20 {
		payload := strings.Repeat("x", i*7)
		resp, err := http.Post(url+"/", "text/plain", strings.NewReader(payload))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, payload, string(b))
		assert.EqualValues(t, len(payload), <-logged)
	}
}

// A served host call restarts the phase timeout: a filter whose calls are
// each within the timeout, and together past it, is not timed out (a
// deadline that expired before a call restarted it is stale).
func TestHostCallsRestartThePhaseTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	e := sdk.NewPlugin("p").Entry("e").RequestFilter(func(c *sdk.RequestContext) {
		for range 4 {
			time.Sleep(timeout * 4 / 10)
			if _, err := c.ReadBody(); err != nil {
				c.Reject(http.StatusTeapot, err.Error())
				return
			}
		}
		c.Next()
	})
	srv, url := phaseServer(t, wsframework.Config{PhaseTimeout: timeout}, "/", okTerminal(nil), e)
	resp, body := get(t, url+"/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "terminal", body)
	assert.Zero(t, srv.Stats().PhaseTimeouts)
}

// A client that goes away ends the wait for its phase at once, not at the
// phase timeout.
func TestClientGoneEndsThePhaseWait(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	logged := make(chan error, 1)
	e := sdk.NewPlugin("p").Entry("e").
		RequestFilter(func(c *sdk.RequestContext) {
			entered <- struct{}{}
			<-release
		}).
		Logging(func(l *sdk.LogEntry) { logged <- l.Err })
	srv, url := phaseServer(t, wsframework.Config{PhaseTimeout: time.Minute}, "/", okTerminal(nil), e)
	t.Cleanup(func() { close(release) }) // before Shutdown drains the pool
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	<-done
	select {
	case err := <-logged:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("the host still waits for the phase after its client left")
	}
	assert.Zero(t, srv.Stats().PhaseTimeouts)
}
