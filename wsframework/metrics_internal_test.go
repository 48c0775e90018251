package wsframework

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// value returns the value of family name's series with the label pair
// (empty: the only series).
func value(t *testing.T, reg *prometheus.Registry, name, label, val string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := label == ""
			for _, lp := range m.GetLabel() {
				ok = ok || lp.GetName() == label && lp.GetValue() == val
			}
			if !ok {
				continue
			}
			if mf.GetType() == dto.MetricType_GAUGE {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, val)
	return 0
}

// TestMetricsCompressionHooks: the two hooks the permessage-deflate paths
// call feed the compression counters, by direction.
func TestMetricsCompressionHooks(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newRoomServer(t, Config{Metrics: reg})
	s.metrics.compressed(1000, 300)
	s.metrics.compressed(500, 200)
	s.metrics.decompressed(40, 120)
	require.Equal(t, 1500.0, value(t, reg, "strand_compression_bytes_in_total", "direction", "send"))
	require.Equal(t, 500.0, value(t, reg, "strand_compression_bytes_out_total", "direction", "send"))
	require.Equal(t, 120.0, value(t, reg, "strand_compression_bytes_in_total", "direction", "receive"))
	require.Equal(t, 40.0, value(t, reg, "strand_compression_bytes_out_total", "direction", "receive"))
}

// TestMetricsWriteQueue: the write-queue gauges read every open
// connection's queue at the scrape.
func TestMetricsWriteQueue(t *testing.T) {
	reg := prometheus.NewRegistry()
	pool := bufpool.New(bufpool.Config{Poison: true})
	s := newRoomServer(t, Config{Buffers: pool, Metrics: reg})
	g := &gatedConn{memConn: newMemConn(), gate: make(chan struct{}), started: make(chan struct{})}
	c := memberConn(t, s, g)
	defer close(g.gate) // before the cleanup's closeMemberConn waits for the writer
	other := memberConn(t, s, newMemConn())
	_ = other

	require.NoError(t, c.Write(core.Binary, payload(pool, 8, 'a')))
	<-g.started // the writer holds the first frame; the rest queue up
	require.NoError(t, c.Write(core.Binary, payload(pool, 300, 'b')))
	require.NoError(t, c.Write(core.Binary, payload(pool, 200, 'c')))
	require.Equal(t, 500.0, value(t, reg, "strand_write_queue_bytes", "", ""))
	require.Equal(t, 500.0, value(t, reg, "strand_write_queue_max_bytes", "", ""))
}

func TestCloseCodeBuckets(t *testing.T) {
	for code, want := range map[core.CloseCode]string{
		1000: "1000", 1005: "1005", 1006: "1006", 1015: "1015",
		999: "other", 1016: "other", 2999: "other", 3000: "3xxx", 3999: "3xxx",
		4000: "4xxx", 4999: "4xxx", 5000: "other", 0: "other", 65535: "other",
	} {
		require.Equal(t, want, codeBucketNames[codeBucket(code)], "code %d", code)
	}
}

// TestMetricsNilHooks: without Config.Metrics every hook is a no-op on a
// nil receiver, and the runtime gets no Observer.
func TestMetricsNilHooks(t *testing.T) {
	var m *serverMetrics
	m.sent(1)
	m.compressed(1, 1)
	m.decompressed(1, 1)
	m.closed(ReasonPeer, 1000)
	m.addRoute(m.newRoute(&route{}))
	m.unregister()
	require.Nil(t, m.observer("x"))
	require.Nil(t, m.plugin("x"))
	var pm *pluginMetrics
	require.True(t, pm.phaseStart().IsZero())
	pm.phaseDone(core.PhaseRequestFilter, outTimeout, pm.phaseStart())
	var rm *routeMetrics
	rm.opened(&conn{})
	rm.released()
}
