package frame_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/strandws/strand/sdk/frame"
)

// A host sends a handshake and a text-message event over a stream; the
// plugin side reads and decodes them.
func Example() {
	var conn bytes.Buffer // a Unix socket in real use

	w, err := frame.NewWriter(&conn, frame.WriterConfig{})
	if err != nil {
		panic(err)
	}
	_ = w.WriteFrame(&frame.Frame{
		Kind:      frame.KindHandshake,
		Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor},
	})
	_ = w.WriteFrame(&frame.Frame{
		SessionID: 7, Sequence: 1, Kind: frame.KindEvent, Phase: frame.PhaseWebSocket,
		Method: frame.MethodEventTextMessage, Payload: []byte("hi"),
	})
	if err := w.Flush(); err != nil { // one write for both frames
		panic(err)
	}

	r, err := frame.NewReader(&conn, frame.ReaderConfig{})
	if err != nil {
		panic(err)
	}
	for {
		buf, err := r.Next() // valid until the next call to Next
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		v, err := frame.Decode(buf) // a malformed frame is an error, never a panic
		if err != nil {
			panic(err)
		}
		if hs, ok := v.Handshake(); ok {
			fmt.Println("handshake ok:", hs.Magic == frame.Magic && hs.ABIMajor == frame.ABIMajor)
			continue
		}
		fmt.Printf("session %d seq %d: %v %q\n", v.SessionID(), v.Sequence(), v.Method(), v.Payload())
	}
	// Output:
	// handshake ok: true
	// session 7 seq 1: EventTextMessage "hi"
}

// Headers that recur (same client, same proxy) are encoded once and copied
// into each frame.
func ExampleHeaderCache() {
	cache, err := frame.NewHeaderCache(frame.HeaderCacheConfig{}) // 1000 entries, 5 min idle TTL
	if err != nil {
		panic(err)
	}
	var pool frame.EncoderPool
	enc := pool.Get()
	defer pool.Put(enc)

	for _, hs := range [][]frame.Header{
		{{Name: "Host", Value: "example.com"}, {Name: "Accept", Value: "*/*"}},
		{{Name: "Accept", Value: "*/*"}, {Name: "Host", Value: "example.com"}}, // same set, other order
	} {
		f := frame.Frame{
			SessionID: 1, Sequence: 1, Kind: frame.KindEvent, Phase: frame.PhaseRequestFilter,
			Request: &frame.Request{Method: "GET", Path: "/", CachedHeaders: cache.Get(hs)},
		}
		v, err := frame.Decode(enc.Encode(&f))
		if err != nil {
			panic(err)
		}
		r, _ := v.Request()
		name, value := r.Header(0)
		fmt.Printf("%d headers, first %s: %s\n", r.NumHeaders(), name, value)
	}
	s := cache.Stats()
	fmt.Printf("hits %d misses %d size %d\n", s.Hits, s.Misses, s.Size)
	// Output:
	// 2 headers, first Host: example.com
	// 2 headers, first Host: example.com
	// hits 1 misses 1 size 1
}
