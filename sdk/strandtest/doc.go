// Package strandtest drives a Strand plugin's WebSocket handlers in memory,
// for plugin authors' tests: no sockets, no server, no wsframework.
//
// A [Kit] runs one entry of a plugin on the same runtime and ordered
// executor a server uses, and plays the host: [Kit.Open] runs the
// entry's request filter on a synthetic handshake and opens a [Conn];
// the test then acts as the client ([Conn.SendText], [Conn.SendBinary],
// [Conn.Close], [Conn.Drop]) and reads what the plugin sent
// ([Conn.Sent], [Conn.NextSent], [Conn.ExpectText], [Conn.Closed]).
//
//	kit := strandtest.New(t, plugin.Entry("chat"))
//	c := kit.Open()
//	c.SendText("hi")
//	c.ExpectText(t, "hi")
//	c.Close(sdk.CloseNormal, "bye")
//	c.Wait()
//
// The kit's host behaves like the real one where a plugin can tell: a
// connection's handlers run one at a time, OnOpen first and OnClose last,
// exactly once; Write after the connection began closing returns
// [sdk.ErrClosed]; optional write-queue limits ([Options.WriteQueueLimit],
// [Options.WriteQueueBytes]) return [sdk.ErrSlowConsumer] and close with
// 1008, or [sdk.ErrTooBig] without closing for a message larger than the
// byte limit on its own; a handler panic closes with
// 1011; a text message with invalid UTF-8 closes with 1007 and one over
// [Options.MaxMessageBytes] with 1009; data the client sends after the
// server began closing is discarded; rooms work between the kit's
// connections, capped per connection as on the server
// ([Options.MaxRoomsPerConn], [sdk.ErrTooManyRooms]). As on a server, a
// request's Params come from the route pattern ([Options.Pattern]), a
// connection keeps its request without the handshake's own headers, a
// request filter's ReadBody gets [Options.RequestBody] (413 over the cap),
// a streamed answer is collected, a filter that returns without deciding
// lets the request go on, the entries a server refuses fail [New], and a
// client's Send waits while the connection's unhandled bytes are over
// [Options.MaxPendingBytes]. Buffers handed to handlers are poisoned when
// released (unless [Options.NoPoison]), so a handler that keeps msg.Data
// sees 0xDB bytes, and [Kit.Close] fails the test if a pooled buffer was
// never released.
//
// # Determinism
//
// Nothing in the kit sleeps. [Conn.Wait] returns once every event delivered
// to the connection so far has been handled, including the OnClose of a
// close a handler started, by running a barrier on the connection's
// serial queue; after it returns, everything the handlers wrote is visible
// to the caller without further locking. Helpers that wait for something
// the plugin does on its own goroutines ([Conn.NextSent], the Expect
// methods) give up after [Options.Timeout].
//
// # Concurrency
//
// Kit and Conn methods are safe for concurrent use. Messages sent to one
// Conn from one goroutine reach the plugin in call order (like the frames
// of one socket); from several goroutines, in some order. Methods that take
// a [TB] report through it and, on failure, stop the calling test with
// Fatalf, so call them from the goroutine running that test; methods that
// take none report through the kit's TB (Wait stops the kit's test, the
// Send methods only mark it failed, so they may be called from any
// goroutine). [Frame] values are copies owned by the caller.
package strandtest
