package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/chat/chatplugin"
	"github.com/strandws/strand/examples/chat/chatserver"
	"github.com/strandws/strand/internal/redistest"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// clusterChat starts n chat servers in this process sharing rooms through
// the Redis at url.
func clusterChat(t *testing.T, url string, n int) []*chatHarness {
	t.Helper()
	var nodes []*chatHarness
	for range n {
		nodes = append(nodes, startChat(t, chatserver.Config{
			Chat:  chatplugin.Config{Rate: 1e6, Burst: 1e6},
			Redis: &redisadapter.Config{URL: url, Logger: quietLogger(), Heartbeat: 500 * time.Millisecond},
		}))
	}
	return nodes
}

// roomLoad connects clients people to room, spread over the nodes (base
// addresses), has each say msgs messages (pausing pace between two), and
// checks that every member got every message, all in one order, each
// sender's in send order.
func roomLoad(t *testing.T, nodes []string, room string, people, msgs int, pace time.Duration) {
	t.Helper()
	clients := make([]*chatClient, people)
	for i := range clients {
		h := &chatHarness{addr: nodes[i%len(nodes)]}
		c, _ := h.chatDial(t, room, fmt.Sprintf("p%02d", i))
		c.nextOf(t, "members") // others' joins may come first
		clients[i] = c
	}
	total := people * msgs
	got := make([][]string, people)
	errs := make(chan error, 2*people)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for len(got[i]) < total {
				b, err := c.readData(chatTimeout, buf)
				if err != nil {
					errs <- fmt.Errorf("%s: after %d messages: %w", c.name, len(got[i]), err)
					return
				}
				var m chatMsg
				if err := json.Unmarshal(b, &m); err != nil {
					errs <- err
					return
				}
				switch m.Type {
				case "message":
					got[i] = append(got[i], m.From+"/"+m.Text)
				case "error", "system":
					errs <- fmt.Errorf("%s: %s%s", c.name, m.Error, m.Text)
					return
				}
			}
		}()
	}
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range msgs {
				b, _ := json.Marshal(map[string]string{"type": "message", "text": fmt.Sprint(j)})
				if err := c.nc.SetWriteDeadline(time.Now().Add(chatTimeout)); err != nil {
					errs <- err
					return
				}
				if err := writeText(c, b); err != nil {
					errs <- err
					return
				}
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for i := range got {
		require.Len(t, got[i], total, "%s", clients[i].name)
		require.Equal(t, got[0], got[i], "%s saw another order than %s", clients[i].name, clients[0].name)
	}
	next := map[string]int{}
	for _, m := range got[0] {
		from, text, _ := strings.Cut(m, "/")
		require.Equal(t, fmt.Sprint(next[from]), text, "%s's order", from)
		next[from]++
	}
	for _, c := range clients {
		c.close(t)
	}
}

// Three servers in one process, 30 people over them in one room, 100
// messages each.
func TestChatClusterThreeNodes(t *testing.T) {
	rs := redistest.Start(t)
	nodes := clusterChat(t, rs.URL(), 3)
	roomLoad(t, []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}, "lobby", 30, 100, 0)
	for _, n := range nodes {
		st := n.Redis.Stats()
		require.Zero(t, st.Gaps, "%+v", st)
		require.Zero(t, st.PublishErrors, "%+v", st)
	}
}

// A joiner on another node gets the room's last messages as history, then
// the live ones, with nothing missed or repeated; members are listed across
// nodes.
func TestChatClusterHistoryAndMembers(t *testing.T) {
	rs := redistest.Start(t)
	nodes := clusterChat(t, rs.URL(), 2)
	ada, hist := nodes[0].chatDial(t, "r", "ada")
	require.Empty(t, hist)
	require.Equal(t, []string{"ada"}, ada.next(t).Names)
	require.Equal(t, "join", ada.next(t).Type)
	for i := range 60 {
		ada.say(t, fmt.Sprint(i))
	}
	for ada.nextOf(t, "message").Text != "59" { // all 60 published
	}
	// Grace joins on the other node while Ada keeps talking.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 60; i < 120; i++ {
			ada.say(t, fmt.Sprint(i))
		}
	}()
	grace, hist := nodes[1].chatDial(t, "r", "grace")
	var texts []string
	for _, m := range hist {
		texts = append(texts, m.Text)
	}
	require.Len(t, texts, chatplugin.DefaultHistorySize)
	var members chatMsg
	for members.Type != "members" { // Ada's live messages may come first
		if m := grace.next(t); m.Type == "message" {
			texts = append(texts, m.Text)
		} else {
			members = m
		}
	}
	require.ElementsMatch(t, []string{"ada", "grace"}, members.Names)
	<-done
	for len(texts) == 0 || texts[len(texts)-1] != "119" {
		m := grace.next(t)
		if m.Type == "message" {
			texts = append(texts, m.Text)
		}
	}
	first := 0
	_, err := fmt.Sscan(texts[0], &first)
	require.NoError(t, err)
	for i, s := range texts {
		require.Equal(t, fmt.Sprint(first+i), s, "history then live: no gap, no repeat")
	}
	grace.close(t)
	require.Equal(t, "leave", ada.nextOf(t, "leave").Type)
	ada.close(t)
}

