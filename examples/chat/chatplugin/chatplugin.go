package chatplugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/strandws/strand/sdk"
)

// Defaults of the zero Config.
const (
	DefaultHistorySize  = 50
	DefaultMaxTextBytes = 4 << 10
	DefaultMaxNameChars = 32
	DefaultRate         = 20 // messages per second, sustained
	DefaultBurst        = 40
	DefaultRateStrikes  = 3
	DefaultStrikeWindow = 10 * time.Second
	DefaultMaxIdleRooms = 1000
)

// Config configures the chat. The zero value is valid.
type Config struct {
	// HistorySize is how many messages a room remembers for people who
	// join. Zero means DefaultHistorySize (50).
	HistorySize int
	// MaxTextBytes bounds a message's text (UTF-8 bytes). Zero means
	// DefaultMaxTextBytes (4 KiB).
	MaxTextBytes int
	// MaxNameChars bounds names and room names, in Unicode characters.
	// Zero means DefaultMaxNameChars (32).
	MaxNameChars int
	// Rate and Burst are a connection's token bucket: Rate messages per
	// second sustained, Burst at once. Zero means DefaultRate (20) and
	// DefaultBurst (40).
	Rate  float64
	Burst int
	// RateStrikes rate-limit errors within StrikeWindow close the
	// connection with 1008. Zero means DefaultRateStrikes (3) and
	// DefaultStrikeWindow (10 s).
	RateStrikes  int
	StrikeWindow time.Duration
	// MaxIdleRooms is how many rooms without members keep their history;
	// beyond it the longest idle is forgotten. Zero means
	// DefaultMaxIdleRooms (1000).
	MaxIdleRooms int
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Cluster, if set, shares the rooms with other servers: a joiner's
	// history comes from it and it lists members across servers. Nil
	// means this server alone, with the history in memory.
	Cluster Cluster
}

// Cluster is what the chat needs from a host whose rooms span several
// servers (chatserver implements it over a wsframework.Server with a Redis
// adapter). In cluster mode the chat keeps no state of its own: messages
// carry an "id" instead of a "seq", and the history is the room's, across
// servers.
type Cluster interface {
	// Join makes connection id a member of room with presence payload
	// presence. Atomically with the join, it queues to the connection
	// encode(h), where h is the last n messages of the room published
	// before it joined for which keep is true, oldest first: every later
	// message reaches the connection live, after it, none twice.
	Join(ctx context.Context, id uint64, room string, presence []byte, n int, keep func(msg []byte) bool, encode func(h [][]byte) []byte) error
	// Members returns the presence payloads of room's members on every
	// server.
	Members(ctx context.Context, room string) ([][]byte, error)
}

