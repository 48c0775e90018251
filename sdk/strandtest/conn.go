package strandtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// maxCloseReason is the longest close reason that fits a control frame.
const maxCloseReason = 123

// Conn is one in-memory WebSocket connection: the test plays its client
// (SendText, Close, Drop, ...) and reads what the plugin sent (Sent,
// NextSent, Expect...). All methods are safe for concurrent use; see the
// package documentation for which ones fail the test from which goroutine.
type Conn struct {
	kit  *Kit
	id   uint64
	wake chan struct{} // a full shard has room again
	done chan struct{} // closed once OnClose has been handled

	doneOnce sync.Once
	badText  atomic.Int64 // text messages the plugin sent with invalid UTF-8
	nrooms   int          // rooms it is a member of; guarded by kit.roomMu

	pendingMu sync.Mutex // one waitPending at a time (the runtime's wait is single-waiter)

	// mu guards the fields below. It is never held while a handler runs or
	// while waiting: event submissions under it do not block.
	mu           sync.Mutex
	sc           *core.Conn
	closing      bool // either side began closing: no more data either way
	clientClosed bool // the test called Close or Drop
	endCode      sdk.CloseCode
	endReason    string
	server       closeStatus // the close the server side started
	submitted    uint64      // events submitted (Sync barriers excluded)
	frames       []Frame
	read         int           // frames[:read] were read by NextSent/Expect
	unreadBytes  int64         // the bytes of frames[read:]
	changed      chan struct{} // closed and replaced when frames or closing change
}

type closeStatus struct {
	code   sdk.CloseCode
	reason string
	ok     bool
}

func newConn(k *Kit, id uint64) *Conn {
	return &Conn{kit: k, id: id, wake: make(chan struct{}, 1), done: make(chan struct{}), changed: make(chan struct{})}
}

// opened records the plugin-side connection once Runtime.Open returned, and
// submits the close a handler started meanwhile.
func (c *Conn) opened(sc *core.Conn) {
	c.mu.Lock()
	c.sc = sc
	if c.closing {
		c.submitCloseLocked()
	}
	c.mu.Unlock()
}

// ID returns the connection's ID (sdk.Conn.ID on the plugin side).
func (c *Conn) ID() uint64 { return c.id }

// PluginConn returns the plugin side of the connection, as its handlers
// see it.
func (c *Conn) PluginConn() *sdk.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return (*sdk.Conn)(c.sc)
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *Conn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// beginCloseLocked marks the connection closing with the code OnClose will
// get, and submits OnClose. It reports whether this call began the close.
func (c *Conn) beginCloseLocked(code sdk.CloseCode, reason string) bool {
	if c.closing {
		return false
	}
	c.closing = true
	c.endCode, c.endReason = code, reason
	c.notifyLocked()
	if c.sc != nil {
		c.submitCloseLocked()
	}
	return true
}

// submitCloseLocked submits OnClose and, behind it, the Sync barrier that closes
// done.
func (c *Conn) submitCloseLocked() {
	c.kit.rt.Closed(c.sc, core.CloseCode(c.endCode), c.endReason)
	c.submitted++
	_ = c.kit.rt.Sync(c.sc, c.markDone) // refused only once the kit stopped, which marks done itself
}

func (c *Conn) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

// serverClose is a close the server side starts: OnClose gets its code.
func (c *Conn) serverClose(code sdk.CloseCode, reason string) {
	c.mu.Lock()
	c.serverCloseLocked(code, reason)
	c.mu.Unlock()
}

func (c *Conn) serverCloseLocked(code sdk.CloseCode, reason string) {
	if c.beginCloseLocked(code, reason) {
		c.server = closeStatus{code: code, reason: reason, ok: true}
	}
}

