package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

func init() {
	register("chan-send-timeout", "leak", func(cfg *config) { startLeaking(cfg, spawnChanSendTimeout) })
	register("chan-send-n-to-1", "leak", func(cfg *config) { startLeaking(cfg, spawnChanSendNTo1) })
	register("chan-receive-orphan", "leak", func(cfg *config) { startLeaking(cfg, spawnChanReceiveOrphan) })
	register("range-unclosed", "leak", func(cfg *config) { startLeaking(cfg, spawnRangeUnclosed) })
	register("nil-chan", "leak", func(cfg *config) { startLeaking(cfg, spawnNilChan) })
	register("select-abandoned", "leak", func(cfg *config) { startLeaking(cfg, spawnSelectAbandoned) })
	register("select-empty", "leak", func(cfg *config) { startLeaking(cfg, spawnSelectEmpty) })
	register("reachable-global", "leak", func(cfg *config) { startLeaking(cfg, spawnReachableGlobal) })
	registerWith("slow-leak", "leak", 3*time.Second, 0, func(cfg *config) { startLeaking(cfg, spawnSlowLeak) })
	register("burst-leak", "leak", func(cfg *config) { go burstOnce(cfg) })
	registerWith("flood", "leak", time.Millisecond, 5000, func(cfg *config) { startLeaking(cfg, spawnFlood) })
}

// ---- chan-send-timeout: the per-request timeout pattern of HTTP handlers ----

// leakChanSendTimeout is the "backend call" a handler ran concurrently: it finishes after the
// handler's deadline and blocks forever sending its result on the unbuffered channel.
//
//go:noinline
func leakChanSendTimeout(result chan<- string, req int) {
	time.Sleep(3 * time.Millisecond)         // slow backend
	result <- fmt.Sprintf("profile-%d", req) // sfgi:blocks chan-send-timeout
}

// spawnChanSendTimeout is the handler: it gives up after its 1 ms budget.
//
//go:noinline
func spawnChanSendTimeout(req int) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	result := make(chan string)         // unbuffered: the bug (make(chan string, 1) fixes it)
	go leakChanSendTimeout(result, req) // sfgi:spawns chan-send-timeout
	select {
	case r := <-result:
		sink(r)
	case <-ctx.Done(): // 504 Gateway Timeout; nobody receives from result any more
	}
	return 1
}

// ---- chan-send-n-to-1: hedged requests, first answer wins ----

const hedgeReplicas = 3

//go:noinline
func leakChanSendNTo1(results chan<- string, replica int) {
	time.Sleep(time.Duration(replica+1) * time.Millisecond) // replica latency
	results <- fmt.Sprintf("replica-%d", replica)           // sfgi:blocks chan-send-n-to-1
}

//go:noinline
func spawnChanSendNTo1(req int) int {
	results := make(chan string) // unbuffered: the bug (needs capacity hedgeReplicas)
	for i := 0; i < hedgeReplicas; i++ {
		go leakChanSendNTo1(results, i) // sfgi:spawns chan-send-n-to-1
	}
	sink(<-results) // the first answer wins, the others block forever
	return hedgeReplicas - 1
}

// ---- chan-receive-orphan: waiting for a reply nobody will send ----

type rpcReply struct {
	body string
	err  error
}

type rpcCall struct {
	id    int
	reply chan rpcReply
}

var errConnReset = errors.New("write: connection reset by peer")

//go:noinline
func rpcWrite(call *rpcCall) error {
	return errConnReset // the connection is gone
}

//go:noinline
func leakChanReceiveOrphan(call *rpcCall) {
	r := <-call.reply // sfgi:blocks chan-receive-orphan
	sink(r.body)
}

//go:noinline
func spawnChanReceiveOrphan(req int) int {
	call := &rpcCall{id: req, reply: make(chan rpcReply)}
	go leakChanReceiveOrphan(call) // sfgi:spawns chan-receive-orphan
	if err := rpcWrite(call); err != nil {
		// BUG: should deliver call.reply <- rpcReply{err: err}; the waiter is orphaned.
		return 1
	}
	return 1
}

// ---- range-unclosed: a worker per request ranging over a channel that is never closed ----

//go:noinline
func leakRangeUnclosed(jobs <-chan int) {
	for j := range jobs { // sfgi:blocks range-unclosed
		sink(j * j)
	}
}

