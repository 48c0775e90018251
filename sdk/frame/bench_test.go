package frame_test

import (
	"fmt"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strandws/strand/sdk/frame"
	"github.com/strandws/strand/sdk/frame/wire"
)

// benchFrame is a typical phase event: a request snapshot with ten headers.
func benchFrame() frame.Frame {
	return sampleFrames()["request filter"]
}

func BenchmarkFrameEncode(b *testing.B) {
	f := benchFrame()
	enc := frame.NewEncoder()
	b.ReportAllocs()
	b.SetBytes(int64(len(enc.Encode(&f))))
	for b.Loop() {
		enc.Encode(&f)
	}
}

// BenchmarkFrameEncodeCachedHeaders encodes the same frame with its headers
// taken from a HeaderCache (lookup included).
func BenchmarkFrameEncodeCachedHeaders(b *testing.B) {
	f := benchFrame()
	c, err := frame.NewHeaderCache(frame.HeaderCacheConfig{})
	if err != nil {
		b.Fatal(err)
	}
	hs := f.Request.Headers
	enc := frame.NewEncoder()
	b.ReportAllocs()
	for b.Loop() {
		f.Request.CachedHeaders = c.Get(hs)
		enc.Encode(&f)
	}
}

// BenchmarkFrameDecode decodes (checking the whole buffer) and reads every
// field.
func BenchmarkFrameDecode(b *testing.B) {
	f := benchFrame()
	f.Payload = []byte("payload")
	f.HeaderEdits = sampleFrames()["reply with edits"].HeaderEdits
	buf := frame.NewEncoder().Encode(&f)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	var n int
	for b.Loop() {
		v, err := frame.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
		n += int(v.SessionID()+v.Sequence()+v.CallID()) + int(v.Kind()) + int(v.Phase()) +
			int(v.Method()) + int(v.Status()) + len(v.Payload()) + int(v.ResponseStatus()) +
			int(v.CloseCode()) + len(v.CloseReason())
		r, _ := v.Request()
		n += len(r.Method()) + len(r.Path()) + len(r.Query()) + len(r.Host()) + len(r.ClientAddr()) + int(r.TimestampUnixNano())
		for i := range r.NumParams() {
			k, val := r.Param(i)
			n += len(k) + len(val)
		}
		for i := range r.NumHeaders() {
			k, val := r.Header(i)
			n += len(k) + len(val)
		}
		for i := range v.NumHeaderEdits() {
			op, k, val := v.HeaderEdit(i)
			n += int(op) + len(k) + len(val)
		}
	}
	if n == 0 {
		b.Fatal("nothing read")
	}
}

// BenchmarkFrameDecodeGenerated is the baseline: the flatc-generated
// accessors, which check nothing, reading the same fields.
func BenchmarkFrameDecodeGenerated(b *testing.B) {
	f := benchFrame()
	f.Payload = []byte("payload")
	f.HeaderEdits = sampleFrames()["reply with edits"].HeaderEdits
	buf := frame.NewEncoder().Encode(&f)
	b.ReportAllocs()
	var n int
	var g wire.Frame
	var r wire.Request
	var kv wire.KV
	var he wire.HeaderEdit
	for b.Loop() {
		g.Init(buf, flatbuffers.GetUOffsetT(buf))
		n += int(g.SessionId()+g.Sequence()+g.CallId()) + int(g.Kind()) + int(g.Phase()) +
			int(g.Method()) + int(g.Status()) + len(g.PayloadBytes()) + int(g.ResponseStatus()) +
			int(g.CloseCode()) + len(g.CloseReason())
		g.Request(&r)
		n += len(r.Method()) + len(r.Path()) + len(r.Query()) + len(r.Host()) + len(r.ClientAddr()) + int(r.TimestampUnixNano())
		for i := range r.ParamsLength() {
			r.Params(&kv, i)
			n += len(kv.Name()) + len(kv.Value())
		}
		for i := range r.HeadersLength() {
			r.Headers(&kv, i)
			n += len(kv.Name()) + len(kv.Value())
		}
		for i := range g.HeaderEditsLength() {
			g.HeaderEdits(&he, i)
			n += int(he.Op()) + len(he.Name()) + len(he.Value())
		}
	}
	if n == 0 {
		b.Fatal("nothing read")
	}
}

// BenchmarkHeaderEncode encodes a typical ten-header set from scratch into
// a reused encoder: the work a cache hit saves.
func BenchmarkHeaderEncode(b *testing.B) {
	f := frame.Frame{Request: &frame.Request{Headers: typicalHeaders()}}
	enc := frame.NewEncoder()
	b.ReportAllocs()
	for b.Loop() {
		enc.Encode(&f)
	}
}

