package wsframework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Health and readiness. A Server is alive until its Shutdown has finished,
// and ready while it serves at least one listener (Serve, ServeTLS), is not
// shutting down, and every check registered with AddReadinessCheck passes.
// Everything lives on the Server: two Servers in one process have their
// own.

// ErrNotListening is Ready's error while the Server serves no listener:
// before Serve (or ServeTLS) starts, or after its listener failed.
var ErrNotListening = errors.New("wsframework: not listening")

// readyzTimeout bounds one run of the readiness checks for ReadyzHandler,
// within the request's own context.
const readyzTimeout = 5 * time.Second

// health is a Server's readiness registry and liveness state.
type health struct {
	mu     sync.Mutex // guards checks
	checks []readinessCheck

	listening atomic.Int32 // Serve calls accepting now
	done      atomic.Bool  // Shutdown has finished
}

type readinessCheck struct {
	name  string
	check func(context.Context) error
}

// AddReadinessCheck registers check under name: while it returns an error
// the Server is not ready (Ready, ReadyzHandler). Checks run in the order
// they were added, one at a time, on the goroutine asking (no goroutine of
// their own), so each must return when its context ends. A check may be
// added at any time. It panics if name is empty or already registered, or
// if check is nil, as http.ServeMux does for a bad pattern.
func (s *Server) AddReadinessCheck(name string, check func(context.Context) error) {
	if name == "" || check == nil {
		panic("wsframework: AddReadinessCheck needs a name and a check")
	}
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	for _, c := range s.health.checks {
		if c.name == name {
			panic(fmt.Sprintf("wsframework: readiness check %q registered twice", name))
		}
	}
	s.health.checks = append(s.health.checks, readinessCheck{name: name, check: check})
}

// Ready reports whether the Server is ready for traffic: nil when it
// serves at least one listener, is not shutting down and every registered
// check passes with ctx. Otherwise ErrServerClosed (Shutdown or Close has
// begun), ErrNotListening, or the failing checks' errors joined, each
// prefixed with its name (errors.Is sees through them).
func (s *Server) Ready(ctx context.Context) error {
	_, err := s.ready(ctx)
	return err
}

// ready is Ready, with the names of the failing checks.
func (s *Server) ready(ctx context.Context) (failed []string, err error) {
	if s.isDraining() {
		return nil, ErrServerClosed
	}
	if s.health.listening.Load() == 0 {
		return nil, ErrNotListening
	}
	s.health.mu.Lock()
	checks := slices.Clone(s.health.checks)
	s.health.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := runCheck(ctx, c); err != nil {
			failed = append(failed, c.name)
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	if s.isDraining() { // Shutdown began while the checks ran
		return nil, ErrServerClosed
	}
	return failed, errors.Join(errs...)
}

// runCheck runs one check; a panic is its failure.
func runCheck(ctx context.Context, c readinessCheck) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return c.check(ctx)
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// HealthzHandler returns a liveness handler: 200 "ok" until the Server's
// Shutdown (or Close) has finished, 503 after. Draining is alive: a
// process shutting down gracefully is not to be restarted for it. Mount
// it with Handle, on the public listener or another.
func (s *Server) HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s.health.done.Load() {
			plainAnswer(w, http.StatusServiceUnavailable, "shut down")
			return
		}
		plainAnswer(w, http.StatusOK, "ok")
	})
}

// ReadyzHandler returns a readiness handler: 200 "ok" when Ready passes
// (the checks run with the request's context, for at most 5 seconds), 503
// otherwise, with the reason: "shutting down", "not listening", or the
// failing checks' names (their errors are not shown to the caller; they
// are logged at debug level).
func (s *Server) ReadyzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
		defer cancel()
		failed, err := s.ready(ctx)
		switch {
		case err == nil:
			plainAnswer(w, http.StatusOK, "ok")
			return
		case errors.Is(err, ErrServerClosed):
			plainAnswer(w, http.StatusServiceUnavailable, "not ready: shutting down")
		case errors.Is(err, ErrNotListening):
			plainAnswer(w, http.StatusServiceUnavailable, "not ready: not listening")
		default:
			plainAnswer(w, http.StatusServiceUnavailable, "not ready: "+strings.Join(failed, ", "))
		}
		if s.cfg.Logger.Enabled(r.Context(), slog.LevelDebug) {
			s.cfg.Logger.Debug("strand: not ready", "err", err)
		}
	})
}

// plainAnswer writes a short, uncached text answer.
func plainAnswer(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}
