package core

import (
	"time"

	"github.com/strandws/strand/dispatcher"
)

// DefaultObserveEvery is RuntimeConfig.ObserveEvery's default: one message
// in this many, per connection, is timed.
const DefaultObserveEvery = 64

// Observer receives the timings of a runtime's WebSocket handlers, for a
// host's metrics (RuntimeConfig.Observer). Its methods are called on the
// runtime's workers, concurrently, and must not block.
//
// Timing a message costs clock reads, so messages are sampled: one in
// RuntimeConfig.ObserveEvery per connection (its first, then every
// ObserveEvery-th) is timed and reported to both methods; the others cost a
// counter decrement. Open, error and close events are rare and always timed.
type Observer interface {
	// Dispatched reports how long a sampled message waited between its
	// submit (Message, TryMessage) and the start of its handler: the time
	// spent in its connection's queue and waiting for a worker.
	Dispatched(wait time.Duration)
	// Handled reports how long one handler ran (a panic included): every
	// open, error and close event that has a handler, and the sampled
	// messages that have one.
	Handled(ev HandlerEvent, d time.Duration)
}

// HandlerEvent is the WebSocket handler an Observer's timing is for.
type HandlerEvent uint8

// Handler events.
const (
	HandlerOpen HandlerEvent = iota
	HandlerMessage
	HandlerError
	HandlerClose
	NumHandlerEvents
)

func (e HandlerEvent) String() string {
	switch e {
	case HandlerOpen:
		return "open"
	case HandlerMessage:
		return "message"
	case HandlerError:
		return "error"
	case HandlerClose:
		return "close"
	}
	return "unknown"
}

// EventStats returns what a host's metrics read of the runtime at a
// scrape: its event dispatcher's counters and the handler panics it
// recovered (events and phases). Unlike Stats it does not look at the
// phase pool, whose start may be under way on another goroutine.
func (rt *Runtime) EventStats() (dispatcher.ShardedStats, uint64) {
	return rt.exec.Stats(), rt.panics.Load()
}

// observing is a runtime's Observer and its sampling; fn nil: none.
type observing struct {
	fn    Observer
	every uint32
	epoch time.Time // readings are since this (monotonic)
}

func (o *observing) init(cfg RuntimeConfig) {
	if cfg.Observer == nil {
		return
	}
	o.fn, o.epoch = cfg.Observer, time.Now()
	o.every = DefaultObserveEvery
	if cfg.ObserveEvery > 0 {
		o.every = uint32(min(cfg.ObserveEvery, 1<<30))
	}
}

// now reads the monotonic clock: nanoseconds since epoch, never zero (zero
// marks an event that is not timed).
func (o *observing) now() int64 { return int64(time.Since(o.epoch)) | 1 }

// stamp marks a message event for timing when c's turn in the sample has
// come. Only the one goroutine delivering c's events calls it.
func (o *observing) stamp(c *Conn, ev *event) {
	if c.sampleLeft > 0 {
		c.sampleLeft-- // inlined: the messages not timed cost this
		return
	}
	o.stampNow(c, ev)
}

// stampNow is stamp's sampled case, kept out of line so that stamp inlines.
//
//go:noinline
func (o *observing) stampNow(c *Conn, ev *event) {
	c.sampleLeft = o.every - 1
	ev.enq = o.now()
}

// timed reports whether ev is to be timed.
func (o *observing) timed(ev *event) bool {
	switch ev.kind {
	case evMessage:
		return ev.enq != 0
	case evSync:
		return false
	}
	return true
}

// runObserved runs ev as run does, reporting its dispatch delay (a sampled
// message) and its handler's duration (when it has a handler).
func (rt *Runtime) runObserved(ev *event) {
	o := &rt.obs
	start := o.now()
	if ev.enq != 0 {
		o.fn.Dispatched(time.Duration(start - ev.enq))
	}
	he, ok := handlerOf(ev)
	rt.run(ev) // recycles ev, and recovers a handler's panic
	if ok {
		o.fn.Handled(he, time.Duration(o.now()-start))
	}
}

// handlerOf returns the handler event ev runs, and whether it has a
// handler at all.
func handlerOf(ev *event) (HandlerEvent, bool) {
	h := ev.conn.h
	switch ev.kind {
	case evOpen:
		return HandlerOpen, h.OnOpen != nil
	case evMessage:
		return HandlerMessage, h.OnMessage != nil || ev.typ == Text && h.OnText != nil || ev.typ == Binary && h.OnBinary != nil
	case evError:
		return HandlerError, h.OnError != nil
	case evClose:
		return HandlerClose, h.OnClose != nil
	}
	return 0, false
}
