package redisadapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/strandws/strand/wsframework"
)

// room is a room this node is subscribed to. The fields after w belong to
// its worker's goroutine.
type room struct {
	name   string
	keys   roomKeys
	w      *worker
	active atomic.Bool // subscribed; false once unsubscribed (the room is then never reused)
	dirty  atomic.Bool // may have missed messages: recover at the next chance

	started bool   // the start position is known
	epoch   string // of the last message delivered (or of the start)
	last    uint64 // offset of the last message delivered (or of the start)
	target  uint64 // the room's offset at the previous position check
	pending []item // messages received before the start position was known
}

// maxPending bounds room.pending; beyond it the room recovers from history.
const maxPending = 1024

type itemKind uint8

const (
	kindMsg   itemKind = iota // a message received on the channel
	kindStart                 // read the start position (Subscribe)
	kindCheck                 // periodic position check
)

// item is one unit of a worker's work.
type item struct {
	r     *room
	kind  itemKind
	off   uint64
	epoch string
	body  string
	done  chan error // kindStart
}

// worker delivers the messages of its rooms, one at a time, in offset
// order; it also does their recovery, so a room's recovered messages come
// before its newer ones.
type worker struct {
	a    *Adapter
	in   chan item
	kick chan struct{} // some room of this worker is dirty
}

func workerOf(name string, n int) int {
	x := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		x ^= uint32(name[i])
		x *= 16777619
	}
	return int(x % uint32(n))
}

func (w *worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *worker) run() {
	defer w.a.wg.Done()
	for {
		select {
		case <-w.a.stop:
			w.drain()
			return
		case it := <-w.in:
			w.handle(it)
		case <-w.kick:
			w.a.rooms.Range(func(_ string, r *room) bool {
				if r.w == w && r.started && r.dirty.Load() {
					w.recover(r)
				}
				return true
			})
		}
	}
}

// drain answers Subscribes still waiting after Close.
func (w *worker) drain() {
	for {
		select {
		case it := <-w.in:
			if it.done != nil {
				it.done <- wsframework.ErrAdapterClosed
			}
		default:
			return
		}
	}
}

func (w *worker) handle(it item) {
	r := it.r
	if !r.active.Load() {
		if it.done != nil {
			it.done <- wsframework.ErrAdapterClosed
		}
		return
	}
	switch it.kind {
	case kindStart:
		it.done <- w.start(r)
	case kindCheck:
		if r.started {
			w.check(r, it.epoch, it.off)
		}
	case kindMsg:
		if !r.started {
			if len(r.pending) < maxPending {
				r.pending = append(r.pending, it)
			} else {
				r.dirty.Store(true)
			}
			return
		}
		w.message(r, it)
	}
}

// start reads the room's position: delivery starts after it.
func (w *worker) start(r *room) error {
	st, err := w.a.sync(r, "", 0, 0)
	if err != nil {
		return fmt.Errorf("redisadapter: room %q position: %w", r.name, err)
	}
	r.started, r.epoch, r.last, r.target = true, st.epoch, st.off, st.off
	w.a.h.Deliver(wsframework.RoomMessage{Room: r.name, Pos: wsframework.RoomPosition{Epoch: r.epoch, Offset: r.last}})
	pending := r.pending
	r.pending = nil
	for _, it := range pending {
		w.message(r, it)
	}
	if r.dirty.Load() {
		w.recover(r)
	}
	return nil
}

// message delivers a received message in order: an old one is dropped, one
// after a gap first has the gap recovered.
func (w *worker) message(r *room, it item) {
	if it.epoch != r.epoch {
		w.recover(r) // the room's state in Redis was lost and made again
		return
	}
	if it.off <= r.last {
		return
	}
	if it.off > r.last+1 {
		if !w.recover(r) || it.off <= r.last {
			return // if recovery failed, the room stays dirty and is retried
		}
		if it.off > r.last+1 { // recovered up to an older position
			return
		}
	}
	w.a.deliver(r, it.off, it.body)
	r.last = it.off
}

// check compares the room's position in Redis (epoch, off: read by
// runChecks) with what was delivered: if the node is still behind the
// offset seen at the previous check (so not merely behind messages in
// flight), or the epoch changed, it recovers.
func (w *worker) check(r *room, epoch string, off uint64) {
	if r.dirty.Load() {
		w.recover(r)
		return
	}
	if epoch != r.epoch || r.last < r.target {
		w.recover(r)
	}
	r.target = off
}