// BenchmarkHeaderCacheHit looks the same set up in a HeaderCache. It is the
// only cached set of its shape, so the hit takes the shape index: shape
// (lengths only), full comparison, LRU and TTL bookkeeping, no lock.
// BenchmarkHeaderCacheHitSameShape measures hits by key.
func BenchmarkHeaderCacheHit(b *testing.B) {
	c, err := frame.NewHeaderCache(frame.HeaderCacheConfig{})
	if err != nil {
		b.Fatal(err)
	}
	// A fresh copy of the strings, as a host parsing a new request has.
	hs := typicalHeaders()
	c.Get(hs)
	hs = cloneHeaders(hs)
	b.ReportAllocs()
	for b.Loop() {
		c.Get(hs)
	}
	if s := c.Stats(); s.Misses != 1 {
		b.Fatalf("%d misses", s.Misses)
	}
}

// BenchmarkHeaderCacheHitSameShape hits 64 sets that differ only in the
// session cookie, as a browser's requests from different users do: every
// set shares its shape (header count and lengths) with the others, so hits
// hash the set and look it up by key instead of taking the shape fast path.
func BenchmarkHeaderCacheHitSameShape(b *testing.B) {
	c, err := frame.NewHeaderCache(frame.HeaderCacheConfig{})
	if err != nil {
		b.Fatal(err)
	}
	sets := make([][]frame.Header, 64)
	for i := range sets {
		sets[i] = typicalHeaders()
		sets[i][7].Value = fmt.Sprintf("session=%032x; theme=dark", i)
		c.Get(sets[i])
		sets[i] = cloneHeaders(sets[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Get(sets[i%len(sets)])
		i++
	}
	if s := c.Stats(); s.Misses != uint64(len(sets)) {
		b.Fatalf("%d misses", s.Misses)
	}
}

// BenchmarkHeaderCacheMiss cycles through more sets than the cache holds,
// so that every Get encodes, inserts and evicts.
func BenchmarkHeaderCacheMiss(b *testing.B) {
	c, err := frame.NewHeaderCache(frame.HeaderCacheConfig{MaxEntries: 256})
	if err != nil {
		b.Fatal(err)
	}
	sets := make([][]frame.Header, 512)
	for i := range sets {
		sets[i] = typicalHeaders()
		sets[i][7].Value = fmt.Sprintf("session=%032x; theme=dark", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Get(sets[i%len(sets)])
		i++
	}
	if s := c.Stats(); s.Hits != 0 {
		b.Fatalf("%d hits", s.Hits)
	}
}

// BenchmarkHeaderCacheHitSpliced is a hit plus copying the cached set into
// a frame (the Request holds nothing else), to compare with
// BenchmarkHeaderEncode.
func BenchmarkHeaderCacheHitSpliced(b *testing.B) {
	c, err := frame.NewHeaderCache(frame.HeaderCacheConfig{})
	if err != nil {
		b.Fatal(err)
	}
	hs := typicalHeaders()
	c.Get(hs)
	hs = cloneHeaders(hs)
	f := frame.Frame{Request: &frame.Request{}}
	enc := frame.NewEncoder()
	b.ReportAllocs()
	for b.Loop() {
		f.Request.CachedHeaders = c.Get(hs)
		enc.Encode(&f)
	}
}

// BenchmarkHeaderCacheHitParallel hits 64 sets from all CPUs, with the
// default sharded cache and with a single shard (one lock).
func BenchmarkHeaderCacheHitParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		max  int
	}{{"shards=default", 0}, {"shards=1", 255}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := frame.NewHeaderCache(frame.HeaderCacheConfig{MaxEntries: bc.max})
			if err != nil {
				b.Fatal(err)
			}
			sets := make([][]frame.Header, 64)
			for i := range sets {
				sets[i] = append(typicalHeaders(), frame.Header{Name: "X-Set", Value: string(rune('a' + i))})
				c.Get(sets[i])
				sets[i] = cloneHeaders(sets[i])
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					c.Get(sets[i%len(sets)])
					i++
				}
			})
			if s := c.Stats(); s.Misses != uint64(len(sets)) {
				b.Fatalf("%d misses", s.Misses)
			}
		})
	}
}

// BenchmarkHeaderEncodeStandalone encodes the set into a new EncodedHeaders
// (a new builder and copies), as a cache miss or the seed's "build" does.
func BenchmarkHeaderEncodeStandalone(b *testing.B) {
	hs := typicalHeaders()
	b.ReportAllocs()
	for b.Loop() {
		frame.EncodeHeaders(hs)
	}
}

func cloneHeaders(hs []frame.Header) []frame.Header {
	out := make([]frame.Header, len(hs))
	for i, h := range hs {
		out[i] = frame.Header{Name: string([]byte(h.Name)), Value: string([]byte(h.Value))}
	}
	return out
}
