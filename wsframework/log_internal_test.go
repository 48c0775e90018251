package wsframework

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

// keptRecords is a slog.Handler keeping every record.
type keptRecords struct {
	mu sync.Mutex
	rs []slog.Record
}

func (k *keptRecords) Enabled(context.Context, slog.Level) bool { return true }
func (k *keptRecords) WithAttrs([]slog.Attr) slog.Handler       { return k }
func (k *keptRecords) WithGroup(string) slog.Handler            { return k }
func (k *keptRecords) Handle(_ context.Context, r slog.Record) error {
	k.mu.Lock()
	k.rs = append(k.rs, r.Clone())
	k.mu.Unlock()
	return nil
}

// find returns the first record with msg.
func (k *keptRecords) find(msg string) (slog.Record, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.rs {
		if r.Message == msg {
			return r, true
		}
	}
	return slog.Record{}, false
}

// TestPanicLogLines: the line logged for a reader's or a writer's panic
// names the connection, its route and its plugin, carries the panic and
// its stack, and its source is the reader or the writer, not the logging
// helper. Both reader modes.
func TestPanicLogLines(t *testing.T) {
	for _, tc := range []struct {
		name, msg, source string
		code              ws.StatusCode // what the client sees
	}{
		{"read", "strand: panic while reading a connection; closing it with 1011", "readerPanic", ws.StatusInternalServerError},
		{"write", "strand: panic while writing a connection; closing its socket (OnClose reports 1011)", "writerPanic", 0},
	} {
		for _, mode := range []ReaderMode{ReaderGoroutine, ReaderPoll} {
			t.Run(tc.name+"/"+mode.String(), func(t *testing.T) {
				logs := new(keptRecords)
				_, url := hookedEcho(t, Config{Reader: mode, Logger: slog.New(logs)}, func(s *Server) {
					s.hooks.event = func(_ *conn, ev *wsproto.Event) {
						if tc.name == "read" && ev.Kind == wsproto.Message && string(ev.Msg.B) == "boom" {
							panic("test: boom")
						}
					}
					s.hooks.write = func(_ *conn, v net.Buffers) {
						for _, b := range v {
							if tc.name == "write" && bytes.Equal(b, []byte("boom")) {
								panic("test: boom")
							}
						}
					}
				})
				c := dialHostile(t, url)
				require.NoError(t, wsutil.WriteClientText(c.nc, []byte("boom")))
				require.Equal(t, tc.code, c.closed(t))
				var r slog.Record
				require.Eventually(t, func() (ok bool) { r, ok = logs.find(tc.msg); return ok }, hostileTimeout, time.Millisecond)
				attrs := map[string]string{}
				var keys []string
				r.Attrs(func(a slog.Attr) bool {
					attrs[a.Key] = a.Value.String()
					keys = append(keys, a.Key)
					return true
				})
				require.Equal(t, []string{"conn", "route", "plugin", "panic", "stack"}, keys)
				require.Equal(t, "/echo", attrs["route"])
				require.Equal(t, "echo", attrs["plugin"])
				require.Equal(t, "test: boom", attrs["panic"])
				require.Contains(t, attrs["stack"], tc.source)
				require.NotZero(t, r.PC)
				require.Contains(t, r.Source().Function, tc.source)
			})
		}
	}
}

// TestRuntimeLogLines: the sdk runtime's lines about a connection (a slow
// handler, reported by the dispatcher with the connection's ID only; a
// handler panic; a panic in OnError) carry its ID, its route's pattern and
// its plugin, first, like the Server's own lines.
func TestRuntimeLogLines(t *testing.T) {
	logs := new(keptRecords)
	p := sdk.NewPlugin("probe")
	e := p.Entry("probe").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			if string(m.Data) == "slow" {
				time.Sleep(200 * time.Millisecond)
				_ = c.Send(m.Type, m.Data)
				return
			}
			panic("test: boom")
		},
		OnError: func(*sdk.Conn, error) { panic("test: OnError") },
	})
	cfg := Config{Logger: slog.New(logs)}
	cfg.Dispatcher.SlowThreshold = 20 * time.Millisecond
	_, url := serveEntry(t, cfg, func(*Server) {}, "/rooms/{room}", e, "/rooms/lobby")
	c := dialHostile(t, url)
	c.echo(t, "slow")
	require.NoError(t, wsutil.WriteClientText(c.nc, []byte("boom")))
	require.Equal(t, ws.StatusInternalServerError, c.closed(t))

	var conn string
	for _, msg := range []string{"strand: slow handler", "strand: handler panic", "strand: OnError panic"} {
		var r slog.Record
		require.Eventually(t, func() (ok bool) { r, ok = logs.find(msg); return ok }, hostileTimeout, time.Millisecond, msg)
		attrs := map[string]slog.Value{}
		var keys []string
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value
			keys = append(keys, a.Key)
			return true
		})
		require.GreaterOrEqual(t, len(keys), 3, msg)
		require.Equal(t, []string{"conn", "route", "plugin"}, keys[:3], msg)
		require.Equal(t, slog.KindUint64, attrs["conn"].Kind(), msg)
		require.NotZero(t, attrs["conn"].Uint64(), msg)
		if conn == "" {
			conn = attrs["conn"].String()
		}
		require.Equal(t, conn, attrs["conn"].String(), "%s: the same connection", msg)
		require.Equal(t, "/rooms/{room}", attrs["route"].String(), msg)
		require.Equal(t, "probe", attrs["plugin"].String(), msg)
	}
}
