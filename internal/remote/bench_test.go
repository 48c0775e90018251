package remote_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
	"github.com/strandws/strand/sdk/strandtest"
)

// benchChildEnv makes the test binary a benchmark's child process: "bare"
// echoes 64-byte blocks on fd 3 with blocking reads and writes; "plugin"
// serves the echo plugin on the socket named by serve.EnvSocket.
const benchChildEnv = "STRAND_REMOTE_BENCH_CHILD"

func benchChild(mode string) int {
	switch mode {
	case "bare":
		var buf [64]byte
		for {
			if _, err := readFull(3, buf[:]); err != nil {
				return 0
			}
			if _, err := syscall.Write(3, buf[:]); err != nil {
				return 0
			}
		}
	case "go":
		c, err := net.FileConn(os.NewFile(3, "conn"))
		if err != nil {
			return 1
		}
		var buf [64]byte
		for {
			if _, err := io.ReadFull(c, buf[:]); err != nil {
				return 0
			}
			if _, err := c.Write(buf[:]); err != nil {
				return 0
			}
		}
	case "plugin":
		if err := serve.Run(context.Background(), echoplugin.New()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	return 2
}

func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := syscall.Read(fd, b[n:])
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// BenchmarkBareUnixRoundTrip: the anchor, 64 bytes ping-ponged with a child
// process over a SOCK_STREAM socketpair, blocking read and write system
// calls on both sides, no encoding.
func BenchmarkBareUnixRoundTrip(b *testing.B) {
	fd, stop := bareChild(b)
	defer stop()
	var buf [64]byte
	timeRoundTrips(b, func() { bareRoundTrip(b, fd, buf[:]) })
}

// BenchmarkGoUnixRoundTrip is BenchmarkBareUnixRoundTrip through Go's
// net.Conn on both sides (non-blocking sockets and the runtime's poller):
// the floor for anything written in Go.
func BenchmarkGoUnixRoundTrip(b *testing.B) {
	fd, cmd := startChild(b, "go")
	f := os.NewFile(uintptr(fd), "parent")
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = c.Close()
		_ = cmd.Wait()
	}()
	var buf [64]byte
	timeRoundTrips(b, func() {
		if _, err := c.Write(buf[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			b.Fatal(err)
		}
	})
}

// timeRoundTrips runs rt 1000 times to warm up, then b.N times timed, and
// reports the mean in µs/roundtrip.
func timeRoundTrips(b *testing.B, rt func()) {
	for range 1000 {
		rt()
	}
	b.ResetTimer()
	for range b.N {
		rt()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/roundtrip")
}

// bareRoundTrip writes buf to the bare child and reads its echo, with
// blocking system calls.
func bareRoundTrip(b *testing.B, fd int, buf []byte) {
	if _, err := syscall.Write(fd, buf); err != nil {
		b.Fatal(err)
	}
	if _, err := readFull(fd, buf); err != nil {
		b.Fatal(err)
	}
}

// remotePlugin runs the echo plugin in a child process (this test binary,
// serve.Run dialing the host's socket) and returns the proxy plugin.
func remotePlugin(b *testing.B) *sdk.Plugin {
	p, _ := remoteHost(b)
	return p
}

// BenchmarkPingRoundTrip: a protocol ping to the plugin process and its
// pong: the socket, encoding and decoding, and both sides' readers, without
// any handler or dispatch. The difference to BenchmarkEventRoundTrip is
// what the two runtimes' ordered dispatch adds.
func BenchmarkPingRoundTrip(b *testing.B) {
	_, h := remoteHost(b)
	ctx := context.Background()
	timeRoundTrips(b, func() {
		if err := h.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

func remoteHost(b *testing.B) (*sdk.Plugin, *remote.Host) {
	b.Helper()
	sock := sockPath(b)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	h, err := remote.New(remote.Config{Name: "echo", Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = h.Attach(context.Background(), c)
	}()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"=plugin", serve.EnvSocket+"="+sock)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = h.Close() // the child's socket closes: it exits
		_ = ln.Close()
		wg.Wait()
		_ = cmd.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	p, err := h.Plugin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return p, h
}

// BenchmarkEventRoundTrip: one WebSocket message's round trip through the
// socket to a plugin in another process and back — the proxy's handler on
// the host's runtime encodes the event, the plugin's reader decodes it and
// runs the echo handler on its runtime, whose Send comes back as a call
// frame that the host's reader applies to the connection. The host side is
// the strandtest kit, so no client socket is involved. Compare with
// BenchmarkBareUnixRoundTrip (target: at most 2x).
func BenchmarkEventRoundTrip(b *testing.B) {
	for _, where := range []string{"in-process", "remote"} {
		b.Run(where, func(b *testing.B) {
			var e *sdk.Entry
			if where == "remote" {
				e, _ = remotePlugin(b).Lookup("echo")
			} else {
				e = echoplugin.New().Entry("echo")
			}
			kit := strandtest.New(b, e, strandtest.Options{NoPoison: true})
			defer kit.Close()
			c := kit.Open()
			msg := make([]byte, 64)
			ctx := context.Background()
			timeRoundTrips(b, func() {
				c.SendBinary(msg)
				if _, err := c.NextSent(ctx); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// pipeline runs per echoes on every connection, inflight at a time each,
// and returns how long they took.
func pipeline(b *testing.B, cs []*strandtest.Conn, per, inflight int) time.Duration {
	msg := make([]byte, 64)
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := 0
			for ; sent < min(inflight, per); sent++ {
				c.SendBinary(msg)
			}
			for got := 0; got < per; got++ {
				if _, err := c.NextSent(ctx); err != nil {
					b.Error(err)
					return
				}
				if sent < per {
					c.SendBinary(msg)
					sent++
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkPipelinedEcho: echo throughput, 1000 connections with 16
// 64-byte messages in flight each, in process and with the plugin in
// another process, in alternating rounds (so that the machine's drifting
// load hits both alike); b.N is the messages per side. It reports both
// rates and remote/in-process (target: >= 0.5). The host side is the
// strandtest kit (no client sockets): its own cost is in both figures.
func BenchmarkPipelinedEcho(b *testing.B) {
	const conns, inflight, per = 1000, 16, 50 // a round: 50,000 messages a side
	remoteEntry, _ := remotePlugin(b).Lookup("echo")
	open := func(e *sdk.Entry) []*strandtest.Conn {
		kit := strandtest.New(b, e, strandtest.Options{NoPoison: true, Timeout: time.Minute})
		b.Cleanup(kit.Close)
		cs := make([]*strandtest.Conn, conns)
		for i := range cs {
			cs[i] = kit.Open()
		}
		return cs
	}
	local, remote := open(echoplugin.New().Entry("echo")), open(remoteEntry)
	pipeline(b, local, per, inflight) // warm up both
	pipeline(b, remote, per, inflight)
	rounds := max(1, b.N/(conns*per))
	var tLocal, tRemote time.Duration
	b.ResetTimer()
	for range rounds {
		tLocal += pipeline(b, local, per, inflight)
		tRemote += pipeline(b, remote, per, inflight)
	}
	b.StopTimer()
	total := float64(rounds * conns * per)
	b.ReportMetric(total/tLocal.Seconds(), "inproc-msgs/s")
	b.ReportMetric(total/tRemote.Seconds(), "remote-msgs/s")
	b.ReportMetric(tLocal.Seconds()/tRemote.Seconds(), "remote/inproc")
}

// startChild starts this test binary as the benchmark child of the given
// mode with one end of a socketpair, and returns the other end (blocking)
// and the child.
func startChild(b *testing.B, mode string) (int, *exec.Cmd) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "child")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+mode)
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	_ = child.Close()
	return fds[0], cmd
}

// bareChild starts the "bare" child and returns the parent's blocking
// socket descriptor and a stop function.
func bareChild(b *testing.B) (int, func()) {
	fd, cmd := startChild(b, "bare")
	return fd, func() {
		_ = syscall.Close(fd)
		_ = cmd.Wait()
	}
}

// BenchmarkRoundTripRatio interleaves, in every iteration, one bare
// two-process round trip (BenchmarkBareUnixRoundTrip's) with one protocol
// ping and one WebSocket event round trip to the plugin process
// (BenchmarkPingRoundTrip's and BenchmarkEventRoundTrip's), so that the
// machine's load drifts over all three alike; it reports each mean and the
// ratios to the bare one. Target: event/bare <= 2.
func BenchmarkRoundTripRatio(b *testing.B) {
	fd, stop := bareChild(b)
	defer stop()
	p, h := remoteHost(b)
	e, _ := p.Lookup("echo")
	kit := strandtest.New(b, e, strandtest.Options{NoPoison: true})
	defer kit.Close()
	c := kit.Open()
	msg := make([]byte, 64)
	var buf [64]byte
	ctx := context.Background()
	bare := func() { bareRoundTrip(b, fd, buf[:]) }
	ping := func() {
		if err := h.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
	event := func() {
		c.SendBinary(msg)
		if _, err := c.NextSent(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for range 1000 {
		bare()
		ping()
		event()
	}
	var tBare, tPing, tEvent time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		bare()
		t1 := time.Now()
		ping()
		t2 := time.Now()
		event()
		t3 := time.Now()
		tBare += t1.Sub(t0)
		tPing += t2.Sub(t1)
		tEvent += t3.Sub(t2)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(tBare.Microseconds())/n, "bare-µs")
	b.ReportMetric(float64(tPing.Microseconds())/n, "ping-µs")
	b.ReportMetric(float64(tEvent.Microseconds())/n, "event-µs")
	b.ReportMetric(float64(tPing)/float64(tBare), "ping/bare")
	b.ReportMetric(float64(tEvent)/float64(tBare), "event/bare")
}
