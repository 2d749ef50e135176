//! SFGI's eBPF programs: uprobes on the Go runtime of one target process.
//!
//! Every probe sits *after* Go's stack-check prologue, on the `PUSHQ BP` the kernel emulates
//! (no single-step), or on a `CALL` instruction (also emulated). No uretprobes: Go moves stacks.
//! Each hit does a bounded amount of work (a few user-memory reads, at most one stack capture and
//! one ring-buffer record) and never wakes userspace (`BPF_RB_NO_WAKEUP`): userspace polls.
//!
//! Go's register ABI on amd64: integer arguments in RAX, RBX, RCX, RDI, RSI, …; the current `g`
//! in R14. Functions that run on the system stack see `g0` (goid 0) in R14.
//!
//! Diagnostics: the rare failure paths (a read of target memory that fails, a state insert, a
//! stack or a ring-buffer reservation the kernel refuses) also log an aya-log record naming the
//! probe, the field, the address and the error, when userspace asked for them (`AYA_LOG_LEVEL`,
//! set at load; `sfgi -v`). The level is a constant of the frozen `.rodata`, so with logging off
//! the verifier removes those branches: nothing is formatted or written, and a successful hit
//! runs the same code as without them. Records are rate-limited per kind (`DIAG`); the per-probe
//! counters count every failure either way.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{pt_regs, BPF_F_USER_STACK},
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{tracing::StackIdContext, ProbeContext},
};
use aya_log_ebpf::{
    debug,
    macro_support::{level_enabled, Level},
};
use sfgi_common::{
    config as cfg, counter_index, fold_object, CounterKind, DiagKind, Event, EventKind, GState,
    ProbeId, SpawnReg, COUNTER_SLOTS, DIAG_KINDS, DIAG_LOG_LIMIT, EBPF_LOG_TARGET,
    MAX_OBJECT_SUDOGS,
};

/// `BPF_RB_NO_WAKEUP`: do not wake the poller for this record (userspace drains on a timer).
const BPF_RB_NO_WAKEUP: u64 = 1;

// Read-only configuration, set by the loader (`EbpfLoader::set_global`) before load.
#[unsafe(no_mangle)]
static TARGET_TGID: u32 = 0;
#[unsafe(no_mangle)]
static G_GOID: u64 = 152;
#[unsafe(no_mangle)]
static G_M: u64 = 48;
#[unsafe(no_mangle)]
static M_CURG: u64 = 184;
#[unsafe(no_mangle)]
static G_PARENT_GOID: u64 = 280;
#[unsafe(no_mangle)]
static G_GOPC: u64 = 288;
#[unsafe(no_mangle)]
static G_STARTPC: u64 = 304;
#[unsafe(no_mangle)]
static G_WAITING: u64 = 0;
#[unsafe(no_mangle)]
static SUDOG_C: u64 = 0;
#[unsafe(no_mangle)]
static SUDOG_IS_SELECT: u64 = 0;
#[unsafe(no_mangle)]
static SUDOG_WAITLINK: u64 = 0;
#[unsafe(no_mangle)]
static WANT_STACKS: u32 = 1;
#[unsafe(no_mangle)]
static SPAWN_REG: u32 = SpawnReg::Rbx as u32;

/// Runtime events for userspace. The loader may resize it.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// User stacks, deduplicated by the kernel; events carry the id.
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(32768, 0);

/// Per-CPU counters: hits, emitted, dropped, read errors, stack errors per probe.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// goid → per-goroutine state: whether its last park was reported and not yet paired with a
/// wake (so `execute` emits only for wake-ups that bypass `runtime.ready`, and wakes of parks
/// left out by sampling are left out too), and the signature and stack id of that park (so a
/// goroutine re-parking at the same place does not walk its stack again).
#[map]
static GSTATE: LruHashMap<u64, GState> = LruHashMap::with_max_entries(1 << 18, 0);

/// Runtime knobs userspace may flip while attached (see `sfgi_common::config`).
#[map]
static CONFIG: Array<u32> = Array::with_max_entries(cfg::SLOTS, 0);

/// Per-CPU count of diagnostics per kind (`DiagKind`) while logging is on: the first
/// `DIAG_LOG_LIMIT` of a kind on a CPU are logged, the rest only counted.
#[map]
static DIAG: PerCpuArray<u64> = PerCpuArray::with_max_entries(DIAG_KINDS, 0);

#[inline(always)]
fn config<T: Copy>(v: &'static T) -> T {
    // SAFETY: `v` is a valid, aligned static; the volatile read keeps the compiler from folding
    // the default value, since the loader rewrites `.rodata` before load.
    unsafe { core::ptr::read_volatile(v) }
}

