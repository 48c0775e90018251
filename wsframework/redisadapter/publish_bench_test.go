package redisadapter_test

import (
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/strandws/strand/internal/redistest"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublish measures what a publish costs the node: concurrent
// publishers share round trips (rueidis auto-pipelining), so the figure is
// the client's CPU per message (cpu-ns/op, from getrusage: redis-server is
// another process) and its allocations, not a round trip's latency.
func BenchmarkPublish(b *testing.B) {
	rs := redistest.Start(b)
	for _, d := range []time.Duration{0, 100 * time.Microsecond, 250 * time.Microsecond} {
		b.Run("flush="+d.String(), func(b *testing.B) { benchPublish(b, rs, d) })
	}
}

func benchPublish(b *testing.B, rs *redistest.Server, flushDelay time.Duration) {
	a, err := redisadapter.New(redisadapter.Config{URL: rs.URL(), Logger: slog.New(slog.DiscardHandler), FlushDelay: flushDelay})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Bind(newRecorder()); err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	payload := make([]byte, 128)
	b.SetParallelism(64) // publishers in flight at once
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := pool.Get(len(payload))
			copy(buf.B, payload)
			if err := a.Publish(wsframework.RoomMessage{Room: "bench", Type: sdk.Text, Data: buf}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