//go:noinline
func spawnRangeUnclosed(req int) int {
	jobs := make(chan int)
	go leakRangeUnclosed(jobs) // sfgi:spawns range-unclosed
	for i := 0; i < 3; i++ {
		jobs <- req*10 + i
	}
	// BUG: missing close(jobs)
	return 1
}

// ---- nil-chan: a channel field that was never initialised ----

type nilChanWorker struct {
	name string
	quit chan struct{} // never made: newNilChanWorker forgot make(chan struct{})
}

//go:noinline
func leakNilChan(w *nilChanWorker) {
	<-w.quit // sfgi:blocks nil-chan
	sink(w.name)
}

//go:noinline
func spawnNilChan(req int) int {
	w := &nilChanWorker{name: fmt.Sprintf("worker-%d", req)}
	go leakNilChan(w) // sfgi:spawns nil-chan
	return 1
}

// ---- select-abandoned: a subscriber loop whose stop channel is never closed ----

//go:noinline
func leakSelectAbandoned(events <-chan string, stop <-chan struct{}) {
	for {
		select { // sfgi:blocks select-abandoned
		case ev := <-events:
			sink(ev)
		case <-stop:
			return
		}
	}
}

//go:noinline
func spawnSelectAbandoned(req int) int {
	events := make(chan string)
	stop := make(chan struct{})
	go leakSelectAbandoned(events, stop) // sfgi:spawns select-abandoned
	// BUG: the subscription is dropped without close(stop); nothing publishes to events.
	return 1
}

// ---- select-empty: a "block forever" helper copied out of a main() ----

//go:noinline
func leakSelectEmpty(name string) {
	sink(name) // "start the background work" (it already returned)
	select {}  // sfgi:blocks select-empty
}

//go:noinline
func spawnSelectEmpty(req int) int {
	go leakSelectEmpty(fmt.Sprintf("plugin-%d", req)) // sfgi:spawns select-empty
	return 1
}

// ---- reachable-global: chan-send-timeout, but every channel is also kept in a global ----

var (
	inflightMu sync.Mutex
	inflight   []chan string // a debugging registry of in-flight results: keeps the channels reachable
)

//go:noinline
func leakReachableGlobal(result chan<- string, req int) {
	time.Sleep(3 * time.Millisecond)
	result <- fmt.Sprintf("quote-%d", req) // sfgi:blocks reachable-global
}

//go:noinline
func spawnReachableGlobal(req int) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	result := make(chan string)
	inflightMu.Lock()
	inflight = append(inflight, result)
	inflightMu.Unlock()
	go leakReachableGlobal(result, req) // sfgi:spawns reachable-global
	select {
	case r := <-result:
		sink(r)
	case <-ctx.Done():
	}
	return 1
}

// ---- slow-leak: one leak every 3 s (chan send) ----

//go:noinline
func leakSlowLeak(done chan<- bool) {
	time.Sleep(time.Millisecond)
	done <- true // sfgi:blocks slow-leak
}

//go:noinline
func spawnSlowLeak(req int) int {
	done := make(chan bool)
	go leakSlowLeak(done) // sfgi:spawns slow-leak
	select {
	case <-done:
	case <-time.After(100 * time.Microsecond): // a "quick" check that never waits long enough
	}
	return 1
}

// ---- burst-leak: -burst leaks at once, then nothing (chan receive) ----

//go:noinline
func leakBurstLeak(ack <-chan struct{}) {
	<-ack // sfgi:blocks burst-leak
}

//go:noinline
func spawnBurstLeak(n int) {
	for i := 0; i < n; i++ {
		ack := make(chan struct{})
		go leakBurstLeak(ack) // sfgi:spawns burst-leak
	}
}

func burstOnce(cfg *config) {
	if cfg.delay > 0 {
		time.Sleep(cfg.delay)
	}
	spawnBurstLeak(cfg.burst)
}

// ---- flood: 1000 leaks/s up to -max (chan send) ----

//go:noinline
func leakFlood(out chan<- int, v int) {
	out <- v // sfgi:blocks flood
}

//go:noinline
func spawnFlood(req int) int {
	out := make(chan int)
	go leakFlood(out, req) // sfgi:spawns flood
	return 1
}
