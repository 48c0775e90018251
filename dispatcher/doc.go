// Package dispatcher runs tasks: it knows nothing of networking or
// WebSockets, a task is a function and its argument.
//
// It has two executors:
//
//   - [Sharded], the ordered executor. Tasks submitted with the same key run
//     one at a time, in the order one goroutine submitted them; tasks of
//     different keys run in parallel. Keys (connection IDs) are hashed onto
//     many shards; a shard is a bounded serial queue, and shards are scheduled
//     onto a small set of worker goroutines (2×GOMAXPROCS by default). A key
//     whose task blocks (runs longer than BlockThreshold, 10ms by default)
//     is detached from its shard onto a bounded queue of its own, run in
//     order by the worker it blocks, until its tasks run fast again, and a
//     worker is added so that the base number stay free; workers beyond the
//     base exit when idle, and the set is capped (MaxWorkers, 1024 by
//     default). So a blocked task stalls only its own key, until the cap is
//     reached. It reports panicking tasks and tasks that run longer than a
//     threshold, and applies backpressure when a key's queue is full.
//   - [Pool], the unordered worker pool for HTTP phases: a fixed set of
//     workers behind a bounded queue, with an overflow policy and counters.
//
// # Concurrency contract
//
// Every method of [Sharded] and [Pool] is safe for concurrent use by any
// number of goroutines. Both own their goroutines: they start them in their
// constructor and stop and wait for them in Close, which is idempotent and
// honours its context's deadline. After Close has begun, every submission
// fails with [ErrClosed]; everything accepted before still runs.
//
// Tasks run on the executors' goroutines. A task blocked forever holds a
// worker forever: for [Pool] one of its fixed workers; for [Sharded] its
// key only (its shard goes on without it), but each blocked task takes one
// of at most MaxWorkers workers, and with detaching off (a negative
// BlockThreshold) it stalls its whole shard. A task may submit further
// tasks, but must not block in [Sharded.Submit] on its own key (it would
// wait for itself); use [Sharded.TrySubmit] or [Sharded.SubmitLast] there. A panicking task is recovered and counted; the
// worker goes on.
//
// The package keeps no mutable state at package level: every executor is an
// independent value.
package dispatcher

import "errors"

var (
	// ErrClosed is returned by every submission after Close has begun.
	ErrClosed = errors.New("dispatcher: closed")
	// ErrFull is returned when a bounded queue has no room and the call does
	// not wait for it.
	ErrFull = errors.New("dispatcher: queue full")
)

// Task is one unit of work: Fn(Arg). Fn must not be nil (a nil Fn is reported
// as a panic when the task runs).
//
// A Task is a plain value. Built from a function that captures nothing (such
// as a package-level func) and a pointer Arg, it submits without allocating;
// a closure that captures variables, or a non-pointer Arg, may allocate when
// the Task is built.
type Task struct {
	Fn  func(arg any)
	Arg any
}
