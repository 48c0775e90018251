package supervise

import (
	"bytes"
	"log/slog"
	"sync"
)

// maxLine is the longest line logged whole; a longer one is logged in
// pieces of this size.
const maxLine = 16 << 10

// lineLog turns a child's output into log lines, one per line, tagged
// with the stream's name (the logger carries plugin=NAME).
type lineLog struct {
	log    *slog.Logger
	stream string
	mu     sync.Mutex
	buf    []byte
}

func newLineLog(log *slog.Logger, stream string) *lineLog {
	return &lineLog{log: log, stream: stream}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLine - len(l.buf)
			if len(p) < room {
				l.buf = append(l.buf, p...)
				return n, nil
			}
			l.buf = append(l.buf, p[:room]...)
			l.emit()
			p = p[room:]
			continue
		}
		l.buf = append(l.buf, p[:i]...)
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

// emit logs the buffered line (capped at maxLine) and empties the buffer.
func (l *lineLog) emit() {
	line := l.buf
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	line = bytes.TrimRight(line, "\r")
	l.log.Info(string(line), "stream", l.stream)
	l.buf = l.buf[:0]
}

// flush logs a last line without a newline.
func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit()
	}
}
