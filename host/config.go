package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a strand.yaml file (docs/strand.md describes every key).
type Config struct {
	Listen        string         `yaml:"listen"`
	TLS           *TLSConfig     `yaml:"tls"`
	DebugAddr     string         `yaml:"debug_addr"`
	Log           LogConfig      `yaml:"log"`
	Metrics       *bool          `yaml:"metrics"`
	Reader        string         `yaml:"reader"`
	ShutdownGrace Duration       `yaml:"shutdown_grace"`
	SocketDir     string         `yaml:"socket_dir"`
	Limits        Limits         `yaml:"limits"`
	Plugins       []PluginConfig `yaml:"plugins"`
	Routes        []RouteConfig  `yaml:"routes"`
}

// TLSConfig names the PEM files of wss:// and https://.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// LogConfig is the log's format and level.
type LogConfig struct {
	Format string `yaml:"format"` // text (default) or json
	Level  string `yaml:"level"`  // debug, info (default), warn or error
}

// Limits are the wsframework.Config limits a strand.yaml may set; zero
// keeps wsframework's default.
type Limits struct {
	MaxMessageBytes     int64    `yaml:"max_message_bytes"`
	MaxConns            int      `yaml:"max_conns"`
	MaxConnsPerIP       int      `yaml:"max_conns_per_ip"`
	MaxHandshakesPerIP  int      `yaml:"max_handshakes_per_ip"`
	MaxRequestBodyBytes int64    `yaml:"max_request_body_bytes"`
	MessageRate         float64  `yaml:"message_rate"`
	MessageBurst        int      `yaml:"message_burst"`
	HandshakeTimeout    Duration `yaml:"handshake_timeout"`
	ReadTimeout         Duration `yaml:"read_timeout"`
	WriteTimeout        Duration `yaml:"write_timeout"`
	PingInterval        Duration `yaml:"ping_interval"`
	IdleTimeout         Duration `yaml:"idle_timeout"`
	CloseTimeout        Duration `yaml:"close_timeout"`
	PhaseTimeout        Duration `yaml:"phase_timeout"`
	AllowedOrigins      []string `yaml:"allowed_origins"`
	TrustedProxies      []string `yaml:"trusted_proxies"`
}

// PluginConfig is one item of plugins:. With command, strand starts and
// supervises the plugin; with socket, it dials a plugin someone else
// runs; with neither, the name is a plugin compiled into this strand.
type PluginConfig struct {
	Name             string            `yaml:"name"`
	Command          []string          `yaml:"command"`
	Socket           string            `yaml:"socket"`
	Env              map[string]string `yaml:"env"`
	Dir              string            `yaml:"dir"`
	Config           map[string]any    `yaml:"config"`
	FailOpen         bool              `yaml:"fail_open"`
	HandshakeTimeout Duration          `yaml:"handshake_timeout"`
	PingInterval     Duration          `yaml:"ping_interval"`
	PingTimeout      Duration          `yaml:"ping_timeout"`
	CallTimeout      Duration          `yaml:"call_timeout"`
	MaxFrameBytes    int               `yaml:"max_frame_bytes"`

	settings []byte // Config as JSON, made by Parse
	line     int
}

// Settings returns the plugin's config: map as JSON (nil when absent).
func (p PluginConfig) Settings() []byte { return p.settings }

// RouteConfig is one item of routes:.
type RouteConfig struct {
	Path     string   `yaml:"path"`
	Entries  []string `yaml:"entries"`
	Upstream string   `yaml:"upstream"`

	line int
}

// Duration is a YAML duration such as 500ms or 2s.
type Duration time.Duration

// UnmarshalYAML reads a time.ParseDuration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 500ms or 2s", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 500ms or 2s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Problem is one mistake in a configuration, at a line (0 when the file
// as a whole).
type Problem struct {
	Line int
	Msg  string
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct {
	File     string
	Problems []Problem
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": " + p.Msg)
	}
	return b.String()
}

// maxConfigBytes bounds a configuration file.
const maxConfigBytes = 1 << 20

// LoadConfig reads and parses the file at path (see Parse).
func LoadConfig(path string, builtin []string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	return Parse(path, data, builtin)
}

