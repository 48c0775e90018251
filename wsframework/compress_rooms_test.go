package wsframework

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// wireFrame is one server frame read back from a memConn, RSV bits kept.
type wireFrame struct {
	rsv     byte
	op      byte
	payload []byte
}

func (m *memConn) wireFrames(t *testing.T) []wireFrame {
	t.Helper()
	m.mu.Lock()
	b := append([]byte(nil), m.buf...)
	m.mu.Unlock()
	var out []wireFrame
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 2, "truncated header")
		require.NotZero(t, b[0]&0x80, "FIN")
		n, hl := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		require.GreaterOrEqual(t, len(b), hl+n, "truncated payload")
		out = append(out, wireFrame{rsv: b[0] & 0x70, op: b[0] & 0x0f, payload: b[hl : hl+n]})
		b = b[hl+n:]
	}
	return out
}

// clientInflater reads a connection's compressed messages as its client
// would, keeping the window with context takeover.
type clientInflater struct {
	takeover bool
	hist     []byte
	fr       io.ReadCloser
}

func (ci *clientInflater) read(t *testing.T, f wireFrame) []byte {
	t.Helper()
	if f.rsv == 0 {
		return f.payload
	}
	require.Equal(t, byte(rsv1), f.rsv)
	if ci.fr == nil {
		ci.fr = flate.NewReader(nil)
	}
	var dict []byte
	if ci.takeover {
		dict = ci.hist
	}
	src := io.MultiReader(bytes.NewReader(f.payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))
	require.NoError(t, ci.fr.(flate.Resetter).Reset(src, dict))
	out, err := io.ReadAll(ci.fr)
	require.NoError(t, err)
	ci.hist = append(ci.hist, out...)
	if len(ci.hist) > 1<<15 {
		ci.hist = ci.hist[len(ci.hist)-1<<15:]
	}
	return out
}

// TestSendCompressed: what each kind of member of a room gets, and what
// Write and WriteUncompressed send.
func TestSendCompressed(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	s := newRoomServer(t, Config{Buffers: pool, Compression: CompressionConfig{ContextTakeover: true}})
	ncs := []*memConn{newMemConn(), newMemConn(), newMemConn(), newMemConn()}
	modes := []deflateParams{
		{on: true},                       // shared: no context takeover
		{on: true},                       // shared
		{on: true, serverTakeover: true}, // its own compressor
		{},                               // not negotiated
	}
	conns := make([]*conn, len(ncs))
	for i, nc := range ncs {
		nc.record = true
		conns[i] = memberConn(t, s, nc)
		conns[i].setDeflate(modes[i])
		require.NoError(t, conns[i].Join("room"))
	}
	require.Equal(t, []pmdMode{pmdShared, pmdShared, pmdOwn, pmdOff}, []pmdMode{conns[0].pmd, conns[1].pmd, conns[2].pmd, conns[3].pmd})

	small := []byte(`{"type":"message","text":"hi"}`)
	large := bytes.Repeat([]byte(`{"type":"message","text":"hello there"} `), 30) // over 512 bytes
	large2 := append(append([]byte(nil), large...), "again"...)
	require.NoError(t, s.Broadcast("room", sdk.Text, small))
	require.NoError(t, s.Broadcast("room", sdk.Text, large))
	require.NoError(t, s.Broadcast("room", sdk.Binary, large2))
	for _, c := range conns {
		b := pool.Get(len(large))
		copy(b.B, large)
		require.NoError(t, c.WriteUncompressed(core.Text, b))
		b = pool.Get(len(large))
		copy(b.B, large)
		require.NoError(t, c.Write(core.Text, b))
	}
	waitWritten(t, conns...)

	want := [][]byte{small, large, large2, large, large}
	var shared [][]byte
	for i, nc := range ncs {
		fs := nc.wireFrames(t)
		require.Len(t, fs, len(want), "member %d", i)
		ci := &clientInflater{takeover: modes[i].serverTakeover}
		for j, f := range fs {
			require.Equal(t, want[j], ci.read(t, f), "member %d, message %d", i, j)
			compressed := f.rsv != 0
			require.Equal(t, modes[i].on && len(want[j]) >= DefaultCompressionThreshold && j != 3, compressed,
				"member %d, message %d: RSV1 %v", i, j, compressed)
			if compressed {
				require.Less(t, len(f.payload), len(want[j])/4, "member %d, message %d", i, j)
			}
		}
		if modes[i] == (deflateParams{on: true}) {
			shared = append(shared, fs[1].payload)
		}
	}
	// One compressed copy for the members that share.
	require.Equal(t, shared[0], shared[1])
	st := s.Stats()
	require.Equal(t, uint64(3*3), st.MessagesOutCompressed, "3 members, 3 messages each")
}