#[inline(always)]
fn count(probe: ProbeId, kind: CounterKind) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter_index(probe, kind)) {
        // SAFETY: per-CPU slot, so no other CPU writes it; the pointer comes from the map lookup.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &pt_regs {
    // SAFETY: for a uprobe the context is the `pt_regs` of the probed thread.
    unsafe { &*ctx.regs }
}

#[inline(always)]
fn in_target() -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == config(&TARGET_TGID)
}

/// Whether userspace wants the diagnostics (debug records). `AYA_LOG_LEVEL` lives in the frozen
/// `.rodata`: with logging off the verifier knows this is false and drops the branch it guards.
#[inline(always)]
fn diag_on() -> bool {
    level_enabled(Level::Debug)
}

/// Counts one diagnostic of `kind` on this CPU; whether it is still under the log limit.
#[inline(always)]
fn diag_allowed(kind: DiagKind) -> bool {
    match DIAG.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot, so no other CPU writes it; the pointer comes from the map lookup.
        Some(p) => unsafe {
            *p += 1;
            *p <= DIAG_LOG_LIMIT
        },
        None => false,
    }
}

/// What a failed read was (passed by reference: a BPF call takes at most five arguments).
struct ReadFailure {
    probe: &'static str,
    field: &'static str,
    addr: u64,
    err: i32,
}

// The log records are written by out-of-line functions (BPF-to-BPF calls), one per kind, so
// that each record's formatting code is in the object once, not at every call site.

#[inline(never)]
fn log_read_failure(f: &ReadFailure) {
    if diag_allowed(DiagKind::ReadError) {
        debug!(
            &(),
            target: EBPF_LOG_TARGET,
            "probe {}: cannot read {} at 0x{:x} (error {})",
            f.probe,
            f.field,
            f.addr,
            f.err
        );
    }
}

#[inline(never)]
fn log_state_insert(probe: &'static str, goid: u64, err: i32) {
    if diag_allowed(DiagKind::StateInsert) {
        debug!(
            &(),
            target: EBPF_LOG_TARGET,
            "probe {}: the goroutine state map refused goid {} (error {})",
            probe,
            goid,
            err
        );
    }
}

#[inline(never)]
fn log_stack_error(probe: &'static str, goid: u64, err: i32) {
    if diag_allowed(DiagKind::StackError) {
        debug!(
            &(),
            target: EBPF_LOG_TARGET,
            "probe {}: user stack of goid {} not stored (error {}; -17: hash collision, -12: stack map full)",
            probe,
            goid,
            err
        );
    }
}

#[inline(never)]
fn log_ring_reserve(probe: &'static str, kind: u32, goid: u64) {
    if diag_allowed(DiagKind::RingReserve) {
        debug!(
            &(),
            target: EBPF_LOG_TARGET,
            "probe {}: event ring buffer full: event kind {} of goid {} dropped",
            probe,
            kind,
            goid
        );
    }
}

/// Counts a failed read of `field` at `addr` and, when asked for, logs it.
#[inline(always)]
fn read_failed(probe: ProbeId, field: &'static str, addr: u64, err: i32) {
    count(probe, CounterKind::ReadErrors);
    if diag_on() {
        log_read_failure(&ReadFailure {
            probe: probe.name(),
            field,
            addr,
            err,
        });
    }
}

/// Inserts `goid`'s probe state. A refused insert has no counter of its own: when asked for, it
/// is logged.
#[inline(always)]
fn state_insert(probe: ProbeId, goid: u64, st: GState) {
    if let Err(e) = GSTATE.insert(goid, st, 0) {
        if diag_on() {
            log_state_insert(probe.name(), goid, e);
        }
    }
}

#[inline(always)]
fn read_u64(probe: ProbeId, field: &'static str, addr: u64) -> Result<u64, ()> {
    // SAFETY: `bpf_probe_read_user` validates the address; a bad one returns an error.
    match unsafe { bpf_probe_read_user(addr as *const u64) } {
        Ok(v) => Ok(v),
        Err(e) => {
            read_failed(probe, field, addr, e);
            Err(())
        }
    }
}

#[inline(always)]
fn read_u8(probe: ProbeId, field: &'static str, addr: u64) -> Result<u8, ()> {
    // SAFETY: `bpf_probe_read_user` validates the address; a bad one returns an error.
    match unsafe { bpf_probe_read_user(addr as *const u8) } {
        Ok(v) => Ok(v),
        Err(e) => {
            read_failed(probe, field, addr, e);
            Err(())
        }
    }
}

