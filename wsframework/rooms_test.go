package wsframework

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// This file tests rooms on host connections whose socket is a memConn: no
// HTTP, no runtime, no real socket. The read side is not used.

const roomTestTimeout = 10 * time.Second

// memConn is an in-memory net.Conn for the write side of a conn. Writes are
// counted (and recorded when record is set) and never block, unless stall is
// set: then they wait until Close. Reads wait until Close. Unlike net.Pipe
// it never waits for a reader.
type memConn struct {
	record bool
	stall  bool
	// bytes, when set, is added every written byte; done (buffered) is
	// signalled when it reaches target.
	bytes  *atomic.Int64
	target *atomic.Int64
	done   chan struct{}

	closeOnce sync.Once
	closed    chan struct{}

	mu  sync.Mutex
	buf []byte
}

func newMemConn() *memConn { return &memConn{closed: make(chan struct{})} }

func (m *memConn) Write(p []byte) (int, error) {
	if m.stall {
		<-m.closed
		return 0, net.ErrClosed
	}
	select {
	case <-m.closed:
		return 0, net.ErrClosed
	default:
	}
	if m.record {
		m.mu.Lock()
		m.buf = append(m.buf, p...)
		m.mu.Unlock()
	}
	if m.bytes != nil && m.bytes.Add(int64(len(p))) == m.target.Load() {
		select {
		case m.done <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (m *memConn) Read([]byte) (int, error) {
	<-m.closed
	return 0, io.EOF
}

func (m *memConn) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	return nil
}

func (m *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// frames parses what was written so far.
func (m *memConn) frames(t *testing.T) []recordedFrame {
	t.Helper()
	m.mu.Lock()
	b := append([]byte(nil), m.buf...)
	m.mu.Unlock()
	return parseFrames(t, b)
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// countingConns makes n memConns that add what they are given to one
// counter and signal done when it reaches target.
func countingConns(n int) (ncs []*memConn, written, target *atomic.Int64, done chan struct{}) {
	written, target, done = new(atomic.Int64), new(atomic.Int64), make(chan struct{}, 1)
	for range n {
		nc := newMemConn()
		nc.bytes, nc.target, nc.done = written, target, done
		ncs = append(ncs, nc)
	}
	return ncs, written, target, done
}

// recordedFrame is one server frame read back from a memConn.
type recordedFrame struct {
	op      byte
	payload string
}

// parseFrames splits what the server wrote into frames.
func parseFrames(t *testing.T, b []byte) []recordedFrame {
	t.Helper()
	var out []recordedFrame
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 2, "truncated header")
		op := b[0] & 0x0f
		require.Equal(t, byte(0x80), b[0]&0xf0, "FIN set, no RSV")
		n, hl := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		require.GreaterOrEqual(t, len(b), hl+n, "truncated payload")
		out = append(out, recordedFrame{op: op, payload: string(b[hl : hl+n])})
		b = b[hl+n:]
	}
	return out
}

// dataPayloads returns the payloads of the data frames.
func dataPayloads(fs []recordedFrame) []string {
	var out []string
	for _, f := range fs {
		if f.op == opText || f.op == opBinary {
			out = append(out, f.payload)
		}
	}
	return out
}

func newRoomServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// memberConn makes a host connection on s over nc, registered like an
// upgraded one (SendTo finds it) but with no reader and no runtime. The
// test's cleanup tears it down.
func memberConn(t testing.TB, s *Server, nc net.Conn) *conn {
	t.Helper()
	c := newConn(s, s.nextID.Add(1), nc, nil, nil)
	s.conns.Store(c.id, c)
	t.Cleanup(func() { closeMemberConn(c) })
	return c
}

// closeMemberConn does what teardown does, without OnClose: leave every
// room, stop the writer, release what is queued.
func closeMemberConn(c *conn) {
	c.srv.rooms.leaveAll(c)
	c.srv.conns.Delete(c.id)
	c.mu.Lock()
	c.closing, c.dead = true, true
	var idle chan struct{}
	if c.writing {
		idle = make(chan struct{})
		c.idle = idle
	}
	c.mu.Unlock()
	_ = c.nc.Close()
	if idle != nil {
		<-idle
	}
	c.mu.Lock()
	c.dropQueueLocked()
	c.mu.Unlock()
}

// waitWritten waits until every member's writer has gone idle with an
// empty queue.
func waitWritten(t *testing.T, cs ...*conn) {
	t.Helper()
	for _, c := range cs {
		c.mu.Lock()
		if !c.writing {
			c.mu.Unlock()
			continue
		}
		idle := make(chan struct{})
		c.idle = idle
		c.mu.Unlock()
		select {
		case <-idle:
		case <-time.After(roomTestTimeout):
			t.Fatalf("conn %d: writer did not finish", c.id)
		}
	}
}

func TestRoomMembership(t *testing.T) {
	s := newRoomServer(t, Config{})
	a, b := memberConn(t, s, newMemConn()), memberConn(t, s, newMemConn())

	require.NoError(t, a.Join("lobby"))
	require.NoError(t, a.Join("lobby"), "joining twice is not an error")
	require.NoError(t, b.Join("lobby"))
	require.NoError(t, b.Join("other"))
	require.Equal(t, []uint64{a.id, b.id}, s.RoomMembers("lobby"))
	require.Equal(t, 2, s.RoomSize("lobby"))
	require.Equal(t, []string{"lobby", "other"}, s.Rooms())
	require.Equal(t, int64(3), s.RoomStats().Members)

	require.NoError(t, a.Leave("lobby"))
	require.NoError(t, a.Leave("lobby"), "leaving twice is not an error")
	require.NoError(t, a.Leave("never-joined"))
	require.Equal(t, []uint64{b.id}, s.RoomMembers("lobby"))

	// Closing ends every membership, and an empty room is gone.
	closeMemberConn(b)
	require.Empty(t, s.Rooms())
	require.Zero(t, s.RoomSize("lobby"))
	require.Nil(t, s.RoomMembers("other"))
	require.Equal(t, RoomStats{}, s.RoomStats())
	require.ErrorIs(t, b.Join("lobby"), core.ErrClosed, "join after close")

	for _, name := range []string{"", string(make([]byte, core.MaxRoomNameBytes+1))} {
		require.ErrorIs(t, a.Join(name), core.ErrInvalidRoom)
		require.ErrorIs(t, a.Leave(name), core.ErrInvalidRoom)
		require.ErrorIs(t, s.Broadcast(name, sdk.Text, nil), core.ErrInvalidRoom)
	}
}

func TestServerRoomAPI(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	s := newRoomServer(t, Config{Buffers: pool})
	nc := newMemConn()
	nc.record = true
	c := memberConn(t, s, nc)

	require.ErrorIs(t, s.SendTo(9999, sdk.Text, []byte("x")), ErrNoConn)
	require.ErrorIs(t, s.JoinRoom(9999, "r"), ErrNoConn)
	require.ErrorIs(t, s.LeaveRoom(9999, "r"), ErrNoConn)
	// An invalid type is refused on every send path, and the connection
	// stays open (the sends below reach it).
	require.ErrorIs(t, s.SendTo(c.id, sdk.MessageType(9), []byte("x")), core.ErrMessageType)
	require.ErrorIs(t, s.Broadcast("r", sdk.MessageType(9), []byte("x")), core.ErrMessageType)
	require.ErrorIs(t, s.BroadcastBuffer("r", sdk.MessageType(0), pool.Get(1)), core.ErrMessageType)
	require.ErrorIs(t, c.Write(core.MessageType(8), pool.Get(1)), core.ErrMessageType)
	require.ErrorIs(t, c.Broadcast("r", core.MessageType(3), pool.Get(1), core.BroadcastOptions{}), core.ErrMessageType)
	require.ErrorIs(t, ErrMessageType, core.ErrMessageType, "the old name is the same error")

	require.NoError(t, s.JoinRoom(c.id, "r"))
	require.NoError(t, s.SendTo(c.id, sdk.Text, []byte("direct")))
	require.NoError(t, s.Broadcast("r", sdk.Binary, []byte("room")))
	b := pool.Get(3)
	copy(b.B, "buf")
	require.NoError(t, s.BroadcastBuffer("r", sdk.Text, b))
	require.NoError(t, s.Broadcast("nobody-here", sdk.Text, []byte("lost")), "a room without members is not an error")
	require.NoError(t, s.LeaveRoom(c.id, "r"))
	require.NoError(t, s.Broadcast("r", sdk.Text, []byte("after leave")))
	waitWritten(t, c)

	require.Equal(t, []recordedFrame{{opText, "direct"}, {opBinary, "room"}, {opText, "buf"}}, nc.frames(t))
	st := s.RoomStats()
	require.Equal(t, uint64(4), st.Published)
	require.Equal(t, uint64(2), st.Delivered)
}

func TestBroadcastDeliversSharedBufferToEveryMember(t *testing.T) {
	for _, tc := range []struct {
		name        string
		excludeSelf bool
		members     int
	}{
		{"one member", false, 1},
		{"many members", false, 50},
		{"exclude self", true, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := bufpool.New(bufpool.Config{Poison: true})
			s := newRoomServer(t, Config{Buffers: pool})
			var ncs []*memConn
			var cs []*conn
			for range tc.members {
				nc := newMemConn()
				nc.record = true
				c := memberConn(t, s, nc)
				require.NoError(t, c.Join("room"))
				ncs, cs = append(ncs, nc), append(cs, c)
			}
			sender := cs[0]
			before := pool.Stats()
			const msgs = 20
			for i := range msgs {
				b := pool.Get(len("msg-00"))
				copy(b.B, fmt.Sprintf("msg-%02d", i))
				require.NoError(t, sender.Broadcast("room", core.Text, b, core.BroadcastOptions{ExcludeSelf: tc.excludeSelf}))
			}
			waitWritten(t, cs...)
			after := pool.Stats()

			var want []string
			for i := range msgs {
				want = append(want, fmt.Sprintf("msg-%02d", i))
			}
			for i, nc := range ncs {
				got := dataPayloads(nc.frames(t))
				if i == 0 && tc.excludeSelf {
					require.Empty(t, got, "the sender excluded itself")
					continue
				}
				require.Equal(t, want, got, "member %d", i)
			}
			// One buffer per broadcast, however many members, each
			// released once (poisoning would panic on a second release).
			require.Equal(t, uint64(msgs), after.Gets-before.Gets, "buffers taken")
			require.Equal(t, uint64(msgs), after.Releases-before.Releases, "buffers released")
		})
	}
}

// TestBroadcastOneOrderForAllMembers has several senders broadcast at once
// from their own goroutines: every member must see the same sequence, and
// in it each sender's messages in the order sent.
func TestBroadcastOneOrderForAllMembers(t *testing.T) {
	const senders, perSender, members = 8, 200, 12
	s := newRoomServer(t, Config{})
	var ncs []*memConn
	var cs []*conn
	for range members {
		nc := newMemConn()
		nc.record = true
		c := memberConn(t, s, nc)
		require.NoError(t, c.Join("room"))
		ncs, cs = append(ncs, nc), append(cs, c)
	}
	var wg sync.WaitGroup
	for sdr := range senders {
		wg.Go(func() {
			for i := range perSender {
				msg := []byte(strconv.Itoa(sdr) + ":" + strconv.Itoa(i))
				if sdr%2 == 0 {
					// Half from members' connections, half from the server API.
					b := s.cfg.Buffers.Get(len(msg))
					copy(b.B, msg)
					if err := cs[sdr].Broadcast("room", core.Text, b, core.BroadcastOptions{}); err != nil {
						t.Errorf("broadcast: %v", err)
						return
					}
				} else if err := s.Broadcast("room", sdk.Text, msg); err != nil {
					t.Errorf("broadcast: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitWritten(t, cs...)

	first := dataPayloads(ncs[0].frames(t))
	require.Len(t, first, senders*perSender)
	next := make([]int, senders)
	for _, m := range first {
		var sdr, i int
		_, err := fmt.Sscanf(m, "%d:%d", &sdr, &i)
		require.NoError(t, err)
		require.Equal(t, next[sdr], i, "sender %d out of order", sdr)
		next[sdr]++
	}
	for k, nc := range ncs[1:] {
		require.Equal(t, first, dataPayloads(nc.frames(t)), "member %d saw another order", k+1)
	}
}

// TestSlowMemberClosedWithoutBlockingTheRoom: a member that never reads
// fills its queue and is closed with 1008; the broadcaster and the other
// members go on, and the shared buffers it had queued are released. The
// broadcaster waits for the fast members after each message, so that only
// the stalled member's queue can fill.
func TestSlowMemberClosedWithoutBlockingTheRoom(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	s := newRoomServer(t, Config{Buffers: pool, WriteQueueMessages: 16})
	slowNC := newMemConn()
	slowNC.stall = true
	slow := memberConn(t, s, slowNC)
	require.NoError(t, slow.Join("room"))
	fastNC, _, target, written := countingConns(3)
	var fast []*conn
	for _, nc := range fastNC {
		nc.record = true
		c := memberConn(t, s, nc)
		require.NoError(t, c.Join("room"))
		fast = append(fast, c)
	}

	const msgs = 200 // far more than the slow member's queue holds
	for i := range msgs {
		msg := strconv.Itoa(i)
		target.Add(int64(len(fast) * (2 + len(msg))))
		require.NoError(t, s.Broadcast("room", sdk.Text, []byte(msg)))
		select {
		case <-written:
		case <-time.After(roomTestTimeout):
			t.Fatalf("message %d did not reach the fast members", i)
		}
	}
	waitWritten(t, fast...)
	for i, nc := range fastNC {
		require.Len(t, dataPayloads(nc.frames(t)), msgs, "fast member %d", i)
	}
	slow.mu.Lock()
	reason, code, closing := slow.reason, slow.localCode, slow.closing
	slow.mu.Unlock()
	require.True(t, closing)
	require.Equal(t, ReasonSlowConsumer, reason)
	require.Equal(t, core.ClosePolicyViolation, code)
	require.NotZero(t, s.RoomStats().Dropped, "deliveries refused after the close are counted")

	closeMemberConn(slow)
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases, "every buffer went back to the pool")
}

// TestMemoryBusNodes runs two Servers on one MemoryBus: a node subscribes
// only to rooms it has members in, a broadcast reaches the members of every
// node, and ExcludeSelf names a connection of the sending node only.
func TestMemoryBusNodes(t *testing.T) {
	bus := NewMemoryBus()
	adA, adB := bus.NewAdapter(), bus.NewAdapter()
	sA := newRoomServer(t, Config{Adapter: adA})
	sB := newRoomServer(t, Config{Adapter: adB})
	rec := func(s *Server) (*conn, *memConn) {
		nc := newMemConn()
		nc.record = true
		return memberConn(t, s, nc), nc
	}
	a1, a1nc := rec(sA)
	b1, b1nc := rec(sB)
	require.Equal(t, a1.id, b1.id, "IDs are per node: both are 1")

	require.NoError(t, a1.Join("shared"))
	require.NoError(t, a1.Join("only-a"))
	require.NoError(t, b1.Join("shared"))
	require.Equal(t, 2, adA.Subscriptions())
	require.Equal(t, 1, adB.Subscriptions(), "B has no member in only-a")

	send := func(c *conn, room, text string, o core.BroadcastOptions) {
		t.Helper()
		b := c.srv.cfg.Buffers.Get(len(text))
		copy(b.B, text)
		require.NoError(t, c.Broadcast(room, core.Text, b, o))
	}
	send(a1, "shared", "1", core.BroadcastOptions{})
	send(a1, "shared", "2", core.BroadcastOptions{ExcludeSelf: true})
	send(a1, "only-a", "3", core.BroadcastOptions{})
	send(b1, "only-a", "4", core.BroadcastOptions{}) // B publishes to a room it is not in
	require.NoError(t, sB.Broadcast("shared", sdk.Text, []byte("5")))
	waitWritten(t, a1, b1)
	require.Equal(t, []string{"1", "3", "4", "5"}, dataPayloads(a1nc.frames(t)))
	require.Equal(t, []string{"1", "2", "5"}, dataPayloads(b1nc.frames(t)))

	closeMemberConn(b1)
	require.Zero(t, adB.Subscriptions(), "B's last member left")
	require.NoError(t, sB.Close())
	require.ErrorIs(t, adB.Publish(RoomMessage{Room: "shared", Type: sdk.Text, Data: sB.cfg.Buffers.Get(1)}), ErrAdapterClosed)
	require.ErrorIs(t, adB.Subscribe("x"), ErrAdapterClosed)

	// A bound adapter cannot serve a second Server.
	_, err := New(Config{Adapter: adA, Logger: slog.New(slog.DiscardHandler)})
	require.Error(t, err)
}

// TestJoinLeaveRace has connections join, leave and close while others
// broadcast; run it with -race. Nothing may be left behind.
func TestJoinLeaveRace(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	s := newRoomServer(t, Config{Buffers: pool})
	const workers, rounds = 6, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rooms := []string{"a", "b", "c"}
			for i := range rounds {
				c := newConn(s, s.nextID.Add(1), newMemConn(), nil, nil)
				s.conns.Store(c.id, c)
				r := rooms[(w+i)%len(rooms)]
				if err := c.Join(r); err != nil {
					t.Errorf("join: %v", err)
				}
				_ = s.Broadcast(r, sdk.Text, []byte("x"))
				if i%3 == 0 {
					_ = c.Leave(r)
				}
				closeMemberConn(c)
			}
		})
	}
	wg.Wait()
	require.Empty(t, s.Rooms())
	require.Zero(t, s.RoomStats().Members)
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases, "every buffer went back to the pool")
}

// TestBroadcastAllocsConstant checks that a broadcast, delivered and
// written, allocates no more for 1,000 members than for 10. The race
// detector makes sync.Pool drop entries at random, so the bound is only
// checked without it.
func TestBroadcastAllocsConstant(t *testing.T) {
	allocs := map[int]float64{}
	msg := []byte(`{"type":"message","text":"hello"}`)
	frame := int64(2 + len(msg))
	for _, members := range []int{10, 1000} {
		s := newRoomServer(t, Config{})
		ncs, _, target, done := countingConns(members)
		for _, nc := range ncs {
			require.NoError(t, memberConn(t, s, nc).Join("room"))
		}
		broadcast := func() {
			target.Add(int64(members) * frame)
			if err := s.Broadcast("room", sdk.Text, msg); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(roomTestTimeout):
				t.Fatal("broadcast not written")
			}
		}
		for range 20 { // warm the queues, pools and writer batches
			broadcast()
		}
		allocs[members] = testing.AllocsPerRun(50, broadcast)
		require.Equal(t, uint64(members*(20+51)), s.RoomStats().Delivered, "every member got every broadcast")
	}
	t.Logf("allocations per broadcast, delivered and written: 10 members %.2f, 1000 members %.2f", allocs[10], allocs[1000])
	if raceEnabled() {
		return
	}
	require.Less(t, allocs[1000], allocs[10]+1, "allocations grow with the member count")
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// BenchmarkBroadcast broadcasts one 32-byte text message to a room of 10,
// 1,000 and 10,000 members (in-memory sockets that count what they are
// given) and waits until every member's frame was written: ns/op is one
// broadcast fully delivered. ns/delivery and allocs/delivery divide by the
// member count.
func BenchmarkBroadcast(b *testing.B) {
	for _, members := range []int{10, 1000, 10000} {
		b.Run("members="+strconv.Itoa(members), func(b *testing.B) {
			benchFanOut(b, members, func(s *Server, msg []byte) error {
				return s.Broadcast("room", sdk.Text, msg)
			})
		})
	}
}

// BenchmarkSendEachBaseline is the baseline for BenchmarkBroadcast: the same
// message sent to every member one by one with SendTo, a copy per member.
func BenchmarkSendEachBaseline(b *testing.B) {
	for _, members := range []int{10, 1000, 10000} {
		b.Run("members="+strconv.Itoa(members), func(b *testing.B) {
			ids := make([]uint64, 0, members)
			benchFanOut(b, members, func(s *Server, msg []byte) error {
				if len(ids) == 0 {
					ids = s.RoomMembers("room")
				}
				for _, id := range ids {
					if err := s.SendTo(id, sdk.Text, msg); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

func benchFanOut(b *testing.B, members int, send func(*Server, []byte) error) {
	s := newRoomServer(b, Config{WriteQueueMessages: 1 << 20, WriteQueueBytes: 1 << 30})
	msg := []byte(`{"type":"message","seq":1,"x":1}`) // 32 bytes: a 34-byte frame
	frame := int64(2 + len(msg))
	ncs, written, target, done := countingConns(members)
	for _, nc := range ncs {
		if err := memberConn(b, s, nc).Join("room"); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up: every member's queue slices and writer goroutine exist.
	const warm = 8
	target.Store(warm * int64(members) * frame)
	for range warm {
		if err := send(s, msg); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	target.Add(int64(b.N) * int64(members) * frame)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := send(s, msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("written %d of %d bytes", written.Load(), target.Load())
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	if n := s.Stats().Closes[ReasonSlowConsumer.String()]; n > 0 {
		b.Fatalf("%d members closed as slow consumers", n)
	}
	perBroadcast := float64(ms1.Mallocs-ms0.Mallocs) / float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/delivery")
	b.ReportMetric(perBroadcast/float64(members), "allocs/delivery")
	b.ReportMetric(float64(b.N)*float64(members)/b.Elapsed().Seconds(), "deliveries/s")
}
