package redisadapter_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/redistest"
	"github.com/strandws/strand/wsframework/redisadapter"
)

// TestCollector: the adapter's counters, read at scrape time on the
// caller's registry.
func TestCollector(t *testing.T) {
	rs := redistest.Start(t)
	a, rec := newAdapter(t, rs.URL(), redisadapter.Config{})
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(a.Collector()))
	require.NoError(t, a.Subscribe("r"))
	for _, m := range []string{"a", "b", "c"} {
		require.NoError(t, publish(a, "r", m))
	}
	rec.waitLen(t, "r", 3)
	value := func(name string) float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no family %s", name)
		return 0
	}
	require.Eventually(t, func() bool { return value("strand_redis_delivered_total") == 3 }, 10*time.Second, time.Millisecond)
	require.Equal(t, 3.0, value("strand_redis_published_total"))
	batches := value("strand_redis_publish_batches_total")
	require.Equal(t, float64(a.Stats().Batches), batches)
	require.True(t, batches >= 1 && batches <= 3, "3 messages in %v script runs", batches)
	require.Equal(t, 1.0, value("strand_redis_rooms"))
	require.Equal(t, 1.0, value("strand_redis_connected"))
	require.Zero(t, value("strand_redis_gaps_total"))
	require.Zero(t, value("strand_redis_publish_errors_total"))
}
