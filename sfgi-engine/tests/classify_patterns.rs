//! Every pattern ID of the classifier, on park stacks copied from real goroutine dumps of Go
//! 1.21.13 and 1.27.3 (`tests/programs/leaks` plus small throwaway programs for the other shapes;
//! frame lists are the function names of `kill -QUIT` dumps, innermost first).
use sfgi_engine::classify::{Classification, Classifier, GroupFeatures, UNCLASSIFIED};
use sfgi_engine::goroutine::ChanKind;
use sfgi_engine::rules::RuleSet;
use std::path::PathBuf;

/// A group of `count` members parked for `reason` on `frames` (one function per line).
fn group(reason: &str, frames: &str, created_by: &str) -> GroupFeatures {
    GroupFeatures {
        wait_reason: reason.to_string(),
        park_frames: frames
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        created_by: created_by.to_string(),
        creation_frames: vec![created_by.to_string()],
        count: 3,
        distinct_objects: 3,
        creators: 1,
        ..Default::default()
    }
}

fn classify(f: &GroupFeatures) -> Classification {
    Classifier::builtin().classify(f)
}

#[track_caller]
fn expect(f: &GroupFeatures, pattern: &str, healthy: bool) -> Classification {
    let c = classify(f);
    assert_eq!(c.pattern, pattern, "{f:#?} → {c:#?}");
    assert_eq!(c.healthy, healthy, "{f:#?} → {c:#?}");
    for text in [&c.explanation, &c.fix_hint] {
        let placeholder = text
            .split('{')
            .skip(1)
            .any(|rest| rest.starts_with(|ch: char| ch.is_ascii_alphabetic()));
        assert!(!placeholder, "uninterpolated: {text}");
    }
    assert!(!c.fix_hint.is_empty());
    c
}

// ---- tests/programs/leaks ----

#[test]
fn chan_send() {
    for gowrap in ["main.spawnChanSend.func1", "main.spawnChanSend.gowrap1"] {
        let f = group(
            "chan send",
            &format!(
                "runtime.gopark\nruntime.chansend\nruntime.chansend1\nmain.leakChanSend\n{gowrap}\nruntime.goexit"
            ),
            "main.spawnChanSend",
        );
        let c = expect(&f, "chan-send-blocked", false);
        assert_eq!(c.rule, "chan-send");
        assert!(
            c.explanation
                .starts_with("3 goroutines stuck at main.leakChanSend"),
            "{}",
            c.explanation
        );
    }
}

#[test]
fn chan_receive() {
    for gowrap in [
        "main.spawnChanReceive.func1",
        "main.spawnChanReceive.gowrap1",
    ] {
        let f = group(
            "chan receive",
            &format!("runtime.gopark\nruntime.chanrecv\nruntime.chanrecv1\nmain.leakChanReceive\n{gowrap}\nruntime.goexit"),
            "main.spawnChanReceive",
        );
        expect(&f, "chan-receive-blocked", false);
    }
}

#[test]
fn select_blocked() {
    for gowrap in ["main.spawnSelect.func1", "main.spawnSelect.gowrap1"] {
        let f = group(
            "select",
            &format!("runtime.gopark\nruntime.selectgo\nmain.leakSelect\n{gowrap}\nruntime.goexit"),
            "main.spawnSelect",
        );
        expect(&f, "select-blocked", false);
    }
}

const MUTEX_1_21: &str = "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1
sync.runtime_SemacquireMutex\nsync.(*Mutex).lockSlow\nsync.(*Mutex).Lock\nmain.leakMutex\nruntime.goexit";
const MUTEX_1_27: &str = "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1
internal/sync.runtime_SemacquireMutex\ninternal/sync.(*Mutex).lockSlow\ninternal/sync.(*Mutex).Lock
sync.(*Mutex).Lock\nmain.leakMutex\nruntime.goexit";

#[test]
fn mutex() {
    for frames in [MUTEX_1_21, MUTEX_1_27] {
        let c = expect(
            &group("sync.Mutex.Lock", frames, "main.spawnMutex"),
            "mutex-lock",
            false,
        );
        assert_eq!(c.rule, "mutex-reason");
        // Without the wait reason (older Go said `semacquire`), the frames alone suffice.
        let c = expect(
            &group("semacquire", frames, "main.spawnMutex"),
            "mutex-lock",
            false,
        );
        assert_eq!(c.rule, "mutex-frames");
    }
}

