package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of detaching (BlockThreshold) and the elastic worker set. They wait
// for progress (a task ran, a counter moved), never for a duration: a
// threshold only decides how soon things happen.

// waitFor polls cond until it holds, failing after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// seqLog records, per key, the sequence numbers of the tasks that ran.
type seqLog struct {
	mu   sync.Mutex
	seqs map[uint64][]int
}

func newSeqLog() *seqLog { return &seqLog{seqs: map[uint64][]int{}} }

func (l *seqLog) task(key uint64, seq int, done func()) Task {
	return fn(func() {
		l.mu.Lock()
		l.seqs[key] = append(l.seqs[key], seq)
		l.mu.Unlock()
		if done != nil {
			done()
		}
	})
}

func (l *seqLog) get(key uint64) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seqs[key])
}

// checkInOrder fails unless key ran exactly seqs 0..n-1, in order.
func (l *seqLog) checkInOrder(t *testing.T, key uint64, n int) {
	t.Helper()
	got := l.get(key)
	if len(got) != n {
		t.Fatalf("key %d ran %d tasks, want %d: %v", key, len(got), n, got)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("key %d ran out of order: %v", key, got)
		}
	}
}

// More keys block than there are workers, and than there are shards (so
// blocked keys share shards with each other and with free ones): every
// other key still runs all its tasks, in order, and the blocked ones run
// theirs, in order, once released. The worker set grows past Workers while
// they are blocked and shrinks back to Workers afterwards.
func TestShardedBlockedKeysStallOnlyThemselves(t *testing.T) {
	const (
		workers = 2
		shards  = 4
		blocked = 9 // > workers, > shards
		free    = 40
		perKey  = 50
	)
	s := newSharded(t, ShardedConfig{Workers: workers, Shards: shards, QueueSize: 64, TasksPerTurn: 4, BlockThreshold: time.Millisecond, SlowThreshold: -1})
	log := newSeqLog()
	release := make(chan struct{})
	var unblocked atomic.Bool
	defer func() {
		if !unblocked.Load() {
			close(release)
		}
	}()
	var started sync.WaitGroup
	started.Add(blocked)
	for k := range uint64(blocked) {
		if err := s.Submit(t.Context(), k, fn(func() { started.Done(); <-release })); err != nil {
			t.Fatal(err)
		}
	}
	// Tasks behind the blocked ones, submitted before and after they
	// start: none may run before the release.
	for k := range uint64(blocked) {
		for i := range perKey {
			err := s.Submit(t.Context(), k, log.task(k, i, func() {
				if !unblocked.Load() {
					t.Errorf("key %d: a task behind a blocked one ran before the release", k)
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	startedCh := make(chan struct{})
	go func() { started.Wait(); close(startedCh) }()
	recv(t, startedCh, "every blocked key's task to start (the worker set must grow)")
	waitFor(t, "every blocked key to be detached", func() bool { return s.Stats().Blocked == blocked })
	if st := s.Stats(); st.Workers != blocked+workers || st.Detached != blocked {
		t.Fatalf("with %d keys blocked: stats %+v", blocked, st)
	}

	var wg sync.WaitGroup
	wg.Add(free * perKey)
	for i := range perKey {
		for k := uint64(100); k < 100+free; k++ {
			if err := s.Submit(t.Context(), k, log.task(k, i, wg.Done)); err != nil {
				t.Fatal(err)
			}
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recv(t, done, "the free keys' tasks while others are blocked")
	for k := uint64(100); k < 100+free; k++ {
		log.checkInOrder(t, k, perKey)
	}
	for k := range uint64(blocked) {
		if got := log.get(k); len(got) != 0 {
			t.Fatalf("blocked key %d ran %v", k, got)
		}
	}

	unblocked.Store(true)
	close(release)
	waitFor(t, "the blocked keys' tasks", func() bool {
		st := s.Stats()
		return st.Completed == st.Submitted
	})
	for k := range uint64(blocked) {
		log.checkInOrder(t, k, perKey)
	}
	waitFor(t, "the worker set to shrink back", func() bool {
		st := s.Stats()
		return st.Workers == workers && st.Blocked == 0
	})
}

// At MaxWorkers no worker is added: with every worker blocked, a free key's
// task runs only after one of them is released.
func TestShardedWorkerCap(t *testing.T) {
	const maxWorkers = 3
	s := newSharded(t, ShardedConfig{Workers: 1, MaxWorkers: maxWorkers, Shards: 64, BlockThreshold: time.Millisecond, SlowThreshold: -1})
	keys := keysAvoiding(s, maxWorkers+1)
	var released atomic.Bool
	blockers := make([]*blocker, maxWorkers)
	defer func() {
		for _, b := range blockers {
			b.unblock()
		}
	}()
	for i := range blockers {
		blockers[i] = newBlocker()
		if err := s.Submit(t.Context(), keys[i], blockers[i].task()); err != nil {
			t.Fatal(err)
		}
		blockers[i].wait(t) // the worker set grew to run it
	}
	waitFor(t, "every worker to be detached", func() bool { return s.Stats().Blocked == maxWorkers })
	ran := make(chan bool, 1)
	if err := s.Submit(t.Context(), keys[maxWorkers], fn(func() { ran <- released.Load() })); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Workers != maxWorkers {
		t.Fatalf("workers = %d, want the cap %d", st.Workers, maxWorkers)
	}
	released.Store(true)
	blockers[0].unblock()
	if !recv(t, ran, "the free key's task") {
		t.Fatal("a task ran beyond the worker cap")
	}
}

// Close waits for the workers the set grew by, and stops them all.
func TestShardedCloseStopsAddedWorkers(t *testing.T) {
	s, err := NewSharded(ShardedConfig{Workers: 1, Shards: 8, BlockThreshold: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b := newBlocker()
	b2 := newBlocker()
	if err := s.Submit(t.Context(), 1, b.task()); err != nil {
		t.Fatal(err)
	}
	b.wait(t)
	if err := s.Submit(t.Context(), keysAvoiding(s, 1, 1)[0], b2.task()); err != nil {
		t.Fatal(err)
	}
	b2.wait(t)
	waitFor(t, "both blocked keys to be detached", func() bool { return s.Stats().Blocked == 2 })
	var ran atomic.Int32
	for k := range uint64(100) {
		if err := s.Submit(t.Context(), k, fn(func() { ran.Add(1) })); err != nil {
			t.Fatal(err)
		}
	}
	if n := numWorkers(s); n < 3 {
		t.Fatalf("workers = %d with two blocked, want at least 3", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	b.unblock()
	b2.unblock()
	if err := recv(t, closed, "Close"); err != nil {
		t.Fatal(err)
	}
	if n := numWorkers(s); n != 0 {
		t.Fatalf("%d workers after Close", n)
	}
	if got := ran.Load(); got != 100 {
		t.Fatalf("ran %d of 100 accepted tasks", got)
	}
	if err := s.Close(context.Background()); err != nil { // idempotent
		t.Fatal(err)
	}
}

// A detached key keeps its own bound: TrySubmit is refused once QueueSize
// of its tasks wait, and its wake is called when the blocked task returns
// and room appears; other keys of its shard are accepted and run meanwhile.
func TestShardedDetachedKeyBackpressure(t *testing.T) {
	const qsize = 2
	s := newSharded(t, ShardedConfig{Workers: 1, Shards: 4, QueueSize: qsize, BlockThreshold: time.Millisecond, SlowThreshold: -1})
	const key = 7
	b := newBlocker()
	defer b.unblock()
	if err := s.Submit(t.Context(), key, b.task()); err != nil {
		t.Fatal(err)
	}
	b.wait(t)
	waitFor(t, "the key to be detached", func() bool { return s.Stats().Blocked == 1 })
	log := newSeqLog()
	for i := range qsize {
		if err := s.TrySubmit(key, log.task(key, i, nil), nil); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	woken := make(chan struct{})
	if err := s.TrySubmit(key, log.task(key, qsize, nil), func() { close(woken) }); !errors.Is(err, ErrFull) {
		t.Fatalf("TrySubmit on a full detached key: %v, want ErrFull", err)
	}
	// A neighbour on the same shard fills nothing of the key's bound.
	neighbour := keyOnShardOf(s, key)
	ranCh := make(chan struct{}, qsize+1)
	for range qsize + 1 {
		if err := s.TrySubmit(neighbour, fn(func() { ranCh <- struct{}{} }), nil); err != nil {
			t.Fatalf("neighbour: %v", err)
		}
		recv(t, ranCh, "the neighbour's task")
	}
	b.unblock()
	recv(t, woken, "the wake of the detached key")
	if err := s.TrySubmit(key, log.task(key, qsize, nil), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the key's tasks", func() bool { return len(log.get(key)) == qsize+1 })
	log.checkInOrder(t, key, qsize+1)
}

// Many keys, tasks of a few of them slow enough to be detached again and
// again while the others flow: every task runs exactly once, each key's in
// order.
func TestShardedDetachChurn(t *testing.T) {
	for _, shards := range []int{4, 1024} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			s := newSharded(t, ShardedConfig{Shards: shards, QueueSize: 32, TasksPerTurn: 8, BlockThreshold: 250 * time.Microsecond})
			const (
				keys  = 64
				total = 20_000
			)
			log := newSeqLog()
			var wg sync.WaitGroup
			wg.Add(total)
			seq := make([]int, keys)
			for i := range total {
				k := uint64(i % keys)
				task := log.task(k, seq[k], wg.Done)
				if i%401 == 0 {
					inner := task.Fn
					task.Fn = func(a any) { time.Sleep(time.Millisecond); inner(a) }
				}
				seq[k]++
				if err := s.Submit(t.Context(), k, task); err != nil {
					t.Fatal(err)
				}
				if i%1000 == 0 {
					runtime.Gosched()
				}
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			recv(t, done, "every task")
			for k := range uint64(keys) {
				log.checkInOrder(t, k, seq[k])
			}
			// A task is counted completed when its worker ends its turn,
			// which may be after the task itself (here, its wg.Done) ran:
			// the count catches up, and never passes the total.
			waitFor(t, "every task counted", func() bool { return s.Stats().Completed >= total })
			st := s.Stats()
			t.Logf("stats: %+v", st)
			if st.Completed != total || st.Submitted != total {
				t.Fatalf("stats %+v, want %d submitted and completed", st, total)
			}
		})
	}
}

// A detached key goes back to its shard once its tasks run fast again: a
// later blocking task of the same key is detached anew (a key that stayed
// on its own queue would not be: the monitor leaves detached workers be),
// and the order holds throughout.
func TestShardedDetachedKeyReturns(t *testing.T) {
	s := newSharded(t, ShardedConfig{Workers: 1, Shards: 4, QueueSize: 1024, TasksPerTurn: 4, BlockThreshold: time.Millisecond, SlowThreshold: -1})
	const key = 3
	first, second := newBlocker(), newBlocker()
	defer first.unblock()
	defer second.unblock()
	log := newSeqLog()
	if err := s.Submit(t.Context(), key, first.task()); err != nil {
		t.Fatal(err)
	}
	first.wait(t)
	const n = 100
	for i := range n {
		task := log.task(key, i, nil)
		if i == n/2 {
			inner := task.Fn
			task.Fn = func(a any) { inner(a); close(second.started); <-second.release }
		}
		if err := s.Submit(t.Context(), key, task); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the first detach", func() bool { return s.Stats().Detached == 1 })
	first.unblock()
	second.wait(t)
	waitFor(t, "the key to be detached again", func() bool { return s.Stats().Detached == 2 })
	second.unblock()
	waitFor(t, "every task", func() bool { return len(log.get(key)) == n })
	log.checkInOrder(t, key, n)
	waitFor(t, "the worker set to shrink back", func() bool {
		st := s.Stats()
		return st.Workers == 1 && st.Blocked == 0
	})
}
