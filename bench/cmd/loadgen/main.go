// Command loadgen is Strand's WebSocket load generator: it drives any server
// that serves WebSocket echo and broadcast endpoints on a loopback address,
// checks every message it gets back for integrity and per-sender order, and
// reports throughput, latency percentiles and errors.
//
// Modes:
//
//	echo       every connection sends messages and checks that each echo
//	           comes back intact and in order; -depth messages may be in
//	           flight per connection; -rate fixes the send rate instead.
//	broadcast  every connection sends to an endpoint that relays each message
//	           to all connections (the sender included); every connection
//	           checks each sender's messages arrive intact and in order.
//	idle       open -conns connections, hold them for -hold, report the
//	           server's RSS per connection (-server-pid), then send one
//	           message on each to check they are all still alive.
//
// Every message carries (connection id, sequence number, send time) in its
// first bytes and a deterministic fill (package wire). A corrupted, foreign,
// reordered, duplicated or lost message counts as an error; any error makes
// the exit status 1. Exit status 2 is a usage error, 3 a hard stop.
//
// wss:// URLs are dialled over TLS, trusting the certificates in -ca (a
// PEM file; the system's roots without it).
// -payload json sends compressible JSON-like text (package wire), checked as
// strictly. -compress offers permessage-deflate (deflate.go): the load
// generator then compresses what it sends and inflates what it gets. Every
// result counts the bytes on the wire each way, per message.
//
// Safety bounds: only loopback URLs are dialled; at most 19000 connections
// (the open-file limit here is 20000); every run ends by itself after
// connect + warmup + duration (+ hold) + drain, and a watchdog ends the
// process if anything hangs past that.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/strandws/strand/bench/internal/result"
	"github.com/strandws/strand/bench/internal/stats"
	"github.com/strandws/strand/bench/internal/wire"
)

const (
	maxConns          = 19000
	maxBroadcastConns = 2000 // receivers track every sender: memory grows with conns²
	maxSize           = 1 << 20
	maxErrorSamples   = 20
	broadcastSettle   = 300 * time.Millisecond
)

// Error kinds, as reported in the JSON "errors" map.
const (
	kindDial     = "dial"     // connection or handshake failed
	kindConn     = "conn"     // connection failed during the run
	kindProtocol = "protocol" // the server broke RFC 6455
	kindCorrupt  = "corrupt"  // wrong size, bad header or fill
	kindForeign  = "foreign"  // echo carried another connection's message
	kindOrder    = "order"    // a sender's sequence skipped or went backwards
	kindOpcode   = "opcode"   // text came back as binary or the reverse
	kindLost     = "lost"     // sent but never delivered by the end of the drain
)

var errorKinds = []string{kindDial, kindConn, kindProtocol, kindCorrupt, kindForeign, kindOrder, kindOpcode, kindLost}

