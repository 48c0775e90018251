package remote_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind. Run
// with benchChildEnv set, the test binary is a benchmark's child process
// instead (bench_test.go).
func TestMain(m *testing.M) {
	if mode := os.Getenv(benchChildEnv); mode != "" {
		os.Exit(benchChild(mode))
	}
	goleak.VerifyTestMain(m)
}
