package redisadapter

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/strandws/strand/wsframework"
)

// presenceField is a presence entry's hash field: "<node>:<conn>".
func (a *Adapter) presenceField(conn uint64) string {
	return a.nodeID + ":" + strconv.FormatUint(conn, 10)
}

// Presence writes go through one queue, in order, to the presence
// goroutine, which sends what it finds waiting as one pipelined batch:
// SetPresence waits for its write (its error is the caller's), and
// RemovePresence does not (the Server calls it under a room lock, where a
// round trip would hold up the room). Order matters only per entry, and
// one entry's set and remove are never concurrent (the Server serialises
// them per connection), so a removal queued before a new set of the same
// entry is written before it.

// presOp is a queued presence write, or a barrier (Presence waits for
// this node's earlier writes, so it reads its own).
type presOp struct {
	room    string
	conn    uint64
	payload []byte     // nil: remove
	barrier bool       // no write: done when the writes before it are
	done    chan error // set and barrier: the outcome
}

// presQueueSize bounds the queue; a RemovePresence finding it full writes
// at once (no earlier write of the same entry can still be queued: see
// above).
const presQueueSize = 1024

// SetPresence implements wsframework.PresenceAdapter: conn's entry in
// room's presence hash. The node keeps a copy, which it writes again if
// Redis lost it.
func (a *Adapter) SetPresence(room string, conn uint64, payload []byte) error {
	if a.closed.Load() {
		return wsframework.ErrAdapterClosed
	}
	p := append([]byte{}, payload...)
	a.presMu.Lock()
	m := a.pres[room]
	if m == nil {
		m = make(map[uint64][]byte)
		a.pres[room] = m
	}
	m[conn] = p
	a.presMu.Unlock()
	done := make(chan error, 1)
	if !a.queuePresence(presOp{room: room, conn: conn, payload: p, done: done}, true) {
		return wsframework.ErrAdapterClosed
	}
	return <-done
}

// RemovePresence implements wsframework.PresenceAdapter. It queues the
// removal and returns without waiting for Redis.
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
	op := presOp{room: room, conn: conn}
	if a.queuePresence(op, false) {
		return nil
	}
	if a.closed.Load() {
		return wsframework.ErrAdapterClosed
	}
	// The queue is full: write it now.
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
	defer cancel()
	return a.client.Do(ctx, a.presenceCmd(op)).Error()
}

// queuePresence queues op; false if the adapter is closed, or if the queue
// is full and wait is false.
func (a *Adapter) queuePresence(op presOp, wait bool) bool {
	a.pq.mu.Lock()
	for wait && len(a.pq.ops) >= presQueueSize && !a.pq.closed {
		a.pq.notFull.Wait()
	}
	if a.pq.closed || len(a.pq.ops) >= presQueueSize {
		a.pq.mu.Unlock()
		return false
	}
	a.pq.ops = append(a.pq.ops, op)
	a.pq.mu.Unlock()
	select {
	case a.pq.wake <- struct{}{}:
	default:
	}
	return true
}

// presenceCmd is op's command (the hash's TTL is renewed separately).
func (a *Adapter) presenceCmd(op presOp) rueidis.Completed {
	k := a.keysOf(op.room).pres
	if op.payload == nil {
		return a.client.B().Hdel().Key(k).Field(a.presenceField(op.conn)).Build()
	}
	return a.client.B().Hset().Key(k).FieldValue().FieldValue(a.presenceField(op.conn), rueidis.BinaryString(op.payload)).Build()
}

// runPresence writes the queued presence operations, a batch at a time,
// until Close; then it answers what is left.
func (a *Adapter) runPresence() {
	defer a.wg.Done()
	var ops []presOp
	for {
		select {
		case <-a.pq.wake:
		case <-a.stop:
			a.pq.mu.Lock()
			a.pq.closed = true
			ops, a.pq.ops = a.pq.ops, nil
			a.pq.notFull.Broadcast()
			a.pq.mu.Unlock()
			for _, op := range ops {
				if op.done != nil {
					op.done <- wsframework.ErrAdapterClosed
				}
			}
			return
		}
		a.pq.mu.Lock()
		ops, a.pq.ops = a.pq.ops, ops[:0]
		a.pq.notFull.Broadcast()
		a.pq.mu.Unlock()
		if len(ops) == 0 {
			continue
		}
		c := a.client
		cmds := make(rueidis.Commands, 0, len(ops)+1)
		for _, op := range ops {
			if op.barrier {
				continue
			}
			cmds = append(cmds, a.presenceCmd(op))
			if op.payload != nil {
				cmds = append(cmds, c.B().Pexpire().Key(a.keysOf(op.room).pres).Milliseconds(a.cfg.StateTTL.Milliseconds()).Build())
			}
		}
		var res []rueidis.RedisResult
		if len(cmds) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
			res = c.DoMulti(ctx, cmds...)
			cancel()
		}
		i := 0
		for _, op := range ops {
			if op.barrier {
				op.done <- nil
				continue
			}
			err := res[i].Error()
			i++
			if op.payload != nil {
				if err == nil {
					err = res[i].Error()
				}
				i++
				op.done <- err
			} else if err != nil && !a.closed.Load() {
				// The entry stays until the node's death or Redis's loss
				// of it; a reader cannot tell it from a member.
				a.cfg.Logger.Warn("redisadapter: presence removal failed", "room", op.room, "err", err)
			}
		}
		clear(ops)
	}
}

// Presence implements wsframework.PresenceAdapter: room's entries whose
// node is alive (its liveness key exists); the others are deleted.
func (a *Adapter) Presence(ctx context.Context, room string) ([]wsframework.PresenceMember, error) {
	if a.closed.Load() {
		return nil, wsframework.ErrAdapterClosed
	}
	// This node's own earlier writes first.
	done := make(chan error, 1)
	if !a.queuePresence(presOp{barrier: true, done: done}, true) {
		return nil, wsframework.ErrAdapterClosed
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
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
		b, ok := parseBody(e.body)
		if !ok {
			continue
		}
		out = append(out, wsframework.HistoryMessage{
			Pos:  wsframework.RoomPosition{Epoch: epoch, Offset: e.off},
			Type: b.typ,
			Data: []byte(b.data),
		})
	}
	return out, nil
}
