package redisadapter

import (
	"encoding/binary"
	"testing"

	"github.com/strandws/strand/sdk"
)

// encodeMessage is what the publish script publishes: offset, epoch, body.
func encodeMessage(off uint64, epoch string, body []byte) string {
	b := binary.BigEndian.AppendUint64(nil, off)
	b = append(b, byte(len(epoch)))
	b = append(b, epoch...)
	return string(append(b, body...))
}

// encodeBody is what Publish stores and publishes after the offset.
func encodeBody(typ sdk.MessageType, exclude bool, node [8]byte, from uint64, data []byte) []byte {
	h := []byte{bodyVersion, byte(typ), 0}
	if exclude {
		h[2] = flagExclude
	}
	h = append(h, node[:]...)
	h = binary.BigEndian.AppendUint64(h, from)
	return append(h, data...)
}

// FuzzParseMessage: what arrives on a room's channel (or from its history)
// is untrusted; parsing never panics, accepts only what fits, and reads
// back what was encoded.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte{}, uint64(1), "e.1", []byte("hello"), uint64(7))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 200}, uint64(0), "", []byte{}, uint64(0))
	f.Add([]byte(encodeMessage(3, "ep", encodeBody(sdk.Binary, true, [8]byte{1}, 9, []byte{0xff}))), uint64(1<<63), "x", []byte{1, 2}, uint64(1))
	f.Fuzz(func(t *testing.T, raw []byte, off uint64, epoch string, data []byte, from uint64) {
		// Arbitrary bytes.
		o, e, body, ok := parseMessage(string(raw))
		if ok {
			if 9+len(e)+len(body) != len(raw) || len(body) < hdrLen || o != binary.BigEndian.Uint64(raw) {
				t.Fatalf("accepted %q as offset %d, epoch %q, body %q", raw, o, e, body)
			}
		}
		if b, ok := parseBody(string(raw)); ok && (len(raw) < hdrLen || raw[0] != bodyVersion || b.data != string(raw[hdrLen:])) {
			t.Fatalf("accepted body %q", raw)
		}
		// A well-formed message reads back.
		if len(epoch) > 255 {
			epoch = epoch[:255]
		}
		node := [8]byte{byte(from), 2, 3}
		enc := encodeMessage(off, epoch, encodeBody(sdk.Text, from%2 == 0, node, from, data))
		o, e, body, ok = parseMessage(enc)
		if !ok || o != off || e != epoch {
			t.Fatalf("round trip: ok %v offset %d epoch %q", ok, o, e)
		}
		b, ok := parseBody(body)
		if !ok || b.typ != sdk.Text || b.exclude != (from%2 == 0) || b.node != string(node[:]) || b.from != from || b.data != string(data) {
			t.Fatalf("round trip: %+v", b)
		}
	})
}
