package wsframework_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// gathered returns the value of the one series of family name with labels
// (a counter's value, a histogram's count), and whether there is one.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := make(map[string]string)
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			default:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestMetricsPhases: every HTTP phase that ran is timed, and each way a
// phase fails is counted by kind; a phase that was never started is
// counted but not timed, and a plugin's phases without traffic show no
// series.
func TestMetricsPhases(t *testing.T) {
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	p := sdk.NewPlugin("phases")
	e := p.Entry("all").
		RequestFilter(func(rc *sdk.RequestContext) {
			switch rc.Request().Query().Get("do") {
			case "stall":
				<-release
			case "body":
				_, _ = rc.ReadBody()
			}
		}).
		ResponseFilter(func(rc *sdk.ResponseContext) {}).
		ResponseBodyFilter(func(bc *sdk.BodyContext) {})
	_, base := phaseServer(t, wsframework.Config{
		Metrics: reg, Logger: slog.New(slog.DiscardHandler), PhaseTimeout: 50 * time.Millisecond, MaxRequestBodyBytes: 8,
	}, "/p", okTerminal(nil), e)
	defer close(release)

	resp, _ := get(t, base+"/p")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = get(t, base+"/p?do=stall")
	require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	r, err := http.Post(base+"/p?do=body", "text/plain", strings.NewReader("more than eight bytes"))
	require.NoError(t, err)
	require.NoError(t, r.Body.Close())
	require.Equal(t, http.StatusRequestEntityTooLarge, r.StatusCode)

	labels := func(phase string) map[string]string { return map[string]string{"plugin": "phases", "phase": phase} }
	n, _ := gathered(t, reg, "strand_phase_duration_seconds", labels("request_filter"))
	require.Equal(t, 3.0, n, "request filters timed, failed ones included")
	n, _ = gathered(t, reg, "strand_phase_duration_seconds", labels("response_filter"))
	require.Equal(t, 1.0, n)
	n, _ = gathered(t, reg, "strand_phase_duration_seconds", labels("response_body_filter"))
	require.Equal(t, 1.0, n)
	for kind, want := range map[string]float64{"timeout": 1, "body_too_large": 1} {
		l := labels("request_filter")
		l["kind"] = kind
		n, _ = gathered(t, reg, "strand_phase_failures_total", l)
		require.Equal(t, want, n, kind)
	}
	_, ok := gathered(t, reg, "strand_phase_duration_seconds", labels("logging"))
	require.False(t, ok, "no logging phase: no series")
	_, ok = gathered(t, reg, "strand_connections", map[string]string{"route": "/p"})
	require.True(t, ok, "a route with entries has its connection gauge")
}

// TestMetricsOff: without Config.Metrics nothing is registered anywhere
// and the Server works as before.
func TestMetricsOff(t *testing.T) {
	_, base := phaseServer(t, wsframework.Config{Logger: slog.New(slog.DiscardHandler)}, "/p", okTerminal(nil),
		sdk.NewPlugin("off").Entry("e").RequestFilter(func(rc *sdk.RequestContext) {}))
	resp, _ := get(t, base+"/p")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	mfs, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		require.False(t, strings.HasPrefix(mf.GetName(), "strand_"), "%s registered globally", mf.GetName())
	}
}

// TestMetricsConcurrentScrape: scrapes run alongside connections, messages,
// closes and the phase pool's start, under the race detector.
func TestMetricsConcurrentScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	entry := sdk.NewPlugin("scraped").Entry("ws").
		RequestFilter(func(rc *sdk.RequestContext) { rc.Upgrade(nil) }).
		WebSocket(sdk.WebSocketHandlers{OnMessage: func(c *sdk.Conn, m sdk.Message) { _ = c.Send(m.Type, m.Data) }})
	_, base := phaseServer(t, wsframework.Config{Metrics: reg, Logger: slog.New(slog.DiscardHandler), MetricsSampleEvery: 2}, "/ws", nil, entry)
	stop := make(chan struct{})
	scraped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				scraped <- n
				return
			default:
			}
			_, err := reg.Gather()
			if err != nil {
				panic(err)
			}
			n++
		}
	}()
	for range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws")
		cancel()
		require.NoError(t, err)
		for range 20 {
			require.NoError(t, wsutil.WriteClientText(conn, []byte("hi")))
			b, err := wsutil.ReadServerText(conn)
			require.NoError(t, err)
			require.Equal(t, "hi", string(b))
		}
		require.NoError(t, conn.Close())
	}
	close(stop)
	require.Positive(t, <-scraped)
}

// TestMetricsDispatch: a handler that blocks past the block threshold
// detaches its connection, which the dispatcher families show while it
// blocks (a blocked worker, one worker more than the base set) and after
// (one detachment, one slow handler); a connection next to it keeps
// echoing meanwhile.
func TestMetricsDispatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	blocking := make(chan struct{}, 1)
	p := sdk.NewPlugin("disp")
	e := p.Entry("echo").WebSocket(sdk.WebSocketHandlers{
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			if string(m.Data) == "block" {
				blocking <- struct{}{}
				<-release
			}
			_ = c.Send(m.Type, m.Data)
		},
	})
	cfg := wsframework.Config{Metrics: reg, Logger: slog.New(slog.DiscardHandler)}
	cfg.Dispatcher.Workers = 1
	cfg.Dispatcher.BlockThreshold = 20 * time.Millisecond
	cfg.Dispatcher.SlowThreshold = 20 * time.Millisecond
	_, base := phaseServer(t, cfg, "/echo", nil, e)
	url := "ws" + strings.TrimPrefix(base, "http") + "/echo"
	dial := func() net.Conn { nc, _ := dialEcho(t, url); return nc }
	echo := func(c net.Conn, msg string) {
		t.Helper()
		require.NoError(t, wsutil.WriteClientText(c, []byte(msg)))
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		got, err := wsutil.ReadServerText(c)
		require.NoError(t, err)
		require.Equal(t, msg, string(got))
	}
	value := func(name string) float64 {
		n, ok := gathered(t, reg, name, map[string]string{"plugin": "disp"})
		require.True(t, ok, name)
		return n
	}

	stuck, free := dial(), dial()
	echo(free, "before")
	require.Zero(t, value("strand_dispatch_detached_total"))
	require.Zero(t, value("strand_dispatch_blocked_workers"))
	workers := value("strand_dispatch_workers")

	require.NoError(t, wsutil.WriteClientText(stuck, []byte("block")))
	<-blocking
	require.Eventually(t, func() bool { return value("strand_dispatch_blocked_workers") == 1 },
		10*time.Second, time.Millisecond, "the blocked handler's worker is counted")
	require.Equal(t, 1.0, value("strand_dispatch_detached_total"))
	require.Greater(t, value("strand_dispatch_workers"), workers, "a worker was added for the others")
	echo(free, "while it blocks")

	close(release)
	require.NoError(t, stuck.SetReadDeadline(time.Now().Add(10*time.Second)))
	got, err := wsutil.ReadServerText(stuck)
	require.NoError(t, err)
	require.Equal(t, "block", string(got))
	require.Eventually(t, func() bool { return value("strand_dispatch_blocked_workers") == 0 },
		10*time.Second, time.Millisecond)
	require.Equal(t, 1.0, value("strand_dispatch_detached_total"))
	require.GreaterOrEqual(t, value("strand_slow_handlers_total"), 1.0)
}
