package tests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// Order test load: every connection pipelines orderMessages messages.
const (
	orderConns    = 200
	orderMessages = 2000
	orderDeadline = 55 * time.Second // for the whole exchange
)

// orderCorpus is the bytes messages are cut from: text messages from an
// ASCII corpus (always valid UTF-8), binary ones from random bytes.
type orderCorpus struct{ text, bin []byte }

func newOrderCorpus() *orderCorpus {
	r := rand.New(rand.NewPCG(1, 2))
	c := &orderCorpus{text: make([]byte, 256<<10), bin: make([]byte, 256<<10)}
	for i := range c.text {
		c.text[i] = byte(' ' + r.IntN(95))
		c.bin[i] = byte(r.Uint32())
	}
	return c
}

// message returns message i of connection conn: its type and payload (a
// slice of the corpus, not to be modified). Sizes are mostly 0..1024 bytes;
// about one in 1000 is 16..64 KiB, and message 1000 is exactly 64 KiB (the
// 8-byte length form). Consecutive messages differ in size, type or bytes,
// so a reordered, lost or duplicated echo does not match.
func (c *orderCorpus) message(conn, i int) (ws.OpCode, []byte) {
	x := splitmix(uint64(conn)<<32 | uint64(i))
	n := int(x % 1025)
	switch {
	case i == 1000:
		n = 64 << 10
	case (x>>16)%1000 == 0:
		n = 16<<10 + int((x>>24)%(48<<10+1))
	}
	src, op := c.text, ws.OpText
	if x>>63 == 1 {
		src, op = c.bin, ws.OpBinary
	}
	off := int((x >> 32) % uint64(len(src)-n+1))
	return op, src[off : off+n]
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// TestEchoOrderEndToEnd pipelines orderMessages mixed messages on each of
// orderConns connections through the echo plugin, with one writer and one
// reader goroutine per client, and checks every echo arrives intact, in
// order, with none missing, and that no client was taken for a slow
// consumer.
// orderExchange runs every client's writer and reader of the order load
// until deadline and returns what failed.
func orderExchange(t *testing.T, clients []*wsClient, corpus *orderCorpus, deadline time.Time) []error {
	t.Helper()
	errs := make(chan error, 2*len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		require.NoError(t, c.nc.SetDeadline(deadline))
		wg.Go(func() {
			if err := orderWriter(c, corpus, i); err != nil {
				errs <- fmt.Errorf("client %d writer: %w", i, err)
			}
		})
		wg.Go(func() {
			if err := orderReader(c, corpus, i); err != nil {
				errs <- fmt.Errorf("client %d reader: %w", i, err)
				_ = c.nc.Close() // unblock its writer
			}
		})
	}
	wg.Wait()
	close(errs)
	var failures []error
	for err := range errs {
		failures = append(failures, err)
	}
	return failures
}

func TestEchoOrderEndToEnd(t *testing.T) {
	corpus := newOrderCorpus()
	var total int64
	for conn := range orderConns {
		for i := range orderMessages {
			_, p := corpus.message(conn, i)
			total += int64(len(p))
		}
	}
	require.LessOrEqual(t, total, int64(256<<20), "the load must stay within 256 MiB each way")

	h := startServer(t, wsframework.Config{
		PingInterval: -1, // the clients here do not answer pings
	}, map[string]*sdk.Entry{"/echo": echoplugin.New().Entry("echo")})

	clients := make([]*wsClient, orderConns)
	for i := range clients {
		clients[i] = h.dial(t, "/echo")
	}

	start := time.Now()
	failures := orderExchange(t, clients, corpus, start.Add(orderDeadline))
	elapsed := time.Since(start)
	require.Empty(t, failures, "%d of %d clients failed; first: %v", len(failures), orderConns, errors.Join(failures[:min(len(failures), 3)]...))
	t.Logf("%d conns x %d messages, %.1f MiB each way, in %v", orderConns, orderMessages, float64(total)/(1<<20), elapsed)

	for _, c := range clients {
		require.NoError(t, c.nc.SetDeadline(time.Time{}))
		c.closeHandshake(t, ws.StatusNormalClosure, "done")
	}
	st := h.srv.Stats()
	require.Zero(t, st.Closes["slow_consumer"], "closes: %v", st.Closes)
	require.Equal(t, uint64(orderConns*orderMessages), st.MessagesIn)
	require.Equal(t, uint64(orderConns*orderMessages), st.MessagesOut)
	require.Zero(t, st.Dropped)
}

// orderWriter sends connection conn's messages as masked frames through one
// buffered writer, without waiting for echoes. Messages over 4 KiB go as
// three fragments (the middle one may be empty).
func orderWriter(c *wsClient, corpus *orderCorpus, conn int) error {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	var hdr [ws.MaxHeaderSize]byte
	scratch := make([]byte, 64<<10)
	frame := func(op ws.OpCode, fin bool, p []byte, mask [4]byte) error {
		if err := ws.WriteHeaderBuffer(w, ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: mask, Length: int64(len(p))}, hdr[:]); err != nil {
			return err
		}
		b := scratch[:len(p)]
		copy(b, p)
		ws.Cipher(b, mask, 0)
		_, err := w.Write(b)
		return err
	}
	for i := range orderMessages {
		op, p := corpus.message(conn, i)
		mask := [4]byte{byte(i), byte(i >> 8), byte(conn), 0x5a}
		if len(p) <= 4<<10 {
			if err := frame(op, true, p, mask); err != nil {
				return err
			}
			continue
		}
		a, b := len(p)/3, len(p)/3+i%2*(len(p)/4)
		if err := frame(op, false, p[:a], mask); err != nil {
			return err
		}
		if err := frame(ws.OpContinuation, false, p[a:b], mask); err != nil {
			return err
		}
		if err := frame(ws.OpContinuation, true, p[b:], mask); err != nil {
			return err
		}
	}
	return w.Flush()
}

