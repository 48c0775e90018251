package peer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxMessageSize is the largest message every peer accepts.
const MaxMessageSize = 1 << 20

// Addr registers and parses the -addr flag.
func Addr() string {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	return *addr
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Serve runs a net/http server with h on -addr until SIGINT/SIGTERM and
// returns the process exit code.
func Serve(name string, h http.Handler) int {
	addr := Addr()
	ctx, stop := SignalContext()
	defer stop()
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "%s: serving /echo and /broadcast on %s\n", name, addr)
	select {
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	case <-ctx.Done():
	}
	// Hijacked WebSocket connections are not tracked by Shutdown; the
	// process exits right after, which closes them.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(os.Stderr, "%s: shutdown: %v\n", name, err)
	}
	return 0
}

// Set is a copy-on-write set: Add and Remove copy the member list, so
// broadcasting (Snapshot) takes no lock and allocates nothing.
type Set[T comparable] struct {
	mu      sync.Mutex
	members atomic.Pointer[[]T]
}

// Add inserts v.
func (s *Set[T]) Add(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.Snapshot()
	next := make([]T, len(old), len(old)+1)
	copy(next, old)
	next = append(next, v)
	s.members.Store(&next)
}

// Remove deletes v if present.
func (s *Set[T]) Remove(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.Snapshot()
	next := make([]T, 0, len(old))
	for _, m := range old {
		if m != v {
			next = append(next, m)
		}
	}
	s.members.Store(&next)
}

// Snapshot returns the current members; do not modify the slice.
func (s *Set[T]) Snapshot() []T {
	if p := s.members.Load(); p != nil {
		return *p
	}
	return nil
}
