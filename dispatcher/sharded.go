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
	DefaultShards         = 1024
	DefaultQueueSize      = 256
	DefaultTasksPerTurn   = 32
	DefaultSlowThreshold  = 5 * time.Second
	DefaultBlockThreshold = 10 * time.Millisecond
	DefaultMaxWorkers     = 1024

	maxShards       = 1 << 20
	maxTasksPerTurn = 1 << 16 // a worker holds a buffer of this many tasks
	maxMaxWorkers   = 1 << 16
)

// ShardedConfig configures a [Sharded]. The zero value is a valid
// configuration; every field says what its zero value means. NewSharded
// copies it.
type ShardedConfig struct {
	// Shards is the number of serial queues keys are hashed onto. Zero means
	// 1024; it is rounded up to a power of two, at most 1<<20.
	Shards int
	// Workers is the number of worker goroutines that run shards while no
	// key is detached (see BlockThreshold): the base of the worker set.
	// Zero means GOMAXPROCS*2.
	Workers int
	// MaxWorkers caps the worker goroutines, those running detached keys
	// included. Zero means max(1024, Workers); at most 65536. At the cap
	// blocked keys are still detached from their shards, but no worker is
	// added: once every worker is blocked, nothing else runs until one
	// returns.
	MaxWorkers int
	// QueueSize bounds the tasks waiting in one shard (accepted, not yet
	// taken by a worker), and, separately, those of each detached key. Zero
	// means 256. A worker takes up to TasksPerTurn tasks at once, so up to
	// QueueSize+TasksPerTurn tasks of one queue may be held at a time;
	// SubmitLast ignores the bound.
	QueueSize int
	// TasksPerTurn is how many tasks a worker runs from one shard before it puts that shard back at the tail of the ready queue,
	// so that a busy shard cannot starve others. Zero means 32; at most
	// 65536.
	TasksPerTurn int
	// BlockThreshold is how long one task may run before its key is
	// detached from its shard: the key's queued tasks move to
	// a queue of its own, which the same worker runs in order once its
	// current task returns; the rest of its turn and the shard go back to
	// the other workers, and a worker is added (up to MaxWorkers) so that
	// Workers of them stay free. The key returns to its shard (what is left
	// of its queue moves to the shard's tail) when its queue is empty or a
	// batch of its tasks runs in less than BlockThreshold; a worker beyond
	// Workers exits when it finds no work.
	// Zero means 10ms; negative disables detaching (a task that blocks then
	// stalls its shard, and Workers blocked tasks stall every key). Workers
	// are observed every BlockThreshold/4 (at least 250µs) while busy.
	BlockThreshold time.Duration
	// SlowThreshold is how long a task may run before it is reported, once,
	// through OnSlow and counted in ShardedStats.Slow. Zero means 5s; a
	// negative value disables the report. A running task is observed at a
	// resolution of SlowThreshold/8 (at least 1ms, at most 1s).
	SlowThreshold time.Duration
	// OnPanic is called, on the worker, with the key and the recovered value
	// of a task that panicked. Nil means panics are only counted. It must
	// not panic and should not block.
	OnPanic func(key uint64, v any)
	// OnSlow is called, on the monitor goroutine, once for a task that has
	// been running longer than SlowThreshold while it still runs; running
	// is how long it has run so far. Nil means slow tasks are only counted.
	// It must not block (it would delay the next reports and detaching).
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
	MaxDepth  int64  // the most tasks ever waiting in one queue
	Detached  uint64 // keys detached from their shard (BlockThreshold)
	Workers   int64  // worker goroutines running now
	Blocked   int64  // workers running a detached key now
}

