//go:build race

package tests

// raceEnabled: the test binary runs under the race detector, and builds
// strand and its plugins with it too.
const raceEnabled = true
