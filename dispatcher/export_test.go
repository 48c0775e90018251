package dispatcher

// Test hooks; they are not part of the API.

// setWaitHook makes every Submit that starts waiting for room call f. Set it
// before any submission.
func setWaitHook(s *Sharded, f func()) { s.waitHook = f }

// numShards reports how many shards s has after rounding.
func numShards(s *Sharded) int { return len(s.shards) }

// numWorkers reports how many worker goroutines s runs now.
func numWorkers(s *Sharded) int {
	s.emu.Lock()
	defer s.emu.Unlock()
	return s.nlive
}
