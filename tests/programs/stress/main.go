// Command stress is a target for SFGI's hardening tests: it hammers the parts of the Go runtime
// SFGI's uprobes sit on (goroutine creation, parking, waking, exit, stack growth, timers, GC)
// and checks its own results, so a probe that corrupted a register, a stack or a scheduler
// structure shows up as a wrong answer instead of going unnoticed.
//
//	stress [-total 1000000] [-live 1000] [-depth 200] [-stages 4]
//
// Workloads, all running at once:
//
//   - churn: goroutines created until -total have been (at most -live alive at a time); each
//     recurses -depth frames with a 256-byte array per frame (forcing stack copies), parks at the
//     bottom on a channel, a mutex or a timer, then checks every frame's array on the way back
//     up and adds a per-goroutine checksum to a total the main goroutine also computes itself;
//   - pipeline: numbers through -stages unbuffered channel stages, each adding 1; the consumer
//     checks that they arrive in order with the right value;
//   - mutex: -live/10 goroutines increment a plain counter under a sync.Mutex and an atomic one;
//   - timers: goroutines sleep, use time.After and reset/stop timers, and check that no timer
//     fired before its deadline;
//   - GC: runtime.GC() every 200ms.
//
// It prints "ready pid=<pid>" once started. SIGUSR1 prints "heartbeat=<n>" (n: goroutines
// finished so far). SIGTERM/SIGINT stops creating, waits for the churn to drain, checks every
// counter and prints "heartbeat=<n> ok created=<c> ..." and exits 0; any inconsistency, at any
// time, prints "stress: FAIL: <what>" and exits 3.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	total  = flag.Int64("total", 1000000, "goroutines the churn creates in all")
	live   = flag.Int("live", 1000, "most churn goroutines alive at once")
	depth  = flag.Int("depth", 200, "recursion depth of each churn goroutine")
	stages = flag.Int("stages", 4, "pipeline stages")
)

var (
	created  atomic.Int64
	finished atomic.Int64
	checksum atomic.Uint64 // sum of work(id) as computed by the churn goroutines
	expected atomic.Uint64 // the same sum as computed by the spawner

	mu         sync.Mutex
	plainCount int64 // guarded by mu
	atomCount  atomic.Int64

	piped   atomic.Int64
	timered atomic.Int64
	stop    atomic.Bool
)

func fail(format string, args ...any) {
	fmt.Printf("stress: FAIL: "+format+"\n", args...)
	os.Exit(3)
}

// mix is the per-frame value frame d of goroutine id stores and later checks.
func mix(id uint64, d int) uint64 {
	x := id*0x9e3779b97f4a7c15 + uint64(d)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	return x
}

// expectedWork is what work(id, depth) returns, computed without recursion.
func expectedWork(id uint64, depth int) uint64 {
	var s uint64
	for d := 0; d < depth; d++ {
		s += mix(id, d)
	}
	return s
}

var parkCh = make(chan struct{})
var parkMu sync.Mutex

// work recurses to depth with a 256-byte frame each, parks at the bottom, and on the way back
// checks that its frame survived (stack copies move it) and returns the sum of frame values.
//
//go:noinline
func work(id uint64, d, depth int) uint64 {
	var frame [32]uint64
	v := mix(id, d)
	for i := range frame {
		frame[i] = v + uint64(i)
	}
	var below uint64
	if d+1 < depth {
		below = work(id, d+1, depth)
	} else {
		park(id)
	}
	for i := range frame {
		if frame[i] != v+uint64(i) {
			fail("goroutine %d frame %d slot %d: %#x, want %#x", id, d, i, frame[i], v+uint64(i))
		}
	}
	return v + below
}

