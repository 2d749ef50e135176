// Command grpc is a real gRPC server and its clients in one process, built against the gRPC-Go
// sources Debian ships (golang-google-grpc-dev, 1.33.3), for trying SFGI on a real server
// (issue #20). No protoc: it serves the standard health service (grpc.health.v1.Health), whose
// generated code Debian ships.
//
// Shapes, all healthy until the leak is switched on:
//   - 5 client connections (grpc.ClientConn) with keepalive pings, to the server on loopback;
//   - 10 Health.Watch server streams whose clients stay connected and idle (the stock
//     health.Server handler, parked in a select on its update channel and ctx.Done());
//   - a purge loop in the server: select on time.After(30s) and a stop channel;
//   - a unary Health.Check load from in-process clients, paced to -rps requests per second by a
//     token channel shared by -workers goroutines (0 = no load: the idle trial).
//
// On SIGUSR1 a leak starts: every -leak-every a client opens a Watch for service "leak",
// gives up after 200 ms and goes away; the server handler for "leak" waits in a select on a data
// channel and a stop channel that nothing ever sends on or closes, ignoring ctx.Done(), so one
// handler goroutine per request stays blocked for good.
// SIGTERM/SIGINT stop the program.
//
// Build (offline, GOPATH mode against Debian's sources; go.mod is ignored then):
//
//	apt-get install -y golang-google-grpc-dev
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOTOOLCHAIN=local go build -o grpc-trial .
//
// It prints "ready addr=<addr> ... pid=<pid>" once it serves and its clients are connected.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// leakyHealth is the stock health server, except that a Watch for service "leak" never returns.
type leakyHealth struct {
	*health.Server
	never   chan struct{}                      // nothing ever sends on or closes it
	updates chan *healthpb.HealthCheckResponse // nothing ever sends on it
	leaked  int64
}

func (h *leakyHealth) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	if in.Service == "leak" {
		atomic.AddInt64(&h.leaked, 1)
		// The bug: waits for an update or a stop that never come, ignoring
		// stream.Context().Done(), so it outlives its client.
		select {
		case u := <-h.updates:
			return stream.Send(u)
		case <-h.never:
			return nil
		}
	}
	return h.Server.Watch(in, stream)
}

// purgeLoop is a periodic job of the server: a select on time.After and a stop channel.
func purgeLoop(stop <-chan struct{}, purged *int64) {
	for {
		select {
		case <-time.After(30 * time.Second):
			atomic.AddInt64(purged, 1)
		case <-stop:
			return
		}
	}
}

func main() {
	rps := flag.Int("rps", 3000, "unary Health.Check requests per second from in-process clients (0: idle)")
	workers := flag.Int("workers", 8, "client goroutines sending the unary load")
	conns := flag.Int("conns", 5, "client connections (with keepalive)")
	streams := flag.Int("streams", 10, "idle Health.Watch streams kept open")
	leakEvery := flag.Duration("leak-every", 100*time.Millisecond, "after SIGUSR1: one leaked Watch handler per this period")
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 20 * time.Second, Timeout: 5 * time.Second}),
	)
	hs := &leakyHealth{Server: health.NewServer(), never: make(chan struct{}), updates: make(chan *healthpb.HealthCheckResponse)}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() {
		if err := srv.Serve(lis); err != nil {
			log.Printf("serve: %v", err)
		}
	}()

	stop := make(chan struct{})
	var purged int64
	go purgeLoop(stop, &purged)

	// Client connections with keepalive.
	addr := lis.Addr().String()
	ccs := make([]*grpc.ClientConn, *conns)
	for i := range ccs {
		ccs[i], err = grpc.Dial(addr, grpc.WithInsecure(), grpc.WithBlock(),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}))
		if err != nil {
			log.Fatal(err)
		}
	}
	clients := make([]healthpb.HealthClient, len(ccs))
	for i, cc := range ccs {
		clients[i] = healthpb.NewHealthClient(cc)
	}

	// Idle watch streams whose clients stay connected.
	ctx, cancel := context.WithCancel(context.Background())
	var watchUpdates int64
	var started sync.WaitGroup
	for i := 0; i < *streams; i++ {
		started.Add(1)
		go func(c healthpb.HealthClient) {
			st, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
			if err != nil {
				log.Fatalf("watch: %v", err)
			}
			first := true
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
				atomic.AddInt64(&watchUpdates, 1)
				if first {
					first = false
					started.Done()
				}
			}
		}(clients[i%len(clients)])
	}
	started.Wait()

	// Unary load: a ticker fills a token channel; the workers share it.
	var okCalls, errCalls int64
	if *rps > 0 {
		tokens := make(chan struct{}, *rps)
		go func() {
			const tick = 10 * time.Millisecond
			per := float64(*rps) * tick.Seconds()
			t := time.NewTicker(tick)
			defer t.Stop()
			acc := 0.0
			for {
				select {
				case <-t.C:
					acc += per
					for ; acc >= 1; acc-- {
						select {
						case tokens <- struct{}{}:
						default:
						}
					}
				case <-stop:
					return
				}
			}
		}()
		for w := 0; w < *workers; w++ {
			go func(c healthpb.HealthClient) {
				for {
					select {
					case <-tokens:
					case <-stop:
						return
					}
					cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := c.Check(cctx, &healthpb.HealthCheckRequest{Service: "svc"})
					ccancel()
					if err != nil {
						atomic.AddInt64(&errCalls, 1)
					} else {
						atomic.AddInt64(&okCalls, 1)
					}
				}
			}(clients[w%len(clients)])
		}
	}

	// The leak, on SIGUSR1: clients that give up on a Watch whose handler never returns.
	var leakOn int32
	startLeak := func() {
		if !atomic.CompareAndSwapInt32(&leakOn, 0, 1) {
			return
		}
		log.Printf("leak on: one blocked Watch handler per %v", *leakEvery)
		go func() {
			t := time.NewTicker(*leakEvery)
			defer t.Stop()
			n := 0
			for {
				select {
				case <-t.C:
				case <-stop:
					return
				}
				n++
				go func(c healthpb.HealthClient) {
					lctx, lcancel := context.WithTimeout(ctx, 200*time.Millisecond)
					defer lcancel()
					st, err := c.Watch(lctx, &healthpb.HealthCheckRequest{Service: "leak"})
					if err != nil {
						return
					}
					st.Recv() // DeadlineExceeded after 200 ms; the client is gone then
				}(clients[n%len(clients)])
			}
		}()
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("ready addr=%s conns=%d streams=%d rps=%d pid=%d\n", addr, *conns, *streams, *rps, os.Getpid())

	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	var lastOK int64
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				startLeak()
				continue
			}
			close(stop)
			cancel()
			for _, cc := range ccs {
				cc.Close()
			}
			srv.Stop()
			fmt.Printf("stopped ok=%d errors=%d leaked=%d\n", atomic.LoadInt64(&okCalls), atomic.LoadInt64(&errCalls), atomic.LoadInt64(&hs.leaked))
			return
		case <-report.C:
			ok := atomic.LoadInt64(&okCalls)
			log.Printf("unary ok=%d (%.0f/s) errors=%d watch-updates=%d leaked-handlers=%d purges=%d",
				ok, float64(ok-lastOK)/10, atomic.LoadInt64(&errCalls), atomic.LoadInt64(&watchUpdates), atomic.LoadInt64(&hs.leaked), atomic.LoadInt64(&purged))
			lastOK = ok
		}
	}
}