/// goid of the goroutine running on this thread: R14's, or `g0.m.curg`'s when R14 is `g0`.
#[inline(always)]
fn current_goid(probe: ProbeId, r: &pt_regs) -> u64 {
    let g = r.r14;
    let goid = read_u64(probe, "g.goid", g + config(&G_GOID)).unwrap_or(0);
    if goid != 0 {
        return goid;
    }
    let Ok(m) = read_u64(probe, "g.m", g + config(&G_M)) else {
        return 0;
    };
    if m == 0 {
        return 0;
    }
    let Ok(curg) = read_u64(probe, "m.curg", m + config(&M_CURG)) else {
        return 0;
    };
    if curg == 0 || curg == g {
        return 0;
    }
    read_u64(probe, "m.curg.goid", curg + config(&G_GOID)).unwrap_or(0)
}

#[inline(always)]
fn user_stack(ctx: &ProbeContext, probe: ProbeId, goid: u64) -> i32 {
    if config(&WANT_STACKS) == 0 {
        return -1;
    }
    // SAFETY: `ctx` is a valid uprobe context and STACKS a stack-trace map.
    match ctx.get_stackid(&STACKS, BPF_F_USER_STACK as u64) {
        Ok(id) => id as i32,
        Err(e) => {
            count(probe, CounterKind::StackErrors);
            if diag_on() {
                log_stack_error(probe.name(), goid, e);
            }
            e
        }
    }
}

#[inline(always)]
fn emit(probe: ProbeId, ev: Event) {
    // bpf_ringbuf_reserve takes no flags; the no-wakeup flag goes on submit.
    match EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            slot.write(ev);
            slot.submit(BPF_RB_NO_WAKEUP);
            count(probe, CounterKind::Emitted);
        }
        None => {
            count(probe, CounterKind::Dropped);
            if diag_on() {
                log_ring_reserve(probe.name(), ev.kind, ev.goid);
            }
        }
    }
}

#[inline(always)]
fn base(kind: EventKind, goid: u64) -> Event {
    Event {
        // SAFETY: plain helper call.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        goid,
        kind: kind as u32,
        tid: bpf_get_current_pid_tgid() as u32,
        stack_id: -1,
        ..Event::default()
    }
}

/// Spawn: on the `CALL runtime.runqput(pp, newg, next)` in `runtime.newproc`'s system-stack
/// closure (or right after `CALL runtime.newproc1`), where a register holds the new `g`.
#[uprobe]
pub fn sfgi_spawn(ctx: ProbeContext) -> u32 {
    if !in_target() {
        return 0;
    }
    const P: ProbeId = ProbeId::Spawn;
    count(P, CounterKind::Hits);
    let r = regs(&ctx);
    // Load both registers at fixed context offsets: the verifier rejects a computed offset.
    // SAFETY: plain loads from the valid `pt_regs` context.
    let (rax, rbx) = unsafe {
        (
            core::ptr::read_volatile(&r.rax),
            core::ptr::read_volatile(&r.rbx),
        )
    };
    let newg = if config(&SPAWN_REG) == SpawnReg::Rax as u32 {
        rax
    } else {
        rbx
    };
    let Ok(goid) = read_u64(P, "g.goid", newg + config(&G_GOID)) else {
        return 0;
    };
    let mut ev = base(EventKind::Spawn, goid);
    ev.other_goid = read_u64(P, "g.parentGoid", newg + config(&G_PARENT_GOID)).unwrap_or(0);
    ev.gopc = read_u64(P, "g.gopc", newg + config(&G_GOPC)).unwrap_or(0);
    ev.addr = read_u64(P, "g.startpc", newg + config(&G_STARTPC)).unwrap_or(0);
    // On the system stack, but Go's systemstack keeps the caller's frame pointer in BP, so the
    // frame-pointer walk continues into the creating goroutine's stack.
    ev.stack_id = user_stack(&ctx, P, goid);
    // Known to `execute` from its first run on: it has nothing to report then.
    state_insert(
        P,
        goid,
        GState {
            stack_id: -1,
            ..GState::default()
        },
    );
    emit(P, ev);
    0
}

