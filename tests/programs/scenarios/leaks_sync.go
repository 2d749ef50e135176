package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"scenarios/x/sync/errgroup"
	"scenarios/x/sync/semaphore"
)

func init() {
	register("mutex-error-path", "leak", func(cfg *config) {
		a := &account{}
		startLeaking(cfg, func(i int) int { return spawnMutexErrorPath(a, i) })
	})
	register("mutex-abba", "leak", func(cfg *config) { startLeaking(cfg, spawnMutexABBA) })
	register("rwmutex-rlock", "leak", func(cfg *config) {
		c := &rwCache{m: map[string]string{"a": "1"}}
		startLeaking(cfg, func(i int) int { return spawnRWMutexRLock(c, i) })
	})
	register("waitgroup-mismatch", "leak", func(cfg *config) { startLeaking(cfg, spawnWaitGroupMismatch) })
	register("cond-nosignal", "leak", func(cfg *config) { startLeaking(cfg, spawnCondNoSignal) })
	register("semaphore-held", "leak", func(cfg *config) {
		sem := semaphore.NewWeighted(semaphoreHeldPermits)
		startLeaking(cfg, func(i int) int { return spawnSemaphoreHeld(sem, i) })
	})
	register("semaphore-errgroup", "leak", func(cfg *config) {
		g := new(errgroup.Group)
		g.SetLimit(errgroupLimit)
		startLeaking(cfg, func(i int) int { return spawnSemaphoreErrgroup(g, i) })
	})
	register("context-never-cancelled", "leak", func(cfg *config) { startLeaking(cfg, spawnContextNeverCancelled) })
}

// ---- mutex-error-path: an early error return that forgets Unlock ----

type account struct {
	mu      sync.Mutex
	balance int
}

var errInsufficientFunds = errors.New("insufficient funds")

//go:noinline
func leakMutexErrorPath(a *account, amount int) error {
	a.mu.Lock() // sfgi:blocks mutex-error-path
	if amount > a.balance {
		return errInsufficientFunds // BUG: returns with a.mu held
	}
	a.balance -= amount
	a.mu.Unlock()
	return nil
}

//go:noinline
func spawnMutexErrorPath(a *account, req int) int {
	go leakMutexErrorPath(a, 100+req) // sfgi:spawns mutex-error-path
	if req == 0 {
		return 0 // the first withdrawal fails and returns holding the lock; every later one blocks
	}
	return 1
}

// ---- mutex-abba: transfers locking two accounts in opposite orders ----

type abbaAccount struct {
	mu      sync.Mutex
	balance int
}

//go:noinline
func leakMutexABBA(from, to *abbaAccount, bothLocked *sync.WaitGroup, amount int) {
	from.mu.Lock()
	defer from.mu.Unlock()
	bothLocked.Done() // the race window, made certain: both transfers hold their first lock
	bothLocked.Wait()
	to.mu.Lock() // sfgi:blocks mutex-abba
	defer to.mu.Unlock()
	from.balance -= amount
	to.balance += amount
}

//go:noinline
func spawnMutexABBA(req int) int {
	alice, bob := &abbaAccount{balance: 100}, &abbaAccount{balance: 100}
	var bothLocked sync.WaitGroup
	bothLocked.Add(2)
	go leakMutexABBA(alice, bob, &bothLocked, 10) // sfgi:spawns mutex-abba
	go leakMutexABBA(bob, alice, &bothLocked, 20) // sfgi:spawns mutex-abba
	return 2
}

// ---- rwmutex-rlock: recursive RLock with a writer in between (RWR), readers pile up ----

type rwCache struct {
	mu sync.RWMutex
	m  map[string]string
}

//go:noinline
func (c *rwCache) lookup(key string) string {
	c.mu.RLock() // recursive read lock: blocks once a writer is waiting
	defer c.mu.RUnlock()
	return c.m[key]
}

// rwRecursiveReader holds a read lock and (via lookup) takes it again after a writer queued.
//
//go:noinline
func rwRecursiveReader(c *rwCache, writerQueued <-chan struct{}) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	<-writerQueued
	time.Sleep(20 * time.Millisecond) // the writer is parked in Lock by now
	sink(c.lookup("a"))
}

// rwRefresher is the writer: it waits for the outer read lock to go away, which never happens.
//
//go:noinline
func rwRefresher(c *rwCache, queued chan<- struct{}) {
	close(queued)
	c.mu.Lock()
	c.m["a"] = "2"
	c.mu.Unlock()
}

//go:noinline
func leakRWMutexRLock(c *rwCache, key string) {
	c.mu.RLock() // sfgi:blocks rwmutex-rlock
	defer c.mu.RUnlock()
	sink(c.m[key])
}

