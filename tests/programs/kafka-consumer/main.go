// Command kafka-consumer is a target for SFGI's rules-file test: a service with -consumers
// Kafka consumers (github.com/segmentio/kafka-go, replaced by the local stand-in ./kafka-go),
// each a goroutine looping on Reader.ReadMessage, idle because the topic is quiet. Idle
// consumers are healthy residents (sfgi-cli/rules/examples/kafka.toml says so); the built-in
// rules alone see long-blocked selects.
//
//	kafka-consumer [-consumers 6] [-leak-every 0]
//
// With -leak-every D > 0 it also has the bug the example warns about: every D a "request"
// (main.handleRequest) opens a Reader of its own and starts a consumer on it, and never closes
// it, so idle consumers created by main.handleRequest pile up (-leak-max of them).
//
// Prints "ready pid=<pid>" once every consumer is started; SIGTERM/SIGINT print "ok" and exit 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

//go:noinline
func consume(ctx context.Context, r *kafka.Reader, handled *int64) {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return
		}
		*handled += int64(len(m.Value))
	}
}

//go:noinline
func startConsumers(ctx context.Context, n int) []*kafka.Reader {
	readers := make([]*kafka.Reader, n)
	handled := make([]int64, n)
	for i := range readers {
		readers[i] = kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{"kafka-1:9092"},
			GroupID: "billing",
			Topic:   fmt.Sprintf("invoices-%d", i),
		})
		go consume(ctx, readers[i], &handled[i]) // sfgi:spawns
	}
	return readers
}

// handleRequest opens a Reader per request and forgets it: the leak.
//
//go:noinline
func handleRequest(ctx context.Context, id int, handled *int64) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{"kafka-1:9092"},
		GroupID: fmt.Sprintf("request-%d", id),
		Topic:   "replies",
	})
	go consume(ctx, r, handled) // sfgi:spawns (never closed)
}

//go:noinline
func requestLoop(ctx context.Context, every time.Duration, max int) {
	var handled int64
	for i := 0; i < max; i++ {
		handleRequest(ctx, i, &handled)
		time.Sleep(every)
	}
}

func main() {
	n := flag.Int("consumers", 6, "consumers to start")
	leakEvery := flag.Duration("leak-every", 0, "open (and leak) a Reader per request every D (0: never)")
	leakMax := flag.Int("leak-max", 1000, "requests to make with -leak-every")
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	// Make ctx's done channel now, before the readers' channels, so it has the lowest address
	// and comes first in every consumer's select (Go locks a select's channels in address
	// order): the consumers then share their first channel, like a pool's workers do, and only
	// the rest of the select tells them apart.
	_ = ctx.Done()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	readers := startConsumers(ctx, *n)
	if *leakEvery > 0 {
		go requestLoop(ctx, *leakEvery, *leakMax)
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())
	<-sigs
	cancel()
	for _, r := range readers {
		_ = r.Close()
	}
	fmt.Println("ok")
}
