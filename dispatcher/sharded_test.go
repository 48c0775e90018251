package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// waitTimeout bounds waits that only a bug would make long; tests synchronise
// on channels, this only turns a hang into a failure.
const waitTimeout = 10 * time.Second

func newSharded(t *testing.T, cfg ShardedConfig) *Sharded {
	t.Helper()
	s, err := NewSharded(cfg)
	if err != nil {
		t.Fatalf("NewSharded: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func closeNow(t *testing.T, s *Sharded) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// fn adapts a closure to a Task (tests may allocate).
func fn(f func()) Task {
	return Task{Fn: func(any) { f() }}
}

// keyOnOtherShard returns n keys whose shard differs from each of avoid's.
func keysAvoiding(s *Sharded, n int, avoid ...uint64) []uint64 {
	bad := map[int]bool{}
	for _, k := range avoid {
		bad[s.ShardOf(k)] = true
	}
	var keys []uint64
	for k := uint64(1000); len(keys) < n; k++ {
		if !bad[s.ShardOf(k)] {
			keys = append(keys, k)
		}
	}
	return keys
}

// keyOnShardOf returns a key other than key that shares its shard.
func keyOnShardOf(s *Sharded, key uint64) uint64 {
	for k := key + 1; ; k++ {
		if s.ShardOf(k) == s.ShardOf(key) {
			return k
		}
	}
}

// blocker is a task that signals when it starts and returns when released.
type blocker struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocker) task() Task {
	return fn(func() {
		close(b.started)
		<-b.release
	})
}

func (b *blocker) wait(t *testing.T) {
	t.Helper()
	recv(t, b.started, "blocking task to start")
}

func (b *blocker) unblock() { b.once.Do(func() { close(b.release) }) }

func TestNewShardedConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        ShardedConfig
		wantErr    bool
		wantShards int
	}{
		{name: "zero", cfg: ShardedConfig{}, wantShards: 1024},
		{name: "rounded", cfg: ShardedConfig{Shards: 1000}, wantShards: 1024},
		{name: "one", cfg: ShardedConfig{Shards: 1}, wantShards: 1},
		{name: "three", cfg: ShardedConfig{Shards: 3, Workers: 1, QueueSize: 1, TasksPerTurn: 1}, wantShards: 4},
		{name: "watchdog off", cfg: ShardedConfig{SlowThreshold: -1}, wantShards: 1024},
		{name: "negative shards", cfg: ShardedConfig{Shards: -1}, wantErr: true},
		{name: "too many shards", cfg: ShardedConfig{Shards: maxShards + 1}, wantErr: true},
		{name: "negative workers", cfg: ShardedConfig{Workers: -1}, wantErr: true},
		{name: "negative max workers", cfg: ShardedConfig{MaxWorkers: -1}, wantErr: true},
		{name: "max workers below workers", cfg: ShardedConfig{Workers: 4, MaxWorkers: 2}, wantErr: true},
		{name: "too many max workers", cfg: ShardedConfig{MaxWorkers: maxMaxWorkers + 1}, wantErr: true},
		{name: "detaching off", cfg: ShardedConfig{BlockThreshold: -1, SlowThreshold: -1}, wantShards: 1024},
		{name: "negative queue", cfg: ShardedConfig{QueueSize: -1}, wantErr: true},
		{name: "negative turn", cfg: ShardedConfig{TasksPerTurn: -1}, wantErr: true},
		{name: "huge turn", cfg: ShardedConfig{TasksPerTurn: maxTasksPerTurn + 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSharded(tt.cfg)
			if tt.wantErr {
				if err == nil {
					closeNow(t, s)
					t.Fatal("NewSharded: want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSharded: %v", err)
			}
			defer closeNow(t, s)
			if got := numShards(s); got != tt.wantShards {
				t.Errorf("shards = %d, want %d", got, tt.wantShards)
			}
			if tt.cfg.Workers == 0 {
				if got, want := numWorkers(s), runtime.GOMAXPROCS(0)*2; got != want {
					t.Errorf("workers = %d, want %d", got, want)
				}
			}
			for k := range uint64(10_000) {
				if i := s.ShardOf(k); i < 0 || i >= tt.wantShards {
					t.Fatalf("ShardOf(%d) = %d, out of range", k, i)
				}
			}
		})
	}
}

// Sequential connection IDs must spread over the shards, not pile up.
func TestShardOfSpreadsSequentialKeys(t *testing.T) {
	s := newSharded(t, ShardedConfig{SlowThreshold: -1})
	for _, base := range []uint64{0, 1 << 32, 1 << 63} {
		seen := map[int]bool{}
		for k := range uint64(1024) {
			seen[s.ShardOf(base+k)] = true
		}
		// A uniform hash hits about 1024*(1-1/e) = 647 distinct shards.
		if len(seen) < 600 {
			t.Errorf("keys %d..%d hit %d of 1024 shards, want >= 600", base, base+1023, len(seen))
		}
	}
}

// orderLog checks that one key's tasks run exactly once and in submit order.
type orderLog struct {
	next    int // sequence number expected next; only touched by the key's tasks
	closed  bool
	bad     atomic.Int64
	badDesc atomic.Value
}

type orderItem struct {
	log  *orderLog
	seq  int
	last bool
}

func orderTask(arg any) {
	it := arg.(*orderItem)
	l := it.log
	// Small random durations, so workers interleave differently each run.
	for range rand.IntN(3) {
		runtime.Gosched()
	}
	switch {
	case l.closed:
		l.fail(fmt.Sprintf("task %d after the last task", it.seq))
	case it.last:
		l.closed = true
	case it.seq != l.next:
		l.fail(fmt.Sprintf("got task %d, want %d", it.seq, l.next))
		l.next = it.seq + 1
	default:
		l.next++
	}
}

func (l *orderLog) fail(desc string) {
	if l.bad.Add(1) == 1 {
		l.badDesc.Store(desc)
	}
}

func TestShardedOrdering(t *testing.T) {
	const (
		submitters = 64
		keys       = 1024
		perKey     = 64
	)
	tests := []struct {
		name string
		cfg  ShardedConfig
	}{
		{name: "defaults", cfg: ShardedConfig{}},
		{name: "few small shards", cfg: ShardedConfig{Shards: 16, QueueSize: 4, TasksPerTurn: 3, Workers: 3}},
		{name: "one worker", cfg: ShardedConfig{Shards: 64, QueueSize: 8, TasksPerTurn: 1, Workers: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSharded(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			logs := make([]*orderLog, keys)
			for i := range logs {
				logs[i] = &orderLog{}
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, submitters)
			for g := range submitters {
				wg.Go(func() {
					// Goroutine g owns keys g, g+64, g+128, ...
					for seq := range perKey {
						for k := g; k < keys; k += submitters {
							it := &orderItem{log: logs[k], seq: seq}
							if err := s.Submit(ctx, uint64(k), Task{Fn: orderTask, Arg: it}); err != nil {
								errs <- err
								return
							}
						}
					}
					// The close event: ignores the bound, must run last.
					for k := g; k < keys; k += submitters {
						it := &orderItem{log: logs[k], seq: perKey, last: true}
						if err := s.SubmitLast(uint64(k), Task{Fn: orderTask, Arg: it}); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("submit: %v", err)
			}
			closeNow(t, s)
			for k, l := range logs {
				if n := l.bad.Load(); n > 0 {
					t.Fatalf("key %d: %d ordering errors, first: %v", k, n, l.badDesc.Load())
				}
				if l.next != perKey || !l.closed {
					t.Fatalf("key %d: ran %d of %d tasks (last ran: %v)", k, l.next, perKey, l.closed)
				}
			}
			st := s.Stats()
			want := uint64(keys * (perKey + 1))
			if st.Submitted != want || st.Completed != want || st.Queued != 0 || st.Rejected != 0 {
				t.Errorf("stats = %+v, want %d submitted and completed, none queued or rejected", st, want)
			}
		})
	}
}

// A task blocked forever on one key does not stop keys on other shards.
// With detaching off (BlockThreshold < 0), a stuck task stalls the keys of
// its shard and no other.
func TestShardedIsolationWithoutDetach(t *testing.T) {
	for _, workers := range []int{2, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			s := newSharded(t, ShardedConfig{Workers: workers, Shards: 64, SlowThreshold: -1, BlockThreshold: -1})
			const stuck = 7
			b := newBlocker()
			defer b.unblock()
			if err := s.Submit(t.Context(), stuck, b.task()); err != nil {
				t.Fatal(err)
			}
			b.wait(t)
			var neighbourRan atomic.Bool
			if err := s.Submit(t.Context(), keyOnShardOf(s, stuck), fn(func() { neighbourRan.Store(true) })); err != nil {
				t.Fatal(err)
			}

			others := keysAvoiding(s, 200, stuck)
			var wg sync.WaitGroup
			wg.Add(len(others) * 5)
			for range 5 {
				for _, k := range others {
					if err := s.Submit(t.Context(), k, fn(wg.Done)); err != nil {
						t.Fatal(err)
					}
				}
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			recv(t, done, "tasks on other shards")
			if neighbourRan.Load() {
				t.Fatal("a task sharing the stuck task's shard ran before it")
			}
			b.unblock()
			closeNow(t, s)
			if !neighbourRan.Load() {
				t.Fatal("the task behind the stuck one never ran")
			}
		})
	}
}

// fullShard is a Sharded whose shard for key is full: one worker is blocked
// in a task of key and QueueSize fillers wait behind it.
type fullShard struct {
	s       *Sharded
	key     uint64
	b       *blocker
	waiting chan struct{} // a Submit started waiting for room
	mu      sync.Mutex
	order   []string
}

func newFullShard(t *testing.T) *fullShard {
	t.Helper()
	f := &fullShard{key: 42, b: newBlocker(), waiting: make(chan struct{}, 8)}
	s, err := NewSharded(ShardedConfig{Workers: 1, Shards: 4, QueueSize: 2, TasksPerTurn: 1, SlowThreshold: -1, BlockThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	setWaitHook(s, func() { f.waiting <- struct{}{} })
	f.s = s
	t.Cleanup(func() {
		f.b.unblock()
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := s.Submit(t.Context(), f.key, f.b.task()); err != nil {
		t.Fatal(err)
	}
	f.b.wait(t)
	for i := range 2 {
		if err := s.TrySubmit(f.key, f.record(fmt.Sprint("filler", i)), nil); err != nil {
			t.Fatalf("filler %d: %v", i, err)
		}
	}
	return f
}

func (f *fullShard) record(name string) Task {
	return fn(func() {
		f.mu.Lock()
		f.order = append(f.order, name)
		f.mu.Unlock()
	})
}

func (f *fullShard) ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...)
}

func TestShardedBackpressure(t *testing.T) {
	t.Run("TrySubmit returns ErrFull", func(t *testing.T) {
		f := newFullShard(t)
		if err := f.s.TrySubmit(f.key, f.record("x"), nil); !errors.Is(err, ErrFull) {
			t.Fatalf("TrySubmit = %v, want ErrFull", err)
		}
		st := f.s.Stats()
		if st.Rejected != 1 || st.Queued != 2 || st.MaxDepth != 2 || st.Submitted != 3 {
			t.Fatalf("stats = %+v, want 1 rejected, 2 queued, max depth 2, 3 submitted", st)
		}
	})
	t.Run("Submit with an ended context returns its error", func(t *testing.T) {
		f := newFullShard(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := f.s.Submit(ctx, f.key, f.record("x")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Submit = %v, want context.Canceled", err)
		}
	})
	t.Run("blocked Submit returns when its context is cancelled", func(t *testing.T) {
		f := newFullShard(t)
		ctx, cancel := context.WithCancel(t.Context())
		res := make(chan error, 1)
		go func() { res <- f.s.Submit(ctx, f.key, f.record("x")) }()
		recv(t, f.waiting, "Submit to wait")
		cancel()
		if err := recv(t, res, "Submit to return"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Submit = %v, want context.Canceled", err)
		}
		f.b.unblock()
		closeNow(t, f.s)
		if got := f.ran(); len(got) != 2 {
			t.Fatalf("ran %v, want only the fillers", got)
		}
	})
	t.Run("blocked Submit goes on when room appears", func(t *testing.T) {
		f := newFullShard(t)
		res := make(chan error, 1)
		go func() { res <- f.s.Submit(context.Background(), f.key, f.record("late")) }()
		recv(t, f.waiting, "Submit to wait")
		select {
		case err := <-res:
			t.Fatalf("Submit returned %v while the shard was full", err)
		default:
		}
		f.b.unblock()
		if err := recv(t, res, "Submit to return"); err != nil {
			t.Fatalf("Submit = %v", err)
		}
		closeNow(t, f.s)
		if got := fmt.Sprint(f.ran()); got != "[filler0 filler1 late]" {
			t.Fatalf("ran %s", got)
		}
	})
	t.Run("wake fires once when room appears", func(t *testing.T) {
		f := newFullShard(t)
		var wakes atomic.Int32
		woken := make(chan struct{}, 4)
		wake := func() { wakes.Add(1); woken <- struct{}{} }
		if err := f.s.TrySubmit(f.key, f.record("x"), wake); !errors.Is(err, ErrFull) {
			t.Fatalf("TrySubmit = %v, want ErrFull", err)
		}
		if wakes.Load() != 0 {
			t.Fatal("wake called while the shard is still full")
		}
		f.b.unblock()
		recv(t, woken, "wake")
		// Room appears again for every task taken; the callback is one-shot.
		if err := f.s.TrySubmit(f.key, f.record("retry"), nil); err != nil {
			t.Fatalf("TrySubmit after wake = %v", err)
		}
		closeNow(t, f.s)
		if n := wakes.Load(); n != 1 {
			t.Fatalf("wake called %d times, want 1", n)
		}
	})
	t.Run("SubmitLast ignores the bound", func(t *testing.T) {
		f := newFullShard(t)
		for i := range 3 {
			if err := f.s.SubmitLast(f.key, f.record(fmt.Sprint("last", i))); err != nil {
				t.Fatalf("SubmitLast = %v", err)
			}
		}
		if st := f.s.Stats(); st.Queued != 5 || st.MaxDepth != 5 {
			t.Fatalf("stats = %+v, want 5 queued", st)
		}
		f.b.unblock()
		closeNow(t, f.s)
		if got := fmt.Sprint(f.ran()); got != "[filler0 filler1 last0 last1 last2]" {
			t.Fatalf("ran %s", got)
		}
	})
	t.Run("Close wakes blocked submitters and wake callbacks", func(t *testing.T) {
		f := newFullShard(t)
		res := make(chan error, 1)
		go func() { res <- f.s.Submit(context.Background(), f.key, f.record("x")) }()
		recv(t, f.waiting, "Submit to wait")
		woken := make(chan struct{}, 2)
		if err := f.s.TrySubmit(f.key, f.record("y"), func() { woken <- struct{}{} }); !errors.Is(err, ErrFull) {
			t.Fatalf("TrySubmit = %v, want ErrFull", err)
		}
		closed := make(chan error, 1)
		go func() { closed <- f.s.Close(context.Background()) }()
		if err := recv(t, res, "Submit to return"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Submit = %v, want ErrClosed", err)
		}
		recv(t, woken, "wake on Close")
		f.b.unblock()
		if err := recv(t, closed, "Close"); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if got := fmt.Sprint(f.ran()); got != "[filler0 filler1]" {
			t.Fatalf("ran %s", got)
		}
		if len(woken) != 0 {
			t.Fatal("wake called twice")
		}
	})
}

func TestShardedPanic(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name  string
		task  Task
		check func(v any) bool
	}{
		{name: "string", task: fn(func() { panic("boom") }), check: func(v any) bool { return v == "boom" }},
		{name: "error", task: fn(func() { panic(errBoom) }), check: func(v any) bool { err, _ := v.(error); return errors.Is(err, errBoom) }},
		{name: "nil func", task: Task{}, check: func(v any) bool { _, ok := v.(runtime.Error); return ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type report struct {
				key uint64
				v   any
			}
			reports := make(chan report, 4)
			s := newSharded(t, ShardedConfig{
				Workers: 1, SlowThreshold: -1,
				OnPanic: func(key uint64, v any) { reports <- report{key, v} },
			})
			const key = 99
			after := make(chan struct{})
			if err := s.Submit(t.Context(), key, tt.task); err != nil {
				t.Fatal(err)
			}
			if err := s.Submit(t.Context(), key, fn(func() { close(after) })); err != nil {
				t.Fatal(err)
			}
			r := recv(t, reports, "OnPanic")
			if r.key != key || !tt.check(r.v) {
				t.Fatalf("OnPanic(%d, %v)", r.key, r.v)
			}
			recv(t, after, "the next task of the key")
			closeNow(t, s)
			if st := s.Stats(); st.Panics != 1 || st.Completed != 2 {
				t.Fatalf("stats = %+v, want 1 panic, 2 completed", st)
			}
		})
	}
}

// A task running past SlowThreshold is reported while it still runs.
func TestShardedSlow(t *testing.T) {
	type report struct {
		key     uint64
		running time.Duration
	}
	reports := make(chan report, 4)
	const threshold = 10 * time.Millisecond
	s := newSharded(t, ShardedConfig{
		Workers: 2, SlowThreshold: threshold,
		OnSlow: func(key uint64, running time.Duration) { reports <- report{key, running} },
	})
	const key = 5
	got := make(chan report, 1)
	// The task runs until the watchdog has reported it.
	task := fn(func() {
		select {
		case r := <-reports:
			got <- r
		case <-time.After(waitTimeout):
			close(got)
		}
	})
	if err := s.Submit(t.Context(), key, task); err != nil {
		t.Fatal(err)
	}
	r, ok := <-got
	if !ok {
		t.Fatal("timed out waiting for OnSlow")
	}
	if r.key != key || r.running < threshold {
		t.Fatalf("OnSlow(%d, %v), want key %d and at least %v", r.key, r.running, key, threshold)
	}
	closeNow(t, s)
	if n := s.Stats().Slow; n != 1 {
		t.Fatalf("Slow = %d, want 1", n)
	}
	if len(reports) != 0 {
		t.Fatalf("%d more reports", len(reports))
	}
}

// With a fake clock: a stuck task is reported exactly once however long it
// runs; fast tasks, and a long run of tasks each shorter than the threshold,
// are never reported.
func TestShardedSlowReportedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const threshold = time.Second
		var mu sync.Mutex
		var reports []uint64
		s, err := NewSharded(ShardedConfig{
			Workers: 2, Shards: 8, SlowThreshold: threshold,
			OnSlow: func(key uint64, running time.Duration) {
				mu.Lock()
				reports = append(reports, key)
				mu.Unlock()
				if running < threshold {
					t.Errorf("OnSlow(%d, %v): below the threshold", key, running)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		// A run of tasks of one key, each half the threshold: 5s in all.
		const steady = 500
		for range 10 {
			if err := s.Submit(t.Context(), steady, fn(func() { time.Sleep(threshold / 2) })); err != nil {
				t.Fatal(err)
			}
		}
		for k := range uint64(100) {
			if err := s.Submit(t.Context(), k, fn(func() { time.Sleep(time.Millisecond) })); err != nil {
				t.Fatal(err)
			}
		}
		// The stuck task shares a shard (and likely a turn) with fast ones.
		stuck := keyOnShardOf(s, 99)
		b := newBlocker()
		if err := s.Submit(t.Context(), stuck, b.task()); err != nil {
			t.Fatal(err)
		}
		<-b.started
		time.Sleep(threshold - 100*time.Millisecond)
		synctest.Wait()
		if n := s.Stats().Slow; n != 0 {
			t.Fatalf("Slow = %d before the threshold", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		mu.Lock()
		got := fmt.Sprint(reports)
		mu.Unlock()
		if want := fmt.Sprint([]uint64{stuck}); got != want {
			t.Fatalf("reports = %s, want %s", got, want)
		}
		b.unblock()
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := s.Stats().Slow; n != 1 {
			t.Fatalf("Slow = %d, want 1", n)
		}
	})
}

func TestShardedClose(t *testing.T) {
	t.Run("drains accepted tasks", func(t *testing.T) {
		s := newSharded(t, ShardedConfig{Workers: 1, Shards: 8, QueueSize: 1000, SlowThreshold: -1, BlockThreshold: -1})
		b := newBlocker()
		if err := s.Submit(t.Context(), 0, b.task()); err != nil {
			t.Fatal(err)
		}
		b.wait(t)
		var ran atomic.Int32
		for k := range uint64(500) {
			if err := s.Submit(t.Context(), k, fn(func() { ran.Add(1) })); err != nil {
				t.Fatal(err)
			}
		}
		closed := make(chan error, 1)
		go func() { closed <- s.Close(context.Background()) }()
		b.unblock()
		if err := recv(t, closed, "Close"); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if n := ran.Load(); n != 500 {
			t.Fatalf("ran %d tasks, want 500", n)
		}
	})
	t.Run("twice", func(t *testing.T) {
		s := newSharded(t, ShardedConfig{})
		closeNow(t, s)
		closeNow(t, s)
	})
	t.Run("submit after close", func(t *testing.T) {
		s := newSharded(t, ShardedConfig{})
		closeNow(t, s)
		woken := false
		errs := []error{
			s.Submit(t.Context(), 1, fn(func() {})),
			s.TrySubmit(1, fn(func() {}), func() { woken = true }),
			s.SubmitLast(1, fn(func() {})),
		}
		for i, err := range errs {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("submission %d = %v, want ErrClosed", i, err)
			}
		}
		if woken {
			t.Error("wake registered after Close")
		}
		if st := s.Stats(); st.Rejected != 3 || st.Submitted != 0 {
			t.Errorf("stats = %+v, want 3 rejected", st)
		}
	})
	t.Run("deadline while a task is blocked", func(t *testing.T) {
		s := newSharded(t, ShardedConfig{SlowThreshold: -1})
		b := newBlocker()
		defer b.unblock()
		if err := s.Submit(t.Context(), 3, b.task()); err != nil {
			t.Fatal(err)
		}
		b.wait(t)
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want context.DeadlineExceeded", err)
		}
		if err := s.Submit(t.Context(), 4, fn(func() {})); !errors.Is(err, ErrClosed) {
			t.Fatalf("Submit after a timed-out Close = %v, want ErrClosed", err)
		}
		b.unblock()
		closeNow(t, s) // a later Close waits again
	})
	t.Run("concurrent with submitters", func(t *testing.T) {
		// Every accepted task runs, whichever side of Close it lands on.
		for range 30 {
			closeWhileSubmitting(t)
		}
	})
}

func closeWhileSubmitting(t *testing.T) {
	t.Helper()
	s := newSharded(t, ShardedConfig{Workers: 2, Shards: 16, QueueSize: 4, SlowThreshold: -1})
	var accepted, ran atomic.Int64
	task := fn(func() { ran.Add(1) })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := uint64(g*1000 + i%50)
				var err error
				switch i % 3 {
				case 0:
					err = s.Submit(context.Background(), key, task)
				case 1:
					err = s.TrySubmit(key, task, nil)
				default:
					err = s.SubmitLast(key, task)
				}
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, ErrClosed):
					return
				case errors.Is(err, ErrFull):
					runtime.Gosched() // let the workers catch up
				default:
					t.Errorf("submit: %v", err)
					return
				}
			}
		})
	}
	for s.Stats().Completed < 100 {
		runtime.Gosched()
	}
	closeNow(t, s)
	wg.Wait()
	if a, r := accepted.Load(), ran.Load(); a != r {
		t.Fatalf("accepted %d tasks, ran %d", a, r)
	}
	if st := s.Stats(); st.Submitted != st.Completed || st.Queued != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// A shard with many queued tasks yields after TasksPerTurn, so another
// shard's task runs before the first drains.
func TestShardedFairness(t *testing.T) {
	const perTurn = 3
	s := newSharded(t, ShardedConfig{Workers: 1, Shards: 64, TasksPerTurn: perTurn, SlowThreshold: -1, BlockThreshold: -1})
	const gateKey = 0
	keys := keysAvoiding(s, 1, gateKey)
	busy := keys[0]
	lone := keysAvoiding(s, 1, gateKey, busy)[0]

	b := newBlocker()
	defer b.unblock()
	if err := s.Submit(t.Context(), gateKey, b.task()); err != nil {
		t.Fatal(err)
	}
	b.wait(t)
	// The only worker is held: queue 20 tasks on busy, then one on lone.
	var mu sync.Mutex
	var order []string
	rec := func(name string) Task {
		return fn(func() { mu.Lock(); order = append(order, name); mu.Unlock() })
	}
	for i := range 20 {
		if err := s.Submit(t.Context(), busy, rec(fmt.Sprint("busy", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Submit(t.Context(), lone, rec("lone")); err != nil {
		t.Fatal(err)
	}
	b.unblock()
	closeNow(t, s)
	if len(order) != 21 {
		t.Fatalf("ran %d tasks, want 21", len(order))
	}
	if order[perTurn] != "lone" {
		t.Fatalf("order = %v: want lone after %d busy tasks", order, perTurn)
	}
	for i, name := range append(order[:perTurn:perTurn], order[perTurn+1:]...) {
		if want := fmt.Sprint("busy", i); name != want {
			t.Fatalf("busy tasks out of order: %v", order)
		}
	}
}

// Submitting a static function with a pointer argument does not allocate.
func TestShardedSubmitDoesNotAllocate(t *testing.T) {
	s := newSharded(t, ShardedConfig{QueueSize: 1 << 12})
	d := newBenchDone(1 << 30)
	task := Task{Fn: benchTask, Arg: d}
	ctx := context.Background()
	k := uint64(0)
	// Warm up: rings grow to their working size first.
	for range 20_000 {
		k++
		if err := s.Submit(ctx, k%64, task); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(10_000, func() {
		k++
		if err := s.Submit(ctx, k%64, task); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Submit allocates %v times per call", allocs)
	}
}