#[test]
fn waitgroup() {
    // Go 1.21: no WaitGroup wait reason yet.
    let f = group(
        "semacquire",
        "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1\nsync.runtime_Semacquire
         sync.(*WaitGroup).Wait\nmain.leakWaitGroup\nmain.spawnWaitGroup.func1\nruntime.goexit",
        "main.spawnWaitGroup",
    );
    assert_eq!(expect(&f, "waitgroup-wait", false).rule, "waitgroup-frames");
    // Go 1.27.
    let f = group(
        "sync.WaitGroup.Wait",
        "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1\nsync.runtime_SemacquireWaitGroup
         sync.(*WaitGroup).Wait\nmain.leakWaitGroup\nmain.spawnWaitGroup.gowrap1\nruntime.goexit",
        "main.spawnWaitGroup",
    );
    assert_eq!(expect(&f, "waitgroup-wait", false).rule, "waitgroup-reason");
}

#[test]
fn cond() {
    let frames =
        "runtime.gopark\nruntime.goparkunlock\nsync.runtime_notifyListWait\nsync.(*Cond).Wait
                  main.leakCondWait\nruntime.goexit";
    expect(
        &group("sync.Cond.Wait", frames, "main.spawnCondWait"),
        "cond-wait",
        false,
    );
    expect(&group("", frames, "main.spawnCondWait"), "cond-wait", false);
}

#[test]
fn io_wait() {
    // Go 1.21 has the net.(*TCPConn).Read wrapper frame, 1.27 inlines it away.
    for extra in ["net.(*TCPConn).Read\n", ""] {
        let f = group(
            "IO wait",
            &format!(
                "runtime.gopark\nruntime.netpollblock\ninternal/poll.runtime_pollWait
                 internal/poll.(*pollDesc).wait\ninternal/poll.(*pollDesc).waitRead
                 internal/poll.(*FD).Read\nnet.(*netFD).Read\nnet.(*conn).Read\n{extra}main.leakIOWait
                 main.spawnIOWait.gowrap1\nruntime.goexit"
            ),
            "main.spawnIOWait",
        );
        let c = expect(&f, "io-wait", false);
        assert!(
            c.explanation.contains("main.leakIOWait"),
            "{}",
            c.explanation
        );
    }
}

#[test]
fn nil_channel() {
    let f = group(
        "chan receive (nil chan)",
        "runtime.gopark\nruntime.chanrecv\nruntime.chanrecv1\nmain.leakNilChan\nruntime.goexit",
        "main.spawnNilChan",
    );
    expect(&f, "nil-channel", false);
    let f = group(
        "chan send (nil chan)",
        "runtime.gopark\nruntime.chansend\nruntime.chansend1\nmain.leakNilSend\nruntime.goexit",
        "main.spawnNilSend",
    );
    expect(&f, "nil-channel", false);
    // A reason text without the suffix, but the group parks on no object.
    let mut f = group(
        "chan receive",
        "runtime.gopark\nruntime.chanrecv\nruntime.chanrecv1\nmain.leakNilChan\nruntime.goexit",
        "main.spawnNilChan",
    );
    f.nil_object = true;
    f.distinct_objects = 0;
    expect(&f, "nil-channel", false);
}

#[test]
fn select_empty() {
    let f = group(
        "select (no cases)",
        "runtime.gopark\nruntime.block\nmain.leakSelectEmpty\nruntime.goexit",
        "main.spawnSelectEmpty",
    );
    let c = expect(&f, "select-empty", false);
    assert!(c.explanation.contains("`select {}`"), "{}", c.explanation);
    assert!(c.fix_hint.contains("`select {}`"), "{}", c.fix_hint);
}

#[test]
fn sleep_without_wakes_is_timer_loop() {
    let mut f = group(
        "sleep",
        "runtime.gopark\ntime.Sleep\nmain.leakSleep\nruntime.goexit",
        "main.spawnSleep",
    );
    f.nil_object = true;
    let c = expect(&f, "timer-loop", false);
    assert_eq!(c.rule, "sleep");
}

// ---- throwaway programs (rwmutex, range, context, http, ticker, syscall, x/sync) ----

#[test]
fn rwmutex() {
    // Readers queued behind a writer (both versions).
    let f = group(
        "sync.RWMutex.RLock",
        "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1\nsync.runtime_SemacquireRWMutexR
         sync.(*RWMutex).RLock\nmain.rwReader\nruntime.goexit",
        "main.main",
    );
    expect(&f, "rwmutex-lock", false);
    // A writer waiting for readers to leave.
    let f = group(
        "sync.RWMutex.Lock",
        "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1\nsync.runtime_SemacquireRWMutex
         sync.(*RWMutex).Lock\nmain.writer\nruntime.goexit",
        "main.main",
    );
    expect(&f, "rwmutex-lock", false);
    // A writer queued behind another writer waits on the embedded Mutex: the wait reason says
    // Mutex, the frames say RWMutex.
    let w121 = "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1\nsync.runtime_SemacquireMutex
        sync.(*Mutex).lockSlow\nsync.(*Mutex).Lock\nsync.(*RWMutex).Lock\nmain.rwWriter\nruntime.goexit";
    let w127 = "runtime.gopark\nruntime.goparkunlock\nruntime.semacquire1
        internal/sync.runtime_SemacquireMutex\ninternal/sync.(*Mutex).lockSlow\ninternal/sync.(*Mutex).Lock
        sync.(*Mutex).Lock\nsync.(*RWMutex).Lock\nmain.rwWriter\nruntime.goexit";
    for frames in [w121, w127] {
        expect(
            &group("sync.Mutex.Lock", frames, "main.main"),
            "rwmutex-lock",
            false,
        );
    }
}