// Send delivers one message from the client, as the server's reader would,
// after the messages sent before it. It returns nil once the runtime
// accepted the message, sdk.ErrClosed if the connection is closing (the
// message is discarded, as a server discards data after it began closing),
// a *sdk.CloseError if the message itself closed the connection (invalid
// UTF-8 in text: 1007; over Options.MaxMessageBytes: 1009), or an error if
// the runtime is closed or the connection's queue stayed full for
// Options.Timeout. A type other than sdk.Text and sdk.Binary returns an
// error wrapping sdk.ErrMessageType. It blocks while the connection's queue
// is full.
func (c *Conn) Send(typ sdk.MessageType, data []byte) error {
	if typ != sdk.Text && typ != sdk.Binary {
		return fmt.Errorf("strandtest: Send: message type %d: %w", typ, sdk.ErrMessageType)
	}
	var timer *time.Timer
	for {
		err, full := c.trySend(typ, data)
		if !full {
			if err == nil {
				err = c.waitPending()
			}
			return err
		}
		if timer == nil {
			timer = time.NewTimer(c.kit.timeout)
			defer timer.Stop()
		}
		select {
		case <-c.wake:
		case <-timer.C:
			return fmt.Errorf("strandtest: conn %d: queue full for %v (is a handler blocked?)", c.id, c.kit.timeout)
		}
	}
}

func (c *Conn) trySend(typ sdk.MessageType, data []byte) (err error, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return sdk.ErrClosed, false
	}
	if m := c.kit.opts.MaxMessageBytes; m > 0 && int64(len(data)) > m {
		c.serverCloseLocked(sdk.CloseMessageTooBig, "message too big")
		return &sdk.CloseError{Code: sdk.CloseMessageTooBig, Reason: "message too big"}, false
	}
	if typ == sdk.Text && !utf8.Valid(data) {
		c.serverCloseLocked(sdk.CloseInvalidPayload, "invalid UTF-8 in text message")
		return &sdk.CloseError{Code: sdk.CloseInvalidPayload, Reason: "invalid UTF-8 in text message"}, false
	}
	b := c.kit.rt.Buffers().Get(len(data))
	copy(b.B, data)
	// TryMessage never blocks, so c.mu orders this message against a close
	// a handler starts concurrently: OnClose stays last.
	if err := c.kit.rt.TryMessage(c.sc, core.MessageType(typ), b, c.signalWake); err != nil {
		b.Release()
		if errors.Is(err, dispatcher.ErrFull) {
			return nil, true
		}
		if errors.Is(err, dispatcher.ErrClosed) {
			err = core.ErrRuntimeClosed
		}
		return fmt.Errorf("strandtest: conn %d: %w", c.id, err), false
	}
	c.submitted++
	c.kit.messagesIn.Add(1)
	return nil, false
}

// waitPending blocks, as a server's reader pauses, while the connection's
// inbound bytes not yet handled exceed Options.MaxPendingBytes.
func (c *Conn) waitPending() error {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	ctx, cancel := context.WithTimeout(c.kit.ctx, c.kit.timeout)
	defer cancel()
	if err := c.kit.rt.WaitPending(ctx, c.sc); err != nil {
		return fmt.Errorf("strandtest: conn %d: pending bytes stayed over Options.MaxPendingBytes for %v (is a handler blocked?): %w", c.id, c.kit.timeout, err)
	}
	return nil
}

func (c *Conn) signalWake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// SendText sends a text message from the client (see Send). A message
// discarded because the server closed the connection, or refused because
// it closed it (1007, 1009), is not an error; anything else (sending after
// the test's own Close or Drop, a closed kit, a queue full for
// Options.Timeout) marks the test failed.
func (c *Conn) SendText(text string) {
	c.kit.t.Helper()
	c.report(c.Send(sdk.Text, []byte(text)))
}

// SendBinary sends a binary message from the client, like SendText.
func (c *Conn) SendBinary(data []byte) {
	c.kit.t.Helper()
	c.report(c.Send(sdk.Binary, data))
}

