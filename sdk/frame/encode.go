package frame

import (
	"encoding/binary"
	"sync"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strandws/strand/sdk/frame/wire"
)

// maxPooledBuffer is the largest builder buffer an EncoderPool keeps; an
// encoder that grew beyond it (a frame with a large payload) is dropped so
// that one big frame does not pin memory in the pool.
const maxPooledBuffer = 1 << 20

// initialBuffer is a new encoder's buffer size: a phase event with a
// request snapshot fits without growing.
const initialBuffer = 2048

// Encoder encodes frames into FlatBuffers with a reused builder. After the
// first few frames it encodes without allocating.
//
// An Encoder is not safe for concurrent use; share encoders between
// goroutines through an [EncoderPool].
type Encoder struct {
	b    *flatbuffers.Builder
	offs []flatbuffers.UOffsetT // scratch: offsets of tables for a vector
	fid  [4]byte
}

// NewEncoder returns an Encoder with a fresh builder.
func NewEncoder() *Encoder {
	e := &Encoder{b: flatbuffers.NewBuilder(initialBuffer)}
	copy(e.fid[:], fileIdentifier)
	return e
}

// Encode encodes f as one FlatBuffers buffer (without the length prefix of
// the stream form). The result aliases the encoder's buffer: it is valid
// until the next call on e, or until e is put back in a pool.
//
// The FlatBuffers builder cannot grow beyond 2 GiB and panics if asked to;
// the stream form caps frames far below that (see [WriterConfig]).
func (e *Encoder) Encode(f *Frame) []byte {
	b := e.b
	b.Reset()

	var hs, payload, req, edits, reason flatbuffers.UOffsetT
	if f.Handshake != nil {
		wire.HandshakeStart(b)
		wire.HandshakeAddMagic(b, f.Handshake.Magic)
		wire.HandshakeAddAbiMajor(b, f.Handshake.ABIMajor)
		wire.HandshakeAddAbiMinor(b, f.Handshake.ABIMinor)
		hs = wire.HandshakeEnd(b)
	}
	if len(f.Payload) > 0 {
		payload = b.CreateByteVector(f.Payload)
	}
	if f.Request != nil {
		req = e.request(f.Request)
	}
	if len(f.HeaderEdits) > 0 {
		edits = e.headerEdits(f.HeaderEdits)
	}
	reason = e.str(f.CloseReason)
	var hello, respHeaders, subproto, room, errText, entry, route flatbuffers.UOffsetT
	if f.Hello != nil {
		hello = e.hello(f.Hello)
	}
	if len(f.ResponseHeaders) > 0 {
		respHeaders, e.offs = buildKVs(b, f.ResponseHeaders, e.offs)
	}
	subproto, room, errText, entry = e.str(f.Subprotocol), e.str(f.Room), e.str(f.Error), e.str(f.Entry)
	route = e.str(f.Route)

	wire.FrameStart(b)
	// Widest fields first, so the table needs no padding.
	wire.FrameAddSessionId(b, f.SessionID)
	wire.FrameAddSequence(b, f.Sequence)
	wire.FrameAddCallId(b, f.CallID)
	if f.BytesIn != 0 {
		wire.FrameAddBytesIn(b, f.BytesIn)
	}
	if f.BytesOut != 0 {
		wire.FrameAddBytesOut(b, f.BytesOut)
	}
	if f.DurationNanos != 0 {
		wire.FrameAddDurationNanos(b, f.DurationNanos)
	}
	wire.FrameAddPayload(b, payload)
	wire.FrameAddRequest(b, req)
	wire.FrameAddHeaderEdits(b, edits)
	wire.FrameAddCloseReason(b, reason)
	wire.FrameAddHandshake(b, hs)
	if hello != 0 {
		wire.FrameAddHello(b, hello)
	}
	if f.Credits != 0 {
		wire.FrameAddCredits(b, f.Credits)
	}
	if respHeaders != 0 {
		wire.FrameAddResponseHeaders(b, respHeaders)
	}
	if subproto != 0 {
		wire.FrameAddSubprotocol(b, subproto)
	}
	if room != 0 {
		wire.FrameAddRoom(b, room)
	}
	if errText != 0 {
		wire.FrameAddError(b, errText)
	}
	if entry != 0 {
		wire.FrameAddEntry(b, entry)
	}
	if route != 0 {
		wire.FrameAddRoute(b, route)
	}
	wire.FrameAddMethod(b, f.Method)
	wire.FrameAddResponseStatus(b, f.ResponseStatus)
	wire.FrameAddCloseCode(b, f.CloseCode)
	wire.FrameAddKind(b, f.Kind)
	wire.FrameAddPhase(b, f.Phase)
	wire.FrameAddStatus(b, f.Status)
	if f.ExcludeSelf {
		wire.FrameAddExcludeSelf(b, true)
	}
	if f.Uncompressed {
		wire.FrameAddUncompressed(b, true)
	}
	b.FinishWithFileIdentifier(wire.FrameEnd(b), e.fid[:])
	return b.FinishedBytes()
}

// AppendFrame appends f to dst in the stream form (a little-endian uint32
// length, then the FlatBuffers buffer) and returns the extended slice. Only
// dst is retained; e's buffer is free for the next call.
func (e *Encoder) AppendFrame(dst []byte, f *Frame) []byte {
	buf := e.Encode(f)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(buf)))
	return append(dst, buf...)
}

