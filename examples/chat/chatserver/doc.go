// Package chatserver assembles the chat example: a wsframework.Server with
// the chat plugin on GET /ws, the chat page (embedded in the binary) on
// GET /, and the Server's own GET /healthz and GET /readyz
// (wsframework.Server.HealthzHandler, ReadyzHandler). The example's main
// and the integration tests both build their server here, so they serve
// the same thing.
//
// # Concurrency
//
// New returns a Chat whose Server is safe for concurrent use (see
// wsframework.Server); the caller starts it (Serve, ListenAndServe) and
// stops it (Shutdown). The page is served from memory and holds no state.
package chatserver
