package dispatcher

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// benchKeys is how many keys the benchmarks spread tasks over.
const benchKeys = 1024

// benchDone counts finished tasks and closes ch when all total have run.
type benchDone struct {
	n     atomic.Int64
	total int64
	ch    chan struct{}
}

func newBenchDone(total int) *benchDone {
	return &benchDone{total: int64(total), ch: make(chan struct{})}
}

// benchTask is the work every benchmark runs per task: a static function, so
// a Task built from it and a pointer does not allocate.
func benchTask(arg any) {
	d := arg.(*benchDone)
	if d.n.Add(1) == d.total {
		close(d.ch)
	}
}

func closeSharded(b *testing.B, s *Sharded) {
	b.Helper()
	if err := s.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkShardedSubmit: one goroutine submits b.N tasks over 1024 keys
// without waiting for each; the timer stops when all have run.
func BenchmarkShardedSubmit(b *testing.B) {
	s, err := NewSharded(ShardedConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer closeSharded(b, s)
	d := newBenchDone(b.N)
	t := Task{Fn: benchTask, Arg: d}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Submit(ctx, uint64(i%benchKeys), t); err != nil {
			b.Fatal(err)
		}
	}
	<-d.ch
	b.StopTimer()
}

// BenchmarkBaselineGoSpawn runs the same work on a goroutine per task.
func BenchmarkBaselineGoSpawn(b *testing.B) {
	d := newBenchDone(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		go benchTask(d)
	}
	<-d.ch
	b.StopTimer()
}

// BenchmarkBaselineChanPerKey runs the same work on a goroutine per key fed
// by a buffered channel (cap 256, like a shard).
func BenchmarkBaselineChanPerKey(b *testing.B) {
	var wg sync.WaitGroup
	chans := make([]chan Task, benchKeys)
	for i := range chans {
		ch := make(chan Task, DefaultQueueSize)
		chans[i] = ch
		wg.Go(func() {
			for t := range ch {
				t.Fn(t.Arg)
			}
		})
	}
	d := newBenchDone(b.N)
	t := Task{Fn: benchTask, Arg: d}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		chans[i%benchKeys] <- t
	}
	<-d.ch
	b.StopTimer()
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
}

// BenchmarkPoolSubmit: one goroutine submits b.N tasks to a default Pool;
// ErrFull (spawn cap reached) is retried after a yield. The timer stops when
// all have run.
func BenchmarkPoolSubmit(b *testing.B) {
	p, err := NewPool(PoolConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := p.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}()
	d := newBenchDone(b.N)
	t := Task{Fn: benchTask, Arg: d}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for {
			err := p.Submit(t)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	<-d.ch
	b.StopTimer()
	b.ReportMetric(float64(p.Stats().Spawned)/float64(b.N), "spawned/op")
}
