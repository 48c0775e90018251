package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example programs as an operator runs them: health and readiness on
// the public port, profiling only on the opt-in debug listener, TLS from
// certificate files, log flags.

// getStatus answers a GET of url with client: the status and the body.
func getStatus(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// checkPublicAndDebug checks a program's two listeners: health and
// readiness on the public one (scheme web), pprof and expvar on the debug
// one only.
func checkPublicAndDebug(t *testing.T, client *http.Client, web, public, debug string) {
	t.Helper()
	for path, want := range map[string]int{
		"/healthz":               http.StatusOK,
		"/readyz":                http.StatusOK,
		"/debug/pprof/":          http.StatusNotFound,
		"/debug/pprof/goroutine": http.StatusNotFound,
		"/debug/vars":            http.StatusNotFound,
	} {
		status, _ := getStatus(t, client, web+"://"+public+path)
		assert.Equal(t, want, status, "public %s", path)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/vars"} {
		status, _ := getStatus(t, client, "http://"+debug+path)
		assert.Equal(t, http.StatusOK, status, "debug %s", path)
	}
}

// TestEchoProgramListeners: examples/echo serves /healthz and /readyz on
// its public port, and pprof and expvar only on its debug port.
func TestEchoProgramListeners(t *testing.T) {
	e := startEchoProgram(t)
	checkPublicAndDebug(t, e.client, "http", e.addr, e.debug)
}

// TestEchoProgramTLS: examples/echo with -tls-cert and -tls-key serves wss
// (ALPN http/1.1) and https; in the poll reader mode its TLS connections
// are read by goroutines, which its Stats show.
func TestEchoProgramTLS(t *testing.T) {
	cert := newTestCert(t, "echo")
	e := startEchoProgramWith(t, cert)
	checkPublicAndDebug(t, e.client, "https", e.addr, e.debug)
	c := e.dial(t, "/echo")
	c.echo(t, ws.OpText, []byte("over TLS"))
	c.echo(t, ws.OpBinary, bytes.Repeat([]byte{7}, 64<<10))
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	e.waitOpen(t, 0)
	st := e.vars(t, false).Strand
	require.EqualValues(t, 1, st.Accepted)
	require.EqualValues(t, 1, st.TLS)
	require.Zero(t, st.Polled)
}

// TestEchoProgramJSONLogs: with -log-format json -log-level debug, the
// program's line about a connection is JSON with its conn, route and
// plugin.
func TestEchoProgramJSONLogs(t *testing.T) {
	bin := buildProgram(t, "github.com/strandws/strand/examples/echo")
	p := startChild(t, bin, "-addr", "127.0.0.1:0", "-reader", readerMode.String(), "-log-format", "json", "-log-level", "debug")
	m := p.waitLine(t, regexp.MustCompile(`"msg":"echo: listening".*"addr":"([^"]+)"`), 2*time.Minute)
	h := &harness{addr: m[1]}
	c := h.dial(t, "/echo")
	c.echo(t, ws.OpText, []byte("logged"))
	c.closeHandshake(t, ws.StatusNormalClosure, "")
	line := p.waitLine(t, regexp.MustCompile(`^\{.*"msg":"strand: connection closed".*\}$`), ioTimeout)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(line[0]), &rec), line[0])
	require.Equal(t, "DEBUG", rec["level"])
	require.Equal(t, "/echo", rec["route"])
	require.Equal(t, "echo", rec["plugin"])
	require.NotZero(t, rec["conn"])
	require.Equal(t, "peer", rec["reason"])
}

// TestChatProgram: examples/chat with TLS and a debug listener: the page
// and readiness over https, pprof and expvar only on the debug port, and a
// chat over wss.
func TestChatProgram(t *testing.T) {
	cert := newTestCert(t, "chat")
	bin := buildProgram(t, "github.com/strandws/strand/examples/chat")
	p := startChild(t, bin, "-addr", "127.0.0.1:0", "-debug-addr", "127.0.0.1:0",
		"-tls-cert", cert.certFile, "-tls-key", cert.keyFile)
	m := p.waitLine(t, regexp.MustCompile(`chat: listening.* addr=(\S+).* debug_addr=(\S+)`), 2*time.Minute)
	tr := &http.Transport{TLSClientConfig: cert.clientConfig(), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	checkPublicAndDebug(t, client, "https", m[1], m[2])
	status, body := getStatus(t, client, "https://"+m[1]+"/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `<form id="join-form"`)

	h := &harness{addr: m[1], clientTLS: cert.clientConfig()}
	c := h.dial(t, "/ws?room=tls&name=ada")
	f, err := c.readFrame(ioTimeout)
	require.NoError(t, err)
	require.Contains(t, string(f.payload), `"type":"history"`)
	require.NoError(t, c.send(ws.OpText, []byte(`{"type":"message","text":"hello over wss"}`)))
	for {
		f, err := c.readFrame(ioTimeout)
		require.NoError(t, err)
		if bytes.Contains(f.payload, []byte(`"type":"message"`)) {
			require.Contains(t, string(f.payload), "hello over wss")
			break
		}
	}
	c.closeHandshake(t, ws.StatusNormalClosure, "")
}

// TestExampleBadFlags: a bad flag value is a clear error and exit status
// 2, before anything listens.
func TestExampleBadFlags(t *testing.T) {
	for _, pkg := range []string{"echo", "chat"} {
		bin := buildProgram(t, "github.com/strandws/strand/examples/"+pkg)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"-log-level", "verbose"}, `unknown -log-level "verbose": want debug, info, warn or error`},
			{[]string{"-log-format", "xml"}, `unknown -log-format "xml": want text or json`},
			{[]string{"-tls-cert", "cert.pem"}, "-tls-cert and -tls-key go together"},
			{[]string{"-addr", "127.0.0.1:9", "-debug-addr", "127.0.0.1:9"}, "-debug-addr must differ from -addr: the debug listener is never the public one"},
			{[]string{"-reader", "epoll"}, `unknown -reader "epoll": want auto, goroutine or poll`},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			// Each pass of the package's tests gives the program its reader
			// mode; the last -reader on the command line wins.
			args := append([]string{"-reader", readerMode.String()}, tc.args...)
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			cancel()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "%s %q: %v\n%s", pkg, tc.args, err, out)
			require.Equal(t, 2, ee.ExitCode(), "%s %q:\n%s", pkg, tc.args, out)
			first, _, _ := bufio.NewReader(bytes.NewReader(out)).ReadLine()
			require.Equal(t, pkg+": "+tc.want, string(first), "%s %q", pkg, tc.args)
		}
	}
}