func (c Config) withDefaults() (Config, error) {
	if c.HistorySize < 0 || c.MaxTextBytes < 0 || c.MaxNameChars < 0 || c.Rate < 0 ||
		c.Burst < 0 || c.RateStrikes < 0 || c.StrikeWindow < 0 || c.MaxIdleRooms < 0 {
		return c, errors.New("chatplugin: negative value in Config")
	}
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.MaxTextBytes == 0 {
		c.MaxTextBytes = DefaultMaxTextBytes
	}
	if c.MaxNameChars == 0 {
		c.MaxNameChars = DefaultMaxNameChars
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.RateStrikes == 0 {
		c.RateStrikes = DefaultRateStrikes
	}
	if c.StrikeWindow == 0 {
		c.StrikeWindow = DefaultStrikeWindow
	}
	if c.MaxIdleRooms == 0 {
		c.MaxIdleRooms = DefaultMaxIdleRooms
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Chat is the chat plugin with its rooms' state. Create with New; it is safe
// for concurrent use.
type Chat struct {
	cfg    Config
	plugin *sdk.Plugin
	entry  *sdk.Entry

	mu    sync.Mutex // guards rooms and idle
	rooms map[string]*room
	idle  int // rooms without members

	idPrefix string        // cluster mode: this server's random message ID prefix
	nextID   atomic.Uint64 // cluster mode: message IDs
}

// room is one room's plugin state.
type room struct {
	name    string
	members int       // connections in OnOpen..OnClose; guarded by Chat.mu
	idleAt  time.Time // when members dropped to 0; guarded by Chat.mu

	mu      sync.Mutex // guards seq and history; held around Broadcast
	seq     uint64
	history [][]byte // encoded "message" objects, oldest first
}

// client is one connection's state, created by the request filter and
// handed to the handlers through the connection's values.
type client struct {
	room, name string
	r          *room // set in OnOpen

	joined  bool
	tokens  float64
	last    time.Time
	strikes []time.Time
}

const clientKey = "chatplugin.client"

// New returns the chat plugin. Its entry (Entry) must be routed on the
// WebSocket path, such as "GET /ws".
func New(cfg Config) (*Chat, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ch := &Chat{cfg: c, plugin: sdk.NewPlugin("chat"), rooms: make(map[string]*room)}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	ch.idPrefix = hex.EncodeToString(rb[:]) + "-"
	ch.entry = ch.plugin.Entry("chat").
		RequestFilter(ch.filter).
		WebSocket(sdk.WebSocketHandlers{
			OnOpen:    ch.onOpen,
			OnMessage: ch.onMessage,
			OnClose:   ch.onClose,
		})
	return ch, nil
}

// Plugin returns the plugin.
func (ch *Chat) Plugin() *sdk.Plugin { return ch.plugin }

// Entry returns the entry that accepts "?room=NAME&name=NICK" handshakes.
func (ch *Chat) Entry() *sdk.Entry { return ch.entry }

// Wire messages.
type (
	inbound struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	messageOut struct {
		Type string `json:"type"`
		Room string `json:"room"`
		From string `json:"from"`
		Text string `json:"text"`
		TS   int64  `json:"ts"`
		Seq  uint64 `json:"seq,omitempty"` // single server
		ID   string `json:"id,omitempty"`  // cluster mode
	}
	membersOut struct {
		Type  string   `json:"type"`
		Room  string   `json:"room"`
		Names []string `json:"names"`
	}
	systemOut struct {
		Type string `json:"type"`
		Room string `json:"room"`
		Text string `json:"text"`
	}
	presenceOut struct {
		Type string `json:"type"`
		Room string `json:"room"`
		Name string `json:"name"`
	}
	errorOut struct {
		Type  string `json:"type"`
		Error string `json:"error"`
	}
)

// checkName returns why v is not a valid name or room ("" if it is).
func (ch *Chat) checkName(what, v string, present bool) string {
	switch {
	case !present:
		return what + " is missing"
	case !utf8.ValidString(v):
		return what + " is not valid UTF-8"
	case strings.TrimSpace(v) == "":
		return what + " is empty"
	case utf8.RuneCountInString(v) > ch.cfg.MaxNameChars:
		return fmt.Sprintf("%s is over %d characters", what, ch.cfg.MaxNameChars)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return what + " contains control characters"
	}
	return ""
}

// filter checks the handshake's room and name and upgrades, or answers 400
// with the reason.
func (ch *Chat) filter(ctx *sdk.RequestContext) {
	q := ctx.Request().Query()
	room, name := strings.TrimSpace(q.Get("room")), strings.TrimSpace(q.Get("name"))
	if why := ch.checkName("room", room, q.Has("room")); why != "" {
		ctx.Reject(400, why)
		return
	}
	if why := ch.checkName("name", name, q.Has("name")); why != "" {
		ctx.Reject(400, why)
		return
	}
	ctx.Set(clientKey, &client{room: room, name: name, tokens: float64(ch.cfg.Burst)})
	ctx.Upgrade(nil)
}

func clientOf(c *sdk.Conn) *client {
	cl, _ := c.Value(clientKey).(*client)
	return cl
}

// acquire returns the room's state, counting one more member.
func (ch *Chat) acquire(name string) *room {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	r, ok := ch.rooms[name]
	if !ok {
		r = &room{name: name}
		ch.rooms[name] = r
	} else if r.members == 0 {
		ch.idle--
	}
	r.members++
	return r
}

// release counts one member less and forgets the longest idle room when
// too many rooms have no member.
func (ch *Chat) release(r *room) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	r.members--
	if r.members > 0 {
		return
	}
	r.idleAt = ch.cfg.Now()
	ch.idle++
	for ch.idle > ch.cfg.MaxIdleRooms {
		var oldest *room
		for _, o := range ch.rooms {
			if o.members == 0 && (oldest == nil || o.idleAt.Before(oldest.idleAt)) {
				oldest = o
			}
		}
		delete(ch.rooms, oldest.name)
		ch.idle--
	}
}

func (ch *Chat) onOpen(c *sdk.Conn) {
	cl := clientOf(c)
	if cl == nil { // not upgraded by our filter
		_ = c.Close(sdk.CloseInternalError, "no chat state")
		return
	}
	r := ch.acquire(cl.room)
	cl.r = r
	join, _ := json.Marshal(presenceOut{Type: "join", Room: cl.room, Name: cl.name})
	if ch.cfg.Cluster != nil {
		ch.openClustered(c, cl, join)
		return
	}

	r.mu.Lock()
	err := c.Join(cl.room)
	if err == nil {
		_ = c.SendText(historyJSON(r.history))
		_ = c.Broadcast(cl.room, sdk.Text, join, sdk.BroadcastOptions{})
		cl.joined = true
	}
	r.mu.Unlock()
	if err != nil && !errors.Is(err, sdk.ErrClosed) {
		ch.sendError(c, "cannot join the room")
		_ = c.Close(sdk.CloseInternalError, "cannot join the room")
	}
}

// openClustered joins through the cluster: the room's history and members
// across servers, then the join for everyone.
func (ch *Chat) openClustered(c *sdk.Conn, cl *client, join []byte) {
	ctx, cancel := context.WithTimeout(c.Context(), 10*time.Second)
	defer cancel()
	err := ch.cfg.Cluster.Join(ctx, c.ID(), cl.room, []byte(cl.name), ch.cfg.HistorySize, isChatMessage,
		func(h [][]byte) []byte { return []byte(historyJSON(h)) })
	if err == nil {
		names := []string{}
		if ps, err := ch.cfg.Cluster.Members(ctx, cl.room); err == nil {
			for _, p := range ps {
				names = append(names, string(p))
			}
		}
		b, _ := json.Marshal(membersOut{Type: "members", Room: cl.room, Names: names})
		_ = c.Send(sdk.Text, b)
		err = c.Broadcast(cl.room, sdk.Text, join, sdk.BroadcastOptions{})
		cl.joined = true
	}
	if err != nil && !errors.Is(err, sdk.ErrClosed) {
		ch.sendError(c, "cannot join the room")
		_ = c.Close(sdk.CloseInternalError, "cannot join the room")
	}
}

// messagePrefix starts every encoded "message" object (messageOut).
const messagePrefix = `{"type":"message",`

// isChatMessage tells a room's "message" objects from its joins and leaves.
func isChatMessage(b []byte) bool { return strings.HasPrefix(string(b), messagePrefix) }

// GapNotice is the system message a member gets in place of messages of
// room that its server could not deliver (chatserver sends it on
// wsframework's gap event).
func (ch *Chat) GapNotice(room string) []byte {
	b, _ := json.Marshal(systemOut{Type: "system", Room: room, Text: "some messages were missed"})
	return b
}

// historyJSON encodes {"type":"history","messages":[...]}.
func historyJSON(msgs [][]byte) string {
	var b strings.Builder
	n := 32
	for _, m := range msgs {
		n += len(m) + 1
	}
	b.Grow(n)
	b.WriteString(`{"type":"history","messages":[`)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m)
	}
	b.WriteString(`]}`)
	return b.String()
}

