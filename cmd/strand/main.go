// Command strand runs WebSocket and HTTP routes through plugins that run
// as processes of their own, as a strand.yaml file describes:
//
//	strand -config strand.yaml [-addr 127.0.0.1:8080]
//	strand validate -config strand.yaml
//
// It starts and supervises each plugin with a command (restarting it when
// it crashes), dials each plugin with a socket, mounts the routes, and
// serves them with GET /healthz, /readyz and /metrics. SIGINT or SIGTERM
// shut it down: connections are closed (1001), each plugin is asked to
// exit and killed after shutdown_grace. validate prints "FILE: OK" or
// each problem as FILE:LINE: message, and exits with status 1 on a
// problem. docs/strand.md describes the keys; docs/plugins.md how to
// write a plugin. To build a strand with plugins compiled in, call
// host.Main with them from a main package of your own.
package main

import "github.com/strandws/strand/host"

func main() { host.Main() }
