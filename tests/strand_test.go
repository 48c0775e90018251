package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The strand program and its plugins, built by the tests (with the race
// detector when the tests run under it).
const (
	pkgStrand     = "github.com/strandws/strand/cmd/strand"
	pkgEchoPlugin = "github.com/strandws/strand/examples/echo/plugin"
	pkgChatPlugin = "github.com/strandws/strand/examples/chat/plugin"
	pkgTestPlugin = "github.com/strandws/strand/tests/internal/testplugin"
)

// strandProc is a running strand.
type strandProc struct {
	*child
	addr string
}

var strandAddrRe = regexp.MustCompile(`msg="strand: listening" addr=(\S+)`)

// startStrand writes config (with reader: set to this run's reader mode)
// and runs strand with it on 127.0.0.1:0.
func startStrand(t *testing.T, config string) *strandProc {
	t.Helper()
	bin := buildProgramWith(t, pkgStrand, raceEnabled)
	file := filepath.Join(t.TempDir(), "strand.yaml")
	config = "reader: " + readerMode.String() + "\n" + config
	require.NoError(t, os.WriteFile(file, []byte(config), 0o600))
	c := startChild(t, bin, "-config", file, "-addr", "127.0.0.1:0")
	m := c.waitLine(t, strandAddrRe, 60*time.Second)
	return &strandProc{child: c, addr: m[1]}
}

// harness is the tests' client side, pointed at strand.
func (s *strandProc) harness() *harness { return &harness{addr: s.addr} }

// pluginPID waits for the n-th "plugin started" line of plugin name (from
// 1) and returns its pid.
func (s *strandProc) pluginPID(t *testing.T, name string, n int) int {
	t.Helper()
	re := regexp.MustCompile(`msg="strand: plugin started" plugin=` + name + ` pid=(\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ms := re.FindAllSubmatch(s.out.bytes(), -1); len(ms) >= n {
			pid, err := strconv.Atoi(string(ms[n-1][1]))
			require.NoError(t, err)
			return pid
		}
		require.True(t, time.Now().Before(deadline), "no start %d of plugin %s:\n%s", n, name, s.out.bytes())
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *strandProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + s.addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample line that starts with series.
func (s *strandProc) metric(t *testing.T, series string) string {
	t.Helper()
	_, body := s.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoOnce opens a connection to path, sends msg and reads its echo.
func echoOnce(addr, path, msg string) error { return echoWithin(addr, path, msg, 5*time.Second) }

// echoWithin is echoOnce with each step bounded by timeout.
func echoWithin(addr, path, msg string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nc, br, _, err := ws.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		return err
	}
	defer nc.Close()
	// Frames the server sent right after its answer (a close from OnOpen)
	// may be in br already: read through it.
	var rw io.ReadWriter = nc
	if br != nil {
		rw = struct {
			io.Reader
			io.Writer
		}{br, nc}
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if err := wsutil.WriteClientText(nc, []byte(msg)); err != nil {
		return err
	}
	b, err := wsutil.ReadServerText(rw)
	if err != nil {
		return err
	}
	if string(b) != msg {
		return fmt.Errorf("echo %q, want %q", b, msg)
	}
	_ = wsutil.WriteClientMessage(rw, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	return nil
}

// defunctChildren lists the zombie children of pid.
func defunctChildren(t *testing.T, pid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err, "reading /proc (these tests need Linux)")
	var zombies []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces; it ends at the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			zombies = append(zombies, s[:i+1])
		}
	}
	return zombies
}

// processGone reports whether pid no longer runs (gone, or a zombie not
// yet reaped by its new parent).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

func echoConfig(t *testing.T, extra string) string {
	return fmt.Sprintf(`
plugins:
  - name: echo
    command: [%s]
%sroutes:
  - path: /echo
    entries: [echo/echo]
  - path: /broadcast
    entries: [echo/broadcast]
`, buildProgramWith(t, pkgEchoPlugin, raceEnabled), extra)
}

// TestStrandEchoOrderOutOfProcess: the order test's load (orderConns
// connections x orderMessages messages, mixed text and binary, the larger
// ones fragmented) through strand and the echo plugin in its own process:
// every echo intact and in order.
func TestStrandEchoOrderOutOfProcess(t *testing.T) {
	// The clients do not answer pings. The plugin's pings keep their
	// defaults: under this load its pongs wait behind its data, and the
	// data shows it alive.
	s := startStrand(t, echoConfig(t, "")+"limits: {ping_interval: -1s}\n")
	h := s.harness()
	corpus := newOrderCorpus()
	clients := make([]*wsClient, orderConns)
	for i := range clients {
		clients[i] = h.dial(t, "/echo")
	}
	start := time.Now()
	failures := orderExchange(t, clients, corpus, start.Add(3*orderDeadline)) // two processes and a socket, under -race
	require.Empty(t, failures, "%d of %d clients failed; first: %v", len(failures), orderConns, errors.Join(failures[:min(len(failures), 3)]...))
	t.Logf("%d conns x %d messages through the plugin socket in %v", orderConns, orderMessages, time.Since(start))
	for _, c := range clients {
		require.NoError(t, c.nc.SetDeadline(time.Time{}))
		c.closeHandshake(t, ws.StatusNormalClosure, "done")
	}
	require.Equal(t, "0", s.metric(t, `strand_plugin_restarts_total{plugin="echo"}`))
}

// TestStrandChatOutOfProcess: the chat plugin in its own process passes
// the chat protocol tests, and serves the page.
func TestStrandChatOutOfProcess(t *testing.T) {
	s := startStrand(t, fmt.Sprintf(`
plugins:
  - name: chat
    command: [%s, -rate, "1e6", -burst, "1000"]
routes:
  - path: GET /ws
    entries: [chat/chat]
  - path: GET /
    entries: [chat/page]
`, buildProgramWith(t, pkgChatPlugin, raceEnabled)))
	h := &chatHarness{addr: s.addr}
	t.Run("handshake", func(t *testing.T) { chatHandshakeValidation(t, h) })
	t.Run("history", func(t *testing.T) { chatHistoryAfterRejoin(t, h) })
	t.Run("bad input", func(t *testing.T) { chatBadInput(t, h) })
	st, body := s.get(t, "/")
	require.Equal(t, 200, st)
	require.Contains(t, body, "<!doctype html>")
	st, body = s.get(t, "/app.js")
	require.Equal(t, 200, st)
	require.Contains(t, body, "WebSocket")
	st, _ = s.get(t, "/readyz")
	require.Equal(t, 200, st)
}

// TestStrandPluginKilled: kill -9 of the plugin while clients stream: strand
// stays up, the plugin's connections get 1012, the plugin is started again
// and a new connection echoes; no zombie is left.
func TestStrandPluginKilled(t *testing.T) {
	s := startStrand(t, echoConfig(t, ""))
	h := s.harness()
	pid := s.pluginPID(t, "echo", 1)
	const streaming = 20
	clients := make([]*wsClient, streaming)
	for i := range clients {
		clients[i] = h.dial(t, "/echo")
		clients[i].echo(t, ws.OpText, []byte("before"))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { // keep sending until the close arrives
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c.send(ws.OpText, []byte("msg "+strconv.Itoa(i))) != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	// From the kill on, a prober opens new connections until one echoes
	// (each given 500 ms: one that hangs is logged, and the next tried).
	killed := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	backc := make(chan time.Duration, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			err := echoWithin(s.addr, "/echo", "after", 500*time.Millisecond)
			if err == nil {
				backc <- time.Since(killed)
				return
			}
			t.Logf("probe failed %v after the kill: %v", time.Since(killed), err)
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				// Refused (1012, or an error answer) is fine; silence is not.
				t.Errorf("a connection opened while the plugin was down got no answer within 500 ms: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		backc <- -1
	}()
	for i, c := range clients {
		code, sawClose, _, err := c.drainToClose(20 * time.Second)
		require.True(t, sawClose, "client %d: no close frame (%v)", i, err)
		require.Equal(t, ws.StatusCode(1012), code, "client %d", i)
	}
	close(stop)
	wg.Wait()

	back := <-backc
	require.Positive(t, back, "no new connection echoed within 20 s of the kill")
	t.Logf("plugin killed -> new connections served again in %v", back)
	newPID := s.pluginPID(t, "echo", 2)
	require.NotEqual(t, pid, newPID)
	require.True(t, processGone(pid))
	require.Empty(t, defunctChildren(t, s.cmd.Process.Pid), "zombies of strand")
	require.Equal(t, "1", s.metric(t, `strand_plugin_restarts_total{plugin="echo"}`))
	require.Equal(t, "1", s.metric(t, `strand_plugin_up{plugin="echo"}`))
	st, _ := s.get(t, "/healthz")
	require.Equal(t, 200, st)
	eventually(t, 10*time.Second, "ready", func() bool { st, _ := s.get(t, "/readyz"); return st == 200 })
}

// TestStrandPluginHangs: a plugin that stops answering (SIGSTOP) misses its
// pings, is killed and started again; /readyz is not ready meanwhile.
func TestStrandPluginHangs(t *testing.T) {
	s := startStrand(t, echoConfig(t, "    ping_interval: 100ms\n    ping_timeout: 500ms\n"))
	pid := s.pluginPID(t, "echo", 1)
	require.NoError(t, echoOnce(s.addr, "/echo", "before"))
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	s.waitLine(t, regexp.MustCompile(`plugin=echo.*ping`), 20*time.Second)
	newPID := s.pluginPID(t, "echo", 2)
	require.NotEqual(t, pid, newPID)
	eventually(t, 20*time.Second, "an echo from the restarted plugin", func() bool { return echoOnce(s.addr, "/echo", "after") == nil })
	eventually(t, 5*time.Second, "the stopped plugin killed", func() bool { return processGone(pid) })
	require.Empty(t, defunctChildren(t, s.cmd.Process.Pid))
}

// TestStrandPluginGarbage: a plugin that writes bytes that are no frames
// ends its session, is killed and started again; strand stays up, and the
// plugin is back once it behaves.
func TestStrandPluginGarbage(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "misbehave")
	s := startStrand(t, fmt.Sprintf(`
plugins:
  - name: echo
    command: [%s, -misbehave, %s, -mode, garbage]
routes:
  - path: /echo
    entries: [echo/echo]
`, buildProgramWith(t, pkgTestPlugin, raceEnabled), flag))
	pid := s.pluginPID(t, "echo", 1)
	require.NoError(t, echoOnce(s.addr, "/echo", "before"))
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL)) // its next start misbehaves
	s.waitLine(t, regexp.MustCompile(`testplugin: misbehaved \(garbage\)`), 20*time.Second)
	s.pluginPID(t, "echo", 3) // the garbage session ended and it was started again
	eventually(t, 10*time.Second, "/readyz 503 while the plugin is down", func() bool { st, _ := s.get(t, "/readyz"); return st == 503 })
	require.NoError(t, os.Remove(flag))
	// Within the next restart, or, if the breaker tripped meanwhile, its
	// 30 s retry.
	eventually(t, 45*time.Second, "an echo once it behaves", func() bool { return echoOnce(s.addr, "/echo", "after") == nil })
	s.waitLine(t, regexp.MustCompile(`plugin session ended.*plugin=echo|plugin=echo.*plugin session ended`), time.Second)
	st, _ := s.get(t, "/healthz")
	require.Equal(t, 200, st)
	require.Empty(t, defunctChildren(t, s.cmd.Process.Pid))
}

// TestStrandVersionMismatch: a plugin that speaks another ABI major is
// refused; strand does not start, and says both versions.
func TestStrandVersionMismatch(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "misbehave")
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	file := filepath.Join(t.TempDir(), "strand.yaml")
	require.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf(`
plugins:
  - name: echo
    command: [%s, -misbehave, %s, -mode, abi]
routes:
  - path: /echo
    entries: [echo/echo]
`, buildProgramWith(t, pkgTestPlugin, raceEnabled), flag)), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, buildProgramWith(t, pkgStrand, raceEnabled), "-config", file, "-addr", "127.0.0.1:0").CombinedOutput()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "strand must fail: %v\n%s", err, out)
	require.Equal(t, 1, ee.ExitCode(), "%s", out)
	require.Regexp(t, `(?s)level=ERROR.*strand: plugin failed.*2\.0.*1\.`, string(out), "the error names both versions")
	require.Contains(t, string(out), `plugin "echo" (line 3) did not start`)
}

// TestStrandPluginPrintsToStdout: a plugin may print on stdout: it works,
// and its lines are strand's log lines tagged with the plugin.
func TestStrandPluginPrintsToStdout(t *testing.T) {
	s := startStrand(t, fmt.Sprintf(`
plugins:
  - name: chatty
    command: [%s, -name, chatty, -stdout]
routes:
  - path: /echo
    entries: [chatty/echo]
`, buildProgramWith(t, pkgTestPlugin, raceEnabled)))
	for i := range 20 {
		require.NoError(t, echoOnce(s.addr, "/echo", "m"+strconv.Itoa(i)))
	}
	s.waitLine(t, regexp.MustCompile(`msg="testplugin: hello on stdout" plugin=chatty stream=stdout`), 10*time.Second)
	s.waitLine(t, regexp.MustCompile(`msg="testplugin: echo 2 bytes" plugin=chatty stream=stdout`), 10*time.Second)
}

// TestStrandKilledTakesPluginsDown: SIGKILL of strand kills its plugins
// (Pdeathsig): none is left running.
func TestStrandKilledTakesPluginsDown(t *testing.T) {
	s := startStrand(t, echoConfig(t, ""))
	pid := s.pluginPID(t, "echo", 1)
	require.NoError(t, echoOnce(s.addr, "/echo", "x"))
	s.kill()
	eventually(t, 10*time.Second, "the plugin gone with its host", func() bool { return processGone(pid) })
}

// TestStrandShutdownStopsPlugins: SIGTERM: strand says goodbye, the
// plugin exits, strand exits 0 (startChild's cleanup checks the status).
func TestStrandShutdownStopsPlugins(t *testing.T) {
	s := startStrand(t, echoConfig(t, ""))
	pid := s.pluginPID(t, "echo", 1)
	s.killed = true // the exit is expected
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	<-s.exited
	require.NoError(t, s.err, "%s", s.out.bytes())
	require.True(t, processGone(pid))
	require.Contains(t, string(s.out.bytes()), `msg="strand: plugin stopped" plugin=echo`)
	require.NotContains(t, string(s.out.bytes()), "did not exit within the grace period")
}

// TestStrandValidate: strand validate on a good file prints OK; on a bad
// one every problem with its line, and exits 1.
func TestStrandValidate(t *testing.T) {
	bin := buildProgram(t, pkgStrand)
	out, err := exec.Command(bin, "validate", "-config", "../examples/echo/strand.yaml").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "../examples/echo/strand.yaml: OK\n", string(out))
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("listen: 127.0.0.1:1\nplugins:\n  - name: e\n    commnd: [x]\nroutes:\n  - path: /x\n    entries: [e/x, f/y]\n"), 0o600))
	out, err = exec.Command(bin, "validate", "-config", bad).CombinedOutput()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	require.Equal(t, 1, ee.ExitCode())
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	var lines []string
	for sc.Scan() {
		lines = append(lines, strings.TrimPrefix(sc.Text(), bad))
	}
	assert.Equal(t, []string{
		`:3: plugin "e": give command (strand runs it) or socket (someone else does); no plugin of that name is compiled into this strand`,
		":4: field commnd not found in PluginConfig",
		`:6: route "/x": entry "f/y": no plugin "f" is configured`,
	}, lines)
}

// TestStrandSocketPlugin: a plugin someone else runs (listening on
// STRAND_PLUGIN_LISTEN) is dialled through socket:; when it goes away and
// comes back, strand dials it again.
func TestStrandSocketPlugin(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "echo.sock")
	plugin := buildProgramWith(t, pkgEchoPlugin, raceEnabled)
	t.Setenv("STRAND_PLUGIN_LISTEN", sock)
	p1 := startChild(t, plugin)
	eventually(t, 20*time.Second, "the plugin listening", func() bool { _, err := os.Stat(sock); return err == nil })
	s := startStrand(t, fmt.Sprintf(`
plugins:
  - name: echo
    socket: %s
routes:
  - path: /echo
    entries: [echo/echo]
`, sock))
	require.NoError(t, echoOnce(s.addr, "/echo", "first"))
	p1.kill()
	eventually(t, 10*time.Second, "not ready without the plugin", func() bool { st, _ := s.get(t, "/readyz"); return st == 503 })
	_ = os.Remove(sock) // a listener killed leaves its socket file
	startChild(t, plugin)
	eventually(t, 30*time.Second, "an echo through the plugin run again", func() bool { return echoWithin(s.addr, "/echo", "again", time.Second) == nil })
	require.NotEqual(t, "0", s.metric(t, `strand_plugin_restarts_total{plugin="echo"}`))
	require.NotContains(t, string(s.out.bytes()), "strand: plugin started", "nothing is started for a socket plugin")
}
