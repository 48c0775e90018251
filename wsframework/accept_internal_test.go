package wsframework

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzAcceptHead feeds arbitrary bytes to the accept path's head reader
// and sorter: they never panic; a head is a prefix of the input ending at
// its first empty line and no longer than the limit, and one larger than
// the reader comes with every byte read; a head is too large exactly when
// none ends within the limit; and only a GET is ever taken for an upgrade.
func FuzzAcceptHead(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), uint8(100))
	f.Add([]byte("GET / HTTP/1.1\r\nupgrade:  h2c, WebSocket \r\n\r\nextra"), uint8(64))
	f.Add([]byte("POST /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), uint8(10))
	f.Add([]byte("GET / HTTP/1.1\r\nX: \r\n\r"), uint8(200))
	f.Add([]byte("\r\n\r\n"), uint8(4))
	f.Add([]byte("GET / HTTP/1.1\r\n"+strings.Repeat("X-Long: header\r\n", 10)+"\r\nbody"), uint8(200))
	f.Fuzz(func(t *testing.T, in []byte, limit8 uint8) {
		const size = 64 // the reader's buffer; 16 is bufio's least
		limit := int(limit8) + 1
		r := bytes.NewReader(in)
		br := bufio.NewReaderSize(r, size)
		head, big, err := readHead(br, r, limit)
		end := bytes.Index(in, []byte("\r\n\r\n")) + 4 // 3 when there is none
		fits := end >= 4 && end <= limit
		switch {
		case errors.Is(err, errHeadTooLarge):
			if fits {
				t.Fatalf("%q: head of %d bytes taken as over %d", in, end, limit)
			}
			return
		case err != nil:
			if fits || len(in) >= limit {
				t.Fatalf("%q (limit %d): %v", in, limit, err)
			}
			return
		}
		if !fits || !bytes.Equal(head, in[:end]) {
			t.Fatalf("head %q is not %q's up to its first empty line within %d", head, in, limit)
		}
		if big != nil {
			if len(head) <= size || !bytes.HasPrefix(in, big) || br.Buffered() != 0 {
				t.Fatalf("head %q read into %q, %d left buffered", head, big, br.Buffered())
			}
		} else if len(head) > size {
			t.Fatalf("head of %d bytes in a reader of %d", len(head), size)
		}
		if isUpgradeHead(head) && !bytes.HasPrefix(head, []byte("GET ")) {
			t.Fatalf("%q taken for an upgrade", head)
		}
	})
}

func TestIsUpgradeHead(t *testing.T) {
	for head, want := range map[string]bool{
		"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n":              true,
		"GET /ws HTTP/1.1\r\nupgrade: h2c , WebSocket\r\n\r\n":        true,
		"GET /ws HTTP/1.1\r\nX-Upgrade: websocket\r\n\r\n":            false,
		"GET /ws HTTP/1.1\r\nUpgrade: websockets\r\n\r\n":             false,
		"POST /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n":             false,
		"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\n\r\n":             false,
		"GET /ws HTTP/1.1\r\nHost: websocket\r\nUpgrade: h2c\r\n\r\n": false,
	} {
		if got := isUpgradeHead([]byte(head)); got != want {
			t.Errorf("isUpgradeHead(%q) = %v, want %v", head, got, want)
		}
	}
}

// TestPrefixConnReachesTCP: net/http's half-close and sendfile go through
// the wrapper to the TCP connection.
func TestPrefixConnReachesTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	cc, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer cc.Close()
	sc, err := l.Accept()
	require.NoError(t, err)
	pc := &prefixConn{Conn: sc, prefix: []byte("replayed ")}
	defer pc.Close()

	n, err := pc.ReadFrom(strings.NewReader("answer"))
	require.NoError(t, err)
	require.EqualValues(t, 6, n)
	require.NoError(t, pc.CloseWrite())
	got, err := io.ReadAll(cc) // EOF after the half-close
	require.NoError(t, err)
	require.Equal(t, "answer", string(got))

	_, err = cc.Write([]byte("request"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	n2, err := io.ReadAtLeast(pc, buf, len("replayed "))
	require.NoError(t, err)
	require.Equal(t, "replayed ", string(buf[:n2]))
}
