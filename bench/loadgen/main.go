// Command loadgen drives gotarget's HTTP service with a fixed number of keep-alive connections
// for a fixed time (closed loop: each connection sends its next request when the last one is
// answered) and prints one JSON line: requests, errors, throughput and latency percentiles.
//
//	loadgen -url http://127.0.0.1:PORT/work -c 16 -d 5s
package main

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	conns := flag.Int("c", 16, "connections")
	dur := flag.Duration("d", 5*time.Second, "duration")
	flag.Parse()
	tr := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	deadline := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			e := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := client.Get(*url)
				if err != nil {
					e++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i].Nanoseconds()) / 1e3
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requests": len(all),
		"errors":   errs,
		"seconds":  el.Seconds(),
		"rps":      float64(len(all)) / el.Seconds(),
		"p50_us":   pct(0.50),
		"p99_us":   pct(0.99),
		"p999_us":  pct(0.999),
	})
}
