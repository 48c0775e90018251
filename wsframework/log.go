package wsframework

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/strandws/strand/internal/core"
)

// Logging. The Server logs through Config.Logger (log/slog), net/http's
// error log included. Every line about a connection carries, first, its
// ID ("conn"), its route's pattern ("route") and the plugin serving it
// ("plugin"), the names the sdk runtime's own lines use for the first and
// last. A connection keeps no logger of its own: a Logger.With per
// connection would hold its formatted attributes for the connection's
// whole life, idle or not. The attributes are built when a line is
// written (logConn), and lines on a path every connection takes (open,
// close) are behind connLogOn, so a level that is off costs one Enabled
// call per connection, and no line is written per message.

// connLogOn reports whether lines about connections at level are written.
func (s *Server) connLogOn(level slog.Level) bool {
	return s.cfg.Logger.Enabled(context.Background(), level)
}

// logConn writes one line about c at level: conn, route and plugin, then
// args (key-value pairs or slog.Attrs, as for slog.Logger.Log). The line's
// source is logConn's caller.
func (c *conn) logConn(level slog.Level, msg string, args ...any) {
	l := c.srv.cfg.Logger
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // skip Callers and logConn
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	route, plugin := c.Route(), ""
	if c.rt != nil {
		plugin = c.rt.Plugin().Name()
	}
	r.AddAttrs(slog.Uint64("conn", c.id), slog.String("route", route), slog.String("plugin", plugin))
	r.Add(args...)
	_ = l.Handler().Handle(ctx, r)
}

var _ core.RouteNamer = (*conn)(nil)

// Route implements core.RouteNamer: the pattern of the route c was
// upgraded on, for log lines about it ("" before it has one).
func (c *conn) Route() string {
	if c.route != nil {
		return c.route.pattern
	}
	return ""
}

// connRoute names the route of the open connection id (the runtime's
// ConnRoute, for the dispatcher's reports), or "".
func (s *Server) connRoute(id uint64) string {
	if c, ok := s.conns.Load(id); ok {
		return c.Route()
	}
	return ""
}