type config struct {
	url, mode, jsonPath string
	urls                []string // url split at commas: connection i dials urls[i%len(urls)]
	server, cell        string
	conns, size, depth  int
	rate                float64
	text, quiet         bool
	payload             string // binary, text or json
	compress, takeover  bool   // offer permessage-deflate; with context takeover
	prime               bool   // idle mode: one message per connection before the hold
	duration, warmup    time.Duration
	hold, drain         time.Duration
	connectTimeout      time.Duration
	dialConcurrency     int
	serverPID           int
	srcIPs              string
	cpuProfile          string
	ca                  string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "ws://127.0.0.1:8080/echo", "server URL (ws:// or wss://, loopback host only); several, comma-separated, spread the connections over them in turn (the nodes of a cluster)")
	fs.StringVar(&cfg.ca, "ca", "", "wss: PEM file of the certificates to trust (default: the system's roots)")
	fs.StringVar(&cfg.mode, "mode", "echo", "echo, broadcast or idle")
	fs.IntVar(&cfg.conns, "conns", 1, fmt.Sprintf("connections (at most %d; broadcast at most %d)", maxConns, maxBroadcastConns))
	fs.IntVar(&cfg.size, "size", 64, "payload bytes per message")
	fs.BoolVar(&cfg.text, "text", false, "send text messages (default binary); short for -payload text")
	fs.StringVar(&cfg.payload, "payload", "", "payload flavour: binary, text or json (compressible JSON-like text); default binary, or text with -text")
	fs.BoolVar(&cfg.compress, "compress", false, "offer permessage-deflate (client_no_context_takeover, server_no_context_takeover); compress what is sent, inflate what comes back")
	fs.BoolVar(&cfg.takeover, "compress-takeover", false, "with -compress: offer context takeover on both sides instead")
	fs.BoolVar(&cfg.prime, "prime", false, "idle mode: send one message on each connection and wait for it before the hold, so connections are measured after use")
	fs.IntVar(&cfg.depth, "depth", 1, "messages in flight per connection (pipelining)")
	fs.Float64Var(&cfg.rate, "rate", 0, "messages/s per connection; 0 = as fast as -depth allows")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "load before measuring (not recorded)")
	fs.DurationVar(&cfg.hold, "hold", 10*time.Second, "idle mode: how long to hold the connections")
	fs.DurationVar(&cfg.drain, "drain", 5*time.Second, "after sending stops, how long to wait for messages still in flight")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 60*time.Second, "bound on opening all connections")
	fs.IntVar(&cfg.dialConcurrency, "dial-concurrency", 64, "handshakes in progress at once")
	fs.StringVar(&cfg.jsonPath, "json", "", "write the result as JSON to this file")
	fs.StringVar(&cfg.srcIPs, "src-ips", "", `spread connections over source addresses: "50" (127.0.0.1-127.0.0.50), a range "127.0.0.1-127.0.0.50" or a list`)
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "server process id: report its CPU and RSS (idle mode: RSS per connection)")
	fs.StringVar(&cfg.server, "server", "", "label: server name recorded in the result")
	fs.StringVar(&cfg.cell, "cell", "", "label: benchmark cell recorded in the result")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no progress line")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch {
	case cfg.payload == "" && cfg.text:
		cfg.payload = "text"
	case cfg.payload == "":
		cfg.payload = "binary"
	case cfg.text && cfg.payload != "text":
		return cfg, fmt.Errorf("-text with -payload %s", cfg.payload)
	}
	f, err := wire.ParseFlavour(cfg.payload)
	if err != nil {
		return cfg, err
	}
	cfg.text = f != wire.Binary
	if cfg.takeover && !cfg.compress {
		return cfg, errors.New("-compress-takeover needs -compress")
	}
	if cfg.prime && cfg.mode != "idle" {
		return cfg, errors.New("-prime is for -mode idle")
	}
	for _, raw := range strings.Split(cfg.url, ",") {
		u, err := checkURL(raw)
		if err != nil {
			return cfg, err
		}
		cfg.urls = append(cfg.urls, u)
	}
	cfg.url = strings.Join(cfg.urls, ",")
	switch {
	case cfg.mode != "echo" && cfg.mode != "broadcast" && cfg.mode != "idle":
		return cfg, fmt.Errorf("-mode %q: want echo, broadcast or idle", cfg.mode)
	case cfg.conns < 1 || cfg.conns > maxConns:
		return cfg, fmt.Errorf("-conns %d: must be 1..%d (the open-file limit is 20000)", cfg.conns, maxConns)
	case cfg.mode == "broadcast" && cfg.conns > maxBroadcastConns:
		return cfg, fmt.Errorf("-conns %d: broadcast allows at most %d", cfg.conns, maxBroadcastConns)
	case cfg.size < 1 || cfg.size > maxSize:
		return cfg, fmt.Errorf("-size %d: must be 1..%d", cfg.size, maxSize)
	case cfg.depth < 1 || cfg.depth > 4096:
		return cfg, fmt.Errorf("-depth %d: must be 1..4096", cfg.depth)
	case cfg.rate < 0 || math.IsInf(cfg.rate, 0) || math.IsNaN(cfg.rate):
		return cfg, fmt.Errorf("-rate %v: must be >= 0", cfg.rate)
	case cfg.duration <= 0 || cfg.warmup < 0 || cfg.hold < 0 || cfg.drain < 0:
		return cfg, errors.New("-duration must be > 0; -warmup, -hold and -drain >= 0")
	case cfg.connectTimeout <= 0 || cfg.dialConcurrency < 1:
		return cfg, errors.New("-connect-timeout and -dial-concurrency must be > 0")
	}
	if cfg.mode == "idle" {
		cfg.depth = 1
	}
	return cfg, nil
}

