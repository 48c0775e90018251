package supervise

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/internal/testbuf"
)

const childEnv = "SUPERVISE_TEST_CHILD" // the test binary runs as a plugin child in this mode
const sockEnv = "SUPERVISE_TEST_SOCKET"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	goleak.VerifyTestMain(m)
}

// child is a stand-in plugin: it dials the socket, prints a line on each
// stream, then: "serve" reads until the host closes the socket and exits
// 0; "crash" exits 3; "deaf" reads and ignores EOF, never exiting.
func child(mode string) int {
	c, err := net.Dial("unix", os.Getenv(sockEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 2
	}
	fmt.Fprintln(os.Stdout, "hello on stdout")
	fmt.Fprintln(os.Stderr, "hello on stderr")
	switch mode {
	case "crash":
		return 3
	case "deaf":
		select {}
	}
	_, _ = io.Copy(io.Discard, c)
	return 0
}

// fakeHost is a Host whose session reads the socket until EOF or until its
// context ends; Goodbye closes the socket.
type fakeHost struct {
	up       atomic.Bool
	attaches atomic.Int32
	mu       sync.Mutex
	conn     net.Conn
}

func (h *fakeHost) Attach(ctx context.Context, c net.Conn) error {
	h.attaches.Add(1)
	h.mu.Lock()
	h.conn = c
	h.mu.Unlock()
	h.up.Store(true)
	defer h.up.Store(false)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	_, err := io.Copy(io.Discard, c)
	_ = c.Close()
	if err == nil {
		err = io.EOF
	}
	return err
}

func (h *fakeHost) Up() bool { return h.up.Load() }

func (h *fakeHost) Goodbye() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		_ = h.conn.(*net.UnixConn).CloseWrite()
	}
}

func startTest(t *testing.T, mode string, h *fakeHost, grace time.Duration) (*Supervisor, *testbuf.Buffer) {
	t.Helper()
	logs := &testbuf.Buffer{}
	exe, err := os.Executable()
	require.NoError(t, err)
	s, err := Start(Config{
		Name: "fake", Command: []string{exe}, Env: []string{childEnv + "=" + mode},
		SocketEnv: sockEnv, SocketDir: t.TempDir(), Host: h, Grace: grace,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Policy: Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Failures: 1000},
	})
	require.NoError(t, err)
	return s, logs
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestartsACrashingChild: a child that exits is started again (counted
// in Restarts), each start dials in, and its output lines are log lines
// tagged with the plugin and the stream.
func TestRestartsACrashingChild(t *testing.T) {
	h := &fakeHost{}
	s, logs := startTest(t, "crash", h, time.Second)
	eventually(t, "3 restarts", func() bool { return s.Stats().Restarts >= 3 })
	require.NoError(t, s.Stop(context.Background()))
	require.GreaterOrEqual(t, h.attaches.Load(), int32(3))
	out := logs.String()
	require.Contains(t, out, `msg="hello on stderr" plugin=fake stream=stderr`)
	require.Contains(t, out, `msg="hello on stdout" plugin=fake stream=stdout`)
	require.Contains(t, out, "exit status 3")
	_, err := os.Stat(s.SocketPath())
	require.True(t, os.IsNotExist(err), "the socket directory is removed")
}

// TestSocketDirIsPrivate: the socket's directory is 0700.
func TestSocketDirIsPrivate(t *testing.T) {
	h := &fakeHost{}
	s, _ := startTest(t, "serve", h, time.Second)
	defer func() { require.NoError(t, s.Stop(context.Background())) }()
	fi, err := os.Stat(s.SocketPath()[:strings.LastIndexByte(s.SocketPath(), '/')])
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

// TestStopSaysGoodbye: Stop asks the plugin to finish; a child that does
// exits by itself, Ready fails once it is down, and it is not restarted.
func TestStopSaysGoodbye(t *testing.T) {
	h := &fakeHost{}
	s, logs := startTest(t, "serve", h, 10*time.Second)
	eventually(t, "the session", h.Up)
	require.NoError(t, s.Ready(context.Background()))
	pid := s.PID()
	require.NotZero(t, pid)
	start := time.Now()
	require.NoError(t, s.Stop(context.Background()))
	require.Less(t, time.Since(start), 10*time.Second, "it exited on goodbye, before the grace period")
	require.Contains(t, logs.String(), "exit status 0")
	require.Error(t, s.Ready(context.Background()))
	require.Equal(t, uint64(0), s.Stats().Restarts)
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "the child is gone and reaped")
	require.NoError(t, s.Stop(context.Background()), "idempotent")
}

// TestStopKillsAfterGrace: a child that ignores goodbye is killed after
// the grace period.
func TestStopKillsAfterGrace(t *testing.T) {
	h := &fakeHost{}
	s, logs := startTest(t, "deaf", h, 100*time.Millisecond)
	eventually(t, "the session", h.Up)
	pid := s.PID()
	require.NoError(t, s.Stop(context.Background()))
	require.Contains(t, logs.String(), "did not exit within the grace period")
	require.Contains(t, logs.String(), "signal: killed")
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestCrashLoopMarksFailed: crashes past the breaker mark the plugin
// failed, say so in the log, and fail Ready.
func TestCrashLoopMarksFailed(t *testing.T) {
	h := &fakeHost{}
	logs := &testbuf.Buffer{}
	exe, err := os.Executable()
	require.NoError(t, err)
	s, err := Start(Config{
		Name: "fake", Command: []string{exe}, Env: []string{childEnv + "=crash"},
		SocketEnv: sockEnv, SocketDir: t.TempDir(), Host: h,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Policy: Policy{Initial: time.Millisecond, Max: time.Hour, Failures: 3, Window: time.Hour},
	})
	require.NoError(t, err)
	eventually(t, "failed", func() bool { return s.Stats().Failed })
	require.ErrorContains(t, s.Ready(context.Background()), "failed")
	require.Contains(t, logs.String(), "strand: plugin failed")
	require.Contains(t, logs.String(), "crash loop")
	require.NoError(t, s.Stop(context.Background()), "Stop ends the long wait")
	require.Equal(t, uint64(2), s.Stats().Restarts)
}

// TestSocketModeRedials: a plugin run by someone else is dialled again
// with backoff until it listens, and again after its session ends.
func TestSocketModeRedials(t *testing.T) {
	h := &fakeHost{}
	path := t.TempDir() + "/p.sock"
	s, err := Start(Config{Name: "ext", Socket: path, Host: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Policy: Policy{Initial: time.Millisecond, Max: 10 * time.Millisecond}})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Stop(context.Background())) }()
	time.Sleep(30 * time.Millisecond) // a few failed dials
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	defer l.Close()
	for i := range 2 {
		c, err := l.Accept()
		require.NoError(t, err)
		eventually(t, "up", h.Up)
		require.NoError(t, c.Close(), "session %d ends", i)
	}
	eventually(t, "restarts", func() bool { return s.Stats().Restarts >= 2 })
}
