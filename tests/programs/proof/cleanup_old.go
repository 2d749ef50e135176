//go:build !go1.24

package main

import "runtime"

func init() { setups = append(setups, healthyCleanup) }

//go:noinline
func blockCleanupWait(ch chan int) { <-ch }

// healthyCleanup: before Go 1.24 (no runtime.AddCleanup) the same look-alike with a finalizer
// (queued behind healthyFinalizer's blocked one).
//
//go:noinline
func healthyCleanup() {
	ch := make(chan int)
	for i := 0; i < n; i++ {
		go blockCleanupWait(ch)
	}
	dropFinalized(ch)
	runtime.GC()
	runtime.GC()
}
