package dispatcher_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/strandws/strand/dispatcher"
)

// event is what a host hands the executor for one connection event.
type event struct {
	conn uint64
	kind string
	log  *[]string // touched only by this connection's tasks
}

// handle is static, so Task{Fn: handle, Arg: &event{...}} costs nothing to
// submit beyond the event itself.
func handle(arg any) {
	ev := arg.(*event)
	*ev.log = append(*ev.log, ev.kind)
}

func ExampleSharded() {
	s, err := dispatcher.NewSharded(dispatcher.ShardedConfig{})
	if err != nil {
		panic(err)
	}
	const conn = 17 // the connection ID is the key
	var log []string
	ctx := context.Background()
	for _, kind := range []string{"open", "message 1", "message 2"} {
		// Submit waits while the connection's shard is full: the reader
		// pauses instead of dropping.
		if err := s.Submit(ctx, conn, dispatcher.Task{Fn: handle, Arg: &event{conn, kind, &log}}); err != nil {
			panic(err)
		}
	}
	// A close event must never be lost: it ignores the bound.
	if err := s.SubmitLast(conn, dispatcher.Task{Fn: handle, Arg: &event{conn, "close", &log}}); err != nil {
		panic(err)
	}
	if err := s.Close(ctx); err != nil { // runs everything accepted
		panic(err)
	}
	fmt.Println(log)
	st := s.Stats()
	fmt.Println(st.Submitted, st.Completed)
	// Output:
	// [open message 1 message 2 close]
	// 4 4
}

func ExamplePool() {
	p, err := dispatcher.NewPool(dispatcher.PoolConfig{Workers: 4})
	if err != nil {
		panic(err)
	}
	var sum atomic.Int64
	add := func(arg any) { sum.Add(int64(*arg.(*int))) }
	for i := 1; i <= 10; i++ {
		n := i
		// Submit never blocks: ErrFull when the queue and the spawn cap
		// are exhausted, ErrClosed after Close.
		if err := p.Submit(dispatcher.Task{Fn: add, Arg: &n}); err != nil {
			panic(err)
		}
	}
	if err := p.Close(context.Background()); err != nil { // drains the queue
		panic(err)
	}
	fmt.Println(sum.Load(), p.Stats().Processed)
	// Output: 55 10
}
