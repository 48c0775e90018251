// Command plugin is the chat example's plugin (examples/chat/chatplugin) as
// a process of its own, for strand to run (examples/chat/strand.yaml):
//
//	go build -o bin/ ./cmd/strand && go build -o bin/chat-plugin ./examples/chat/plugin
//	./bin/strand -config examples/chat/strand.yaml    # then open http://127.0.0.1:8080/
//
// Its entry "chat" is the WebSocket (GET /ws?room=NAME&name=NICK, see
// examples/chat/README.md); its entry "page" serves the page (GET /,
// app.js, style.css) from the binary through a request filter, so the
// out-of-process chat needs nothing but strand and this plugin. -rate and
// -burst set a connection's message rate (chatplugin.Config).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/strandws/strand/examples/chat/chatplugin"
	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/serve"
)

func main() {
	var cfg chatplugin.Config
	flag.Float64Var(&cfg.Rate, "rate", 0, "messages per second a connection may send (0: chatplugin's default)")
	flag.IntVar(&cfg.Burst, "burst", 0, "messages a connection may send at once (0: chatplugin's default)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	chat, err := chatplugin.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat plugin:", err)
		os.Exit(2)
	}
	p := chat.Plugin()
	page := chatserver.PageHandler()
	p.Entry("page").RequestFilter(func(ctx *sdk.RequestContext) { servePage(ctx, page) })
	if err := serve.Run(ctx, p); err != nil {
		fmt.Fprintln(os.Stderr, "chat plugin:", err)
		os.Exit(1)
	}
}

// servePage answers the request with what h answers.
func servePage(ctx *sdk.RequestContext, h http.Handler) {
	req := ctx.Request()
	r := &http.Request{
		Method: req.Method, Host: req.Host, RemoteAddr: req.RemoteAddr,
		URL:    &url.URL{Path: req.Path, RawQuery: req.RawQuery},
		Header: req.Header.Clone(), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Body: http.NoBody,
	}
	r = r.WithContext(ctx.Context())
	w := &answer{header: make(http.Header)}
	h.ServeHTTP(w, r)
	for k, vs := range w.header {
		for i, v := range vs {
			if i == 0 {
				ctx.SetHeader(k, v)
			} else {
				ctx.AddHeader(k, v)
			}
		}
	}
	ctx.SetStatus(w.status)
	ctx.SetBody(w.body)
	ctx.End()
}

// answer is an http.ResponseWriter that keeps the answer.
type answer struct {
	header http.Header
	status int
	body   []byte
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *answer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	a.body = append(a.body, p...)
	return len(p), nil
}