// park blocks briefly in one of several ways, chosen by id.
//
//go:noinline
func park(id uint64) {
	switch id % 4 {
	case 0:
		select {
		case <-parkCh:
		case <-time.After(time.Duration(id%3) * time.Millisecond):
		}
	case 1:
		parkMu.Lock()
		runtime.Gosched()
		parkMu.Unlock()
	case 2:
		time.Sleep(time.Duration(id%2) * time.Millisecond)
	default:
		c := make(chan uint64)
		go func() { c <- id }()
		if got := <-c; got != id {
			fail("channel returned %d, want %d", got, id)
		}
	}
}

func churn(done chan<- struct{}) {
	sem := make(chan struct{}, *live)
	var wg sync.WaitGroup
	for id := uint64(1); int64(id) <= *total && !stop.Load(); id++ {
		sem <- struct{}{}
		d := *depth - int(id%17)
		expected.Add(expectedWork(id, d))
		created.Add(1)
		wg.Add(1)
		go func(id uint64, d int) {
			defer wg.Done()
			checksum.Add(work(id, 0, d))
			finished.Add(1)
			<-sem
		}(id, d)
	}
	wg.Wait()
	close(done)
}

func pipeline() {
	src := make(chan int64)
	in := src
	for s := 0; s < *stages; s++ {
		out := make(chan int64)
		go func(in <-chan int64, out chan<- int64) {
			for v := range in {
				out <- v + 1
			}
			close(out)
		}(in, out)
		in = out
	}
	go func() {
		for i := int64(0); ; i++ {
			src <- i
		}
	}()
	want := int64(*stages)
	for v := range in {
		if v != want {
			fail("pipeline: got %d, want %d", v, want)
		}
		want++
		piped.Add(1)
	}
}

func mutexes() {
	for w := 0; w < *live/10+1; w++ {
		go func() {
			for {
				mu.Lock()
				plainCount++
				atomCount.Add(1)
				mu.Unlock()
				if atomCount.Load()%64 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
}

func timers() {
	for w := 0; w < 16; w++ {
		go func(w int) {
			t := time.NewTimer(time.Hour)
			for i := 0; ; i++ {
				d := time.Duration(w%4+1) * time.Millisecond
				start := time.Now()
				switch i % 3 {
				case 0:
					time.Sleep(d)
				case 1:
					<-time.After(d)
				default:
					if !t.Stop() {
						select {
						case <-t.C:
						default:
						}
					}
					t.Reset(d)
					<-t.C
				}
				if el := time.Since(start); el < d {
					fail("timer %d fired after %v, before its %v deadline", w, el, d)
				}
				timered.Add(1)
			}
		}(w)
	}
}

func main() {
	flag.Parse()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	done := make(chan struct{})
	go churn(done)
	go pipeline()
	mutexes()
	timers()
	go func() {
		for !stop.Load() {
			time.Sleep(200 * time.Millisecond)
			runtime.GC()
		}
	}()
	fmt.Printf("ready pid=%d\n", os.Getpid())
	for sig := range sigs {
		if sig == syscall.SIGUSR1 {
			fmt.Printf("heartbeat=%d\n", finished.Load())
			continue
		}
		break
	}
	stop.Store(true)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		fail("churn did not drain within 20s: created %d finished %d", created.Load(), finished.Load())
	}
	mu.Lock()
	plain, atom := plainCount, atomCount.Load()
	mu.Unlock()
	switch {
	case created.Load() != finished.Load():
		fail("created %d goroutines but %d finished", created.Load(), finished.Load())
	case checksum.Load() != expected.Load():
		fail("checksum %#x, want %#x", checksum.Load(), expected.Load())
	case plain != atom:
		fail("mutex counter %d, atomic counter %d", plain, atom)
	case piped.Load() == 0 || timered.Load() == 0 || atom == 0:
		fail("a workload made no progress: piped %d timers %d mutex %d", piped.Load(), timered.Load(), atom)
	}
	fmt.Printf("heartbeat=%d ok created=%d piped=%d mutex=%d timers=%d gc=%d\n",
		finished.Load(), created.Load(), piped.Load(), atom, timered.Load(), numGC())
	os.Exit(0)
}

func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}
