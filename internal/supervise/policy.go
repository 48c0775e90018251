package supervise

import "time"

// Policy is when a plugin is started again after its session ended: an
// exponential backoff and a crash-loop breaker. The zero value is valid:
// each zero field takes its default.
type Policy struct {
	// Initial is the delay before the first restart after a crash
	// (DefaultInitial); each further crash in a row doubles it, up to Max.
	Initial time.Duration
	// Max caps the delay (DefaultMax, 30 s); it is also the delay of a
	// plugin marked failed.
	Max time.Duration
	// Failures crashes within Window trip the breaker: the plugin is
	// marked failed (DefaultFailures, DefaultWindow).
	Failures int
	Window   time.Duration
	// StableAfter is how long a session must last for the crashes before it
	// to be forgiven: the delay starts from Initial again and a failed
	// plugin is no longer failed (DefaultStableAfter).
	StableAfter time.Duration
}

// Policy defaults.
const (
	DefaultInitial     = 20 * time.Millisecond
	DefaultMax         = 30 * time.Second
	DefaultFailures    = 5
	DefaultWindow      = 60 * time.Second
	DefaultStableAfter = 10 * time.Second
)

func (p Policy) withDefaults() Policy {
	if p.Initial <= 0 {
		p.Initial = DefaultInitial
	}
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.Failures <= 0 {
		p.Failures = DefaultFailures
	}
	if p.Window <= 0 {
		p.Window = DefaultWindow
	}
	if p.StableAfter <= 0 {
		p.StableAfter = DefaultStableAfter
	}
	return p
}

// breaker applies a Policy to one plugin's session ends. Times are
// monotonic readings (nanoseconds) passed in, so tests drive it without a
// real clock. Not safe for concurrent use: its supervisor's loop owns it.
type breaker struct {
	p       Policy
	streak  int     // crashes since the last stable session
	ends    []int64 // crash times within Window, oldest first (at most Failures)
	failed  bool
	tripped string // why it is failed
}

func newBreaker(p Policy) *breaker {
	p = p.withDefaults()
	return &breaker{p: p, ends: make([]int64, 0, p.Failures)}
}

// stable records that the session running now has lasted StableAfter:
// the crashes before it are forgiven.
func (b *breaker) stable() {
	b.streak = 0
	b.ends = b.ends[:0]
	b.failed = false
	b.tripped = ""
}

// crashed records a session (or a start) that ended at now; permanent
// means a restart cannot fix it (the plugin refused the protocol
// version). It returns the delay before the next start, and whether this
// crash is the one that marked the plugin failed.
func (b *breaker) crashed(now int64, permanent bool) (delay time.Duration, tripped bool) {
	b.streak++
	cut := now - int64(b.p.Window)
	i := 0
	for i < len(b.ends) && b.ends[i] <= cut {
		i++
	}
	b.ends = append(b.ends[:0], b.ends[i:]...)
	if len(b.ends) == b.p.Failures {
		b.ends = append(b.ends[:0], b.ends[1:]...)
	}
	b.ends = append(b.ends, now)
	wasFailed := b.failed
	switch {
	case permanent:
		b.failed, b.tripped = true, "its handshake was refused for a reason a restart cannot change"
	case len(b.ends) >= b.p.Failures:
		b.failed, b.tripped = true, "crash loop"
	}
	if b.failed {
		return b.p.Max, !wasFailed
	}
	d := b.p.Initial
	for n := 1; n < b.streak && d < b.p.Max; n++ {
		d *= 2
	}
	return min(d, b.p.Max), false
}

// retry returns the delay before dialling again a plugin that could not
// be reached: the backoff, without counting towards the breaker.
func (b *breaker) retry() time.Duration {
	b.streak++
	d := b.p.Initial
	for n := 1; n < b.streak && d < b.p.Max; n++ {
		d *= 2
	}
	return min(d, b.p.Max)
}