#[test]
fn range_unclosed() {
    for gowrap in ["main.main.func3", "main.main.gowrap1"] {
        let f = group(
            "chan receive",
            &format!("runtime.gopark\nruntime.chanrecv\nruntime.chanrecv2\nmain.rangeWorker\n{gowrap}\nruntime.goexit"),
            "main.main",
        );
        expect(&f, "range-unclosed", false);
    }
}

#[test]
fn context_propagate_cancel() {
    let f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\ncontext.(*cancelCtx).propagateCancel.func2\nruntime.goexit",
        "context.(*cancelCtx).propagateCancel",
    );
    expect(&f, "context-never-done", false);
    // Only the creation site is known (frames not resolved).
    let f = group("select", "", "context.(*cancelCtx).propagateCancel");
    assert_eq!(
        expect(&f, "context-never-done", false).rule,
        "context-created"
    );
}

const PERSIST_READ_IO_1_21: &str =
    "runtime.gopark\nruntime.netpollblock\ninternal/poll.runtime_pollWait
    internal/poll.(*pollDesc).wait\ninternal/poll.(*pollDesc).waitRead\ninternal/poll.(*FD).Read
    net.(*netFD).Read\nnet.(*conn).Read\nnet.(*TCPConn).Read\nnet/http.(*persistConn).Read
    bufio.(*Reader).fill\nbufio.(*Reader).Peek\nnet/http.(*persistConn).readLoop
    net/http.(*Transport).dialConn.func5\nruntime.goexit";

#[test]
fn http_client_conn() {
    let f = group(
        "IO wait",
        PERSIST_READ_IO_1_21,
        "net/http.(*Transport).dialConn",
    );
    // Idle keep-alive connection: readLoop peeks at the socket. Healthy.
    expect(&f, "http-client-idle", true);
    // Body never closed: readLoop waits in select for the body to be read (1.27 names).
    let f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\nnet/http.(*persistConn).readLoop
         net/http.(*Transport).dialConn.gowrap2\nruntime.goexit",
        "net/http.(*Transport).dialConn",
    );
    expect(&f, "http-client-conn", false);
    let f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\nnet/http.(*persistConn).writeLoop
         net/http.(*Transport).dialConn.func6\nruntime.goexit",
        "net/http.(*Transport).dialConn",
    );
    // Every connection's writer, idle or leaked: the readLoop group carries the verdict.
    expect(&f, "http-client-idle", true);
    // A request waiting for its response, no client timeout.
    let f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\nnet/http.(*persistConn).roundTrip\nnet/http.(*Transport).roundTrip
         net/http.(*Transport).RoundTrip\nnet/http.send\nnet/http.(*Client).send\nnet/http.(*Client).do
         net/http.(*Client).Do\nnet/http.(*Client).Get\nmain.main.func2\nruntime.goexit",
        "main.main",
    );
    assert_eq!(
        expect(&f, "http-client-conn", false).rule,
        "http-client-roundtrip"
    );
}