func (c *Conn) report(err error) {
	c.kit.t.Helper()
	var ce *sdk.CloseError
	switch {
	case err == nil, errors.As(err, &ce):
	case errors.Is(err, sdk.ErrClosed):
		c.mu.Lock()
		own := c.clientClosed
		c.mu.Unlock()
		if own {
			c.kit.t.Errorf("strandtest: conn %d: message sent after the client closed the connection", c.id)
		}
	default:
		c.kit.t.Errorf("%v", err)
	}
}

// Error delivers an OnError event, as a host does for an error that did
// not come with a message. It is ignored once the connection is closing.
func (c *Conn) Error(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.kit.rt.Error(c.sc, err)
		c.submitted++
	}
}

// Close sends the client's close frame with code and reason: OnClose runs
// with them, after every message sent before. sdk.CloseNoStatus (1005)
// sends a close frame without a code (reason is dropped). A code a client
// may not send (such as 1006: use Drop) or a reason over 123 bytes makes the
// server close with 1002, and a reason that is not UTF-8 with 1007, as a
// real server does. Nothing happens if the connection is already closing.
func (c *Conn) Close(code sdk.CloseCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.clientClosed = true
	switch {
	case code == sdk.CloseNoStatus:
		c.beginCloseLocked(code, "")
	case !code.ValidOnWire():
		c.serverCloseLocked(sdk.CloseProtocolError, "invalid close code")
	case len(reason) > maxCloseReason:
		c.serverCloseLocked(sdk.CloseProtocolError, "control frame too long")
	case !utf8.ValidString(reason):
		c.serverCloseLocked(sdk.CloseInvalidPayload, "invalid UTF-8 in close reason")
	default:
		c.beginCloseLocked(code, reason)
	}
}

// Drop ends the connection as a lost TCP connection does: OnClose runs with
// sdk.CloseAbnormal (1006), after every message sent before. Nothing happens
// if the connection is already closing.
func (c *Conn) Drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.clientClosed = true
		c.beginCloseLocked(sdk.CloseAbnormal, "")
	}
}

// Done returns a channel closed once OnClose has been handled.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Wait returns once every event delivered to the connection so far has
// been handled, and so has every event a handler caused meanwhile (the
// OnClose of a close it started). It fails the test after Options.Timeout.
// Call it from the goroutine running the kit's test; elsewhere use
// WaitContext.
func (c *Conn) Wait() {
	c.kit.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.kit.timeout)
	defer cancel()
	if err := c.WaitContext(ctx); err != nil {
		c.kit.t.Fatalf("strandtest: conn %d: Wait: events not handled within %v (is a handler blocked?)", c.id, c.kit.timeout)
	}
}

// WaitContext is Wait that returns ctx's error if ctx ends first. It
// returns at once if the kit is closed (every accepted event has then been
// handled).
func (c *Conn) WaitContext(ctx context.Context) error {
	for {
		fired := make(chan struct{})
		c.mu.Lock()
		gen := c.submitted
		_ = c.kit.rt.Sync(c.sc, func() { close(fired) }) // refused only once the kit stopped
		c.mu.Unlock()
		select {
		case <-fired:
		case <-c.kit.stopped:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		quiet := c.submitted == gen
		c.mu.Unlock()
		if quiet {
			return nil
		}
	}
}

// Sent returns every message the plugin sent on the connection so far, in
// order, whether read with NextSent or not.
func (c *Conn) Sent() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.frames...)
}

// Closed reports the close the server side started, if it did: the
// plugin's Conn.Close, 1011 after a handler panic, 1008 for a slow
// consumer, 1001 when the kit closed, 1007/1009/1002 for what the client
// sent.
func (c *Conn) Closed() (code sdk.CloseCode, reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.server.code, c.server.reason, c.server.ok
}

// ErrNoMore is returned by NextSent when the connection is closing and
// every message the plugin sent has been read: nothing more can come.
var ErrNoMore = errors.New("strandtest: no more messages: the connection is closing")

