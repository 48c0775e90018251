package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// builds are the programs built by buildProgram, once per run of the test
// binary (TestMain runs the tests once per reader mode; both runs share the
// binaries). removeBuilds deletes them when TestMain is done.
var builds struct {
	mu   sync.Mutex
	dir  string
	byPk map[string]*builtProgram
}

type builtProgram struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// buildProgram builds the main package pkg (an import path) with go build
// and returns the binary's path. The first call for pkg builds it; later
// calls, from either reader mode's run, return the same binary (or the same
// failure).
func buildProgram(t *testing.T, pkg string) string {
	t.Helper()
	return buildProgramWith(t, pkg, false)
}

// buildProgramWith is buildProgram, with the race detector when race is
// set (a binary of its own).
func buildProgramWith(t *testing.T, pkg string, race bool) string {
	t.Helper()
	key := pkg
	if race {
		key = "race:" + pkg
	}
	builds.mu.Lock()
	if builds.byPk == nil {
		builds.byPk = make(map[string]*builtProgram)
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "strand-tests-bin-")
		if err != nil {
			builds.mu.Unlock()
			require.NoError(t, err)
		}
		builds.dir = dir
	}
	b, ok := builds.byPk[key]
	if !ok {
		b = &builtProgram{}
		builds.byPk[key] = b
	}
	dir := builds.dir
	builds.mu.Unlock()

	b.once.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			b.err = err
			return
		}
		// Named after the whole import path: examples/echo/plugin and
		// examples/chat/plugin are both "plugin".
		b.path = dir + "/" + strings.ReplaceAll(strings.TrimPrefix(key, "github.com/strandws/strand/"), "/", "_")
		args := []string{"build", "-o", b.path}
		if race {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.out, b.err = exec.CommandContext(ctx, gobin, append(args, pkg)...).CombinedOutput()
	})
	require.NoError(t, b.err, "go build %s:\n%s", pkg, b.out)
	return b.path
}

// removeBuilds deletes the binaries buildProgram built. TestMain calls it
// after the last run.
func removeBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir, builds.byPk = "", nil
	}
}

// child is a program started by startChild.
type child struct {
	cmd    *exec.Cmd
	out    *childOutput
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, once exited is closed
	killed bool          // kill was called: the exit is expected
}

// kill stops the process with SIGKILL, as a crash would, and waits for it.
func (c *child) kill() {
	c.killed = true
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// startChild starts bin with args, its stdout and stderr captured, and
// stops it in the test's cleanup: SIGTERM, then SIGKILL if it has not
// exited within stopWait; it waits for the process either way. A program
// stopped by SIGTERM must exit with status 0. The captured output is
// logged if the test failed.
func startChild(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	const stopWait = 20 * time.Second
	c := &child{cmd: exec.Command(bin, args...), out: &childOutput{grew: make(chan struct{}, 1)}, exited: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.WaitDelay = 5 * time.Second // output copying never outlives the process by long
	require.NoError(t, c.cmd.Start())
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
			if !c.killed {
				t.Errorf("%s exited before the test ended: %v", bin, c.err)
			}
		default:
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
				assert.NoError(t, c.err, "%s after SIGTERM", bin)
			case <-time.After(stopWait):
				t.Errorf("%s still running %v after SIGTERM: killed", bin, stopWait)
				_ = c.cmd.Process.Kill()
				<-c.exited
			}
		}
		if t.Failed() {
			t.Logf("output of %s %q:\n%s", bin, args, c.out.bytes())
		}
	})
	return c
}

// waitLine waits for an output line matching re and returns its
// submatches. It fails the test if the process exits first or no line
// matches within timeout.
func (c *child) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, line := range bytes.Split(c.out.bytes(), []byte("\n")) {
			if m := re.FindSubmatch(line); m != nil {
				s := make([]string, len(m))
				for i := range m {
					s[i] = string(m[i])
				}
				return s
			}
		}
		select {
		case <-c.out.grew:
		case <-c.exited:
			t.Fatalf("%s exited (%v) before printing a line matching %v:\n%s", c.cmd.Path, c.err, re, c.out.bytes())
		case <-deadline:
			t.Fatalf("%s printed no line matching %v within %v:\n%s", c.cmd.Path, re, timeout, c.out.bytes())
		}
	}
}

// childOutput collects a child's output; grew gets a token on each write.
type childOutput struct {
	mu   sync.Mutex
	b    []byte
	grew chan struct{}
}

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.b = append(o.b, p...)
	o.mu.Unlock()
	select {
	case o.grew <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (o *childOutput) bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.b)
}