#[test]
fn handler_hang() {
    for gowrap in [
        "net/http.(*Server).Serve.func3",
        "net/http.(*Server).Serve.gowrap3",
    ] {
        let f = group(
            "chan receive",
            &format!(
                "runtime.gopark\nruntime.chanrecv\nruntime.chanrecv1\nmain.slowHandler
                 net/http.HandlerFunc.ServeHTTP\nnet/http.serverHandler.ServeHTTP\nnet/http.(*conn).serve
                 {gowrap}\nruntime.goexit"
            ),
            "net/http.(*Server).Serve",
        );
        let c = expect(&f, "handler-hang", false);
        assert!(
            c.explanation.contains("main.slowHandler"),
            "{}",
            c.explanation
        );
    }
    // A handler calling a backend with no timeout: handler-hang, not http-client-conn.
    let f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\nnet/http.(*persistConn).roundTrip\nnet/http.(*Transport).roundTrip
         net/http.(*Transport).RoundTrip\nnet/http.send\nnet/http.(*Client).send\nnet/http.(*Client).do
         net/http.(*Client).Do\nnet/http.(*Client).Get\nmain.proxyHandler\nnet/http.HandlerFunc.ServeHTTP
         net/http.serverHandler.ServeHTTP\nnet/http.(*conn).serve\nnet/http.(*Server).Serve.gowrap3\nruntime.goexit",
        "net/http.(*Server).Serve",
    );
    expect(&f, "handler-hang", false);
    // The per-request background reader that accompanies a running handler, hung or not: the
    // handlers' own group carries the verdict.
    let f = group(
        "IO wait",
        "runtime.gopark\nruntime.netpollblock\ninternal/poll.runtime_pollWait\ninternal/poll.(*pollDesc).wait
         internal/poll.(*pollDesc).waitRead\ninternal/poll.(*FD).Read\nnet.(*netFD).Read\nnet.(*conn).Read
         net/http.(*connReader).backgroundRead\nnet/http.(*connReader).startBackgroundRead.gowrap2\nruntime.goexit",
        "net/http.(*connReader).startBackgroundRead",
    );
    expect(&f, "http-background-read", true);
    // A long poll: the handler waits on an event, a running timer and r.Context().Done(): it
    // wakes by itself, so it is a periodic wait, not a hung handler.
    let mut f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\nmain.longPollHandler\nnet/http.HandlerFunc.ServeHTTP
         net/http.serverHandler.ServeHTTP\nnet/http.(*conn).serve\nnet/http.(*Server).Serve.gowrap3\nruntime.goexit",
        "net/http.(*Server).Serve",
    );
    f.waits_on = vec![ChanKind::Data, ChanKind::Timer, ChanKind::Signal];
    expect(&f, "timer-loop", true);
    // The same handler without the timer hangs until the client goes.
    f.waits_on = vec![ChanKind::Data, ChanKind::Signal];
    expect(&f, "handler-hang", false);
}

/// hugo's live-reload websocket reader (gorilla/websocket, under the HTTP handler that
/// upgraded the connection): an open websocket, not a hung handler.
#[test]
fn websocket_reader_is_an_open_connection() {
    let f = group(
        "IO wait",
        "runtime.gopark\nruntime.netpollblock\ninternal/poll.runtime_pollWait\ninternal/poll.(*pollDesc).wait
         internal/poll.(*pollDesc).waitRead\ninternal/poll.(*FD).Read\nnet.(*netFD).Read\nnet.(*conn).Read
         bufio.(*Reader).fill\nbufio.(*Reader).Peek\ngithub.com/gorilla/websocket.(*Conn).read
         github.com/gorilla/websocket.(*Conn).advanceFrame\ngithub.com/gorilla/websocket.(*Conn).NextReader
         github.com/gorilla/websocket.(*Conn).ReadMessage\ngithub.com/gohugoio/hugo/livereload.(*connection).reader
         github.com/gohugoio/hugo/livereload.Handler\nnet/http.HandlerFunc.ServeHTTP\nnet/http.(*ServeMux).ServeHTTP
         net/http.serverHandler.ServeHTTP\nnet/http.(*conn).serve\nnet/http.(*Server).Serve.gowrap3\nruntime.goexit",
        "net/http.(*Server).Serve",
    );
    expect(&f, "websocket-conn", true);
}

#[test]
fn idle_keepalive_server_conn_is_healthy() {
    // Between requests: (*conn).serve peeks for the next one.
    for extra in ["net.(*TCPConn).Read\n", ""] {
        let f = group(
            "IO wait",
            &format!(
                "runtime.gopark\nruntime.netpollblock\ninternal/poll.runtime_pollWait
                 internal/poll.(*pollDesc).wait\ninternal/poll.(*pollDesc).waitRead\ninternal/poll.(*FD).Read
                 net.(*netFD).Read\nnet.(*conn).Read\n{extra}net/http.(*connReader).Read\nbufio.(*Reader).fill
                 bufio.(*Reader).Peek\nnet/http.(*conn).serve\nnet/http.(*Server).Serve.gowrap3\nruntime.goexit"
            ),
            "net/http.(*Server).Serve",
        );
        expect(&f, "http-server-idle", true);
    }
    // Reading the first request line (Go 1.27).
    let f = group(
        "IO wait",
        "runtime.gopark\nruntime.netpollblock\ninternal/poll.runtime_pollWait\ninternal/poll.(*pollDesc).wait
         internal/poll.(*pollDesc).waitRead\ninternal/poll.(*FD).Read\nnet.(*netFD).Read\nnet.(*conn).Read
         net/http.(*connReader).Read\nbufio.(*Reader).fill\nbufio.(*Reader).ReadSlice\nbufio.(*Reader).ReadLine
         net/textproto.(*Reader).readLineSlice\nnet/textproto.(*Reader).ReadLine\nnet/http.readRequestLimit
         net/http.(*conn).readRequest\nnet/http.(*conn).serve\nnet/http.(*Server).Serve.gowrap3\nruntime.goexit",
        "net/http.(*Server).Serve",
    );
    expect(&f, "http-server-idle", true);
}

