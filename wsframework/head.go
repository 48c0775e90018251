package wsframework

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
)

// errHeadTooLarge: no request head ends within MaxHeaderBytes.
var errHeadTooLarge = errors.New("wsframework: request head over MaxHeaderBytes")

// readHead reads a request head (through its empty line) of at most limit
// bytes from br, which reads from r. A head that fits br's buffer is
// returned from it, and big is nil. A larger one is read on from r into
// big, which then holds all the bytes read (the head, and whatever came
// with it) while br holds none; head is big's prefix. errHeadTooLarge when
// no head ends within limit bytes.
func readHead(br *bufio.Reader, r io.Reader, limit int) (head, big []byte, err error) {
	seen := 0
	for {
		if _, err := br.Peek(seen + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				break // the buffer is full and holds no head
			}
			return nil, nil, err
		}
		buf := peekBuffered(br)
		if end, done := headEnd(buf, seen, limit); done {
			if end < 0 {
				return nil, nil, errHeadTooLarge
			}
			return buf[:end], nil, nil
		}
		seen = len(buf)
	}
	big = make([]byte, 0, min(limit, 2*br.Size()))
	big = append(big, peekBuffered(br)...)
	_, _ = br.Discard(len(big))
	for {
		if len(big) == cap(big) {
			big = slices.Grow(big, min(cap(big), limit-len(big)))
		}
		seen := len(big)
		n, err := r.Read(big[seen:cap(big)])
		big = big[:seen+n]
		if end, done := headEnd(big, seen, limit); done {
			if end < 0 {
				return nil, nil, errHeadTooLarge
			}
			return big[:end], big, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// headEnd looks for the end of a request head in buf, of which seen bytes
// were searched already: done with the head's length when it ends within
// limit bytes, done with -1 when it cannot (too large), not done when more
// bytes are needed to tell.
func headEnd(buf []byte, seen, limit int) (end int, done bool) {
	from := max(seen-3, 0)
	if i := bytes.Index(buf[from:], []byte("\r\n\r\n")); i >= 0 {
		if end = from + i + 4; end > limit {
			return -1, true
		}
		return end, true
	}
	if len(buf) >= limit {
		return -1, true
	}
	return 0, false
}

func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// isUpgradeHead reports whether a request head is a GET with an Upgrade
// header naming websocket. It only sorts requests: net/http would serve a
// false negative just as well, and http.ReadRequest and the handshake
// checks judge what it lets through.
func isUpgradeHead(head []byte) bool {
	if !bytes.HasPrefix(head, []byte("GET ")) {
		return false
	}
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Upgrade")) {
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("websocket")) {
					return true
				}
			}
		}
	}
	return false
}
