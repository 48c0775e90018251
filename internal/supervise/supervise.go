// Package supervise runs the plugins of a strand host: for a plugin with a
// command, a private socket directory and a Unix listener, the child
// process started with the socket's path in its environment, the
// connection it dials handed to the host side of the protocol, and a
// restart with exponential backoff whenever the session ends (the plugin
// exited, was killed, failed its handshake or stopped answering pings),
// under a crash-loop breaker. For a plugin run by someone else (a socket
// path), the supervisor dials that path again with the same backoff and
// supervises no process.
//
// A child's stderr and stdout lines become log lines tagged with the
// plugin's name (stream=stderr or stream=stdout); the protocol never uses
// stdout. Children are in a process group of their own, get SIGKILL when
// the host dies (Linux: Pdeathsig), and are always waited for.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/internal/clock"
)

// Host is the host side of one plugin's protocol (remote.Host).
type Host interface {
	// Attach runs the handshake and the session over conn until it ends,
	// closes conn, and returns why.
	Attach(ctx context.Context, conn net.Conn) error
	// Up reports whether a session is established now.
	Up() bool
	// Goodbye asks the plugin to finish and exit, without waiting.
	Goodbye()
}

// Defaults of zero Config fields.
const (
	DefaultGrace       = 5 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Config configures one plugin's supervisor.
type Config struct {
	Name string
	// Command is the plugin's argv: Command[0] is looked up like exec.Command
	// does (a relative path with a slash is taken relative to the host's
	// working directory, not Dir). Empty means Socket.
	Command []string
	// Env are extra KEY=VALUE pairs on top of the host's environment; the
	// socket variable is set last.
	Env []string
	// Dir is the child's working directory; empty means the host's.
	Dir string
	// SocketEnv is the environment variable that tells the child the
	// socket path to dial (serve.EnvSocket).
	SocketEnv string
	// SocketDir is where the private socket directory is made; empty
	// means os.TempDir().
	SocketDir string
	// Socket is the path of a plugin run by someone else: it is dialled,
	// and no process is supervised.
	Socket string
	Host   Host
	Logger *slog.Logger
	Policy Policy
	// Grace is how long Stop waits for the plugin to exit after Goodbye
	// before it kills it (DefaultGrace).
	Grace time.Duration
	// DialTimeout bounds a started child's dialling in, and the dial of a
	// Socket (DefaultDialTimeout).
	DialTimeout time.Duration
	// Permanent reports whether an error from Attach is one a restart
	// cannot fix (a refused protocol version): the plugin is marked failed
	// at once and retried only at Policy.Max. Nil means none is.
	Permanent func(error) bool
	// OnFail, if set, is called (on the supervisor's goroutine) when the
	// breaker marks the plugin failed, with the crash that did it.
	OnFail func(err error)
}

// Supervisor runs one plugin. Its goroutine and child process are stopped
// by Stop.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	clk    *clock.Clock
	b      *breaker
	dir    string // the private socket directory (command mode)
	path   string // the socket path
	l      *net.UnixListener
	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{} // closed by Stop: the loop ends its session and returns
	done   chan struct{} // closed when the loop has returned

	restarts atomic.Uint64
	failed   atomic.Bool
	pid      atomic.Int64 // the running child's pid, 0 when none
	stopOnce sync.Once
	stopCtx  context.Context // Stop's, set before stop is closed
}

// Stats is a supervisor's state, for metrics.
type Stats struct {
	Restarts uint64 // starts (or dials) after the first
	Up       bool   // a session is established
	Failed   bool   // the crash-loop breaker is tripped
}