#[test]
fn accept_loop_is_healthy() {
    let f = group(
        "IO wait",
        "runtime.gopark\nruntime.netpollblock\ninternal/poll.runtime_pollWait\ninternal/poll.(*pollDesc).wait
         internal/poll.(*pollDesc).waitRead\ninternal/poll.(*FD).Accept\nnet.(*netFD).accept
         net.(*TCPListener).accept\nnet.(*TCPListener).Accept\nnet/http.(*onceCloseListener).Accept
         net/http.(*Server).Serve\nnet/http.Serve\nmain.main.func1\nruntime.goexit",
        "main.main",
    );
    expect(&f, "accept-loop", true);
}

#[test]
fn signal_notify_is_healthy() {
    // The inventory reports it in a system call (runtime.notetsleepg).
    for created_by in ["os/signal.Notify.func1.1", "os/signal.Notify.func2.1"] {
        let mut f = group(
            "syscall",
            "runtime.notetsleepg\nos/signal.signal_recv\nos/signal.loop\nruntime.goexit",
            created_by,
        );
        f.count = 1;
        expect(&f, "signal-notify", true);
    }
}

#[test]
fn runtime_goroutines_are_healthy() {
    let cases: &[(&str, &str, &str)] = &[
        ("force gc (idle)", "runtime.gopark\nruntime.goparkunlock\nruntime.forcegchelper\nruntime.goexit", "runtime.init.6"),
        ("GC sweep wait", "runtime.gopark\nruntime.goparkunlock\nruntime.bgsweep\nruntime.gcenable.gowrap1\nruntime.goexit", "runtime.gcenable"),
        ("GC scavenge wait", "runtime.gopark\nruntime.goparkunlock\nruntime.(*scavengerState).park\nruntime.bgscavenge\nruntime.gcenable.func2\nruntime.goexit", "runtime.gcenable"),
        ("finalizer wait", "runtime.gopark\nruntime.runfinq\nruntime.goexit", "runtime.createfing"),
        ("finalizer wait", "runtime.gopark\nruntime.runFinalizers\nruntime.goexit", "runtime.createfing"),
        ("cleanup wait", "runtime.gopark\nruntime.goparkunlock\nruntime.(*cleanupQueue).dequeue\nruntime.runCleanups\nruntime.goexit", "runtime.(*cleanupQueue).createGs"),
        ("select", "runtime.gopark\nruntime.selectgo\nruntime.ensureSigM.func1\nruntime.goexit", "runtime.ensureSigM"),
        ("GC worker (idle)", "runtime.gopark\nruntime.gcBgMarkWorker\nruntime.gcBgMarkStartWorkers.gowrap1\nruntime.goexit", "runtime.gcBgMarkStartWorkers"),
        ("GC worker (idle)", "", ""),
    ];
    for (reason, frames, created_by) in cases {
        expect(&group(reason, frames, created_by), "runtime", true);
    }
}

#[test]
fn timer_loops() {
    let periodic = |mut f: GroupFeatures| {
        f.wakes_per_member = 20.0;
        f.wake_interval_cv = Some(0.05);
        f.wake_interval_median_s = Some(0.1);
        f
    };
    // for range ticker.C (chanrecv2!): periodic wakes make it a timer loop, not range-unclosed.
    let f = periodic(group(
        "chan receive",
        "runtime.gopark\nruntime.chanrecv\nruntime.chanrecv2\nmain.tickerLoop\nruntime.goexit",
        "main.main",
    ));
    let c = expect(&f, "timer-loop", false);
    assert!(c.explanation.contains("every 100ms"), "{}", c.explanation);
    // for { select { case <-t.C: case <-stop: } }
    let f = periodic(group(
        "select",
        "runtime.gopark\nruntime.selectgo\nmain.tickerSelect\nmain.main.gowrap4\nruntime.goexit",
        "main.main",
    ));
    expect(&f, "timer-loop", false);
    // for { time.Sleep(100ms) }
    let f = periodic(group(
        "sleep",
        "runtime.gopark\ntime.Sleep\nmain.pollerSleep\nruntime.goexit",
        "main.main",
    ));
    assert_eq!(expect(&f, "timer-loop", false).rule, "timer-loop-periodic");
    // Irregular wakes are not a timer loop.
    let mut f = periodic(group(
        "select",
        "runtime.gopark\nruntime.selectgo\nmain.tickerSelect\nmain.main.gowrap4\nruntime.goexit",
        "main.main",
    ));
    f.wake_interval_cv = Some(1.5);
    expect(&f, "select-blocked", false);
}