//go:noinline
func spawnRWMutexRLock(c *rwCache, req int) int {
	if req == 0 {
		queued := make(chan struct{})
		go rwRecursiveReader(c, queued)
		time.Sleep(5 * time.Millisecond) // the reader holds its first RLock
		go rwRefresher(c, queued)
		time.Sleep(50 * time.Millisecond) // RWR deadlock established
		return 2
	}
	go leakRWMutexRLock(c, "a") // sfgi:spawns rwmutex-rlock
	return 1
}

// ---- waitgroup-mismatch: Add(2) but only one Done ----

//go:noinline
func waitGroupFetch(wg *sync.WaitGroup, results chan<- string, source string) {
	defer wg.Done()
	results <- "from " + source
}

//go:noinline
func leakWaitGroupMismatch(wg *sync.WaitGroup, results chan string) {
	wg.Wait() // sfgi:blocks waitgroup-mismatch
	close(results)
}

//go:noinline
func spawnWaitGroupMismatch(req int) int {
	var wg sync.WaitGroup
	results := make(chan string, 2)
	wg.Add(2) // primary + replica
	go waitGroupFetch(&wg, results, "primary")
	cached := true
	if !cached { // BUG: the replica fetch is skipped on a cache hit but Add(2) stays
		go waitGroupFetch(&wg, results, "replica")
	}
	go leakWaitGroupMismatch(&wg, results) // sfgi:spawns waitgroup-mismatch
	return 1
}

// ---- cond-nosignal: a consumer waits on a Cond that nobody will ever signal ----

type condQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []int
	closed bool
}

//go:noinline
func leakCondNoSignal(q *condQueue) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait() // sfgi:blocks cond-nosignal
	}
}

//go:noinline
func spawnCondNoSignal(req int) int {
	q := &condQueue{}
	q.cond = sync.NewCond(&q.mu)
	go leakCondNoSignal(q) // sfgi:spawns cond-nosignal
	// BUG: the producer side is torn down (q.closed = true) without q.cond.Broadcast().
	return 1
}

// ---- semaphore-held: permits taken and never released on an error path ----

const semaphoreHeldPermits = 4

var errUpstream = errors.New("upstream unavailable")

//go:noinline
func callUpstream(req int) error { return errUpstream }

//go:noinline
func leakSemaphoreHeld(sem *semaphore.Weighted, req int) error {
	if err := sem.Acquire(context.Background(), 1); err != nil { // sfgi:blocks semaphore-held
		return err
	}
	if err := callUpstream(req); err != nil {
		return err // BUG: sem.Release(1) missing on the error path
	}
	sem.Release(1)
	return nil
}

//go:noinline
func spawnSemaphoreHeld(sem *semaphore.Weighted, req int) int {
	go leakSemaphoreHeld(sem, req) // sfgi:spawns semaphore-held
	if req < semaphoreHeldPermits {
		return 0 // these take a permit each and exit without releasing it
	}
	return 1
}

// ---- semaphore-errgroup: errgroup.SetLimit with tasks that never finish ----

const errgroupLimit = 2

//go:noinline
func errgroupTask(reply <-chan error) error {
	return <-reply // an upstream reply that never comes
}

//go:noinline
func leakSemaphoreErrgroup(g *errgroup.Group, req int) {
	reply := make(chan error)
	g.Go(func() error { return errgroupTask(reply) }) // sfgi:blocks semaphore-errgroup
}

//go:noinline
func spawnSemaphoreErrgroup(g *errgroup.Group, req int) int {
	go leakSemaphoreErrgroup(g, req) // sfgi:spawns semaphore-errgroup
	return 1                         // the first errgroupLimit leave a task goroutine (chan receive) instead
}

// ---- context-never-cancelled: cancel funcs dropped, goroutines wait on ctx.Done() forever ----

// requestContext is a custom Context (like a framework's request context). It is not a
// *cancelCtx, so context.WithCancel(requestContext) makes propagateCancel start a goroutine
// that waits for either side to be done.
type requestContext struct {
	done chan struct{}
	id   int
}

func (c *requestContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *requestContext) Done() <-chan struct{}       { return c.done }
func (c *requestContext) Err() error                  { return nil }
func (c *requestContext) Value(key any) any           { return nil }

//go:noinline
func leakContextNeverCancelled(ctx context.Context, name string) {
	select {
	case <-ctx.Done(): // sfgi:blocks context-never-cancelled
	}
	sink(name)
}

//go:noinline
func spawnContextNeverCancelled(req int) int {
	var parent context.Context = context.Background()
	leaked := 1
	if req%2 == 1 {
		parent = &requestContext{done: make(chan struct{}), id: req}
		leaked = 2 // + context.(*cancelCtx).propagateCancel's goroutine
	}
	ctx, _ := context.WithCancel(parent)                            // BUG: the cancel func is dropped
	go leakContextNeverCancelled(ctx, fmt.Sprintf("watch-%d", req)) // sfgi:spawns context-never-cancelled
	return leaked
}
