// Command busy is a busy HTTP reverse proxy for SFGI's trust tests: what a production service
// looks like under load, then a pile-up behind an upstream that hangs.
//
//	busy
//
// It prints "ready addr=HOST:PORT pid=PID" once serving. Endpoints:
//
//	/work  proxied (httputil.ReverseProxy) to a fast in-process upstream: every request
//	       finishes in well under a millisecond, over keep-alive connections
//	/hang  proxied to an upstream that accepts connections and never answers
//
// SIGUSR1 starts a pile-up: from then on the process itself sends 10 requests a second to
// /hang (each on its own connection, no timeout), and each stays blocked for good: the
// handler in the proxy's round trip, plus the connections' goroutines. It prints
// "pileup started" when the first request is sent. SIGTERM or SIGINT prints "bye" and exits 0.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func listen() net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return l
}

// fastUpstream answers every request at once.
func fastUpstream() string {
	l := listen()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	return l.Addr().String()
}

// hungUpstream accepts connections, reads what comes and never answers.
func hungUpstream() string {
	l := listen()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	return l.Addr().String()
}

func proxy(addr string) *httputil.ReverseProxy {
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	p.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	return p
}

//go:noinline
func pileup(addr string) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	first := true
	for range t.C {
		go func() {
			resp, err := client.Get("http://" + addr + "/hang")
			if err == nil {
				resp.Body.Close()
			}
		}()
		if first {
			fmt.Println("pileup started")
			first = false
		}
	}
}

func main() {
	mux := http.NewServeMux()
	mux.Handle("/work", proxy(fastUpstream()))
	mux.Handle("/hang", proxy(hungUpstream()))
	l := listen()
	go http.Serve(l, mux)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("ready addr=%s pid=%d\n", l.Addr(), os.Getpid())
	for s := range sigs {
		switch s {
		case syscall.SIGUSR1:
			go pileup(l.Addr().String())
		default:
			fmt.Println("bye")
			return
		}
	}
}