// recover reads what the room has after r.last and delivers it, reporting
// what is gone as a gap. It returns false if Redis could not be read (the
// room stays dirty).
func (w *worker) recover(r *room) bool {
	a := w.a
	r.dirty.Store(false)
	for r.active.Load() {
		st, err := a.sync(r, r.epoch, r.last, a.cfg.RecoverBatch)
		if err != nil {
			r.dirty.Store(true)
			a.stats.recoverErrors.Add(1)
			a.cfg.Logger.Warn("redisadapter: recovery failed", "room", r.name, "err", err)
			return false
		}
		if st.epoch != r.epoch {
			// Redis lost the room (a restart without persistence, an
			// expiry): what was published after r.last is unknown.
			next := wsframework.RoomPosition{Epoch: st.epoch}
			if st.off > 0 {
				next.Offset = 1
			}
			a.gap(wsframework.RoomGap{Room: r.name, After: wsframework.RoomPosition{Epoch: r.epoch, Offset: r.last}, Next: next, EpochChanged: true})
			r.epoch, r.last, r.target = st.epoch, 0, 0
			a.h.Deliver(wsframework.RoomMessage{Room: r.name, Pos: wsframework.RoomPosition{Epoch: r.epoch}})
			continue
		}
		if st.off <= r.last {
			return true
		}
		if len(st.entries) == 0 || st.entries[0].off > r.last+1 {
			next := wsframework.RoomPosition{Epoch: r.epoch}
			if len(st.entries) > 0 {
				next.Offset = st.entries[0].off
			}
			a.gap(wsframework.RoomGap{Room: r.name, After: wsframework.RoomPosition{Epoch: r.epoch, Offset: r.last}, Next: next})
			if len(st.entries) == 0 {
				r.last = st.off
				a.h.Deliver(wsframework.RoomMessage{Room: r.name, Pos: wsframework.RoomPosition{Epoch: r.epoch, Offset: r.last}})
				return true
			}
		}
		for _, e := range st.entries {
			if e.off <= r.last || !r.active.Load() {
				continue
			}
			a.stats.recovered.Add(1) // counted first, as deliver counts
			a.deliver(r, e.off, e.body)
			r.last = e.off
		}
	}
	return true
}

// syncResult is the reply of syncScript.
type syncResult struct {
	epoch   string
	off     uint64
	entries []entry
}

type entry struct {
	off  uint64
	body string
}

// sync runs syncScript for r: its position, and up to count entries after
// offset after if epoch is current.
func (a *Adapter) sync(r *room, epoch string, after uint64, count int) (syncResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommandTimeout)
	defer cancel()
	res := a.client.Do(ctx, a.syncCmd(r, false, epoch, after, count))
	if isNoScript(res.Error()) {
		res = a.client.Do(ctx, a.syncCmd(r, true, epoch, after, count))
	}
	return parseSync(res)
}

// syncCmd is syncScript's run for r (EVAL if eval, else EVALSHA).
func (a *Adapter) syncCmd(r *room, eval bool, epoch string, after uint64, count int) rueidis.Completed {
	b := a.client.B()
	keys := []string{r.keys.meta, r.keys.hist}
	args := []string{a.seed, a.ttlMs, epoch, strconv.FormatUint(after, 10), strconv.Itoa(count)}
	if eval {
		return b.Eval().Script(syncScript.src).Numkeys(2).Key(keys...).Arg(args...).Build()
	}
	return b.Evalsha().Sha1(syncScript.sha).Numkeys(2).Key(keys...).Arg(args...).Build()
}

// parseSync reads syncScript's reply.
func parseSync(res rueidis.RedisResult) (syncResult, error) {
	var st syncResult
	vs, err := res.ToArray()
	if err != nil {
		return st, err
	}
	if len(vs) != 3 {
		return st, errors.New("redisadapter: unexpected reply to the sync script")
	}
	if st.epoch, err = vs[0].ToString(); err != nil {
		return st, err
	}
	off, err := vs[1].AsInt64()
	if err != nil {
		return st, err
	}
	st.off = uint64(off)
	st.entries, err = parseEntries(vs[2])
	return st, err
}

// parseEntries reads a stream range reply: [[id, [field, value, ...]], ...].
func parseEntries(m rueidis.RedisMessage) ([]entry, error) {
	es, err := m.ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(es))
	for _, e := range es {
		kv, err := e.ToArray()
		if err != nil || len(kv) != 2 {
			return nil, errors.New("redisadapter: bad stream entry")
		}
		id, err := kv[0].ToString()
		if err != nil {
			return nil, err
		}
		off, err := strconv.ParseUint(strings.TrimSuffix(id, "-0"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redisadapter: bad stream entry ID %q", id)
		}
		fv, err := kv[1].ToArray()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(fv); i += 2 {
			if f, _ := fv[i].ToString(); f == "d" {
				body, err := fv[i+1].ToString()
				if err != nil {
					return nil, err
				}
				out = append(out, entry{off: off, body: body})
			}
		}
	}
	return out, nil
}
