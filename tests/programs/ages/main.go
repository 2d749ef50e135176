// Command ages parks goroutines at known times while the process churns through short-lived
// goroutines under GC pressure, for SFGI's age tests: an age must never be older than the park.
//
//	ages
//
// GC runs often (GOGC=10 via debug.SetGCPercent, plus the churn's allocations), so every parked
// goroutine gets g.waitsince stamped with an earlier GC's time, and the churn's goroutines
// exit and their gs are reused from the free list by the goroutines parked next. It prints
// "ready pid=<pid>", then every 200 ms starts one goroutine that prints
// "parked goid=<goid> at=<unix ns>" right before it blocks for good on its own channel in
// main.parkForever. SIGTERM or SIGINT prints "bye" and exits 0.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"
)

var sink []byte

func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}

//go:noinline
func parkForever(ch chan int) { <-ch }

//go:noinline
func spawnParked(out chan<- string) {
	go func() {
		ch := make(chan int)
		out <- fmt.Sprintf("parked goid=%d at=%d", goid(), time.Now().UnixNano())
		parkForever(ch)
	}()
}

// churn starts short-lived goroutines that allocate and exit, about 1000 a second in all.
//
//go:noinline
func churn() {
	for {
		done := make(chan struct{})
		go func() {
			sink = make([]byte, 64<<10)
			close(done)
		}()
		<-done
		time.Sleep(8 * time.Millisecond)
	}
}

func main() {
	debug.SetGCPercent(10)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	for i := 0; i < 8; i++ {
		go churn()
	}
	lines := make(chan string, 16)
	fmt.Printf("ready pid=%d\n", os.Getpid())
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			spawnParked(lines)
			fmt.Println(<-lines)
		case <-sigs:
			fmt.Println("bye")
			return
		}
	}
}
