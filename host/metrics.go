package host

import "github.com/prometheus/client_golang/prometheus"

var (
	descRestarts = prometheus.NewDesc("strand_plugin_restarts_total",
		"Times a supervised plugin was started (or its socket dialled) again after its session ended.", []string{"plugin"}, nil)
	descUp = prometheus.NewDesc("strand_plugin_up",
		"1 while the plugin's session is established (built-in plugins: always 1).", []string{"plugin"}, nil)
	descFailed = prometheus.NewDesc("strand_plugin_failed",
		"1 while the plugin's crash-loop breaker is tripped (it is retried only every 30 s).", []string{"plugin"}, nil)
	descHeaderCache = prometheus.NewDesc("strand_header_cache_lookups_total",
		"Request header sets looked up in an out-of-process plugin's header cache: result is hit (encoded before, copied) or miss (encoded now).", []string{"plugin", "result"}, nil)
)

// pluginCollector reads the supervisors' state, and each out-of-process
// plugin's header cache counters, at each scrape.
type pluginCollector struct{ plugins []*plugin }

func (c *pluginCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRestarts
	ch <- descUp
	ch <- descFailed
	ch <- descHeaderCache
}

func (c *pluginCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for name, st := range pluginStats(c.plugins) {
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(st.Restarts), name)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b(st.Up), name)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, b(st.Failed), name)
	}
	for _, pl := range c.plugins {
		if pl.remote == nil {
			continue // a built-in plugin gets Go values: no header is encoded
		}
		st := pl.remote.HeaderCacheStats()
		ch <- prometheus.MustNewConstMetric(descHeaderCache, prometheus.CounterValue, float64(st.Hits), pl.cfg.Name, "hit")
		ch <- prometheus.MustNewConstMetric(descHeaderCache, prometheus.CounterValue, float64(st.Misses), pl.cfg.Name, "miss")
	}
}
