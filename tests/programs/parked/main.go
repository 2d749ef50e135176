// Command parked is a target for SFGI's inventory tests: goroutines that are already parked
// when SFGI attaches.
//
//	parked [-n 3] [-scale 0]
//
// It parks -n goroutines of each kind below, each blocking in its own non-inlined function
// (main.park*) and started by its own non-inlined spawner (main.spawn*), then prints
// "ready pid=<pid>" and one line per kind with the goroutine IDs it created:
//
//	kind=<kind> reason=<Go wait reason> func=<blocking function> goids=<id>,<id>,...
//
// With -scale N it also parks N goroutines in main.parkRecv (kind "scale"; their IDs are not
// printed) before "ready".
//
// A 1 ms ticker measures how late it fires (the worst interval beyond 1 ms): SIGUSR1 prints
// "maxlate_us=<n>" for the window since the previous SIGUSR1 (or start) and resets it. SIGUSR2
// runs two GCs and prints "gc done": a GC's stack scan stamps g.waitsince of every blocked
// goroutine whose waitsince is 0 with the previous GC's mark-termination time (0 until one has
// finished), so after two it is set. SIGTERM or SIGINT prints "bye" and exits 0.
//
// Kinds (blocking function: Go wait reason):
//
//	recv    main.parkRecv:    chan receive
//	send    main.parkSend:    chan send
//	select  main.parkSelect:  select
//	mutex   main.parkMutex:   sync.Mutex.Lock
//	cond    main.parkCond:    sync.Cond.Wait
//	sleep   main.parkSleep:   sleep
//	nilrecv main.parkNilRecv: chan receive (nil chan)
//	ticker  main.parkTicker:  select (on a running 1 h ticker and a stop channel: a janitor)
//	stopped main.parkStopped: chan receive (on the channel of a ticker stopped before the wait)
//	janitor main.parkJanitor: select (a janitor whose ticker was stopped and whose stop channel
//	                          is never closed: a leak that looks like a periodic loop)
//	done    main.parkDone:    chan receive (on ctx.Done() of a context never cancelled)
//
// Timer channels are asynchronous unless GODEBUG=asynctimerchan=0 (Go 1.23+): go.mod says 1.21.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Objects the goroutines block on; never released.
var (
	recvCh   = make(chan int)
	sendCh   = make(chan int)
	selA     = make(chan int)
	selB     = make(chan string)
	mu       sync.Mutex
	condMu   sync.Mutex
	cond     = sync.NewCond(&condMu)
	nilCh    chan int
	scaleCh  = make(chan int)
	goidSink = make(chan int64, 1024)
)

// goid parses the current goroutine's ID from its stack header ("goroutine 12 [running]:").
func goid() int64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := bytes.Fields(buf[:n])
	if len(f) < 2 {
		return -1
	}
	id, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return -1
	}
	return id
}

//go:noinline
func parkRecv(ch chan int) int { return <-ch }

//go:noinline
func parkSend(ch chan int) { ch <- 1 }

//go:noinline
func parkSelect(a chan int, b chan string) int {
	select {
	case v := <-a:
		return v
	case s := <-b:
		return len(s)
	}
}

//go:noinline
func parkMutex(m *sync.Mutex) { m.Lock() }

//go:noinline
func parkCond(c *sync.Cond) {
	c.L.Lock()
	c.Wait()
}

//go:noinline
func parkSleep() { time.Sleep(time.Hour) }

//go:noinline
func parkNilRecv(ch chan int) int { return <-ch }

//go:noinline
func parkTicker(t *time.Ticker, stop chan struct{}) int {
	n := 0
	for {
		select {
		case <-t.C:
			n++
		case <-stop:
			return n
		}
	}
}

//go:noinline
func parkStopped(t *time.Ticker) { <-t.C }

//go:noinline
func parkJanitor(t *time.Ticker, stop chan struct{}) int {
	n := 0
	for {
		select {
		case <-t.C:
			n++
		case <-stop:
			return n
		}
	}
}

//go:noinline
func parkDone(ctx context.Context) { <-ctx.Done() }

// Never cancelled: parkDone waits forever.
var doneCtx, doneCancel = context.WithCancel(context.Background())
var stopCh = make(chan struct{})

//go:noinline
func spawnTicker() {
	go func() {
		goidSink <- goid()
		parkTicker(time.NewTicker(time.Hour), stopCh)
	}()
}

