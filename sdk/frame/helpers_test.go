package frame_test

import (
	"testing"

	"github.com/strandws/strand/sdk/frame"
)

// copyOut reads every accessor of v into a Frame (headers of a cached set
// come back as Headers).
func copyOut(t testing.TB, v *frame.View) frame.Frame {
	t.Helper()
	f := frame.Frame{
		SessionID:      v.SessionID(),
		Sequence:       v.Sequence(),
		Kind:           v.Kind(),
		Phase:          v.Phase(),
		Method:         v.Method(),
		CallID:         v.CallID(),
		Status:         v.Status(),
		Payload:        clone(v.Payload()),
		ResponseStatus: v.ResponseStatus(),
		CloseCode:      v.CloseCode(),
		CloseReason:    string(v.CloseReason()),
		Credits:        v.Credits(),
		Subprotocol:    string(v.Subprotocol()),
		Room:           string(v.Room()),
		ExcludeSelf:    v.ExcludeSelf(),
		BytesIn:        v.BytesIn(),
		BytesOut:       v.BytesOut(),
		DurationNanos:  v.DurationNanos(),
		Error:          string(v.Error()),
		Entry:          string(v.Entry()),
		Uncompressed:   v.Uncompressed(),
		Route:          string(v.Route()),
	}
	if h, ok := v.Hello(); ok {
		f.Hello = &frame.Hello{PluginName: string(h.PluginName()), MaxFrameSize: h.MaxFrameSize(), InitialCredits: h.InitialCredits()}
		for i := range h.NumEntries() {
			n, ph := h.Entry(i)
			f.Hello.Entries = append(f.Hello.Entries, frame.EntryDecl{Name: string(n), Phases: ph})
		}
	}
	for i := range v.NumResponseHeaders() {
		n, val := v.ResponseHeader(i)
		f.ResponseHeaders = append(f.ResponseHeaders, frame.Header{Name: string(n), Value: string(val)})
	}
	if hs, ok := v.Handshake(); ok {
		f.Handshake = &hs
	}
	if r, ok := v.Request(); ok {
		f.Request = &frame.Request{
			Method:            string(r.Method()),
			Path:              string(r.Path()),
			Query:             string(r.Query()),
			Host:              string(r.Host()),
			ClientAddr:        string(r.ClientAddr()),
			TimestampUnixNano: r.TimestampUnixNano(),
			RemoteAddr:        string(r.RemoteAddr()),
		}
		for i := range r.NumParams() {
			n, val := r.Param(i)
			f.Request.Params = append(f.Request.Params, frame.Header{Name: string(n), Value: string(val)})
		}
		for i := range r.NumExtraHeaders() {
			n, val := r.ExtraHeader(i)
			f.Request.ExtraHeaders = append(f.Request.ExtraHeaders, frame.Header{Name: string(n), Value: string(val)})
		}
		for i := range r.NumHeaders() {
			n, val := r.Header(i)
			f.Request.Headers = append(f.Request.Headers, frame.Header{Name: string(n), Value: string(val)})
		}
	}
	for i := range v.NumHeaderEdits() {
		op, n, val := v.HeaderEdit(i)
		f.HeaderEdits = append(f.HeaderEdits, frame.HeaderEdit{Op: op, Name: string(n), Value: string(val)})
	}
	return f
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// normalize returns f as it reads back after a round trip: an empty payload
// is absent, and cached headers read back as Headers.
func normalize(f frame.Frame) frame.Frame {
	if len(f.Payload) == 0 {
		f.Payload = nil
	}
	if f.Request != nil {
		r := *f.Request
		if r.CachedHeaders != nil {
			r.Headers = r.CachedHeaders.Headers()
			r.CachedHeaders = nil
		}
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
		if len(r.Params) == 0 {
			r.Params = nil
		}
		if len(r.ExtraHeaders) == 0 {
			r.ExtraHeaders = nil
		}
		f.Request = &r
	}
	if len(f.HeaderEdits) == 0 {
		f.HeaderEdits = nil
	}
	if len(f.ResponseHeaders) == 0 {
		f.ResponseHeaders = nil
	}
	if f.Hello != nil && len(f.Hello.Entries) == 0 {
		h := *f.Hello
		h.Entries = nil
		f.Hello = &h
	}
	return f
}

// typicalHeaders is a browser's WebSocket upgrade request.
func typicalHeaders() []frame.Header {
	return []frame.Header{
		{Name: "Host", Value: "chat.example.com"},
		{Name: "User-Agent", Value: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		{Name: "Accept", Value: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{Name: "Accept-Language", Value: "en-US,en;q=0.5"},
		{Name: "Accept-Encoding", Value: "gzip, deflate, br, zstd"},
		{Name: "Origin", Value: "https://chat.example.com"},
		{Name: "Connection", Value: "keep-alive, Upgrade"},
		{Name: "Cookie", Value: "session=4f9c2a7e1b8d4c3a9e6f0b1c2d3e4f5a; theme=dark"},
		{Name: "Upgrade", Value: "websocket"},
		{Name: "Sec-WebSocket-Key", Value: "dGhlIHNhbXBsZSBub25jZQ=="},
	}
}

// sampleFrames are frames of different shapes, used by several tests.
func sampleFrames() map[string]frame.Frame {
	return map[string]frame.Frame{
		"empty": {},
		"handshake": {
			Kind:      frame.KindHandshake,
			Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor},
		},
		"text message": {
			SessionID: 42, Sequence: 7, Kind: frame.KindEvent, Phase: frame.PhaseWebSocket,
			Method: frame.MethodEventTextMessage, Payload: []byte("hello, strand"),
		},
		"request filter": {
			SessionID: 1 << 40, Sequence: 1, Kind: frame.KindEvent, Phase: frame.PhaseRequestFilter,
			Request: &frame.Request{
				Method: "GET", Path: "/chat/room/7", Query: "a=1&b=two",
				Params:     []frame.Header{{Name: "room", Value: "7"}},
				Headers:    typicalHeaders(),
				Host:       "chat.example.com",
				ClientAddr: "203.0.113.9:51234", TimestampUnixNano: 1_700_000_000_123_456_789,
			},
		},
		"reply with edits": {
			SessionID: 9, Sequence: 3, Kind: frame.KindReply, Method: frame.MethodNext, CallID: 77,
			Status: frame.StatusOk, ResponseStatus: 201,
			HeaderEdits: []frame.HeaderEdit{
				{Op: frame.HeaderSet, Name: "Content-Type", Value: "application/json"},
				{Op: frame.HeaderAdd, Name: "Set-Cookie", Value: "a=b"},
				{Op: frame.HeaderRemove, Name: "Server"},
			},
		},
		"close": {
			SessionID: 5, Sequence: 99, Kind: frame.KindEvent, Phase: frame.PhaseWebSocket,
			Method: frame.MethodEventClose, CloseCode: 1001, CloseReason: "going away",
		},
	}
}
