package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pythonPath is Debian's Python, for which the python3-websockets package
// installs its module.
const pythonPath = "/usr/bin/python3"

// pythonClient is the script TestPythonWebsocketsInterop runs: a client
// written with the websockets library (an implementation of RFC 6455 and
// RFC 7692 that shares nothing with Strand or gobwas/ws), which offers
// permessage-deflate by default and compresses every message it sends.
const pythonClient = `
import asyncio, json, sys
import websockets

async def main(url):
    async with websockets.connect(url, compression="deflate", max_size=1 << 20, ping_interval=None) as ws:
        text = "Strand speaks permessage-deflate. " * 60
        data = bytes(range(256)) * 16
        got = {}
        await ws.send(text)
        got["text"] = (await asyncio.wait_for(ws.recv(), 10)) == text
        await ws.send(data)
        got["binary"] = (await asyncio.wait_for(ws.recv(), 10)) == data
        await ws.send("small")
        got["small"] = (await asyncio.wait_for(ws.recv(), 10)) == "small"
        print(json.dumps({
            "answer": ws.response_headers.get("Sec-WebSocket-Extensions", ""),
            "extensions": [e.name for e in ws.extensions],
            "echoed": got,
            "version": websockets.__version__,
        }))

asyncio.run(main(sys.argv[1]))
`

// TestPythonWebsocketsInterop runs a client written with Python's
// websockets library against the echo example: it negotiates
// permessage-deflate, and a compressible text message, a compressible
// binary one and a small one come back intact. The server's Stats show
// the client's messages arrived compressed and the large echoes left
// compressed.
func TestPythonWebsocketsInterop(t *testing.T) {
	const hint = "Install it with `sudo apt-get install python3-websockets`, or run ./scripts/deps.sh."
	if _, err := os.Stat(pythonPath); err != nil {
		t.Fatalf("Python 3 is needed at %s for the interoperability test (%v). %s", pythonPath, err, hint)
	}
	if out, err := exec.Command(pythonPath, "-c", "import websockets").CombinedOutput(); err != nil {
		t.Fatalf("the websockets module of %s is needed for the interoperability test (%v: %s). %s", pythonPath, err, out, hint)
	}
	e := startEchoProgram(t)
	script := filepath.Join(t.TempDir(), "client.py")
	require.NoError(t, os.WriteFile(script, []byte(pythonClient), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath, script, "ws://"+e.addr+"/echo")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "python client: %s", stderr.Bytes())
	var res struct {
		Answer     string          `json:"answer"`
		Extensions []string        `json:"extensions"`
		Echoed     map[string]bool `json:"echoed"`
		Version    string          `json:"version"`
	}
	require.NoError(t, json.Unmarshal(out, &res), "python client printed %q", out)
	t.Logf("websockets %s, answer %q", res.Version, res.Answer)
	require.Equal(t, noTakeoverAnswer, res.Answer)
	require.Equal(t, []string{"permessage-deflate"}, res.Extensions)
	require.Equal(t, map[string]bool{"text": true, "binary": true, "small": true}, res.Echoed)

	st := e.vars(t, false).Strand
	require.Equal(t, uint64(1), st.Compressed)
	require.Equal(t, uint64(3), st.MessagesInCompressed, "the client compresses every message")
	require.Equal(t, uint64(2), st.MessagesOutCompressed, "the two large echoes")
}
