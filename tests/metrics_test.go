package tests

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// TestMetricsScrape sends known traffic to a Server with Config.Metrics and
// checks what its /metrics says, parsed with the Prometheus text parser:
// N connections each echoing M messages, their closes, a slow consumer, a
// handshake refused for its Origin, and a request filter that panics.
func TestMetricsScrape(t *testing.T) {
	const conns, msgs, size = 3, 10, 100

	// echo echoes; "flood" makes it send 8 KiB messages until the
	// connection is closed as a slow consumer.
	floodErr := make(chan error, 1)
	echo := sdk.NewPlugin("echo").Entry("ws").WebSocket(sdk.WebSocketHandlers{
		OnOpen: func(*sdk.Conn) {},
		OnMessage: func(c *sdk.Conn, m sdk.Message) {
			if m.Type == sdk.Text && string(m.Data) == "flood" {
				payload := bytes.Repeat([]byte{0xab}, 8<<10)
				for range 64 << 20 / len(payload) {
					if err := c.SendBinary(payload); err != nil {
						floodErr <- err
						return
					}
				}
				floodErr <- errors.New("64 MiB queued to a client that reads nothing, and no slow-consumer close")
				return
			}
			_ = c.Send(m.Type, m.Data)
		},
		OnClose: func(*sdk.Conn, sdk.CloseCode, string) {},
	})
	// guard answers plain requests itself, and panics on ?panic=1.
	guard := sdk.NewPlugin("guard").Entry("filter").RequestFilter(func(rc *sdk.RequestContext) {
		if rc.Request().Query().Get("panic") == "1" {
			panic("guard: asked to panic")
		}
		rc.SetBody([]byte("ok"))
		rc.End()
	})

	reg := prometheus.NewRegistry()
	h := startServerHandlers(t, wsframework.Config{
		Metrics:            reg,
		MetricsSampleEvery: 1, // every message timed: exact histogram counts
		WriteQueueBytes:    64 << 10,
		CloseTimeout:       200 * time.Millisecond,
	}, map[string]*sdk.Entry{"/echo": echo, "/guard": guard},
		map[string]http.Handler{"GET /metrics": promhttp.HandlerFor(reg, promhttp.HandlerOpts{})})
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	scrape := func() metricSet { return scrapeMetrics(t, client, "http://"+h.addr+"/metrics") }

	// N connections, M messages each, every echo read back.
	clients := make([]*wsClient, conns)
	payload := bytes.Repeat([]byte{'p'}, size)
	for i := range clients {
		clients[i] = h.dial(t, "/echo")
	}
	for range msgs {
		for _, c := range clients {
			c.echo(t, ws.OpBinary, payload)
		}
	}
	// A reply can reach the client before its write is counted, and before
	// the handler that sent it returns and is timed.
	route := map[string]string{"route": "/echo"}
	echoPlugin := map[string]string{"plugin": "echo"}
	waitMetric(t, scrape, "strand_messages_sent_total", nil, conns*msgs)
	waitMetric(t, scrape, "strand_bytes_received_total", nil, conns*msgs*size) // published at the reader's next read
	m := waitMetric(t, scrape, "strand_handler_duration_seconds", map[string]string{"plugin": "echo", "event": "message"}, conns*msgs)
	require.Equal(t, float64(conns), m.value(t, "strand_connections", route))
	require.Equal(t, float64(conns), m.value(t, "strand_connections_accepted_total", route))
	require.Equal(t, float64(conns*msgs), m.value(t, "strand_messages_received_total", nil))
	require.Equal(t, float64(conns*msgs), m.value(t, "strand_messages_sent_total", nil))
	require.Equal(t, float64(conns*msgs*size), m.value(t, "strand_bytes_received_total", nil))
	require.Equal(t, float64(conns*msgs*size), m.value(t, "strand_bytes_sent_total", nil))
	require.Equal(t, float64(conns*msgs), m.value(t, "strand_dispatch_delay_seconds", echoPlugin))
	require.Equal(t, float64(conns), m.value(t, "strand_handler_duration_seconds", map[string]string{"plugin": "echo", "event": "open"}))
	require.Equal(t, float64(conns*msgs), m.value(t, "strand_handler_duration_seconds", map[string]string{"plugin": "echo", "event": "message"}))
	require.Zero(t, m.value(t, "strand_write_queue_bytes", nil))
	require.Zero(t, m.value(t, "strand_slow_consumer_closes_total", nil))
	require.Positive(t, m.value(t, "strand_buffer_pool_gets_total", map[string]string{"result": "hit"}))
	require.Positive(t, m.value(t, "strand_buffer_pool_releases_total", nil))
	require.Zero(t, m.value(t, "strand_compression_bytes_in_total", map[string]string{"direction": "send"}))

	// The clients close normally: the gauge drops back, the closes are
	// counted by reason and code, and every OnClose was timed.
	for _, c := range clients {
		require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
		c.expectClose(t, ws.StatusNormalClosure)
	}
	waitMetric(t, scrape, "strand_connections", route, 0)
	m = waitMetric(t, scrape, "strand_handler_duration_seconds", map[string]string{"plugin": "echo", "event": "close"}, conns)
	require.Equal(t, float64(conns), m.value(t, "strand_connection_closes_total", map[string]string{"reason": "peer", "code": "1000"}))

	// A slow consumer: a client that reads nothing while the plugin floods it.
	slow := h.dial(t, "/echo")
	require.NoError(t, slow.send(ws.OpText, []byte("flood")))
	select {
	case err := <-floodErr:
		require.ErrorIs(t, err, sdk.ErrSlowConsumer)
	case <-time.After(ioTimeout):
		t.Fatal("no slow-consumer close")
	}
	m = waitMetric(t, scrape, "strand_connections", route, 0) // released after its close is counted
	require.Equal(t, 1.0, m.value(t, "strand_slow_consumer_closes_total", nil))
	require.Equal(t, 1.0, m.value(t, "strand_connection_closes_total", map[string]string{"reason": "slow_consumer", "code": "1008"}))
	require.Equal(t, float64(conns+1), m.value(t, "strand_connections_accepted_total", route))
	// What is dropped depends on how much the writer had taken when the
	// close came (it may have taken all): the family is there, and counts
	// what the Server's Stats count.
	require.Equal(t, float64(h.srv.Stats().Dropped), m.value(t, "strand_messages_dropped_total", nil))

	// A handshake refused for its Origin.
	require.Equal(t, http.StatusForbidden, h.handshakeStatus(t, "/echo", dialOpts{header: http.Header{"Origin": {"http://elsewhere.example"}}}))
	// The guard's request filter: one answer, one panic (500).
	for _, q := range []string{"", "?panic=1"} {
		resp, err := client.Get("http://" + h.addr + "/guard" + q)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, map[string]int{"": http.StatusOK, "?panic=1": http.StatusInternalServerError}[q], resp.StatusCode, "GET /guard%s", q)
	}
	m = scrape()
	require.Equal(t, 1.0, m.value(t, "strand_handshake_rejections_total", map[string]string{"reason": "origin"}))
	require.Zero(t, m.value(t, "strand_handshake_rejections_total", map[string]string{"reason": "max_conns"}))
	require.Equal(t, float64(conns+1), m.value(t, "strand_connections_accepted_total", route), "the refused handshake was not accepted")
	guardPhase := map[string]string{"plugin": "guard", "phase": "request_filter"}
	require.Equal(t, 2.0, m.value(t, "strand_phase_duration_seconds", guardPhase))
	require.Equal(t, 1.0, m.value(t, "strand_phase_failures_total", map[string]string{"plugin": "guard", "phase": "request_filter", "kind": "panic"}))
	require.Equal(t, 1.0, m.value(t, "strand_handler_panics_total", map[string]string{"plugin": "guard"}))
	require.Zero(t, m.value(t, "strand_handler_panics_total", echoPlugin))
	require.Zero(t, m.value(t, "strand_dispatch_queued", echoPlugin))
	// Labels stay bounded: no connection IDs, and the routes are patterns.
	for _, name := range []string{"strand_connections", "strand_connections_accepted_total"} {
		for _, mt := range m[name].GetMetric() {
			require.Contains(t, []string{"/echo", "/guard"}, labelsOf(mt)["route"])
		}
	}
}

