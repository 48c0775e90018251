package echoplugin_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/examples/echo/echoplugin"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/strandtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoEntry returns the echo plugin's "echo" entry.
func echoEntry(t testing.TB) *sdk.Entry {
	t.Helper()
	e, ok := echoplugin.New().Lookup("echo")
	require.True(t, ok, `the plugin has an "echo" entry`)
	return e
}

func TestEcho(t *testing.T) {
	for _, tc := range []struct {
		name string
		send []strandtest.Frame
	}{
		{"text", []strandtest.Frame{strandtest.Text("hello")}},
		{"binary", []strandtest.Frame{strandtest.Binary([]byte{0, 1, 2, 0xff})}},
		{"empty text", []strandtest.Frame{strandtest.Text("")}},
		{"empty binary", []strandtest.Frame{strandtest.Binary(nil)}},
		{"utf-8", []strandtest.Frame{strandtest.Text("สวัสดี 👋")}},
		{"large", []strandtest.Frame{strandtest.Binary(bytes.Repeat([]byte{7}, 2<<20))}},
		{"mixed", []strandtest.Frame{
			strandtest.Text("a"), strandtest.Binary([]byte("b")), strandtest.Text(""), strandtest.Binary([]byte{}), strandtest.Text("c"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := strandtest.New(t, echoEntry(t)).Open()
			for _, f := range tc.send {
				require.NoError(t, c.Send(f.Type, f.Bytes()))
			}
			c.Expect(t, tc.send...)
			c.ExpectNoMore(t)
		})
	}
}

func TestEchoKeepsOrder(t *testing.T) {
	const n = 1000
	kit := strandtest.New(t, echoEntry(t))
	c := kit.Open()
	want := make([]strandtest.Frame, n)
	for i := range want {
		if i%3 == 0 {
			want[i] = strandtest.Binary(fmt.Append(nil, i))
		} else {
			want[i] = strandtest.Text(fmt.Sprint(i))
		}
		require.NoError(t, c.Send(want[i].Type, want[i].Bytes()))
	}
	c.Wait()
	assert.Equal(t, want, c.Sent())
}

func TestEchoClose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(c *strandtest.Conn)
	}{
		{"client close", func(c *strandtest.Conn) { c.Close(sdk.CloseNormal, "bye") }},
		{"drop", func(c *strandtest.Conn) { c.Drop() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kit := strandtest.New(t, echoEntry(t))
			c := kit.Open()
			c.SendText("last words")
			c.Wait() // the echo is written before the connection closes
			tc.close(c)
			c.Wait()
			c.ExpectText(t, "last words")
			c.ExpectNoMore(t)
			_, _, byServer := c.Closed()
			assert.False(t, byServer, "echo never closes by itself")
			assert.EqualValues(t, 0, kit.Stats().Open)
		})
	}
}

func TestEchoSlowClient(t *testing.T) {
	kit := strandtest.New(t, echoEntry(t), strandtest.Options{WriteQueueLimit: 3})
	c := kit.Open()
	for i := range 4 {
		c.SendText(fmt.Sprint(i))
	}
	// The client reads nothing: the fourth echo overflows its queue.
	c.ExpectClosed(t, sdk.ClosePolicyViolation)
	c.Expect(t, strandtest.Text("0"), strandtest.Text("1"), strandtest.Text("2"))
	c.ExpectNoMore(t)
}

func TestWithToken(t *testing.T) {
	for _, tc := range []struct {
		name, secret, target, auth string
		upgrade                    bool
	}{
		{"no token", "s3cret", "/echo", "", false},
		{"wrong query token", "s3cret", "/echo?token=nope", "", false},
		{"wrong bearer", "s3cret", "/echo", "Bearer nope", false},
		{"query token", "s3cret", "/echo?token=s3cret", "", true},
		{"bearer token", "s3cret", "/echo", "Bearer s3cret", true},
		{"check disabled", "", "/echo", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := echoplugin.WithToken(tc.secret).Lookup("echo")
			require.True(t, ok)
			kit := strandtest.New(t, e)
			req := strandtest.NewRequest(tc.target)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res := kit.RequestFilter(req)
			require.NoError(t, res.Err)
			if !tc.upgrade {
				assert.Equal(t, strandtest.End, res.Decision)
				assert.Equal(t, 401, res.Status)
				assert.Equal(t, `Bearer realm="echo"`, res.Header.Get("WWW-Authenticate"))
				return
			}
			require.Equal(t, strandtest.Upgrade, res.Decision)
			c := kit.OpenRequest(req)
			c.SendText("through")
			c.ExpectText(t, "through")
		})
	}
}

