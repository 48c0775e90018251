package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/redistest"
)

// Redis faults under three chat processes (item 8 of the cluster issue):
// the same faults as wsframework/redisadapter's recovery tests, seen from
// the chat's clients, each of which counts what it got.

// chatNodes starts n chat programs clustered through the Redis at url and
// returns them with their addresses.
func chatNodes(t *testing.T, url string, n int) ([]*child, []string) {
	t.Helper()
	bin := buildProgram(t, "github.com/strandws/strand/examples/chat")
	var procs []*child
	var addrs []string
	for range n {
		p := startChild(t, bin, "-addr", "127.0.0.1:0", "-reader", readerMode.String(), "-redis", url)
		procs = append(procs, p)
		addrs = append(addrs, p.waitLine(t, chatListening, 2*time.Minute)[1])
	}
	return procs, addrs
}

// faultEvent is one thing a chat client received: a message (from, index),
// a gap notice, or the "not delivered" error for one of its own messages.
type faultEvent struct {
	kind string // "msg", "gap", "notDelivered"
	from int
	idx  int
}

// faultMember is a chat client that sends its numbered messages and records
// every event.
type faultMember struct {
	id     int
	c      *chatClient
	mu     sync.Mutex
	events []faultEvent
	err    error
}

func (m *faultMember) snapshot() ([]faultEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]faultEvent(nil), m.events...), m.err
}

// read records events until the connection ends.
func (m *faultMember) read(stop *atomic.Bool) {
	var buf []byte
	for {
		b, err := m.c.readData(time.Second, buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !stop.Load() {
				continue
			}
			if !stop.Load() {
				m.mu.Lock()
				m.err = err
				m.mu.Unlock()
			}
			return
		}
		var msg chatMsg
		if err := json.Unmarshal(b, &msg); err != nil {
			m.mu.Lock()
			m.err = fmt.Errorf("decode %q: %w", b, err)
			m.mu.Unlock()
			return
		}
		var ev faultEvent
		switch {
		case msg.Type == "message":
			from, err1 := strconv.Atoi(msg.From[1:])
			idx, err2 := strconv.Atoi(msg.Text)
			if err := errors.Join(err1, err2); err != nil {
				m.mu.Lock()
				m.err = fmt.Errorf("message %+v: %w", msg, err)
				m.mu.Unlock()
				return
			}
			ev = faultEvent{kind: "msg", from: from, idx: idx}
		case msg.Type == "system" && msg.Text == "some messages were missed":
			ev = faultEvent{kind: "gap"}
		case msg.Type == "error" && msg.Error == "message not delivered":
			ev = faultEvent{kind: "notDelivered", from: m.id}
		case msg.Type == "error" || msg.Type == "system":
			m.mu.Lock()
			m.err = fmt.Errorf("unexpected %s: %s%s", msg.Type, msg.Error, msg.Text)
			m.mu.Unlock()
			return
		default:
			continue // join, leave, members
		}
		m.mu.Lock()
		m.events = append(m.events, ev)
		m.mu.Unlock()
	}
}

// faultRun connects people members to room over addrs, each sending msgs
// numbered messages pace apart, with fault called once after the first
// third of the sending. It waits until every member has the last message of
// every sender (or within) and returns the members.
func faultRun(t *testing.T, addrs []string, room string, people, msgs int, pace time.Duration, fault func()) []*faultMember {
	t.Helper()
	members := make([]*faultMember, people)
	for i := range members {
		c, _ := (&chatHarness{addr: addrs[i%len(addrs)]}).chatDial(t, room, fmt.Sprintf("p%02d", i))
		c.nextOf(t, "members")
		members[i] = &faultMember{id: i, c: c}
	}
	var stop atomic.Bool
	var readers sync.WaitGroup
	for _, m := range members {
		readers.Add(1)
		go func() {
			defer readers.Done()
			m.read(&stop)
		}()
	}
	var senders sync.WaitGroup
	sendErrs := make(chan error, people)
	for _, m := range members {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for j := range msgs {
				b, _ := json.Marshal(map[string]string{"type": "message", "text": fmt.Sprint(j)})
				if err := m.c.nc.SetWriteDeadline(time.Now().Add(chatTimeout)); err != nil {
					sendErrs <- err
					return
				}
				if err := writeText(m.c, b); err != nil {
					sendErrs <- err
					return
				}
				time.Sleep(pace)
			}
		}()
	}
	time.Sleep(time.Duration(msgs/3) * pace)
	fault()
	senders.Wait()
	close(sendErrs)
	for err := range sendErrs {
		require.NoError(t, err)
	}
	// Every sender's last message was sent well after the fault: wait for
	// each member to have it from each sender, or its "not delivered".
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for _, m := range members {
			evs, err := m.snapshot()
			require.NoError(t, err, "member %d", m.id)
			last := make(map[int]bool)
			for _, ev := range evs {
				if ev.kind == "msg" && ev.idx == msgs-1 {
					last[ev.from] = true
				}
			}
			if len(last) < people {
				done = false
			}
		}
		if done {
			break
		}
		require.True(t, time.Now().Before(deadline), "members still miss senders' last messages")
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything late would be a duplicate: let it show
	stop.Store(true)
	for _, m := range members {
		_ = m.c.nc.SetReadDeadline(time.Now())
	}
	readers.Wait()
	for _, m := range members {
		_, err := m.snapshot()
		require.NoError(t, err, "member %d", m.id)
		_ = m.c.nc.Close()
	}
	return members
}

