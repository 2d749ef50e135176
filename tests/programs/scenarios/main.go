// Command scenarios is the set of real Go target programs SFGI's tests and `cargo xtask eval`
// run against: each scenario either leaks goroutines the way real services do, or is a healthy
// look-alike whose goroutines sit in the same states but never grow.
//
//	scenarios <name> [-rate 100ms] [-max 200] [-delay 0] [-burst 100] [-run 0]
//
// It prints "ready pid=<pid>" once set up. SIGTERM/SIGINT print "ok" and exit 0; so does the end
// of -run D when D > 0. Leak scenarios (after -delay) create one leak every -rate until -max
// goroutines have leaked, then stop creating (burst-leak creates -burst leaks at once instead).
//
// Every leak blocks in its own non-inlined function (main.leak*) started by its own non-inlined
// spawner (main.spawn*), so the blocking site and the creation site are stable names. The line
// where a scenario's goroutines block is marked "sfgi:blocks <scenario>" and its go statement
// "sfgi:spawns <scenario>"; tests compare file:line against these markers. tests/scenarios.toml
// describes every scenario (expected pattern, wait reason per Go version, functions, notes).
//
// Local stand-ins for golang.org/x/sync live in x/sync/{semaphore,errgroup} (same package, type
// and method names, so frames read scenarios/x/sync/semaphore.(*Weighted).Acquire).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	rate  time.Duration // time between two leaks
	max   int           // stop leaking once this many goroutines leaked
	delay time.Duration // before the first leak
	burst int           // one-shot burst size (burst-leak)
	run   time.Duration // exit on our own after this long (0: never)
}

type scenario struct {
	kind  string // "leak" or "healthy"
	setup func(cfg *config)
	// defaults overriding the global flag defaults when the flag is not given
	rate time.Duration
	max  int
}

var scenarios = map[string]scenario{}

func register(name, kind string, setup func(cfg *config)) {
	scenarios[name] = scenario{kind: kind, setup: setup}
}

func registerWith(name, kind string, rate time.Duration, max int, setup func(cfg *config)) {
	scenarios[name] = scenario{kind: kind, setup: setup, rate: rate, max: max}
}

// cleanups run before "ok" is printed (e.g. to kill helper processes).
var cleanups []func()

func usage() {
	names := make([]string, 0, len(scenarios))
	for n, s := range scenarios {
		if !strings.HasPrefix(n, "_") {
			names = append(names, fmt.Sprintf("  %-26s %s", n, s.kind))
		}
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: scenarios <name> [-rate D] [-max N] [-delay D] [-burst N] [-run D]\n%s\n",
		strings.Join(names, "\n"))
	os.Exit(2)
}

// leakLoop calls spawn every cfg.rate (catching up when behind, so high rates hold on average)
// until spawn reports cfg.max leaked goroutines. spawn returns how many goroutines it leaked.
//
//go:noinline
func leakLoop(cfg *config, spawn func(i int) int) {
	if cfg.delay > 0 {
		time.Sleep(cfg.delay)
	}
	leaked := 0
	next := time.Now()
	for i := 0; leaked < cfg.max; i++ {
		leaked += spawn(i)
		next = next.Add(cfg.rate)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
}

// startLeaking runs leakLoop in the background.
func startLeaking(cfg *config, spawn func(i int) int) {
	go leakLoop(cfg, spawn)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scenarios: "+format+"\n", args...)
	for _, c := range cleanups {
		c()
	}
	os.Exit(2)
}

func main() {
	args := os.Args[1:]
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("scenarios", flag.ExitOnError)
	cfg := &config{}
	fs.DurationVar(&cfg.rate, "rate", 100*time.Millisecond, "time between two leaked goroutines")
	fs.IntVar(&cfg.max, "max", 200, "stop leaking after this many leaked goroutines")
	fs.DurationVar(&cfg.delay, "delay", 0, "wait this long before the first leak")
	fs.IntVar(&cfg.burst, "burst", 100, "size of a one-shot burst (burst-leak)")
	fs.DurationVar(&cfg.run, "run", 0, "exit (printing ok) after this long; 0 = run until SIGTERM")
	fs.Usage = usage
	_ = fs.Parse(args)
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	sc, ok := scenarios[name]
	if !ok {
		usage()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if sc.rate > 0 && !set["rate"] {
		cfg.rate = sc.rate
	}
	if sc.max > 0 && !set["max"] {
		cfg.max = sc.max
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	sc.setup(cfg)
	if strings.HasPrefix(name, "_") { // helper processes print their own ready line
		<-sigs
		os.Exit(0)
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())

	var deadline <-chan time.Time
	if cfg.run > 0 {
		deadline = time.After(cfg.run)
	}
	select {
	case <-sigs:
	case <-deadline:
	}
	for _, c := range cleanups {
		c()
	}
	fmt.Println("ok")
	os.Exit(0)
}

// sink keeps values alive and the work real without the compiler removing it.
var sinkCounter atomic.Uint64

//go:noinline
func sink(v any) {
	if v != nil {
		sinkCounter.Add(1)
	}
}
