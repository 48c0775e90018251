// Package serve runs an sdk.Plugin in its own process, out of the host's:
// the plugin binary's main calls Run, which connects to the host over a
// Unix socket, performs the handshake (its name, its entries and the
// phases each handles, its frame size cap and its credit window; the host
// answers with the plugin's settings or a refusal), and then runs the
// plugin's handlers on the plugin's own ordered dispatcher, sending its
// sends, broadcasts, joins, leaves and closes back to the host as frames.
//
// Before it reaches the host, Run (and Dial, Conn and Listen) refuses a
// plugin with an entry that an in-process server's Route would refuse (no
// handlers, OnMessage with OnText or OnBinary), with the same error, and
// then marks the plugin's entries mounted as Route does.
//
// The same *sdk.Plugin value runs in-process (mounted on a
// wsframework.Server) or out-of-process (served by Run) without change. The
// protocol uses only the socket, never stdin or stdout, so a plugin may
// print freely. See docs/plugins.md.
package serve
