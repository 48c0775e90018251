package cliflags

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/wsframework"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error text; "" means valid
	}{
		{nil, ""},
		{[]string{"-reader", "poll"}, ""},
		{[]string{"-reader", "epoll"}, `unknown -reader "epoll": want auto, goroutine or poll`},
		{[]string{"-log-level", "verbose"}, `unknown -log-level "verbose": want debug, info, warn or error`},
		{[]string{"-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		var s Server
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		s.Register(fs, "127.0.0.1:0")
		require.NoError(t, fs.Parse(tc.args))
		log, err := s.Check(fs, io.Discard)
		if tc.want != "" {
			require.EqualError(t, err, tc.want, "%v", tc.args)
			continue
		}
		require.NoError(t, err, "%v", tc.args)
		require.NotNil(t, log)
	}
	var s Server
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	s.Register(fs, "127.0.0.1:0")
	require.NoError(t, fs.Parse([]string{"-reader", "goroutine"}))
	_, err := s.Check(fs, io.Discard)
	require.NoError(t, err)
	require.Equal(t, wsframework.ReaderGoroutine, s.Mode)
}
