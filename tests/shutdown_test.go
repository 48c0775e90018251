package tests

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// TestShutdownGraceful: with clients open, Shutdown sends each 1001, returns
// nil within its deadline, leaves no goroutine behind, and refuses new
// connections.
func TestShutdownGraceful(t *testing.T) {
	const clients = 50
	p := newProbe("shutdown")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})
	cs := make([]*wsClient, clients)
	for i := range cs {
		cs[i] = h.dial(t, tagPath("/ws", "c"))
		cs[i].echo(t, ws.OpText, fmt.Appendf(nil, "client %d", i))
	}

	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- h.srv.Shutdown(ctx) }()

	// Every client gets 1001 and answers it, as a browser would.
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range cs {
		wg.Go(func() {
			f, err := c.readFrame(ioTimeout)
			switch {
			case err != nil:
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			case f.op != ws.OpClose:
				errs <- fmt.Errorf("client %d: got %v, want close", i, f)
				return
			}
			if code, _ := ws.ParseCloseFrameData(f.payload); code != ws.StatusGoingAway {
				errs <- fmt.Errorf("client %d: close code %d, want 1001", i, code)
			}
			if err := c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "")); err != nil {
				errs <- fmt.Errorf("client %d: answer close: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.NoError(t, <-done)
	t.Logf("Shutdown with %d clients took %v", clients, time.Since(start))
	for range clients {
		p.waitClose(t, "c", sdk.CloseGoingAway)
	}
	for _, c := range cs {
		c.expectEOF(t)
	}
	h.waitServed(t)
	st := h.srv.Stats()
	require.Equal(t, uint64(clients), st.Closes["shutdown"], "closes: %v", st.Closes)
	require.Zero(t, st.Open)

	// Refused: the listener is closed, and the Server used as a handler
	// answers handshakes with 503.
	_, err := net.DialTimeout("tcp", h.addr, ioTimeout)
	require.Error(t, err, "the listener still accepts after Shutdown")
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, tagPath("/ws", "late"), nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	h.srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Zero(t, h.srv.Stats().Open)

	goleak.VerifyNone(t)
	require.NoError(t, h.srv.Shutdown(ctx), "a second Shutdown")
}

// TestShutdownBlockedHandler: Shutdown with a handler blocked forever
// returns ctx's error at its deadline; once the handler is released, the
// connection's OnClose runs and nothing is left behind.
func TestShutdownBlockedHandler(t *testing.T) {
	const grace = time.Second
	p := newProbe("blocked")
	h := startServer(t, wsframework.Config{MaxPendingBytes: 16}, map[string]*sdk.Entry{"/ws": p.entry})
	t.Cleanup(p.unblock) // before the server's shutdown, if the test fails early

	// The stuck connection's handler blocks, and its reader is paused
	// behind it (MaxPendingBytes exceeded), so it cannot read the close
	// reply either.
	stuck := h.dial(t, tagPath("/ws", "stuck"))
	require.NoError(t, stuck.send(ws.OpText, []byte("!block")))
	p.waitBlocked(t)
	require.NoError(t, stuck.send(ws.OpBinary, make([]byte, 64)))
	// The server must have read it before Shutdown starts: data that
	// arrives after the server's close frame is discarded by design.
	require.Eventually(t, func() bool { return h.srv.Stats().MessagesIn == 2 }, ioTimeout, time.Millisecond,
		"the server did not read the stuck client's second message")
	free := h.dial(t, tagPath("/ws", "free"))
	free.echo(t, ws.OpText, []byte("hi"))

	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(ctx) }()

	// Both clients get 1001 although one handler never returns: the
	// close is written by the host, not by the plugin. The stuck client
	// does not answer (nobody would read it).
	stuck.expectClose(t, ws.StatusGoingAway)
	free.expectClose(t, ws.StatusGoingAway)
	require.NoError(t, free.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "")))
	p.waitClose(t, "free", sdk.CloseGoingAway)

	select {
	case err := <-done:
		elapsed := time.Since(start)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.GreaterOrEqual(t, elapsed, grace-10*time.Millisecond, "returned before its deadline")
		require.Less(t, elapsed, grace+2*time.Second, "returned long after its deadline")
	case <-time.After(ioTimeout):
		t.Fatal("Shutdown did not return at its deadline")
	}
	h.waitServed(t)
	for _, c := range []*wsClient{stuck, free} {
		c.expectEOF(t)
	}

	p.unblock()
	p.waitClose(t, "stuck", sdk.CloseGoingAway)
	require.Equal(t, []string{"!block", string(make([]byte, 64))}, p.messages("stuck"),
		"messages read before the close are still handled")
	// A later Shutdown waits for what the first left running.
	ctx2, cancel2 := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel2()
	require.NoError(t, h.srv.Shutdown(ctx2))
	goleak.VerifyNone(t)
}
