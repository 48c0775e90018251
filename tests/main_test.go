package tests

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/strandws/strand/wsframework"
)

// readerMode is the ReaderMode that startServer and startChat give a server
// whose Config leaves it zero. TestMain sets it before each run of the
// package's tests and nothing else writes it.
var readerMode = wsframework.ReaderGoroutine

// readerModes are the modes the whole suite runs in, one after the other,
// under the one test command.
var readerModes = []wsframework.ReaderMode{wsframework.ReaderGoroutine, wsframework.ReaderPoll}

// TestMain runs every test once per reader mode and fails the package if
// any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(eachReader{m}) }

type eachReader struct{ m *testing.M }

func (e eachReader) Run() int {
	defer removeBuilds() // programs built once for both runs
	code := 0
	for _, mode := range readerModes {
		readerMode = mode
		fmt.Printf("=== reader mode %v\n", mode)
		if c := e.m.Run(); c != 0 {
			fmt.Printf("--- FAIL: reader mode %v\n", mode)
			code = c
		}
	}
	return code
}
