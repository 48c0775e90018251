package chatplugin_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/examples/chat/chatplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/strandtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type msg struct {
	Type     string `json:"type"`
	Room     string `json:"room"`
	From     string `json:"from"`
	Text     string `json:"text"`
	TS       int64  `json:"ts"`
	Seq      uint64 `json:"seq"`
	Name     string `json:"name"`
	Error    string `json:"error"`
	Messages []msg  `json:"messages"`
}

// open connects name to room through the entry's request filter.
func open(kit *strandtest.Kit, room, name string) *strandtest.Conn {
	return kit.OpenRequest(strandtest.NewRequest("/ws?" + url.Values{"room": {room}, "name": {name}}.Encode()))
}

// next reads the next message c was sent.
func next(t *testing.T, c *strandtest.Conn) msg {
	t.Helper()
	f, err := c.NextSent(t.Context())
	require.NoError(t, err)
	var m msg
	require.NoError(t, json.Unmarshal(f.Bytes(), &m), "%s", f)
	return m
}

func say(c *strandtest.Conn, text string) {
	b, _ := json.Marshal(map[string]string{"type": "message", "text": text})
	c.SendText(string(b))
}

func newChat(t *testing.T, cfg chatplugin.Config) (*chatplugin.Chat, *strandtest.Kit) {
	t.Helper()
	ch, err := chatplugin.New(cfg)
	require.NoError(t, err)
	return ch, strandtest.New(t, ch.Entry())
}

func TestConfigRejectsNegatives(t *testing.T) {
	for _, cfg := range []chatplugin.Config{{HistorySize: -1}, {Rate: -1}, {StrikeWindow: -time.Second}} {
		_, err := chatplugin.New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

func TestRequestFilter(t *testing.T) {
	_, kit := newChat(t, chatplugin.Config{MaxNameChars: 3})
	for _, tc := range []struct {
		query  string
		status int
		body   string
	}{
		{"name=a", 400, "room is missing"},
		{"room=r", 400, "name is missing"},
		{"room=r&name=abcd", 400, "name is over 3 characters"},
		{"room=%FF&name=a", 400, "room is not valid UTF-8"},
		{"room=r&name=%C3%A9%C3%A9%C3%A9", 0, ""}, // three characters, six bytes
	} {
		res := kit.RequestFilter(strandtest.NewRequest("/ws?" + tc.query))
		if tc.status == 0 {
			require.Equal(t, strandtest.Upgrade, res.Decision, tc.query)
			continue
		}
		require.Equal(t, tc.status, res.Status, tc.query)
		require.Equal(t, tc.body, string(res.Body), tc.query)
	}
}

func TestHistoryKeepsTheLastMessages(t *testing.T) {
	_, kit := newChat(t, chatplugin.Config{HistorySize: 3})
	a := open(kit, "r", "a")
	require.Equal(t, "history", next(t, a).Type)
	require.Equal(t, "join", next(t, a).Type)
	for i := 1; i <= 5; i++ {
		say(a, fmt.Sprint(i))
		require.Equal(t, uint64(i), next(t, a).Seq)
	}
	b := open(kit, "r", "b")
	h := next(t, b)
	require.Equal(t, "history", h.Type)
	var texts []string
	for _, m := range h.Messages {
		texts = append(texts, m.Text)
	}
	require.Equal(t, []string{"3", "4", "5"}, texts, "the last three, oldest first")
	require.Equal(t, msg{Type: "join", Room: "r", Name: "b"}, next(t, a))
	b.Close(sdk.CloseNormal, "")
	b.Wait()
	require.Equal(t, msg{Type: "leave", Room: "r", Name: "b"}, next(t, a))
	a.Close(sdk.CloseNormal, "")
	a.Wait()
}

func TestIdleRoomsAreForgotten(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Add(int64(time.Second))) }
	ch, kit := newChat(t, chatplugin.Config{MaxIdleRooms: 2, Now: clock})
	visit := func(room string) (history int) {
		c := open(kit, room, "v")
		h := next(t, c)
		say(c, "hello "+room)
		c.Close(sdk.CloseNormal, "")
		c.Wait()
		return len(h.Messages)
	}
	require.Zero(t, visit("a"))
	require.Zero(t, visit("b"))
	require.Equal(t, 1, visit("a"), "a kept its history")
	require.Zero(t, visit("c"))
	require.Equal(t, chatplugin.Stats{Rooms: 2, IdleRooms: 2}, ch.Stats())
	require.Zero(t, visit("b"), "b was the longest idle and was forgotten")
}

func TestRateLimitCloses(t *testing.T) {
	var now atomic.Int64 // the clock stands still
	_, kit := newChat(t, chatplugin.Config{Rate: 1, Burst: 2, RateStrikes: 2, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	c := open(kit, "r", "x")
	next(t, c) // history
	next(t, c) // join
	for range 2 {
		say(c, "ok")
		require.Equal(t, "message", next(t, c).Type)
	}
	say(c, "over")
	require.True(t, strings.HasPrefix(next(t, c).Error, "rate limit"))
	now.Add(int64(time.Second)) // one token
	say(c, "ok again")
	require.Equal(t, "message", next(t, c).Type)
	say(c, "over")
	require.Equal(t, "error", next(t, c).Type)
	c.Wait()
	c.ExpectClosed(t, sdk.ClosePolicyViolation)
}

// Example runs the chat plugin in memory (sdk/strandtest): two people in a
// room, one message.
func Example() {
	ch, err := chatplugin.New(chatplugin.Config{Now: func() time.Time { return time.UnixMilli(1700000000000) }})
	if err != nil {
		panic(err)
	}
	kit := strandtest.New(exampleTB{}, ch.Entry()) // in a test: pass its *testing.T
	defer kit.Close()
	ada := kit.OpenRequest(strandtest.NewRequest("/ws?room=lobby&name=Ada"))
	ada.Wait()
	grace := kit.OpenRequest(strandtest.NewRequest("/ws?room=lobby&name=Grace"))
	grace.Wait()
	ada.SendText(`{"type":"message","text":"Hello, Grace!"}`)
	ada.Wait()
	grace.Close(sdk.CloseNormal, "")
	grace.Wait()
	for _, f := range ada.Sent() {
		fmt.Println(f.Data)
	}
	ada.Close(sdk.CloseNormal, "")
	ada.Wait()
	// Output:
	// {"type":"history","messages":[]}
	// {"type":"join","room":"lobby","name":"Ada"}
	// {"type":"join","room":"lobby","name":"Grace"}
	// {"type":"message","room":"lobby","from":"Ada","text":"Hello, Grace!","ts":1700000000000,"seq":1}
	// {"type":"leave","room":"lobby","name":"Grace"}
}

// exampleTB stands in for a *testing.T in Example.
type exampleTB struct{}

func (exampleTB) Helper()                           {}
func (exampleTB) Logf(string, ...any)               {}
func (exampleTB) Errorf(format string, args ...any) { fmt.Printf("FAIL: "+format+"\n", args...) }
func (exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (exampleTB) Cleanup(func())                    {}
