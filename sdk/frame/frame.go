package frame

// Header is one header field or route parameter: a name and a value, kept
// as given (names are not canonicalised).
type Header struct {
	Name, Value string
}

// HeaderEdit is one change a plugin made to the response headers.
type HeaderEdit struct {
	Op          HeaderOp
	Name, Value string // Value is empty for HeaderRemove
}

// Handshake is the first frame's payload in each direction of a connection.
type Handshake struct {
	Magic    uint32 // Magic
	ABIMajor uint16 // ABIMajor of the sender; a different major is refused
	ABIMinor uint16 // ABIMinor of the sender; informational
}

// Request is the request snapshot sent with the first phase event of a
// session, so that reading it needs no round trip.
type Request struct {
	Method string
	Path   string
	Query  string   // raw query, without '?'
	Params []Header // route parameters
	// Headers in arrival order. Ignored when CachedHeaders is not nil.
	Headers []Header
	// CachedHeaders, when not nil, is encoded in place of Headers: a header
	// set encoded once, usually taken from a HeaderCache.
	CachedHeaders     *EncodedHeaders
	Host              string
	ClientAddr        string // client IP, or IP:port
	TimestampUnixNano int64  // when the host received the request
	RemoteAddr        string // the socket's peer address, host:port (ABI 1.1)
	// ExtraHeaders are headers kept out of CachedHeaders because their
	// values differ on every request (such as Sec-WebSocket-Key), so a
	// cache would only fill with them (ABI 1.1).
	ExtraHeaders []Header
}

// EntryDecl is one entry a plugin declares in its [Hello] (ABI 1.1).
type EntryDecl struct {
	Name string
	// Phases has bit (1 << Phase) set for each phase the entry handles,
	// PhaseWebSocket for WebSocket handlers.
	Phases uint8
}

// Hello is what one side says of itself in its handshake frame (ABI 1.1):
// the plugin its name, entries, frame size cap and credit window; the host
// its frame size cap.
type Hello struct {
	PluginName     string
	Entries        []EntryDecl
	MaxFrameSize   uint32 // the largest frame this side accepts
	InitialCredits uint32 // plugin: events the host may send before credits return
}

// Frame is one message between host and plugin, in the form the Encoder
// takes. Zero fields are not encoded and decode as zero; an empty Payload and
// a nil one are the same on the wire.
type Frame struct {
	SessionID      uint64 // a request or a connection; never reused
	Sequence       uint64 // per session and direction, from 1
	Kind           Kind
	Phase          Phase
	Method         Method
	CallID         uint64 // matches a reply to its call
	Status         Status // replies only
	Payload        []byte
	Request        *Request // optional request snapshot
	HeaderEdits    []HeaderEdit
	ResponseStatus uint16 // HTTP status code
	CloseCode      uint16 // WebSocket close code
	CloseReason    string // WebSocket close reason
	Handshake      *Handshake

	// ABI 1.1.
	Hello           *Hello
	Credits         uint32   // MethodCredits: events granted
	ResponseHeaders []Header // a ResponseFilter event: the answer's headers
	Subprotocol     string   // MethodEventWebSocketOpen: the negotiated subprotocol
	Room            string   // room calls
	ExcludeSelf     bool     // room broadcasts: leave the sender out
	BytesIn         int64    // a Logging event
	BytesOut        int64    // a Logging event
	DurationNanos   int64    // a Logging event
	Error           string   // a refusal's reason, a failed reply's or a Logging event's error
	Entry           string   // a phase event's or MethodEventWebSocketOpen's entry name

	// ABI 1.2.
	Uncompressed bool   // MethodWebSocketSendText/Binary: send without compression, whatever the connection negotiated
	Route        string // MethodEventWebSocketOpen: the pattern of the host's route that upgraded, for log lines
}
