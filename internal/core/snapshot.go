package core

import (
	"net/http"
	"strings"
)

// handshakeOnly are the upgrade request's headers that mean nothing once
// the handshake is done (the negotiated subprotocol is Conn.Subprotocol).
var handshakeOnly = [...]string{"Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions"}

// ConnSnapshot returns the request snapshot a connection keeps for its
// lifetime: req without the handshake's own headers, the rest copied into
// one map and one value array, so that nothing of the parsed request stays
// reachable but the strings it keeps. An upgrade that sent only handshake
// headers keeps a nil Header.
func ConnSnapshot(req *Request) *Request {
	keep, values := 0, 0
	for k, v := range req.Header {
		if !isHandshakeOnly(k) {
			keep++
			values += len(v)
		}
	}
	c := *req
	c.Header = nil
	if keep > 0 {
		c.Header = make(http.Header, keep)
		all := make([]string, 0, values)
		for k, v := range req.Header {
			if !isHandshakeOnly(k) {
				all = append(all, v...)
				c.Header[k] = all[len(all)-len(v) : len(all) : len(all)]
			}
		}
	}
	return &c
}

func isHandshakeOnly(canonicalKey string) bool {
	for _, h := range handshakeOnly {
		if canonicalKey == h {
			return true
		}
	}
	return false
}

// PatternWildcards returns the wildcard names of a ServeMux pattern.
func PatternWildcards(pattern string) []string {
	var names []string
	for {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(pattern[i:], '}')
		if j < 0 {
			return names
		}
		name := strings.TrimSuffix(pattern[i+1:i+j], "...")
		if name != "$" && name != "" {
			names = append(names, name)
		}
		pattern = pattern[i+j+1:]
	}
}

// RouteParams matches a request (method and path) against a net/http
// ServeMux pattern and returns its wildcards' values, as a host routing on
// that pattern sets Request.Params; ok is false when it does not match.
func RouteParams(pattern, method, path string) (params map[string]string, ok bool) {
	names := PatternWildcards(pattern)
	mux := http.NewServeMux()
	mux.HandleFunc(pattern, func(_ http.ResponseWriter, r *http.Request) {
		ok = true
		if len(names) > 0 {
			params = make(map[string]string, len(names))
			for _, n := range names {
				params[n] = r.PathValue(n)
			}
		}
	})
	r, err := http.NewRequest(method, "http://host.invalid", nil)
	if err != nil {
		return nil, false
	}
	r.URL.Path = path
	mux.ServeHTTP(discardWriter{}, r)
	return params, ok
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