// Sharded is the ordered executor: tasks submitted with the same key run one
// at a time, in the order one goroutine submitted them; different keys run
// in parallel, up to the number of workers.
//
// Keys are hashed onto shards (a good 64-bit mixer, so sequential IDs
// spread). A shard is a bounded FIFO; a shard that becomes non-empty is put
// on a ready queue (once), and a worker that takes it runs up to
// TasksPerTurn of its tasks, then puts it back at the tail if tasks remain.
//
// A key whose task runs longer than BlockThreshold (it blocks, or is just
// slow) is detached: its tasks move to a
// FIFO of its own that the worker stuck in it runs, in order, after the
// task returns, and the rest of the turn and the shard go back to the ready
// queue, so that the other keys of the shard run meanwhile. The worker set grows to keep Workers workers free, up to
// MaxWorkers, and shrinks back when workers find nothing to do. So a blocked
// task stalls its own key only, as long as the cap is not reached.
//
// All methods are safe for concurrent use. Ordering holds between tasks
// submitted by one goroutine (or otherwise ordered by happens-before);
// tasks submitted concurrently for one key run one at a time in some order.
// A task observes all memory effects of the tasks of its key that ran
// before it.
//
// A Sharded starts its workers and a monitor in NewSharded; Close stops
// them (and the workers it added).
type Sharded struct {
	shards  []shard
	ready   ring[int32] // shards with work, each at most once; capacity 2*Shards
	park    parking
	mask    uint64
	qsize   int
	perTurn int
	onPanic func(key uint64, v any)

	closing   atomic.Bool
	closingCh chan struct{} // closed when Close begins: wakes blocked submitters
	watchStop chan struct{} // closed by the last worker to exit
	done      chan struct{} // closed when workers and monitor have exited

	// monitor (monitor.go)
	monitor   bool // workers stamp their tasks and the monitor runs
	watch     bool // SlowThreshold > 0
	isolate   bool // BlockThreshold > 0
	threshold int64
	block     int64
	tick      time.Duration // monitor period while a worker is busy
	idleTick  time.Duration // while none is
	epoch     time.Time
	onSlow    func(key uint64, running time.Duration)
	_         cacheLinePad
	clock     atomic.Int64 // ns since epoch + 1, refreshed every tick: the start time workers publish
	_         cacheLinePad

	// the worker set (monitor.go)
	base       int
	maxWorkers int
	slots      []atomic.Pointer[worker] // the monitor scans [0, nslots)
	nslots     atomic.Int32
	surplus    atomic.Int32 // nactive-ndetached-base: > 0 lets idle workers exit
	emu        sync.Mutex
	nlive      int     // worker goroutines; the last to exit stops the monitor
	nactive    int     // of them, those not exiting
	ndetached  int     // of them, those running a detached key
	free       []int32 // free slots
	exitedDone atomic.Uint64

	rejected atomic.Uint64
	panics   atomic.Uint64
	slow     atomic.Uint64
	detaches atomic.Uint64

	waitHook func() // tests: called when a Submit starts waiting for room
}

// shard is one serial queue. Its fields are guarded by mu. Its counters are
// plain fields (an atomic store is a locked instruction on amd64); Stats
// takes the lock to read them.
type shard struct {
	mu    sync.Mutex
	idx   int32
	sched bool // on the ready queue or held by a worker
	fifo

	holder *worker     // the worker running a turn of the shard (nil once the monitor took it back)
	holdN  int         // the size of that turn's batch
	own    []*keyQueue // keys detached from the shard

	submitted uint64
	taken     uint64
	maxDepth  int
	_         [64]byte
}

// keyQueue is the queue of a key detached from its shard; the worker w runs
// it and removes it (under the shard's lock) once it is empty.
type keyQueue struct {
	key uint64
	w   *worker
	fifo
}

// queueOf returns the queue key's tasks go to: its own if it is detached,
// else the shard's.
func (sh *shard) queueOf(key uint64) *fifo {
	for _, q := range sh.own {
		if q.key == key {
			return &q.fifo
		}
	}
	return &sh.fifo
}

// worker is one worker goroutine's state.
//
// What the monitor reads costs no locked instruction per task in the common
// case: start holds the clock value (a tick of the monitor) at which the
// worker's current run of tasks began, and is stored only when a task starts
// on a different tick; pos is stored at the start of a turn (under the
// shard's lock) and where the key changes within the batch. Thus while start
// reads S, every task since the clock read S started in that tick. start is
// 0 while the worker looks for work.
type worker struct {
	start     atomic.Int64
	completed atomic.Uint64 // tasks this worker ran; stored once per turn
	pos       atomic.Int64  // shard<<32 | index in batch of the current run of one key's tasks (| stolenBit)
	detached  atomic.Bool   // it runs a detached key (set by the monitor, cleared by the worker)
	dkey      atomic.Uint64 // that key
	slot      int32
	retire    func() bool // for findWork: true if w leaves the set (retired is then set)
	retired   bool
	lastStamp int64 // worker-local copy of what it published
	done      uint64
	batch     []entry
	_         cacheLinePad
}

