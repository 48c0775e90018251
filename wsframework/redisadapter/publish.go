package redisadapter

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/redis/rueidis"

	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework"
)

// Publishing is batched per room: a Publish hands its message to the
// publisher goroutine of its room (rooms are spread over Config.Workers
// publishers by name, as over the delivery workers) and waits for the
// outcome. A publisher takes every message waiting in its queue, groups
// them by room (keeping each room's order) and runs one publish script per
// room and batch, all of them in one pipelined write; while Redis works on
// a batch, the next one gathers. Under load a message thus costs the node a
// share of one round trip and one system call; alone, it costs a round
// trip, as an unbatched publish would.
const (
	maxBatch      = 128       // messages in one script run
	maxBatchBytes = 256 << 10 // and their bytes, about
	pubQueueSize  = 1024      // each publisher's queue (Publish waits while it is full)
	// pubLanes is how many batches a publisher has in flight at once. One:
	// a second lane halves the batches (more system calls per message)
	// and gave no more throughput in bench/cluster.sh.
	pubLanes = 1
)

// pubReq is one Publish waiting for its batch.
type pubReq struct {
	room string
	body *bufpool.Buffer
	err  error
	done chan struct{} // one token when err is final
}

// publisher runs the publish scripts of its rooms, a batch at a time.
type publisher struct {
	a *Adapter

	mu      sync.Mutex
	notFull sync.Cond // on mu: the queue has room again, or closed
	queue   []*pubReq // waiting for the next batch
	waiting int       // lanes waiting for a token on wake
	closed  bool      // no more requests: every one queued was answered
	wake    chan struct{}
}

// lane is one of a publisher's goroutines: each has at most one batch in
// flight.
type lane struct {
	p *publisher

	// The lane's own, reused from batch to batch.
	yielded bool
	take    []*pubReq
	groups  []pubGroup
	cmds    rueidis.Commands
	args    []string
}

// pubGroup is a run of take (same room) published by one script run.
type pubGroup struct {
	start, end int
	keys       roomKeys
}

// startPublishers starts the publisher goroutines; they stop with a.stop,
// after answering every request they were given.
func (a *Adapter) startPublishers() {
	a.reqs = sync.Pool{New: func() any { return &pubReq{done: make(chan struct{}, 1)} }}
	a.pubs = make([]*publisher, a.cfg.Workers)
	for i := range a.pubs {
		p := &publisher{a: a, wake: make(chan struct{}, pubLanes)}
		p.notFull.L = &p.mu
		a.pubs[i] = p
		for range pubLanes {
			a.wg.Add(1)
			go (&lane{p: p}).run()
		}
	}
}

// Publish implements wsframework.Adapter: msg is numbered in its room,
// appended to the room's history and published by one script run, shared
// with the other messages published meanwhile (see above). It returns when
// Redis answered. On error nothing was delivered on this node, and the
// error wraps ErrPublish (or is wsframework.ErrAdapterClosed).
func (a *Adapter) Publish(msg wsframework.RoomMessage) error {
	if a.closed.Load() {
		msg.Data.Release()
		return wsframework.ErrAdapterClosed
	}
	b := a.bufs.Get(hdrLen + len(msg.Data.B))
	h := b.B[:hdrLen]
	h[0], h[1], h[2] = bodyVersion, byte(msg.Type), 0
	if msg.ExcludeFrom {
		h[2] = flagExclude
	}
	copy(h[3:11], a.node[:])
	binary.BigEndian.PutUint64(h[11:19], msg.From)
	copy(b.B[hdrLen:], msg.Data.B)
	msg.Data.Release()

	r := a.reqs.Get().(*pubReq)
	r.room, r.body, r.err = msg.Room, b, nil
	p := a.pubs[workerOf(msg.Room, len(a.pubs))]
	p.mu.Lock()
	for len(p.queue) >= pubQueueSize && !p.closed {
		p.notFull.Wait()
	}
	if p.closed {
		p.mu.Unlock()
		b.Release()
		r.body = nil
		a.reqs.Put(r)
		return wsframework.ErrAdapterClosed
	}
	p.queue = append(p.queue, r)
	wake := p.waiting > 0
	if wake {
		p.waiting--
	}
	p.mu.Unlock()
	if wake {
		p.wake <- struct{}{}
	}
	<-r.done // every queued request is answered, even after Close
	err := r.err
	r.body, r.err, r.room = nil, nil, ""
	a.reqs.Put(r)
	if err != nil {
		// b stays with the garbage collector: after a connection error the
		// client may still hold the command that points into it.
		a.stats.publishErrors.Add(1)
		if err == wsframework.ErrAdapterClosed {
			return err
		}
		return fmt.Errorf("%w: %w", ErrPublish, err)
	}
	b.Release()
	a.stats.published.Add(1)
	return nil
}

