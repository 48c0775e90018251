package chatserver

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"strings"

	"github.com/strandws/strand/examples/chat/chatplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

//go:embed web
var webFS embed.FS

// DefaultMaxMessageBytes is the largest WebSocket message the chat server
// accepts when Config.Server.MaxMessageBytes is zero: room for a 4 KiB text
// with every character JSON-escaped. Larger ones close with 1009.
const DefaultMaxMessageBytes = 64 << 10

// Config configures the chat server. The zero value is valid.
type Config struct {
	// Chat configures the plugin (history, limits, rates).
	Chat chatplugin.Config
	// Server configures the host. A zero MaxMessageBytes means
	// DefaultMaxMessageBytes.
	Server wsframework.Config
	// Redis, if set, makes the server a node of a cluster: its rooms are
	// shared, through Redis, with every chat server given the same Redis
	// (Redis.URL). It overrides Server.Adapter and Chat.Cluster.
	Redis *redisadapter.Config
}

// Chat is a chat server: the host and the plugin it runs.
type Chat struct {
	Server *wsframework.Server
	Plugin *chatplugin.Chat
	// Redis is the room adapter when Config.Redis was set (nil otherwise);
	// the Server closes it on Shutdown.
	Redis *redisadapter.Adapter
}

// New builds the server and its routes. It serves nothing until the caller
// calls Server.Serve or Server.ListenAndServe, and the caller shuts it down
// with Server.Shutdown.
func New(cfg Config) (*Chat, error) {
	sc := cfg.Server
	if sc.MaxMessageBytes == 0 {
		sc.MaxMessageBytes = DefaultMaxMessageBytes
	}
	var ra *redisadapter.Adapter
	cl := &cluster{}
	if cfg.Redis != nil {
		rc := *cfg.Redis
		if rc.Logger == nil {
			rc.Logger = sc.Logger
		}
		var err error
		if ra, err = redisadapter.New(rc); err != nil {
			return nil, err
		}
		sc.Adapter = ra
		cfg.Chat.Cluster = cl
	}
	p, err := chatplugin.New(cfg.Chat)
	if err != nil {
		if ra != nil {
			_ = ra.Close()
		}
		return nil, err
	}
	srv, err := wsframework.New(sc)
	if err != nil {
		if ra != nil {
			_ = ra.Close()
		}
		return nil, err
	}
	if ra != nil {
		cl.srv = srv
		srv.OnRoomGap(func(g wsframework.RoomGap) {
			_ = srv.BroadcastLocal(g.Room, sdk.Text, p.GapNotice(g.Room))
		})
		// Not ready while Redis is unreachable: a load balancer sends new
		// clients to other nodes meanwhile.
		srv.AddReadinessCheck("redis", ra.Ready)
		if sc.Metrics != nil {
			// The adapter's counters next to the Server's.
			if err := sc.Metrics.Register(ra.Collector()); err != nil {
				_ = srv.Close()
				return nil, err
			}
		}
	}
	routes := []struct {
		pattern string
		h       http.Handler
	}{
		{"GET /healthz", srv.HealthzHandler()},
		{"GET /readyz", srv.ReadyzHandler()},
		{"GET /", PageHandler()},
	}
	if err := srv.Route("GET /ws", nil, p.Entry()); err != nil {
		return nil, err
	}
	for _, r := range routes {
		if err := srv.Handle(r.pattern, r.h); err != nil {
			return nil, err
		}
	}
	return &Chat{Server: srv, Plugin: p, Redis: ra}, nil
}

// cluster implements chatplugin.Cluster over the Server's room adapter.
type cluster struct{ srv *wsframework.Server }

func (c *cluster) Join(ctx context.Context, id uint64, room string, presence []byte, n int, keep func([]byte) bool, encode func([][]byte) []byte) error {
	for range 10 {
		// The newest history: Redis is ahead of what this node delivered.
		hist, top, err := c.history(ctx, room, n, keep)
		if err != nil {
			return err
		}
		// Atomically with the join: the history up to the room's position
		// on this node, which the live messages continue.
		_, err = c.srv.JoinRoomAfter(id, room, func(p wsframework.RoomPosition) (sdk.MessageType, []byte, bool) {
			if p.Offset != 0 && (p.Epoch != top.Epoch || p.Offset > top.Offset) {
				return 0, nil, false // published since the read: read again
			}
			for len(hist) > 0 && (p.Offset == 0 || hist[len(hist)-1].Pos.Offset > p.Offset) {
				hist = hist[:len(hist)-1] // not delivered here yet: they come live
			}
			if len(hist) > n {
				hist = hist[len(hist)-n:]
			}
			msgs := make([][]byte, len(hist))
			for i, h := range hist {
				msgs[i] = h.Data
			}
			return sdk.Text, encode(msgs), true
		})
		if errors.Is(err, wsframework.ErrPositionMoved) {
			continue
		}
		if err != nil {
			return err
		}
		return c.srv.SetPresence(id, room, presence)
	}
	return errors.New("chatserver: the room moved on while joining it")
}

// history reads the room's newest messages for which keep is true, n of
// them or more (as read), oldest first, and the position of the newest message of any
// kind. The room's history also holds joins and leaves: it reads back in
// pages until it has n or the history ends.
func (c *cluster) history(ctx context.Context, room string, n int, keep func([]byte) bool) ([]wsframework.HistoryMessage, wsframework.RoomPosition, error) {
	var kept []wsframework.HistoryMessage
	var top wsframework.RoomPosition
	var upTo wsframework.RoomPosition // zero: the newest
	for page := 0; len(kept) < n+n/2 && page < 10; page++ {
		hist, err := c.srv.RoomHistory(ctx, room, upTo, 2*n)
		if err != nil {
			return nil, top, err
		}
		if page == 0 && len(hist) > 0 {
			top = hist[len(hist)-1].Pos
		}
		var older []wsframework.HistoryMessage
		for _, h := range hist {
			if keep(h.Data) {
				older = append(older, h)
			}
		}
		kept = append(older, kept...)
		if len(hist) < 2*n || hist[0].Pos.Offset <= 1 {
			break
		}
		upTo = wsframework.RoomPosition{Epoch: hist[0].Pos.Epoch, Offset: hist[0].Pos.Offset - 1}
	}
	return kept, top, nil // maybe more than n: the caller trims to its position first
}

func (c *cluster) Members(ctx context.Context, room string) ([][]byte, error) {
	ms, err := c.srv.RoomPresence(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = m.Payload
	}
	return out, nil
}

// PageHandler serves the chat page (index.html, app.js, style.css, from
// the binary) with the headers of pageHeaders. The chat plugin's
// out-of-process main (examples/chat/plugin) serves it through a request
// filter.
func PageHandler() http.Handler {
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // "web" is embedded: fs.Sub cannot fail on it
	}
	return pageHeaders(http.FileServerFS(web))
}

// pageHeaders adds headers that keep the page to its own scripts and
// styles: user text could never run as markup even if a bug put it there.
func pageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		// 'self' covers same-origin WebSockets in current browsers; the
		// explicit ws/wss origin is for older ones.
		connect := "'self'"
		if r.Host != "" && !strings.ContainsAny(r.Host, " ;,'\"") {
			connect += " ws://" + r.Host + " wss://" + r.Host
		}
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data:; connect-src "+connect+"; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
