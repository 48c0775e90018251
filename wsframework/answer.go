package wsframework

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// upgradeWriter is the ResponseWriter of a handshake on the accept path:
// Hijack hands over the connection with the pooled reader (and a pooled
// writer for the 101 response); any other answer is buffered and written
// with Content-Length and "Connection: close" by finish, or streamed
// (close-delimited) once Flush is called or the body grows large.
type upgradeWriter struct {
	s  *Server
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer

	header    http.Header
	status    int
	body      []byte
	streaming bool // the head is written: the body goes straight out
	hijacked  bool
	err       error // the first write error
}

func (w *upgradeWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *upgradeWriter) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *upgradeWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	if !w.streaming && len(w.body)+len(p) > maxBufferedAnswer {
		w.Flush()
	}
	if w.streaming {
		if w.err != nil {
			return 0, w.err
		}
		n, err := w.nc.Write(p)
		w.err = err
		return n, err
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// Flush writes the head (without Content-Length: the body ends with the
// connection) and what was buffered; later writes go straight out.
func (w *upgradeWriter) Flush() {
	if w.hijacked || w.streaming {
		return
	}
	w.WriteHeader(http.StatusOK)
	w.streaming = true
	_ = w.nc.SetWriteDeadline(w.s.clock.Deadline(w.s.cfg.HandshakeTimeout))
	w.err = writeAnswer(w.nc, w.status, w.header, w.body, false)
	w.body = nil
}

// finish writes a buffered answer whole.
func (w *upgradeWriter) finish() {
	if w.hijacked || w.streaming {
		return
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = w.nc.SetWriteDeadline(w.s.clock.Deadline(w.s.cfg.HandshakeTimeout))
	_ = writeAnswer(w.nc, w.status, w.header, w.body, true)
}

// Hijack hands over the connection; the reader holds any bytes the client
// sent after its head.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.status != 0 || w.streaming {
		return nil, nil, errors.New("wsframework: hijack after the answer began")
	}
	w.hijacked = true
	w.bw = w.s.writers.Get().(*bufio.Writer)
	w.bw.Reset(w.nc)
	return w.nc, bufio.NewReadWriter(w.br, w.bw), nil
}

// releaseWriter returns the 101 response's writer to its pool.
func (w *upgradeWriter) releaseWriter() {
	if w.bw != nil {
		w.bw.Reset(nil)
		w.s.writers.Put(w.bw)
		w.bw = nil
	}
}

// writeAnswer writes an HTTP/1.1 answer that closes the connection.
func writeAnswer(nc net.Conn, status int, h http.Header, body []byte, withLength bool) error {
	var b bytes.Buffer
	b.Grow(256 + len(body))
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(status))
	b.WriteString("\r\n")
	h = h.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	h.Set("Connection", "close")
	if withLength {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	_, err := nc.Write(b.Bytes())
	return err
}

// writeRefusal answers a request the accept path could not serve, with
// the header lines in h (which it may modify), giving up at deadline.
func writeRefusal(nc net.Conn, status int, h http.Header, text string, deadline time.Time) {
	_ = nc.SetWriteDeadline(deadline)
	if h == nil {
		h = make(http.Header)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	_ = writeAnswer(nc, status, h, []byte(text+"\n"), true)
}
