// Goroutine leaks that reachability proves, next to healthy look-alikes that it must never
// prove (SFGI's tests/tests/proof.rs).
//
// Leaks (nothing can ever wake them: what they wait on is reachable only from themselves):
// a channel send, a channel receive, a select on two channels, a sync.Mutex, a sync.WaitGroup,
// a nil channel. Look-alikes (blocked as long, but what they wait on stays reachable): a
// receive on a channel held by a global, a receive on a channel held by a live goroutine's
// stack, a worker pool fed by a live producer, a Lock on a global mutex, a Wait on a WaitGroup
// held by a live goroutine, a receive on a channel that only a queued finalizer references (the
// runtime's off-heap finalizer queue is a root) and one that only a queued cleanup references
// (`cleanup.go`: `runtime.AddCleanup`'s queue from Go 1.24; a finalizer again before).
//
// Prints `ready pid=PID`. On SIGUSR1 it asks its own runtime for the `goroutineleak` profile
// (Go 1.27; nil before) and prints `runtime-leaked N` for each goroutine the runtime marked,
// then `leakprofile done`. Leaves on SIGTERM/SIGINT.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const n = 3

var (
	stop     atomic.Bool
	globalCh = make(chan int)
	globalMu sync.Mutex
	sink     []byte
	// Released on exit: the finalizer (and cleanup) goroutines block on them until then.
	finGate     = make(chan int)
	cleanupGate = make(chan int)
	// Look-alikes set up before the program is ready (cleanup.go adds one).
	setups = []func(){healthyFinalizer}
)

//go:noinline
func blockSend(ch chan int) { ch <- 1 }

//go:noinline
func blockRecv(ch chan int) { <-ch }

//go:noinline
func leakChanSend() {
	ch := make(chan int)
	go blockSend(ch)
}

//go:noinline
func leakChanReceive() {
	ch := make(chan int)
	go blockRecv(ch)
}

//go:noinline
func blockSelect(a, b chan int) {
	select {
	case <-a:
	case b <- 1:
	}
}

//go:noinline
func leakSelect() {
	go blockSelect(make(chan int), make(chan int))
}

//go:noinline
func blockLock(mu *sync.Mutex) { mu.Lock() }

// A mutex in a struct with a pointer, as mutexes usually are: a lone `new(sync.Mutex)` (8
// bytes, no pointers) comes from the tiny allocator and shares a 16-byte block with other
// small objects, which may keep it reachable — for the runtime's leak detector as for SFGI.
type guarded struct {
	mu    sync.Mutex
	owner *int
}

//go:noinline
func leakMutex() {
	g := &guarded{owner: new(int)}
	g.mu.Lock()
	go blockLock(&g.mu)
}

//go:noinline
func blockWait(wg *sync.WaitGroup) { wg.Wait() }

//go:noinline
func leakWaitGroup() {
	wg := new(sync.WaitGroup)
	wg.Add(1)
	go blockWait(wg)
}

//go:noinline
func blockNil() {
	var ch chan int
	<-ch
}

// Look-alikes.

//go:noinline
func healthyGlobal() { <-globalCh }

//go:noinline
func holder(ch chan int) {
	for !stop.Load() {
		time.Sleep(50 * time.Millisecond)
	}
	close(ch)
}

//go:noinline
func healthyHeld() {
	ch := make(chan int)
	go holder(ch)
	go blockRecv(ch)
}

//go:noinline
func worker(jobs chan []byte) {
	for j := range jobs {
		sink = j
	}
}

//go:noinline
func producer(jobs chan []byte) {
	for !stop.Load() {
		jobs <- make([]byte, 64)
		time.Sleep(20 * time.Millisecond)
	}
	close(jobs)
}

//go:noinline
func healthyPool() {
	jobs := make(chan []byte)
	for i := 0; i < 4; i++ {
		go worker(jobs)
	}
	go producer(jobs)
}

//go:noinline
func healthyGlobalMutex() { globalMu.Lock(); globalMu.Unlock() }