// Parse parses and checks a strand.yaml: unknown keys, values of the wrong
// type, and every check that needs no plugin running (names, entries,
// routes, URLs, files) are problems of a *ConfigError, each with its
// line. builtin names the plugins compiled into this strand.
func Parse(file string, data []byte, builtin []string) (*Config, error) {
	fail := func(line int, msg string) (*Config, error) {
		return nil, &ConfigError{File: file, Problems: []Problem{{line, msg}}}
	}
	if len(data) > maxConfigBytes {
		return fail(0, fmt.Sprintf("larger than %d bytes", maxConfigBytes))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	if len(root.Content) == 0 {
		return fail(0, "empty configuration")
	}
	if root.Content[0].Kind != yaml.MappingNode {
		return fail(root.Content[0].Line, "the configuration must be a mapping of keys such as listen, plugins and routes")
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var probs []Problem
	if err := dec.Decode(&c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, yamlError(file, err)
		}
		// Unknown keys and values of the wrong type: the rest was
		// decoded, so the other checks run too.
		probs = yamlError(file, err).(*ConfigError).Problems
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fail(0, "more than one YAML document")
	}
	top := root.Content[0]
	for i := range c.Plugins {
		c.Plugins[i].line = itemLine(top, "plugins", i)
	}
	for i := range c.Routes {
		c.Routes[i].line = itemLine(top, "routes", i)
	}
	probs = append(probs, c.check(top, builtin)...)
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &ConfigError{File: file, Problems: probs}
	}
	return &c, nil
}

// yamlError turns yaml's errors ("yaml: line 3: ...", or a TypeError's
// list of "line N: ...") into problems with lines.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	ce := &ConfigError{File: file}
	for _, m := range msgs {
		line := 0
		if rest, ok := strings.CutPrefix(m, "line "); ok {
			if n, tail, ok := strings.Cut(rest, ": "); ok {
				if v, err := strconv.Atoi(n); err == nil {
					line, m = v, tail
				}
			}
		}
		m = strings.ReplaceAll(m, "in type host.", "in ")
		ce.Problems = append(ce.Problems, Problem{line, m})
	}
	return ce
}

// itemLine is the line of item i of the sequence under key in m.
func itemLine(m *yaml.Node, key string, i int) int {
	v := valueOf(m, key)
	if v == nil || v.Kind != yaml.SequenceNode || i >= len(v.Content) {
		return 0
	}
	return v.Content[i].Line
}

