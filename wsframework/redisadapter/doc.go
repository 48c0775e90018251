// Package redisadapter connects the rooms of several wsframework Servers
// (nodes) through one standalone Redis: Adapter implements
// wsframework.Adapter, HistoryAdapter and PresenceAdapter.
//
// Each publish runs one Lua script that numbers the message in its room
// (an offset within the room's epoch), appends it to the room's history
// stream and publishes it. Each node delivers a room's messages in offset
// order, recovers a gap (a dropped Pub/Sub message, a full queue, a lost
// connection, a quiet room found behind by the periodic position check)
// from the history, and reports what is gone as a gap
// (wsframework.GapHandler). Presence entries carry a payload and vanish
// within two heartbeats of their node's death. Ready and Stats are for a
// readiness probe and metrics.
//
// Redis Cluster and Sentinel are not supported. docs/cluster.md describes
// the design, its guarantees and their limits.
package redisadapter
