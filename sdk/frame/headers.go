package frame

import (
	"strings"

	flatbuffers "github.com/google/flatbuffers/go"
)

// EncodedHeaders is a header set encoded once, as the FlatBuffers vector of
// KV tables that a request snapshot carries, ready to be copied into frames
// through [Request.CachedHeaders]. It is immutable, safe for concurrent use,
// and stays valid after the cache it came from evicts it or is cleared.
type EncodedHeaders struct {
	// region holds the vector (count, element offsets) followed by the
	// tables, strings and vtables it refers to. All FlatBuffers offsets are
	// relative, so the region can be copied into any builder at a position
	// with the same 4-byte alignment (it was built ending at offset 0).
	region []byte
	// headers is a private copy of the set, for comparison on cache hits.
	headers []Header
}

// EncodeHeaders encodes hs for use as [Request.CachedHeaders]. It copies
// everything it needs; hs may be reused afterwards. Use a [HeaderCache] to
// encode a recurring set only once.
func EncodeHeaders(hs []Header) *EncodedHeaders {
	return encodeHeaders(flatbuffers.NewBuilder(headerSetSize(hs)+256), hs)
}

// Len returns the number of headers in the set.
func (e *EncodedHeaders) Len() int { return len(e.headers) }

// Size returns the number of bytes the set adds to a frame.
func (e *EncodedHeaders) Size() int { return len(e.region) }

// encodeHeaders builds the set with b (reset first) and copies the result.
func encodeHeaders(b *flatbuffers.Builder, hs []Header) *EncodedHeaders {
	b.Reset()
	vecOff, _ := buildKVs(b, hs, make([]flatbuffers.UOffsetT, 0, len(hs)))
	region := b.Bytes[b.Head():]
	if int(vecOff) != len(region) {
		panic("frame: header vector is not at the head of its buffer")
	}
	e := &EncodedHeaders{
		region:  append([]byte(nil), region...),
		headers: make([]Header, len(hs)),
	}
	// One allocation for all the strings.
	var sb strings.Builder
	sb.Grow(headerSetSize(hs))
	for i := range hs {
		sb.WriteString(hs[i].Name)
		sb.WriteString(hs[i].Value)
	}
	all, off := sb.String(), 0
	for i := range hs {
		n, v := len(hs[i].Name), len(hs[i].Value)
		e.headers[i] = Header{Name: all[off : off+n], Value: all[off+n : off+n+v]}
		off += n + v
	}
	return e
}

// appendTo copies the set into b and returns the vector's offset.
func (e *EncodedHeaders) appendTo(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	// CreateByteVector aligns so that the copied bytes end on a 4-byte
	// boundary, as they did when built, then prefixes a length: overwrite
	// that prefix with the element count, which is the region's first word.
	b.CreateByteVector(e.region[4:])
	copy(b.Bytes[b.Head():], e.region[:4])
	return b.Offset()
}

// sameSet reports whether hs is the same set as stored: the same (name,
// value) pairs, where pairs with different names may come in any order but
// the values of one name must come in the same order (HTTP gives meaning
// only to that order). stored has at most maxCachedHeaders headers.
func sameSet(hs, stored []Header) bool {
	return sameOrder(hs, stored) || sameReordered(hs, stored)
}

// sameReordered is sameSet once sameOrder has failed.
func sameReordered(hs, stored []Header) bool {
	if len(hs) != len(stored) || len(hs) > maxCachedHeaders {
		return false
	}
	i := 0
	for i < len(hs) && hs[i] == stored[i] {
		i++
	}
	// Match each remaining header to the first unused stored header of the
	// same name; that one must have the same value.
	var used uint64
	for _, h := range hs[i:] {
		j := i
		for ; j < len(stored); j++ {
			if used&(1<<j) == 0 && stored[j].Name == h.Name {
				break
			}
		}
		if j == len(stored) || stored[j].Value != h.Value {
			return false
		}
		used |= 1 << j
	}
	return true
}

func headerSetSize(hs []Header) int {
	n := 0
	for i := range hs {
		n += len(hs[i].Name) + len(hs[i].Value)
	}
	return n
}
