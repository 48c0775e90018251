package host

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const full = `listen: 127.0.0.1:9000
tls: {cert: c.pem, key: k.pem}
debug_addr: 127.0.0.1:6060
log: {format: json, level: debug}
metrics: false
reader: goroutine
shutdown_grace: 2s
socket_dir: /tmp
limits:
  max_message_bytes: 65536
  max_conns: 10
  ping_interval: 15s
  allowed_origins: ["https://*.example.com"]
plugins:
  - name: echo
    command: [./bin/echo-plugin, -token, s3cret]
    env: {GOMAXPROCS: "2"}
    dir: /tmp
    config: {greeting: hi, nested: {n: 1, list: [a, b]}}
    fail_open: true
    ping_timeout: 500ms
  - name: auth
    socket: /run/auth.sock
  - name: builtin
routes:
  - path: /echo
    entries: [echo/echo]
  - path: /
    entries: [auth/check, echo/echo]
    upstream: http://127.0.0.1:9001
`

func TestParseFull(t *testing.T) {
	c, err := Parse("f.yaml", []byte(full), []string{"builtin"})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", c.Listen)
	require.Equal(t, &TLSConfig{Cert: "c.pem", Key: "k.pem"}, c.TLS)
	require.False(t, *c.Metrics)
	require.Equal(t, 2*time.Second, c.ShutdownGrace.D())
	require.Equal(t, int64(65536), c.Limits.MaxMessageBytes)
	require.Equal(t, 15*time.Second, c.Limits.PingInterval.D())
	require.Len(t, c.Plugins, 3)
	e := c.Plugins[0]
	require.Equal(t, []string{"./bin/echo-plugin", "-token", "s3cret"}, e.Command)
	require.Equal(t, map[string]string{"GOMAXPROCS": "2"}, e.Env)
	require.True(t, e.FailOpen)
	require.Equal(t, 500*time.Millisecond, e.PingTimeout.D())
	require.JSONEq(t, `{"greeting":"hi","nested":{"n":1,"list":["a","b"]}}`, string(e.Settings()))
	require.Nil(t, c.Plugins[1].Settings())
	require.Equal(t, 15, e.line)
	require.Equal(t, 28, c.Routes[1].line)
	require.Equal(t, "http://127.0.0.1:9001", c.Routes[1].Upstream)

	wc := wsConfig(c, nil)
	require.Equal(t, int64(65536), wc.MaxMessageBytes)
	require.True(t, wc.Plugins["echo"].FailOpen)
	require.False(t, wc.Plugins["auth"].FailOpen)
}