// writeText writes b as one masked text frame (from any goroutine but the
// client's reader).
func writeText(c *chatClient, b []byte) error {
	return wsutil.WriteClientMessage(c.nc, ws.OpText, b)
}

// chatListening is the chat program's line with its bound address.
var chatListening = regexp.MustCompile(`chat: listening.* addr=(\S+)`)

// Three chat programs on one Redis: the load of TestChatClusterThreeNodes
// across processes; then one is killed and its members leave the others'
// presence within two heartbeats.
func TestChatClusterProcesses(t *testing.T) {
	rs := redistest.Start(t)
	bin := buildProgram(t, "github.com/strandws/strand/examples/chat")
	var procs []*child
	var addrs []string
	for range 3 {
		p := startChild(t, bin, "-addr", "127.0.0.1:0", "-reader", readerMode.String(), "-redis", rs.URL())
		procs = append(procs, p)
		addrs = append(addrs, p.waitLine(t, chatListening, 2*time.Minute)[1])
	}
	// The chat's rate limit is 20 messages a second: pace below it.
	roomLoad(t, addrs, "lobby", 30, 100, 60*time.Millisecond)

	// Presence: one member on each node, then node 2 dies.
	var cs []*chatClient
	for i, a := range addrs {
		c, _ := (&chatHarness{addr: a}).chatDial(t, "pres", fmt.Sprintf("n%d", i))
		cs = append(cs, c)
	}
	members := func() []string {
		c, _ := (&chatHarness{addr: addrs[0]}).chatDial(t, "pres", "observer")
		m := c.nextOf(t, "members") // the others' joins may still be arriving
		c.close(t)
		var out []string
		for _, n := range m.Names {
			if n != "observer" {
				out = append(out, n)
			}
		}
		return out
	}
	// A node writes its member's presence to Redis after the join (an
	// ordered queue, not the join's own path): node 0 sees n2 soon, not
	// necessarily at once.
	var seen []string
	require.Eventually(t, func() bool {
		seen = members()
		return len(seen) == 3
	}, 10*time.Second, 100*time.Millisecond, "every node's member is present")
	require.ElementsMatch(t, []string{"n0", "n1", "n2"}, seen)
	killed := time.Now()
	procs[2].kill()
	// Two heartbeats of the default 5 s, and slack for a loaded machine.
	require.Eventually(t, func() bool {
		return len(members()) == 2
	}, 2*redisadapter.DefaultHeartbeat+5*time.Second, 200*time.Millisecond, "the dead node's member is still present")
	t.Logf("dead node's member gone after %v", time.Since(killed).Round(100*time.Millisecond))
	require.ElementsMatch(t, []string{"n0", "n1"}, members())
	cs[0].close(t)
	cs[1].close(t)
}

// TestChatClusterReadiness: a clustered chat node answers /readyz with 503
// while its Redis is unreachable, and 200 again once Redis is back.
func TestChatClusterReadiness(t *testing.T) {
	rs := redistest.Start(t)
	node := clusterChat(t, rs.URL(), 1)[0]
	readyz := func() int {
		resp, err := http.Get("http://" + node.addr + "/readyz")
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Eventually(t, func() bool { return readyz() == http.StatusOK }, chatTimeout, 10*time.Millisecond, "ready with Redis up")
	rs.Kill()
	require.Eventually(t, func() bool { return readyz() == http.StatusServiceUnavailable }, chatTimeout, 10*time.Millisecond, "not ready with Redis down")
	rs.Restart()
	require.Eventually(t, func() bool { return readyz() == http.StatusOK }, chatTimeout, 10*time.Millisecond, "ready again with Redis back")
}