// TestMetricsRegistration: a Server registers its metrics once on the
// registry it is given; a second Server on the same registry fails in New,
// and Servers that share one registry each wrap it with a label that tells
// them apart.
func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	startServer(t, wsframework.Config{Metrics: reg}, nil)
	_, err := wsframework.New(wsframework.Config{Metrics: reg, Logger: quietLogger()})
	require.ErrorContains(t, err, "Config.Metrics")

	shared := prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		startServer(t, wsframework.Config{Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"server": name}, shared)}, nil)
	}
	mfs, err := shared.Gather()
	require.NoError(t, err)
	var n int
	for _, mf := range mfs {
		if mf.GetName() == "strand_messages_received_total" {
			n = len(mf.GetMetric())
		}
	}
	require.Equal(t, 2, n, "one series per Server")
	_, err = wsframework.New(wsframework.Config{Metrics: prometheus.NewRegistry(), MetricsSampleEvery: -1})
	require.Error(t, err)
}

// metricSet is a scrape, by family name.
type metricSet map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, client *http.Client, url string) metricSet {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", url)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "parse %s", url)
	return mfs
}

// value returns the value of the one series of family name whose labels
// include want: a counter's or gauge's value, a histogram's count. A family
// or series that is missing fails the test.
func (m metricSet) value(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := m.lookup(name, want)
	require.True(t, ok, "no series %s%v in the scrape", name, want)
	return v
}

