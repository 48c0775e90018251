package dispatcher

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func closePool(t *testing.T, p *Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestNewPoolConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     PoolConfig
		wantErr bool
	}{
		{name: "zero", cfg: PoolConfig{}},
		{name: "reject", cfg: PoolConfig{Workers: 1, QueueSize: 1, Overflow: OverflowReject}},
		{name: "negative workers", cfg: PoolConfig{Workers: -1}, wantErr: true},
		{name: "negative queue", cfg: PoolConfig{QueueSize: -1}, wantErr: true},
		{name: "negative spawn", cfg: PoolConfig{MaxSpawn: -1}, wantErr: true},
		{name: "unknown policy", cfg: PoolConfig{Overflow: 7}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.cfg)
			if tt.wantErr {
				if err == nil {
					closePool(t, p)
					t.Fatal("NewPool: want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewPool: %v", err)
			}
			closePool(t, p)
		})
	}
}

func TestPoolProcessed(t *testing.T) {
	p := newPool(t, PoolConfig{})
	const n = 5000
	var ran atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	task := fn(func() { ran.Add(1); wg.Done() })
	rejected := 0
	for i := 0; i < n; {
		switch err := p.Submit(task); {
		case err == nil:
			i++
		case errors.Is(err, ErrFull):
			rejected++ // spawn cap reached: retry
		default:
			t.Fatal(err)
		}
	}
	wg.Wait()
	closePool(t, p)
	st := p.Stats()
	if ran.Load() != n || st.Processed != n || st.Queued != 0 || st.Rejected != uint64(rejected) {
		t.Fatalf("ran %d, stats %+v, want %d processed and %d rejected", ran.Load(), st, n, rejected)
	}
}

// heldPool is a one-worker Pool whose worker is blocked, with its queue
// (capacity 2) full.
type heldPool struct {
	p       *Pool
	gate    chan struct{}
	started chan struct{}
	ran     atomic.Int64
}

