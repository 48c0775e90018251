package redisadapter

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// presenceField is a presence entry's hash field: "<node>:<conn>".
func (a *Adapter) presenceField(conn uint64) string {
	return a.nodeID + ":" + strconv.FormatUint(conn, 10)
}

// SetPresence implements wsframework.PresenceAdapter: conn's entry in
// room's presence hash. The node keeps a copy, which it writes again if
// Redis lost it.
func (a *Adapter) SetPresence(room string, conn uint64, payload []byte) error {
	if a.closed.Load() {
		return wsframework.ErrAdapterClosed
	}
	p := append([]byte(nil), payload...)
	a.presMu.Lock()
	m := a.pres[room]
	if m == nil {
		m = make(map[uint64][]byte)
		a.pres[room] = m
	}
	m[conn] = p
	a.presMu.Unlock()
	k := a.keysOf(room)
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
	defer cancel()
	c := a.client
	for _, r := range c.DoMulti(ctx,
		c.B().Hset().Key(k.pres).FieldValue().FieldValue(a.presenceField(conn), rueidis.BinaryString(p)).Build(),
		c.B().Pexpire().Key(k.pres).Milliseconds(a.cfg.StateTTL.Milliseconds()).Build()) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

// RemovePresence implements wsframework.PresenceAdapter.
func (a *Adapter) RemovePresence(room string, conn uint64) error {
	if a.closed.Load() {
		return wsframework.ErrAdapterClosed
	}
	a.presMu.Lock()
	m := a.pres[room]
	_, had := m[conn]
	delete(m, conn)
	if len(m) == 0 {
		delete(a.pres, room)
	}
	a.presMu.Unlock()
	if !had {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
	defer cancel()
	return a.client.Do(ctx, a.client.B().Hdel().Key(a.keysOf(room).pres).Field(a.presenceField(conn)).Build()).Error()
}

// Presence implements wsframework.PresenceAdapter: room's entries whose
// node is alive (its liveness key exists); the others are deleted.
func (a *Adapter) Presence(ctx context.Context, room string) ([]wsframework.PresenceMember, error) {
	if a.closed.Load() {
		return nil, wsframework.ErrAdapterClosed
	}
	vs, err := presenceScript.run(ctx, a.client, []string{a.keysOf(room).pres}, []string{a.nodePrefix}).ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]wsframework.PresenceMember, 0, len(vs)/2)
	for i := 0; i+1 < len(vs); i += 2 {
		f, err1 := vs[i].ToString()
		p, err2 := vs[i+1].ToString()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		node, conn, ok := strings.Cut(f, ":")
		id, err := strconv.ParseUint(conn, 10, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, wsframework.PresenceMember{Node: node, Conn: id, Payload: []byte(p)})
	}
	return out, nil
}

// heartbeat renews the node's liveness key. If the key was missing (Redis
// lost it, or the node was away longer than its TTL) after the first beat,
// the node writes its presence entries again.
func (a *Adapter) heartbeat() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
	defer cancel()
	c := a.client
	old, err := c.Do(ctx, c.B().Set().Key(a.nodeKey).Value("1").Get().Px(2*a.cfg.Heartbeat).Build()).ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return err
	}
	if old != "" {
		return nil
	}
	a.presMu.Lock()
	var cmds rueidis.Commands
	for room, m := range a.pres {
		k := a.keysOf(room)
		for conn, p := range m {
			cmds = append(cmds, c.B().Hset().Key(k.pres).FieldValue().FieldValue(a.presenceField(conn), string(p)).Build())
		}
		cmds = append(cmds, c.B().Pexpire().Key(k.pres).Milliseconds(a.cfg.StateTTL.Milliseconds()).Build())
	}
	a.presMu.Unlock()
	if len(cmds) == 0 {
		return nil
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

// runHeartbeat beats every Heartbeat.
func (a *Adapter) runHeartbeat() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if err := a.heartbeat(); err != nil && !a.closed.Load() {
			a.cfg.Logger.Warn("redisadapter: heartbeat failed", "err", err)
		}
	}
}

// History implements wsframework.HistoryAdapter from the room's stream.
func (a *Adapter) History(ctx context.Context, room string, upTo wsframework.RoomPosition, n int) ([]wsframework.HistoryMessage, error) {
	if a.closed.Load() {
		return nil, wsframework.ErrAdapterClosed
	}
	latest := upTo == wsframework.RoomPosition{}
	if n <= 0 || (!latest && upTo.Offset == 0) {
		return nil, nil
	}
	id := "+"
	if !latest {
		id = strconv.FormatUint(upTo.Offset, 10) + "-0"
	}
	k := a.keysOf(room)
	vs, err := historyScript.run(ctx, a.client, []string{k.meta, k.hist}, []string{upTo.Epoch, id, strconv.Itoa(n)}).ToArray()
	if err != nil {
		return nil, err
	}
	if len(vs) != 2 {
		return nil, errors.New("redisadapter: unexpected reply to the history script")
	}
	epoch, err := vs[0].ToString()
	if err != nil {
		return nil, nil // no such room, or another epoch
	}
	es, err := parseEntries(vs[1])
	if err != nil {
		return nil, err
	}
	out := make([]wsframework.HistoryMessage, 0, len(es))
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if len(e.body) < hdrLen || e.body[0] != bodyVersion {
			continue
		}
		out = append(out, wsframework.HistoryMessage{
			Pos:  wsframework.RoomPosition{Epoch: epoch, Offset: e.off},
			Type: sdk.MessageType(e.body[1]),
			Data: []byte(e.body[hdrLen:]),
		})
	}
	return out, nil
}
