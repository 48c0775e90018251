package wsframework_test

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// An entry's ResponseFilter and ResponseBodyFilter run in one hand-off
// when they are adjacent in the phase order. These tests check that the
// chain keeps every semantic of the two single phases.

func TestResponseChainOrderStatusAndEdits(t *testing.T) {
	var mu sync.Mutex
	var trace []string
	rec := func(s string) { mu.Lock(); trace = append(trace, s); mu.Unlock() }
	a := sdk.NewPlugin("a").Entry("a").
		RequestFilter(func(c *sdk.RequestContext) { rec("req:a"); c.Next() }).
		ResponseFilter(func(c *sdk.ResponseContext) {
			rec("resp:a")
			assert.Equal(t, "b", c.ResponseHeader().Get("X-B"), "b's response filter ran first")
			c.SetStatus(http.StatusCreated)
			c.SetHeader("X-A", "1")
			c.Next()
		}).
		ResponseBodyFilter(func(c *sdk.BodyContext) {
			rec("body:a")
			c.SetBody(append(append([]byte(nil), c.Body()...), "+a"...))
			c.AddHeader("X-A", "2")
		})
	b := sdk.NewPlugin("b").Entry("b").
		RequestFilter(func(c *sdk.RequestContext) { rec("req:b"); c.Next() }).
		ResponseFilter(func(c *sdk.ResponseContext) { rec("resp:b"); c.SetHeader("X-B", "b") })
	term := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec("terminal")
		_, _ = io.WriteString(w, "t")
	})
	_, url := phaseServer(t, wsframework.Config{}, "/", term, a, b)
	resp, body := get(t, url+"/")
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "t+a", body)
	assert.Equal(t, []string{"1", "2"}, resp.Header.Values("X-A"))
	assert.Equal(t, "3", resp.Header.Get("Content-Length"))
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"req:a", "req:b", "terminal", "resp:b", "resp:a", "body:a"}, trace)
}

func TestResponseChainBodyFilterStatusWins(t *testing.T) {
	e := sdk.NewPlugin("p").Entry("e").
		ResponseFilter(func(c *sdk.ResponseContext) { c.SetStatus(http.StatusAccepted) }).
		ResponseBodyFilter(func(c *sdk.BodyContext) { c.SetStatus(http.StatusTeapot) })
	_, url := phaseServer(t, wsframework.Config{}, "/", okTerminal(nil), e)
	resp, body := get(t, url+"/")
	assert.Equal(t, http.StatusTeapot, resp.StatusCode)
	assert.Equal(t, "terminal", body)
}

// Each filter of a chain has its own timeout: a slow response filter and a
// slow body filter, each within the timeout, together past it, both apply.
func TestResponseChainEachFilterHasItsOwnTimeout(t *testing.T) {
	const timeout = time.Second
	e := sdk.NewPlugin("p").Entry("e").
		ResponseFilter(func(c *sdk.ResponseContext) {
			time.Sleep(timeout * 6 / 10)
			c.SetHeader("X-R", "1")
		}).
		ResponseBodyFilter(func(c *sdk.BodyContext) {
			time.Sleep(timeout * 6 / 10)
			c.SetBody([]byte("filtered"))
		})
	srv, url := phaseServer(t, wsframework.Config{PhaseTimeout: timeout}, "/", okTerminal(nil), e)
	resp, body := get(t, url+"/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("X-R"))
	assert.Equal(t, "filtered", body)
	assert.Zero(t, srv.Stats().PhaseTimeouts)
}

// A response filter that defers and decides in time: the body filter then
// runs in a hand-off of its own and sees the same request.
func TestResponseChainDeferredResponseFilter(t *testing.T) {
	var bodies atomic.Int32
	e := sdk.NewPlugin("p").Entry("e").
		ResponseFilter(func(c *sdk.ResponseContext) {
			c.Defer()
			go func() {
				time.Sleep(10 * time.Millisecond)
				c.SetHeader("X-R", c.Request().Path)
				c.SetStatus(http.StatusAccepted)
				c.Next()
			}()
		}).
		ResponseBodyFilter(func(c *sdk.BodyContext) {
			bodies.Add(1)
			c.SetBody([]byte(c.Request().Path))
		})
	srv, url := phaseServer(t, wsframework.Config{}, "/", okTerminal(nil), e)
	for _, p := range []string{"/a", "/b", "/c"} {
		resp, body := get(t, url+p)
		assert.Equal(t, http.StatusAccepted, resp.StatusCode)
		assert.Equal(t, p, resp.Header.Get("X-R"))
		assert.Equal(t, p, body)
	}
	assert.EqualValues(t, 3, bodies.Load())
	assert.Zero(t, srv.Stats().PhaseTimeouts)
}

// A panic in either filter of a chain fails that phase alone: closed, 500;
// open, the phase is skipped and the other still applies.
func TestResponseChainPanics(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failOpen bool
		inBody   bool
		status   int
		header   string
		body     string
	}{
		{"response/closed", false, false, http.StatusInternalServerError, "", "Internal Server Error\n"},
		{"response/open", true, false, http.StatusOK, "", "filtered"},
		{"body/closed", false, true, http.StatusInternalServerError, "1", "Internal Server Error\n"},
		{"body/open", true, true, http.StatusOK, "1", "terminal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := sdk.NewPlugin("p").Entry("e").
				ResponseFilter(func(c *sdk.ResponseContext) {
					if !tc.inBody {
						panic("response")
					}
					c.SetHeader("X-R", "1")
				}).
				ResponseBodyFilter(func(c *sdk.BodyContext) {
					if tc.inBody {
						panic("body")
					}
					c.SetBody([]byte("filtered"))
				})
			cfg := wsframework.Config{Plugins: map[string]wsframework.PluginPolicy{"p": {FailOpen: tc.failOpen}}}
			srv, url := phaseServer(t, cfg, "/", okTerminal(nil), e)
			resp, body := get(t, url+"/")
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, tc.body, body)
			if tc.status == http.StatusOK {
				assert.Equal(t, tc.header, resp.Header.Get("X-R"))
			}
			assert.EqualValues(t, 1, srv.Stats().PhasePanics)
		})
	}
}