#[test]
fn syscall_blocked() {
    let f = group(
        "syscall",
        "syscall.Syscall\nsyscall.read\nsyscall.Read\nmain.pipeRead\nmain.main.gowrap5\nruntime.goexit",
        "main.main",
    );
    let c = expect(&f, "syscall-blocked", false);
    assert!(c.explanation.contains("main.pipeRead"), "{}", c.explanation);
    // cgo, frames only.
    let f = group(
        "",
        "runtime.cgocall\nmain._Cfunc_block\nmain.callC\nruntime.goexit",
        "main.main",
    );
    expect(&f, "syscall-blocked", false);
}

#[test]
fn semaphore_and_errgroup() {
    let f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\ngolang.org/x/sync/semaphore.(*Weighted).Acquire\nmain.semWaiter
         main.main.gowrap6\nruntime.goexit",
        "main.main",
    );
    expect(&f, "semaphore-acquire", false);
    let f = group(
        "chan send",
        "runtime.gopark\nruntime.chansend\nruntime.chansend1\ngolang.org/x/sync/errgroup.(*Group).Go
         main.main.func1\nruntime.goexit",
        "main.main",
    );
    assert_eq!(
        expect(&f, "semaphore-acquire", false).rule,
        "errgroup-limit"
    );
    // The goroutines errgroup runs keep their own shape (here `select {}`).
    let f = group(
        "select (no cases)",
        "runtime.gopark\nruntime.block\nmain.main.func1.1\ngolang.org/x/sync/errgroup.(*Group).Go.func1\nruntime.goexit",
        "golang.org/x/sync/errgroup.(*Group).Go",
    );
    expect(&f, "select-empty", false);
}

#[test]
fn unclassified_fallback() {
    let f = group(
        "trace reader (blocked)x",
        "runtime.gopark\nmain.weird\nruntime.goexit",
        "main.main",
    );
    let c = classify(&f);
    assert_eq!(c.pattern, UNCLASSIFIED);
    assert_eq!(c.rule, "");
    assert!(!c.healthy);
    assert!(c.explanation.contains("main.weird"), "{}", c.explanation);
}

#[test]
fn every_table_pattern_has_a_builtin_rule() {
    let ids: Vec<String> = RuleSet::builtin()
        .rules
        .into_iter()
        .map(|r| r.pattern)
        .collect();
    for p in [
        "chan-send-blocked",
        "chan-receive-blocked",
        "range-unclosed",
        "nil-channel",
        "select-blocked",
        "select-empty",
        "mutex-lock",
        "rwmutex-lock",
        "waitgroup-wait",
        "cond-wait",
        "semaphore-acquire",
        "context-never-done",
        "timer-loop",
        "io-wait",
        "http-client-conn",
        "handler-hang",
        "syscall-blocked",
    ] {
        assert!(ids.iter().any(|i| i == p), "no built-in rule reports {p}");
    }
}

/// A client request waiting for a connection (the Transport dialing) or for its response is
/// the same leak; a proxy handler doing so under `(*conn).serve` stays a handler hang.
#[test]
fn client_requests_waiting_for_a_connection() {
    let get = "runtime.gopark\nruntime.selectgo\nnet/http.(*Transport).getConn\nnet/http.(*Transport).roundTrip\nnet/http.(*Transport).RoundTrip\nnet/http.send\nnet/http.(*Client).send\nnet/http.(*Client).do\nnet/http.(*Client).Do\nnet/http.(*Client).Get\nmain.leakUpstreamPileup\nmain.spawnUpstreamPileup.func1.gowrap1\nruntime.goexit";
    let c = expect(
        &group("select", get, "main.spawnUpstreamPileup.func1"),
        "http-client-conn",
        false,
    );
    assert_eq!(c.rule, "http-client-roundtrip");
    let proxy = "runtime.gopark\nruntime.selectgo\nnet/http.(*Transport).getConn\nnet/http.(*Transport).roundTrip\nnet/http.(*Transport).RoundTrip\nnet/http/httputil.(*ReverseProxy).ServeHTTP\nnet/http.(*ServeMux).ServeHTTP\nnet/http.serverHandler.ServeHTTP\nnet/http.(*conn).serve\nnet/http.(*Server).Serve.gowrap3\nruntime.goexit";
    expect(
        &group("select", proxy, "net/http.(*Server).Serve"),
        "handler-hang",
        false,
    );
}

// ---- the channels waited on, as the inventory reads them ----

const SELECT: &str = "runtime.gopark\nruntime.selectgo\nmain.(*cache).janitor\nruntime.goexit";
const RECV: &str = "runtime.gopark\nruntime.chanrecv\nruntime.chanrecv1\nmain.wait\nruntime.goexit";

fn waiting(reason: &str, frames: &str, on: &[ChanKind]) -> GroupFeatures {
    GroupFeatures {
        waits_on: on.to_vec(),
        ..group(reason, frames, "main.start")
    }
}

