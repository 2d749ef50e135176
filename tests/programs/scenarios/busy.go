package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// A busy reverse proxy, healthy, and a pile-up behind an upstream that hangs. The busy load
// makes SFGI's overhead budget step down, so both are judged from inventory re-reads.

func init() {
	register("busy-proxy", "healthy", setupBusyProxy)
	register("upstream-pileup", "leak", func(cfg *config) { startLeaking(cfg, spawnUpstreamPileup(cfg)) })
}

// proxyTo is a reverse proxy to addr with a pool big enough for the load below.
func proxyTo(addr string) *httputil.ReverseProxy {
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	p.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	return p
}

// fastUpstream answers at once; returns its address.
func fastUpstream() string {
	ln := listenLocal()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	return ln.Addr().String()
}

// busyProxy serves /work (proxied to a fast upstream) and /hang (proxied to hang); returns
// its address.
func busyProxy(hang string) string {
	mux := http.NewServeMux()
	mux.Handle("/work", proxyTo(fastUpstream()))
	if hang != "" {
		mux.Handle("/hang", proxyTo(hang))
	}
	ln := listenLocal()
	go http.Serve(ln, mux)
	return ln.Addr().String()
}

// ---- busy-proxy: ~3k requests/s through a reverse proxy, every request answered ----

func setupBusyProxy(cfg *config) {
	setupBusyProxyAt(busyProxy(""))
}

// busyClient sends a request every ~2.5 ms over a keep-alive connection, forever.
//
//go:noinline
func busyClient(client *http.Client, url string) {
	t := time.NewTicker(2500 * time.Microsecond)
	defer t.Stop()
	for range t.C {
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// ---- upstream-pileup: requests through the busy proxy to an upstream that never answers ----

// hungUpstream accepts connections and reads them without ever answering; returns its address.
func hungUpstream() string {
	ln := listenLocal()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go hangRead(c)
		}
	}()
	return ln.Addr().String()
}

//go:noinline
func hangRead(c net.Conn) { io.Copy(io.Discard, c) }

func spawnUpstreamPileup(cfg *config) func(i int) int {
	addr := busyProxy(hungUpstream())
	// The busy load too: the pile-up has to be seen through a stepped-down budget.
	setupBusyProxyAt(addr)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + addr + "/hang"
	return func(i int) int {
		go leakUpstreamPileup(client, url) // sfgi:spawns upstream-pileup
		return 1
	}
}

// setupBusyProxyAt starts 8 paced clients of addr's /work.
func setupBusyProxyAt(addr string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	for i := 0; i < 8; i++ {
		go busyClient(client, "http://"+addr+"/work")
	}
}

//go:noinline
func leakUpstreamPileup(client *http.Client, url string) {
	resp, err := client.Get(url) // sfgi:blocks upstream-pileup
	if err == nil {
		resp.Body.Close()
	}
}
