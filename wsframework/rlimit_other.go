//go:build !unix

package wsframework

// openFileLimit: no open-file limit to read on this platform.
func openFileLimit() (uint64, bool) { return 0, false }