// str creates a string, or nothing (offset 0) for the empty string.
func (e *Encoder) str(s string) flatbuffers.UOffsetT {
	if s == "" {
		return 0
	}
	return e.b.CreateString(s)
}

func (e *Encoder) request(r *Request) flatbuffers.UOffsetT {
	b := e.b
	var params, headers flatbuffers.UOffsetT
	if len(r.Params) > 0 {
		params, e.offs = buildKVs(b, r.Params, e.offs)
	}
	switch {
	case r.CachedHeaders != nil:
		headers = r.CachedHeaders.appendTo(b)
	case len(r.Headers) > 0:
		headers, e.offs = buildKVs(b, r.Headers, e.offs)
	}
	var extra flatbuffers.UOffsetT
	if len(r.ExtraHeaders) > 0 {
		extra, e.offs = buildKVs(b, r.ExtraHeaders, e.offs)
	}
	method, path, query := e.str(r.Method), e.str(r.Path), e.str(r.Query)
	host, addr, remote := e.str(r.Host), e.str(r.ClientAddr), e.str(r.RemoteAddr)

	wire.RequestStart(b)
	wire.RequestAddTimestampUnixNano(b, r.TimestampUnixNano)
	wire.RequestAddMethod(b, method)
	wire.RequestAddPath(b, path)
	wire.RequestAddQuery(b, query)
	wire.RequestAddParams(b, params)
	wire.RequestAddHeaders(b, headers)
	wire.RequestAddHost(b, host)
	wire.RequestAddClientAddr(b, addr)
	if remote != 0 {
		wire.RequestAddRemoteAddr(b, remote)
	}
	if extra != 0 {
		wire.RequestAddExtraHeaders(b, extra)
	}
	return wire.RequestEnd(b)
}

func (e *Encoder) hello(h *Hello) flatbuffers.UOffsetT {
	b := e.b
	var entries flatbuffers.UOffsetT
	if len(h.Entries) > 0 {
		offs := e.offs[:0]
		for i := range h.Entries {
			name := e.str(h.Entries[i].Name)
			wire.EntryDeclStart(b)
			wire.EntryDeclAddName(b, name)
			wire.EntryDeclAddPhases(b, h.Entries[i].Phases)
			offs = append(offs, wire.EntryDeclEnd(b))
		}
		e.offs = offs
		entries = tableVector(b, offs)
	}
	name := e.str(h.PluginName)
	wire.HelloStart(b)
	wire.HelloAddPluginName(b, name)
	wire.HelloAddEntries(b, entries)
	wire.HelloAddMaxFrameSize(b, h.MaxFrameSize)
	wire.HelloAddInitialCredits(b, h.InitialCredits)
	return wire.HelloEnd(b)
}

func (e *Encoder) headerEdits(edits []HeaderEdit) flatbuffers.UOffsetT {
	b := e.b
	offs := e.offs[:0]
	for i := range edits {
		name, value := e.str(edits[i].Name), e.str(edits[i].Value)
		wire.HeaderEditStart(b)
		wire.HeaderEditAddName(b, name)
		wire.HeaderEditAddValue(b, value)
		wire.HeaderEditAddOp(b, edits[i].Op)
		offs = append(offs, wire.HeaderEditEnd(b))
	}
	e.offs = offs
	return tableVector(b, offs)
}

// buildKVs writes hs as a vector of KV tables and returns its offset and
// the scratch slice (reused for the next call).
func buildKVs(b *flatbuffers.Builder, hs []Header, offs []flatbuffers.UOffsetT) (flatbuffers.UOffsetT, []flatbuffers.UOffsetT) {
	offs = offs[:0]
	for i := range hs {
		var name, value flatbuffers.UOffsetT
		if hs[i].Name != "" {
			name = b.CreateString(hs[i].Name)
		}
		if hs[i].Value != "" {
			value = b.CreateString(hs[i].Value)
		}
		wire.KVStart(b)
		wire.KVAddName(b, name)
		wire.KVAddValue(b, value)
		offs = append(offs, wire.KVEnd(b))
	}
	return tableVector(b, offs), offs
}

// tableVector writes a vector of the tables at offs.
func tableVector(b *flatbuffers.Builder, offs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	b.StartVector(flatbuffers.SizeUOffsetT, len(offs), flatbuffers.SizeUOffsetT)
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

// EncoderPool is a pool of Encoders, to be created by whoever owns the
// encoding goroutines and passed to them (there is no package-level pool).
// The zero value is ready to use. It is safe for concurrent use and must not
// be copied after first use.
type EncoderPool struct {
	p sync.Pool
}

// Get returns a pooled Encoder, or a new one.
func (p *EncoderPool) Get() *Encoder {
	if e, ok := p.p.Get().(*Encoder); ok {
		return e
	}
	return NewEncoder()
}

// Put returns e to the pool. Slices returned by e.Encode become invalid.
// An encoder whose buffer grew beyond 1 MiB is dropped instead of pooled.
func (p *EncoderPool) Put(e *Encoder) {
	if e == nil || cap(e.b.Bytes) > maxPooledBuffer {
		return
	}
	p.p.Put(e)
}