func (l *lane) run() {
	p := l.p
	defer p.a.wg.Done()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		if len(p.queue) == 0 {
			p.waiting++
			p.mu.Unlock()
			select {
			case <-p.wake:
				continue
			case <-p.a.stop:
			}
			// Close: no more requests; answer those queued.
			p.mu.Lock()
			p.closed = true
			l.take, p.queue = p.queue, l.take[:0]
			p.notFull.Broadcast()
			p.mu.Unlock()
			for _, r := range l.take {
				r.err = wsframework.ErrAdapterClosed
				r.done <- struct{}{}
			}
			return
		}
		if len(p.queue) < maxBatch && !l.yielded {
			// Yield once before taking the queue: the goroutines about to
			// publish (those just answered, the handlers woken by the same
			// read) queue first, and the batch is larger. This doubled
			// the batches of BenchmarkPublish at no cost in CPU per
			// message, and gave bench/cluster.sh's cluster cell about a
			// third more deliveries per second.
			p.mu.Unlock()
			l.yielded = true
			runtime.Gosched()
			continue
		}
		l.yielded = false
		if len(p.queue) >= pubQueueSize {
			p.notFull.Broadcast()
		}
		l.take, p.queue = p.queue, l.take[:0]
		p.mu.Unlock()
		l.publish()
	}
}

// publish runs the scripts of l.take and answers every request in it.
func (l *lane) publish() {
	a := l.p.a
	// One room's requests together, in the order they came.
	for _, r := range l.take[1:] {
		if r.room != l.take[0].room {
			slices.SortStableFunc(l.take, func(x, y *pubReq) int { return strings.Compare(x.room, y.room) })
			break
		}
	}
	l.groups = l.groups[:0]
	for i := 0; i < len(l.take); {
		room := l.take[i].room
		g := pubGroup{start: i, keys: a.pubKeys(room)}
		n := 0
		for i < len(l.take) && l.take[i].room == room && i-g.start < maxBatch && (n == 0 || n+len(l.take[i].body.B) <= maxBatchBytes) {
			n += len(l.take[i].body.B)
			i++
		}
		g.end = i
		l.groups = append(l.groups, g)
	}
	a.stats.batches.Add(uint64(len(l.groups)))
	ctx := context.Background()
	c := a.client
	l.cmds = l.cmds[:0]
	for _, g := range l.groups {
		l.cmds = append(l.cmds, l.command(g, false))
	}
	if len(l.cmds) == 1 {
		l.answer(l.groups[0], c.Do(ctx, l.cmds[0]))
	} else {
		for i, res := range c.DoMulti(ctx, l.cmds...) {
			l.answer(l.groups[i], res)
		}
	}
	clear(l.take) // no references to answered requests
	clear(l.cmds)
}

// command builds the script run of g: EVALSHA, or EVAL when Redis does not
// have the script.
func (l *lane) command(g pubGroup, eval bool) rueidis.Completed {
	a := l.p.a
	args := append(l.args[:0], a.seed, a.ttlMs, g.keys.channel, a.maxHist)
	for _, r := range l.take[g.start:g.end] {
		args = append(args, rueidis.BinaryString(r.body.B))
	}
	l.args = args
	defer clear(l.args)
	b := a.client.B()
	if eval {
		return b.Eval().Script(publishScript.src).Numkeys(2).Key(g.keys.meta, g.keys.hist).Arg(args...).Build()
	}
	return b.Evalsha().Sha1(publishScript.sha).Numkeys(2).Key(g.keys.meta, g.keys.hist).Arg(args...).Build()
}

// answer gives g's requests the outcome of its script run (run again with
// EVAL if Redis did not have the script: then it did not run).
func (l *lane) answer(g pubGroup, res rueidis.RedisResult) {
	err := res.Error()
	if isNoScript(err) {
		err = l.p.a.client.Do(context.Background(), l.command(g, true)).Error()
	}
	for _, r := range l.take[g.start:g.end] {
		r.err = err
		r.done <- struct{}{}
	}
}