/// Park: `runtime.gopark(unlockf, lock, reason, traceReason, traceskip)` on the parking `g`.
#[uprobe]
pub fn sfgi_park(ctx: ProbeContext) -> u32 {
    if !in_target() {
        return 0;
    }
    const P: ProbeId = ProbeId::Park;
    count(P, CounterKind::Hits);
    let r = regs(&ctx);
    let g = r.r14;
    let Ok(goid) = read_u64(P, "g.goid", g + config(&G_GOID)) else {
        return 0;
    };
    let mut ev = base(EventKind::Park, goid);
    ev.addr = r.rbx;
    // Channel operations and select hang their sudogs on g.waiting before parking: their
    // channels name the object (a pool's workers share it, leaked goroutines do not). A select
    // parks on every case's channel, in lock order: fold them all (bounded) into one key.
    let g_waiting = config(&G_WAITING);
    if g_waiting != 0 {
        if let Ok(first) = read_u64(P, "g.waiting", g + g_waiting) {
            let mut sudog = first;
            let mut key = 0u64;
            let mut seen = false;
            for _ in 0..MAX_OBJECT_SUDOGS {
                if sudog == 0 {
                    break;
                }
                let Ok(c) = read_u64(P, "sudog.c", sudog + config(&SUDOG_C)) else {
                    break;
                };
                key = fold_object(key, c);
                seen = true;
                // Only a select's sudogs chain through waitlink (a Go 1.26+ semaphore sudog's
                // waitlink points at other goroutines' sudogs).
                let link = config(&SUDOG_WAITLINK);
                if link == 0
                    || read_u8(P, "sudog.isSelect", sudog + config(&SUDOG_IS_SELECT)) != Ok(1)
                {
                    break;
                }
                let Ok(next) = read_u64(P, "sudog.waitlink", sudog + link) else {
                    break;
                };
                sudog = next;
            }
            if seen {
                ev.addr = key;
            }
        }
    }
    // Creation site and creator, so goroutines created before SFGI attached still have one.
    ev.gopc = read_u64(P, "g.gopc", g + config(&G_GOPC)).unwrap_or(0);
    ev.other_goid = read_u64(P, "g.parentGoid", g + config(&G_PARENT_GOID)).unwrap_or(0);
    // `reason` is a uint8 in CL; the rest of RCX is not defined.
    ev.aux = (r.rcx & 0xff) as u32;
    // Before `PUSHQ BP` the return address into gopark's caller is at the top of the stack; the
    // frame-pointer walk starts at the caller's caller, so keep it here.
    ev.pc = read_u64(P, "return address at SP", r.rsp).unwrap_or(0);
    // Walking the user stack (`bpf_get_stackid`) is the most expensive part of a park (several
    // µs measured on Go stacks here). A goroutine that parks again with the same stack pointer,
    // the same caller and the same three frame-pointer return addresses above it is parked at
    // the same place as last time: reuse that park's stack id.
    let sig = park_signature(P, r, ev.pc);
    let st = GSTATE.get_ptr_mut(goid);
    let (same_site, cached_stack) = match st {
        // SAFETY: pointer from a successful map lookup, valid for this program run.
        Some(p) => unsafe { ((*p).sig == sig, (*p).stack_id) },
        None => (false, -1),
    };
    // 1-in-N sampling of repeat parks at one site, when userspace asked for it (overhead
    // budget). New sites are always reported.
    let every = CONFIG.get(cfg::SAMPLE_EVERY).copied().unwrap_or(0);
    if same_site && every > 1 {
        if let Some(p) = st {
            // SAFETY: as above; a racing update of the same goroutine's entry only skews a count.
            let keep = unsafe {
                (*p).repeats = (*p).repeats.wrapping_add(1);
                (*p).parked = 0;
                (*p).repeats % every == 0
            };
            if !keep {
                count(P, CounterKind::Filtered);
                return 0;
            }
        }
    }
    if same_site && cached_stack >= 0 {
        ev.stack_id = cached_stack;
        count(P, CounterKind::StackReused);
    } else {
        ev.stack_id = user_stack(&ctx, P, goid);
    }
    match st {
        // SAFETY: as above.
        Some(p) => unsafe {
            if !same_site {
                (*p).repeats = 0;
            }
            (*p).sig = sig;
            (*p).stack_id = ev.stack_id;
            (*p).parked = 1;
        },
        None => state_insert(
            P,
            goid,
            GState {
                sig,
                stack_id: ev.stack_id,
                parked: 1,
                ..GState::default()
            },
        ),
    }
    emit(P, ev);
    0
}

