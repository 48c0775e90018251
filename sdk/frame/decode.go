package frame

import (
	"encoding/binary"
	"fmt"
)

// maxBuffer is the largest buffer Decode accepts: FlatBuffers offsets are
// 32-bit and the Go builder stops at 2 GiB. Streams cap frames far lower
// (DefaultMaxFrameSize).
const maxBuffer = 1<<31 - 1

// Field slots (vtable index) of each table in strand.fbs, in schema order.
// TestSlotsMatchSchema checks them against the generated code.
const (
	slotFrameSessionID = iota
	slotFrameSequence
	slotFrameKind
	slotFramePhase
	slotFrameMethod
	slotFrameCallID
	slotFrameStatus
	slotFramePayload
	slotFrameRequest
	slotFrameHeaderEdits
	slotFrameResponseStatus
	slotFrameCloseCode
	slotFrameCloseReason
	slotFrameHandshake
	slotFrameHello
	slotFrameCredits
	slotFrameResponseHeaders
	slotFrameSubprotocol
	slotFrameRoom
	slotFrameExcludeSelf
	slotFrameBytesIn
	slotFrameBytesOut
	slotFrameDurationNanos
	slotFrameError
	slotFrameEntry
	slotFrameUncompressed // ABI 1.2
	slotFrameRoute        // ABI 1.2
)

const (
	slotHelloPluginName = iota
	slotHelloEntries
	slotHelloMaxFrameSize
	slotHelloInitialCredits
)

const (
	slotEntryDeclName = iota
	slotEntryDeclPhases
)

const (
	slotRequestMethod = iota
	slotRequestPath
	slotRequestQuery
	slotRequestParams
	slotRequestHeaders
	slotRequestHost
	slotRequestClientAddr
	slotRequestTimestamp
	slotRequestRemoteAddr
	slotRequestExtraHeaders
)

const (
	slotKVName = iota
	slotKVValue
)

const (
	slotEditOp = iota
	slotEditName
	slotEditValue
)

const (
	slotHandshakeMagic = iota
	slotHandshakeABIMajor
	slotHandshakeABIMinor
)

// View is a decoded frame whose byte-slice accessors alias the buffer given
// to [Decode]: they are valid as long as that buffer is (for a buffer from
// a [Reader], until the next call to Reader.Next) and must not be modified.
// Copy what you keep.
//
// Decode has checked every offset and length the accessors use, so no
// accessor panics on a View that Decode returned without error (the indexed
// accessors panic only for an index out of range, like a slice). The zero
// View is an empty frame. A View is a value: copying it is cheap and it is
// safe for concurrent reads.
type View struct {
	buf []byte

	sessionID, sequence, callID       uint64
	method, responseStatus, closeCode uint16
	kind, phase, status               uint8
	hasRequest, hasHandshake          bool

	payload, closeReason span
	edits                vec
	req                  requestFields
	handshake            Handshake

	// ABI 1.1
	hasHello, excludeSelf             bool
	credits                           uint32
	hello                             helloFields
	respHeaders                       vec
	subprotocol, room, errText, entry span
	bytesIn, bytesOut, durationNanos  int64

	// ABI 1.2
	uncompressed bool
	route        span
}

type helloFields struct {
	pluginName                   span
	entries                      vec
	maxFrameSize, initialCredits uint32
}

// HelloView is the [Hello] of a [View]; its slices alias the same buffer,
// with the same validity.
type HelloView struct {
	buf []byte
	helloFields
}

// PluginName returns the plugin's name.
func (h *HelloView) PluginName() []byte { return h.pluginName.bytes(h.buf) }

// MaxFrameSize returns the largest frame the sender accepts (0: not said).
func (h *HelloView) MaxFrameSize() uint32 { return h.maxFrameSize }

// InitialCredits returns the plugin's credit window.
func (h *HelloView) InitialCredits() uint32 { return h.initialCredits }

// NumEntries returns the number of declared entries.
func (h *HelloView) NumEntries() int { return int(h.entries.n) }

