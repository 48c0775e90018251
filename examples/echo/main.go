// Command echo serves WebSocket echo on /echo with Strand: text comes back as
// text, binary as binary, in order. /broadcast sends every message to all
// clients connected there, the sender included, each sender's messages in
// order. GET /healthz answers 200 while the server is alive, GET /readyz
// 200 while it is ready for traffic (503 once it shuts down), GET /metrics
// the Prometheus metrics (docs/metrics.md). With -token,
// /echo upgrades without the token get 401. With -sleep-param (off by
// default), /echo?sleep=DURATION (at most 10s) makes every message of that
// connection wait that long in the plugin's handler before it is echoed: a
// blocking handler, for measuring what it does to the other connections
// (bench/run.sh's isolation cell); a bad value gets 400.
//
//	go run ./examples/echo -addr 127.0.0.1:8080 [-token SECRET] [-sleep-param] [-reader auto|goroutine|poll]
//	    [-tls-cert cert.pem -tls-key key.pem] [-debug-addr 127.0.0.1:6060]
//	    [-log-format text|json] [-log-level debug|info|warn|error]
//
// -reader picks wsframework.Config.Reader: auto (the default) is the poll
// reader on Linux and goroutines elsewhere. With -tls-cert and -tls-key
// (PEM files) it serves wss:// and https:// instead (ALPN http/1.1); the
// files are read again when they change, so a renewed certificate needs no
// restart. TLS connections are read by goroutines in every -reader mode.
// -compress on|off (default on) and -compress-takeover set
// wsframework.Config.Compression.
//
// -redis URL makes the server a node of a cluster: /broadcast's room is
// shared through that Redis (wsframework/redisadapter; docs/cluster.md)
// with every other node given the same URL, and /readyz answers 503 while
// Redis is unreachable. The benchmark kit's cluster cells use it.
//
// With port 0 in -addr (or -debug-addr) the system picks a free port. Once
// listening, the program logs one line with the bound addresses as
// key=value pairs, for scripts and tests to read:
//
//	... msg="echo: listening" addr=127.0.0.1:41234 reader=poll tls=false debug_addr=127.0.0.1:41235 ...
//
// (debug_addr only with -debug-addr). -debug-addr serves a separate debug
// listener, never the public one, off by default: /debug/vars (expvar:
// runtime memstats, the command line, and the server's Stats as "strand";
// /debug/vars?gc=1 runs a garbage collection first, so memstats show the
// live heap) and /debug/pprof/ (net/http/pprof). Bind it to loopback: it
// exposes profiles and the command line (including -token) to whoever can
// reach it.
//
// Logs go to stderr as text (or JSON with -log-format json) from
// -log-level up (info by default; debug adds a line per connection opened
// and closed, with its conn, route and plugin). A bad flag value exits
// with status 2.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/internal/cliflags"
	"github.com/strandws/strand/internal/debugserver"
	"github.com/strandws/strand/internal/metricsetup"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// options are the command line's settings.
type options struct {
	cliflags.Server
	maxMsg   int64
	token    string
	sleep    bool
	compress string
	takeover bool
	redisURL string
}