/// A cache janitor (select on a ticker and a stop channel) is a periodic loop, resident, with
/// or without wake-ups seen, in either timer-channel mode; the explanation names its cases.
#[test]
fn select_with_a_timer_case_is_a_periodic_loop() {
    use ChanKind::*;
    for on in [[Ticker, Signal], [TimerAsync, Signal], [Timer, Data]] {
        let c = expect(&waiting("select", SELECT, &on), "timer-loop", true);
        assert_eq!(c.rule, "select-timer");
        assert!(c.explanation.contains(" and "), "{}", c.explanation);
    }
    let c = expect(
        &waiting("select", SELECT, &[Ticker, Signal]),
        "timer-loop",
        true,
    );
    assert!(
        c.explanation
            .contains("on a ticker and a done/stop channel (chan struct{})"),
        "{}",
        c.explanation
    );
}

/// A wait on a stopped ticker's channel never ends: a leak, unless another timer may fire.
#[test]
fn a_stopped_timer_is_not_a_periodic_loop() {
    use ChanKind::*;
    let c = expect(
        &waiting("chan receive", RECV, &[TimerStopped]),
        "timer-stopped",
        false,
    );
    assert!(
        c.explanation.contains("a stopped timer"),
        "{}",
        c.explanation
    );
    expect(
        &waiting("select", SELECT, &[TimerStopped, Data]),
        "timer-stopped",
        false,
    );
    expect(
        &waiting("select", SELECT, &[TimerStopped, Ticker]),
        "timer-loop",
        true,
    );
}

/// `<-ctx.Done()` (a zero-size-element channel) is a context never done; a select's
/// explanation claims only the cases read.
#[test]
fn done_channels_and_select_cases_from_memory() {
    use ChanKind::*;
    let c = expect(
        &waiting("chan receive", RECV, &[Signal]),
        "context-never-done",
        false,
    );
    assert_eq!(c.rule, "done-channel");
    // Not read: the generic rule.
    expect(
        &waiting("chan receive", RECV, &[]),
        "chan-receive-blocked",
        false,
    );
    expect(
        &waiting("chan receive", RECV, &[Data]),
        "chan-receive-blocked",
        false,
    );
    let c = expect(
        &waiting("select", SELECT, &[Data, Signal]),
        "select-blocked",
        false,
    );
    assert!(
        c.explanation
            .contains("on a data channel and a done/stop channel (chan struct{}), none of which"),
        "{}",
        c.explanation
    );
    assert!(!c.explanation.contains("abandoned"), "{}", c.explanation);
    let c = expect(&waiting("select", SELECT, &[]), "select-blocked", false);
    assert!(
        c.explanation.contains("channels not read"),
        "{}",
        c.explanation
    );
}

#[test]
fn rules_doc_lists_every_builtin_rule() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/RULES.md"))
        .expect("docs/RULES.md");
    for r in RuleSet::builtin().rules {
        assert!(
            doc.contains(&format!("| `{}` | `{}` |", r.id, r.pattern)),
            "docs/RULES.md has no table row for built-in rule {} ({})",
            r.id,
            r.pattern
        );
    }
}

// ---- user rules ----

fn kafka_example() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules/examples/kafka.toml"
    ))
}

#[test]
fn kafka_example_rules_from_disk() {
    let classifier = Classifier::with_user_rules(&[kafka_example()]).unwrap();
    // kafka-go: a consumer loop in FetchMessage (stack of a real Go 1.27 build whose package is
    // named github.com/segmentio/kafka-go with kafka-go's select).
    let f = group(
        "select",
        "runtime.gopark\nruntime.selectgo\ngithub.com/segmentio/kafka-go.(*Reader).FetchMessage
         main.kafkaConsumer\nmain.main.gowrap8\nruntime.goexit",
        "main.main",
    );
    let c = classifier.classify(&f);
    assert_eq!(
        (c.pattern.as_str(), c.healthy, c.rule.as_str()),
        ("kafka-consumer-idle", true, "kafka-go-reader-fetch")
    );
    // Without the user rules it is a plain abandoned select.
    assert_eq!(Classifier::builtin().classify(&f).pattern, "select-blocked");
    // sarama consumer group handler ranging over claim.Messages().
    let f = group(
        "chan receive",
        "runtime.gopark\nruntime.chanrecv\nruntime.chanrecv2\nmain.(*handler).ConsumeClaim
         github.com/IBM/sarama.(*consumerGroupSession).consume\ngithub.com/IBM/sarama.newConsumerGroupSession.func2
         runtime.goexit",
        "github.com/IBM/sarama.newConsumerGroupSession",
    );
    assert_eq!(classifier.classify(&f).pattern, "kafka-consumer-idle");
    // confluent-kafka-go: Poll is a cgo call.
    let f = group(
        "syscall",
        "runtime.cgocall\ngithub.com/confluentinc/confluent-kafka-go/v2/kafka._Cfunc__rk_queue_poll
         github.com/confluentinc/confluent-kafka-go/v2/kafka.(*handle).eventPoll
         github.com/confluentinc/confluent-kafka-go/v2/kafka.(*Consumer).Poll\nmain.consume\nruntime.goexit",
        "main.main",
    );
    assert_eq!(classifier.classify(&f).pattern, "kafka-consumer-idle");
    // Other groups still get the built-ins.
    let f = group(
        "chan send",
        "runtime.gopark\nruntime.chansend1\nmain.x\nruntime.goexit",
        "main.main",
    );
    assert_eq!(classifier.classify(&f).pattern, "chan-send-blocked");
}