// Start makes the socket (command mode) and starts supervising.
func Start(cfg Config) (*Supervisor, error) {
	if cfg.Host == nil || cfg.Name == "" {
		return nil, errors.New("supervise: Config needs Name and Host")
	}
	if (len(cfg.Command) == 0) == (cfg.Socket == "") {
		return nil, fmt.Errorf("supervise: plugin %q: exactly one of Command and Socket", cfg.Name)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	s := &Supervisor{
		cfg:  cfg,
		log:  cfg.Logger.With("plugin", cfg.Name),
		clk:  clock.New(),
		b:    newBreaker(cfg.Policy),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if len(cfg.Command) > 0 {
		if err := s.listen(); err != nil {
			return nil, err
		}
	} else {
		s.path = cfg.Socket
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

// listen makes a directory only this user can enter and a listener in it.
func (s *Supervisor) listen() error {
	base := s.cfg.SocketDir
	if base == "" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "strand-")
	if err != nil {
		return fmt.Errorf("supervise: plugin %q: socket directory: %w", s.cfg.Name, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // MkdirTemp makes 0700 already; umask cannot widen it
		_ = os.RemoveAll(dir)
		return fmt.Errorf("supervise: plugin %q: socket directory: %w", s.cfg.Name, err)
	}
	path := filepath.Join(dir, "plugin.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("supervise: plugin %q: %w", s.cfg.Name, err)
	}
	s.dir, s.path, s.l = dir, path, l
	return nil
}

// SocketPath is the socket the plugin dials (command mode) or that is
// dialled (socket mode).
func (s *Supervisor) SocketPath() string { return s.path }

// PID is the running child's process ID, 0 when none runs.
func (s *Supervisor) PID() int { return int(s.pid.Load()) }

// Stats returns the supervisor's state.
func (s *Supervisor) Stats() Stats {
	return Stats{Restarts: s.restarts.Load(), Up: s.cfg.Host.Up(), Failed: s.failed.Load()}
}

// Ready is a readiness check: nil while the plugin's session is up.
func (s *Supervisor) Ready(context.Context) error {
	if s.failed.Load() {
		return fmt.Errorf("plugin %q failed (crash loop)", s.cfg.Name)
	}
	if !s.cfg.Host.Up() {
		return fmt.Errorf("plugin %q is down", s.cfg.Name)
	}
	return nil
}

// Stop says goodbye to the plugin, waits up to Grace (or until ctx ends)
// for it to exit, kills what is left, waits for the child and removes the
// socket directory. It is idempotent; later calls wait for the first.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.stopCtx = ctx
		close(s.stop)
		s.cancel()
	})
	<-s.done
	return nil
}

// errStopped ends a session that Stop ended.
var errStopped = errors.New("supervise: stopped")

func (s *Supervisor) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// loop starts (or dials) the plugin, runs its session, and starts it again
// after the breaker's delay, until Stop.
func (s *Supervisor) loop() {
	defer close(s.done)
	defer s.cleanup()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.restarts.Add(1)
		}
		var err error
		var counts bool // the end is a crash the breaker counts
		if len(s.cfg.Command) > 0 {
			counts, err = s.runChild()
		} else {
			counts, err = s.dialSession()
		}
		if s.stopping() {
			return
		}
		var delay time.Duration
		if counts {
			var tripped bool
			delay, tripped = s.b.crashed(s.clk.Now(), s.cfg.Permanent != nil && s.cfg.Permanent(err))
			// Said before Failed is published: whoever sees the plugin
			// failed (Stats, Ready) finds the line and OnFail's effect.
			if tripped {
				s.log.Error("strand: plugin failed: retried only every "+delay.String(), "reason", s.b.tripped, "err", err)
				if s.cfg.OnFail != nil {
					s.cfg.OnFail(err)
				}
			} else {
				s.log.Warn("strand: plugin down: restarting", "err", err, "in", delay)
			}
			s.failed.Store(s.b.failed)
		} else {
			delay = s.b.retry()
			s.log.Warn("strand: plugin unreachable: retrying", "socket", s.path, "err", err, "in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return
		}
	}
}

// cleanup closes the listener and removes the socket directory.
func (s *Supervisor) cleanup() {
	if s.l != nil {
		_ = s.l.Close()
		_ = os.RemoveAll(s.dir)
	}
}

type accepted struct {
	c   net.Conn
	err error
}

// drain closes connections left in the listener's queue by an earlier
// child, so that the next one accepted is the new child's.
func (s *Supervisor) drain() {
	_ = s.l.SetDeadline(time.Now())
	for {
		c, err := s.l.Accept()
		if err != nil {
			break
		}
		_ = c.Close()
	}
	_ = s.l.SetDeadline(time.Time{})
}