// gen is one run's shared state. Counters are atomics; clients is written
// during the connect phase only, before any reader or writer starts.
type gen struct {
	cfg    config
	codec  *wire.Codec
	op     ws.OpCode
	base   time.Time
	stderr io.Writer

	warmupEnd  atomic.Int64 // ns since base; messages sent before are not measured
	measureEnd atomic.Int64 // ns since base; writers stop here

	clients   []*client // nil where the dial failed
	connected int
	lat       *stats.Recorder
	stop      chan struct{}
	stopOnce  sync.Once

	sentTotal, deliveredTotal       atomic.Uint64
	sentMeasured, deliveredMeasured atomic.Uint64

	errs      map[string]*atomic.Uint64
	sampleMu  sync.Mutex
	samples   []string
	phase     atomic.Value // string
	dialsDone atomic.Int64
}

func (g *gen) now() int64 { return int64(time.Since(g.base)) }

func (g *gen) inWindow(ts int64) bool {
	return ts >= g.warmupEnd.Load() && ts < g.measureEnd.Load()
}

func (g *gen) errorf(kind, format string, args ...any) {
	g.errs[kind].Add(1)
	g.sampleMu.Lock()
	defer g.sampleMu.Unlock()
	if len(g.samples) < maxErrorSamples {
		g.samples = append(g.samples, kind+": "+fmt.Sprintf(format, args...))
	}
}

func (g *gen) errorTotal() uint64 {
	var n uint64
	for _, k := range errorKinds {
		n += g.errs[k].Load()
	}
	return n
}

// fail marks c dead and counts the failure once.
func (g *gen) fail(c *client, err error) {
	if !c.dead.CompareAndSwap(false, true) {
		return
	}
	kind := kindConn
	if errors.Is(err, errProtocol) {
		kind = kindProtocol
	}
	g.errorf(kind, "conn %d: %v", c.id, err)
}

func (g *gen) stopWriters() { g.stopOnce.Do(func() { close(g.stop) }) }

// sendLocked encodes and buffers c's next message stamped ts; the caller
// holds c.wmu and flushes.
func (g *gen) sendLocked(c *client, ts int64) error {
	c.seq++
	p := g.codec.Encode(c.wbuf, wire.Header{Conn: c.id, Seq: c.seq, SentNanos: ts})
	g.sentTotal.Add(1)
	if g.inWindow(ts) {
		g.sentMeasured.Add(1)
	}
	return c.writeDataLocked(g.op, p)
}

func (g *gen) readLoop(c *client, wg *sync.WaitGroup) {
	defer wg.Done()
	senders := 1
	if g.cfg.mode == "broadcast" {
		senders = len(g.clients)
	}
	tr := wire.NewTracker(senders)
	for {
		op, p, err := c.readMessage()
		if err != nil {
			if !c.closing.Load() {
				g.fail(c, err)
			}
			return
		}
		now := g.now()
		if op != g.op {
			g.errorf(kindOpcode, "conn %d: got opcode %v, sent %v", c.id, op, g.op)
		}
		h, err := g.codec.Decode(p)
		if err != nil {
			g.errorf(kindCorrupt, "conn %d: %v", c.id, err)
			continue
		}
		sender := h.Conn
		if g.cfg.mode != "broadcast" {
			if h.Conn != c.id {
				g.errorf(kindForeign, "conn %d: echo carried conn %d seq %d", c.id, h.Conn, h.Seq)
				continue
			}
			sender = 0
		}
		if err := tr.Observe(sender, h.Seq); err != nil {
			g.errorf(kindOrder, "at receiver %d: %v", c.id, err)
		}
		if h.Conn == c.id {
			select {
			case c.tokens <- struct{}{}:
			default: // more echoes than sends: the order check above has counted it
			}
		}
		g.deliveredTotal.Add(1)
		if g.inWindow(h.SentNanos) {
			g.deliveredMeasured.Add(1)
			g.lat.Record(int(c.id), now-h.SentNanos)
		}
	}
}

