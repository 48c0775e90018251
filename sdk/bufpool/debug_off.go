//go:build !strand_debug

package bufpool

const debugDefault = false
