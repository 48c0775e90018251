package main

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692) on the client side.
//
// The client compresses every data message it sends, each on its own (a
// sync-flushed deflate stream from an empty window, which is valid with or
// without context takeover), at BestSpeed. It inflates every message the
// server sent with RSV1 set; when the server keeps its context (no
// server_no_context_takeover in the answer), the client keeps the last
// 32 KiB of what it inflated on that connection as the next message's
// dictionary, and nothing more, so a connection costs 32 KiB at most.
//
// Broadcast without server context takeover: a server that compresses a
// broadcast once sends every receiver the same bytes, so inflating each
// copy would make the load generator, not the server, the bottleneck.
// Receivers share a small cache of the last messages inflated: a copy whose
// compressed bytes equal a cached message's, byte for byte, gets that
// message's inflated bytes, which the wire codec then checks like any other.
// It uses klauspost/compress/flate, which reads and writes the same format
// as compress/flate, faster, for the same reason.

const flateWindow = 32 << 10

// flateTail ends a message's deflate data: the sync-flush marker the
// sender stripped (RFC 7692 section 7.2.1), then an empty final stored
// block, so the reader stops with io.EOF instead of wanting more.
var flateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

var rsv1 = ws.Rsv(true, false, false)

// compressOffer is the extension offer for -compress: no context takeover
// on either side unless takeover is set.
func compressOffer(takeover bool) []httphead.Option {
	p := wsflate.Parameters{ServerNoContextTakeover: !takeover, ClientNoContextTakeover: !takeover}
	return []httphead.Option{p.Option()}
}

// flateState is one connection's negotiated permessage-deflate.
type flateState struct {
	serverTakeover bool          // the server refers back to earlier messages: keep window
	cache          *inflateCache // nil: none (set only without serverTakeover)
	window         []byte        // serverTakeover: the last 32 KiB inflated
	in             bytes.Reader
	out            []byte // inflated message; valid until the next readMessage
	comp           sliceWriter
}

// negotiated returns the connection's flateState if the server accepted the
// offer, nil if it answered without the extension.
func negotiated(exts []httphead.Option) (*flateState, error) {
	for _, opt := range exts {
		if !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
			continue
		}
		var p wsflate.Parameters
		if err := p.Parse(opt); err != nil {
			return nil, fmt.Errorf("%w: bad permessage-deflate answer: %v", errProtocol, err)
		}
		if p.ClientMaxWindowBits.Defined() && p.ClientMaxWindowBits < 15 {
			// Not offered, so not allowed; the compressor uses 32 KiB.
			return nil, fmt.Errorf("%w: unasked client_max_window_bits=%d", errProtocol, p.ClientMaxWindowBits)
		}
		return &flateState{serverTakeover: !p.ServerNoContextTakeover}, nil
	}
	return nil, nil
}

// inflateCache holds the last messages inflated by the connections of a
// broadcast run, compressed and inflated, by a hash of the compressed
// bytes. It must hold every message in flight to all receivers: a reader
// goes through everything buffered on its connection before the next runs.
type inflateCache struct {
	mu    sync.Mutex
	seed  maphash.Seed
	byKey map[uint64]*cacheEntry
	ring  [cacheSize]*cacheEntry // eviction order
	next  int
}

const cacheSize = 4096

type cacheEntry struct {
	key    uint64
	z, out []byte
}

func newInflateCache() *inflateCache {
	return &inflateCache{seed: maphash.MakeSeed(), byKey: make(map[uint64]*cacheEntry, cacheSize)}
}

// get appends to dst the inflated form of z if the cache holds it.
func (c *inflateCache) get(z, dst []byte) ([]byte, bool) {
	k := maphash.Bytes(c.seed, z)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byKey[k]; e != nil && bytes.Equal(e.z, z) {
		return append(dst, e.out...), true
	}
	return dst, false
}

// put remembers that z inflates to out, evicting the oldest entry.
func (c *inflateCache) put(z, out []byte) {
	k := maphash.Bytes(c.seed, z)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ring[c.next]
	if e == nil {
		e = new(cacheEntry)
		c.ring[c.next] = e
	} else if c.byKey[e.key] == e {
		delete(c.byKey, e.key)
	}
	c.next = (c.next + 1) % cacheSize
	e.key = k
	e.z = append(e.z[:0], z...)
	e.out = append(e.out[:0], out...)
	c.byKey[k] = e
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Free lists of compressors and decompressors: one connection uses one
// only while it compresses or inflates one message. Not sync.Pool, which
// drops them at every GC (a compressor is about 1 MiB to make again).
var (
	freeWriters = make(chan *flate.Writer, 16)
	freeReaders = make(chan io.ReadCloser, 16)
)

// compress returns p deflated without the trailing sync-flush marker; the
// result is valid until the next compress on f.
func (f *flateState) compress(p []byte) ([]byte, error) {
	f.comp.b = f.comp.b[:0]
	var w *flate.Writer
	select {
	case w = <-freeWriters:
		w.Reset(&f.comp)
	default:
		var err error
		if w, err = flate.NewWriter(&f.comp, flate.BestSpeed); err != nil {
			return nil, err
		}
	}
	_, err := w.Write(p)
	if err == nil {
		err = w.Flush()
	}
	select {
	case freeWriters <- w:
	default:
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(f.comp.b, flateTail[:4]), nil
}

// inflate returns the message whose deflate data is in (which it may
// append to), at most limit bytes. The result is valid until the next
// inflate on f.
func (f *flateState) inflate(in []byte, limit int) ([]byte, error) {
	if f.cache != nil {
		if out, ok := f.cache.get(in, f.out[:0]); ok {
			f.out = out
			return out, nil
		}
	}
	z := in
	in = append(in, flateTail...)
	f.in.Reset(in)
	var r io.ReadCloser
	select {
	case r = <-freeReaders:
		if err := r.(flate.Resetter).Reset(&f.in, f.window); err != nil {
			return nil, err
		}
	default:
		r = flate.NewReaderDict(&f.in, f.window)
	}
	out := f.out[:0]
	var err error
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		var n int
		n, err = r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			err = fmt.Errorf("%w: inflated message exceeds %d bytes", errProtocol, limit)
			break
		}
		if err != nil {
			break
		}
	}
	select {
	case freeReaders <- r:
	default:
	}
	f.out = out
	if err != io.EOF {
		if !errors.Is(err, errProtocol) {
			err = fmt.Errorf("%w: inflating: %v", errProtocol, err)
		}
		return nil, err
	}
	if f.cache != nil {
		f.cache.put(z[:len(z):len(z)], out)
	}
	if f.serverTakeover {
		f.window = append(f.window, out...)
		if len(f.window) > flateWindow {
			f.window = f.window[:copy(f.window, f.window[len(f.window)-flateWindow:])]
		}
	}
	return out, nil
}

// countingConn counts the bytes that cross the connection each way.
type countingConn struct {
	net.Conn
	read, written atomic.Uint64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(uint64(n))
	return n, err
}
