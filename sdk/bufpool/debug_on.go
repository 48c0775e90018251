//go:build strand_debug

package bufpool

// Built with -tags strand_debug: every pool poisons released buffers.
const debugDefault = true
