// dumps: a small Go program whose goroutine dumps `sfgi analyze` and `sfgi diff` read in the
// tests (tests/tests/analyze.rs) and the checked-in samples (tests/data/dumps/).
//
//	dumps serve [-interval D] [-gc D]   leak one goroutine every D (blocked sending on a channel
//	                                    nobody reads, in main.leakySend, created by
//	                                    main.spawnLeaks), run a healthy worker pool and a ticker,
//	                                    serve net/http/pprof on 127.0.0.1:0 and print
//	                                    "pprof http://ADDR pid=PID" once it listens; SIGQUIT
//	                                    dumps every goroutine (with -traceback all). -park N
//	                                    also parks N idle goroutines (for measuring what a
//	                                    poll costs), and /debug/pauses reports the world's
//	                                    stops (runtime/metrics) since the last call;
//	                                    -tls-cert F -tls-key K serve HTTPS.
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
	"runtime/metrics"
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

// pauses answers with the stop-the-world pauses of "other" causes (runtime.Stack and the
// goroutine profile among them) since the last call: count, total and longest (an upper bound:
// the histogram bucket's top), in ms.
func pauses() http.HandlerFunc {
	var mu sync.Mutex
	var last []uint64
	return func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		s := []metrics.Sample{{Name: "/sched/pauses/total/other:seconds"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindFloat64Histogram {
			http.Error(w, "no pause metrics", http.StatusNotImplemented)
			return
		}
		h := s[0].Value.Float64Histogram()
		var n uint64
		var total, longest float64
		for i, c := range h.Counts {
			d := c
			if i < len(last) {
				d -= last[i]
			}
			if d > 0 {
				n += d
				top := h.Buckets[i+1]
				if top > 1e9 {
					top = h.Buckets[i]
				}
				total += float64(d) * top
				if top > longest {
					longest = top
				}
			}
		}
		last = append(last[:0], h.Counts...)
		fmt.Fprintf(w, "pauses=%d total_ms=%.3f longest_ms=%.3f\n", n, total*1e3, longest*1e3)
	}
}

func serve(interval, gc time.Duration, park int) {
	idle := make(chan struct{})
	for i := 0; i < park; i++ {
		go func() { <-idle }()
	}
	http.Handle("/debug/pauses", pauses())
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
	if tlsCert != "" {
		fmt.Printf("pprof https://%s pid=%d\n", ln.Addr(), os.Getpid())
		_ = http.ServeTLS(ln, nil, tlsCert, tlsKey)
		return
	}
	fmt.Printf("pprof http://%s pid=%d\n", ln.Addr(), os.Getpid())
	_ = http.Serve(ln, nil)
}

// With -tls-cert and -tls-key, serve over HTTPS.
var tlsCert, tlsKey string

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dumps serve|deadlock|panic [-interval D] [-gc D] [-park N] [-tls-cert F -tls-key K] [-traceback LEVEL]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("dumps", flag.ExitOnError)
	interval := fs.Duration("interval", 100*time.Millisecond, "time between two leaks")
	gc := fs.Duration("gc", 0, "run a GC every D (0: never)")
	traceback := fs.String("traceback", "", "GOTRACEBACK level to set (e.g. all)")
	park := fs.Int("park", 0, "serve: also park this many idle goroutines")
	fs.StringVar(&tlsCert, "tls-cert", "", "serve: HTTPS with this PEM certificate")
	fs.StringVar(&tlsKey, "tls-key", "", "serve: and this PEM key")
	_ = fs.Parse(os.Args[2:])
	if *traceback != "" {
		debug.SetTraceback(*traceback)
	}
	switch os.Args[1] {
	case "serve":
		serve(*interval, *gc, *park)
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
