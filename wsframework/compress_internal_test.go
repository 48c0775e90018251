package wsframework

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk/bufpool"
)

// TestNegotiateDeflate: RFC 7692's parameter rules, offer by offer.
func TestNegotiateDeflate(t *testing.T) {
	const (
		none     = ""
		both     = "permessage-deflate;server_no_context_takeover;client_no_context_takeover"
		bothBits = "permessage-deflate;server_no_context_takeover;client_no_context_takeover;server_max_window_bits=15"
	)
	for _, tc := range []struct {
		name     string
		lines    []string
		on       bool
		takeover bool
		want     string // the answer, "" when declined
		bad      bool   // refused with 400
	}{
		{"absent", nil, true, false, none, false},
		{"plain", []string{"permessage-deflate"}, true, false, both, false},
		{"chromium", []string{"permessage-deflate; client_max_window_bits"}, true, false, both, false},
		{"all_params", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=9"}, true, false, bothBits, false},
		{"quoted_bits", []string{`permessage-deflate; server_max_window_bits="15"`}, true, false, bothBits, false},
		{"off", []string{"permessage-deflate"}, false, false, none, false},
		{"other_extension", []string{"x-webkit-deflate-frame"}, true, false, none, false},
		{"name_is_case_sensitive", []string{"Permessage-Deflate"}, true, false, none, false},
		{"unknown_param", []string{"permessage-deflate; foo"}, true, false, none, false},
		{"duplicate_param", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, true, false, none, false},
		{"duplicate_bits", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, true, false, none, false},
		{"flag_with_value", []string{"permessage-deflate; server_no_context_takeover=1"}, true, false, none, false},
		{"server_bits_without_value", []string{"permessage-deflate; server_max_window_bits"}, true, false, none, false},
		{"bits_out_of_range", []string{"permessage-deflate; client_max_window_bits=16"}, true, false, none, false},
		{"bits_seven", []string{"permessage-deflate; client_max_window_bits=7"}, true, false, none, false},
		{"bits_leading_zero", []string{"permessage-deflate; client_max_window_bits=09"}, true, false, none, false},
		{"bits_not_a_number", []string{"permessage-deflate; client_max_window_bits=x"}, true, false, none, false},
		// compress/flate cannot use a smaller window: declined.
		{"small_server_window", []string{"permessage-deflate; server_max_window_bits=10"}, true, false, none, false},
		// The first acceptable offer wins, over lines and within one.
		{"fallback_offer", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits"}, true, false, both, false},
		{"fallback_line", []string{"permessage-deflate; bogus", "x-foo, permessage-deflate"}, true, false, both, false},
		{"first_wins", []string{"permessage-deflate; server_max_window_bits=15, permessage-deflate"}, true, false, bothBits, false},
		{"empty_line_ignored", []string{"", " , ", "permessage-deflate"}, true, false, both, false},
		{"takeover", []string{"permessage-deflate"}, true, true, "permessage-deflate", false},
		{"takeover_client_declines", []string{"permessage-deflate; client_no_context_takeover"}, true, true, "permessage-deflate;client_no_context_takeover", false},
		{"takeover_server_declines", []string{"permessage-deflate; server_no_context_takeover"}, true, true, "permessage-deflate;server_no_context_takeover", false},
		// RFC 6455's grammar broken: refused, compression on or off.
		{"malformed", []string{"permessage-deflate;;"}, true, false, none, true},
		{"malformed_off", []string{"permessage-deflate; =3"}, false, false, none, true},
		{"malformed_after_good", []string{"permessage-deflate", "@@@"}, true, false, none, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := negotiateDeflate(tc.lines, tc.on, tc.takeover)
			if tc.bad {
				require.ErrorIs(t, err, errBadExtensions)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want != "", p.on)
			if p.on {
				require.Equal(t, tc.want, addDeflateAnswer(nil, p).Get("Sec-WebSocket-Extensions"))
			}
		})
	}
}

// inflate reads a permessage-deflate message the way a client does.
func inflate(t *testing.T, fr io.ReadCloser, z []byte) []byte {
	t.Helper()
	src := io.MultiReader(bytes.NewReader(z), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))
	require.NoError(t, fr.(flate.Resetter).Reset(src, nil))
	out, err := io.ReadAll(fr)
	require.NoError(t, err)
	return out
}

// TestDeflaterCompress: a compressible message comes out smaller and
// inflates back; an incompressible one is left as it is; writers are
// reused.
func TestDeflaterCompress(t *testing.T) {
	pool := bufpool.New(bufpool.Config{Poison: true})
	d := newDeflater(flate.BestSpeed, pool)
	fr := flate.NewReader(nil)
	msg := bytes.Repeat([]byte(`{"type":"message","text":"hello"}`), 40)
	for range 3 {
		z := d.compress(msg)
		require.NotNil(t, z)
		require.Less(t, len(z.B), len(msg)/5)
		require.Equal(t, msg, inflate(t, fr, z.B))
		z.Release()
	}
	random := make([]byte, 600)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(random)
	require.Nil(t, d.compress(random), "not smaller: sent as it is")
	z := d.compress(msg) // the writer that refused works again
	require.Equal(t, msg, inflate(t, fr, z.B))
	z.Release()
	st := pool.Stats()
	require.Equal(t, st.Gets-st.Oversize, st.Releases)
}

// BenchmarkCompress: one 1 KiB JSON-like message compressed without
// context takeover (a pooled writer, reset per message) at level 1 (the
// default) and 6: every level but 1 clears its hash tables on reset.
func BenchmarkCompress(b *testing.B) {
	for _, level := range []int{flate.BestSpeed, flate.DefaultCompression} {
		b.Run("level="+strconv.Itoa(level), func(b *testing.B) {
			d := newDeflater(level, bufpool.New(bufpool.Config{}))
			msg := compressibleMessage()
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				d.compress(msg).Release()
			}
		})
	}
}