fn write_tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfgi-classify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn user_rules_order_priority_and_override() {
    let chan_send = group(
        "chan send",
        "runtime.gopark\nruntime.chansend1\nmain.x\nruntime.goexit",
        "main.main",
    );
    // A fallback with negative priority loses to the built-ins...
    let low = write_tmp(
        "low.toml",
        "[[rule]]\nid='mine'\npattern='my-pattern'\nexplanation='{count} of mine'\nfix_hint='f'\npriority=-1\nwait_reason=['chan send']\n",
    );
    let c = Classifier::with_user_rules(std::slice::from_ref(&low))
        .unwrap()
        .classify(&chan_send);
    assert_eq!(c.pattern, "chan-send-blocked");
    // ...priority 0 (default) wins by order, and the same id replaces a built-in rule.
    let over = write_tmp(
        "over.toml",
        "[[rule]]\nid='chan-send'\npattern='chan-send-blocked'\nexplanation='{count} senders (mine)'\nfix_hint='f'\nhealthy=true\nwait_reason=['chan send']\n",
    );
    let cl = Classifier::with_user_rules(std::slice::from_ref(&over)).unwrap();
    let c = cl.classify(&chan_send);
    assert_eq!(
        (c.explanation.as_str(), c.healthy),
        ("3 senders (mine)", true)
    );
    assert_eq!(cl.rules().iter().filter(|r| r.id == "chan-send").count(), 1);
    // Two user files defining one id is an error naming the file and rule.
    let e = Classifier::with_user_rules(&[over.clone(), over.clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains(":chan-send: duplicate rule id"), "{e}");
    // A missing file and a bad file are errors, not panics.
    let e = Classifier::with_user_rules(&[PathBuf::from("/nonexistent/r.toml")]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/r.toml: cannot read"),
        "{e}"
    );
    let bad = write_tmp(
        "bad.toml",
        "[[rule]]\nid='b'\npattern='p'\nexplanation='e'\nfix_hint='f'\nframes_all=['(']\n",
    );
    let e = Classifier::with_user_rules(&[bad]).unwrap_err().to_string();
    // SFGI's wording up to the regex crate's own message, which must follow (not checked: it is
    // another crate's text).
    let (_, regex_message) = e
        .split_once("bad.toml:b: bad regex in `frames_all`: ")
        .unwrap_or_else(|| panic!("{e}"));
    assert!(!regex_message.trim().is_empty(), "{e}");
}

#[test]
fn deeply_nested_toml_is_an_error_not_a_crash() {
    for depth in [100, 10_000, 200_000] {
        let text = format!("x = {}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(RuleSet::from_toml_str(&text, "deep.toml").is_err());
        let text = format!("x = {}1{}", "{a=".repeat(depth), "}".repeat(depth));
        assert!(RuleSet::from_toml_str(&text, "deep.toml").is_err());
    }
}

#[test]
fn hostile_inputs_do_not_panic() {
    for text in [
        "\u{0}",
        "[[rule]]",
        "[[rule]]\nid = 1",
        "rule = [[]]",
        "[rule]\nid='x'",
        "[[rule]]\nid='x'\npattern='p'\nexplanation='{'\nfix_hint='f'\nperiodic=true",
        "[[rule]]\nid='x'\npattern='p'\nexplanation='}'\nfix_hint='f'\nperiodic=true",
        "[[rule]]\nid='x'\npattern='p'\nexplanation='e'\nfix_hint='f'\nmin_wakes_per_member=nan",
        "[[rule]]\nid='x'\npattern='p'\nexplanation='e'\nfix_hint='f'\nwait_reason=[1]",
        "[[rule]]\nid='x'\npattern='p'\nexplanation='e'\nfix_hint='f'\nuser_frame_below='((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))'",
    ] {
        assert!(RuleSet::from_toml_str(text, "h.toml").is_err(), "{text:?} was accepted");
    }
}