// TestParseProblems: each mistake is reported with its line; every problem
// of a file is reported at once.
func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []Problem
	}{
		{"unknown top key", "listen: x:1\nlsiten: y\nplugins: [{name: a, command: [x]}]\nroutes: [{path: /, entries: [a/b]}]\n",
			[]Problem{{2, "field lsiten not found in Config"}}},
		{"unknown plugin key", "plugins:\n  - name: a\n    comand: [x]\n    command: [x]\nroutes: [{path: /, entries: [a/b]}]\n",
			[]Problem{{3, "field comand not found in PluginConfig"}}},
		{"wrong type", "plugins:\n  - name: a\n    command: x\nroutes: [{path: /, entries: [a/b]}]\n",
			[]Problem{{2, `plugin "a": give command (strand runs it) or socket (someone else does); no plugin of that name is compiled into this strand`},
				{3, "cannot unmarshal !!str `x` into []string"}}},
		{"bad duration", "shutdown_grace: soon\nplugins: [{name: a, command: [x]}]\nroutes: [{path: /, entries: [a/b]}]\n",
			nil}, // checked below: the duration's error names its line
		{"both command and socket", "plugins:\n  - name: a\n    command: [x]\n    socket: /s\nroutes:\n  - path: /\n    entries: [a/b]\n",
			[]Problem{{2, `plugin "a": command and socket are exclusive: strand runs it, or someone else does`}}},
		{"duplicates", "plugins:\n  - {name: a, command: [x]}\n  - {name: a, command: [y]}\nroutes:\n  - {path: /x, entries: [a/b]}\n  - {path: /x, entries: [a/b]}\n",
			[]Problem{{3, `plugin "a" is configured twice (first at line 2)`}, {6, `route "/x" is configured twice (first at line 5)`}}},
		{"entries", "plugins: [{name: a, command: [x]}]\nroutes:\n  - path: /x\n    entries: [b/e, a, a/]\n",
			[]Problem{{3, `route "/x": entry "b/e": no plugin "b" is configured`}, {3, `route "/x": entry "a": want plugin/entry`}, {3, `route "/x": entry "a/": want plugin/entry`}}},
		{"upstream", "plugins: [{name: a, command: [x]}]\nroutes:\n  - {path: /x, upstream: \"ftp://h\"}\n  - {path: /y, upstream: \"http://\"}\n  - {path: /z}\n",
			[]Problem{{3, `route "/x": upstream "ftp://h": want an http:// or https:// URL`}, {4, `route "/y": upstream "http://": want an http:// or https:// URL`}, {5, `route "/z": no entries and no upstream`}}},
		{"reserved and relative paths", "plugins: [{name: a, command: [x]}]\nroutes:\n  - {path: GET /readyz, entries: [a/b]}\n  - {path: x, entries: [a/b]}\n",
			[]Problem{{3, `route "GET /readyz": /readyz is served by strand itself`}, {4, `route "x": the path must start with / (optionally after a method: "GET /ws")`}}},
		{"nothing", "listen: 127.0.0.1:1\n", []Problem{{0, "no plugins"}, {0, "no routes"}}},
		{"not a mapping", "- a\n- b\n", []Problem{{1, "the configuration must be a mapping of keys such as listen, plugins and routes"}}},
		{"log and reader", "log: {format: xml, level: loud}\nreader: epoll\nplugins: [{name: a, command: [x]}]\nroutes: [{path: /, entries: [a/b]}]\n",
			[]Problem{{1, `log.format "xml": want text or json`}, {1, `log.level "loud": want debug, info, warn or error`}, {2, `reader "epoll": want auto, goroutine or poll`}}},
		{"tls half", "tls: {cert: c}\nplugins: [{name: a, command: [x]}]\nroutes: [{path: /, entries: [a/b]}]\n",
			[]Problem{{1, "tls needs both cert and key"}}},
		{"negative", "shutdown_grace: -1s\nlimits: {read_timeout: -1s, ping_interval: -1s}\nplugins:\n  - {name: a, command: [x], ping_timeout: -2s}\nroutes: [{path: /, entries: [a/b]}]\n",
			[]Problem{{1, "shutdown_grace: negative"}, {2, "limits: negative value (only ping_interval and idle_timeout may be negative: off)"}, {4, `plugin "a": negative max_frame_bytes or timer`}}},
		{"env on socket", "plugins:\n  - {name: a, socket: /s, env: {A: b}}\nroutes: [{path: /, entries: [a/b]}]\n",
			[]Problem{{2, `plugin "a": env and dir need command, not socket`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml), nil)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "%v", err)
			if tc.want == nil {
				require.Contains(t, err.Error(), "f.yaml:1:")
				require.Contains(t, err.Error(), "is not a duration")
				return
			}
			require.Equal(t, tc.want, ce.Problems)
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse("f.yaml", []byte("listen: a:1\nlog:\n  format: text\n level: info\n"), nil)
	require.ErrorContains(t, err, "f.yaml:3:")
	_, err = Parse("f.yaml", []byte("listen: a:1\n---\nlisten: b:2\n"), nil)
	require.ErrorContains(t, err, "more than one YAML document")
	_, err = Parse("f.yaml", []byte(""), nil)
	require.ErrorContains(t, err, "empty configuration")
}

// TestExamplesValidate: the example configurations parse.
func TestExamplesValidate(t *testing.T) {
	for _, f := range []string{"../examples/echo/strand.yaml", "../examples/chat/strand.yaml"} {
		_, err := LoadConfig(f, nil)
		require.NoError(t, err, f)
	}
	_, err := LoadConfig("no-such-file.yaml", nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// FuzzConfig: a configuration is untrusted input: Parse never panics, and
// returns either a configuration or a *ConfigError.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("plugins: [{name: a, command: [x]}]\nroutes: [{path: /, entries: [a/b]}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("plugins: [{name: a, config: {1: 2}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data, []string{"builtin"})
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("not a ConfigError: %T %v", err, err)
			}
			return
		}
		if c == nil || len(c.Plugins) == 0 || len(c.Routes) == 0 {
			t.Fatalf("accepted without plugins or routes: %+v", c)
		}
	})
}