func main() {
	var o options
	o.Register(flag.CommandLine, "127.0.0.1:8080")
	flag.Int64Var(&o.maxMsg, "max-message-bytes", 1<<20, "largest message accepted (1009 beyond)")
	flag.StringVar(&o.token, "token", "", "if set, upgrades need ?token=TOKEN or Authorization: Bearer TOKEN (401 otherwise)")
	flag.BoolVar(&o.sleep, "sleep-param", false, "honour /echo?sleep=DURATION: each message of that connection waits that long in its handler before the echo")
	flag.StringVar(&o.compress, "compress", "on", "permessage-deflate for clients that offer it: on or off")
	flag.BoolVar(&o.takeover, "compress-takeover", false, "with -compress on: allow context takeover (more memory per connection)")
	flag.StringVar(&o.redisURL, "redis", "", "share /broadcast's room with the other nodes on this Redis (redis://[user:pass@]host:port[/db] or rediss://)")
	flag.Parse()
	log, err := o.Check(flag.CommandLine, os.Stderr)
	if err == nil && o.compress != "on" && o.compress != "off" {
		err = fmt.Errorf("unknown -compress %q: want on or off", o.compress)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		flag.Usage()
		os.Exit(2)
	}
	slog.SetDefault(log)
	if err := run(o, log); err != nil {
		log.Error("echo", "err", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	reg := metricsetup.Registry()
	comp := wsframework.CompressionConfig{Disabled: o.compress == "off", ContextTakeover: o.takeover}
	var ra *redisadapter.Adapter
	var adapter wsframework.Adapter
	if o.redisURL != "" {
		a, err := redisadapter.New(redisadapter.Config{URL: o.redisURL, Logger: log})
		if err != nil {
			return err
		}
		ra, adapter = a, a
		if err := reg.Register(ra.Collector()); err != nil {
			_ = ra.Close()
			return err
		}
	}
	// With an Adapter the Server runs wsframework.ClusterWorkers workers
	// per plugin: a broadcast waits for Redis on its handler's worker.
	cfg := wsframework.Config{MaxMessageBytes: o.maxMsg, Reader: o.Mode, Logger: log, Compression: comp, Metrics: reg, Adapter: adapter}
	srv, err := wsframework.New(cfg)
	if err != nil {
		if ra != nil {
			_ = ra.Close()
		}
		return err
	}
	if ra != nil {
		srv.AddReadinessCheck("redis", ra.Ready)
	}
	if err := srv.Handle("GET /metrics", metricsetup.Handler(reg)); err != nil {
		return err
	}
	plugin := echoplugin.Configure(echoplugin.Options{Token: o.token, SleepParam: o.sleep})
	if err := srv.Route("/echo", nil, plugin.Entry("echo")); err != nil {
		return err
	}
	if err := srv.Route("/broadcast", nil, plugin.Entry("broadcast")); err != nil {
		return err
	}
	if err := srv.Handle("GET /healthz", srv.HealthzHandler()); err != nil {
		return err
	}
	if err := srv.Handle("GET /readyz", srv.ReadyzHandler()); err != nil {
		return err
	}
	ws, web := "ws", "http"
	if o.TLSCert != "" {
		// Read once here so that a bad pair fails before "listening";
		// ServeTLS reads the files itself, and again when they change.
		if _, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey); err != nil {
			return err
		}
		ws, web = "wss", "https"
	}

	// Listen before logging, so the line carries the bound addresses (a
	// port 0 becomes the one the system picked).
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return err
	}
	var dbg *debugserver.Server
	if o.DebugAddr != "" {
		if dbg, err = debugserver.Listen(o.DebugAddr, debugserver.Vars{"strand": func() any { return srv.Stats() }}); err != nil {
			_ = l.Close()
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if o.TLSCert != "" {
			errc <- srv.ServeTLS(l, o.TLSCert, o.TLSKey)
			return
		}
		errc <- srv.Serve(l)
	}()
	dbgc := make(chan error, 1)
	bound := l.Addr().String()
	attrs := []any{"addr", bound, "reader", o.Mode.String(), "tls", o.TLSCert != "",
		"ws", ws + "://" + bound + "/echo", "health", web + "://" + bound + "/healthz", "ready", web + "://" + bound + "/readyz"}
	if dbg != nil {
		go func() { dbgc <- dbg.Serve() }()
		da := dbg.Addr().String()
		attrs = append(attrs, "debug_addr", da, "debug", "http://"+da+"/debug/vars")
	}
	log.Info("echo: listening", attrs...)
	select {
	case err := <-errc:
		if dbg != nil {
			_ = dbg.Close()
		}
		return err
	case err := <-dbgc:
		// The debug listener failed; the program goes down with it rather
		// than run on without what it was asked to serve.
		_ = srv.Close()
		<-errc
		return err
	case <-ctx.Done():
	}
	log.Info("echo: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if dbg != nil {
		_ = dbg.Shutdown(sctx)
	}
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, wsframework.ErrServerClosed) {
		return serr
	}
	return err
}
