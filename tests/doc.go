// Package tests holds Strand's black-box integration tests: a real
// wsframework.Server on 127.0.0.1, real TCP clients (gobwas/ws and a raw frame
// writer that can send what a well-behaved client never would), the echo
// example's plugin and small probe plugins, all under the race detector.
// TestHostileEcho also builds the echo example with go build and attacks the
// program as a child process (exec_helpers_test.go), reading its heap from
// its debug listener.
//
// # Concurrency
//
// Top-level tests run one at a time (so the ones that check for leaked
// goroutines see only their own); conformance subtests run in parallel
// against one server. Every server a test starts is shut down by the test's
// cleanup, and TestMain fails the run if any goroutine is left.
package tests
