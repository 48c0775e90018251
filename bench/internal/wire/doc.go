// Package wire is the load generator's message format: every payload carries
// the sending connection's id, a per-sender sequence number and a send
// timestamp in its first bytes, followed by a deterministic fill, so a
// receiver can tell a corrupted, foreign, duplicated, lost or reordered
// message from a good one.
//
// Binary payloads use a 20-byte little-endian header; text payloads use a
// 40-character lower-case hex header and printable ASCII fill, so they are
// valid UTF-8. JSON payloads are a JSON object,
// {"conn":"…","seq":"…","ts":"…","user":"user-…","text":"…"}, whose text is
// common English words in a deterministic order: compressible like chat
// messages, for permessage-deflate benchmarks, and checked as strictly.
//
// Concurrency: Codec is immutable after NewCodec and safe for concurrent use.
// Tracker is not safe for concurrent use: each receiving connection owns one.
// Decode returns no slices; the payload passed to it may be reused as soon as
// it returns.
package wire