func (m metricSet) lookup(name string, want map[string]string) (float64, bool) {
	mf := m[name]
	if mf == nil {
		return 0, false
	}
	found, v := 0, 0.0
	for _, mt := range mf.GetMetric() {
		labels := labelsOf(mt)
		match := true
		for k, val := range want {
			if labels[k] != val {
				match = false
			}
		}
		if !match {
			continue
		}
		found++
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			v = mt.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			v = mt.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			v = float64(mt.GetHistogram().GetSampleCount())
		default:
			return 0, false
		}
	}
	return v, found == 1
}

func labelsOf(mt *dto.Metric) map[string]string {
	l := make(map[string]string)
	for _, lp := range mt.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// waitMetric scrapes until the series reaches want (within ioTimeout) and
// returns that scrape.
func waitMetric(t *testing.T, scrape func() metricSet, name string, labels map[string]string, want float64) metricSet {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		m := scrape()
		v, ok := m.lookup(name, labels)
		if ok && v == want {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v is %v (found %v), want %v", name, labels, v, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsCloseCodes: every close code a peer or plugin may choose maps
// to a bounded label.
func TestMetricsCloseCodes(t *testing.T) {
	p := newProbe("codes")
	reg := prometheus.NewRegistry()
	h := startServerHandlers(t, wsframework.Config{Metrics: reg}, map[string]*sdk.Entry{"/ws": p.entry},
		map[string]http.Handler{"GET /metrics": promhttp.HandlerFor(reg, promhttp.HandlerOpts{})})
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	codes := []ws.StatusCode{1001, 3000, 3999, 4000, 4321}
	for i, code := range codes {
		tag := fmt.Sprint("c", i)
		c := h.dial(t, tagPath("/ws", tag))
		p.waitOpen(t, tag)
		require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(code, "")))
		c.expectClose(t, code)
		p.waitClose(t, tag, sdk.CloseCode(code))
	}
	// The plugin's own close (4000, "x").
	c := h.dial(t, tagPath("/ws", "local"))
	p.waitOpen(t, "local")
	require.NoError(t, c.send(ws.OpText, []byte("!close")))
	<-p.events("local").msgs
	c.expectClose(t, 4000)
	require.NoError(t, c.send(ws.OpClose, ws.NewCloseFrameBody(4000, "")))
	p.waitClose(t, "local", 4000)

	scrape := func() metricSet { return scrapeMetrics(t, client, "http://"+h.addr+"/metrics") }
	m := waitMetric(t, scrape, "strand_connection_closes_total", map[string]string{"reason": "local", "code": "4xxx"}, 1)
	for code, want := range map[string]float64{"1001": 1, "3xxx": 2, "4xxx": 2} {
		require.Equal(t, want, m.value(t, "strand_connection_closes_total", map[string]string{"reason": "peer", "code": code}), "code %s", code)
	}
	for _, mt := range m["strand_connection_closes_total"].GetMetric() {
		code := labelsOf(mt)["code"]
		require.True(t, code == "3xxx" || code == "4xxx" || code == "other" || len(code) == 4 && strings.HasPrefix(code, "10"), "code label %q", code)
	}
}

// TestEchoProgramMetrics: examples/echo, run as a program, serves its
// metrics on GET /metrics: the Server's families next to the Go runtime's
// and the process's.
func TestEchoProgramMetrics(t *testing.T) {
	e := startEchoProgram(t)
	c := e.dial(t, "/echo")
	for range 5 {
		c.echo(t, ws.OpText, []byte("hello"))
	}
	scrape := func() metricSet { return scrapeMetrics(t, e.client, "http://"+e.addr+"/metrics") }
	m := waitMetric(t, scrape, "strand_messages_sent_total", nil, 5)
	require.Equal(t, 5.0, m.value(t, "strand_messages_received_total", nil))
	require.Equal(t, 1.0, m.value(t, "strand_connections", map[string]string{"route": "/echo"}))
	require.Equal(t, 0.0, m.value(t, "strand_connections", map[string]string{"route": "/broadcast"}))
	require.Positive(t, m.value(t, "go_goroutines", nil))
	require.Positive(t, m.value(t, "process_resident_memory_bytes", nil))
}