// valueOf is the value node of key in the mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// keyLine is the line of key in the mapping m, or def.
func keyLine(m *yaml.Node, key string, def int) int {
	if m == nil || m.Kind != yaml.MappingNode {
		return def
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return def
}

// reservedPaths are served by strand itself.
var reservedPaths = []string{"/healthz", "/readyz", "/metrics"}

// check finds the problems that need no plugin running.
func (c *Config) check(top *yaml.Node, builtin []string) []Problem {
	var probs []Problem
	add := func(line int, format string, args ...any) {
		probs = append(probs, Problem{line, fmt.Sprintf(format, args...)})
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add(keyLine(top, "listen", 0), "listen: %q is not host:port", c.Listen)
		}
	}
	if c.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			add(keyLine(top, "debug_addr", 0), "debug_addr: %q is not host:port", c.DebugAddr)
		} else if c.DebugAddr == c.Listen {
			add(keyLine(top, "debug_addr", 0), "debug_addr must differ from listen: the debug listener is never the public one")
		}
	}
	if c.TLS != nil && (c.TLS.Cert == "" || c.TLS.Key == "") {
		add(keyLine(top, "tls", 0), "tls needs both cert and key")
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		add(keyLine(valueOf(top, "log"), "format", 0), "log.format %q: want text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		add(keyLine(valueOf(top, "log"), "level", 0), "log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Reader {
	case "", "auto", "goroutine", "poll":
	default:
		add(keyLine(top, "reader", 0), "reader %q: want auto, goroutine or poll", c.Reader)
	}
	if l := c.Limits; l.MaxMessageBytes < 0 || l.MaxConns < 0 || l.MaxConnsPerIP < 0 || l.MaxHandshakesPerIP < 0 ||
		l.MaxRequestBodyBytes < 0 || l.MessageRate < 0 || l.MessageBurst < 0 ||
		l.HandshakeTimeout < 0 || l.ReadTimeout < 0 || l.WriteTimeout < 0 || l.CloseTimeout < 0 || l.PhaseTimeout < 0 {
		add(keyLine(top, "limits", 0), "limits: negative value (only ping_interval and idle_timeout may be negative: off)")
	}
	if c.ShutdownGrace < 0 {
		add(keyLine(top, "shutdown_grace", 0), "shutdown_grace: negative")
	}
	if len(c.Plugins) == 0 {
		add(keyLine(top, "plugins", 0), "no plugins")
	}
	isBuiltin := make(map[string]bool, len(builtin))
	for _, b := range builtin {
		isBuiltin[b] = true
	}
	names := make(map[string]int)
	for i := range c.Plugins {
		p := &c.Plugins[i]
		switch {
		case p.Name == "":
			add(p.line, "plugin without a name")
			continue
		case strings.ContainsAny(p.Name, "/ \t"):
			add(p.line, "plugin name %q: no slash or space", p.Name)
		}
		if first, dup := names[p.Name]; dup {
			add(p.line, "plugin %q is configured twice (first at line %d)", p.Name, first)
		} else {
			names[p.Name] = p.line
		}
		switch {
		case len(p.Command) > 0 && p.Socket != "":
			add(p.line, "plugin %q: command and socket are exclusive: strand runs it, or someone else does", p.Name)
		case len(p.Command) == 0 && p.Socket == "":
			if !isBuiltin[p.Name] {
				add(p.line, "plugin %q: give command (strand runs it) or socket (someone else does); no plugin of that name is compiled into this strand", p.Name)
			}
			if p.Env != nil || p.Dir != "" {
				add(p.line, "plugin %q: env and dir need command", p.Name)
			}
		case p.Socket != "" && (p.Env != nil || p.Dir != ""):
			add(p.line, "plugin %q: env and dir need command, not socket", p.Name)
		}
		if len(p.Command) > 0 && p.Command[0] == "" {
			add(p.line, "plugin %q: empty command path", p.Name)
		}
		for k := range p.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				add(p.line, "plugin %q: env name %q", p.Name, k)
			}
		}
		if p.MaxFrameBytes < 0 || p.HandshakeTimeout < 0 || p.PingInterval < 0 || p.PingTimeout < 0 || p.CallTimeout < 0 {
			add(p.line, "plugin %q: negative max_frame_bytes or timer", p.Name)
		}
		if p.Config != nil {
			b, err := json.Marshal(p.Config)
			if err != nil {
				add(p.line, "plugin %q: config: %v (keys must be strings)", p.Name, err)
			}
			p.settings = b
		}
	}
	if len(c.Routes) == 0 {
		add(keyLine(top, "routes", 0), "no routes")
	}
	paths := make(map[string]int)
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Path == "" {
			add(r.line, "route without a path")
			continue
		}
		pat := r.Path
		if _, p, ok := strings.Cut(pat, " "); ok {
			pat = p
		}
		if !strings.HasPrefix(pat, "/") {
			add(r.line, "route %q: the path must start with / (optionally after a method: \"GET /ws\")", r.Path)
		}
		for _, rp := range reservedPaths {
			if pat == rp {
				add(r.line, "route %q: %s is served by strand itself", r.Path, rp)
			}
		}
		if first, dup := paths[r.Path]; dup {
			add(r.line, "route %q is configured twice (first at line %d)", r.Path, first)
		} else {
			paths[r.Path] = r.line
		}
		if len(r.Entries) == 0 && r.Upstream == "" {
			add(r.line, "route %q: no entries and no upstream", r.Path)
		}
		for _, e := range r.Entries {
			plugin, entry, ok := strings.Cut(e, "/")
			switch {
			case !ok || plugin == "" || entry == "":
				add(r.line, "route %q: entry %q: want plugin/entry", r.Path, e)
			case names[plugin] == 0:
				add(r.line, "route %q: entry %q: no plugin %q is configured", r.Path, e, plugin)
			}
		}
		if r.Upstream != "" {
			u, err := url.Parse(r.Upstream)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add(r.line, "route %q: upstream %q: want an http:// or https:// URL", r.Path, r.Upstream)
			}
		}
	}
	return probs
}
