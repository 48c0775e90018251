// Package peer holds the little that every peer server in bench/peers
// shares: the -addr flag, an HTTP server that stops on SIGINT/SIGTERM, and a
// copy-on-write set of connections for broadcast.
//
// Every peer serves the same two endpoints:
//
//	/echo       each message is sent back to its sender, text as text and
//	            binary as binary, in order
//	/broadcast  each message from any client goes to every client connected
//	            there, the sender included, each sender's order kept
//
// and caps messages at MaxMessageSize.
//
// Concurrency: Set is safe for concurrent use; a snapshot it returns must
// not be modified and stays valid forever.
package peer
