package core

import (
	"net/http"
	"net/url"
	"time"
)

// Request is the snapshot of an HTTP request that a plugin sees: taken once
// by the host, read-only afterwards, and safe to read from any goroutine.
type Request struct {
	Method     string
	Path       string
	RawQuery   string
	Host       string
	RemoteAddr string      // the socket's peer address, host:port
	ClientIP   string      // the client's IP (the socket's, unless a trusted proxy says otherwise)
	Header     http.Header // do not modify
	Params     map[string]string
	Time       time.Time // when the host received the request
}

// Query parses RawQuery. It allocates on every call; keep the result.
func (r *Request) Query() url.Values {
	v, _ := url.ParseQuery(r.RawQuery)
	return v
}

// Param returns the value of a route wildcard, or "".
func (r *Request) Param(name string) string { return r.Params[name] }
