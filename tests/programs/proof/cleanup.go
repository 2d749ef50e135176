//go:build go1.24

package main

import (
	"runtime"
	"strings"
)

func init() { setups = append(setups, healthyCleanup) }

//go:noinline
func blockCleanupWait(ch chan int) { <-ch }

// dropCleanupBlocker drops an object whose cleanup blocks a cleanup goroutine on cleanupGate.
//
//go:noinline
func dropCleanupBlocker(started chan struct{}) {
	b := &box{pad: new(int)}
	runtime.AddCleanup(b, func(started chan struct{}) {
		close(started)
		<-cleanupGate
	}, started)
}

// dropCleaned drops an object whose cleanup closes ch: once queued, only the cleanup queue
// references ch.
//
//go:noinline
func dropCleaned(ch chan int) {
	x := &box{pad: new(int)}
	runtime.AddCleanup(x, func(ch chan int) { close(ch) }, ch)
}

// healthyCleanup: n goroutines receive on a channel that only a queued cleanup references. Go
// 1.24 runs cleanups on the finalizer goroutine (blocked by healthyFinalizer, which runs first);
// from 1.25 on up to max(GOMAXPROCS/4, 1) cleanup goroutines: each is blocked first.
//
//go:noinline
func healthyCleanup() {
	if !strings.HasPrefix(runtime.Version(), "go1.24") {
		for i := 0; i < max(runtime.GOMAXPROCS(0)/4, 1); i++ {
			started := make(chan struct{})
			dropCleanupBlocker(started)
			runtime.GC()
			waitStarted(started)
		}
	}
	ch := make(chan int)
	for i := 0; i < n; i++ {
		go blockCleanupWait(ch)
	}
	dropCleaned(ch)
	runtime.GC()
	runtime.GC()
}
