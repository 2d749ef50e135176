package main

import (
	"fmt"
	"time"
)

func init() {
	register("poller-never-stopped", "leak", func(cfg *config) { startLeaking(cfg, spawnPollerNeverStopped) })
	register("ticker-loop-leak", "leak", func(cfg *config) { startLeaking(cfg, spawnTickerLoopLeak) })
}

// ---- poller-never-stopped: one sleep/poll loop per subscription, never stopped ----

type subscription struct {
	topic  string
	cursor int
}

//go:noinline
func pollSubscription(s *subscription) {
	s.cursor++
	sink(s.topic)
}

//go:noinline
func leakPollerNeverStopped(s *subscription) {
	for {
		time.Sleep(200 * time.Millisecond) // sfgi:blocks poller-never-stopped
		pollSubscription(s)
	}
}

//go:noinline
func spawnPollerNeverStopped(req int) int {
	s := &subscription{topic: fmt.Sprintf("orders.%d", req)}
	go leakPollerNeverStopped(s) // sfgi:spawns poller-never-stopped
	// BUG: Unsubscribe has no way to stop the loop.
	return 1
}

// ---- ticker-loop-leak: a refresh ticker started per request and never stopped ----

type sessionCache struct {
	key       string
	refreshes int
}

//go:noinline
func refreshSession(c *sessionCache) {
	c.refreshes++
	sink(c.key)
}

//go:noinline
func leakTickerLoopLeak(c *sessionCache) {
	t := time.NewTicker(100 * time.Millisecond) // never stopped
	for range t.C {                             // sfgi:blocks ticker-loop-leak
		refreshSession(c)
	}
}

//go:noinline
func spawnTickerLoopLeak(req int) int {
	c := &sessionCache{key: fmt.Sprintf("session-%d", req)}
	go leakTickerLoopLeak(c) // sfgi:spawns ticker-loop-leak
	return 1
}
