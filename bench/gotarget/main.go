// Command gotarget is the Go program `cargo xtask bench` measures SFGI against.
//
//	gotarget [-bg N] [-http ADDR] [-heap MB]
//
// It parks -bg N background goroutines (spread over four blocking sites), optionally serves HTTP
// on ADDR, runs a 1 ms ticker that records how late it fires, prints "ready pid=<pid>" and then
// obeys one command per line on stdin, answering each with one line on stdout:
//
//	pingpong N   run N channel round trips between two goroutines on one P (every op parks and
//	             wakes each side once) → "pingpong ns_per_op=<f>"
//	late         worst 1 ms ticker lateness since the last "late" → "late max_us=<n>"
//	avalanche R  from now on, leak R goroutines per second at one site (blocked forever on their
//	             own channels) → "avalanche started"
//	count        → "count goroutines=<n>"
//	leak N       leak N goroutines at once, each blocked forever on its own channel → "leak done"
//	ops          allocation-loop iterations per second since the last "ops" (with -heap: a
//	             mutator keeps replacing objects of the live heap) → "ops per_s=<f>"
//	quit         exit 0
//
// HTTP: GET /work?n=K hands the request to a fresh goroutine that hashes K (default 256) bytes
// and sends the sum back on a channel the handler waits on (spawn + park + ready + exit per
// request, plus the net poller's parks and wakes).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// node is one object of the -heap live heap: a payload and pointers to two others.
type node struct {
	left, right *node
	payload     [120]byte
}

var (
	live    []*node
	mutated atomic.Int64
	opsAt   = time.Now()
)

// buildHeap keeps about mb MB of nodes live (a slice of pointers to trees of nodes), then
// mutates it forever: each iteration replaces one node (allocation + pointer writes).
func buildHeap(mb int) {
	n := mb << 20 / 144
	live = make([]*node, n)
	for i := range live {
		live[i] = &node{}
		if i > 0 {
			live[i].left = live[i-1]
		}
	}
	go func() {
		r := uint64(1)
		for {
			r = r*6364136223846793005 + 1442695040888963407
			i := int(r>>33) % len(live)
			nd := &node{}
			live[i] = nd
			if mutated.Add(1)%1024 == 0 {
				runtime.Gosched()
			}
		}
	}()
}

var (
	bgA, bgB, bgC chan int
	bgMu          sync.Mutex
	maxLate       atomic.Int64
	sink          atomic.Uint64
)

//go:noinline
func parkRecvA(ch chan int) { <-ch }

//go:noinline
func parkRecvB(ch chan int) { <-ch }

//go:noinline
func parkSelect(a, b chan int) {
	select {
	case <-a:
	case <-b:
	}
}

//go:noinline
func parkMutex() { bgMu.Lock(); bgMu.Unlock() } //nolint

//go:noinline
func leakOne(ch chan int) { <-ch }

func background(n int) {
	bgA, bgB, bgC = make(chan int), make(chan int), make(chan int)
	bgMu.Lock() // never released: parkMutex goroutines block forever
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		switch i % 4 {
		case 0:
			go func() { wg.Done(); parkRecvA(bgA) }()
		case 1:
			go func() { wg.Done(); parkRecvB(bgB) }()
		case 2:
			go func() { wg.Done(); parkSelect(bgA, bgC) }()
		default:
			go func() { wg.Done(); parkMutex() }()
		}
	}
	wg.Wait()
	// Let them all reach their park.
	for runtime.NumGoroutine() < n {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
}

func ticker() {
	runtime.LockOSThread()
	t := time.NewTicker(time.Millisecond)
	last := time.Now()
	for now := range t.C {
		late := int64(now.Sub(last) - time.Millisecond)
		last = now
		for {
			cur := maxLate.Load()
			if late <= cur || maxLate.CompareAndSwap(cur, late) {
				break
			}
		}
	}
}

//go:noinline
func pong(in, out chan int) {
	for v := range in {
		out <- v
	}
}

func pingpong(n int) float64 {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	in, out := make(chan int), make(chan int)
	go pong(in, out)
	start := time.Now()
	for i := 0; i < n; i++ {
		in <- i
		<-out
	}
	el := time.Since(start)
	close(in)
	return float64(el.Nanoseconds()) / float64(n)
}

//go:noinline
func work(n int, res chan<- uint32) {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i)
	}
	res <- crc32.ChecksumIEEE(buf)
}

func handler(w http.ResponseWriter, r *http.Request) {
	n := 256
	if s := r.URL.Query().Get("n"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	res := make(chan uint32)
	go work(n, res)
	sum := <-res
	sink.Add(uint64(sum))
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%08x\n", sum)
}

func avalanche(rate int) {
	if rate <= 0 {
		return
	}
	every := time.Second / time.Duration(rate)
	t := time.NewTicker(every)
	for range t.C {
		go leakOne(make(chan int))
	}
}

func main() {
	bg := flag.Int("bg", 0, "background parked goroutines")
	addr := flag.String("http", "", "serve HTTP on this address")
	heapMB := flag.Int("heap", 0, "keep this many MB of objects live, mutated continuously")
	flag.Parse()
	background(*bg)
	if *heapMB > 0 {
		buildHeap(*heapMB)
	}
	go ticker()
	if *addr != "" {
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/work", handler)
		go http.Serve(ln, mux)
		fmt.Printf("ready pid=%d addr=%s\n", os.Getpid(), ln.Addr())
	} else {
		fmt.Printf("ready pid=%d\n", os.Getpid())
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		arg := 0
		if len(f) > 1 {
			arg, _ = strconv.Atoi(f[1])
		}
		switch f[0] {
		case "pingpong":
			fmt.Printf("pingpong ns_per_op=%.1f\n", pingpong(arg))
		case "late":
			fmt.Printf("late max_us=%d\n", maxLate.Swap(0)/1000)
		case "avalanche":
			go avalanche(arg)
			fmt.Println("avalanche started")
		case "leak":
			for i := 0; i < arg; i++ {
				go leakOne(make(chan int))
			}
			fmt.Println("leak done")
		case "ops":
			now := time.Now()
			fmt.Printf("ops per_s=%.0f\n", float64(mutated.Swap(0))/now.Sub(opsAt).Seconds())
			opsAt = now
		case "count":
			fmt.Printf("count goroutines=%d\n", runtime.NumGoroutine())
		case "quit":
			os.Exit(0)
		default:
			fmt.Printf("error unknown command %q\n", f[0])
		}
	}
}
