package dispatcher

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// OverflowPolicy says what [Pool.Submit] does when the queue is full.
type OverflowPolicy int

const (
	// OverflowSpawn, the zero value, runs the task on an extra goroutine,
	// up to PoolConfig.MaxSpawn of them at once, then returns ErrFull.
	OverflowSpawn OverflowPolicy = iota
	// OverflowReject returns ErrFull.
	OverflowReject
)

// String returns the policy's name.
func (p OverflowPolicy) String() string {
	switch p {
	case OverflowSpawn:
		return "spawn"
	case OverflowReject:
		return "reject"
	default:
		return fmt.Sprintf("OverflowPolicy(%d)", int(p))
	}
}

// PoolConfig configures a [Pool]. The zero value is a valid configuration;
// every field says what its zero value means. NewPool copies it.
type PoolConfig struct {
	// Workers is the number of worker goroutines. Zero means
	// max(4, NumCPU*2).
	Workers int
	// QueueSize bounds the tasks waiting for a worker. Zero means Workers*4;
	// it is rounded up to a power of two, at least 2.
	QueueSize int
	// Overflow is what Submit does when the queue is full. The zero value
	// is OverflowSpawn.
	Overflow OverflowPolicy
	// MaxSpawn caps the extra goroutines running at once under
	// OverflowSpawn. Zero means Workers*16.
	MaxSpawn int
	// OnPanic is called, on the goroutine that ran it, with the recovered
	// value of a task that panicked. Nil means panics are only counted. It
	// must not panic.
	OnPanic func(v any)
}

// PoolStats is a snapshot of a [Pool]'s counters.
type PoolStats struct {
	Processed uint64 // tasks that returned or panicked (a busy worker publishes its count every 64 tasks)
	Spawned   uint64 // tasks run on an extra goroutine (OverflowSpawn)
	Rejected  uint64 // submissions that returned ErrFull or ErrClosed
	Panics    uint64 // tasks that panicked
	Queued    int64  // tasks waiting for a worker
}

// Pool is the unordered worker pool for HTTP phases: a fixed set of workers
// behind a bounded queue, with an overflow policy. Tasks run in no
// particular order.
//
// All methods are safe for concurrent use. A Pool starts its workers in
// NewPool; Close stops them.
type Pool struct {
	queue    ring[Task]
	park     parking
	policy   OverflowPolicy
	maxSpawn int64
	onPanic  func(v any)

	mu     sync.RWMutex // Submit holds it shared while it queues; Close exclusively to set closed
	closed bool

	workers   []poolWorker
	spawnLive atomic.Int64 // extra goroutines running
	live      atomic.Int64 // workers + extra goroutines running
	done      chan struct{}

	processed atomic.Uint64 // by extra goroutines; workers count in poolWorker
	spawned   atomic.Uint64
	rejected  atomic.Uint64
	panics    atomic.Uint64
}

type poolWorker struct {
	processed atomic.Uint64 // written by its worker only
	_         cacheLinePad
}

// NewPool copies cfg, fills defaults, validates it, and starts the workers.
// Close stops them.
func NewPool(cfg PoolConfig) (*Pool, error) {
	switch {
	case cfg.Workers < 0:
		return nil, fmt.Errorf("dispatcher: negative Workers %d", cfg.Workers)
	case cfg.QueueSize < 0:
		return nil, fmt.Errorf("dispatcher: negative QueueSize %d", cfg.QueueSize)
	case cfg.MaxSpawn < 0:
		return nil, fmt.Errorf("dispatcher: negative MaxSpawn %d", cfg.MaxSpawn)
	case cfg.Overflow != OverflowSpawn && cfg.Overflow != OverflowReject:
		return nil, fmt.Errorf("dispatcher: unknown overflow policy %v", cfg.Overflow)
	}
	if cfg.Workers == 0 {
		cfg.Workers = max(4, runtime.NumCPU()*2)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = cfg.Workers * 4
	}
	if cfg.MaxSpawn == 0 {
		cfg.MaxSpawn = cfg.Workers * 16
	}
	p := &Pool{
		policy:   cfg.Overflow,
		maxSpawn: int64(cfg.MaxSpawn),
		onPanic:  cfg.OnPanic,
		workers:  make([]poolWorker, cfg.Workers),
		done:     make(chan struct{}),
	}
	p.queue.init(cfg.QueueSize)
	p.park.init(cfg.Workers)
	p.live.Store(int64(cfg.Workers))
	for i := range p.workers {
		go p.work(&p.workers[i])
	}
	return p, nil
}

// Submit queues t for a worker without blocking. When the queue is full it
// applies the overflow policy: under OverflowSpawn it runs t on an extra
// goroutine if fewer than MaxSpawn are running, else it returns ErrFull;
// under OverflowReject it returns ErrFull. It returns ErrClosed once Close
// has begun.
func (p *Pool) Submit(t Task) error {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.rejected.Add(1)
		return ErrClosed
	}
	if p.queue.tryPush(t) {
		p.mu.RUnlock()
		p.park.wake()
		return nil
	}
	if p.policy == OverflowSpawn {
		if p.spawnLive.Add(1) <= p.maxSpawn {
			p.live.Add(1) // under the read lock: Close waits for it
			p.spawned.Add(1)
			go p.runSpawned(t)
			p.mu.RUnlock()
			return nil
		}
		p.spawnLive.Add(-1)
	}
	p.mu.RUnlock()
	p.rejected.Add(1)
	return ErrFull
}

func (p *Pool) work(w *poolWorker) {
	defer p.exit()
	n := uint64(0)
	for {
		t, ok := p.queue.pop()
		if !ok {
			w.processed.Store(n) // publish before idling (or exiting)
			if t, ok = findWork(&p.park, &p.queue, nil); !ok {
				return
			}
		}
		p.run(t)
		// An atomic store is a locked instruction on amd64: publish the
		// count every 64 tasks while busy.
		if n++; n%64 == 0 {
			w.processed.Store(n)
		}
	}
}

func (p *Pool) runSpawned(t Task) {
	defer p.exit()
	defer p.spawnLive.Add(-1)
	p.run(t)
	p.processed.Add(1)
}

func (p *Pool) exit() {
	if p.live.Add(-1) == 0 {
		close(p.done)
	}
}

func (p *Pool) run(t Task) {
	defer p.recoverTask()
	t.Fn(t.Arg)
}

func (p *Pool) recoverTask() {
	if v := recover(); v != nil {
		p.panics.Add(1)
		if p.onPanic != nil {
			p.onPanic(v)
		}
	}
}

// Close stops accepting tasks (later submissions get ErrClosed), runs every
// task already queued, and waits for the workers and extra goroutines. If
// ctx ends first it returns ctx.Err(); they still finish in the background,
// and a later Close waits again. Close is idempotent and safe to call
// concurrently; it must not be called from a task.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	p.mu.Unlock()
	if first {
		// No Submit is queueing now (they hold the read lock), and none
		// will: workers may exit once the queue is empty.
		p.park.stop()
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns a snapshot of the counters.
func (p *Pool) Stats() PoolStats {
	st := PoolStats{
		Processed: p.processed.Load(),
		Spawned:   p.spawned.Load(),
		Rejected:  p.rejected.Load(),
		Panics:    p.panics.Load(),
		Queued:    int64(p.queue.size()),
	}
	for i := range p.workers {
		st.Processed += p.workers[i].processed.Load()
	}
	return st
}
