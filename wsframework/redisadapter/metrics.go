package redisadapter

import "github.com/prometheus/client_golang/prometheus"

// The adapter's metric families (docs/metrics.md).
var (
	descRooms     = prometheus.NewDesc("strand_redis_rooms", "Rooms this node is subscribed to through Redis.", nil, nil)
	descConnected = prometheus.NewDesc("strand_redis_connected", "1 while the Pub/Sub connection to Redis is up.", nil, nil)
	descPublished = prometheus.NewDesc("strand_redis_published_total", "Room messages Redis confirmed.", nil, nil)
	descBatches   = prometheus.NewDesc("strand_redis_publish_batches_total", "Publish script runs, each one room's batch of messages (published ÷ batches: messages per run).", nil, nil)
	descPubErrors = prometheus.NewDesc("strand_redis_publish_errors_total", "Broadcasts that could not be published (not delivered anywhere).", nil, nil)
	descDelivered = prometheus.NewDesc("strand_redis_delivered_total", "Messages handed to the Server, live and recovered.", nil, nil)
	descRecovered = prometheus.NewDesc("strand_redis_recovered_total", "Messages read from a room's history after a gap.", nil, nil)
	descGaps      = prometheus.NewDesc("strand_redis_gaps_total", "Gap events: messages that could not be recovered.", nil, nil)
	descOverflows = prometheus.NewDesc("strand_redis_overflows_total", "Received messages dropped for a full worker queue (then recovered).", nil, nil)
	descReconnect = prometheus.NewDesc("strand_redis_reconnects_total", "Pub/Sub reconnections.", nil, nil)
	descRecErrors = prometheus.NewDesc("strand_redis_recover_errors_total", "Failed position checks or history reads (retried).", nil, nil)
	descBacklog   = prometheus.NewDesc("strand_redis_backlog", "Received messages waiting for a worker.", nil, nil)
)

// collector reads an Adapter's Stats at scrape time: nothing on the
// message path.
type collector struct{ a *Adapter }

// Collector returns a prometheus.Collector of the adapter's counters, for
// the registry the Server's metrics are on (Config.Metrics):
// reg.MustRegister(adapter.Collector()).
func (a *Adapter) Collector() prometheus.Collector { return collector{a} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRooms, descConnected, descPublished, descBatches, descPubErrors, descDelivered,
		descRecovered, descGaps, descOverflows, descReconnect, descRecErrors, descBacklog} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descRooms, float64(st.Rooms))
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	gauge(descConnected, connected)
	counter(descPublished, st.Published)
	counter(descBatches, st.Batches)
	counter(descPubErrors, st.PublishErrors)
	counter(descDelivered, st.Delivered)
	counter(descRecovered, st.Recovered)
	counter(descGaps, st.Gaps)
	counter(descOverflows, st.Overflows)
	counter(descReconnect, st.Reconnects)
	counter(descRecErrors, st.RecoverErrors)
	gauge(descBacklog, float64(st.Backlog))
}
