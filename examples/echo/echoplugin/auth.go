package echoplugin

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/strandws/strand/sdk"
)

// WithToken returns the echo plugin guarded by a shared secret: a WebSocket
// upgrade must carry ?token=SECRET or "Authorization: Bearer SECRET", or it
// gets 401 and never reaches the WebSocket handlers. An empty token
// disables the check.
func WithToken(token string) *sdk.Plugin {
	p := New()
	if token == "" {
		return p
	}
	p.Entry("echo").RequestFilter(func(ctx *sdk.RequestContext) {
		req := ctx.Request()
		got := req.Query().Get("token")
		if got == "" {
			got, _ = strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="echo"`)
			ctx.Reject(http.StatusUnauthorized, "missing or wrong token\n")
			return
		}
		ctx.Set("authenticated", true)
		ctx.Upgrade(nil) // with the entry's echo handlers
	})
	return p
}
