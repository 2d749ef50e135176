// dumps: a small Go program whose goroutine dumps `sfgi analyze` and `sfgi diff` read in the
// tests (tests/tests/analyze.rs) and the checked-in samples (tests/data/dumps/).
//
//	dumps serve [-interval D] [-gc D]   leak one goroutine every D (blocked sending on a channel
//	                                    nobody reads, in main.leakySend, created by
//	                                    main.spawnLeaks), run a healthy worker pool and a ticker,
//	                                    serve net/http/pprof on 127.0.0.1:0 and print
//	                                    "pprof http://ADDR pid=PID" once it listens; SIGQUIT
//	                                    dumps every goroutine (with -traceback all).
//	dumps deadlock                      block three goroutines on channels and main on a
//	                                    WaitGroup: Go exits with "all goroutines are asleep".
//	dumps panic                         block three goroutines, then panic (-traceback all
//	                                    prints every goroutine).
//
// -traceback LEVEL sets GOTRACEBACK from inside (runtime/debug.SetTraceback).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// leakySend blocks forever: the result channel's reader gave up (the early-return timeout
// pattern).
//
//go:noinline
func leakySend(result chan<- int) {
	result <- 42
}

// spawnLeaks leaks one goroutine every d.
func spawnLeaks(d time.Duration) {
	for {
		ch := make(chan int)
		go leakySend(ch)
		time.Sleep(d)
	}
}

// worker is one of a pool sharing one queue (healthy).
//
//go:noinline
func worker(jobs <-chan int) {
	for j := range jobs {
		_ = j
	}
}

// locked blocks in a select while locked to its OS thread ("locked to thread" in dumps).
//
//go:noinline
func locked(stop <-chan struct{}) {
	runtime.LockOSThread()
	select {
	case <-stop:
	case <-time.After(24 * time.Hour):
	}
}

// stuckReceive blocks forever receiving from ch.
//
//go:noinline
func stuckReceive(ch <-chan int) {
	<-ch
}

func serve(interval, gc time.Duration) {
	jobs := make(chan int)
	for i := 0; i < 4; i++ {
		go worker(jobs)
	}
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			select {
			case jobs <- 1:
			default:
			}
		}
	}()
	go locked(make(chan struct{}))
	if gc > 0 {
		// Go stamps a blocked goroutine's wait start (and so the dump's "N minutes") when a
		// GC scans it: collect often so the ages show.
		go func() {
			for range time.Tick(gc) {
				runtime.GC()
			}
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dumps: listen:", err)
		os.Exit(2)
	}
	go spawnLeaks(interval)
	fmt.Printf("pprof http://%s pid=%d\n", ln.Addr(), os.Getpid())
	_ = http.Serve(ln, nil)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dumps serve|deadlock|panic [-interval D] [-gc D] [-traceback LEVEL]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("dumps", flag.ExitOnError)
	interval := fs.Duration("interval", 100*time.Millisecond, "time between two leaks")
	gc := fs.Duration("gc", 0, "run a GC every D (0: never)")
	traceback := fs.String("traceback", "", "GOTRACEBACK level to set (e.g. all)")
	_ = fs.Parse(os.Args[2:])
	if *traceback != "" {
		debug.SetTraceback(*traceback)
	}
	switch os.Args[1] {
	case "serve":
		serve(*interval, *gc)
	case "deadlock", "panic":
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go stuckReceive(make(chan int))
		}
		time.Sleep(100 * time.Millisecond)
		if os.Args[1] == "panic" {
			panic("dumps: giving up")
		}
		wg.Wait()
	default:
		fmt.Fprintln(os.Stderr, "dumps: unknown mode", os.Args[1])
		os.Exit(2)
	}
}
