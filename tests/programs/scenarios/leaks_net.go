package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

func init() {
	register("tcp-no-deadline", "leak", setupTCPNoDeadline)
	register("http-body-unclosed", "leak", setupHTTPBodyUnclosed)
	register("handler-hang", "leak", setupHandlerHang)
	register("_http-peer", "helper", setupHTTPPeer)
}

func listenLocal() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("listen: %v", err)
	}
	return ln
}

// ---- tcp-no-deadline: conn.Read without a deadline against a silent peer ----

// silentPeer accepts connections and never writes (nor closes) them: one goroutine in total.
//
//go:noinline
func silentPeer(ln net.Listener, mu *sync.Mutex, held *[]net.Conn) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		*held = append(*held, c)
		mu.Unlock()
	}
}

//go:noinline
func leakTCPNoDeadline(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 512)
	// BUG: no c.SetReadDeadline: a silent peer blocks this forever.
	n, err := c.Read(buf) // sfgi:blocks tcp-no-deadline
	sink(n)
	sink(err)
}

//go:noinline
func spawnTCPNoDeadline(addr string, req int) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fatal("dial: %v", err)
	}
	fmt.Fprintf(c, "GET status %d\n", req)
	go leakTCPNoDeadline(c) // sfgi:spawns tcp-no-deadline
	return 1
}

func setupTCPNoDeadline(cfg *config) {
	ln := listenLocal()
	var mu sync.Mutex
	var held []net.Conn
	go silentPeer(ln, &mu, &held)
	addr := ln.Addr().String()
	startLeaking(cfg, func(i int) int { return spawnTCPNoDeadline(addr, i) })
}

// ---- http-body-unclosed: response bodies never closed or drained ----

// startHTTPPeer runs an HTTP server in a helper child process (scenarios _http-peer), so the
// target process only holds the client side, as in a real service calling another one.
func startHTTPPeer() string {
	exe, err := os.Executable()
	if err != nil {
		fatal("executable: %v", err)
	}
	cmd := exec.Command(exe, "_http-peer")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		fatal("pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		fatal("start peer: %v", err)
	}
	cleanups = append(cleanups, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		fatal("peer: %q %v", line, err)
	}
	// Close our end of the pipe only after the line was read; the child never writes again.
	return strings.TrimSpace(strings.TrimPrefix(line, "listening "))
}

func setupHTTPPeer(cfg *config) {
	ln := listenLocal()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"items":[1,2,3]}`, r.URL.Path)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Printf("listening %s\n", ln.Addr())
}

//go:noinline
func spawnHTTPBodyUnclosed(client *http.Client, url string) int {
	resp, err := client.Get(url) // the transport dials a new conn: net/http starts readLoop/writeLoop
	if err != nil {
		fatal("get: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		fatal("status %d", resp.StatusCode)
	}
	// BUG: only the status is looked at; resp.Body is neither drained nor closed, so the
	// persistConn can never be reused and its readLoop/writeLoop goroutines stay forever.
	return 2
}

func setupHTTPBodyUnclosed(cfg *config) {
	url := "http://" + startHTTPPeer() + "/v1/health"
	tr := http.DefaultTransport.(*http.Transport).Clone()
	client := &http.Client{Transport: tr}
	startLeaking(cfg, func(i int) int { return spawnHTTPBodyUnclosed(client, url) })
}

// ---- handler-hang: a server handler blocks forever; a local client keeps calling it ----

type configStore struct {
	loaded chan struct{} // closed once the initial load completed: the loader crashed, never
	data   map[string]string
}

//go:noinline
func leakHandlerHang(w http.ResponseWriter, r *http.Request, s *configStore) {
	<-s.loaded // sfgi:blocks handler-hang (ignores r.Context(): the client is long gone)
	fmt.Fprintln(w, s.data[r.URL.Path])
}

//go:noinline
func spawnHandlerHang(client *http.Client, url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req) // times out; the server's handler goroutine stays
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return 1
}

func setupHandlerHang(cfg *config) {
	store := &configStore{loaded: make(chan struct{}), data: map[string]string{}}
	ln := listenLocal()
	mux := http.NewServeMux()
	mux.HandleFunc("/config/", func(w http.ResponseWriter, r *http.Request) { leakHandlerHang(w, r, store) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln) // net/http.(*Server).Serve starts one (*conn).serve goroutine per connection
	url := "http://" + ln.Addr().String() + "/config/feature-flags"
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	startLeaking(cfg, func(i int) int { return spawnHandlerHang(client, url) })
}
