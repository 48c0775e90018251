package host

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// upstream is a route's terminal for an upstream: a reverse proxy to it.
// A WebSocket upgrade that no entry took is proxied as a WebSocket
// (httputil.ReverseProxy hijacks the client connection once the upstream
// answers 101, and copies both ways until either side closes).
func upstream(raw string, tr http.RoundTripper, log *slog.Logger) (http.Handler, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", raw, err)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("strand: upstream", "upstream", raw, "path", r.URL.Path, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}, nil
}

// newTransport is the upstreams' transport.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // strand talks to its upstream directly
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