// TestBroadcastCompressedAllocsConstant: a compressed broadcast, delivered
// and written, allocates no more for 1,000 members than for 10: it is
// compressed once and the compressed frame shared.
func TestBroadcastCompressedAllocsConstant(t *testing.T) {
	allocs := map[int]float64{}
	msg := compressibleMessage()
	for _, members := range []int{10, 1000} {
		s := newRoomServer(t, Config{})
		frame := compressedFrameSize(t, s, msg)
		ncs, _, target, done := countingConns(members)
		for _, nc := range ncs {
			c := memberConn(t, s, nc)
			c.setDeflate(deflateParams{on: true})
			require.NoError(t, c.Join("room"))
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
		for range 20 {
			broadcast()
		}
		allocs[members] = testing.AllocsPerRun(50, broadcast)
		require.Equal(t, uint64(members*(20+51)), s.Stats().MessagesOutCompressed, "every member got every broadcast compressed")
	}
	t.Logf("allocations per compressed broadcast, delivered and written: 10 members %.2f, 1000 members %.2f", allocs[10], allocs[1000])
	if raceEnabled() {
		return
	}
	require.Less(t, allocs[1000], allocs[10]+1, "allocations grow with the member count")
}

// compressibleMessage is a 1 KiB JSON-like text message.
func compressibleMessage() []byte {
	var msg []byte
	for i := 0; len(msg) < 1024; i++ {
		msg = append(msg, `{"type":"message","room":"lobby","seq":`...)
		msg = strconv.AppendInt(msg, int64(i), 10)
		msg = append(msg, `,"text":"hello there"}`...)
	}
	return msg[:1024]
}

// compressedFrameSize is the size of the frame s sends msg in,
// compressed without context takeover.
func compressedFrameSize(t testing.TB, s *Server, msg []byte) int64 {
	t.Helper()
	z := s.deflater.compress(msg)
	require.NotNil(t, z)
	defer z.Release()
	var h [maxHeader]byte
	return int64(putHeader(h[:], opText|rsv1, len(z.B)) + len(z.B))
}

// BenchmarkBroadcastCompressed broadcasts a 1 KiB text message to a room
// of 10 and 1,000 members that negotiated permessage-deflate without
// context takeover, and waits until every member's frame was written
// before the next: ns/op is one broadcast fully delivered. The message is
// compressed once per broadcast and the compressed frame shared, so
// allocs/op are the same for 10 members and for 1,000. "plain" is the
// same message to members that did not negotiate the extension.
func BenchmarkBroadcastCompressed(b *testing.B) {
	for _, mode := range []string{"compressed", "plain"} {
		for _, members := range []int{10, 1000} {
			b.Run(mode+"/members="+strconv.Itoa(members), func(b *testing.B) {
				s := newRoomServer(b, Config{})
				msg := compressibleMessage()
				frame := int64(2 + 2 + len(msg))
				if mode == "compressed" {
					frame = compressedFrameSize(b, s, msg)
				}
				ncs, _, target, done := countingConns(members)
				for _, nc := range ncs {
					c := memberConn(b, s, nc)
					if mode == "compressed" {
						c.setDeflate(deflateParams{on: true})
					}
					if err := c.Join("room"); err != nil {
						b.Fatal(err)
					}
				}
				broadcast := func() {
					target.Add(int64(members) * frame)
					if err := s.Broadcast("room", sdk.Text, msg); err != nil {
						b.Fatal(err)
					}
					<-done
				}
				for range 20 { // warm the queues, pools and writer batches
					broadcast()
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					broadcast()
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/delivery")
				if mode == "compressed" {
					if got, want := s.Stats().MessagesOutCompressed, uint64((b.N+20)*members); got != want {
						b.Fatalf("%d of %d deliveries compressed", got, want)
					}
				}
			})
		}
	}
}
