package debugserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestVarsAndPprof: /debug/vars is one JSON object with expvar's
// variables and the ones passed in; pprof answers under /debug/pprof/;
// nothing else is served.
func TestVarsAndPprof(t *testing.T) {
	h := Handler(Vars{"strand": func() any { return map[string]int{"Open": 3} }, "bad": func() any { return func() {} }})
	for _, path := range []string{"/debug/vars", "/debug/vars?gc=1"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
		var v map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
		require.JSONEq(t, `{"Open":3}`, string(v["strand"]))
		require.Contains(t, v, "memstats")
		require.Contains(t, v, "cmdline")
		require.Contains(t, string(v["bad"]), "unsupported type", "a variable that does not encode shows its error")
	}
	for path, want := range map[string]int{"/debug/pprof/": 200, "/debug/pprof/goroutine?debug=1": 200, "/": 404, "/healthz": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, want, rec.Code, path)
	}
}

func TestCheckAddrs(t *testing.T) {
	require.NoError(t, CheckAddrs("127.0.0.1:8080", ""))
	require.NoError(t, CheckAddrs("127.0.0.1:8080", "127.0.0.1:6060"))
	require.NoError(t, CheckAddrs("127.0.0.1:0", "127.0.0.1:0"))
	require.ErrorContains(t, CheckAddrs("127.0.0.1:8080", "127.0.0.1:8080"), "must differ")
}

// TestListenServeShutdown: a bound listener serves until Shutdown, and
// Serve then returns nil.
func TestListenServeShutdown(t *testing.T) {
	s, err := Listen("127.0.0.1:0", nil)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + s.Addr().String() + "/debug/vars")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	require.NoError(t, <-served)

	_, err = Listen(s.Addr().String()+"x", nil)
	require.ErrorContains(t, err, "debug listener")
}