// NextSent returns the next message the plugin sent that the test has not
// read yet, waiting for one until ctx ends. It returns ErrNoMore once the
// connection is closing and all were read.
func (c *Conn) NextSent(ctx context.Context) (Frame, error) {
	for {
		c.mu.Lock()
		if c.read < len(c.frames) {
			f := c.frames[c.read]
			c.read++
			c.unreadBytes -= int64(len(f.Data))
			c.mu.Unlock()
			return f, nil
		}
		if c.closing {
			c.mu.Unlock()
			return Frame{}, ErrNoMore
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// Expect reads the next messages the plugin sent (see NextSent) and fails
// the test unless they are want, in order.
func (c *Conn) Expect(t TB, want ...Frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.kit.timeout)
	defer cancel()
	for i, w := range want {
		got, err := c.NextSent(ctx)
		if err != nil {
			t.Fatalf("strandtest: conn %d: want %v (message %d of %d), got none: %v", c.id, w, i+1, len(want), err)
			return
		}
		if got != w {
			t.Fatalf("strandtest: conn %d: want %v (message %d of %d), got %v%s", c.id, w, i+1, len(want), got, poisonHint(got))
			return
		}
	}
}

// ExpectText is Expect(t, Text(want)).
func (c *Conn) ExpectText(t TB, want string) {
	t.Helper()
	c.Expect(t, Text(want))
}

// ExpectBinary is Expect(t, Binary(want)).
func (c *Conn) ExpectBinary(t TB, want []byte) {
	t.Helper()
	c.Expect(t, Binary(want))
}

// ExpectNoMore waits until the connection's events have been handled (like
// Wait) and fails the test if the plugin sent a message the test has not
// read.
func (c *Conn) ExpectNoMore(t TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.kit.timeout)
	defer cancel()
	if err := c.WaitContext(ctx); err != nil {
		t.Fatalf("strandtest: conn %d: events not handled within %v", c.id, c.kit.timeout)
		return
	}
	c.mu.Lock()
	extra := append([]Frame(nil), c.frames[c.read:]...)
	c.mu.Unlock()
	if len(extra) > 0 {
		t.Fatalf("strandtest: conn %d: want no more messages, got %d: %v", c.id, len(extra), extra)
	}
}

// ExpectClosed waits until OnClose has been handled and fails the test
// unless the server side closed the connection with code (see Closed).
func (c *Conn) ExpectClosed(t TB, code sdk.CloseCode) {
	t.Helper()
	timer := time.NewTimer(c.kit.timeout)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		t.Fatalf("strandtest: conn %d: want close %d, the connection is still open after %v", c.id, code, c.kit.timeout)
		return
	}
	c.mu.Lock()
	srv, end, endReason := c.server, c.endCode, c.endReason
	c.mu.Unlock()
	switch {
	case !srv.ok:
		t.Fatalf("strandtest: conn %d: want the server to close with %d, but the client closed with %d %q", c.id, code, end, endReason)
	case srv.code != code:
		t.Fatalf("strandtest: conn %d: want the server to close with %d, got %d %q", c.id, code, srv.code, srv.reason)
	}
}

// host is the kit's end of one connection, as the runtime sees a server's:
// its ConnHost and RoomHost.
type host struct{ c *Conn }

var (
	_ core.ConnHost = (*host)(nil)
	_ core.RoomHost = (*host)(nil)
)

// Write records one message, as a server queues it for the client, and
// releases b. Like the server it returns sdk.ErrMessageType for a type other
// than sdk.Text and sdk.Binary.
func (h *host) Write(typ core.MessageType, b *bufpool.Buffer) error {
	defer b.Release()
	if typ != core.Text && typ != core.Binary {
		return sdk.ErrMessageType
	}
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deliverLocked(sdk.MessageType(typ), b.B)
}