//go:noinline
func spawnStopped() {
	go func() {
		t := time.NewTicker(time.Hour)
		t.Stop()
		goidSink <- goid()
		parkStopped(t)
	}()
}

//go:noinline
func spawnJanitor() {
	go func() {
		t := time.NewTicker(time.Hour)
		t.Stop()
		goidSink <- goid()
		parkJanitor(t, stopCh)
	}()
}

//go:noinline
func spawnDone() {
	go func() {
		goidSink <- goid()
		parkDone(doneCtx)
	}()
}

//go:noinline
func spawnRecv(report bool) {
	go func() {
		if report {
			goidSink <- goid()
		}
		parkRecv(recvCh)
	}()
}

//go:noinline
func spawnSend() {
	go func() {
		goidSink <- goid()
		parkSend(sendCh)
	}()
}

//go:noinline
func spawnSelect() {
	go func() {
		goidSink <- goid()
		parkSelect(selA, selB)
	}()
}

//go:noinline
func spawnMutex() {
	go func() {
		goidSink <- goid()
		parkMutex(&mu)
	}()
}

//go:noinline
func spawnCond() {
	go func() {
		goidSink <- goid()
		parkCond(cond)
	}()
}

//go:noinline
func spawnSleep() {
	go func() {
		goidSink <- goid()
		parkSleep()
	}()
}

//go:noinline
func spawnNilRecv() {
	go func() {
		goidSink <- goid()
		parkNilRecv(nilCh)
	}()
}

//go:noinline
func spawnScale() {
	go func() { parkRecv(scaleCh) }()
}

type kind struct {
	name, reason, fn string
	spawn            func()
}

func main() {
	n := flag.Int("n", 3, "goroutines parked per kind")
	scale := flag.Int("scale", 0, "extra goroutines parked in main.parkRecv (IDs not printed)")
	flag.Parse()

	// Start the ticker first so its goroutine exists before everything else.
	var maxLate atomic.Int64
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for now := range t.C {
			late := now.Sub(last) - time.Millisecond
			last = now
			for {
				cur := maxLate.Load()
				if int64(late) <= cur || maxLate.CompareAndSwap(cur, int64(late)) {
					break
				}
			}
		}
	}()

	mu.Lock() // held forever: parkMutex blocks

	kinds := []kind{
		{"recv", "chan receive", "main.parkRecv", func() { spawnRecv(true) }},
		{"send", "chan send", "main.parkSend", spawnSend},
		{"select", "select", "main.parkSelect", spawnSelect},
		{"mutex", "sync.Mutex.Lock", "main.parkMutex", spawnMutex},
		{"cond", "sync.Cond.Wait", "main.parkCond", spawnCond},
		{"sleep", "sleep", "main.parkSleep", spawnSleep},
		{"nilrecv", "chan receive (nil chan)", "main.parkNilRecv", spawnNilRecv},
		{"ticker", "select", "main.parkTicker", spawnTicker},
		{"stopped", "chan receive", "main.parkStopped", spawnStopped},
		{"janitor", "select", "main.parkJanitor", spawnJanitor},
		{"done", "chan receive", "main.parkDone", spawnDone},
	}
	_ = doneCancel
	lines := make([]string, 0, len(kinds))
	for _, k := range kinds {
		ids := make([]string, 0, *n)
		for i := 0; i < *n; i++ {
			k.spawn()
			ids = append(ids, strconv.FormatInt(<-goidSink, 10))
		}
		lines = append(lines, fmt.Sprintf("kind=%s reason=%s func=%s goids=%s",
			k.name, k.reason, k.fn, strings.Join(ids, ",")))
	}
	for i := 0; i < *scale; i++ {
		spawnScale()
	}
	// Let every goroutine reach its parking call (and the mutex waiters stop spinning).
	time.Sleep(100 * time.Millisecond)
	maxLate.Store(0)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("ready pid=%d\n", os.Getpid())
	for _, l := range lines {
		fmt.Println(l)
	}
	if *scale > 0 {
		fmt.Printf("scale n=%d\n", *scale)
	}
	fmt.Println("end")
	for s := range sigs {
		switch s {
		case syscall.SIGUSR1:
			fmt.Printf("maxlate_us=%d\n", maxLate.Swap(0)/1000)
		case syscall.SIGUSR2:
			runtime.GC()
			runtime.GC()
			fmt.Println("gc done")
		default:
			fmt.Println("bye")
			os.Exit(0)
		}
	}
}
