package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"scenarios/x/sync/semaphore"
)

// Healthy look-alikes: stable populations in the same states as the leaks; they never grow
// (pool-rampup grows for 6.4 s and then stays; burst-drain rises and drains every 5 s).

func init() {
	register("pool-idle", "healthy", setupPoolIdle)
	register("pool-busy", "healthy", setupPoolBusy)
	register("pool-rampup", "healthy", setupPoolRampup)
	register("http-keepalive", "healthy", setupHTTPKeepalive)
	register("tickers", "healthy", setupTickers)
	register("signal-waiters", "healthy", setupSignalWaiters)
	register("long-poll", "healthy", setupLongPoll)
	register("semaphore-bounded", "healthy", setupSemaphoreBounded)
	register("conn-per-goroutine", "healthy", setupConnPerGoroutine)
	register("burst-drain", "healthy", setupBurstDrain)
	register("pipeline", "healthy", setupPipeline)
	register("ticker-single", "healthy", setupTickerSingle)
}

// ---- worker pools ----

type job struct {
	id      int
	payload []byte
}

//go:noinline
func poolWorker(jobs <-chan job, done *uint64, mu *sync.Mutex) {
	for j := range jobs { // idle workers sit here (chan receive), like range-unclosed
		sum := 0
		for _, b := range j.payload {
			sum += int(b)
		}
		mu.Lock()
		*done += uint64(sum&1) + 1
		mu.Unlock()
	}
}

func startPool(n int, jobs <-chan job) {
	var mu sync.Mutex
	var done uint64
	for i := 0; i < n; i++ {
		go poolWorker(jobs, &done, &mu)
	}
}

// idlePoolJobs is the idle pool's submit side, held by its owner as a real pool's is (a server
// struct, a package variable): work could arrive at any time, so its workers are not leaked —
// for reachability too, which a pool whose channel nothing references would fail.
var idlePoolJobs chan<- job

func setupPoolIdle(cfg *config) {
	jobs := make(chan job)
	idlePoolJobs = jobs
	startPool(16, jobs) // no job ever arrives; jobs stays open for the process lifetime
}

func setupPoolBusy(cfg *config) {
	jobs := make(chan job)
	startPool(16, jobs)
	go poolProducer(jobs, time.Millisecond)
}

//go:noinline
func poolProducer(jobs chan<- job, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		<-t.C
		jobs <- job{id: i, payload: make([]byte, 256)}
	}
}

func setupPoolRampup(cfg *config) {
	jobs := make(chan job)
	go poolProducer(jobs, 10*time.Millisecond)
	go poolRamp(jobs, 32, 200*time.Millisecond)
}

//go:noinline
func poolRamp(jobs <-chan job, n int, every time.Duration) {
	var mu sync.Mutex
	var done uint64
	for i := 0; i < n; i++ {
		go poolWorker(jobs, &done, &mu)
		time.Sleep(every)
	}
}

// ---- http-keepalive: 50 idle keep-alive connections held by a local client ----

func setupHTTPKeepalive(cfg *config) {
	const conns = 50
	ln := listenLocal()
	var arrived sync.WaitGroup
	arrived.Add(conns)
	gate := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			arrived.Done()
			<-gate // all 50 requests are in flight at once: 50 distinct connections
		}
		fmt.Fprintln(w, "ok")
	})
	go (&http.Server{Handler: mux}).Serve(ln)
	tr := &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: conns, IdleConnTimeout: 0}
	client := &http.Client{Transport: tr}
	url := "http://" + ln.Addr().String()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go keepaliveGet(client, url+"/warm", &wg)
	}
	arrived.Wait()
	close(gate)
	wg.Wait() // now 50 idle pooled connections, held open (no idle timeout on either side)
}

