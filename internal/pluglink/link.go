// Package pluglink is the stream both ends of the plugin protocol share: a
// connection whose outgoing frames are encoded into one batch that a
// writer goroutine writes with one Write per batch, and whose incoming
// frames are split (size-capped) and structurally checked before anyone
// reads them. It knows nothing of what frames mean: internal/remote (the
// host) and sdk/serve (the plugin) do.
package pluglink

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"

	"github.com/strandws/strand/sdk/frame"
)

// Config configures a Link.
type Config struct {
	// MaxFrameSize caps a frame read from the peer (and, until SetPeerMax,
	// one sent to it). Zero means frame.DefaultMaxFrameSize.
	MaxFrameSize int
	// MaxBatch bounds the bytes waiting to be written when Send is asked
	// to wait (SendWait). Zero means 8 MiB. A single frame larger than the
	// bound is still queued when the batch is empty.
	MaxBatch int
}

// Link is one side of a plugin connection. Send and Close are safe for
// concurrent use; Next belongs to one reader goroutine.
type Link struct {
	conn net.Conn
	rd   *frame.Reader
	encs frame.EncoderPool

	mu       sync.Mutex
	batch    []byte
	spare    []byte
	kick     chan struct{} // cap 1: the writer has something to write
	room     *sync.Cond    // signalled when the writer took the batch
	closed   bool
	err      error
	peerMax  int
	maxBatch int

	done      chan struct{}
	writerEnd chan struct{}
	closeOnce sync.Once
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("pluglink: link closed")

// New starts the writer goroutine of a Link on conn. Close stops it.
func New(conn net.Conn, cfg Config) (*Link, error) {
	rd, err := frame.NewReader(conn, frame.ReaderConfig{MaxFrameSize: cfg.MaxFrameSize})
	if err != nil {
		return nil, err
	}
	max := cfg.MaxFrameSize
	if max == 0 {
		max = frame.DefaultMaxFrameSize
	}
	mb := cfg.MaxBatch
	if mb <= 0 {
		mb = 8 << 20
	}
	l := &Link{
		conn: conn, rd: rd, peerMax: max, maxBatch: mb,
		batch: make([]byte, 0, 64<<10), spare: make([]byte, 0, 64<<10),
		kick: make(chan struct{}, 1), done: make(chan struct{}), writerEnd: make(chan struct{}),
	}
	l.room = sync.NewCond(&l.mu)
	go l.writer()
	return l, nil
}

// SetPeerMax sets the largest frame the peer accepts (from its hello);
// Send refuses larger ones with frame.ErrTooLarge.
func (l *Link) SetPeerMax(n int) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	l.peerMax = n
	l.mu.Unlock()
}

// Next returns the next frame from the peer, decoded and checked. The View
// aliases the reader's buffer: it is valid until the next call. Errors are
// final: io.EOF at a clean end, frame.ErrTooLarge, frame.ErrMalformed, or
// the socket's.
func (l *Link) Next() (frame.View, error) {
	buf, err := l.rd.Next()
	if err != nil {
		return frame.View{}, err
	}
	return frame.Decode(buf)
}

// Send encodes f into the outgoing batch and wakes the writer. It never
// waits for the network.
func (l *Link) Send(f *frame.Frame) error { return l.send(f, false) }

// SendWait is Send that first waits while the batch holds more than
// MaxBatch bytes (the peer is not reading), until the writer took it or
// the link closed.
func (l *Link) SendWait(f *frame.Frame) error { return l.send(f, true) }

func (l *Link) send(f *frame.Frame, wait bool) error {
	e := l.encs.Get()
	buf := e.Encode(f)
	l.mu.Lock()
	for wait && !l.closed && len(l.batch) > 0 && len(l.batch)+len(buf) > l.maxBatch {
		l.room.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		l.encs.Put(e)
		return ErrClosed
	}
	if len(buf) > l.peerMax {
		l.mu.Unlock()
		l.encs.Put(e)
		return frame.ErrTooLarge
	}
	first := len(l.batch) == 0
	l.batch = binary.LittleEndian.AppendUint32(l.batch, uint32(len(buf)))
	l.batch = append(l.batch, buf...)
	l.mu.Unlock()
	l.encs.Put(e)
	if first {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (l *Link) writer() {
	defer close(l.writerEnd)
	for {
		select {
		case <-l.kick:
		case <-l.done:
			return
		}
		l.mu.Lock()
		buf := l.batch
		l.batch = l.spare[:0]
		l.spare = nil
		l.room.Broadcast()
		l.mu.Unlock()
		if len(buf) == 0 {
			l.mu.Lock()
			l.spare = buf
			l.room.Broadcast()
			l.mu.Unlock()
			continue
		}
		_, err := l.conn.Write(buf)
		if err != nil {
			l.fail(err)
			return
		}
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 64<<10)
		}
		l.mu.Lock()
		l.spare = buf[:0]
		l.room.Broadcast()
		l.mu.Unlock()
	}
}

// fail records err as why the link ended and closes it.
func (l *Link) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
	_ = l.shut()
}

// Err returns the first write error, or nil.
func (l *Link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Done is closed when the link closed.
func (l *Link) Done() <-chan struct{} { return l.done }

// Flush waits until everything sent so far was handed to the socket or
// the link closed.
func (l *Link) Flush() {
	l.mu.Lock()
	for !l.closed && (len(l.batch) > 0 || l.spare == nil) {
		l.room.Wait()
	}
	l.mu.Unlock()
}

// Close closes the socket and stops the writer; frames not yet written are
// dropped. Idempotent; it waits for the writer to return.
func (l *Link) Close() error {
	err := l.shut()
	<-l.writerEnd
	return err
}

func (l *Link) shut() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.room.Broadcast()
		l.mu.Unlock()
		close(l.done)
		err = l.conn.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Conn returns the underlying connection.
func (l *Link) Conn() net.Conn { return l.conn }
