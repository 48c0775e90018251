package tests

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// lateHandler is a handler set after it is mounted: the Server's own
// health handlers exist only once the harness made the Server.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*l.h.Load()).ServeHTTP(w, r)
}

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

// startHealthServer starts a harness with /healthz and /readyz served by
// the Server's own handlers and a probe on /ws.
func startHealthServer(t *testing.T, p *probe) *harness {
	t.Helper()
	healthz, readyz := new(lateHandler), new(lateHandler)
	h := startServerHandlers(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry},
		map[string]http.Handler{"GET /healthz": healthz, "GET /readyz": readyz})
	healthz.set(h.srv.HealthzHandler())
	readyz.set(h.srv.ReadyzHandler())
	return h
}

// get answers a GET on the harness's public listener.
func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	status, body, err := h.tryGet(path)
	require.NoError(t, err)
	return status, body
}

// tryGet is get for any goroutine.
func (h *harness) tryGet(path string) (int, string, error) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: ioTimeout}).Get("http://" + h.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestReadyzFollowsChecks: /readyz is 200 while every check passes and
// 503 with the failing checks' names while one fails; /healthz stays 200.
func TestReadyzFollowsChecks(t *testing.T) {
	h := startHealthServer(t, newProbe("readyz"))
	status, body := h.get(t, "/readyz")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "ok\n", body)

	errDB := errors.New("db unreachable")
	var dbDown, cacheDown atomic.Bool
	h.srv.AddReadinessCheck("db", func(context.Context) error {
		if dbDown.Load() {
			return errDB
		}
		return nil
	})
	h.srv.AddReadinessCheck("cache", func(context.Context) error {
		if cacheDown.Load() {
			panic("cache check broke")
		}
		return nil
	})
	require.Panics(t, func() { h.srv.AddReadinessCheck("db", func(context.Context) error { return nil }) })

	status, _ = h.get(t, "/readyz")
	require.Equal(t, http.StatusOK, status)
	dbDown.Store(true)
	status, body = h.get(t, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "not ready: db\n", body, "the answer names the failing check, not its error")
	err := h.srv.Ready(context.Background())
	require.ErrorIs(t, err, errDB)
	require.ErrorContains(t, err, "db: db unreachable")

	cacheDown.Store(true) // a panicking check fails, it does not crash
	status, body = h.get(t, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "not ready: db, cache\n", body)

	dbDown.Store(false)
	cacheDown.Store(false)
	status, body = h.get(t, "/readyz")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "ok\n", body)
	status, body = h.get(t, "/healthz")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "ok\n", body)
}

// TestReadyNotListening: a Server that serves no listener is alive but
// not ready.
func TestReadyNotListening(t *testing.T) {
	srv, err := wsframework.New(wsframework.Config{Logger: quietLogger()})
	require.NoError(t, err)
	defer srv.Close()
	require.ErrorIs(t, srv.Ready(context.Background()), wsframework.ErrNotListening)
	rec := httptest.NewRecorder()
	srv.ReadyzHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "not ready: not listening\n", rec.Body.String())
	rec = httptest.NewRecorder()
	srv.HealthzHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code)
}

// TestReadyzDuringShutdown: once Shutdown begins the Server is not ready,
// also for a /readyz request whose checks were running when it began;
// it stays alive while it drains, and is not after Shutdown returned.
func TestReadyzDuringShutdown(t *testing.T) {
	p := newProbe("readyz-shutdown")
	h := startHealthServer(t, p)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var block atomic.Bool
	h.srv.AddReadinessCheck("slow", func(ctx context.Context) error {
		if block.CompareAndSwap(true, false) { // the first run after Store(true) only
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	status, _ := h.get(t, "/readyz") // Serve is running
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, h.srv.Ready(context.Background()))

	// A connection whose handler blocks keeps Shutdown draining.
	c := h.dial(t, "/ws?tag=busy")
	require.NoError(t, c.send(ws.OpText, []byte("!block")))
	p.waitBlocked(t)

	block.Store(true)
	type answer struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan answer, 1)
	go func() {
		status, body, err := h.tryGet("/readyz")
		inFlight <- answer{status, body, err}
	}()
	<-entered

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		shutdownDone <- h.srv.Shutdown(ctx)
	}()
	require.Eventually(t, func() bool {
		return errors.Is(h.srv.Ready(context.Background()), wsframework.ErrServerClosed)
	}, ioTimeout, time.Millisecond)
	rec := httptest.NewRecorder()
	h.srv.HealthzHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code, "not alive while draining")

	close(release)
	a := <-inFlight
	require.NoError(t, a.err)
	require.Equal(t, http.StatusServiceUnavailable, a.status)
	require.Equal(t, "not ready: shutting down\n", a.body)

	p.unblock()
	c.expectClose(t, ws.StatusGoingAway)
	require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "")))
	require.NoError(t, <-shutdownDone)
	rec = httptest.NewRecorder()
	h.srv.HealthzHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "shut down\n", rec.Body.String())
	rec = httptest.NewRecorder()
	h.srv.ReadyzHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
}
