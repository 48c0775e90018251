package chatserver_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/wsframework"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts a chat server on 127.0.0.1:0 and returns its base URL and a
// stop function.
func serve(tb testing.TB) (string, func()) {
	tb.Helper()
	chat, err := chatserver.New(chatserver.Config{Server: wsframework.Config{Logger: slog.New(slog.DiscardHandler)}})
	require.NoError(tb, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	served := make(chan error, 1)
	go func() { served <- chat.Server.Serve(l) }()
	return "http://" + l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(tb, chat.Server.Shutdown(ctx))
		require.ErrorIs(tb, <-served, wsframework.ErrServerClosed)
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestRoutes(t *testing.T) {
	base, stop := serve(t)
	defer stop()
	for _, tc := range []struct {
		path, contentType, contains string
		status                      int
	}{
		{"/healthz", "text/plain; charset=utf-8", "ok", 200},
		{"/readyz", "text/plain; charset=utf-8", "ok", 200},
		{"/", "text/html; charset=utf-8", `<form id="join-form"`, 200},
		{"/app.js", "text/javascript; charset=utf-8", "textContent", 200},
		{"/style.css", "text/css; charset=utf-8", ".messages", 200},
		{"/nope", "text/plain; charset=utf-8", "404", 404},
		{"/ws?room=r", "text/plain; charset=utf-8", "name is missing", 400},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, base+tc.path)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, tc.contentType, resp.Header.Get("Content-Type"))
			require.Contains(t, body, tc.contains)
			if tc.path == "/" {
				csp := resp.Header.Get("Content-Security-Policy")
				require.Contains(t, csp, "script-src 'self'")
				require.NotContains(t, csp, "unsafe-inline")
				require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
			}
		})
	}
}

// Example starts the chat server and asks for its health.
func Example() {
	chat, err := chatserver.New(chatserver.Config{})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0") // go run ./examples/chat uses 127.0.0.1:8080
	if err != nil {
		panic(err)
	}
	go func() { _ = chat.Server.Serve(l) }()
	defer func() { _ = chat.Server.Close() }()

	c := &http.Client{}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + l.Addr().String() + "/healthz")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	// Output: 200 ok
}