// NewSharded copies cfg, fills defaults, validates it, and starts the workers
// and the monitor. Close stops them.
func NewSharded(cfg ShardedConfig) (*Sharded, error) {
	if cfg.Shards < 0 || cfg.Shards > maxShards {
		return nil, fmt.Errorf("dispatcher: Shards %d out of range [0, %d]", cfg.Shards, maxShards)
	}
	if cfg.Workers < 0 || cfg.Workers > maxMaxWorkers {
		return nil, fmt.Errorf("dispatcher: Workers %d out of range [0, %d]", cfg.Workers, maxMaxWorkers)
	}
	if cfg.MaxWorkers < 0 || cfg.MaxWorkers > maxMaxWorkers {
		return nil, fmt.Errorf("dispatcher: MaxWorkers %d out of range [0, %d]", cfg.MaxWorkers, maxMaxWorkers)
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
	if cfg.MaxWorkers == 0 {
		cfg.MaxWorkers = max(DefaultMaxWorkers, cfg.Workers)
	}
	if cfg.MaxWorkers < cfg.Workers {
		return nil, fmt.Errorf("dispatcher: MaxWorkers %d below Workers %d", cfg.MaxWorkers, cfg.Workers)
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
	if cfg.BlockThreshold == 0 {
		cfg.BlockThreshold = DefaultBlockThreshold
	}

	s := &Sharded{
		shards:     make([]shard, cfg.Shards),
		mask:       uint64(cfg.Shards - 1),
		qsize:      cfg.QueueSize,
		perTurn:    cfg.TasksPerTurn,
		onPanic:    cfg.OnPanic,
		closingCh:  make(chan struct{}),
		watchStop:  make(chan struct{}),
		done:       make(chan struct{}),
		watch:      cfg.SlowThreshold > 0,
		isolate:    cfg.BlockThreshold > 0,
		threshold:  int64(cfg.SlowThreshold),
		block:      int64(cfg.BlockThreshold),
		epoch:      time.Now(),
		onSlow:     cfg.OnSlow,
		base:       cfg.Workers,
		maxWorkers: cfg.MaxWorkers,
		slots:      make([]atomic.Pointer[worker], cfg.MaxWorkers),
	}
	s.monitor = s.watch || s.isolate
	s.tick, s.idleTick = monitorTicks(cfg.SlowThreshold, cfg.BlockThreshold)
	s.clock.Store(1)
	s.ready.init(2 * cfg.Shards)
	s.park.init(cfg.MaxWorkers)
	for i := range s.shards {
		s.shards[i].idx = int32(i)
	}
	s.emu.Lock()
	for range cfg.Workers {
		s.spawnLocked()
	}
	s.emu.Unlock()
	if s.monitor {
		go s.monitorLoop()
	}
	return s, nil
}

// ShardOf returns the index of the shard key is hashed onto, in
// [0, number of shards). Keys with the same index share one serial queue
// (until one of them is detached).
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
// blocks while key's queue (its shard's, or its own once detached) is full
// and returns ctx.Err() if ctx ends first (a queue with room accepts t even
// if ctx has ended), or ErrClosed once Close has begun (a blocked Submit is
// woken by Close). It does not allocate unless it has to wait.
func (s *Sharded) Submit(ctx context.Context, key uint64, t Task) error {
	return s.submitWait(ctx, &s.shards[mix(key)&s.mask], key, t)
}

func (s *Sharded) submitWait(ctx context.Context, sh *shard, key uint64, t Task) error {
	for {
		f, done, err := s.tryEnqueue(sh, key, t)
		if done {
			return err
		}
		if f.roomCh == nil {
			f.roomCh = make(chan struct{})
		}
		room := f.roomCh
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

// tryEnqueue locks sh and, unless the Sharded is closing (ErrClosed) or key's
// queue is full, enqueues t. done reports that the attempt ended (the lock
// is released); when it is false the queue f is full and the caller holds
// sh.mu.
func (s *Sharded) tryEnqueue(sh *shard, key uint64, t Task) (f *fifo, done bool, err error) {
	sh.mu.Lock()
	if s.closing.Load() {
		sh.mu.Unlock()
		s.rejected.Add(1)
		return nil, true, ErrClosed
	}
	f = &sh.fifo
	if len(sh.own) != 0 {
		f = sh.queueOf(key)
	}
	if f.n < s.qsize {
		s.enqueueLocked(sh, f, key, t)
		return nil, true, nil
	}
	return f, false, nil
}

// TrySubmit is Submit without waiting: it returns ErrFull when key's queue is
// full. If it returns ErrFull and wake is not nil, wake is registered
// atomically with the failed attempt and called exactly once, when the
// queue has room again or when Close begins; it is called on a worker (or
// the monitor, or the closing goroutine) and must not block. TrySubmit does
// not allocate on success.
func (s *Sharded) TrySubmit(key uint64, t Task, wake func()) error {
	sh := &s.shards[mix(key)&s.mask]
	f, done, err := s.tryEnqueue(sh, key, t)
	if done {
		return err
	}
	if wake != nil {
		f.wakes = append(f.wakes, wakeReq{key: key, fn: wake})
	}
	sh.mu.Unlock()
	s.rejected.Add(1)
	return ErrFull
}

// SubmitLast queues t like Submit but ignores the queue's bound, so it never
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
	f := &sh.fifo
	if len(sh.own) != 0 {
		f = sh.queueOf(key)
	}
	s.enqueueLocked(sh, f, key, t)
	return nil
}

// enqueueLocked appends (key, t) to f (sh's queue or one of its detached
// keys'), schedules sh if it was idle, and unlocks sh.mu. The ready-queue
// push happens under the lock so that once Close has swept the shards' locks
// every accepted task is reachable by a worker. A detached key's queue needs
// no scheduling: its worker looks at it under the lock before it lets go.
func (s *Sharded) enqueueLocked(sh *shard, f *fifo, key uint64, t Task) {
	f.push(entry{key: key, t: t}, s.qsize)
	sh.submitted++
	sh.maxDepth = max(sh.maxDepth, f.n)
	if sh.sched || f != &sh.fifo {
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

// work is a worker goroutine. It exits once Close has queued every
// accepted task and the ready queue is empty (a worker that still holds a
// shard puts it back and then takes it, or another worker does), or, beyond
// the base set, when it finds nothing to do.
func (s *Sharded) work(w *worker) {
	defer s.workerExit(w)
	for {
		idx, ok := s.ready.pop()
		if !ok {
			if s.monitor && w.lastStamp != 0 {
				w.lastStamp = 0
				w.start.Store(0) // idle: nothing to watch
			}
			if idx, ok = findWork(&s.park, &s.ready, w.retire); !ok {
				return
			}
		}
		s.runTurn(w, idx)
	}
}

// runTurn runs up to TasksPerTurn tasks of shard idx, which the worker holds
// exclusively (sched is true and it is not on the ready queue). If the
// monitor detached the key the worker was stuck in meanwhile (it then took
// back the tasks of the batch the worker had not reached), the worker goes
// on with that key's own queue (runDetached).
func (s *Sharded) runTurn(w *worker, idx int32) {
	sh := &s.shards[idx]
	sh.mu.Lock()
	k := sh.take(w.batch)
	if k == 0 {
		sh.sched = false
		sh.mu.Unlock()
		return
	}
	sh.taken += uint64(k)
	wakes := sh.roomLocked(s.qsize)
	if s.monitor {
		sh.holder, sh.holdN = w, k
		w.pos.Store(int64(idx) << 32)
	}
	sh.mu.Unlock()
	if wakes != nil {
		s.callWakes(sh, &sh.fifo, wakes)
	}

	s.runBatch(w, idx, k)

	sh.mu.Lock()
	clear(w.batch[:k])
	if s.monitor {
		if sh.holder != w {
			s.runDetached(w, sh)
			return
		}
		sh.holder = nil
	}
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

// runBatch runs w.batch[:k], taken from shard idx. Where the key changes it
// advances its published position (idx<<32 | index) with a compare-and-swap,
// which fails once the monitor has marked the position taken (stolenBit):
// the monitor then owns the rest of the batch from that change on, and the
// worker stops there. The batch is written only under the shard's lock, so
// the monitor may read it there.
func (s *Sharded) runBatch(w *worker, idx int32, k int) {
	ran := 0
	cur := int64(idx) << 32
	for i := range k {
		e := &w.batch[i]
		if s.monitor {
			if i > 0 && e.key != w.batch[i-1].key {
				next := int64(idx)<<32 | int64(i)
				if !w.pos.CompareAndSwap(cur, next) {
					break
				}
				cur = next
			}
			if c := s.clock.Load(); c != w.lastStamp {
				w.lastStamp = c
				w.start.Store(c)
			}
		}
		s.runTask(e)
		ran++
	}
	w.done += uint64(ran)
	w.completed.Store(w.done)
}

// runQueue runs w.batch[:k], all of one detached key.
func (s *Sharded) runQueue(w *worker, k int) {
	for i := range k {
		if c := s.clock.Load(); c != w.lastStamp {
			w.lastStamp = c
			w.start.Store(c)
		}
		s.runTask(&w.batch[i])
	}
	clear(w.batch[:k])
	w.done += uint64(k)
	w.completed.Store(w.done)
}

// runDetached runs, in order, the queue of the key the monitor detached from
// sh while w ran it, as long as its tasks stay slow: once a batch of them
// takes less than BlockThreshold (on the monitor's clock), or the queue is
// empty, the key goes back to sh — what is left of its queue moves to the
// tail of sh's queue, where no task of the key can be — and w to the worker
// set. A key detached only because its worker was descheduled thus returns
// at once, while one whose every task blocks keeps its worker. It is called
// with sh.mu held and returns with it released.
func (s *Sharded) runDetached(w *worker, sh *shard) {
	var q *keyQueue
	for _, o := range sh.own {
		if o.w == w {
			q = o
			break
		}
	}
	for q.n > 0 {
		k := q.take(w.batch)
		sh.taken += uint64(k)
		wakes := q.roomLocked(s.qsize)
		sh.mu.Unlock()
		if wakes != nil {
			s.callWakes(sh, &q.fifo, wakes)
		}
		start := s.clock.Load()
		s.runQueue(w, k)
		fast := s.clock.Load()-start < s.block
		sh.mu.Lock()
		if fast {
			break
		}
	}
	for i, o := range sh.own {
		if o == q {
			last := len(sh.own) - 1
			sh.own[i] = sh.own[last]
			sh.own[last] = nil
			sh.own = sh.own[:last]
			break
		}
	}
	if len(sh.own) == 0 {
		sh.own = nil
	}
	moved := q.n > 0
	q.moveTo(&sh.fifo, s.qsize)
	sh.maxDepth = max(sh.maxDepth, sh.n)
	// Submitters waiting for room in q try again on sh's queue.
	if q.roomCh != nil {
		close(q.roomCh)
		q.roomCh = nil
	}
	wakes := q.wakes
	q.wakes = nil
	schedule := moved && !sh.sched
	if schedule {
		sh.sched = true
		s.pushReady(sh.idx)
	}
	sh.mu.Unlock()
	if schedule {
		s.park.wake()
	}
	for _, r := range wakes {
		s.callWake(r)
	}
	s.reattach(w)
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
// slice back to f (a queue of sh) for reuse.
func (s *Sharded) callWakes(sh *shard, f *fifo, wakes []wakeReq) {
	for i := range wakes {
		s.callWake(wakes[i])
		wakes[i] = wakeReq{}
	}
	sh.mu.Lock()
	if f.spare == nil {
		f.spare = wakes[:0]
	}
	sh.mu.Unlock()
}

func (s *Sharded) callWake(r wakeReq) {
	defer s.recoverTask(r.key)
	r.fn()
}

// Close stops accepting tasks (blocked and later submitters get ErrClosed,
// pending TrySubmit wake callbacks are called), runs every task already
// accepted, stops the workers and the monitor, and waits for them. If ctx
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
			for _, q := range sh.own {
				wakes = append(wakes, q.wakes...)
				q.wakes = nil
			}
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
		Detached: s.detaches.Load(),
	}
	for i := range int(s.nslots.Load()) {
		if w := s.slots[i].Load(); w != nil {
			st.Completed += w.completed.Load()
		}
	}
	st.Completed += s.exitedDone.Load()
	s.emu.Lock()
	st.Workers, st.Blocked = int64(s.nlive), int64(s.ndetached)
	s.emu.Unlock()
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
