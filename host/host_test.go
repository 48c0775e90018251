package host

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/internal/testbuf"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
)

// upstreamServer answers plain requests with their path and echoes
// WebSocket messages, prefixed with "up:".
func upstreamServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			w.Header().Set("X-Upstream", "yes")
			_, _ = io.WriteString(w, "upstream "+r.URL.Path+" xff="+r.Header.Get("X-Forwarded-For"))
			return
		}
		nc, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			for {
				b, op, err := wsutil.ReadClientData(nc)
				if err != nil {
					return
				}
				if wsutil.WriteServerMessage(nc, op, append([]byte("up:"), b...)) != nil {
					return
				}
			}
		}()
	})}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() {
		_ = hs.Close()
		wg.Wait()
	})
	return "http://" + l.Addr().String()
}

// addrRe finds the listening line's address in a text or a JSON log.
var addrRe = regexp.MustCompile(`msg="strand: listening" addr=(\S+)|"msg":"strand: listening","addr":"([^"]+)"`)

// runStrand runs Run with config (and builtin) until the test ends, and
// returns the address it listens on and its log.
func runStrand(t *testing.T, config string, builtin ...*sdk.Plugin) (string, *testbuf.Buffer) {
	t.Helper()
	return runStrandArgs(t, config, nil, builtin...)
}

