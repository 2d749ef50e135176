// Command leaks is a target for SFGI's integration tests: it leaks goroutines of one kind.
//
//	leaks <pattern> [-delay 300ms] [-count 40] [-interval 50ms] [-beat 10ms] [-goids]
//	      [-leakprofile 500ms]
//
// It prints "ready pid=<pid>" once set up, then (after -delay) leaks one new goroutine of the
// chosen pattern every -interval until -count of them exist, then prints "spawned n=<count>" and
// stops creating. Every
// pattern blocks in its own non-inlined function (main.leak*) started by its own non-inlined
// spawner (main.spawn*), so both the blocking site and the creation site are stable names.
// The line where each pattern blocks is marked "sfgi:blocks" and its go statement "sfgi:spawns":
// the tests compare SFGI's file:line against these markers, so keep them on the right lines.
//
// -goids makes every leaking goroutine print "leaked goid=<goid> func=<main.leak...>" just before
// it blocks, so tests can compare the goids SFGI reports with the real ones. -leakprofile D runs
// Go's own goroutine leak detector (pprof.Lookup("goroutineleak"), Go >= 1.26) every D, which
// marks goroutines blocked on unreachable channels and locks _Gleaked ("(leaked)" after the wait
// reason in a SIGQUIT dump); without that profile it prints "leakprofile unavailable" once.
//
// A heartbeat keeps doing real work (channel ping-pong with checked results and small
// allocations) so tests can tell that the process is unharmed after SFGI detached: SIGUSR1 prints
// "heartbeat=<n>", SIGTERM/SIGINT prints "heartbeat=<n> ok" and exits 0. A wrong ping-pong answer
// (which would mean registers or memory were corrupted) prints "heartbeat corrupted" and exits 3.
//
// Patterns (blocking function: Go wait reason):
//
//	chan-send     main.leakChanSend:    chan send
//	chan-receive  main.leakChanReceive: chan receive
//	select        main.leakSelect:      select
//	mutex         main.leakMutex:       sync.Mutex.Lock
//	waitgroup     main.leakWaitGroup:   sync.WaitGroup.Wait (Go >= 1.24; "semacquire" before)
//	io            main.leakIOWait:      IO wait
//	nil-chan      main.leakNilChan:     chan receive (nil chan)
//	select-empty  main.leakSelectEmpty: select (no cases)
//	cond          main.leakCondWait:    sync.Cond.Wait
//	sleep         main.leakSleep:       sleep
//	all           every pattern above at once
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ---- -goids: report the real goid of every leaking goroutine ----

var printGoids bool

// noteLeaked prints "leaked goid=<goid> func=<caller>" (with -goids) for the calling goroutine.
//
//go:noinline
func noteLeaked() {
	if !printGoids {
		return
	}
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)] // "goroutine 42 [running]:..."
	f := strings.Fields(string(b))
	if len(f) < 2 || f[0] != "goroutine" {
		return
	}
	fn := "?"
	if pc, _, _, ok := runtime.Caller(1); ok {
		if f := runtime.FuncForPC(pc); f != nil {
			fn = f.Name()
		}
	}
	if _, err := strconv.ParseUint(f[1], 10, 64); err == nil {
		fmt.Printf("leaked goid=%s func=%s\n", f[1], fn)
	}
}

// leakProfileLoop runs Go's goroutine leak detector every d (Go >= 1.26).
func leakProfileLoop(d time.Duration) {
	p := pprof.Lookup("goroutineleak")
	if p == nil {
		fmt.Println("leakprofile unavailable")
		return
	}
	for {
		time.Sleep(d)
		_ = p.WriteTo(io.Discard, 0)
	}
}

// ---- chan send: the early-return timeout pattern ----

//go:noinline
func leakChanSend(result chan<- int) {
	noteLeaked()
	time.Sleep(2 * time.Millisecond) // the "slow backend"
	result <- 42                     // sfgi:blocks (nobody receives any more)
}

