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
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/strandws/strand/internal/rawsys"
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
	// YieldCPU makes Yield give up the CPU after this side wrote: see
	// Yield.
	YieldCPU bool
}

// Link is one side of a plugin connection. Send and Close are safe for
// concurrent use; Next belongs to one reader goroutine.
type Link struct {
	conn net.Conn
	rd   *frame.Reader
	encs frame.EncoderPool

	mu         sync.Mutex
	batch      []byte
	spare      []byte
	kick       chan struct{} // cap 1: the writer has something to write
	room       *sync.Cond    // signalled when the writer took the batch
	closed     bool
	writing    bool   // a goroutine (a sender, or the writer) is writing
	pending    []byte // the rest of a batch a non-blocking write left, for the writer
	pendingBuf []byte
	raw        syscall.RawConn // nil: every batch goes through the writer goroutine
	err        error
	peerMax    int
	maxBatch   int
	yieldCPU   bool
	wrote      atomic.Uint64 // batches written
	seen       uint64        // the reader's: wrote at its last Yield

	done      chan struct{}
	writerEnd chan struct{}
	closeOnce sync.Once
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("pluglink: link closed")

// New starts the writer goroutine of a Link on conn. Close stops it.
//
// On Linux a Unix socket is taken out of the runtime's poller (see quiet):
// Conn then returns the connection that replaced it.
func New(conn net.Conn, cfg Config) (*Link, error) {
	conn = quiet(conn)
	raw, src := rawOf(conn)
	rd, err := frame.NewReader(src, frame.ReaderConfig{MaxFrameSize: cfg.MaxFrameSize})
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
	l.raw = raw
	l.yieldCPU = cfg.YieldCPU
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

// Yield is called by the reader goroutine between frames. When nothing
// read is left in the buffer, it first lets the goroutines the frames made
// runnable (a handler's worker, a connection's writer) run: the next read
// would most often only find the socket empty, and that system call would
// otherwise sit on the answer's critical path. Then, with YieldCPU, if
// this side wrote to the socket since the last time, it gives up the CPU
// (sched_yield): when the peer shares the core, it is waiting for exactly
// what was written, and runs now instead of after this process's own
// bookkeeping before it sleeps (on a two-core VM this took the plugin's
// one-message round trip from +37 µs to +5 µs over in-process). Once per
// read, not per frame, so batches stay whole.
func (l *Link) Yield() {
	if l.rd.Buffered() != 0 {
		return
	}
	runtime.Gosched()
	if !l.yieldCPU {
		return
	}
	if w := l.wrote.Load(); w != l.seen {
		l.seen = w
		rawsys.Yield()
	}
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
	l.batch = binary.LittleEndian.AppendUint32(l.batch, uint32(len(buf)))
	l.batch = append(l.batch, buf...)
	if l.writing {
		// The one writing takes this batch next.
		l.mu.Unlock()
		l.encs.Put(e)
		return nil
	}
	l.writing = true
	l.mu.Unlock()
	l.encs.Put(e)
	if l.raw == nil {
		l.kickWriter()
		return nil
	}
	l.writeInline()
	return nil
}

func (l *Link) kickWriter() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// writeInline writes the batch on the caller's goroutine with write system
// calls that never wait: the common case, a socket with room, costs no
// goroutine hand-off. What would block (a full socket) goes to the writer
// goroutine, and so does a batch that keeps refilling. Called with
// writing set; it hands writing on or clears it.
func (l *Link) writeInline() {
	for range 4 {
		l.mu.Lock()
		if l.closed || len(l.batch) == 0 {
			l.writing = false
			l.room.Broadcast()
			l.mu.Unlock()
			return
		}
		buf := l.batch
		l.batch, l.spare = l.spare[:0], nil
		l.room.Broadcast()
		l.mu.Unlock()
		n, err := l.tryWrite(buf)
		if err != nil {
			l.fail(err)
			return
		}
		if n < len(buf) {
			l.mu.Lock()
			l.pending, l.pendingBuf = buf[n:], buf
			l.mu.Unlock()
			l.kickWriter()
			return
		}
		l.wrote.Add(1)
		l.mu.Lock()
		l.spare = recycle(buf)
		l.mu.Unlock()
	}
	l.kickWriter()
}

func recycle(buf []byte) []byte {
	if cap(buf) > 1<<20 {
		return make([]byte, 0, 64<<10) // a large frame grew it: do not keep that
	}
	return buf[:0]
}

// writer writes what writeInline could not, and batches that keep coming,
// with blocking writes; it clears writing when nothing is left.
func (l *Link) writer() {
	defer close(l.writerEnd)
	for {
		select {
		case <-l.kick:
		case <-l.done:
			return
		}
		for {
			l.mu.Lock()
			var buf, whole []byte
			switch {
			case l.pending != nil:
				buf, whole = l.pending, l.pendingBuf
				l.pending, l.pendingBuf = nil, nil
			case len(l.batch) > 0 && !l.closed:
				buf, whole = l.batch, l.batch
				l.batch, l.spare = l.spare[:0], nil
				l.room.Broadcast()
			default:
				l.writing = false
				l.room.Broadcast()
				l.mu.Unlock()
			}
			if buf == nil {
				break
			}
			l.mu.Unlock()
			if _, err := l.conn.Write(buf); err != nil {
				l.fail(err)
				return
			}
			l.wrote.Add(1)
			l.mu.Lock()
			l.spare = recycle(whole)
			l.room.Broadcast()
			l.mu.Unlock()
		}
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
	for !l.closed && (len(l.batch) > 0 || l.writing) {
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