// writeLoop keeps up to depth messages in flight on c until the measured
// window ends or stop closes. At full speed it batches every message the
// window allows into one flush. At a fixed rate, a message that could not go
// out on schedule because -depth messages were still unanswered is stamped
// with its scheduled time, so a stalled server shows up as latency rather
// than as fewer samples (no coordinated omission).
func (g *gen) writeLoop(c *client, wg *sync.WaitGroup) {
	defer wg.Done()
	var (
		interval time.Duration
		next     time.Time
		timer    *time.Timer
	)
	if g.cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / g.cfg.rate)
		next = time.Now().Add(randomPhase(interval))
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	end := g.measureEnd.Load()
	for {
		select {
		case <-c.tokens:
		case <-g.stop:
			return
		}
		var ts int64
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				// On time: the clock starts when the message really
				// leaves, so a late timer wakeup (the load generator's
				// own jitter) is not charged to the server.
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-g.stop:
					return
				}
				ts = g.now()
			} else {
				// Late because the window was full (the server is
				// behind): the clock started at the scheduled time.
				ts = int64(next.Sub(g.base))
			}
			next = next.Add(interval)
		} else {
			ts = g.now()
		}
		if ts >= end || c.dead.Load() {
			return
		}
		c.wmu.Lock()
		err := g.sendLocked(c, ts)
	batch:
		for interval == 0 && err == nil {
			select {
			case <-c.tokens:
				if ts = g.now(); ts >= end {
					break batch
				}
				err = g.sendLocked(c, ts)
			default:
				break batch
			}
		}
		if err == nil {
			err = c.flushLocked()
		}
		c.wmu.Unlock()
		if err != nil {
			g.fail(c, err)
			return
		}
	}
}

// progress prints one status line per second on stderr until done closes.
func (g *gen) progress(done <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		d := g.deliveredTotal.Load()
		phase, _ := g.phase.Load().(string)
		fmt.Fprintf(g.stderr, "loadgen [%5.1fs] %-8s conns=%d/%d dialled=%d msgs/s=%d delivered=%d errors=%d\n",
			time.Since(g.base).Seconds(), phase, g.live(), g.cfg.conns, g.dialsDone.Load(), d-last, d, g.errorTotal())
		last = d
	}
}

func (g *gen) live() int {
	n := 0
	for _, c := range g.clients {
		if c != nil && !c.dead.Load() {
			n++
		}
	}
	return n
}

