package wsproto

import "unicode/utf8"

// utf8State validates UTF-8 incrementally: bytes arrive in chunks cut
// anywhere, and an invalid byte is found in the chunk that brings it. need
// is how many continuation bytes the current code point still expects, and
// [lo, hi] the range of the next one (RFC 3629 section 4: the second byte's
// range depends on the first, to refuse overlong forms, surrogates and code
// points past U+10FFFF).
type utf8State struct {
	need   uint8
	lo, hi byte
}

// valid reports whether b continues a valid UTF-8 sequence. A code point
// cut at the end of b is valid so far; need says it is unfinished.
func (s *utf8State) valid(b []byte) bool {
	i := 0
	for s.need > 0 && i < len(b) {
		if !s.step(b[i]) {
			return false
		}
		i++
	}
	b = b[i:]
	if len(b) == 0 {
		return true
	}
	// Everything up to the last code point is checked by utf8.Valid; a
	// code point cut at the end goes through the state machine.
	cut := len(b)
	for j := len(b) - 1; j >= 0 && j >= len(b)-(utf8.UTFMax-1); j-- {
		if utf8.RuneStart(b[j]) {
			if !utf8.FullRune(b[j:]) {
				cut = j
			}
			break
		}
	}
	if !utf8.Valid(b[:cut]) {
		return false
	}
	for _, c := range b[cut:] {
		if !s.step(c) {
			return false
		}
	}
	return true
}

// step takes one byte.
func (s *utf8State) step(c byte) bool {
	if s.need > 0 {
		if c < s.lo || c > s.hi {
			return false
		}
		s.need--
		s.lo, s.hi = 0x80, 0xBF
		return true
	}
	switch {
	case c < 0x80:
		return true
	case c >= 0xC2 && c <= 0xDF:
		s.need, s.lo, s.hi = 1, 0x80, 0xBF
	case c == 0xE0:
		s.need, s.lo, s.hi = 2, 0xA0, 0xBF
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		s.need, s.lo, s.hi = 2, 0x80, 0xBF
	case c == 0xED:
		s.need, s.lo, s.hi = 2, 0x80, 0x9F
	case c == 0xF0:
		s.need, s.lo, s.hi = 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		s.need, s.lo, s.hi = 3, 0x80, 0xBF
	case c == 0xF4:
		s.need, s.lo, s.hi = 3, 0x80, 0x8F
	default:
		return false
	}
	return true
}