// Entry returns the i-th declared entry; i must be in [0, NumEntries).
func (h *HelloView) Entry(i int) (name []byte, phases uint8) {
	t := h.entries.table(h.buf, i)
	return t.str(h.buf, slotEntryDeclName), t.uint8(h.buf, slotEntryDeclPhases)
}

// Hello returns the hello and whether the frame carries one.
func (v *View) Hello() (HelloView, bool) {
	return HelloView{buf: v.buf, helloFields: v.hello}, v.hasHello
}

// Credits returns the credits a MethodCredits call grants.
func (v *View) Credits() uint32 { return v.credits }

// NumResponseHeaders returns the number of the answer's headers.
func (v *View) NumResponseHeaders() int { return int(v.respHeaders.n) }

// ResponseHeader returns the i-th answer header; i must be in
// [0, NumResponseHeaders).
func (v *View) ResponseHeader(i int) (name, value []byte) {
	t := v.respHeaders.table(v.buf, i)
	return t.str(v.buf, slotKVName), t.str(v.buf, slotKVValue)
}

// Subprotocol returns the negotiated subprotocol, or nil.
func (v *View) Subprotocol() []byte { return v.subprotocol.bytes(v.buf) }

// Room returns the room of a room call, or nil.
func (v *View) Room() []byte { return v.room.bytes(v.buf) }

// ExcludeSelf reports whether a broadcast leaves its sender out.
func (v *View) ExcludeSelf() bool { return v.excludeSelf }

// Uncompressed reports whether a send asks to go without compression
// (ABI 1.2; false from a 1.1 peer).
func (v *View) Uncompressed() bool { return v.uncompressed }

// Route returns the route pattern of an open event (ABI 1.2), or nil.
func (v *View) Route() []byte { return v.route.bytes(v.buf) }

// BytesIn returns a Logging event's request body bytes.
func (v *View) BytesIn() int64 { return v.bytesIn }

// BytesOut returns a Logging event's response body bytes.
func (v *View) BytesOut() int64 { return v.bytesOut }

// DurationNanos returns a Logging event's duration.
func (v *View) DurationNanos() int64 { return v.durationNanos }

// Error returns the error text of a refusal, a reply or a Logging event,
// or nil.
func (v *View) Error() []byte { return v.errText.bytes(v.buf) }

// NumExtraHeaders returns the number of headers sent apart from a cached
// header set.
func (r *RequestView) NumExtraHeaders() int { return int(r.extraHeaders.n) }

// ExtraHeader returns the i-th extra header; i must be in
// [0, NumExtraHeaders).
func (r *RequestView) ExtraHeader(i int) (name, value []byte) {
	t := r.extraHeaders.table(r.buf, i)
	return t.str(r.buf, slotKVName), t.str(r.buf, slotKVValue)
}

// Entry returns the entry name of a phase event or an open event, or nil.
func (v *View) Entry() []byte { return v.entry.bytes(v.buf) }

// RemoteAddr returns the socket's peer address.
func (r *RequestView) RemoteAddr() []byte { return r.remoteAddr.bytes(r.buf) }

// RequestView is the request snapshot of a [View]; its slices alias the same
// buffer, with the same validity.
type RequestView struct {
	buf []byte
	requestFields
}

type requestFields struct {
	method, path, query, host, clientAddr span
	remoteAddr                            span
	params, headers, extraHeaders         vec
	timestamp                             int64
}

// span locates a string or byte vector: buf[off:off+n]; off 0 means absent.
type span struct{ off, n uint32 }

func (s span) bytes(b []byte) []byte {
	if s.off == 0 {
		return nil
	}
	end := s.off + s.n
	return b[s.off:end:end]
}

// vec locates a vector of tables: n offsets starting at off.
type vec struct{ off, n uint32 }

// Decode checks that buf is a well-formed frame and returns a View of it
// without allocating or copying. A malformed buffer returns an error
// wrapping ErrMalformed, never a panic. Fields Decode does not know (added
// by a newer ABI minor) are ignored.
func Decode(buf []byte) (View, error) {
	var v View
	err := v.decode(buf)
	if err != nil {
		return View{}, err
	}
	return v, nil
}

// SessionID returns the session (request or connection) the frame belongs to.
func (v *View) SessionID() uint64 { return v.sessionID }