// runStrandArgs is runStrand with more command-line arguments.
func runStrandArgs(t *testing.T, config string, args []string, builtin ...*sdk.Plugin) (string, *testbuf.Buffer) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "strand.yaml")
	require.NoError(t, os.WriteFile(file, []byte(config), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testbuf.Buffer{}
	done := make(chan error, 1)
	args = append([]string{"-config", file, "-addr", "127.0.0.1:0"}, args...)
	go func() {
		done <- Run(ctx, args, io.Discard, logs, builtin...)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, logs.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("Run did not return after its context ended:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := addrRe.FindStringSubmatch(logs.String()); m != nil {
			return m[1] + m[2], logs
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before listening:\n%s", err, logs.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "not listening:\n%s", logs.String())
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func wsRoundTrip(t *testing.T, url, msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, _, _, err := ws.Dial(ctx, url)
	require.NoError(t, err, url)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, wsutil.WriteClientText(nc, []byte(msg)))
	b, err := wsutil.ReadServerText(nc)
	require.NoError(t, err)
	return string(b)
}

// gate is a built-in plugin whose entry "pass" lets everything through,
// and whose entry "stamp" also has a response filter (so the route's
// answers go through the response writer that runs it).
func gate() *sdk.Plugin {
	p := sdk.NewPlugin("gate")
	p.Entry("pass").RequestFilter(func(ctx *sdk.RequestContext) { ctx.Next() })
	p.Entry("stamp").RequestFilter(func(ctx *sdk.RequestContext) { ctx.Next() }).
		ResponseFilter(func(ctx *sdk.ResponseContext) {
			ctx.SetHeader("X-Stamp", "1")
			ctx.Next()
		})
	return p
}

// TestRunBuiltinsAndUpstream: built-in plugins on routes, a 404 terminal,
// an upstream for plain requests and for WebSocket upgrades no entry takes
// (with and without a response filter on the route), health, readiness and
// the plugin metrics.
func TestRunBuiltinsAndUpstream(t *testing.T) {
	up := upstreamServer(t)
	addr, logs := runStrand(t, `
debug_addr: 127.0.0.1:0
plugins:
  - name: echo
  - name: gate
    config: {ignored: true}
routes:
  - path: /echo
    entries: [echo/echo]
  - path: /closed
    entries: [gate/pass]
  - path: /up/
    entries: [gate/pass]
    upstream: `+up+`
  - path: /stamped/
    entries: [gate/stamp]
    upstream: `+up+`
`, echoplugin.New(), gate())
	base := "http://" + addr
	require.Equal(t, "hi", wsRoundTrip(t, "ws://"+addr+"/echo", "hi"))

	st, body, _ := get(t, base+"/closed")
	require.Equal(t, 404, st, "no upstream: 404 after the entries pass")
	require.Contains(t, body, "not found")

	st, body, h := get(t, base+"/up/x")
	require.Equal(t, 200, st)
	require.Equal(t, "yes", h.Get("X-Upstream"))
	require.Equal(t, "upstream /up/x xff=127.0.0.1", body)
	st, _, h = get(t, base+"/stamped/y")
	require.Equal(t, 200, st)
	require.Equal(t, "1", h.Get("X-Stamp"))

	require.Equal(t, "up:hello", wsRoundTrip(t, "ws://"+addr+"/up/ws", "hello"), "a WebSocket upgrade no entry takes goes upstream")
	require.Equal(t, "up:again", wsRoundTrip(t, "ws://"+addr+"/stamped/ws", "again"), "also through a route with a response filter")

	st, _, _ = get(t, base+"/healthz")
	require.Equal(t, 200, st)
	st, body, _ = get(t, base+"/readyz")
	require.Equal(t, 200, st, body)
	st, body, _ = get(t, base+"/metrics")
	require.Equal(t, 200, st)
	require.Contains(t, body, `strand_plugin_up{plugin="echo"} 1`)
	require.Contains(t, body, `strand_plugin_restarts_total{plugin="gate"} 0`)
	require.Contains(t, body, `strand_plugin_failed{plugin="gate"} 0`)
	require.NotContains(t, logs.String(), "level=ERROR")

	m := regexp.MustCompile(`debug_addr=(\S+)`).FindStringSubmatch(logs.String())
	require.NotNil(t, m, "the listening line names the debug address")
	st, body, _ = get(t, "http://"+m[1]+"/debug/vars")
	require.Equal(t, 200, st)
	require.Contains(t, body, `"plugins": {"echo":{"Builtin":true,"PID":0,"Restarts":0,"Up":true,"Failed":false}`)
	requirePprofOnlyOnDebug(t, addr, m[1])
}

// requirePprofOnlyOnDebug checks that /debug/pprof/ answers 404 on the
// public address and is served on the debug one.
func requirePprofOnlyOnDebug(t *testing.T, public, debug string) {
	t.Helper()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/vars"} {
		st, _, _ := get(t, "http://"+public+path)
		require.Equal(t, 404, st, "%s on the public port", path)
	}
	st, body, _ := get(t, "http://"+debug+"/debug/pprof/")
	require.Equal(t, 200, st)
	require.Contains(t, body, "goroutine")
	st, body, _ = get(t, "http://"+debug+"/debug/pprof/goroutine?debug=1")
	require.Equal(t, 200, st)
	require.Contains(t, body, "goroutine profile")
}

// TestRunMissingEntry: an entry a plugin does not have fails startup with
// the route's line and the plugin's entries.
func TestRunMissingEntry(t *testing.T) {
	file := filepath.Join(t.TempDir(), "strand.yaml")
	require.NoError(t, os.WriteFile(file, []byte("plugins:\n  - name: echo\nroutes:\n  - path: /x\n    entries: [echo/nope]\n"), 0o600))
	var stderr bytes.Buffer
	err := Run(context.Background(), []string{"-config", file, "-addr", "127.0.0.1:0"}, io.Discard, &stderr, echoplugin.New())
	require.ErrorContains(t, err, `route "/x" (line 4): plugin "echo" has no entry "nope" (its entries: echo, broadcast)`)
	require.Contains(t, stderr.String(), "has no entry")
}

// TestValidateCommand: validate prints OK or every problem with its line,
// and fails on a problem; a bad command line is a usage error.
func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(good, []byte("plugins: [{name: e, command: [x]}]\nroutes: [{path: /, entries: [e/e]}]\n"), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("plugins: [{name: e, command: [x]}]\nroutes: [{path: /, entries: [f/e]}]\nextra: 1\n"), 0o600))
	var out, errb bytes.Buffer
	require.NoError(t, Run(context.Background(), []string{"validate", "-config", good}, &out, &errb))
	require.Equal(t, good+": OK\n", out.String())
	out.Reset()
	err := Run(context.Background(), []string{"validate", "-config", bad}, &out, &errb)
	require.Error(t, err)
	require.Empty(t, out.String())
	require.Equal(t, bad+`:2: route "/": entry "f/e": no plugin "f" is configured`+"\n"+bad+":3: field extra not found in Config\n", errb.String())
	err = Run(context.Background(), []string{"validate", "-config", good, "-addr", "x"}, &out, io.Discard)
	require.ErrorIs(t, err, errUsage)
	err = Run(context.Background(), []string{"-config", good, "stray"}, &out, io.Discard)
	require.ErrorIs(t, err, errUsage)
	require.False(t, strings.Contains(out.String(), "OK\nOK"))
}

