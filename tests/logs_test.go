package tests

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// recordingHandler is a slog.Handler that keeps every record at level or
// above, with the attributes of its WithAttrs calls.
type recordingHandler struct {
	level slog.Level
	attrs []slog.Attr
	log   *recordLog
}

type recordLog struct {
	mu      sync.Mutex
	records []loggedLine
	added   chan struct{}
}

// loggedLine is one record: its level, message and attributes by key.
type loggedLine struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
	keys  []string // in order
}

func newRecordingHandler(level slog.Level) *recordingHandler {
	return &recordingHandler{level: level, log: &recordLog{added: make(chan struct{}, 1)}}
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	line := loggedLine{level: r.Level, msg: r.Message, attrs: make(map[string]slog.Value)}
	add := func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.Resolve()
		line.keys = append(line.keys, a.Key)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.log.mu.Lock()
	h.log.records = append(h.log.records, line)
	h.log.mu.Unlock()
	select {
	case h.log.added <- struct{}{}:
	default:
	}
	return nil
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h } // not used by Strand

// wait returns the first record with msg whose "conn" is id.
func (h *recordingHandler) wait(t *testing.T, msg string, id uint64) loggedLine {
	t.Helper()
	deadline := time.After(ioTimeout)
	for {
		h.log.mu.Lock()
		for _, l := range h.log.records {
			if v, ok := l.attrs["conn"]; l.msg == msg && ok && v.Kind() == slog.KindUint64 && v.Uint64() == id {
				h.log.mu.Unlock()
				return l
			}
		}
		h.log.mu.Unlock()
		select {
		case <-h.log.added:
		case <-deadline:
			t.Fatalf("no %q line for conn %d", msg, id)
		}
	}
}

// TestConnectionLogLines: the lines about a connection (open, closed)
// carry its ID, route pattern and plugin, first, in both reader modes.
func TestConnectionLogLines(t *testing.T) {
	rec := newRecordingHandler(slog.LevelDebug)
	p := newProbe("log-probe")
	h := startServer(t, wsframework.Config{Logger: slog.New(rec)}, map[string]*sdk.Entry{"/chat/{room}": p.entry})
	c := h.dial(t, "/chat/lobby?tag=logged")
	id := connID(t, c)
	c.closeHandshake(t, ws.StatusNormalClosure, "done")
	p.waitClose(t, "logged", sdk.CloseNormal)

	for _, msg := range []string{"strand: connection open", "strand: connection closed"} {
		l := rec.wait(t, msg, id)
		require.Equal(t, slog.LevelDebug, l.level)
		require.Equal(t, []string{"conn", "route", "plugin"}, l.keys[:3], "%s: attributes %v", msg, l.keys)
		require.Equal(t, "/chat/{room}", l.attrs["route"].String(), msg)
		require.Equal(t, "log-probe", l.attrs["plugin"].String(), msg)
	}
	open := rec.wait(t, "strand: connection open", id)
	want := "goroutine"
	if readerMode == wsframework.ReaderPoll {
		want = "poll"
	}
	require.Equal(t, want, open.attrs["reader"].String())
	closed := rec.wait(t, "strand: connection closed", id)
	require.Equal(t, "peer", closed.attrs["reason"].String())
	require.EqualValues(t, 1000, closed.attrs["code"].Int64())
}

// TestConnectionLogLinesOff: with debug off, no line is written for a
// connection that opens and closes normally.
func TestConnectionLogLinesOff(t *testing.T) {
	rec := newRecordingHandler(slog.LevelInfo)
	p := newProbe("log-quiet")
	h := startServer(t, wsframework.Config{Logger: slog.New(rec)}, map[string]*sdk.Entry{"/ws": p.entry})
	c := h.dial(t, "/ws?tag=quiet")
	c.echo(t, ws.OpText, []byte("hello"))
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	p.waitClose(t, "quiet", sdk.CloseNormal)
	rec.log.mu.Lock()
	defer rec.log.mu.Unlock()
	require.Empty(t, rec.log.records)
}