// Sequence returns the frame's sequence number in its session and direction.
func (v *View) Sequence() uint64 { return v.sequence }

// Kind returns what the frame is.
func (v *View) Kind() Kind { return Kind(v.kind) }

// Phase returns the HTTP phase of an event.
func (v *View) Phase() Phase { return Phase(v.phase) }

// Method returns the method ID.
func (v *View) Method() Method { return Method(v.method) }

// CallID returns the ID that matches a reply to its call.
func (v *View) CallID() uint64 { return v.callID }

// Status returns the status of a reply.
func (v *View) Status() Status { return Status(v.status) }

// Payload returns the payload, or nil if there is none.
func (v *View) Payload() []byte { return v.payload.bytes(v.buf) }

// ResponseStatus returns the HTTP response status code, or 0.
func (v *View) ResponseStatus() uint16 { return v.responseStatus }

// CloseCode returns the WebSocket close code, or 0.
func (v *View) CloseCode() uint16 { return v.closeCode }

// CloseReason returns the WebSocket close reason, or nil.
func (v *View) CloseReason() []byte { return v.closeReason.bytes(v.buf) }

// Handshake returns the handshake and whether the frame carries one.
func (v *View) Handshake() (Handshake, bool) { return v.handshake, v.hasHandshake }

// Request returns the request snapshot and whether the frame carries one.
func (v *View) Request() (RequestView, bool) {
	return RequestView{buf: v.buf, requestFields: v.req}, v.hasRequest
}

// NumHeaderEdits returns the number of response header edits.
func (v *View) NumHeaderEdits() int { return int(v.edits.n) }

// HeaderEdit returns the i-th header edit; i must be in [0, NumHeaderEdits).
func (v *View) HeaderEdit(i int) (op HeaderOp, name, value []byte) {
	t := v.edits.table(v.buf, i)
	return HeaderOp(t.uint8(v.buf, slotEditOp)), t.str(v.buf, slotEditName), t.str(v.buf, slotEditValue)
}

// Method returns the HTTP method.
func (r *RequestView) Method() []byte { return r.method.bytes(r.buf) }

// Path returns the request path.
func (r *RequestView) Path() []byte { return r.path.bytes(r.buf) }

// Query returns the raw query, without '?'.
func (r *RequestView) Query() []byte { return r.query.bytes(r.buf) }

// Host returns the request host.
func (r *RequestView) Host() []byte { return r.host.bytes(r.buf) }

// ClientAddr returns the client IP, or IP:port.
func (r *RequestView) ClientAddr() []byte { return r.clientAddr.bytes(r.buf) }

// TimestampUnixNano returns when the host received the request.
func (r *RequestView) TimestampUnixNano() int64 { return r.timestamp }

// NumParams returns the number of route parameters.
func (r *RequestView) NumParams() int { return int(r.params.n) }

// Param returns the i-th route parameter; i must be in [0, NumParams).
func (r *RequestView) Param(i int) (name, value []byte) {
	t := r.params.table(r.buf, i)
	return t.str(r.buf, slotKVName), t.str(r.buf, slotKVValue)
}

// NumHeaders returns the number of request headers.
func (r *RequestView) NumHeaders() int { return int(r.headers.n) }

// Header returns the i-th request header in arrival order; i must be in
// [0, NumHeaders).
func (r *RequestView) Header(i int) (name, value []byte) {
	t := r.headers.table(r.buf, i)
	return t.str(r.buf, slotKVName), t.str(r.buf, slotKVValue)
}