// faultTally checks the members' events: each member got each sender's
// messages in the order sent, without duplicates, and every member saw the
// messages they have in common in one order; every message is delivered
// to every member, or its sender was told it was not delivered, or each
// member that does not have it got a gap notice where it would have been.
// It returns how many messages were delivered everywhere, were reported
// not delivered, were covered by gap notices, and were lost silently, and
// the members' gap notices.
func faultTally(t *testing.T, members []*faultMember, msgs int) (everywhere, notDelivered, coveredByGap, silent, gaps int) {
	t.Helper()
	people := len(members)
	type key struct{ from, idx int }
	pos := make([]map[key]int, people) // member → message → index in its events
	failed := make([]int, people)      // sender → "not delivered" errors
	for mi, m := range members {
		evs, _ := m.snapshot()
		pos[mi] = make(map[key]int)
		next := make([]int, people) // per sender: the lowest index still possible
		for i, ev := range evs {
			switch ev.kind {
			case "msg":
				k := key{ev.from, ev.idx}
				_, dup := pos[mi][k]
				require.False(t, dup, "member %d got %v twice", mi, k)
				require.GreaterOrEqual(t, ev.idx, next[ev.from], "member %d: sender %d's order", mi, ev.from)
				next[ev.from] = ev.idx + 1
				pos[mi][k] = i
			case "gap":
				gaps++
			case "notDelivered":
				failed[mi]++
			}
		}
	}
	// One order: the messages member 0 shares with any other member come in
	// the same order there.
	for mi := 1; mi < people; mi++ {
		prev := -1
		evs, _ := members[0].snapshot()
		for _, ev := range evs {
			if ev.kind != "msg" {
				continue
			}
			if p, ok := pos[mi][key{ev.from, ev.idx}]; ok {
				require.Greater(t, p, prev, "member %d saw %d/%d in another order than member 0", mi, ev.from, ev.idx)
				prev = p
			}
		}
	}
	// gapBetween tells whether member mi has a gap notice between the
	// messages of sender s it has before and after index idx.
	gapBetween := func(mi, s, idx int) bool {
		evs, _ := members[mi].snapshot()
		lo, hi := -1, len(evs)
		for j := idx - 1; j >= 0; j-- {
			if p, ok := pos[mi][key{s, j}]; ok {
				lo = p
				break
			}
		}
		for j := idx + 1; j < msgs; j++ {
			if p, ok := pos[mi][key{s, j}]; ok {
				hi = p
				break
			}
		}
		for p := lo + 1; p < hi; p++ {
			if evs[p].kind == "gap" {
				return true
			}
		}
		return false
	}
	for s := range people {
		// Of s's messages that no member has, those not covered by a gap
		// notice at every member must be among the ones s was told were
		// not delivered; the others may be either (which ones failed is
		// not known, only how many).
		mustFail, mayFail := 0, 0
		for idx := range msgs {
			k := key{s, idx}
			have, covered := 0, 0
			for mi := range people {
				if _, ok := pos[mi][k]; ok {
					have++
				} else if gapBetween(mi, s, idx) {
					covered++
				}
			}
			switch {
			case have == people:
				everywhere++
			case have == 0 && covered < people:
				mustFail++
			case have == 0:
				mayFail++
			case have+covered == people:
				coveredByGap++
			default:
				// Delivered to some members, missing at others without a
				// gap notice there: lost silently.
				silent++
			}
		}
		if mustFail > failed[s] {
			silent += mustFail - failed[s]
			mustFail = failed[s]
		}
		fromGap := max(0, mayFail-(failed[s]-mustFail))
		notDelivered += mustFail + mayFail - fromGap
		coveredByGap += fromGap
	}
	return everywhere, notDelivered, coveredByGap, silent, gaps
}

