// Command leaky-service is SFGI's demo target: a small HTTP service with two real-world goroutine
// leaks next to healthy, merely idle goroutines.
//
//	leaky-service [-addr 127.0.0.1:8089] [-selfload=true] [-rate 20]
//
// Healthy: 8 workers ranging over a shared job channel (/checkout), an idle janitor ticker.
// Leaks:
//   - /search starts a goroutine per request to query a slow backend and gives up after 50 ms;
//     the goroutine then blocks forever sending its result on an unbuffered channel
//     (main.fetchFromBackend, "chan send").
//   - /report: on an error path (every 10th request) reportJob.load returns without unlocking
//     the job's mutex, so the goroutine blocks forever in reportJob.finish ("sync.Mutex.Lock").
//
// With -selfload (the default) a built-in load generator calls the service's own endpoints over
// loopback about -rate times a second, so it leaks without any external client:
//
//	go build -o leaky-service . && ./leaky-service &
//	sudo sfgi attach --pid $(pgrep -n leaky-service) --duration 5s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type server struct {
	jobs     chan checkoutJob
	reports  atomic.Int64
	requests atomic.Int64
	cacheMu  sync.Mutex
	cache    map[string]string
}

// ---- healthy: the worker pool ----

type checkoutJob struct {
	items int
	reply chan int // buffered (1): a worker never blocks on it
}

func (s *server) startWorkers(n int) {
	for i := 0; i < n; i++ {
		go s.worker(i)
	}
}

func (s *server) worker(id int) {
	for j := range s.jobs {
		total := 0
		for i := 0; i < j.items; i++ {
			total += (i*31 + id) % 97
		}
		j.reply <- total
	}
}

func (s *server) handleCheckout(w http.ResponseWriter, r *http.Request) {
	items, _ := strconv.Atoi(r.URL.Query().Get("items"))
	j := checkoutJob{items: 100 + items, reply: make(chan int, 1)}
	select {
	case s.jobs <- j:
	case <-time.After(time.Second):
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "total=%d\n", <-j.reply)
}

// ---- healthy: an idle janitor ----

func (s *server) janitor(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.cacheMu.Lock()
			s.cache = make(map[string]string)
			s.cacheMu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

// ---- leak 1: /search, the early-return timeout ----

type searchResult struct {
	query string
	hits  int
}

// fetchFromBackend asks the slow "backend" (10-100 ms) and reports on results.
func fetchFromBackend(query string, results chan<- searchResult) {
	time.Sleep(time.Duration(10+rand.Intn(91)) * time.Millisecond)
	results <- searchResult{query: query, hits: len(query) * 7} // blocks forever once the handler gave up
}

func (s *server) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	results := make(chan searchResult) // BUG: unbuffered; make(chan searchResult, 1) fixes it
	go fetchFromBackend(q, results)
	select {
	case res := <-results:
		s.cacheMu.Lock()
		s.cache[q] = strconv.Itoa(res.hits)
		s.cacheMu.Unlock()
		fmt.Fprintf(w, "%s: %d hits\n", res.query, res.hits)
	case <-time.After(50 * time.Millisecond):
		http.Error(w, "backend timeout", http.StatusGatewayTimeout)
	}
}

// ---- leak 2: /report, the error path that forgets to unlock ----

type reportJob struct {
	mu    sync.Mutex
	id    int64
	rows  int
	done  bool
	ready chan struct{}
}

var errQuota = errors.New("report quota exceeded")

func (j *reportJob) load() error {
	j.mu.Lock()
	if j.id%10 == 0 {
		return errQuota // BUG: returns with j.mu still locked
	}
	j.rows = int(j.id%50) + 1
	j.mu.Unlock()
	return nil
}

func (j *reportJob) finish() {
	j.mu.Lock() // blocks forever after a failed load
	j.done = true
	j.mu.Unlock()
	close(j.ready)
}

func runReport(j *reportJob) {
	if err := j.load(); err != nil {
		_ = err // "logged"
	}
	j.finish()
}

func (s *server) handleReport(w http.ResponseWriter, r *http.Request) {
	j := &reportJob{id: s.reports.Add(1), ready: make(chan struct{})}
	go runReport(j)
	select {
	case <-j.ready:
		fmt.Fprintf(w, "report %d: %d rows\n", j.id, j.rows)
	case <-time.After(100 * time.Millisecond):
		http.Error(w, "report failed", http.StatusInternalServerError)
	}
}

// ---- the rest ----

func (s *server) handleStats(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "goroutines=%d requests=%d\n", runtime.NumGoroutine(), s.requests.Load())
}

func (s *server) count(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}
}

// selfLoad calls the service's own endpoints about rate times a second until ctx ends.
func selfLoad(ctx context.Context, base string, rate int) {
	client := &http.Client{Timeout: 2 * time.Second}
	paths := []string{"/search?q=gopher", "/checkout?items=3", "/search?q=ebpf", "/report", "/search?q=leak"}
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		url := base + paths[n%len(paths)]
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8089", "listen address")
	load := flag.Bool("selfload", true, "call our own endpoints over loopback")
	rate := flag.Int("rate", 20, "self-load requests per second")
	flag.Parse()
	if *rate < 1 {
		*rate = 1
	}

	s := &server{jobs: make(chan checkoutJob), cache: make(map[string]string)}
	s.startWorkers(8)
	ctx, cancel := context.WithCancel(context.Background())
	go s.janitor(ctx)

	mux := http.NewServeMux()
	mux.HandleFunc("/search", s.count(s.handleSearch))
	mux.HandleFunc("/report", s.count(s.handleReport))
	mux.HandleFunc("/checkout", s.count(s.handleCheckout))
	mux.HandleFunc("/stats", s.handleStats)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaky-service:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("leaky-service listening on %s pid=%d\n", ln.Addr(), os.Getpid())
	if *load {
		go selfLoad(ctx, "http://"+ln.Addr().String(), *rate)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		fmt.Printf("leaky-service: %v, shutting down (goroutines=%d requests=%d)\n",
			sig, runtime.NumGoroutine(), s.requests.Load())
	case err := <-served:
		fmt.Fprintln(os.Stderr, "leaky-service:", err)
		os.Exit(1)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "leaky-service: shutdown:", err)
		os.Exit(1)
	}
}
