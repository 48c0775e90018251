// Package metricsetup gives the example programs their Prometheus
// registry and /metrics handler: a registry of the program's own (never
// the global one) with the Go runtime's and the process's collectors, on
// which the Server registers its metrics through Config.Metrics.
package metricsetup

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry returns a new registry with the Go runtime's and the process's
// collectors.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg in the Prometheus exposition formats, for
// GET /metrics. The examples mount it on their public listener, like
// /healthz: where the counts should not be public, serve it on a listener
// of its own.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