//go:noinline
func spawnChanSend() {
	result := make(chan int) // unbuffered: the bug
	go leakChanSend(result)  // sfgi:spawns
	select {
	case v := <-result:
		_ = v
	case <-time.After(time.Millisecond): // the caller gives up first
	}
}

// ---- chan receive ----

//go:noinline
func leakChanReceive(ch <-chan int) {
	noteLeaked()
	<-ch // sfgi:blocks
}

//go:noinline
func spawnChanReceive() {
	ch := make(chan int)
	go leakChanReceive(ch) // sfgi:spawns
}

// ---- select ----

//go:noinline
func leakSelect(a <-chan int, b chan<- int) {
	noteLeaked()
	select { // sfgi:blocks
	case <-a:
	case b <- 1:
	}
}

//go:noinline
func spawnSelect() {
	go leakSelect(make(chan int), make(chan int)) // sfgi:spawns
}

// ---- sync.Mutex ----

var lockedMu sync.Mutex // locked once in main, never unlocked

//go:noinline
func leakMutex() {
	noteLeaked()
	lockedMu.Lock() // sfgi:blocks
	lockedMu.Unlock()
}

//go:noinline
func spawnMutex() {
	go leakMutex() // sfgi:spawns
}

// ---- sync.WaitGroup ----

//go:noinline
func leakWaitGroup(wg *sync.WaitGroup) {
	noteLeaked()
	wg.Wait() // sfgi:blocks
}

//go:noinline
func spawnWaitGroup() {
	wg := new(sync.WaitGroup)
	wg.Add(1)            // no Done ever
	go leakWaitGroup(wg) // sfgi:spawns
}

// ---- IO wait ----

var (
	ioListener net.Listener
	ioKeepMu   sync.Mutex
	ioKeep     []net.Conn // the silent server sides; kept so finalizers never close them
)

//go:noinline
func leakIOWait(c net.Conn) {
	noteLeaked()
	buf := make([]byte, 64)
	_, _ = c.Read(buf) // sfgi:blocks (the peer never writes)
}

//go:noinline
func spawnIOWait() {
	c, err := net.Dial("tcp", ioListener.Addr().String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaks: dial:", err)
		os.Exit(2)
	}
	s, err := ioListener.Accept() // already in the backlog: returns at once
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaks: accept:", err)
		os.Exit(2)
	}
	ioKeepMu.Lock()
	ioKeep = append(ioKeep, s, c)
	ioKeepMu.Unlock()
	go leakIOWait(c) // sfgi:spawns
}

// ---- nil channel ----

//go:noinline
func leakNilChan() {
	noteLeaked()
	var ch chan int // forgot to make it
	<-ch            // sfgi:blocks
}

//go:noinline
func spawnNilChan() {
	go leakNilChan() // sfgi:spawns
}

// ---- empty select ----

//go:noinline
func leakSelectEmpty() {
	noteLeaked()
	select {} // sfgi:blocks
}

//go:noinline
func spawnSelectEmpty() {
	go leakSelectEmpty() // sfgi:spawns
}

// ---- sync.Cond ----

var (
	condMu sync.Mutex
	cond   = sync.NewCond(&condMu) // never signalled
)

//go:noinline
func leakCondWait() {
	noteLeaked()
	condMu.Lock()
	cond.Wait() // sfgi:blocks
	condMu.Unlock()
}

//go:noinline
func spawnCondWait() {
	go leakCondWait() // sfgi:spawns
}

// ---- sleep ----

//go:noinline
func leakSleep() {
	noteLeaked()
	for {
		time.Sleep(time.Hour) // sfgi:blocks
	}
}

//go:noinline
func spawnSleep() {
	go leakSleep() // sfgi:spawns
}

var patterns = map[string]func(){
	"chan-send":    spawnChanSend,
	"chan-receive": spawnChanReceive,
	"select":       spawnSelect,
	"mutex":        spawnMutex,
	"waitgroup":    spawnWaitGroup,
	"io":           spawnIOWait,
	"nil-chan":     spawnNilChan,
	"select-empty": spawnSelectEmpty,
	"cond":         spawnCondWait,
	"sleep":        spawnSleep,
}

