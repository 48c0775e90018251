package dispatcher

import (
	"context"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [ShardedConfig].
const (
	DefaultShards        = 1024
	DefaultQueueSize     = 256
	DefaultTasksPerTurn  = 32
	DefaultSlowThreshold = 5 * time.Second

	maxShards       = 1 << 20
	maxTasksPerTurn = 1 << 16 // a worker holds a buffer of this many tasks
)

// ShardedConfig configures a [Sharded]. The zero value is a valid
// configuration; every field says what its zero value means. NewSharded
// copies it.
type ShardedConfig struct {
	// Shards is the number of serial queues keys are hashed onto. Zero means
	// 1024; it is rounded up to a power of two, at most 1<<20.
	Shards int
	// Workers is the number of worker goroutines that run shards. Zero
	// means GOMAXPROCS*2.
	Workers int
	// QueueSize bounds the tasks waiting in one shard (accepted, not yet
	// taken by a worker). Zero means 256. A worker takes up to TasksPerTurn
	// tasks at once, so up to QueueSize+TasksPerTurn tasks of one shard may
	// be held at a time; SubmitLast ignores the bound.
	QueueSize int
	// TasksPerTurn is how many tasks a worker runs from one shard before it
	// puts that shard back at the tail of the ready queue, so that a busy
	// shard cannot starve others. Zero means 32; at most 65536.
	TasksPerTurn int
	// SlowThreshold is how long a task may run before it is reported, once,
	// through OnSlow and counted in ShardedStats.Slow. Zero means 5s; a
	// negative value disables the watchdog. A running task is observed at a
	// resolution of SlowThreshold/8 (at least 1ms, at most 1s).
	SlowThreshold time.Duration
	// OnPanic is called, on the worker, with the key and the recovered value
	// of a task that panicked. Nil means panics are only counted. It must
	// not panic and should not block.
	OnPanic func(key uint64, v any)
	// OnSlow is called, on the watchdog goroutine, once for a task that has
	// been running longer than SlowThreshold while it still runs; running
	// is how long it has run so far. Nil means slow tasks are only counted.
	// It must not block (it would delay the next reports).
	OnSlow func(key uint64, running time.Duration)
}

// ShardedStats is a snapshot of a [Sharded]'s counters. They are summed over
// shards and workers one at a time, so a snapshot taken while tasks run is
// approximate.
type ShardedStats struct {
	Submitted uint64 // tasks accepted
	Completed uint64 // tasks that returned or panicked (counted when a worker ends its turn on a shard)
	Panics    uint64 // tasks (and wake callbacks) that panicked
	Rejected  uint64 // submissions that returned ErrFull or ErrClosed
	Slow      uint64 // tasks reported as slow
	Queued    int64  // tasks accepted and not yet taken by a worker
	MaxDepth  int64  // the most tasks ever waiting in one shard
}

// Sharded is the ordered executor: tasks submitted with the same key run one
// at a time, in the order one goroutine submitted them; different keys run
// in parallel, up to the number of workers.
//
// Keys are hashed onto shards (a good 64-bit mixer, so sequential IDs
// spread). A shard is a bounded FIFO; a shard that becomes non-empty is put
// on a ready queue (once), and a worker that takes it runs up to
// TasksPerTurn of its tasks, then puts it back at the tail if tasks remain.
// Keys sharing a shard share its order: a task that blocks stalls the keys of
// its shard, and one worker, but no other shard.
//
// All methods are safe for concurrent use. Ordering holds between tasks
// submitted by one goroutine (or otherwise ordered by happens-before);
// tasks submitted concurrently for one key run one at a time in some order.
// A task observes all memory effects of the tasks of its shard that ran
// before it.
//
// A Sharded starts its workers and a watchdog in NewSharded; Close stops
// them.
type Sharded struct {
	shards  []shard
	workers []worker
	ready   ring[int32] // shards with work, each at most once; capacity 2*Shards
	park    parking
	mask    uint64
	qsize   int
	perTurn int
	onPanic func(key uint64, v any)

	closing   atomic.Bool
	closingCh chan struct{} // closed when Close begins: wakes blocked submitters
	live      atomic.Int32  // running workers
	watchStop chan struct{} // closed by the last worker to exit
	done      chan struct{} // closed when workers and watchdog have exited

	// watchdog
	watch     bool
	threshold int64 // ns
	tick      time.Duration
	epoch     time.Time
	onSlow    func(key uint64, running time.Duration)
	_         cacheLinePad
	clock     atomic.Int64 // ns since epoch + 1, refreshed every tick: the start time workers publish
	_         cacheLinePad

	rejected atomic.Uint64
	panics   atomic.Uint64
	slow     atomic.Uint64

	waitHook func() // tests: called when a Submit starts waiting for room
}

// shard is one serial queue. Its fields are guarded by mu. Its counters are
// plain fields (an atomic store is a locked instruction on amd64); Stats
// takes the lock to read them.
type shard struct {
	mu      sync.Mutex
	idx     int32
	sched   bool    // on the ready queue or held by a worker
	ring    []entry // grows lazily up to QueueSize (beyond it only by SubmitLast)
	head, n int
	roomCh  chan struct{} // made by a submitter that waits for room; closed when room appears
	wakes   []wakeReq     // TrySubmit callbacks to call once when room appears
	spare   []wakeReq

	submitted uint64
	taken     uint64
	maxDepth  int
	_         [64]byte
}

type entry struct {
	key uint64
	t   Task
}

type wakeReq struct {
	key uint64
	fn  func()
}

// worker is one worker goroutine's state.
//
// What the watchdog reads costs no locked instruction per task in the common
// case: start holds the clock value (a tick of SlowThreshold/8) at which the
// worker's current run of tasks began, and is stored only when a task starts
// on a different tick; key is stored only when it changes. Thus while start
// reads S, every task since the clock read S started in that tick, and the
// current one has run at least now-S-tick. start is 0 while the worker looks
// for work.
type worker struct {
	key       atomic.Uint64
	start     atomic.Int64
	completed atomic.Uint64 // tasks this worker ran; stored once per turn
	lastKey   uint64        // worker-local copies of what it published
	lastStamp int64
	done      uint64
	batch     []entry
	_         cacheLinePad
}

// NewSharded copies cfg, fills defaults, validates it, and starts the workers
// and the watchdog. Close stops them.
func NewSharded(cfg ShardedConfig) (*Sharded, error) {
	if cfg.Shards < 0 || cfg.Shards > maxShards {
		return nil, fmt.Errorf("dispatcher: Shards %d out of range [0, %d]", cfg.Shards, maxShards)
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("dispatcher: negative Workers %d", cfg.Workers)
	}
	if cfg.QueueSize < 0 {
		return nil, fmt.Errorf("dispatcher: negative QueueSize %d", cfg.QueueSize)
	}
	if cfg.TasksPerTurn < 0 || cfg.TasksPerTurn > maxTasksPerTurn {
		return nil, fmt.Errorf("dispatcher: TasksPerTurn %d out of range [0, %d]", cfg.TasksPerTurn, maxTasksPerTurn)
	}
	if cfg.Shards == 0 {
		cfg.Shards = DefaultShards
	}
	cfg.Shards = 1 << bits.Len(uint(cfg.Shards-1))
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0) * 2
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.TasksPerTurn == 0 {
		cfg.TasksPerTurn = DefaultTasksPerTurn
	}
	if cfg.SlowThreshold == 0 {
		cfg.SlowThreshold = DefaultSlowThreshold
	}

	s := &Sharded{
		shards:    make([]shard, cfg.Shards),
		workers:   make([]worker, cfg.Workers),
		mask:      uint64(cfg.Shards - 1),
		qsize:     cfg.QueueSize,
		perTurn:   cfg.TasksPerTurn,
		onPanic:   cfg.OnPanic,
		closingCh: make(chan struct{}),
		watchStop: make(chan struct{}),
		done:      make(chan struct{}),
		watch:     cfg.SlowThreshold > 0,
		threshold: int64(cfg.SlowThreshold),
		tick:      min(max(cfg.SlowThreshold/8, time.Millisecond), time.Second),
		epoch:     time.Now(),
		onSlow:    cfg.OnSlow,
	}
	s.clock.Store(1)
	s.ready.init(2 * cfg.Shards)
	s.park.init(cfg.Workers)
	for i := range s.shards {
		s.shards[i].idx = int32(i)
	}
	s.live.Store(int32(cfg.Workers))
	for i := range s.workers {
		w := &s.workers[i]
		w.batch = make([]entry, cfg.TasksPerTurn)
		go s.work(w)
	}
	if s.watch {
		go s.watchdog()
	}
	return s, nil
}

