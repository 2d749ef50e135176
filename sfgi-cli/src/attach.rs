//! `sfgi attach`: attach, collect events for a while, report the parked goroutines, detach.
use crate::event::decode;
use crate::group::{group_parked, StackSource};
use crate::lifetime::Lifetimes;
use crate::probe::{Tracer, TracerOptions, ALL_PROBES};
use crate::report::{ProbeStats, Report, Stats, TargetInfo};
use crate::symbolize::Symbolizer;
use crate::target::Target;
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// Options of one attach session.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// Target PID.
    pub pid: u32,
    /// Stop after this long (`None`: until Ctrl-C/SIGTERM or the target exits).
    pub duration: Option<Duration>,
    /// How often the ring buffer is drained.
    pub poll_interval: Duration,
    /// Kernel-side tuning.
    pub tracer: TracerOptions,
}

impl StackSource for Tracer {
    fn stack(&self, id: i32) -> Option<Vec<u64>> {
        Tracer::stack(self, id)
    }
}

/// `CLOCK_MONOTONIC` now, in ns: the clock `bpf_ktime_get_ns` uses.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs one attach session and returns its report. Probes are detached before it returns, on
/// every path (the tracer is dropped).
pub async fn run(opts: &AttachOptions) -> Result<Report> {
    let target = Target::open(opts.pid)?;
    let support = target.binary.support();
    if !support.probes_supported {
        bail!(
            "cannot trace PID {} ({}): {}",
            target.pid,
            target.exe_display.display(),
            support.problems.join("; ")
        );
    }
    let mut tracer = Tracer::attach(target.pid, &target.exe_path, &target.binary, &opts.tracer)?;
    eprintln!(
        "sfgi: attached {} probes to PID {} ({}, {}){}",
        tracer.plan.sites.len(),
        target.pid,
        target.exe_display.display(),
        target.binary.build_info().go_version,
        match opts.duration {
            Some(d) => format!(" for {}", crate::group::go_duration(d.as_secs_f64())),
            None => "; Ctrl-C to stop".to_string(),
        }
    );
    for m in &tracer.plan.missing {
        eprintln!(
            "sfgi: warning: no {} probe ({}): {}",
            m.probe, m.function, m.why
        );
    }

    let started = Instant::now();
    let mut life = Lifetimes::new();
    let mut decode_errors = 0u64;
    let mut target_exited = false;
    let mut tick = tokio::time::interval(opts.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let deadline = opts.duration.map(|d| started + d);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
        drain(&mut tracer, &mut life, &mut decode_errors);
        if !target.alive() {
            target_exited = true;
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    drain(&mut tracer, &mut life, &mut decode_errors);
    let now = monotonic_ns();

    let mut stats = Stats {
        events: life.events,
        decode_errors,
        gc_cycles: life.gc_cycles,
        spawned: life.spawned,
        exited: life.exited,
        goroutines: life.len(),
        parked: life.parked().count(),
        duration_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        target_exited,
        missing_probes: tracer.plan.missing.clone(),
        ..Stats::default()
    };
    for id in ALL_PROBES {
        let c = tracer.counters(id);
        stats.dropped += c.dropped;
        stats.read_errors += c.read_errors;
        stats.stack_errors += c.stack_errors;
        if let Some(site) = tracer.plan.sites.iter().find(|s| s.id == id) {
            stats.probes.push(ProbeStats {
                probe: site.probe.to_string(),
                function: site.function.clone(),
                address: format!("{:#x}", site.address),
                past_prologue: site.past_prologue,
                counters: c,
            });
        }
    }
    if stats.dropped > 0 {
        stats.warnings.push(format!(
            "{} events were dropped (ring buffer full): goroutine states may be stale",
            stats.dropped
        ));
    }
    if decode_errors > 0 {
        stats.warnings.push(format!(
            "{decode_errors} event records could not be decoded"
        ));
    }
    if !tracer.plan.missing.is_empty() {
        let names: Vec<&str> = tracer.plan.missing.iter().map(|m| m.probe).collect();
        stats.warnings.push(format!(
            "probes missing: {} (see stats.missing_probes)",
            names.join(", ")
        ));
    }
    stats.warnings.push(
        "goroutines parked before SFGI attached produce no events and are not listed".to_string(),
    );

    let mut sym = Symbolizer::new(&target.binary, target.load_bias);
    let groups = group_parked(&life, &target.binary, &mut sym, &tracer, now);
    drop(tracer);
    let bi = target.binary.build_info();
    Ok(Report {
        target: TargetInfo {
            pid: target.pid,
            binary: target.exe_display.display().to_string(),
            go_version: bi.go_version.clone(),
            stripped: target.binary.is_stripped(),
            pie: target.binary.is_pie(),
        },
        leaks: Vec::new(),
        groups,
        stats,
    })
}

fn drain(tracer: &mut Tracer, life: &mut Lifetimes, decode_errors: &mut u64) {
    tracer.drain(|rec| match decode(rec) {
        Ok(ev) => life.apply(&ev),
        Err(_) => *decode_errors += 1,
    });
}
