package echoplugin

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/strandws/strand/sdk"
)

// MaxSleep is the longest ?sleep= a connection may ask for (Options.SleepParam).
const MaxSleep = 10 * time.Second

// Options configure the echo plugin built by Configure.
type Options struct {
	// Token, if not empty, guards "echo": an upgrade must carry
	// ?token=TOKEN or "Authorization: Bearer TOKEN", or it gets 401 and
	// never reaches the WebSocket handlers.
	Token string
	// SleepParam makes "echo" honour ?sleep=DURATION (time.ParseDuration,
	// at most MaxSleep): each message of that connection waits that long in
	// its handler before it is echoed — a blocking handler, for measuring
	// how one slow connection affects the others. A bad or negative value
	// gets 400. Off, the parameter is ignored.
	SleepParam bool
}

// WithToken returns the echo plugin guarded by a shared secret (see
// Options.Token). An empty token disables the check.
func WithToken(token string) *sdk.Plugin { return Configure(Options{Token: token}) }

// Configure returns the echo plugin with o. With neither option set it is
// New().
func Configure(o Options) *sdk.Plugin {
	p := New()
	if o.Token == "" && !o.SleepParam {
		return p
	}
	p.Entry("echo").RequestFilter(func(ctx *sdk.RequestContext) {
		req := ctx.Request()
		query := req.Query()
		if o.Token != "" {
			got := query.Get("token")
			if got == "" {
				got, _ = strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(o.Token)) != 1 {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="echo"`)
				ctx.Reject(http.StatusUnauthorized, "missing or wrong token\n")
				return
			}
			ctx.Set("authenticated", true)
		}
		if o.SleepParam && query.Has("sleep") {
			d, err := parseSleep(query.Get("sleep"))
			if err != nil {
				ctx.Reject(http.StatusBadRequest, err.Error()+"\n")
				return
			}
			if d > 0 {
				ctx.Upgrade(&sdk.WebSocketHandlers{OnMessage: sleepEcho(d)})
				return
			}
		}
		ctx.Upgrade(nil) // with the entry's echo handlers
	})
	return p
}

func parseSleep(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxSleep {
		return 0, fmt.Errorf("bad sleep %q: want a duration from 0 to %v", v, MaxSleep)
	}
	return d, nil
}

// sleepEcho echoes each message after blocking its handler for d.
func sleepEcho(d time.Duration) func(c *sdk.Conn, m sdk.Message) {
	return func(c *sdk.Conn, m sdk.Message) {
		time.Sleep(d)
		_ = c.Send(m.Type, m.Data)
	}
}