// ShardOf returns the index of the shard key is hashed onto, in
// [0, number of shards). Keys with the same index share one serial queue.
func (s *Sharded) ShardOf(key uint64) int {
	return int(mix(key) & s.mask)
}

// mix is the splitmix64 finalizer: every input bit affects every output bit,
// so sequential keys spread over shards.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Submit queues t to run after the tasks already submitted with key. It
// blocks while key's shard is full and returns ctx.Err() if ctx ends first
// (a shard with room accepts t even if ctx has ended), or ErrClosed once
// Close has begun (a blocked Submit is woken by Close). It does not allocate
// unless it has to wait.
func (s *Sharded) Submit(ctx context.Context, key uint64, t Task) error {
	return s.submitWait(ctx, &s.shards[mix(key)&s.mask], key, t)
}

func (s *Sharded) submitWait(ctx context.Context, sh *shard, key uint64, t Task) error {
	for {
		if done, err := s.tryEnqueue(sh, key, t); done {
			return err
		}
		if sh.roomCh == nil {
			sh.roomCh = make(chan struct{})
		}
		room := sh.roomCh
		sh.mu.Unlock()
		if s.waitHook != nil {
			s.waitHook()
		}

		select {
		case <-room:
		case <-s.closingCh:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryEnqueue locks sh and, unless the Sharded is closing (ErrClosed) or the
// shard is full, enqueues t. done reports that the attempt ended (the lock
// is released); when it is false the shard is full and the caller holds
// sh.mu.
func (s *Sharded) tryEnqueue(sh *shard, key uint64, t Task) (done bool, err error) {
	sh.mu.Lock()
	if s.closing.Load() {
		sh.mu.Unlock()
		s.rejected.Add(1)
		return true, ErrClosed
	}
	if sh.n < s.qsize {
		s.enqueueLocked(sh, key, t)
		return true, nil
	}
	return false, nil
}

// TrySubmit is Submit without waiting: it returns ErrFull when key's shard is
// full. If it returns ErrFull and wake is not nil, wake is registered
// atomically with the failed attempt and called exactly once, when the
// shard has room again or when Close begins; it is called on a worker (or
// the closing goroutine) and must not block. TrySubmit does not allocate on
// success.
func (s *Sharded) TrySubmit(key uint64, t Task, wake func()) error {
	sh := &s.shards[mix(key)&s.mask]
	if done, err := s.tryEnqueue(sh, key, t); done {
		return err
	}
	if wake != nil {
		sh.wakes = append(sh.wakes, wakeReq{key: key, fn: wake})
	}
	sh.mu.Unlock()
	s.rejected.Add(1)
	return ErrFull
}

// SubmitLast queues t like Submit but ignores the shard's bound, so it never
// waits and never returns ErrFull: it is meant for events that must not be
// lost, such as a connection's close event, submitted at most once per key.
// It returns ErrClosed once Close has begun.
func (s *Sharded) SubmitLast(key uint64, t Task) error {
	sh := &s.shards[mix(key)&s.mask]
	sh.mu.Lock()
	if s.closing.Load() {
		sh.mu.Unlock()
		s.rejected.Add(1)
		return ErrClosed
	}
	s.enqueueLocked(sh, key, t)
	return nil
}

// enqueueLocked appends (key, t) to sh, schedules sh if it was idle, and
// unlocks sh.mu. The ready-queue push happens under the lock so that once
// Close has swept the shards' locks every accepted task is reachable by a
// worker.
func (s *Sharded) enqueueLocked(sh *shard, key uint64, t Task) {
	if sh.n == len(sh.ring) {
		sh.grow(s.qsize)
	}
	i := sh.head + sh.n
	if i >= len(sh.ring) {
		i -= len(sh.ring)
	}
	sh.ring[i] = entry{key: key, t: t}
	sh.n++
	sh.submitted++
	sh.maxDepth = max(sh.maxDepth, sh.n)
	if sh.sched {
		sh.mu.Unlock()
		return
	}
	sh.sched = true
	s.pushReady(sh.idx)
	sh.mu.Unlock()
	s.park.wake()
}

// pushReady puts a shard on the ready queue. The queue has a cell for every
// shard twice over, so it is full only while a worker that claimed a cell a
// lap ago has not released it yet.
func (s *Sharded) pushReady(idx int32) {
	for !s.ready.tryPush(idx) {
		runtime.Gosched()
	}
}

// grow doubles the ring (capped at qsize while below it) and lays the queued
// entries out from index 0.
func (sh *shard) grow(qsize int) {
	c := 2 * len(sh.ring)
	switch {
	case c == 0:
		c = min(8, qsize)
	case len(sh.ring) < qsize:
		c = min(c, qsize)
	}
	ring := make([]entry, c)
	k := copy(ring, sh.ring[sh.head:])
	copy(ring[k:], sh.ring[:sh.head])
	sh.ring = ring
	sh.head = 0
}

// work is a worker goroutine. It exits once Close has queued every
// accepted task and the ready queue is empty: a worker that still holds a
// shard puts it back and then takes it (or another worker does).
func (s *Sharded) work(w *worker) {
	defer s.workerExit()
	for {
		idx, ok := s.ready.pop()
		if !ok {
			if s.watch && w.lastStamp != 0 {
				w.lastStamp = 0
				w.start.Store(0) // idle: nothing to watch
			}
			if idx, ok = findWork(&s.park, &s.ready); !ok {
				return
			}
		}
		s.runTurn(w, idx)
	}
}

func (s *Sharded) workerExit() {
	if s.live.Add(-1) != 0 {
		return
	}
	if s.watch {
		close(s.watchStop)
	} else {
		close(s.done)
	}
}

// runTurn runs up to TasksPerTurn tasks of shard idx, which the worker holds
// exclusively (sched is true and it is not on the ready queue).
func (s *Sharded) runTurn(w *worker, idx int32) {
	sh := &s.shards[idx]
	sh.mu.Lock()
	k := min(sh.n, s.perTurn)
	for i := range k {
		w.batch[i] = sh.ring[sh.head]
		sh.ring[sh.head] = entry{}
		if sh.head++; sh.head == len(sh.ring) {
			sh.head = 0
		}
	}
	sh.n -= k
	sh.taken += uint64(k)
	var wakes []wakeReq
	if sh.n < s.qsize {
		if sh.roomCh != nil {
			close(sh.roomCh)
			sh.roomCh = nil
		}
		if len(sh.wakes) > 0 {
			wakes = sh.wakes
			sh.wakes, sh.spare = sh.spare[:0], nil
		}
	}
	sh.mu.Unlock()
	if wakes != nil {
		s.callWakes(sh, wakes)
	}

	for i := range k {
		e := &w.batch[i]
		if s.watch {
			if e.key != w.lastKey {
				w.lastKey = e.key
				w.key.Store(e.key)
			}
			if c := s.clock.Load(); c != w.lastStamp {
				w.lastStamp = c
				w.start.Store(c)
			}
		}
		s.runTask(e)
		*e = entry{}
	}
	w.done += uint64(k)
	w.completed.Store(w.done)

	sh.mu.Lock()
	if sh.n == 0 {
		sh.sched = false
		sh.mu.Unlock()
		return
	}
	s.pushReady(idx) // at the tail: other shards get their turn first
	sh.mu.Unlock()
	if s.ready.size() > 1 { // this worker takes one shard next; wake help for the rest
		s.park.wake()
	}
}

func (s *Sharded) runTask(e *entry) {
	defer s.recoverTask(e.key)
	e.t.Fn(e.t.Arg)
}

func (s *Sharded) recoverTask(key uint64) {
	if v := recover(); v != nil {
		s.panics.Add(1)
		if s.onPanic != nil {
			s.onPanic(key, v)
		}
	}
}

// callWakes calls TrySubmit wake callbacks outside any lock, then gives the
// slice back to sh for reuse.
func (s *Sharded) callWakes(sh *shard, wakes []wakeReq) {
	for i := range wakes {
		s.callWake(wakes[i])
		wakes[i] = wakeReq{}
	}
	sh.mu.Lock()
	if sh.spare == nil {
		sh.spare = wakes[:0]
	}
	sh.mu.Unlock()
}

func (s *Sharded) callWake(r wakeReq) {
	defer s.recoverTask(r.key)
	r.fn()
}

// watchdog refreshes the clock workers stamp tasks with and reports tasks
// that have run longer than the threshold, once each. A task is identified by
// its worker and start stamp: a later task of the same worker starts after
// the report, at a later clock value.
func (s *Sharded) watchdog() {
	defer close(s.done)
	ticker := time.NewTicker(s.tick)
	defer ticker.Stop()
	reported := make([]int64, len(s.workers))
	for {
		select {
		case <-s.watchStop:
			return
		case <-ticker.C:
		}
		now := int64(time.Since(s.epoch)) + 1
		s.clock.Store(now)
		for i := range s.workers {
			w := &s.workers[i]
			start := w.start.Load()
			// The stamp may precede the real start by up to a tick.
			if start == 0 || start == reported[i] || now-start < s.threshold+int64(s.tick) {
				continue
			}
			key := w.key.Load()
			if w.start.Load() != start {
				continue // it finished meanwhile; key may be the next task's
			}
			reported[i] = start
			s.slow.Add(1)
			if s.onSlow != nil {
				s.onSlow(key, time.Duration(now-start))
			}
		}
	}
}

// Close stops accepting tasks (blocked and later submitters get ErrClosed,
// pending TrySubmit wake callbacks are called), runs every task already
// accepted, stops the workers and the watchdog, and waits for them. If ctx
// ends first it returns ctx.Err(); the workers still finish in the
// background, and a later Close waits again. Close is idempotent and safe to
// call concurrently. It must not be called from a task (it would wait for
// itself).
func (s *Sharded) Close(ctx context.Context) error {
	if s.closing.CompareAndSwap(false, true) {
		close(s.closingCh)
		// Every submitter checks closing under its shard's lock and queues
		// under it, so after this sweep all accepted tasks are reachable
		// and no more are accepted.
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			wakes := sh.wakes
			sh.wakes = nil
			sh.mu.Unlock()
			for _, r := range wakes {
				s.callWake(r)
			}
		}
		s.park.stop()
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns a snapshot of the counters. It takes each shard's lock in
// turn (briefly), so call it at metrics-scrape rates, not per task.
func (s *Sharded) Stats() ShardedStats {
	st := ShardedStats{
		Panics:   s.panics.Load(),
		Rejected: s.rejected.Load(),
		Slow:     s.slow.Load(),
	}
	for i := range s.workers {
		st.Completed += s.workers[i].completed.Load()
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Submitted += sh.submitted
		st.Queued += int64(sh.submitted - sh.taken)
		st.MaxDepth = max(st.MaxDepth, int64(sh.maxDepth))
		sh.mu.Unlock()
	}
	return st
}