// deliverLocked appends one outgoing message, applying the closing state and
// the write-queue limits in the server's order: too big on its own, closing,
// then full.
func (c *Conn) deliverLocked(typ sdk.MessageType, data []byte) error {
	n := int64(len(data))
	maxBytes := c.kit.opts.WriteQueueBytes
	if maxBytes > 0 && n > maxBytes {
		return sdk.ErrTooBig
	}
	if c.closing {
		return sdk.ErrClosed
	}
	if lim := c.kit.opts.WriteQueueLimit; lim > 0 && len(c.frames)-c.read >= lim ||
		maxBytes > 0 && c.unreadBytes+n > maxBytes {
		c.serverCloseLocked(sdk.ClosePolicyViolation, "slow consumer")
		return sdk.ErrSlowConsumer
	}
	if typ == sdk.Text && !utf8.Valid(data) {
		c.badText.Add(1)
	}
	c.frames = append(c.frames, Frame{Type: typ, Data: string(data)})
	c.unreadBytes += n
	c.notifyLocked()
	return nil
}

// Close starts the server's close, as the real host does: an invalid code
// becomes 1000 and the reason is cut to 123 bytes. Idempotent.
func (h *host) Close(code core.CloseCode, reason string) error {
	if !code.ValidOnWire() {
		code = core.CloseNormal
	}
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
	}
	h.c.serverClose(sdk.CloseCode(code), reason)
	return nil
}

// ClosePanic starts the server's close after a handler panic: 1011, as
// the real host does.
func (h *host) ClosePanic(reason string) error {
	return h.Close(core.CloseInternalError, reason)
}

// Join adds the connection to room, unless it is in Options.MaxRoomsPerConn
// rooms already (sdk.ErrTooManyRooms, as the server). Re-joining a room
// does not count twice.
func (h *host) Join(room string) error {
	k := h.c.kit
	k.roomMu.Lock()
	defer k.roomMu.Unlock()
	if h.c.isClosing() {
		return sdk.ErrClosed
	}
	if _, ok := k.rooms[room][h.c]; ok {
		return nil
	}
	if h.c.nrooms >= k.opts.MaxRoomsPerConn {
		return sdk.ErrTooManyRooms
	}
	if k.rooms == nil {
		k.rooms = make(map[string]map[*Conn]struct{})
	}
	m := k.rooms[room]
	if m == nil {
		m = make(map[*Conn]struct{})
		k.rooms[room] = m
	}
	m[h.c] = struct{}{}
	h.c.nrooms++
	return nil
}

// Leave removes the connection from room.
func (h *host) Leave(room string) error {
	k := h.c.kit
	k.roomMu.Lock()
	defer k.roomMu.Unlock()
	if _, ok := k.rooms[room][h.c]; ok {
		delete(k.rooms[room], h.c)
		h.c.nrooms--
		if len(k.rooms[room]) == 0 {
			delete(k.rooms, room)
		}
	}
	return nil
}

// Broadcast delivers a copy of b to every member of room that is not
// closing, under the room lock, so all members see a room's messages in one
// order; a member over its write-queue limit is closed with 1008. A message
// over Options.WriteQueueBytes is refused with sdk.ErrTooBig, as the server
// refuses it before publishing. It releases b.
func (h *host) Broadcast(room string, typ core.MessageType, b *bufpool.Buffer, opts core.BroadcastOptions) error {
	defer b.Release()
	if typ != core.Text && typ != core.Binary {
		return sdk.ErrMessageType
	}
	if lim := h.c.kit.opts.WriteQueueBytes; lim > 0 && int64(len(b.B)) > lim {
		return sdk.ErrTooBig
	}
	k := h.c.kit
	k.roomMu.Lock()
	defer k.roomMu.Unlock()
	for m := range k.rooms[room] {
		if opts.ExcludeSelf && m == h.c {
			continue
		}
		m.mu.Lock()
		if m.closing {
			delete(k.rooms[room], m) // membership ends with the connection
			m.nrooms--
		} else {
			_ = m.deliverLocked(sdk.MessageType(typ), b.B) // a slow member is closed by its own policy
		}
		m.mu.Unlock()
	}
	if len(k.rooms[room]) == 0 {
		delete(k.rooms, room)
	}
	return nil
}
