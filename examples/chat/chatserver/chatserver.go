package chatserver

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/strandws/strand/examples/chat/chatplugin"
	"github.com/strandws/strand/wsframework"
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
}

// Chat is a chat server: the host and the plugin it runs.
type Chat struct {
	Server *wsframework.Server
	Plugin *chatplugin.Chat
}

// New builds the server and its routes. It serves nothing until the caller
// calls Server.Serve or Server.ListenAndServe, and the caller shuts it down
// with Server.Shutdown.
func New(cfg Config) (*Chat, error) {
	p, err := chatplugin.New(cfg.Chat)
	if err != nil {
		return nil, err
	}
	sc := cfg.Server
	if sc.MaxMessageBytes == 0 {
		sc.MaxMessageBytes = DefaultMaxMessageBytes
	}
	srv, err := wsframework.New(sc)
	if err != nil {
		return nil, err
	}
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	routes := []struct {
		pattern string
		h       http.Handler
	}{
		{"GET /healthz", srv.HealthzHandler()},
		{"GET /readyz", srv.ReadyzHandler()},
		{"GET /", pageHeaders(http.FileServerFS(web))},
	}
	if err := srv.Route("GET /ws", nil, p.Entry()); err != nil {
		return nil, err
	}
	for _, r := range routes {
		if err := srv.Handle(r.pattern, r.h); err != nil {
			return nil, err
		}
	}
	return &Chat{Server: srv, Plugin: p}, nil
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