// orderReader reads connection conn's echoes and checks each against the
// message sent at the same position.
func orderReader(c *wsClient, corpus *orderCorpus, conn int) error {
	var hdr [ws.MaxHeaderSize]byte
	buf := make([]byte, 64<<10)
	for i := range orderMessages {
		op, want := corpus.message(conn, i)
		h, err := ws.ReadHeaderBuffer(c.br, hdr[:])
		if err != nil {
			return fmt.Errorf("echo %d: header: %w", i, err)
		}
		if !h.Fin || h.Masked || h.Rsv != 0 {
			return fmt.Errorf("echo %d: malformed header %+v", i, h)
		}
		if h.OpCode != op || h.Length != int64(len(want)) {
			return fmt.Errorf("echo %d: got op %#x len %d, want op %#x len %d (lost, reordered or foreign)",
				i, h.OpCode, h.Length, op, len(want))
		}
		got := buf[:h.Length]
		if _, err := io.ReadFull(c.br, got); err != nil {
			return fmt.Errorf("echo %d: payload: %w", i, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("echo %d: payload differs", i)
		}
	}
	return nil
}

// TestConcurrentSendersOrder: Send from several goroutines at once to one
// connection keeps each goroutine's order at the client, loses nothing and
// mixes no bytes.
func TestConcurrentSendersOrder(t *testing.T) {
	const (
		senders = 8
		each    = 500
	)
	p := newProbe("senders")
	h := startServer(t, wsframework.Config{}, map[string]*sdk.Entry{"/ws": p.entry})
	c := h.dial(t, tagPath("/ws", "c"))
	sc := p.waitOpen(t, "c").conn

	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				// sender, sequence, then filler of a size that varies.
				msg := fmt.Appendf(nil, "%d %d ", s, i)
				msg = append(msg, bytes.Repeat([]byte{byte('a' + s)}, (i*37+s)%300)...)
				if err := sc.SendText(string(msg)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := make([]int, senders)
	for range senders * each {
		f, err := c.readFrame(ioTimeout)
		require.NoError(t, err)
		require.Equal(t, ws.OpText, f.op)
		var s, i int
		_, err = fmt.Sscanf(string(f.payload), "%d %d ", &s, &i)
		require.NoError(t, err, "message %q", f.payload)
		require.Equal(t, next[s], i, "sender %d out of order", s)
		next[s]++
		prefix := len(fmt.Sprintf("%d %d ", s, i))
		require.Equal(t, bytes.Repeat([]byte{byte('a' + s)}, (i*37+s)%300), f.payload[prefix:])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	p.waitClose(t, "c", sdk.CloseNormal)
}
