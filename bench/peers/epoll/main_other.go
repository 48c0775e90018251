//go:build !linux

// Command epoll is Linux only (it drives epoll directly); elsewhere it
// exits with an error.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "epoll: this peer needs Linux (epoll)")
	os.Exit(1)
}