// Redis is SIGKILLed mid-stream and restarted empty on the same port
// (persistence off): every message is delivered in order to every member,
// or its sender was told "message not delivered", or the members got the
// gap notice where it would have been. Messages lost silently: 0.
func TestChatClusterProcessesRedisRestart(t *testing.T) {
	rs := redistest.Start(t)
	_, addrs := chatNodes(t, rs.URL(), 3)
	const people, msgs = 9, 45
	members := faultRun(t, addrs, "lobby", people, msgs, 80*time.Millisecond, func() {
		rs.Kill()
		time.Sleep(500 * time.Millisecond)
		rs.Restart()
	})
	everywhere, notDelivered, covered, silent, gaps := faultTally(t, members, msgs)
	t.Logf("%d messages: %d delivered to every member, %d reported not delivered to their sender, %d covered by gap notices; %d gap notices; lost silently: %d",
		people*msgs, everywhere, notDelivered, covered, gaps, silent)
	require.Zero(t, silent, "messages lost silently")
	require.Equal(t, people*msgs, everywhere+notDelivered+covered+silent)
	require.NotZero(t, notDelivered, "Redis was down for 500 ms: some sender must have been told")
	// Redis lost the room: each node reports it to each of its members.
	for _, m := range members {
		evs, _ := m.snapshot()
		n := 0
		for _, ev := range evs {
			if ev.kind == "gap" {
				n++
			}
		}
		require.NotZero(t, n, "member %d got no gap notice though Redis lost the room", m.id)
	}
}

// The nodes' Pub/Sub connections are killed (CLIENT KILL TYPE pubsub)
// twice while Redis keeps its state: every member gets every message, one
// order everywhere, each sender's order, and no gap notice and no error.
func TestChatClusterProcessesPubSubKilled(t *testing.T) {
	rs := redistest.Start(t)
	procs, addrs := chatNodes(t, rs.URL(), 3)
	const people, msgs = 9, 45
	killed := 0
	members := faultRun(t, addrs, "lobby", people, msgs, 80*time.Millisecond, func() {
		for range 2 {
			n, err := rs.Do("CLIENT", "KILL", "TYPE", "pubsub")
			require.NoError(t, err)
			k, err := strconv.Atoi(n)
			require.NoError(t, err)
			killed += k
			time.Sleep(400 * time.Millisecond)
		}
	})
	everywhere, notDelivered, covered, silent, gaps := faultTally(t, members, msgs)
	t.Logf("%d Pub/Sub connections killed; %d messages: %d delivered to every member, %d not delivered, %d covered by gaps, %d gap notices, %d lost silently",
		killed, people*msgs, everywhere, notDelivered, covered, gaps, silent)
	require.GreaterOrEqual(t, killed, 6, "each node's Pub/Sub connection, twice")
	require.Equal(t, people*msgs, everywhere, "every message to every member")
	require.Zero(t, gaps)
	restored := regexp.MustCompile(`Pub/Sub connection restored`)
	for _, p := range procs {
		p.waitLine(t, restored, chatTimeout)
	}
}

// faultTally itself: a message missing at one member with neither a gap
// notice there nor an error to its sender is counted as lost silently; an
// error or a gap notice accounts for it.
func TestFaultTallyCountsSilentLoss(t *testing.T) {
	msg := func(from, idx int) faultEvent { return faultEvent{kind: "msg", from: from, idx: idx} }
	gap := faultEvent{kind: "gap"}
	members := func(second []faultEvent) []*faultMember {
		first := []faultEvent{msg(0, 0), msg(1, 0), msg(0, 1), msg(1, 1)}
		return []*faultMember{{id: 0, events: first}, {id: 1, events: second}}
	}
	// Member 1 misses 0/1, which member 0 has: silent, unless a gap notice
	// stands where it would have been.
	_, _, _, silent, _ := faultTally(t, members([]faultEvent{msg(0, 0), msg(1, 0), msg(1, 1)}), 2)
	require.Equal(t, 1, silent)
	every, _, covered, silent, gaps := faultTally(t, members([]faultEvent{msg(0, 0), msg(1, 0), gap, msg(1, 1)}), 2)
	require.Equal(t, []int{3, 1, 0, 1}, []int{every, covered, silent, gaps})
	// Nobody has 0/1: its sender must have been told.
	_, _, _, silent, _ = faultTally(t, []*faultMember{
		{id: 0, events: []faultEvent{msg(0, 0), msg(1, 0), msg(1, 1)}},
		{id: 1, events: []faultEvent{msg(0, 0), msg(1, 0), msg(1, 1)}},
	}, 2)
	require.Equal(t, 1, silent)
	every, failed, _, silent, _ := faultTally(t, []*faultMember{
		{id: 0, events: []faultEvent{msg(0, 0), msg(1, 0), msg(1, 1), {kind: "notDelivered", from: 0}}},
		{id: 1, events: []faultEvent{msg(0, 0), msg(1, 0), msg(1, 1)}},
	}, 2)
	require.Equal(t, []int{3, 1, 0}, []int{every, failed, silent})
}