// decode checks buf and fills v. Every position it stores has been checked
// against len(buf).
func (v *View) decode(buf []byte) error {
	if len(buf) > maxBuffer {
		return malformed("frame", "buffer larger than 2 GiB")
	}
	if len(buf) < 8 {
		return malformed("frame", "shorter than root offset and file identifier")
	}
	if string(buf[4:8]) != fileIdentifier {
		return malformed("frame", "wrong file identifier")
	}
	c := checker{b: buf}
	root := c.table(uint64(le32(buf)), "frame")
	if c.err != nil {
		return c.err
	}
	*v = View{buf: buf}
	if p := c.scalar(root, slotFrameSessionID, 8, "session_id"); p != 0 {
		v.sessionID = binary.LittleEndian.Uint64(buf[p:])
	}
	if p := c.scalar(root, slotFrameSequence, 8, "sequence"); p != 0 {
		v.sequence = binary.LittleEndian.Uint64(buf[p:])
	}
	if p := c.scalar(root, slotFrameKind, 1, "kind"); p != 0 {
		v.kind = buf[p]
	}
	if p := c.scalar(root, slotFramePhase, 1, "phase"); p != 0 {
		v.phase = buf[p]
	}
	if p := c.scalar(root, slotFrameMethod, 2, "method"); p != 0 {
		v.method = le16(buf[p:])
	}
	if p := c.scalar(root, slotFrameCallID, 8, "call_id"); p != 0 {
		v.callID = binary.LittleEndian.Uint64(buf[p:])
	}
	if p := c.scalar(root, slotFrameStatus, 1, "status"); p != 0 {
		v.status = buf[p]
	}
	v.payload = c.str(root, slotFramePayload, "payload")
	if t, ok := c.sub(root, slotFrameRequest, "request"); ok {
		v.hasRequest = true
		c.request(t, &v.req)
	}
	v.edits = c.tables(root, slotFrameHeaderEdits, "header_edits", headerEditTable)
	if p := c.scalar(root, slotFrameResponseStatus, 2, "response_status"); p != 0 {
		v.responseStatus = le16(buf[p:])
	}
	if p := c.scalar(root, slotFrameCloseCode, 2, "close_code"); p != 0 {
		v.closeCode = le16(buf[p:])
	}
	v.closeReason = c.str(root, slotFrameCloseReason, "close_reason")
	if t, ok := c.sub(root, slotFrameHandshake, "handshake"); ok {
		v.hasHandshake = true
		if p := c.scalar(t, slotHandshakeMagic, 4, "handshake.magic"); p != 0 {
			v.handshake.Magic = le32(buf[p:])
		}
		if p := c.scalar(t, slotHandshakeABIMajor, 2, "handshake.abi_major"); p != 0 {
			v.handshake.ABIMajor = le16(buf[p:])
		}
		if p := c.scalar(t, slotHandshakeABIMinor, 2, "handshake.abi_minor"); p != 0 {
			v.handshake.ABIMinor = le16(buf[p:])
		}
	}
	if t, ok := c.sub(root, slotFrameHello, "hello"); ok {
		v.hasHello = true
		v.hello.pluginName = c.str(t, slotHelloPluginName, "hello.plugin_name")
		v.hello.entries = c.tables(t, slotHelloEntries, "hello.entries", entryDeclTable)
		if p := c.scalar(t, slotHelloMaxFrameSize, 4, "hello.max_frame_size"); p != 0 {
			v.hello.maxFrameSize = le32(buf[p:])
		}
		if p := c.scalar(t, slotHelloInitialCredits, 4, "hello.initial_credits"); p != 0 {
			v.hello.initialCredits = le32(buf[p:])
		}
	}
	if p := c.scalar(root, slotFrameCredits, 4, "credits"); p != 0 {
		v.credits = le32(buf[p:])
	}
	v.respHeaders = c.tables(root, slotFrameResponseHeaders, "response_headers", kvTable)
	v.subprotocol = c.str(root, slotFrameSubprotocol, "subprotocol")
	v.room = c.str(root, slotFrameRoom, "room")
	if p := c.scalar(root, slotFrameExcludeSelf, 1, "exclude_self"); p != 0 {
		v.excludeSelf = buf[p] != 0
	}
	if p := c.scalar(root, slotFrameBytesIn, 8, "bytes_in"); p != 0 {
		v.bytesIn = int64(binary.LittleEndian.Uint64(buf[p:]))
	}
	if p := c.scalar(root, slotFrameBytesOut, 8, "bytes_out"); p != 0 {
		v.bytesOut = int64(binary.LittleEndian.Uint64(buf[p:]))
	}
	if p := c.scalar(root, slotFrameDurationNanos, 8, "duration_nanos"); p != 0 {
		v.durationNanos = int64(binary.LittleEndian.Uint64(buf[p:]))
	}
	v.errText = c.str(root, slotFrameError, "error")
	v.entry = c.str(root, slotFrameEntry, "entry")
	if p := c.scalar(root, slotFrameUncompressed, 1, "uncompressed"); p != 0 {
		v.uncompressed = buf[p] != 0
	}
	v.route = c.str(root, slotFrameRoute, "route")
	if c.err != nil {
		*v = View{}
		return c.err
	}
	return nil
}