func (ch *Chat) onMessage(c *sdk.Conn, m sdk.Message) {
	cl := clientOf(c)
	if cl == nil || !cl.joined {
		return
	}
	now := ch.cfg.Now()
	if !cl.allow(now, ch.cfg.Rate, float64(ch.cfg.Burst)) {
		ch.rateError(c, cl, now)
		return
	}
	if m.Type != sdk.Text {
		ch.sendError(c, "binary messages are not supported: send JSON text")
		return
	}
	var in inbound
	if err := json.Unmarshal(m.Data, &in); err != nil {
		ch.sendError(c, "malformed JSON: "+jsonProblem(err))
		return
	}
	if in.Type != "message" {
		ch.sendError(c, fmt.Sprintf("unknown message type %q", in.Type))
		return
	}
	if len(in.Text) > ch.cfg.MaxTextBytes {
		ch.sendError(c, fmt.Sprintf("text is over %d bytes", ch.cfg.MaxTextBytes))
		return
	}
	if strings.TrimSpace(in.Text) == "" {
		ch.sendError(c, "text is empty")
		return
	}

	if ch.cfg.Cluster != nil {
		// The cluster numbers and orders the room's messages: no lock,
		// no local history.
		out, _ := json.Marshal(messageOut{
			Type: "message", Room: cl.room, From: cl.name, Text: in.Text,
			TS: now.UnixMilli(), ID: ch.idPrefix + fmt.Sprint(ch.nextID.Add(1)),
		})
		if err := c.Broadcast(cl.room, sdk.Text, out, sdk.BroadcastOptions{}); err != nil {
			ch.sendError(c, "message not delivered")
		}
		return
	}
	r := cl.r
	r.mu.Lock()
	r.seq++
	out, err := json.Marshal(messageOut{
		Type: "message", Room: cl.room, From: cl.name, Text: in.Text,
		TS: now.UnixMilli(), Seq: r.seq,
	})
	if err == nil {
		if len(r.history) == ch.cfg.HistorySize {
			copy(r.history, r.history[1:])
			r.history = r.history[:len(r.history)-1]
		}
		r.history = append(r.history, out)
		err = c.Broadcast(cl.room, sdk.Text, out, sdk.BroadcastOptions{})
	}
	r.mu.Unlock()
	if err != nil {
		ch.sendError(c, "message not delivered")
	}
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	}
	return "expected an object like {\"type\":\"message\",\"text\":\"hi\"}"
}

