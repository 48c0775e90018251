// Package host is the strand program as a library: it reads a strand.yaml,
// starts and supervises the plugins it names (out of process, over the
// protocol of docs/plugins.md), mounts its routes on a wsframework.Server
// and serves them with /healthz, /readyz and /metrics. cmd/strand is Main
// with no plugin compiled in; a Go program that passes its own plugins to
// Main (or Run) is a strand with those plugins built in, named in
// strand.yaml by a plugins: item without command or socket:
//
//	func main() { host.Main(myplugin.New()) }
//
// docs/strand.md describes the program and every key of strand.yaml.
package host

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strandws/strand/internal/debugserver"
	"github.com/strandws/strand/internal/logsetup"
	"github.com/strandws/strand/internal/metricsetup"
	"github.com/strandws/strand/internal/remote"
	"github.com/strandws/strand/internal/supervise"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
	"github.com/strandws/strand/wsframework"
)

// Defaults of strand.yaml keys.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultShutdownGrace = 5 * time.Second
	// DefaultStartTimeout bounds the wait for every plugin's first
	// handshake at startup (start_timeout).
	DefaultStartTimeout = 15 * time.Second
)

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

// Main runs strand with os.Args and the signals SIGINT and SIGTERM (which
// shut it down gracefully), and exits: status 0 after a clean shutdown, 1
// on an error (a bad configuration, a plugin that does not start), 2 on a
// bad command line.
func Main(builtin ...*sdk.Plugin) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr, builtin...)
	stop()
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		os.Exit(1)
	}
}

// Run runs the strand command line args (without the program name) until
// ctx ends, then shuts down. "validate -config F" checks F and prints OK
// (stdout) or its problems (stderr). builtin are the plugins compiled in.
// Errors are printed to stderr (and returned).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, builtin ...*sdk.Plugin) error {
	validate := len(args) > 0 && args[0] == "validate"
	if validate {
		args = args[1:]
	}
	fs := flag.NewFlagSet("strand", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "strand.yaml", "the configuration file (docs/strand.md)")
	// The flags the example programs take too (internal/cliflags), each
	// overriding its key of the configuration when given.
	var addr, debugAddr, logFormat, logLevel *string
	if !validate {
		addr = fs.String("addr", "", "listen address; overrides listen: in the configuration (port 0: a free port, logged as addr=)")
		debugAddr = fs.String("debug-addr", "", "serve /debug/vars and /debug/pprof/ on this separate address; overrides debug_addr: in the configuration")
		logFormat = fs.String("log-format", "", "log format, "+logsetup.Formats+"; overrides log.format: in the configuration (default text)")
		logLevel = fs.String("log-level", "", "lowest level logged, "+logsetup.Levels+"; overrides log.level: in the configuration (default info)")
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: strand [-config strand.yaml] [-addr host:port] [-debug-addr host:port] [-log-format text|json] [-log-level level]\n       strand validate [-config strand.yaml]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "strand: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return fmt.Errorf("%w: unexpected arguments", errUsage)
	}
	names := make([]string, len(builtin))
	for i, p := range builtin {
		names[i] = p.Name()
	}
	cfg, err := LoadConfig(*file, names)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return err
	}
	if validate {
		fmt.Fprintf(stdout, "%s: OK\n", *file)
		return nil
	}
	if err := overrideConfig(cfg, *addr, *debugAddr, *logFormat, *logLevel); err != nil {
		fmt.Fprintln(stderr, "strand:", err)
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	err = serveConfig(ctx, cfg, stderr, builtin)
	if err != nil {
		fmt.Fprintln(stderr, "strand:", err)
	}
	return err
}

// overrideConfig applies the command line's values (each "" when not given)
// to cfg and checks what the configuration's own checks cannot have seen.
func overrideConfig(cfg *Config, addr, debugAddr, logFormat, logLevel string) error {
	if _, err := logsetup.New(io.Discard, or(logFormat, "text"), or(logLevel, "info")); err != nil {
		return err
	}
	if addr != "" {
		cfg.Listen = addr
	}
	if debugAddr != "" {
		cfg.DebugAddr = debugAddr
	}
	if logFormat != "" {
		cfg.Log.Format = logFormat
	}
	if logLevel != "" {
		cfg.Log.Level = logLevel
	}
	if addr != "" || debugAddr != "" {
		// As the examples check: the same address twice is an error,
		// unless its port is 0 (two listeners, each on a free port).
		if err := debugserver.CheckAddrs(or(cfg.Listen, DefaultListen), cfg.DebugAddr); err != nil {
			return fmt.Errorf("the debug address %s is the public one (listen: or -addr): the debug listener is never the public one", cfg.DebugAddr)
		}
	}
	return nil
}