/// Where a park happens: caller pc, stack pointer and the return addresses of the next three
/// frames (frame-pointer chain from RBP, which before `PUSHQ BP` is the caller's frame).
#[inline(always)]
fn park_signature(probe: ProbeId, r: &pt_regs, caller_pc: u64) -> u64 {
    let mut h = mix(caller_pc ^ r.rsp.rotate_left(32));
    let mut fp = r.rbp;
    for _ in 0..3 {
        if fp == 0 {
            break;
        }
        // SAFETY: `bpf_probe_read_user` validates the address.
        let frame = match unsafe { bpf_probe_read_user(fp as *const [u64; 2]) } {
            Ok(f) => f,
            Err(e) => {
                read_failed(probe, "frame at BP", fp, e);
                break;
            }
        };
        h = mix(h ^ frame[1]);
        fp = frame[0];
    }
    h
}

/// A 64-bit mixer (splitmix64's finaliser).
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Marks `goid`'s reported park as woken; returns whether there was one to pair with (`None`:
/// SFGI has no state for it — parked before the probes went in, or evicted).
#[inline(always)]
fn take_parked(goid: u64) -> Option<bool> {
    let p = GSTATE.get_ptr_mut(goid)?;
    // SAFETY: pointer from a successful map lookup, valid for this program run.
    unsafe {
        let was = (*p).parked == 1;
        (*p).parked = 0;
        Some(was)
    }
}

/// Ready: `runtime.ready(gp, traceskip, next)` makes a parked goroutine runnable.
#[uprobe]
pub fn sfgi_ready(ctx: ProbeContext) -> u32 {
    if !in_target() {
        return 0;
    }
    const P: ProbeId = ProbeId::Ready;
    count(P, CounterKind::Hits);
    let r = regs(&ctx);
    let Ok(goid) = read_u64(P, "g.goid", r.rax + config(&G_GOID)) else {
        return 0;
    };
    // A wake of a park SFGI left out (sampling) or already paired carries nothing. A goroutine
    // SFGI has no state for may have parked before the probes went in (the inventory knows it):
    // report that wake.
    if take_parked(goid) == Some(false) {
        count(P, CounterKind::Filtered);
        return 0;
    }
    let mut ev = base(EventKind::Ready, goid);
    ev.other_goid = current_goid(P, r);
    emit(P, ev);
    0
}

/// Run: `runtime.execute(gp, inheritTime)`, which every goroutine passes to run again, however it
/// was woken (`ready`, netpoll, `injectglist`, GC workers). Emits for goroutines whose reported
/// park is not yet paired with a wake, and once for a goroutine SFGI has no state for (it may have
/// parked before the probes went in: the inventory knows it, and this is its wake). With this, the
/// `ready` probe is not needed: one trap per park/wake pair fewer.
#[uprobe]
pub fn sfgi_run(ctx: ProbeContext) -> u32 {
    if !in_target() {
        return 0;
    }
    const P: ProbeId = ProbeId::Run;
    count(P, CounterKind::Hits);
    let r = regs(&ctx);
    let Ok(goid) = read_u64(P, "g.goid", r.rax + config(&G_GOID)) else {
        return 0;
    };
    match take_parked(goid) {
        Some(true) => {}
        Some(false) => return 0,
        None => state_insert(
            P,
            goid,
            GState {
                stack_id: -1,
                ..GState::default()
            },
        ),
    }
    emit(P, base(EventKind::Run, goid));
    0
}

/// Exit: `runtime.goexit1()` on the finishing goroutine.
#[uprobe]
pub fn sfgi_exit(ctx: ProbeContext) -> u32 {
    if !in_target() {
        return 0;
    }
    const P: ProbeId = ProbeId::Exit;
    count(P, CounterKind::Hits);
    let r = regs(&ctx);
    let Ok(goid) = read_u64(P, "g.goid", r.r14 + config(&G_GOID)) else {
        return 0;
    };
    let _ = GSTATE.remove(goid);
    emit(P, base(EventKind::Exit, goid));
    0
}

/// GC start: `runtime.gcStart(trigger)` (may return early without starting a cycle).
#[uprobe]
pub fn sfgi_gc_start(ctx: ProbeContext) -> u32 {
    gc_event(&ctx, ProbeId::GcStart, EventKind::GcStart)
}

/// GC end: `runtime.gcMarkTermination`, once per completed cycle.
#[uprobe]
pub fn sfgi_gc_end(ctx: ProbeContext) -> u32 {
    gc_event(&ctx, ProbeId::GcEnd, EventKind::GcEnd)
}

#[inline(always)]
fn gc_event(ctx: &ProbeContext, probe: ProbeId, kind: EventKind) -> u32 {
    if !in_target() {
        return 0;
    }
    count(probe, CounterKind::Hits);
    let goid = current_goid(probe, regs(ctx));
    emit(probe, base(kind, goid));
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible licence: `bpf_probe_read_user` and `bpf_get_stackid` are GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
