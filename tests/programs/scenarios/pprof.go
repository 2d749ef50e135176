//go:build sfgipprof

// Built with `-tags sfgipprof` (`cargo xtask eval --source pprof`), every scenario also serves
// net/http/pprof on 127.0.0.1:0 and prints "pprof http://ADDR pid=PID" before its ready line,
// so `sfgi watch --pprof` can judge it; helper processes (`_name`, which print their own first
// line to their parent) do not. The default build (the eBPF evaluation and the tests) has no
// HTTP server and no extra goroutine.

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strings"
)

func init() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "_") {
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "scenarios: pprof: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("pprof http://%s pid=%d\n", l.Addr(), os.Getpid())
	go func() { _ = http.Serve(l, nil) }()
}