func (c *checker) request(t table, r *requestFields) {
	r.method = c.str(t, slotRequestMethod, "request.method")
	r.path = c.str(t, slotRequestPath, "request.path")
	r.query = c.str(t, slotRequestQuery, "request.query")
	r.params = c.tables(t, slotRequestParams, "request.params", kvTable)
	r.headers = c.tables(t, slotRequestHeaders, "request.headers", kvTable)
	r.host = c.str(t, slotRequestHost, "request.host")
	r.clientAddr = c.str(t, slotRequestClientAddr, "request.client_addr")
	if p := c.scalar(t, slotRequestTimestamp, 8, "request.timestamp_unix_nano"); p != 0 {
		r.timestamp = int64(binary.LittleEndian.Uint64(c.b[p:]))
	}
	r.remoteAddr = c.str(t, slotRequestRemoteAddr, "request.remote_addr")
	r.extraHeaders = c.tables(t, slotRequestExtraHeaders, "request.extra_headers", kvTable)
}

// Element types of vectors of tables.
const (
	kvTable = iota
	headerEditTable
	entryDeclTable
)

// element checks the fields of one element of a vector of tables.
func (c *checker) element(t table, kind int, where string) {
	switch kind {
	case kvTable:
		c.str(t, slotKVName, where)
		c.str(t, slotKVValue, where)
	case headerEditTable:
		c.scalar(t, slotEditOp, 1, where)
		c.str(t, slotEditName, where)
		c.str(t, slotEditValue, where)
	case entryDeclTable:
		c.str(t, slotEntryDeclName, where)
		c.scalar(t, slotEntryDeclPhases, 1, where)
	}
}

// checker checks the parts of a buffer that accessors will touch. The first
// failure is kept in err; after it, results are zero values.
type checker struct {
	b   []byte
	err error
}

func (c *checker) fail(where, why string) {
	if c.err == nil {
		c.err = malformed(where, why)
	}
}

// table checks the table at pos (its vtable offset and its vtable).
func (c *checker) table(pos uint64, where string) table {
	t, why := tableAt(c.b, pos)
	if why != "" {
		c.fail(where, why)
	}
	return t
}

// scalar returns the position of a size-byte scalar field, or 0 if absent.
func (c *checker) scalar(t table, slot int, size uint64, where string) uint32 {
	p := t.field(c.b, slot)
	if p != 0 && uint64(p)+size > uint64(len(c.b)) {
		c.fail(where, "field out of bounds")
		return 0
	}
	return p
}

// str checks a string or byte-vector field.
func (c *checker) str(t table, slot int, where string) span {
	p := t.field(c.b, slot)
	if p == 0 {
		return span{}
	}
	s, why := spanAt(c.b, p)
	if why != "" {
		c.fail(where, why)
	}
	return s
}

// sub checks a table field and returns the table it points to.
func (c *checker) sub(t table, slot int, where string) (table, bool) {
	p := t.field(c.b, slot)
	if p == 0 {
		return table{}, false
	}
	target, why := offsetAt(c.b, p)
	if why != "" {
		c.fail(where, why)
		return table{}, false
	}
	st := c.table(target, where)
	return st, c.err == nil
}

// tables checks a vector-of-tables field and every element, whose type is
// kind.
func (c *checker) tables(t table, slot int, where string, kind int) vec {
	p := t.field(c.b, slot)
	if p == 0 {
		return vec{}
	}
	v, why := vecAt(c.b, p)
	if why != "" {
		c.fail(where, why)
		return vec{}
	}
	for i := uint32(0); i < v.n && c.err == nil; i++ {
		e := v.off + 4*i
		target := uint64(e) + uint64(le32(c.b[e:]))
		et, why := tableAt(c.b, target)
		if why != "" {
			c.fail(where, why)
			break
		}
		c.element(et, kind, where)
	}
	if c.err != nil {
		return vec{}
	}
	return v
}