// runChild starts the child, takes the connection it dials and runs the
// session until it ends or Stop. It returns whether the breaker counts the
// end (always, but for Stop), and why it ended.
func (s *Supervisor) runChild() (bool, error) {
	s.drain()
	argv := s.cfg.Command
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), s.cfg.Env...), s.cfg.SocketEnv+"="+s.path)
	cmd.Dir = s.cfg.Dir
	stdout, stderr := newLineLog(s.log, "stdout"), newLineLog(s.log, "stderr")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // a grandchild holding the pipes does not hold Wait
	if err := cmd.Start(); err != nil {
		return true, fmt.Errorf("start %q: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	s.pid.Store(int64(pid))
	s.log.Info("strand: plugin started", "pid", pid, "socket", s.path)
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		stdout.flush()
		stderr.flush()
		exited <- err
	}()
	defer s.pid.Store(0)
	kill := func() { killGroup(cmd.Process) }

	connc := make(chan accepted, 1)
	_ = s.l.SetDeadline(time.Now().Add(s.cfg.DialTimeout))
	go func() {
		c, err := s.l.Accept()
		connc <- accepted{c, err}
	}()
	unblock := func() {
		_ = s.l.SetDeadline(time.Now())
		if r := <-connc; r.c != nil {
			_ = r.c.Close()
		}
	}
	var conn net.Conn
	select {
	case r := <-connc:
		if r.err != nil {
			kill()
			ew := <-exited
			return true, fmt.Errorf("plugin did not dial %s within %v (killed: %v)", s.path, s.cfg.DialTimeout, ew)
		}
		conn = r.c
	case ew := <-exited:
		unblock()
		return true, fmt.Errorf("plugin exited before dialling in: %v", exitText(ew))
	case <-s.stop:
		unblock()
		s.endChild(cmd, exited, nil, nil)
		return false, errStopped
	}
	_ = s.l.SetDeadline(time.Time{})

	attached, acancel := s.attach(conn)
	defer acancel()
	stable := time.NewTimer(s.b.p.StableAfter)
	defer stable.Stop()
	for {
		select {
		case err := <-attached:
			// The session is over: a child still running is hung or
			// confused (a ping timeout, a bad frame): kill it.
			kill()
			ew := <-exited
			return true, fmt.Errorf("session ended: %w (plugin process: %s)", err, exitText(ew))
		case ew := <-exited:
			// Its socket closed with it: the session ends.
			acancel()
			err := <-attached
			return true, fmt.Errorf("plugin exited: %s (session: %w)", exitText(ew), err)
		case <-stable.C:
			s.markStable()
		case <-s.stop:
			s.endChild(cmd, exited, acancel, attached)
			return false, errStopped
		}
	}
}

// attach runs the host's session on conn on a goroutine of its own: the
// channel reports how it ended; cancel ends it.
func (s *Supervisor) attach(conn net.Conn) (<-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	attached := make(chan error, 1)
	go func() { attached <- s.cfg.Host.Attach(ctx, conn) }()
	return attached, cancel
}

// markStable clears the crash-loop count once a session has stayed up for
// StableAfter.
func (s *Supervisor) markStable() {
	if s.cfg.Host.Up() {
		s.b.stable()
		s.failed.Store(false)
	}
}

// endChild is Stop's part for a running child: goodbye, the grace period,
// then SIGKILL, and the waits.
func (s *Supervisor) endChild(cmd *exec.Cmd, exited <-chan error, acancel context.CancelFunc, attached <-chan error) {
	if attached == nil { // it never dialled in: nothing to say goodbye on
		killGroup(cmd.Process)
		s.log.Info("strand: plugin stopped", "exit", exitText(<-exited))
		return
	}
	s.cfg.Host.Goodbye()
	grace := time.NewTimer(s.cfg.Grace)
	defer grace.Stop()
	var ew error
	select {
	case ew = <-exited:
	case <-grace.C:
		s.log.Warn("strand: plugin did not exit within the grace period: killed", "grace", s.cfg.Grace)
		killGroup(cmd.Process)
		ew = <-exited
	case <-s.stopCtx.Done():
		killGroup(cmd.Process)
		ew = <-exited
	}
	acancel()
	<-attached
	s.log.Info("strand: plugin stopped", "exit", exitText(ew))
}

// dialSession dials a plugin run by someone else and runs the session. A
// failed dial is not a crash the breaker counts; an ended session is.
func (s *Supervisor) dialSession() (bool, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	conn, err := d.DialContext(s.ctx, "unix", s.path)
	if err != nil {
		return false, err
	}
	attached, acancel := s.attach(conn)
	defer acancel()
	stable := time.NewTimer(s.b.p.StableAfter)
	defer stable.Stop()
	for {
		select {
		case err := <-attached:
			return true, fmt.Errorf("session ended: %w", err)
		case <-stable.C:
			s.markStable()
		case <-s.stop:
			s.cfg.Host.Goodbye()
			grace := time.NewTimer(s.cfg.Grace)
			select {
			case <-attached:
			case <-grace.C:
				acancel()
				<-attached
			case <-s.stopCtx.Done():
				acancel()
				<-attached
			}
			grace.Stop()
			return false, errStopped
		}
	}
}

// exitText describes a Wait result.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
