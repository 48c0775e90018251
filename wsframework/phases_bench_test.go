package wsframework_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/wsframework"
)

// benchTerminal is the same terminal for Strand and the bare baseline.
var benchTerminal = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "hello")
})

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchServe(b *testing.B, h http.Handler) {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, "/x?a=1", nil)
	req.Header.Set("Authorization", "Bearer ok")
	w := &nopWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

func benchStrand(b *testing.B, entries ...*sdk.Entry) {
	srv, err := wsframework.New(wsframework.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Route("/", benchTerminal, entries...); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	benchServe(b, srv)
}

// BenchmarkBaselineBareHandler is the terminal without Strand.
func BenchmarkBaselineBareHandler(b *testing.B) {
	mux := http.NewServeMux()
	mux.Handle("/", benchTerminal)
	benchServe(b, mux)
}

// BenchmarkPhasePassThrough: one plugin with only a RequestFilter that calls
// Next (the common auth case).
func BenchmarkPhasePassThrough(b *testing.B) {
	e := sdk.NewPlugin("auth").Entry("auth").RequestFilter(func(ctx *sdk.RequestContext) {
		if ctx.Request().Header.Get("Authorization") == "" {
			ctx.Reject(http.StatusUnauthorized, "no")
			return
		}
		ctx.Next()
	})
	benchStrand(b, e)
}

// BenchmarkPhaseAllFour: RequestFilter, ResponseFilter, ResponseBodyFilter
// and Logging all registered.
func BenchmarkPhaseAllFour(b *testing.B) {
	e := sdk.NewPlugin("all").Entry("all").
		RequestFilter(func(ctx *sdk.RequestContext) { ctx.Next() }).
		ResponseFilter(func(ctx *sdk.ResponseContext) { ctx.SetHeader("X-A", "1"); ctx.Next() }).
		ResponseBodyFilter(func(ctx *sdk.BodyContext) { ctx.Next() }).
		Logging(func(*sdk.LogEntry) {})
	benchStrand(b, e)
}

// BenchmarkChannelCall: one plugin->host call with its reply, inside a
// request filter (the request's other costs are paid once per op too).
func BenchmarkChannelCall(b *testing.B) {
	start := make(chan struct{})
	done := make(chan struct{})
	var calls int
	e := sdk.NewPlugin("call").Entry("call").RequestFilter(func(ctx *sdk.RequestContext) {
		<-start
		for range calls {
			if _, err := ctx.ReadBody(); err != nil {
				panic(err)
			}
		}
		ctx.Next()
		close(done)
	})
	srv, err := wsframework.New(wsframework.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Route("/", benchTerminal, e); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	calls = b.N
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	go func() {
		srv.ServeHTTP(&nopWriter{h: make(http.Header)}, req)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	<-done
}

// BenchmarkBaselineChannelRoundTrip is a bare request/reply over channels
// between two goroutines.
func BenchmarkBaselineChannelRoundTrip(b *testing.B) {
	req := make(chan chan int)
	go func() {
		for r := range req {
			r <- 1
		}
	}()
	reply := make(chan int, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req <- reply
		<-reply
	}
	close(req)
}

// BenchmarkPhaseCost measures the four benchmarks above interleaved, in
// batches of 256 operations taken in turn, so that a noisy machine slows
// them alike, and reports the phase targets as ratios of the same run:
// pass-through and all-four time over the bare handler, each divided by
// the channel round trip, and the extra allocations per request. The
// ns/op it reports is one turn of all four, per operation.
func BenchmarkPhaseCost(b *testing.B) {
	newServer := func(e *sdk.Entry) *wsframework.Server {
		srv, err := wsframework.New(wsframework.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Route("/", benchTerminal, e); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		})
		return srv
	}
	bare := http.NewServeMux()
	bare.Handle("/", benchTerminal)
	pass := newServer(sdk.NewPlugin("auth").Entry("auth").RequestFilter(func(ctx *sdk.RequestContext) {
		if ctx.Request().Header.Get("Authorization") == "" {
			ctx.Reject(http.StatusUnauthorized, "no")
			return
		}
		ctx.Next()
	}))
	all := newServer(sdk.NewPlugin("all").Entry("all").
		RequestFilter(func(ctx *sdk.RequestContext) { ctx.Next() }).
		ResponseFilter(func(ctx *sdk.ResponseContext) { ctx.SetHeader("X-A", "1"); ctx.Next() }).
		ResponseBodyFilter(func(ctx *sdk.BodyContext) { ctx.Next() }).
		Logging(func(*sdk.LogEntry) {}))
	reqs := make(chan chan int)
	defer close(reqs)
	go func() {
		for r := range reqs {
			r <- 1
		}
	}()
	reply := make(chan int, 1)

	req := httptest.NewRequest(http.MethodGet, "/x?a=1", nil)
	req.Header.Set("Authorization", "Bearer ok")
	w := &nopWriter{h: make(http.Header)}
	serve := func(h http.Handler) func() {
		return func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	}
	kinds := []func(){
		serve(bare), serve(pass), serve(all),
		func() { reqs <- reply; <-reply },
	}
	allocs := make([]float64, len(kinds))
	for i, f := range kinds {
		allocs[i] = testing.AllocsPerRun(1000, f)
	}
	const batch = 256
	var spent [4]time.Duration
	var ops int
	b.ResetTimer()
	for ops < b.N {
		for i, f := range kinds {
			t0 := time.Now()
			for range batch {
				f()
			}
			spent[i] += time.Since(t0)
		}
		ops += batch
	}
	b.StopTimer()
	per := func(i int) float64 { return float64(spent[i].Nanoseconds()) / float64(ops) }
	rt := per(3)
	b.ReportMetric(per(0), "bare-ns")
	b.ReportMetric(per(1), "pass-ns")
	b.ReportMetric(per(2), "all4-ns")
	b.ReportMetric(rt, "chanrt-ns")
	b.ReportMetric((per(1)-per(0))/rt, "pass-extra/rt")
	b.ReportMetric((per(2)-per(0))/rt, "all4-extra/rt")
	b.ReportMetric(allocs[1]-allocs[0], "pass-extra-allocs")
	b.ReportMetric(allocs[2]-allocs[0], "all4-extra-allocs")
}
