package pluglink

import (
	"net/http"
	"sort"
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/frame"
)

// volatile are the headers whose values differ on every request: they
// travel in Request.ExtraHeaders, never in a cached header set.
var volatile = map[string]bool{
	"Sec-Websocket-Key": true,
	"X-Request-Id":      true,
	"Traceparent":       true,
	"Tracestate":        true,
	"X-Amzn-Trace-Id":   true,
	"X-B3-Traceid":      true,
	"X-B3-Spanid":       true,
	"Content-Length":    true,
}

// EncodeRequest fills fr with req's snapshot: the stable headers through
// cache (nil: encoded every time), the volatile ones beside them. Header
// order between names is not kept (http.Header has none); the values of one
// name keep their order.
func EncodeRequest(fr *frame.Request, req *core.Request, cache *frame.HeaderCache) {
	*fr = frame.Request{
		Method: req.Method, Path: req.Path, Query: req.RawQuery, Host: req.Host,
		ClientAddr: req.ClientIP, RemoteAddr: req.RemoteAddr,
	}
	if !req.Time.IsZero() {
		fr.TimestampUnixNano = req.Time.UnixNano()
	}
	if len(req.Params) > 0 {
		fr.Params = make([]frame.Header, 0, len(req.Params))
		for k, v := range req.Params {
			fr.Params = append(fr.Params, frame.Header{Name: k, Value: v})
		}
		sort.Slice(fr.Params, func(i, j int) bool { return fr.Params[i].Name < fr.Params[j].Name })
	}
	if len(req.Header) == 0 {
		return
	}
	var stable []frame.Header
	for k, vs := range req.Header {
		for _, v := range vs {
			if volatile[k] {
				fr.ExtraHeaders = append(fr.ExtraHeaders, frame.Header{Name: k, Value: v})
			} else {
				stable = append(stable, frame.Header{Name: k, Value: v})
			}
		}
	}
	if cache != nil && len(stable) > 0 {
		fr.CachedHeaders = cache.Get(stable)
	} else {
		fr.Headers = stable
	}
}

// DecodeRequest returns the request snapshot of r.
func DecodeRequest(r *frame.RequestView) *core.Request {
	req := &core.Request{
		Method: string(r.Method()), Path: string(r.Path()), RawQuery: string(r.Query()),
		Host: string(r.Host()), ClientIP: string(r.ClientAddr()), RemoteAddr: string(r.RemoteAddr()),
	}
	if ts := r.TimestampUnixNano(); ts != 0 {
		req.Time = time.Unix(0, ts)
	}
	if n := r.NumParams(); n > 0 {
		req.Params = make(map[string]string, n)
		for i := range n {
			k, v := r.Param(i)
			req.Params[string(k)] = string(v)
		}
	}
	if n := r.NumHeaders() + r.NumExtraHeaders(); n > 0 {
		req.Header = make(http.Header, n)
		for i := range r.NumHeaders() {
			k, v := r.Header(i)
			req.Header[string(k)] = append(req.Header[string(k)], string(v))
		}
		for i := range r.NumExtraHeaders() {
			k, v := r.ExtraHeader(i)
			req.Header[string(k)] = append(req.Header[string(k)], string(v))
		}
	}
	return req
}

// Phase bits of frame.EntryDecl.Phases.
const (
	BitRequestFilter = 1 << frame.PhaseRequestFilter
	BitResponse      = 1 << frame.PhaseResponseFilter
	BitBody          = 1 << frame.PhaseResponseBodyFilter
	BitLogging       = 1 << frame.PhaseLogging
	BitWebSocket     = 1 << frame.PhaseWebSocket
)

// Phases returns the phase bits of e.
func Phases(e *core.Entry) uint8 {
	var b uint8
	if e.Has(core.PhaseRequestFilter) {
		b |= BitRequestFilter
	}
	if e.Has(core.PhaseResponseFilter) {
		b |= BitResponse
	}
	if e.Has(core.PhaseResponseBodyFilter) {
		b |= BitBody
	}
	if e.Has(core.PhaseLogging) {
		b |= BitLogging
	}
	if e.WebSocketHandlers() != nil {
		b |= BitWebSocket
	}
	return b
}

// Error texts a reply carries for the room errors, so the plugin's Join and
// Leave return the same errors as in process.
var roomErrors = []error{core.ErrTooManyRooms, core.ErrClosed, core.ErrRoomsUnsupported, core.ErrInvalidRoom, core.ErrMessageType, core.ErrTooBig, core.ErrBodyTooLarge, core.ErrPhaseOver, core.ErrCallTimeout}

// ErrorText returns err's text for a reply.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ErrorFromText returns the sdk error whose text is s, or an error with
// that text.
func ErrorFromText(s string) error {
	for _, e := range roomErrors {
		if e.Error() == s {
			return e
		}
	}
	return textError(s)
}

type textError string

func (e textError) Error() string { return string(e) }