//go:noinline
func wgHolder(wg *sync.WaitGroup) {
	for !stop.Load() {
		time.Sleep(50 * time.Millisecond)
	}
	wg.Done()
}

//go:noinline
func healthyWaitGroup() {
	wg := new(sync.WaitGroup)
	wg.Add(1)
	go wgHolder(wg)
	go blockWait(wg)
}

// An object with a pointer (not from the tiny allocator) to hang a finalizer or cleanup on.
type box struct {
	c   chan int
	pad *int
}

// waitStarted waits (at most 5 s) for a blocking finalizer or cleanup to start running.
func waitStarted(started chan struct{}) {
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		fmt.Fprintln(os.Stderr, "a blocking finalizer or cleanup did not start")
	}
}

//go:noinline
func blockFinWait(ch chan int) { <-ch }

// dropBlocker drops an object whose finalizer blocks the finalizer goroutine on finGate, so that
// every finalizer queued later stays in the runtime's queue (finq) until exit.
//
//go:noinline
func dropBlocker(started chan struct{}) {
	b := &box{pad: new(int)}
	runtime.SetFinalizer(b, func(*box) {
		close(started)
		<-finGate
	})
}

// dropFinalized drops an object whose finalizer closes ch: once queued, only the finalizer
// queue references it (and, through it, ch).
//
//go:noinline
func dropFinalized(ch chan int) {
	x := &box{c: ch, pad: new(int)}
	runtime.SetFinalizer(x, func(x *box) { close(x.c) })
}

// healthyFinalizer: n goroutines receive on a channel that only a queued finalizer references;
// the finalizer will close it once the finalizer goroutine is released.
//
//go:noinline
func healthyFinalizer() {
	started := make(chan struct{})
	dropBlocker(started)
	runtime.GC()
	waitStarted(started)
	ch := make(chan int)
	for i := 0; i < n; i++ {
		go blockFinWait(ch)
	}
	dropFinalized(ch)
	runtime.GC()
	runtime.GC()
}

// bigStruct's pointer mask (20 100 words) is too large to be stored in the binary: from Go 1.24
// the runtime builds it on demand, at the first GC that scans bigTyped. sfgi-heap's live test
// checks the mask SFGI builds itself (for a process whose GC has not run yet) against it.
type bigStruct struct {
	a [10000]*int
	n [100]int
	b [10000]*byte
}

var bigTyped = new(bigStruct)

var leakedLine = regexp.MustCompile(`(?m)^goroutine (\d+) \[[^\]]*\(leaked\)`)

func leakProfile() {
	p := pprof.Lookup("goroutineleak")
	if p == nil {
		fmt.Println("leakprofile none")
		return
	}
	var b bytes.Buffer
	if err := p.WriteTo(&b, 2); err != nil {
		fmt.Println("leakprofile error", err)
		return
	}
	for _, m := range leakedLine.FindAllStringSubmatch(b.String(), -1) {
		fmt.Println("runtime-leaked", m[1])
	}
	fmt.Println("leakprofile done")
}

func main() {
	globalMu.Lock()
	for i := 0; i < n; i++ {
		leakChanSend()
		leakChanReceive()
		leakSelect()
		leakMutex()
		leakWaitGroup()
		go blockNil()
		go healthyGlobal()
		healthyHeld()
		go healthyGlobalMutex()
		healthyWaitGroup()
	}
	healthyPool()
	// After the leaks: the collections they run would leave pointers to the leaks' objects in
	// the runtime's buffers (write barrier, sudog caches) that Go 1.21's conservative scan of
	// a P reads.
	for _, setup := range setups {
		setup()
	}
	// Garbage, so the heap has more than the few objects above, and GCs run.
	go func() {
		for !stop.Load() {
			sink = make([]byte, 1<<16)
			time.Sleep(time.Millisecond)
		}
	}()
	runtime.GC()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("ready pid=%d\n", os.Getpid())
	for s := range sigs {
		if s == syscall.SIGUSR1 {
			leakProfile()
			continue
		}
		stop.Store(true)
		close(finGate)
		close(cleanupGate)
		time.Sleep(100 * time.Millisecond)
		return
	}
}
