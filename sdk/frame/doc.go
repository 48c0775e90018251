// Package frame is the wire form of the boundary between host and plugin:
// the FlatBuffers schema (strand.fbs, generated code in package wire), the
// codec, the stream form that batches frames, and a cache of encoded header
// sets.
//
// Frames are for crossing a process or node boundary: internal/remote (the
// host) and sdk/serve (a plugin in its own process) speak them over a Unix
// socket (docs/plugins.md). In-process delivery hands events over as Go
// values and does not encode at all (a FlatBuffers build costs more than a
// whole channel round trip).
//
// # Encoding
//
// A [Frame] is a plain struct; an [Encoder] turns it into one FlatBuffers
// buffer with a reused builder, without allocating once warm. Encoders are
// not safe for concurrent use; an [EncoderPool] (a value you create and pass
// around, never a package variable) shares them. A request snapshot's
// headers can come from a [HeaderCache] ([Request.CachedHeaders]), which
// stores a recurring header set encoded once and copies it into the frame.
//
// # Decoding untrusted bytes
//
// Go's FlatBuffers runtime has no verifier and panics on a bad offset.
// [Decode] checks every offset and length that its accessors use (root,
// vtables, fields, strings, vectors, nested tables and every element of a
// vector of tables) and returns an error wrapping [ErrMalformed] instead; a
// [View] it returns can be read without panics and without allocation. Its
// byte slices alias the decoded buffer.
//
// # Stream form and batching
//
// On a stream each frame is a little-endian uint32 length followed by the
// FlatBuffers buffer. A [Writer] batches frames into one Write; a [Reader]
// splits a stream into frames, refusing any longer than MaxFrameSize (16
// MiB unless configured) with [ErrTooLarge] before reading it.
//
// # ABI
//
// The first frame in each direction is a handshake with [Magic] and the ABI
// version ([ABIMajor].[ABIMinor]); a different major is refused. Minors only
// append fields and enum values. Method IDs and Status values are the
// architecture's table and are never renumbered.
//
// # Concurrency
//
// Decode, View, EncodedHeaders, EncoderPool and HeaderCache are safe for
// concurrent use. Encoder, Reader and Writer are not: each belongs to one
// goroutine (a connection's read loop or write loop). The package starts no
// goroutines.
package frame
