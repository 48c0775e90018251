package tests

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/chat/chatserver"
)

// TestRoomFanOut: 200 WebSocket clients in one chat room each send 20
// messages. Every client must receive all 4,000, numbered 1..4,000 by the
// room's seq in the order it received them (one room-wide order), with the
// same message at each seq for every client, and each sender's messages in
// the order sent.
func TestRoomFanOut(t *testing.T) {
	const clients, perClient = 200, 20
	const total = clients * perClient
	h := startChat(t, chatserver.Config{})

	cs := make([]*chatClient, clients)
	for i := range cs {
		// When chatDial has read the history, the client is a member.
		cs[i], _ = h.chatDial(t, "fanout", fmt.Sprintf("c%03d", i))
	}
	require.Equal(t, clients, h.Server.RoomSize("fanout"))

	// order[k][seq] is the message client k received with that seq, as
	// sender*perClient + index.
	order := make([][]int32, clients)
	errs := make([]error, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for k, c := range cs {
		wg.Go(func() {
			for i := range perClient {
				msg := `{"type":"message","text":"` + c.name + "-" + strconv.Itoa(i) + `"}`
				if err := writeClientText(c, msg); err != nil {
					errs[k] = err
					return
				}
			}
			order[k], errs[k] = receiveFanOut(c, total, perClient)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for k, err := range errs {
		require.NoError(t, err, "client %d", k)
	}

	next := make([]int32, clients)
	for seq := 1; seq <= total; seq++ {
		m := order[0][seq]
		sender, idx := m/perClient, m%perClient
		require.Equal(t, next[sender], idx, "seq %d: sender c%03d out of order", seq, sender)
		next[sender]++
	}
	for k := 1; k < clients; k++ {
		require.Equal(t, order[0], order[k], "client %d saw another room order than client 0", k)
	}
	deliveries := float64(clients * total)
	t.Logf("%d clients × %d messages: %.0f deliveries in %v = %.0f deliveries/s",
		clients, total, deliveries, elapsed.Round(time.Millisecond), deliveries/elapsed.Seconds())
}

func writeClientText(c *chatClient, msg string) error {
	if err := c.nc.SetWriteDeadline(time.Now().Add(chatTimeout)); err != nil {
		return err
	}
	return wsutil.WriteClientText(c.nc, []byte(msg))
}

// receiveFanOut reads until total chat messages arrived and returns, by seq,
// what each one was. It parses the server's JSON by hand (fixed field
// order) to keep 800,000 decodes cheap under the race detector.
func receiveFanOut(c *chatClient, total, perClient int) ([]int32, error) {
	got := make([]int32, total+1)
	var buf []byte
	prevSeq := 0
	for n := 0; n < total; {
		b, err := c.readData(chatTimeout, buf)
		if err != nil {
			return nil, fmt.Errorf("after %d messages: %w", n, err)
		}
		buf = b[:0]
		if !bytes.HasPrefix(b, []byte(`{"type":"message"`)) {
			continue
		}
		text := jsonField(b, `"text":"`, '"')
		seq, err := strconv.Atoi(string(jsonField(b, `"seq":`, '}')))
		if err != nil {
			return nil, fmt.Errorf("bad seq in %q", b)
		}
		if seq != prevSeq+1 {
			return nil, fmt.Errorf("seq %d after %d", seq, prevSeq)
		}
		prevSeq = seq
		// text is "cNNN-I".
		dash := bytes.IndexByte(text, '-')
		if len(text) < 2 || text[0] != 'c' || dash < 0 {
			return nil, fmt.Errorf("bad text in %q", b)
		}
		sender, err1 := strconv.Atoi(string(text[1:dash]))
		idx, err2 := strconv.Atoi(string(text[dash+1:]))
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("bad text in %q: %w", b, err)
		}
		got[seq] = int32(sender*perClient + idx)
		n++
	}
	return got, nil
}

// jsonField returns the bytes after key up to end.
func jsonField(b []byte, key string, end byte) []byte {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil
	}
	b = b[i+len(key):]
	if j := bytes.IndexByte(b, end); j >= 0 {
		return b[:j]
	}
	return nil
}