// table locates a checked table: its position, its vtable and the
// vtable's size in bytes. The zero table has no fields.
type table struct {
	pos, vt uint32
	vtLen   uint16
}

// tableAt checks the table at pos and returns it, or a reason it is bad.
func tableAt(b []byte, pos uint64) (table, string) {
	n := uint64(len(b))
	if pos+4 > n {
		return table{}, "table out of bounds"
	}
	vt := int64(pos) - int64(int32(le32(b[pos:])))
	if vt < 0 || uint64(vt)+4 > n {
		return table{}, "vtable out of bounds"
	}
	vtLen := le16(b[vt:])
	if vtLen < 4 || vtLen%2 != 0 || uint64(vt)+uint64(vtLen) > n {
		return table{}, "bad vtable size"
	}
	return table{pos: uint32(pos), vt: uint32(vt), vtLen: vtLen}, ""
}

// field returns the position of a present field of t, or 0. It reads only
// the vtable, which tableAt checked.
func (t table) field(b []byte, slot int) uint32 {
	o := 4 + 2*uint32(slot)
	if o+2 > uint32(t.vtLen) {
		return 0
	}
	vo := le16(b[t.vt+o:])
	if vo == 0 {
		return 0
	}
	return t.pos + uint32(vo)
}

// offsetAt follows the uoffset stored at p.
func offsetAt(b []byte, p uint32) (uint64, string) {
	if uint64(p)+4 > uint64(len(b)) {
		return 0, "offset out of bounds"
	}
	return uint64(p) + uint64(le32(b[p:])), ""
}

// spanAt checks the string or byte vector whose offset is stored at p.
func spanAt(b []byte, p uint32) (span, string) {
	target, why := offsetAt(b, p)
	if why != "" {
		return span{}, why
	}
	if target+4 > uint64(len(b)) {
		return span{}, "vector length out of bounds"
	}
	n := uint64(le32(b[target:]))
	if target+4+n > uint64(len(b)) {
		return span{}, "vector data out of bounds"
	}
	return span{off: uint32(target + 4), n: uint32(n)}, ""
}

// vecAt checks the vector of offsets whose offset is stored at p (not the
// tables its elements point to).
func vecAt(b []byte, p uint32) (vec, string) {
	target, why := offsetAt(b, p)
	if why != "" {
		return vec{}, why
	}
	if target+4 > uint64(len(b)) {
		return vec{}, "vector length out of bounds"
	}
	n := uint64(le32(b[target:]))
	if target+4+4*n > uint64(len(b)) {
		return vec{}, "vector data out of bounds"
	}
	return vec{off: uint32(target + 4), n: uint32(n)}, ""
}

// table returns the i-th element of a checked vector of tables. It panics
// if i is out of range. It checks the element again rather than trusting
// Decode alone (defence in depth): a bad element reads as an empty table.
func (v vec) table(b []byte, i int) table {
	if i < 0 || i >= int(v.n) {
		panic(fmt.Sprintf("frame: index %d out of range [0:%d]", i, v.n))
	}
	e := v.off + 4*uint32(i)
	target, why := offsetAt(b, e)
	if why != "" {
		return table{}
	}
	t, _ := tableAt(b, target)
	return t
}

// str returns a string field of a table found by vec.table, or nil.
func (t table) str(b []byte, slot int) []byte {
	p := t.field(b, slot)
	if p == 0 {
		return nil
	}
	s, why := spanAt(b, p)
	if why != "" {
		return nil
	}
	return s.bytes(b)
}

// uint8 returns a one-byte field of a table found by vec.table, or 0.
func (t table) uint8(b []byte, slot int) uint8 {
	p := t.field(b, slot)
	if p == 0 || int(p) >= len(b) {
		return 0
	}
	return b[p]
}

// malformed returns an error wrapping ErrMalformed.
func malformed(where, why string) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, where, why)
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
