package frame

import (
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// Word-at-a-time comparison and hashing of header strings. A typical set is
// twenty short strings, so the cost is per string rather than per byte:
// runtime.memequal and maphash.String are fast over long inputs but pay a
// call each; these loops are inlined into one pass over the set.
//
// The loads read 8, 4 or 1 bytes at any alignment, always inside the
// string (a tail is read as a word overlapping the previous one), so they
// pass -race's pointer checks. They are written byte by byte, which the
// compiler turns into one load where the architecture allows unaligned
// loads (amd64, arm64, ...) and leaves as byte loads elsewhere.

func load64(p unsafe.Pointer, i int) uint64 {
	b := (*[8]byte)(unsafe.Add(p, i))
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func load32(p unsafe.Pointer, i int) uint64 {
	b := (*[4]byte)(unsafe.Add(p, i))
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
}

func load8(p unsafe.Pointer, i int) uint64 { return uint64(*(*byte)(unsafe.Add(p, i))) }

func stringData(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

// sameOrder reports whether hs and stored hold the same headers in the
// same order. It reads every byte (no early exit once the lengths agree),
// which is what a hit costs anyway.
func sameOrder(hs, stored []Header) bool {
	if len(hs) != len(stored) {
		return false
	}
	stored = stored[:len(hs)]
	var d uint64
	for i := range hs {
		for k := range 2 {
			a, b := hs[i].Name, stored[i].Name
			if k == 1 {
				a, b = hs[i].Value, stored[i].Value
			}
			p, q, n := stringData(a), stringData(b), len(a)
			if n != len(b) {
				return false
			}
			switch {
			case n >= 8:
				for j := 0; j < n-8; j += 8 {
					d |= load64(p, j) ^ load64(q, j)
				}
				d |= load64(p, n-8) ^ load64(q, n-8)
			case n >= 4:
				d |= (load32(p, 0) ^ load32(q, 0)) | (load32(p, n-4) ^ load32(q, n-4))
			case n > 0:
				d |= (load8(p, 0) ^ load8(q, 0)) | (load8(p, n>>1) ^ load8(q, n>>1)) | (load8(p, n-1) ^ load8(q, n-1))
			}
		}
	}
	return d == 0
}

// hashChunks is how many 16-byte chunks of a string are hashed with their
// own keys; longer strings go to maphash.
const hashChunks = 16

// setHasher computes the two keys of a header set, both independent of the
// order of its headers and seeded per cache:
//
//   - the shape, which covers only the number of headers and the lengths of
//     names and values: cheap, and used to find the one cached set that may
//     match without hashing any byte;
//   - the key, which covers every byte.
type setHasher struct {
	seed     maphash.Seed // strings longer than hashChunks*16 bytes
	name     [2 * hashChunks]uint64
	value    [2 * hashChunks]uint64
	s0, s1   uint64
	shapeKey [2]uint64
}

func newSetHasher() setHasher {
	h := setHasher{seed: maphash.MakeSeed(), s0: rand.Uint64(), s1: rand.Uint64()}
	for i := range h.name {
		h.name[i], h.value[i] = rand.Uint64(), rand.Uint64()
	}
	h.shapeKey = [2]uint64{rand.Uint64(), rand.Uint64() | 1}
	return h
}

// mix is the folded 128-bit product (wyhash's mum).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (h *setHasher) shape(hs []Header) uint64 {
	var sum uint64
	for i := range hs {
		sum += mix(uint64(len(hs[i].Name))<<32^uint64(len(hs[i].Value))^h.shapeKey[0], h.shapeKey[1])
	}
	return mix(sum^h.s0, uint64(len(hs))^h.s1)
}

// key combines per-header hashes with sum and xor, so the order of hs does
// not matter. A header's hash covers its name and value (with different
// chunk keys, and their lengths), so the two cannot swap roles.
//
// A string is hashed as a sum of mixed 16-byte chunks, each with its own
// key pair (the last chunk is read as two overlapping words, which
// together with the length identify the bytes); strings longer than
// hashChunks chunks go to maphash.
func (h *setHasher) key(hs []Header) uint64 {
	var sum, x uint64
	for i := range hs {
		var nv [2]uint64
		for k := range 2 {
			s, keys := hs[i].Name, &h.name
			if k == 1 {
				s, keys = hs[i].Value, &h.value
			}
			p, n := stringData(s), len(s)
			var a, b, acc uint64
			j := 0
			switch {
			case n > 16*hashChunks:
				nv[k] = maphash.String(h.seed, s)
				continue
			case n > 16:
				for o := 0; o < n-16; o += 16 {
					acc += mix(load64(p, o)^keys[j&(2*hashChunks-1)], load64(p, o+8)^keys[(j+1)&(2*hashChunks-1)])
					j += 2
				}
				a, b = load64(p, n-16), load64(p, n-8)
			case n > 8:
				a, b = load64(p, 0), load64(p, n-8)
			case n >= 4:
				a = load32(p, 0)<<32 | load32(p, n-4)
			case n > 0:
				a = load8(p, 0)<<16 | load8(p, n>>1)<<8 | load8(p, n-1)
			default:
				continue
			}
			nv[k] = acc + mix(a^keys[j&(2*hashChunks-1)], b^keys[(j+1)&(2*hashChunks-1)])
		}
		hh := mix(nv[0]^uint64(len(hs[i].Name))^h.s0, nv[1]^uint64(len(hs[i].Value))<<32^h.s1)
		sum += hh
		x ^= hh
	}
	return mix(sum^h.s1, bits.RotateLeft64(x, 29)^uint64(len(hs))^h.s0)
}
