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
// and sorter: they never panic, a head is a prefix of the input ending at
// the first empty line, and only a GET is ever taken for an upgrade.
func FuzzAcceptHead(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nupgrade:  h2c, WebSocket \r\n\r\nextra"))
	f.Add([]byte("POST /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nX: \r\n\r"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 64)
		head, err := readHead(br)
		if err != nil {
			if !errors.Is(err, bufio.ErrBufferFull) && bytes.Contains(in[:min(len(in), 64)], []byte("\r\n\r\n")) {
				t.Fatalf("no head found in %q: %v", in, err)
			}
			return
		}
		i := bytes.Index(in, []byte("\r\n\r\n"))
		if i < 0 || !bytes.Equal(head, in[:i+4]) {
			t.Fatalf("head %q is not %q's up to its first empty line", head, in)
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