func newHeldPool(t *testing.T, cfg PoolConfig) *heldPool {
	t.Helper()
	h := &heldPool{gate: make(chan struct{}), started: make(chan struct{}, 16)}
	cfg.Workers, cfg.QueueSize = 1, 2
	h.p = newPool(t, cfg)
	t.Cleanup(h.release)
	if err := h.p.Submit(h.task()); err != nil {
		t.Fatal(err)
	}
	recv(t, h.started, "the worker to take a task")
	for range 2 {
		if err := h.p.Submit(h.task()); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// task signals that it started and waits for the gate.
func (h *heldPool) task() Task {
	return fn(func() {
		h.started <- struct{}{}
		<-h.gate
		h.ran.Add(1)
	})
}

func (h *heldPool) release() {
	select {
	case <-h.gate:
	default:
		close(h.gate)
	}
}

func TestPoolOverflow(t *testing.T) {
	t.Run("spawn up to MaxSpawn, then ErrFull", func(t *testing.T) {
		h := newHeldPool(t, PoolConfig{MaxSpawn: 2})
		for range 2 {
			if err := h.p.Submit(h.task()); err != nil {
				t.Fatalf("Submit over a full queue = %v, want a spawned task", err)
			}
		}
		recv(t, h.started, "spawned task")
		recv(t, h.started, "spawned task")
		if err := h.p.Submit(h.task()); !errors.Is(err, ErrFull) {
			t.Fatalf("Submit over the spawn cap = %v, want ErrFull", err)
		}
		if st := h.p.Stats(); st.Spawned != 2 || st.Rejected != 1 || st.Queued != 2 {
			t.Fatalf("stats = %+v, want 2 spawned, 1 rejected, 2 queued", st)
		}
		h.release()
		closePool(t, h.p)
		if st := h.p.Stats(); st.Processed != 5 || h.ran.Load() != 5 {
			t.Fatalf("ran %d, stats %+v, want 5 processed", h.ran.Load(), st)
		}
	})
	t.Run("reject", func(t *testing.T) {
		h := newHeldPool(t, PoolConfig{Overflow: OverflowReject})
		if err := h.p.Submit(h.task()); !errors.Is(err, ErrFull) {
			t.Fatalf("Submit over a full queue = %v, want ErrFull", err)
		}
		if st := h.p.Stats(); st.Spawned != 0 || st.Rejected != 1 {
			t.Fatalf("stats = %+v, want none spawned, 1 rejected", st)
		}
		h.release()
		closePool(t, h.p)
		if st := h.p.Stats(); st.Processed != 3 {
			t.Fatalf("stats = %+v, want 3 processed", st)
		}
	})
}

func TestPoolPanic(t *testing.T) {
	panics := make(chan any, 4)
	p := newPool(t, PoolConfig{Workers: 1, OnPanic: func(v any) { panics <- v }})
	after := make(chan struct{})
	if err := p.Submit(fn(func() { panic("boom") })); err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(fn(func() { close(after) })); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, panics, "OnPanic"); v != "boom" {
		t.Fatalf("OnPanic(%v), want boom", v)
	}
	recv(t, after, "the next task on the same worker")
	closePool(t, p)
	if st := p.Stats(); st.Panics != 1 || st.Processed != 2 {
		t.Fatalf("stats = %+v, want 1 panic, 2 processed", st)
	}
}

func TestPoolClose(t *testing.T) {
	t.Run("drains the queue and spawned tasks", func(t *testing.T) {
		h := newHeldPool(t, PoolConfig{MaxSpawn: 1})
		if err := h.p.Submit(h.task()); err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- h.p.Close(context.Background()) }()
		h.release()
		if err := recv(t, closed, "Close"); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if n := h.ran.Load(); n != 4 {
			t.Fatalf("ran %d tasks, want 4", n)
		}
	})
	t.Run("twice, then Submit", func(t *testing.T) {
		p := newPool(t, PoolConfig{})
		closePool(t, p)
		closePool(t, p)
		if err := p.Submit(fn(func() {})); !errors.Is(err, ErrClosed) {
			t.Fatalf("Submit after Close = %v, want ErrClosed", err)
		}
		if st := p.Stats(); st.Rejected != 1 {
			t.Fatalf("stats = %+v, want 1 rejected", st)
		}
	})
	t.Run("deadline while a task is blocked", func(t *testing.T) {
		h := newHeldPool(t, PoolConfig{})
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		if err := h.p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want context.DeadlineExceeded", err)
		}
		h.release()
		closePool(t, h.p) // a later Close waits again
		if n := h.ran.Load(); n != 3 {
			t.Fatalf("ran %d tasks, want 3", n)
		}
	})
	t.Run("concurrent with submitters", func(t *testing.T) {
		p := newPool(t, PoolConfig{Workers: 2, QueueSize: 4, MaxSpawn: 2})
		var accepted, ran atomic.Int64
		task := fn(func() { ran.Add(1) })
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					switch err := p.Submit(task); {
					case err == nil:
						accepted.Add(1)
					case errors.Is(err, ErrClosed):
						return
					case errors.Is(err, ErrFull):
						runtime.Gosched() // let the workers catch up
					default:
						t.Errorf("Submit: %v", err)
						return
					}
				}
			})
		}
		for p.Stats().Processed < 1000 {
			runtime.Gosched()
		}
		closePool(t, p)
		wg.Wait()
		if a, r := accepted.Load(), ran.Load(); a != r {
			t.Fatalf("accepted %d tasks, ran %d", a, r)
		}
	})
}

func TestOverflowPolicyString(t *testing.T) {
	for p, want := range map[OverflowPolicy]string{OverflowSpawn: "spawn", OverflowReject: "reject", 9: "OverflowPolicy(9)"} {
		if got := p.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(p), got, want)
		}
	}
}