// allow takes a token from the connection's bucket.
func (cl *client) allow(now time.Time, rate, burst float64) bool {
	if !cl.last.IsZero() {
		cl.tokens = min(burst, cl.tokens+now.Sub(cl.last).Seconds()*rate)
	}
	cl.last = now
	if cl.tokens < 1 {
		return false
	}
	cl.tokens--
	return true
}

// rateError answers a message over the rate; the RateStrikes-th within
// StrikeWindow closes the connection with 1008.
func (ch *Chat) rateError(c *sdk.Conn, cl *client, now time.Time) {
	keep := cl.strikes[:0]
	for _, t := range cl.strikes {
		if now.Sub(t) < ch.cfg.StrikeWindow {
			keep = append(keep, t)
		}
	}
	cl.strikes = append(keep, now)
	ch.sendError(c, fmt.Sprintf("rate limit: at most %g messages per second (burst %d); message dropped",
		ch.cfg.Rate, ch.cfg.Burst))
	if len(cl.strikes) >= ch.cfg.RateStrikes {
		_ = c.Close(sdk.ClosePolicyViolation, "rate limit exceeded")
	}
}

func (ch *Chat) sendError(c *sdk.Conn, msg string) {
	b, _ := json.Marshal(errorOut{Type: "error", Error: msg})
	_ = c.Send(sdk.Text, b)
}

func (ch *Chat) onClose(c *sdk.Conn, _ sdk.CloseCode, _ string) {
	cl := clientOf(c)
	if cl == nil || cl.r == nil {
		return
	}
	r := cl.r
	if cl.joined {
		leave, _ := json.Marshal(presenceOut{Type: "leave", Room: cl.room, Name: cl.name})
		r.mu.Lock()
		_ = c.Leave(cl.room) // a host may have done it already
		_ = c.Broadcast(cl.room, sdk.Text, leave, sdk.BroadcastOptions{ExcludeSelf: true})
		r.mu.Unlock()
	}
	ch.release(r)
}

// Stats describe the chat's rooms.
type Stats struct {
	Rooms     int // rooms with state (history), with or without members
	IdleRooms int // rooms without members
}

// Stats returns the chat's counters.
func (ch *Chat) Stats() Stats {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return Stats{Rooms: len(ch.rooms), IdleRooms: ch.idle}
}