//go:noinline
func keepaliveGet(client *http.Client, url string, wg *sync.WaitGroup) {
	defer wg.Done()
	resp, err := client.Get(url)
	if err != nil {
		fatal("get: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// ---- tickers: 8 goroutines with a ticker doing periodic work ----

//go:noinline
func tickerWorker(name string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	n := 0
	for range t.C { // like ticker-loop-leak, but a fixed number of them
		n++
		sink(name)
	}
}

func setupTickers(cfg *config) {
	for i := 0; i < 8; i++ {
		go tickerWorker(fmt.Sprintf("metrics-%d", i), time.Duration(100+10*i)*time.Millisecond)
	}
}

func setupTickerSingle(cfg *config) {
	go tickerWorker("gc-stats", 100*time.Millisecond)
}

// ---- signal-waiters: 4 goroutines waiting on signal.Notify channels ----

//go:noinline
func signalWaiter(sig os.Signal, what string) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	for range ch {
		sink(what)
	}
}

func setupSignalWaiters(cfg *config) {
	go signalWaiter(syscall.SIGHUP, "reload config")
	go signalWaiter(syscall.SIGUSR1, "dump stats")
	go signalWaiter(syscall.SIGUSR2, "rotate logs")
	go signalWaiter(syscall.SIGWINCH, "resize")
}

// ---- long-poll: handlers wait up to 30 s for an event; 20 requests always in flight ----

//go:noinline
func longPollHandler(w http.ResponseWriter, r *http.Request, events <-chan string) {
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case ev := <-events:
		fmt.Fprintln(w, ev)
	case <-t.C:
		w.WriteHeader(http.StatusNoContent)
	case <-r.Context().Done():
	}
}

//go:noinline
func longPollPublisher(events chan<- string) {
	for i := 0; ; i++ {
		time.Sleep(300 * time.Millisecond)
		events <- fmt.Sprintf("event-%d", i) // wakes one waiting handler
	}
}

//go:noinline
func longPollClient(client *http.Client, url string) {
	for {
		resp, err := client.Get(url)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func setupLongPoll(cfg *config) {
	ln := listenLocal()
	events := make(chan string)
	mux := http.NewServeMux()
	mux.HandleFunc("/poll", func(w http.ResponseWriter, r *http.Request) { longPollHandler(w, r, events) })
	go (&http.Server{Handler: mux}).Serve(ln)
	go longPollPublisher(events)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	url := "http://" + ln.Addr().String() + "/poll"
	for i := 0; i < 20; i++ {
		go longPollClient(client, url)
	}
}

// ---- semaphore-bounded: 32 workers share 8 permits: acquire, work 5 ms, release ----

//go:noinline
func boundedWorker(sem *semaphore.Weighted, id int) {
	ctx := context.Background()
	for {
		if err := sem.Acquire(ctx, 1); err != nil { // most workers wait here at any moment
			return
		}
		time.Sleep(5 * time.Millisecond)
		sem.Release(1)
	}
}

func setupSemaphoreBounded(cfg *config) {
	sem := semaphore.NewWeighted(8)
	for i := 0; i < 32; i++ {
		go boundedWorker(sem, i)
	}
}

// ---- conn-per-goroutine: TCP server, one goroutine per connection, 30 steady connections ----

//go:noinline
func serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n') // IO wait between requests, like tcp-no-deadline
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, "pong "+line); err != nil {
			return
		}
	}
}

//go:noinline
func acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serveConn(c)
	}
}

//go:noinline
func connPinger(conns []net.Conn) {
	readers := make([]*bufio.Reader, len(conns))
	for i, c := range conns {
		readers[i] = bufio.NewReader(c)
	}
	for n := 0; ; n++ {
		for i, c := range conns {
			fmt.Fprintf(c, "ping %d\n", n)
			if _, err := readers[i].ReadString('\n'); err != nil {
				fatal("ping: %v", err)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func setupConnPerGoroutine(cfg *config) {
	ln := listenLocal()
	go acceptLoop(ln)
	conns := make([]net.Conn, 30)
	for i := range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			fatal("dial: %v", err)
		}
		conns[i] = c
	}
	go connPinger(conns)
}

// ---- burst-drain: 500 goroutines that all finish within 1 s, every 5 s ----

//go:noinline
func burstWorker(gate <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	<-gate // chan receive, like burst-leak, until the gate opens
}

//go:noinline
func burstDrainLoop() {
	for {
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 500; i++ {
			wg.Add(1)
			go burstWorker(gate, &wg)
		}
		time.Sleep(time.Duration(600+rand.Intn(300)) * time.Millisecond)
		close(gate)
		wg.Wait()
		time.Sleep(4 * time.Second)
	}
}

func setupBurstDrain(cfg *config) {
	go burstDrainLoop()
}

// ---- pipeline: generate -> parse (4) -> enrich (4) -> store, steady flow ----

//go:noinline
func pipeGenerate(out chan<- int) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		<-t.C
		out <- i
	}
}

//go:noinline
func pipeStage(in <-chan int, out chan<- int, mul int) {
	for v := range in {
		out <- v * mul
	}
}

//go:noinline
func pipeStore(in <-chan int) {
	total := 0
	for v := range in {
		total += v
	}
	sink(total)
}

func setupPipeline(cfg *config) {
	src, mid, dst := make(chan int), make(chan int), make(chan int)
	go pipeGenerate(src)
	for i := 0; i < 4; i++ {
		go pipeStage(src, mid, 3)
		go pipeStage(mid, dst, 7)
	}
	go pipeStore(dst)
}