// plugin is one configured plugin while strand runs.
type plugin struct {
	cfg    *PluginConfig
	remote *remote.Host          // nil for a built-in
	sup    *supervise.Supervisor // nil for a built-in
	p      *sdk.Plugin
}

func serveConfig(ctx context.Context, cfg *Config, stderr io.Writer, builtin []*sdk.Plugin) (err error) {
	log, err := logsetup.New(stderr, or(cfg.Log.Format, "text"), or(cfg.Log.Level, "info"))
	if err != nil {
		return err
	}
	var reg *prometheus.Registry
	if cfg.Metrics == nil || *cfg.Metrics {
		reg = metricsetup.Registry()
	}
	wc := wsConfig(cfg, log)
	if reg != nil {
		wc.Metrics = reg // a nil *Registry in the interface would not be nil
	}
	srv, err := wsframework.New(wc)
	if err != nil {
		return err
	}
	plugins, err := startPlugins(ctx, cfg, log, builtin)
	defer func() {
		if err != nil {
			_ = srv.Close()
			stopPlugins(plugins, DefaultShutdownGrace)
		}
	}()
	if err != nil {
		return err
	}
	tr := newTransport()
	defer tr.CloseIdleConnections()
	if err := mount(srv, cfg, plugins, reg, tr, log); err != nil {
		return err
	}

	listen := or(cfg.Listen, DefaultListen)
	tlsOn := cfg.TLS != nil
	if tlsOn {
		if _, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	var dbg *debugserver.Server
	if cfg.DebugAddr != "" {
		vars := debugserver.Vars{
			"strand":  func() any { return srv.Stats() },
			"plugins": func() any { return pluginStats(plugins) },
		}
		if dbg, err = debugserver.Listen(cfg.DebugAddr, vars); err != nil {
			_ = l.Close()
			return err
		}
	}
	errc := make(chan error, 1)
	go func() {
		if tlsOn {
			errc <- srv.ServeTLS(l, cfg.TLS.Cert, cfg.TLS.Key)
			return
		}
		errc <- srv.Serve(l)
	}()
	dbgc := make(chan error, 1)
	attrs := []any{"addr", l.Addr().String(), "tls", tlsOn, "plugins", len(plugins), "routes", len(cfg.Routes)}
	if dbg != nil {
		go func() { dbgc <- dbg.Serve() }()
		attrs = append(attrs, "debug_addr", dbg.Addr().String())
	}
	log.Info("strand: listening", attrs...)

	grace := DefaultShutdownGrace
	if cfg.ShutdownGrace > 0 {
		grace = cfg.ShutdownGrace.D()
	}
	select {
	case err = <-errc:
		if dbg != nil {
			_ = dbg.Close()
		}
		stopPlugins(plugins, grace)
		return err
	case err = <-dbgc:
		_ = srv.Close()
		<-errc
		stopPlugins(plugins, grace)
		return err
	case <-ctx.Done():
	}
	log.Info("strand: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if dbg != nil {
		_ = dbg.Shutdown(sctx)
	}
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, wsframework.ErrServerClosed) && err == nil {
		err = serr
	}
	// Connections are closed and the runtimes drained: the plugins may go.
	stopPlugins(plugins, grace)
	log.Info("strand: stopped")
	return err
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// wsConfig is the wsframework.Config of cfg.
func wsConfig(cfg *Config, log *slog.Logger) wsframework.Config {
	l := cfg.Limits
	wc := wsframework.Config{
		Logger:              log,
		MaxMessageBytes:     l.MaxMessageBytes,
		MaxConns:            l.MaxConns,
		MaxConnsPerIP:       l.MaxConnsPerIP,
		MaxHandshakesPerIP:  l.MaxHandshakesPerIP,
		MaxRequestBodyBytes: l.MaxRequestBodyBytes,
		MessageRate:         l.MessageRate,
		MessageBurst:        l.MessageBurst,
		HandshakeTimeout:    l.HandshakeTimeout.D(),
		ReadTimeout:         l.ReadTimeout.D(),
		WriteTimeout:        l.WriteTimeout.D(),
		PingInterval:        l.PingInterval.D(),
		IdleTimeout:         l.IdleTimeout.D(),
		CloseTimeout:        l.CloseTimeout.D(),
		PhaseTimeout:        l.PhaseTimeout.D(),
		AllowedOrigins:      l.AllowedOrigins,
		TrustedProxies:      l.TrustedProxies,
		Plugins:             make(map[string]wsframework.PluginPolicy),
	}
	switch cfg.Reader {
	case "goroutine":
		wc.Reader = wsframework.ReaderGoroutine
	case "poll":
		wc.Reader = wsframework.ReaderPoll
	}
	for _, p := range cfg.Plugins {
		wc.Plugins[p.Name] = wsframework.PluginPolicy{FailOpen: p.FailOpen}
	}
	return wc
}

// startPlugins starts every configured plugin and waits, within
// DefaultStartTimeout, for each first handshake. On an error the plugins
// it returns are the ones to stop.
func startPlugins(ctx context.Context, cfg *Config, log *slog.Logger, builtin []*sdk.Plugin) ([]*plugin, error) {
	// A plugin marked failed while strand starts (a refused handshake, a
	// crash loop) ends the wait at once, with why.
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var plugins []*plugin
	for i := range cfg.Plugins {
		pc := &cfg.Plugins[i]
		pl := &plugin{cfg: pc}
		if len(pc.Command) == 0 && pc.Socket == "" {
			idx := slices.IndexFunc(builtin, func(b *sdk.Plugin) bool { return b.Name() == pc.Name })
			pl.p = builtin[idx] // Parse checked the name
			if err := pl.p.Configure(pc.settings); err != nil {
				return plugins, fmt.Errorf("plugin %q (line %d): config: %w", pc.Name, pc.line, err)
			}
			plugins = append(plugins, pl)
			continue
		}
		h, err := remote.New(remote.Config{
			Name: pc.Name, Settings: pc.settings, MaxFrameSize: pc.MaxFrameBytes,
			HandshakeTimeout: pc.HandshakeTimeout.D(), PingInterval: pc.PingInterval.D(),
			PingTimeout: pc.PingTimeout.D(), CallTimeout: pc.CallTimeout.D(),
			FailOpen: pc.FailOpen, Logger: log, // remote tags its lines plugin=NAME
		})
		if err != nil {
			return plugins, err
		}
		pl.remote = h
		sc := supervise.Config{
			Name: pc.Name, Host: h, Logger: log, SocketEnv: serve.EnvSocket,
			SocketDir: cfg.SocketDir, Socket: pc.Socket, Dir: pc.Dir,
			Grace: or0(cfg.ShutdownGrace.D(), DefaultShutdownGrace),
			Permanent: func(err error) bool {
				var he *remote.HandshakeError
				return errors.As(err, &he)
			},
			OnFail: func(err error) { cancel(fmt.Errorf("plugin %q failed: %w", pc.Name, err)) },
		}
		if len(pc.Command) > 0 {
			sc.Command = slices.Clone(pc.Command)
			// A relative path with a slash is relative to strand's working
			// directory, also when dir: is set (exec would take it
			// relative to Dir).
			if strings.Contains(sc.Command[0], "/") && !filepath.IsAbs(sc.Command[0]) {
				abs, err := filepath.Abs(sc.Command[0])
				if err != nil {
					return plugins, err
				}
				sc.Command[0] = abs
			}
			for k, v := range pc.Env {
				sc.Env = append(sc.Env, k+"="+v)
			}
			slices.Sort(sc.Env)
		}
		plugins = append(plugins, pl)
		if pl.sup, err = supervise.Start(sc); err != nil {
			return plugins, err
		}
	}
	tctx, tcancel := context.WithTimeout(wctx, DefaultStartTimeout)
	defer tcancel()
	for _, pl := range plugins {
		if pl.remote == nil {
			continue
		}
		p, err := pl.remote.Plugin(tctx)
		if err != nil {
			if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return plugins, fmt.Errorf("plugin %q (line %d) did not start: %w", pl.cfg.Name, pl.cfg.line, cause)
			}
			return plugins, fmt.Errorf("plugin %q (line %d): no handshake within %v: %w (see its log lines, plugin=%s)",
				pl.cfg.Name, pl.cfg.line, DefaultStartTimeout, err, pl.cfg.Name)
		}
		// Listen only once the session is live, so that the first clients
		// are not refused (1012, 502): a session may also end right after
		// its handshake, and the next one is then waited for.
		for !pl.remote.Up() {
			select {
			case <-tctx.Done():
				return plugins, fmt.Errorf("plugin %q (line %d): its session did not come up: %w", pl.cfg.Name, pl.cfg.line, context.Cause(tctx))
			case <-time.After(time.Millisecond):
			}
		}
		pl.p = p
		log.Info("strand: plugin ready", "plugin", pl.cfg.Name, "entries", entryNames(p))
	}
	return plugins, nil
}

