package strandtest_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recT is a strandtest.TB that records failures instead of failing, so the
// kit's own failure reports can be tested. Fatalf ends the calling goroutine
// as testing's does: call kit methods that may fail through run.
type recT struct {
	t        *testing.T
	mu       sync.Mutex
	errs     []string
	fatal    bool
	cleanups []func()
}

func newRecT(t *testing.T) *recT {
	r := &recT{t: t}
	t.Cleanup(r.cleanup)
	return r
}

func (r *recT) Helper()                    {}
func (r *recT) Logf(f string, args ...any) { r.t.Logf(f, args...) }

func (r *recT) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

func (r *recT) Errorf(f string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(f, args...))
	r.mu.Unlock()
}

func (r *recT) Fatalf(f string, args ...any) {
	r.Errorf(f, args...)
	r.mu.Lock()
	r.fatal = true
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls fn on a goroutine of its own, so that Fatalf can end it, and
// waits for it.
func (r *recT) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// failures returns what was reported so far and whether Fatalf was called.
func (r *recT) failures() ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...), r.fatal
}

// cleanup runs the registered cleanups, last first (the kit's Close).
func (r *recT) cleanup() {
	r.mu.Lock()
	fns := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