// ---- heartbeat ----

var (
	heartbeat atomic.Uint64
	beat      = new(time.Duration)
)

//go:noinline
func ponger(in <-chan uint64, out chan<- uint64) {
	for x := range in {
		out <- x*2 + 1
	}
}

//go:noinline
func heartbeatLoop() {
	in, out := make(chan uint64), make(chan uint64)
	go ponger(in, out)
	var sink [][]byte
	for n := uint64(1); ; n++ {
		for i := uint64(0); i < 16; i++ {
			x := n*16 + i
			in <- x
			if got := <-out; got != x*2+1 {
				fmt.Printf("heartbeat corrupted: sent %d, got %d\n", x, got)
				os.Exit(3)
			}
			buf := make([]byte, 256+int(x%512))
			buf[0] = byte(x)
			sink = append(sink, buf)
		}
		if len(sink) > 4096 {
			sink = sink[:0]
		}
		heartbeat.Add(1)
		time.Sleep(*beat)
	}
}

func usage() {
	names := make([]string, 0, len(patterns))
	for n := range patterns {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: leaks <%s|all> [-delay D] [-count N] [-interval D] [-beat D] [-goids] [-leakprofile D]\n", strings.Join(names, "|"))
	os.Exit(2)
}

func main() {
	// Accept the pattern before or after the flags.
	args := os.Args[1:]
	pattern := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pattern, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("leaks", flag.ExitOnError)
	delay := fs.Duration("delay", 0, "wait this long before leaking")
	count := fs.Int("count", 40, "goroutines to leak per pattern")
	interval := fs.Duration("interval", 50*time.Millisecond, "time between two leaks")
	fs.DurationVar(beat, "beat", 10*time.Millisecond, "pause between two heartbeats (16 checked ping-pongs each)")
	fs.BoolVar(&printGoids, "goids", false, "print \"leaked goid=<goid> func=<function>\" from every leaking goroutine")
	leakProfile := fs.Duration("leakprofile", 0, "run Go's goroutine leak detector every D (0: never)")
	execAfter := fs.Duration("exec-after", 0, "after D, exec /bin/sleep 30 in place of this program (0: never)")
	fs.Usage = usage
	_ = fs.Parse(args)
	if *execAfter > 0 {
		go func() {
			time.Sleep(*execAfter)
			// Same PID, another program: a tracer must treat it as a new target.
			err := syscall.Exec("/bin/sleep", []string{"sleep", "30"}, os.Environ())
			fmt.Fprintln(os.Stderr, "exec:", err)
			os.Exit(4)
		}()
	}
	if pattern == "" && fs.NArg() > 0 {
		pattern = fs.Arg(0)
	}
	var spawners []func()
	if pattern == "all" {
		for _, s := range patterns {
			spawners = append(spawners, s)
		}
	} else if s, ok := patterns[pattern]; ok {
		spawners = []func(){s}
	} else {
		usage()
	}

	lockedMu.Lock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaks: listen:", err)
		os.Exit(2)
	}
	ioListener = ln

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	go heartbeatLoop()

	go func() {
		time.Sleep(*delay)
		for i := 0; i < *count; i++ {
			for _, s := range spawners {
				s()
			}
			time.Sleep(*interval)
		}
		fmt.Printf("spawned n=%d\n", *count)
	}()
	if *leakProfile > 0 {
		go leakProfileLoop(*leakProfile)
	}

	fmt.Printf("ready pid=%d\n", os.Getpid())
	for sig := range sigs {
		if sig == syscall.SIGUSR1 {
			fmt.Printf("heartbeat=%d\n", heartbeat.Load())
			continue
		}
		fmt.Printf("heartbeat=%d ok\n", heartbeat.Load())
		os.Exit(0)
	}
}