func or0(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

func entryNames(p *sdk.Plugin) []string {
	var names []string
	for _, e := range p.Entries() {
		names = append(names, e.Name())
	}
	return names
}

// stopPlugins stops the supervisors (goodbye, grace, kill) and closes the
// hosts, in parallel.
func stopPlugins(plugins []*plugin, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace+5*time.Second)
	defer cancel()
	done := make(chan struct{}, len(plugins))
	for _, pl := range plugins {
		go func() {
			defer func() { done <- struct{}{} }()
			if pl.sup != nil {
				_ = pl.sup.Stop(ctx)
			}
			if pl.remote != nil {
				_ = pl.remote.Close()
			}
		}()
	}
	for range plugins {
		<-done
	}
}

// mount mounts the routes, /healthz, /readyz, /metrics, the readiness
// checks and the plugin metrics.
func mount(srv *wsframework.Server, cfg *Config, plugins []*plugin, reg *prometheus.Registry, tr http.RoundTripper, log *slog.Logger) error {
	byName := make(map[string]*plugin, len(plugins))
	for _, pl := range plugins {
		byName[pl.cfg.Name] = pl
		if pl.sup != nil {
			srv.AddReadinessCheck("plugin "+pl.cfg.Name, pl.sup.Ready)
		}
	}
	for _, rc := range cfg.Routes {
		var entries []*sdk.Entry
		for _, e := range rc.Entries {
			name, entry, _ := strings.Cut(e, "/")
			pl := byName[name]
			se, ok := pl.p.Lookup(entry)
			if !ok {
				return fmt.Errorf("route %q (line %d): plugin %q has no entry %q (its entries: %s)",
					rc.Path, rc.line, name, entry, strings.Join(entryNames(pl.p), ", "))
			}
			entries = append(entries, se)
		}
		var terminal http.Handler = http.NotFoundHandler()
		if rc.Upstream != "" {
			var err error
			if terminal, err = upstream(rc.Upstream, tr, log); err != nil {
				return fmt.Errorf("route %q (line %d): %w", rc.Path, rc.line, err)
			}
		}
		if err := srv.Route(rc.Path, terminal, entries...); err != nil {
			return fmt.Errorf("route %q (line %d): %w", rc.Path, rc.line, err)
		}
	}
	if err := srv.Handle("GET /healthz", srv.HealthzHandler()); err != nil {
		return err
	}
	if err := srv.Handle("GET /readyz", srv.ReadyzHandler()); err != nil {
		return err
	}
	if reg != nil {
		if err := reg.Register(&pluginCollector{plugins: plugins}); err != nil {
			return err
		}
		if err := srv.Handle("GET /metrics", metricsetup.Handler(reg)); err != nil {
			return err
		}
	}
	return nil
}

// PluginStats is one plugin's state in /debug/vars.
type PluginStats struct {
	Builtin  bool
	PID      int
	Restarts uint64
	Up       bool
	Failed   bool
}

func pluginStats(plugins []*plugin) map[string]PluginStats {
	out := make(map[string]PluginStats, len(plugins))
	for _, pl := range plugins {
		if pl.sup == nil {
			out[pl.cfg.Name] = PluginStats{Builtin: true, Up: true}
			continue
		}
		st := pl.sup.Stats()
		out[pl.cfg.Name] = PluginStats{PID: pl.sup.PID(), Restarts: st.Restarts, Up: st.Up, Failed: st.Failed}
	}
	return out
}
