// Package remote is the host's side of an out-of-process plugin: a Host
// speaks the plugin protocol (sdk/frame's stream form over a Unix socket)
// with one plugin process at a time and exposes it as an ordinary
// *sdk.Plugin, the proxy plugin, whose entries mirror the plugin's and whose
// Go handlers forward every event as a frame. A wsframework.Server mounts
// the proxy's entries on routes like any local plugin's, so the server's
// per-connection ordered dispatch orders each connection's events before
// they are encoded, and a full credit window pauses reading that
// connection's socket like a full local queue does.
//
// The protocol is described in docs/plugins.md.
package remote
