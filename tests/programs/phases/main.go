// Command phases is a target for SFGI's overhead-budget test: a busy phase, then a quiet one.
//
//	phases [-busy 4s] [-idle 10]
//
// For -busy it ping-pongs a value between two goroutines over unbuffered channels as fast as it
// can (every operation parks one goroutine and wakes the other: hundreds of thousands of probe
// hits per second under SFGI), then prints "quiet ops=<n>" and goes quiet: -idle goroutines
// parked on a channel and a main goroutine waiting for a signal. It prints "ready pid=<pid>"
// before the busy phase starts; SIGTERM/SIGINT print "ok" and exit 0.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

//go:noinline
func pong(in <-chan int, out chan<- int) {
	for v := range in {
		out <- v + 1
	}
	close(out)
}

//go:noinline
func idle(ch <-chan struct{}) {
	<-ch
}

func main() {
	busy := flag.Duration("busy", 4*time.Second, "how long to ping-pong")
	nIdle := flag.Int("idle", 10, "goroutines parked in the quiet phase")
	flag.Parse()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	stop := make(chan struct{})
	for i := 0; i < *nIdle; i++ {
		go idle(stop)
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())
	ping, back := make(chan int), make(chan int)
	go pong(ping, back)
	ops := 0
	for end := time.Now().Add(*busy); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			ping <- ops
			ops = <-back
		}
	}
	close(ping)
	<-back
	fmt.Printf("quiet ops=%d\n", ops)
	<-sigs
	close(stop)
	fmt.Println("ok")
}