func bufSize(v, lo, hi int) int { return min(max(v, lo), hi) }

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "loadgen:", err)
		}
		return 2
	}
	srcIPs, err := parseSrcIPs(cfg.srcIPs)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	flavour, _ := wire.ParseFlavour(cfg.payload) // checked by parseFlags
	codec, err := wire.NewFlavourCodec(cfg.size, flavour)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen: -size:", err)
		return 2
	}
	tlsCfg, err := clientTLS(cfg.ca)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen: -ca:", err)
		return 2
	}

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}

	// The watchdog: whatever happens, this process ends.
	limit := cfg.connectTimeout + broadcastSettle + cfg.warmup + cfg.duration + cfg.drain + 15*time.Second
	if cfg.mode == "idle" {
		limit = cfg.connectTimeout + cfg.hold + cfg.drain + 15*time.Second
	}
	watchdog := time.AfterFunc(limit, func() {
		fmt.Fprintf(stderr, "loadgen: hard stop after %v\n", limit)
		os.Exit(3)
	})
	defer watchdog.Stop()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	g := &gen{
		cfg:     cfg,
		codec:   codec,
		op:      ws.OpBinary,
		base:    time.Now(),
		stderr:  stderr,
		clients: make([]*client, cfg.conns),
		lat:     stats.NewRecorder(32),
		stop:    make(chan struct{}),
		errs:    make(map[string]*atomic.Uint64, len(errorKinds)),
	}
	if cfg.text {
		g.op = ws.OpText
	}
	for _, k := range errorKinds {
		g.errs[k] = new(atomic.Uint64)
	}
	g.measureEnd.Store(math.MaxInt64)
	g.phase.Store("connect")
	res := &result.Result{
		Server: cfg.server, Cell: cfg.cell, Mode: cfg.mode, URL: cfg.url,
		Conns: cfg.conns, Size: cfg.size, Text: cfg.text, Depth: cfg.depth, Rate: cfg.rate,
		DurationSec: cfg.duration.Seconds(), WarmupSec: cfg.warmup.Seconds(),
		StartedAt: g.base.UTC().Format(time.RFC3339),
	}
	if cfg.serverPID > 0 {
		if kb, err := procStatusKB(cfg.serverPID, "VmRSS"); err == nil {
			res.ServerRSSBeforeKB = kb
		} else {
			fmt.Fprintln(stderr, "loadgen: -server-pid:", err)
			return 2
		}
	}

	var bgWG sync.WaitGroup
	progressDone := make(chan struct{})
	if !cfg.quiet {
		bgWG.Add(1)
		go g.progress(progressDone, &bgWG)
	}

	// Connect.
	fanIn := 1
	if cfg.mode == "broadcast" {
		fanIn = cfg.conns
	}
	rbuf := bufSize((cfg.size+14)*cfg.depth*fanIn, 4096, 64<<10)
	wbuf := bufSize((cfg.size+14)*cfg.depth, 4096, 64<<10)
	if cfg.mode == "idle" {
		rbuf, wbuf = bufSize(cfg.size+14, 512, 64<<10), bufSize(cfg.size+14, 512, 64<<10)
	}
	var exts []httphead.Option
	if cfg.compress {
		exts = compressOffer(cfg.takeover)
		res.CompressOffer = "no-takeover"
		if cfg.takeover {
			res.CompressOffer = "takeover"
		}
	}
	if flavour == wire.JSON {
		res.Payload = "json"
	}
	dctx, dcancel := context.WithTimeout(ctx, cfg.connectTimeout)
	sem := make(chan struct{}, cfg.dialConcurrency)
	var dialWG sync.WaitGroup
	for i := range cfg.conns {
		if dctx.Err() != nil {
			g.errorf(kindDial, "conn %d..%d: not dialled: %v", i, cfg.conns-1, dctx.Err())
			g.errs[kindDial].Add(uint64(cfg.conns - i - 1))
			break
		}
		sem <- struct{}{}
		dialWG.Add(1)
		go func() {
			defer dialWG.Done()
			defer func() { <-sem }()
			defer g.dialsDone.Add(1)
			var src net.IP
			if len(srcIPs) > 0 {
				src = srcIPs[i%len(srcIPs)]
			}
			d, err := dial(dctx, cfg.urls[i%len(cfg.urls)], src, rbuf, tlsCfg, exts)
			if err != nil {
				g.errorf(kindDial, "conn %d: %v", i, err)
				return
			}
			g.clients[i] = newClient(uint32(i), d, wbuf, cfg.size, cfg.depth)
		}()
	}
	dialWG.Wait()
	dcancel()
	var cache *inflateCache
	if cfg.mode == "broadcast" {
		cache = newInflateCache()
	}
	for _, c := range g.clients {
		if c == nil {
			continue
		}
		g.connected++
		if c.flate != nil && !c.flate.serverTakeover {
			c.flate.cache = cache
		}
		if c.flate != nil {
			res.CompressedConns++
			if c.flate.serverTakeover {
				res.ServerTakeoverConns++
			}
		}
	}
	res.Connected = g.connected

	var rwg, wwg sync.WaitGroup
	for _, c := range g.clients {
		if c != nil {
			rwg.Add(1)
			go g.readLoop(c, &rwg)
		}
	}
	fanout := uint64(1)
	if cfg.mode == "broadcast" {
		fanout = uint64(g.connected)
	}

	var cpu0, cpu1, scpu0, scpu1 time.Duration
	var window time.Duration
	if g.connected > 0 && ctx.Err() == nil {
		if cfg.mode == "idle" {
			if cfg.prime {
				g.phase.Store("prime")
				g.sendOneEach()
				deadline := time.Now().Add(cfg.drain)
				for g.deliveredTotal.Load() < g.sentTotal.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
			g.phase.Store("hold")
			sleepCtx(ctx, cfg.hold)
			if cfg.serverPID > 0 {
				res.ServerRSSAfterKB, _ = procStatusKB(cfg.serverPID, "VmRSS")
				res.RSSPerConnBytes = float64(res.ServerRSSAfterKB-res.ServerRSSBeforeKB) * 1024 / float64(g.connected)
			}
			// Liveness: one message on every connection, all measured.
			g.phase.Store("check")
			g.warmupEnd.Store(g.now())
			g.sendOneEach()
		} else {
			if cfg.mode == "broadcast" {
				// Let servers that register a connection asynchronously
				// (after the handshake) finish before anyone sends.
				sleepCtx(ctx, broadcastSettle)
			}
			start := g.now()
			g.warmupEnd.Store(start + int64(cfg.warmup))
			g.measureEnd.Store(start + int64(cfg.warmup+cfg.duration))
			g.phase.Store("warmup")
			for _, c := range g.clients {
				if c != nil {
					wwg.Add(1)
					go g.writeLoop(c, &wwg)
				}
			}
			sleepCtx(ctx, cfg.warmup)
			g.phase.Store("measure")
			cpu0 = selfCPU()
			if cfg.serverPID > 0 {
				scpu0, _ = procCPU(cfg.serverPID)
			}
			t0 := time.Now()
			if !sleepCtx(ctx, cfg.duration) {
				// Interrupted: measure what ran.
				g.measureEnd.Store(g.now())
			}
			window = time.Since(t0)
			cpu1 = selfCPU()
			if cfg.serverPID > 0 {
				scpu1, _ = procCPU(cfg.serverPID)
				res.ServerRSSAfterKB, _ = procStatusKB(cfg.serverPID, "VmRSS")
			}
		}
	}
	g.stopWriters()
	wwg.Wait()

	// Drain what is still in flight.
	g.phase.Store("drain")
	deadline := time.Now().Add(cfg.drain)
	for g.deliveredTotal.Load() < g.sentTotal.Load()*fanout && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if want, got := g.sentTotal.Load()*fanout, g.deliveredTotal.Load(); got < want {
		g.errorf(kindLost, "%d of %d expected deliveries never arrived within -drain %v", want-got, want, cfg.drain)
		g.errs[kindLost].Add(want - got - 1)
	}
	if cfg.serverPID > 0 {
		res.ServerPeakRSSKB, _ = procStatusKB(cfg.serverPID, "VmHWM")
	}
	for _, c := range g.clients {
		if c != nil {
			c.shutdown()
		}
	}
	rwg.Wait()
	close(progressDone)
	bgWG.Wait()

	// Results.
	res.Sent = g.sentMeasured.Load()
	res.Delivered = g.deliveredMeasured.Load()
	if cfg.mode != "idle" {
		if w := time.Duration(g.measureEnd.Load() - g.warmupEnd.Load()); w > 0 && w < time.Duration(math.MaxInt64/2) {
			res.DurationSec = w.Seconds()
			res.MsgsPerSec = float64(res.Delivered) / w.Seconds()
		}
		if window > 0 {
			res.ClientCPUPct = 100 * float64(cpu1-cpu0) / float64(window)
			if cfg.serverPID > 0 {
				res.ServerCPUPct = 100 * float64(scpu1-scpu0) / float64(window)
			}
		}
	}
	res.Latency = stats.Summarize(g.lat.Merged())
	for _, c := range g.clients {
		if c != nil {
			r, w := c.wireBytes()
			res.WireBytesRecv += r
			res.WireBytesSent += w
		}
	}
	if n := g.sentTotal.Load(); n > 0 {
		res.WireBytesPerMsgSent = float64(res.WireBytesSent) / float64(n)
	}
	if n := g.deliveredTotal.Load(); n > 0 {
		res.WireBytesPerMsgRecv = float64(res.WireBytesRecv) / float64(n)
	}
	res.Errors = make(map[string]uint64)
	for _, k := range errorKinds {
		if n := g.errs[k].Load(); n > 0 {
			res.Errors[k] = n
		}
	}
	res.ErrorTotal = g.errorTotal()
	res.ErrorSamples = g.samples
	if g.connected == 0 {
		res.ErrorSamples = append(res.ErrorSamples, "no connection could be opened")
	}
	printResult(stdout, res)
	if cfg.jsonPath != "" {
		if err := result.Write(cfg.jsonPath, res); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
	}
	if res.ErrorTotal > 0 || g.connected == 0 {
		return 1
	}
	return 0
}

