package pluglink_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/sdk/frame"
)

// TestRequestThroughFrames: a request snapshot survives encoding and
// decoding; its stable headers come from the header cache (a second
// request with other per-request headers hits it), its per-request ones
// travel beside the cached set.
func TestRequestThroughFrames(t *testing.T) {
	cache, err := frame.NewHeaderCache(frame.HeaderCacheConfig{})
	require.NoError(t, err)
	mk := func(key string) *core.Request {
		return &core.Request{
			Method: "GET", Path: "/ws", RawQuery: "a=1", Host: "example.com",
			RemoteAddr: "10.0.0.1:5555", ClientIP: "10.0.0.1",
			Header: http.Header{
				"User-Agent":        {"test"},
				"Accept":            {"a", "b"},
				"Sec-Websocket-Key": {key},
			},
			Params: map[string]string{"room": "r1", "id": "7"},
			Time:   time.Unix(1700000000, 123),
		}
	}
	enc := frame.NewEncoder()
	for i, key := range []string{"k1", "k2"} {
		req := mk(key)
		var fr frame.Request
		pluglink.EncodeRequest(&fr, req, cache)
		require.NotNil(t, fr.CachedHeaders)
		require.Equal(t, []frame.Header{{Name: "Sec-Websocket-Key", Value: key}}, fr.ExtraHeaders)
		v, err := frame.Decode(enc.Encode(&frame.Frame{Request: &fr}))
		require.NoError(t, err)
		rv, ok := v.Request()
		require.True(t, ok)
		got := pluglink.DecodeRequest(&rv)
		require.Equal(t, req, got)
		st := cache.Stats()
		require.Equal(t, uint64(i), st.Hits, "the second request's stable headers are a cache hit")
	}
}
