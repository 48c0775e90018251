package redisadapter

import (
	"context"
	"encoding/binary"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/strandws/strand/internal/redistest"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nopHandler is an AdapterHandler that drops what it is given.
type nopHandler struct{}

func (nopHandler) Deliver(m wsframework.RoomMessage) {
	if m.Data != nil {
		m.Data.Release()
	}
}

// BenchmarkPublish measures what a publish costs the node: 64 publishers
// in flight at once, in one room, so that publishes share round trips. The
// figure is the client process's CPU per message (cpu-ns/msg, from
// getrusage: redis-server is another process, so this is the node's cost
// alone) and its allocations, not a round trip's latency (ns/op is the
// throughput Redis allowed). "batched" is Publish (one script run per
// batch of a room's messages); "unbatched" is the baseline, one script run
// per message, pipelined by the client (the adapter's former Publish).
// flush is Config.FlushDelay (the client's MaxFlushDelay).
func BenchmarkPublish(b *testing.B) {
	rs := redistest.Start(b)
	for _, d := range []time.Duration{-1, DefaultFlushDelay} {
		name := "flush=" + d.String()
		if d < 0 {
			name = "flush=none"
		}
		b.Run("batched/"+name, func(b *testing.B) { benchPublish(b, rs, d, false) })
		b.Run("unbatched/"+name, func(b *testing.B) { benchPublish(b, rs, d, true) })
	}
}

func benchPublish(b *testing.B, rs *redistest.Server, flushDelay time.Duration, unbatched bool) {
	a, err := New(Config{URL: rs.URL(), Logger: slog.New(slog.DiscardHandler), FlushDelay: flushDelay})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Bind(nopHandler{}); err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	payload := make([]byte, 64)
	publish := a.Publish
	if unbatched {
		publish = a.publishUnbatched
	}
	b.SetParallelism(64) // x GOMAXPROCS publishers in flight at once
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := a.bufs.Get(len(payload))
			copy(buf.B, payload)
			if err := publish(wsframework.RoomMessage{Room: "bench", Type: sdk.Text, Data: buf}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/msg")
	if st := a.Stats(); !unbatched {
		b.ReportMetric(float64(st.Published)/float64(max(1, st.Batches)), "msgs/batch")
	}
}

// publishUnbatched is the baseline: one script run per message, as Publish
// did before it batched (concurrent calls share round trips through the
// client's automatic pipelining).
func (a *Adapter) publishUnbatched(msg wsframework.RoomMessage) error {
	k := a.pubKeys(msg.Room)
	b := a.bufs.Get(hdrLen + len(msg.Data.B))
	h := b.B[:hdrLen]
	h[0], h[1], h[2] = bodyVersion, byte(msg.Type), 0
	copy(h[3:11], a.node[:])
	binary.BigEndian.PutUint64(h[11:19], msg.From)
	copy(b.B[hdrLen:], msg.Data.B)
	msg.Data.Release()
	c := a.client
	err := c.Do(context.Background(), c.B().Evalsha().Sha1(publishScript.sha).Numkeys(2).Key(k.meta, k.hist).
		Arg(a.seed, a.ttlMs, k.channel, a.maxHist, rueidis.BinaryString(b.B)).Build()).Error()
	if isNoScript(err) {
		err = c.Do(context.Background(), c.B().Eval().Script(publishScript.src).Numkeys(2).Key(k.meta, k.hist).
			Arg(a.seed, a.ttlMs, k.channel, a.maxHist, rueidis.BinaryString(b.B)).Build()).Error()
	}
	if err != nil {
		return err
	}
	b.Release()
	return nil
}