// sendOneEach sends one message on every live connection (idle mode).
func (g *gen) sendOneEach() {
	for _, c := range g.clients {
		if c == nil || c.dead.Load() {
			continue
		}
		<-c.tokens
		c.wmu.Lock()
		err := g.sendLocked(c, g.now())
		if err == nil {
			err = c.flushLocked()
		}
		c.wmu.Unlock()
		if err != nil {
			g.fail(c, err)
		}
	}
}

// sleepCtx sleeps for d; it returns false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func printResult(w io.Writer, r *result.Result) {
	kind := "binary"
	if r.Text {
		kind = "text"
	}
	if r.Payload != "" {
		kind = r.Payload
	}
	fmt.Fprintf(w, "server=%s cell=%s mode=%s conns=%d/%d size=%d(%s) depth=%d rate=%g/s go=%s\n",
		r.Server, r.Cell, r.Mode, r.Connected, r.Conns, r.Size, kind, r.Depth, r.Rate, runtime.Version())
	if r.Mode == "idle" {
		fmt.Fprintf(w, "  server rss: before %d KiB, after %d KiB, %.0f bytes per connection\n",
			r.ServerRSSBeforeKB, r.ServerRSSAfterKB, r.RSSPerConnBytes)
	} else {
		fmt.Fprintf(w, "  throughput: %.0f msgs/s over %.2fs (sent %d, delivered %d)\n",
			r.MsgsPerSec, r.DurationSec, r.Sent, r.Delivered)
		fmt.Fprintf(w, "  cpu: loadgen %.0f%% of a core", r.ClientCPUPct)
		if r.ServerCPUPct > 0 {
			fmt.Fprintf(w, ", server %.0f%%", r.ServerCPUPct)
		}
		fmt.Fprintln(w)
	}
	if r.CompressOffer != "" {
		fmt.Fprintf(w, "  compression: offered %s, negotiated on %d/%d connections (server context takeover on %d)\n",
			r.CompressOffer, r.CompressedConns, r.Connected, r.ServerTakeoverConns)
	}
	fmt.Fprintf(w, "  wire bytes: sent %d (%.0f per message), received %d (%.0f per message)\n",
		r.WireBytesSent, r.WireBytesPerMsgSent, r.WireBytesRecv, r.WireBytesPerMsgRecv)
	l := r.Latency
	fmt.Fprintf(w, "  latency us: p50=%.1f p90=%.1f p99=%.1f p99.9=%.1f max=%.1f mean=%.1f (n=%d)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, l.Count)
	fmt.Fprintf(w, "  errors: %d", r.ErrorTotal)
	for _, k := range errorKinds {
		if n := r.Errors[k]; n > 0 {
			fmt.Fprintf(w, " %s=%d", k, n)
		}
	}
	fmt.Fprintln(w)
	for _, s := range r.ErrorSamples {
		fmt.Fprintln(w, "    ", s)
	}
}
