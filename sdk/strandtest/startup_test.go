package strandtest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/strandtest"
)

// TestNewRefusesWhatAServerRefuses: the kit fails a test for the entries a
// server's Route refuses, with the same words.
func TestNewRefusesWhatAServerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry func() *sdk.Entry
		want  string
	}{
		{"no_handlers", func() *sdk.Entry {
			p := sdk.NewPlugin("echo")
			p.Entry("echo").WebSocket(sdk.WebSocketHandlers{OnText: func(*sdk.Conn, []byte) {}})
			return p.Entry("ecoh")
		}, "strandtest: New: sdk: entry echo/ecoh has no handlers: is the name misspelled, or was it never registered?"},
		{"on_message_and_on_text", func() *sdk.Entry {
			return sdk.NewPlugin("p").Entry("both").WebSocket(sdk.WebSocketHandlers{
				OnMessage: func(*sdk.Conn, sdk.Message) {}, OnText: func(*sdk.Conn, []byte) {},
			})
		}, "strandtest: New: sdk: entry p/both: WebSocket handlers set both OnMessage and OnText/OnBinary: OnMessage would shadow them; set one or the other"},
		{"on_message_and_on_binary", func() *sdk.Entry {
			return sdk.NewPlugin("p").Entry("both").WebSocket(sdk.WebSocketHandlers{
				OnMessage: func(*sdk.Conn, sdk.Message) {}, OnBinary: func(*sdk.Conn, []byte) {},
			})
		}, "strandtest: New: sdk: entry p/both: WebSocket handlers set both OnMessage and OnText/OnBinary: OnMessage would shadow them; set one or the other"},
		{"registered_but_empty_entry", func() *sdk.Entry {
			return sdk.NewPlugin("p").Entry("empty")
		}, "strandtest: New: sdk: entry p/empty has no handlers: is the name misspelled, or was it never registered?"},
		{"all_nil_websocket_handlers", func() *sdk.Entry {
			return sdk.NewPlugin("p").Entry("ws").WebSocket(sdk.WebSocketHandlers{})
		}, "strandtest: New: sdk: entry p/ws has no handlers: its WebSocketHandlers are all nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecT(t)
			r.run(func() { strandtest.New(r, tc.entry()) })
			errs, fatal := r.failures()
			require.True(t, fatal)
			require.Equal(t, []string{tc.want}, errs)
		})
	}
}

// TestNewMountsTheEntry: as after a server's Route, registering a handler
// on the entry panics once the kit has it.
func TestNewMountsTheEntry(t *testing.T) {
	e := sdk.NewPlugin("p").Entry("e").RequestFilter(func(*sdk.RequestContext) {})
	strandtest.New(t, e)
	require.PanicsWithError(t, "sdk: entry p/e: ResponseFilter after the entry was mounted on a host: register handlers before mounting it", func() {
		e.ResponseFilter(func(*sdk.ResponseContext) {})
	})
}

// TestNewTakesAtMostOneOptions: Options are optional, and a second one is
// a mistake.
func TestNewTakesAtMostOneOptions(t *testing.T) {
	r := newRecT(t)
	e := sdk.NewPlugin("p").Entry("e").RequestFilter(func(*sdk.RequestContext) {})
	r.run(func() { strandtest.New(r, e, strandtest.Options{}, strandtest.Options{}) })
	errs, fatal := r.failures()
	require.True(t, fatal)
	require.Equal(t, []string{"strandtest: New: 2 Options given; pass at most one"}, errs)
}

// TestUpgradeWithConflictingHandlers: a filter that upgrades with a
// handler set a server would refuse panics, so the request fails loudly.
func TestUpgradeWithConflictingHandlers(t *testing.T) {
	e := sdk.NewPlugin("p").Entry("e").RequestFilter(func(c *sdk.RequestContext) {
		c.Upgrade(&sdk.WebSocketHandlers{OnMessage: func(*sdk.Conn, sdk.Message) {}, OnBinary: func(*sdk.Conn, []byte) {}})
	})
	res := strandtest.New(t, e).RequestFilter(nil)
	require.ErrorContains(t, res.Err, "sdk: Upgrade: WebSocket handlers set both OnMessage and OnText/OnBinary")
}

// TestFilterReturningWithoutDecidingIsNext: as on a server.
func TestFilterReturningWithoutDecidingIsNext(t *testing.T) {
	e := sdk.NewPlugin("p").Entry("e").RequestFilter(func(c *sdk.RequestContext) { c.Set("seen", true) })
	res := strandtest.New(t, e).RequestFilter(nil)
	require.NoError(t, res.Err)
	require.Equal(t, strandtest.Next, res.Decision)
	require.Equal(t, true, res.Values["seen"])
}