// With SleepParam, ?sleep=DURATION upgrades with the sleeping echo (which
// still echoes everything, in order); bad values get 400; without
// SleepParam the parameter is ignored.
func TestSleepParam(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		on           bool
		status       int // 0: upgrade
	}{
		{"plain", "/echo", true, 0},
		{"zero", "/echo?sleep=0s", true, 0},
		{"sleep", "/echo?sleep=1ms", true, 0},
		{"off", "/echo?sleep=nonsense", false, 0},
		{"bad", "/echo?sleep=nonsense", true, 400},
		{"negative", "/echo?sleep=-1s", true, 400},
		{"too long", "/echo?sleep=1h", true, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := echoplugin.Configure(echoplugin.Options{SleepParam: tc.on}).Lookup("echo")
			require.True(t, ok)
			kit := strandtest.New(t, e)
			req := strandtest.NewRequest(tc.target)
			res := kit.RequestFilter(req)
			require.NoError(t, res.Err)
			if tc.status != 0 {
				assert.Equal(t, strandtest.End, res.Decision)
				assert.Equal(t, tc.status, res.Status)
				assert.Contains(t, string(res.Body), "bad sleep")
				return
			}
			require.Equal(t, strandtest.Upgrade, res.Decision)
			c := kit.OpenRequest(req)
			for i := range 3 {
				c.SendText(fmt.Sprint(i))
			}
			c.Expect(t, strandtest.Text("0"), strandtest.Text("1"), strandtest.Text("2"))
			c.ExpectNoMore(t)
		})
	}
}

// exampleT stands in for the *testing.T a real test passes to
// strandtest.New.
type exampleT struct{ cleanups []func() }

func (*exampleT) Helper()                           {}
func (*exampleT) Logf(string, ...any)               {}
func (*exampleT) Errorf(format string, args ...any) { fmt.Printf("FAIL: "+format+"\n", args...) }
func (*exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (e *exampleT) Cleanup(f func())                { e.cleanups = append(e.cleanups, f) }

func (e *exampleT) done() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

func ExampleNew() {
	t := &exampleT{} // in a test: the test's *testing.T
	defer t.done()

	kit := strandtest.New(t, echoplugin.New().Entry("echo"))
	c := kit.Open()
	c.SendText("hello")
	c.SendBinary([]byte{0xca, 0xfe})
	c.Wait()
	for _, f := range c.Sent() {
		fmt.Println(f)
	}
	// Output:
	// text "hello"
	// binary cafe
}

func TestBroadcastToEveryoneInOrder(t *testing.T) {
	e, ok := echoplugin.New().Lookup("broadcast")
	require.True(t, ok)
	kit := strandtest.New(t, e)
	a, b, c := kit.Open(), kit.Open(), kit.Open()
	a.Wait()
	b.Wait()
	c.Wait()
	var want []strandtest.Frame
	for i := range 50 {
		f := strandtest.Text(fmt.Sprint("a", i))
		if i%2 == 1 {
			f = strandtest.Binary(fmt.Append(nil, "a", i))
		}
		want = append(want, f)
		require.NoError(t, a.Send(f.Type, f.Bytes()))
	}
	for _, conn := range []*strandtest.Conn{a, b, c} {
		conn.Expect(t, want...) // the sender included, in order
	}
	b.Close(sdk.CloseNormal, "")
	c.Wait()
	require.NoError(t, a.Send(sdk.Text, []byte("after")))
	a.ExpectText(t, "after")
	c.ExpectText(t, "after")
	assert.Len(t, kit.Members(echoplugin.BroadcastRoom), 2, "the closed member left the room")
}