// TestRunHeaderCacheMetrics: three requests with the same headers through
// an out-of-process plugin's request filter (a socket: plugin served in
// this process) are one header cache miss and two hits, in
// strand_header_cache_lookups_total with the plugin's name; a built-in
// plugin has no series (it encodes no headers).
func TestRunHeaderCacheMetrics(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	p := sdk.NewPlugin("remote")
	p.Entry("pass").RequestFilter(func(ctx *sdk.RequestContext) { ctx.Next() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Listen(ctx, p, sock) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 10*time.Second, time.Millisecond, "plugin socket")

	addr, _ := runStrand(t, `
plugins:
  - name: remote
    socket: `+sock+`
  - name: gate
routes:
  - path: /r
    entries: [remote/pass]
`, gate())
	base := "http://" + addr
	for range 3 {
		st, _, _ := get(t, base+"/r")
		require.Equal(t, 404, st, "the filter passes; no upstream")
	}
	st, body, _ := get(t, base+"/metrics")
	require.Equal(t, 200, st)
	require.Contains(t, body, `strand_header_cache_lookups_total{plugin="remote",result="miss"} 1`)
	require.Contains(t, body, `strand_header_cache_lookups_total{plugin="remote",result="hit"} 2`)
	require.NotContains(t, body, `strand_header_cache_lookups_total{plugin="gate"`)
}

// TestRunFlagsOverrideConfig: -debug-addr, -log-format and -log-level
// override debug_addr:, log.format and log.level, as -addr overrides
// listen:; pprof is then served on the debug listener only.
func TestRunFlagsOverrideConfig(t *testing.T) {
	addr, logs := runStrandArgs(t, `
listen: 127.0.0.1:1
log: {format: text, level: warn}
plugins:
  - name: echo
routes:
  - path: /echo
    entries: [echo/echo]
`, []string{"-debug-addr", "127.0.0.1:0", "-log-format", "json", "-log-level", "debug"}, echoplugin.New())
	require.Equal(t, "hi", wsRoundTrip(t, "ws://"+addr+"/echo", "hi"))
	m := regexp.MustCompile(`"debug_addr":"([^"]+)"`).FindStringSubmatch(logs.String())
	require.NotNil(t, m, "-debug-addr: the listening line names the debug address:\n%s", logs.String())
	requirePprofOnlyOnDebug(t, addr, m[1])
	// JSON at debug level: the connection's open line is written, as JSON.
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), `"level":"DEBUG","msg":"strand: connection open"`)
	}, 10*time.Second, time.Millisecond, "-log-level debug -log-format json:\n%s", logs.String())
	require.NotContains(t, logs.String(), `level=`, "-log-format json: no text line")
}

// TestRunFlagErrors: a bad -log-format or -log-level, or a -debug-addr
// that is the public address, is a usage error that names the problem.
func TestRunFlagErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "strand.yaml")
	require.NoError(t, os.WriteFile(file, []byte("listen: 127.0.0.1:8089\nplugins:\n  - name: echo\nroutes:\n  - path: /x\n    entries: [echo/echo]\n"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-log-format", "xml"}, `unknown -log-format "xml"`},
		{[]string{"-log-level", "verbose"}, `unknown -log-level "verbose"`},
		{[]string{"-debug-addr", "127.0.0.1:8089"}, "the debug listener is never the public one"},
		{[]string{"-addr", "127.0.0.1:8090", "-debug-addr", "127.0.0.1:8090"}, "the debug listener is never the public one"},
	} {
		var stderr bytes.Buffer
		err := Run(context.Background(), append([]string{"-config", file}, tc.args...), io.Discard, &stderr, echoplugin.New())
		require.ErrorIs(t, err, errUsage, "%v", tc.args)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
		require.Contains(t, stderr.String(), tc.want, "%v", tc.args)
	}
}
