package wsframework

import (
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/strandws/strand/internal/core"
)

type routeEntry struct {
	entry    *core.Entry
	rt       *core.Runtime
	failOpen bool
	metrics  *pluginMetrics // nil without Config.Metrics
}

// route runs a chain of plugin entries in front of a terminal handler.
type route struct {
	srv      *Server
	pattern  string
	params   []string
	chain    []routeEntry
	terminal http.Handler
	compress bool          // permessage-deflate may be negotiated (Config.Compression, RouteOptions)
	metrics  *routeMetrics // nil without Config.Metrics

	// What the chain registered, so unregistered phases cost nothing.
	anyResponseFilter bool
	anyBodyFilter     bool
	anyLogging        bool

	exchanges sync.Pool // *exchange (phases.go)
}

func (rt *route) init() {
	rt.params = core.PatternWildcards(rt.pattern)
	rt.metrics = rt.srv.metrics.newRoute(rt)
	for i := range rt.chain {
		e := rt.chain[i].entry
		rt.chain[i].failOpen = rt.srv.cfg.Plugins[e.Plugin().Name()].FailOpen
		rt.chain[i].metrics = rt.srv.metrics.plugin(e.Plugin().Name())
		rt.anyResponseFilter = rt.anyResponseFilter || e.Has(core.PhaseResponseFilter)
		rt.anyBodyFilter = rt.anyBodyFilter || e.Has(core.PhaseResponseBodyFilter)
		rt.anyLogging = rt.anyLogging || e.Has(core.PhaseLogging)
	}
}

func (rt *route) snapshot(r *http.Request, now time.Time) *core.Request {
	req := &core.Request{
		Method:     r.Method,
		Path:       r.URL.Path,
		RawQuery:   r.URL.RawQuery,
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr,
		ClientIP:   rt.srv.proxies.clientIP(r),
		Header:     r.Header,
		Time:       now,
	}
	if len(rt.params) > 0 {
		req.Params = make(map[string]string, len(rt.params))
		for _, n := range rt.params {
			req.Params[n] = r.PathValue(n)
		}
	}
	return req
}

func isWebSocketHandshake(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// checkOrigin applies the Origin policy described on Config.AllowedOrigins.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(hostWithPort(u.Host, u.Scheme), hostWithPort(r.Host, u.Scheme)) {
		return true
	}
	for _, p := range s.cfg.AllowedOrigins {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(origin)); ok {
			return true
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// hostWithPort adds the scheme's default port to a host without one, so
// that "http://example.com" matches "Host: example.com:80".
func hostWithPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" || scheme == "wss" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// admit reserves a connection slot, or writes the refusal and returns its
// status.
func (s *Server) admit(w http.ResponseWriter, ip string) int {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		s.stats.rejectedCap.Add(1)
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	if max := s.cfg.MaxConns; max > 0 && s.open.Load() >= int64(max) {
		s.mu.Unlock()
		s.stats.rejectedCap.Add(1)
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	if max := s.cfg.MaxConnsPerIP; max > 0 {
		ok := true
		s.perIP.Compute(ip, func(n int, _ bool) (int, bool) {
			if n >= max {
				ok = false
				return n, n == 0
			}
			return n + 1, false
		})
		if !ok {
			s.mu.Unlock()
			s.stats.rejectedIP.Add(1)
			http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
			return http.StatusTooManyRequests
		}
	}
	s.open.Add(1)
	s.connWG.Add(1)
	s.mu.Unlock()
	return 0
}

// release undoes admit.
func (s *Server) release(ip string) {
	if s.cfg.MaxConnsPerIP > 0 {
		s.perIP.Compute(ip, func(n int, _ bool) (int, bool) { return n - 1, n <= 1 })
	}
	s.open.Add(-1)
	s.connWG.Done()
}

// upgrade completes a WebSocket handshake decided by a request filter. On
// success it returns the connection, which the caller then serves on its
// goroutine (net/http no longer tracks a hijacked connection; the Server
// does, through connWG). On failure the refusal has been written.
// compress reports whether permessage-deflate may be negotiated on the
// route (compress.go).
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, rt *core.Runtime, rc *core.RequestContext, h *core.WebSocketHandlers, compress bool) (*conn, core.ConnInfo, int) {
	if !isWebSocketHandshake(r) {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "a WebSocket handshake is required here", http.StatusUpgradeRequired)
		return nil, core.ConnInfo{}, http.StatusUpgradeRequired
	}
	if !s.checkOrigin(r) {
		s.stats.rejectedOrigin.Add(1)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return nil, core.ConnInfo{}, http.StatusForbidden
	}
	// Negotiated here rather than through gobwas's HTTPUpgrader.Negotiate,
	// which refuses an empty header line that RFC 7230 says to ignore.
	pmd, err := negotiateDeflate(r.Header["Sec-Websocket-Extensions"], compress, s.cfg.Compression.ContextTakeover)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, core.ConnInfo{}, http.StatusBadRequest
	}
	req := rc.Request()
	if status := s.admit(w, req.ClientIP); status != 0 {
		return nil, core.ConnInfo{}, status
	}
	u := ws.HTTPUpgrader{Timeout: s.cfg.HandshakeTimeout}
	if len(s.cfg.Subprotocols) > 0 {
		u.Protocol = func(p string) bool { return slices.Contains(s.cfg.Subprotocols, p) }
	}
	if edits := rc.HeaderEdits(); len(edits) > 0 {
		u.Header = make(http.Header)
		core.ApplyHeaderEdits(u.Header, edits)
	}
	if pmd.on {
		// Written with any answer gobwas gives, a refusal included, where
		// it means nothing.
		u.Header = addDeflateAnswer(u.Header, pmd)
	}
	nc, rw, hs, err := u.Upgrade(r, w)
	if uw, ok := w.(*upgradeWriter); ok {
		uw.releaseWriter() // the 101 (or gobwas's refusal) is written
	}
	if err != nil {
		// gobwas has written the HTTP error response.
		if nc != nil {
			_ = nc.Close()
		}
		s.release(req.ClientIP)
		return nil, core.ConnInfo{}, http.StatusBadRequest
	}
	s.stats.accepted.Add(1)
	if pc, ok := nc.(*prefixConn); ok && len(pc.prefix) == 0 {
		// An upgrade net/http served (a keep-alive connection's later
		// request): its bytes are in rw.Reader, the socket is the TCP
		// connection again (and can go to the poll reader).
		nc = pc.Conn
	}
	c := newConn(s, s.nextID.Add(1), nc, rw.Reader, rt)
	if pmd.on {
		c.setDeflate(pmd)
		s.stats.compressed.Add(1)
	}
	info := core.ConnInfo{
		ID: c.id, Request: core.ConnSnapshot(req), Values: rc.Values(), Subprotocol: hs.Protocol, Handlers: h,
	}
	return c, info, http.StatusSwitchingProtocols
}
