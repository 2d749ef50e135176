package main

import (
	"syscall"
)

func init() {
	register("syscall-pipe", "leak", setupSyscallPipe)
}

// ---- syscall-pipe: goroutines truly in a blocking read(2) (_Gsyscall) ----
//
// os.Pipe would not do: Go puts pipes into non-blocking mode and parks readers in the netpoller
// ("IO wait"). Here the pipe is made with syscall.Pipe2 (blocking) and read with syscall.Read,
// as code that inherits a raw fd from a parent/child process does, so each goroutine sits in
// the read syscall and holds an OS thread. The write end is kept open and never written.

//go:noinline
func leakSyscallPipe(fd int) {
	buf := make([]byte, 4096)
	n, err := syscall.Read(fd, buf) // sfgi:blocks syscall-pipe
	sink(n)
	sink(err)
}

//go:noinline
func spawnSyscallPipe(writers *[]int) int {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		fatal("pipe2: %v", err)
	}
	*writers = append(*writers, p[1]) // held open, never written
	go leakSyscallPipe(p[0])          // sfgi:spawns syscall-pipe
	return 1
}

func setupSyscallPipe(cfg *config) {
	var writers []int
	startLeaking(cfg, func(i int) int { return spawnSyscallPipe(&writers) })
}
