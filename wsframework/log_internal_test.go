package wsframework

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

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

// TestReaderPanicLogLine: the line logged for a reader's panic names the
// connection, its route and its plugin, and its source is the reader, not
// the logging helper. Both reader modes.
func TestReaderPanicLogLine(t *testing.T) {
	const msg = "strand: panic while reading a connection; closing it with 1011"
	for _, mode := range []ReaderMode{ReaderGoroutine, ReaderPoll} {
		t.Run(mode.String(), func(t *testing.T) {
			logs := new(keptRecords)
			_, url := hookedEcho(t, Config{Reader: mode, Logger: slog.New(logs)}, func(s *Server) {
				s.hooks.event = func(_ *conn, ev *wsproto.Event) {
					if ev.Kind == wsproto.Message && string(ev.Msg.B) == "boom" {
						panic("test: boom")
					}
				}
			})
			c := dialHostile(t, url)
			require.NoError(t, wsutil.WriteClientText(c.nc, []byte("boom")))
			require.Equal(t, ws.StatusInternalServerError, c.closed(t))
			var r slog.Record
			require.Eventually(t, func() (ok bool) { r, ok = logs.find(msg); return ok }, hostileTimeout, time.Millisecond)
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
			require.NotZero(t, r.PC)
			require.Contains(t, r.Source().Function, "readerPanic")
		})
	}
}
