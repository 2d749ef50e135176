//! Prometheus exposition of a watch [`Snapshot`]: `GET /metrics` (through `prometheus-client`)
//! and `GET /sfgi/profile` (the goroutine-count trend of the last hour, with sample timestamps).
//!
//! Label cardinality is bounded in `/metrics`: states, statuses, severities, patterns and probes
//! only — never goroutine or group ids. The profile is an explicit per-group view and does carry
//! group ids (at most [`crate::snapshot::PROFILE_GROUPS`] per sample).
use crate::report::PprofStats;
use crate::snapshot::Snapshot;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::AtomicU64;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label set: target labels first (empty in `watch`), then the series' own.
pub type Labels = Vec<(String, String)>;

fn with(target: &[(String, String)], own: &[(&str, &str)]) -> Labels {
    let mut l = target.to_vec();
    l.extend(own.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l
}

pub use sfgi_trace::procfs::self_usage;

/// Most groups per target in `sfgi_leak_group_goroutines` (largest first).
pub const GROUP_SERIES: usize = 20;

/// Every per-target family of `/metrics`, filled from one or more snapshots (one per target in
/// the agent, each with its target labels), then registered once: a metric name appears once
/// in the output whatever the number of targets.
#[derive(Default)]
pub struct TargetFamilies {
    goroutines: Family<Labels, Gauge>,
    groups: Family<Labels, Gauge>,
    leaked: Family<Labels, Gauge>,
    held: Family<Labels, Gauge>,
    group_goroutines: Family<Labels, Gauge>,
    events: Family<Labels, Counter>,
    dropped: Family<Labels, Counter>,
    read_errors: Family<Labels, Counter>,
    stack_errors: Family<Labels, Counter>,
    missing: Family<Labels, Gauge>,
    decode_errors: Family<Labels, Counter>,
    diag: Family<Labels, Counter>,
    unreadable: Family<Labels, Gauge>,
    inventory_failed: Family<Labels, Gauge>,
    gc: Family<Labels, Counter>,
    proofs: Family<Labels, Counter>,
    proof_candidates: Family<Labels, Gauge>,
    proof_bytes: Family<Labels, Gauge>,
    proof_ms: Family<Labels, Gauge>,
    proof_refused: Family<Labels, Gauge>,
    mode: Family<Labels, Gauge>,
    rate: Family<Labels, Gauge>,
}

impl TargetFamilies {
    /// Adds one snapshot's series, each labelled with `target` (none in `watch`).
    pub fn add(&mut self, s: &Snapshot, target: &[(String, String)]) {
        for (state, n) in s.states.by_name() {
            self.goroutines
                .get_or_create(&with(target, &[("state", state)]))
                .set(n as i64);
        }
        for g in &s.report.leaks {
            let sev = g.severity.map(|s| s.as_str()).unwrap_or("none");
            let l = with(
                target,
                &[
                    ("status", g.status.as_str()),
                    ("severity", sev),
                    ("pattern", &g.pattern),
                ],
            );
            self.groups.get_or_create(&l).inc();
            self.leaked.get_or_create(&l).inc_by(g.count as i64);
            let h = self.held.get_or_create(&l);
            h.set(h.get().max(g.status_seconds as i64));
        }
        // One series per leak group (largest first, at most GROUP_SERIES): what an alert's
        // runbook text names. Bounded: GROUP_SERIES per target, and targets are capped.
        let mut largest: Vec<_> = s.report.leaks.iter().collect();
        largest.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
        for g in largest.into_iter().take(GROUP_SERIES) {
            let sev = g.severity.map(|s| s.as_str()).unwrap_or("none");
            let blocking = crate::report::short_site(&g.blocked_at);
            let creation = crate::report::short_site(&g.created_by);
            self.group_goroutines
                .get_or_create(&with(
                    target,
                    &[
                        ("group", &g.id),
                        ("status", g.status.as_str()),
                        ("severity", sev),
                        ("pattern", &g.pattern),
                        ("blocking_site", &blocking),
                        ("creation_site", &creation),
                    ],
                ))
                .set(g.count as i64);
        }
        for p in &s.report.stats.probes {
            let l = with(target, &[("probe", &p.probe)]);
            self.events.get_or_create(&l).inc_by(p.counters.emitted);
            self.dropped.get_or_create(&l).inc_by(p.counters.dropped);
            self.read_errors
                .get_or_create(&l)
                .inc_by(p.counters.read_errors);
            self.stack_errors
                .get_or_create(&l)
                .inc_by(p.counters.stack_errors);
        }
        for m in &s.report.stats.missing_probes {
            self.missing
                .get_or_create(&with(target, &[("probe", m.probe)]))
                .set(1);
        }
        let t = target.to_vec();
        self.decode_errors
            .get_or_create(&t)
            .inc_by(s.report.stats.decode_errors);
        for k in &s.report.stats.ebpf_log.kinds {
            for (outcome, n) in [("logged", k.logged), ("suppressed", k.suppressed)] {
                self.diag
                    .get_or_create(&with(target, &[("kind", k.kind), ("outcome", outcome)]))
                    .inc_by(n);
            }
        }
        if let Some(h) = &s.report.stats.inventory {
            self.proofs.get_or_create(&t).inc_by(h.proofs);
            if let Some(p) = &h.last_proof {
                self.proof_candidates
                    .get_or_create(&t)
                    .set(p.candidates as i64);
                self.proof_bytes
                    .get_or_create(&t)
                    .set(i64::try_from(p.bytes_read).unwrap_or(i64::MAX));
                self.proof_ms
                    .get_or_create(&t)
                    .set(i64::try_from(p.pass_ns / 1_000_000).unwrap_or(i64::MAX));
                self.proof_refused
                    .get_or_create(&t)
                    .set(i64::from(p.refused.is_some()));
            }
        }
        let (unreadable, failed) = match &s.report.stats.inventory {
            Some(h) => (
                h.inventory_unreadable as i64,
                i64::from(h.inventory_error.is_some()),
            ),
            None => (0, 0),
        };
        self.unreadable.get_or_create(&t).set(unreadable);
        self.inventory_failed.get_or_create(&t).set(failed);
        self.gc.get_or_create(&t).inc_by(s.report.stats.gc_cycles);
        if let Some(b) = &s.report.stats.budget {
            self.mode.get_or_create(&t).set(b.mode.level());
            self.rate
                .get_or_create(&t)
                .set(b.probe_hits_per_second as i64);
        }
    }

    /// Registers every family (the scan histogram and SFGI's own usage are the caller's). The
    /// families only eBPF gives (probe counters, events, GC cycles, memory inventory reads) only
    /// with `ebpf`; the overhead budget's only with `budget`.
    pub fn register(self, reg: &mut Registry, budget: bool, ebpf: bool) {
        reg.register(
            "sfgi_goroutines",
            "Goroutines of the target by state (running = not parked as far as SFGI knows)",
            self.goroutines,
        );
        reg.register(
            "sfgi_leak_status_seconds",
            "How long the longest-standing leak group with these labels has had its status (the judge holds a status through gaps in the evidence)",
            self.held,
        );
        reg.register(
            "sfgi_leak_groups",
            "Leak groups (growing, suspect, proven) by status, severity and pattern",
            self.groups,
        );
        reg.register(
            "sfgi_leaked_goroutines",
            "Goroutines in leak groups by status, severity and pattern",
            self.leaked,
        );
        reg.register(
            "sfgi_leak_group_goroutines",
            "Goroutines per leak group (the 20 largest per target), with its blocking and creation sites",
            self.group_goroutines,
        );
        if ebpf {
            reg.register(
                "sfgi_events",
                "Events the probes wrote to the ring buffer, by probe",
                self.events,
            );
            reg.register(
                "sfgi_events_dropped",
                "Events lost to a full ring buffer, by probe",
                self.dropped,
            );
            reg.register(
                "sfgi_probe_read_errors",
                "Failed reads of target memory inside probes, by probe",
                self.read_errors,
            );
            reg.register(
                "sfgi_probe_stack_errors",
                "Failed user-stack captures inside probes, by probe",
                self.stack_errors,
            );
            reg.register(
                "sfgi_probe_missing",
                "1 for each probe SFGI wanted and could not place",
                self.missing,
            );
            reg.register(
                "sfgi_event_decode_errors",
                "Ring-buffer records that could not be decoded",
                self.decode_errors,
            );
            reg.register(
                "sfgi_ebpf_log_records",
                "The probes' diagnostics while -v is on, by kind: logged, or left out by the rate limit",
                self.diag,
            );
            reg.register(
                "sfgi_inventory_unreadable_goroutines",
                "Goroutines the last inventory read could not read consistently",
                self.unreadable,
            );
            reg.register(
                "sfgi_inventory_failed",
                "1 when the last inventory read failed (SFGI then works from events alone)",
                self.inventory_failed,
            );
            reg.register(
                "sfgi_gc_cycles",
                "Completed GC cycles of the target seen while attached",
                self.gc,
            );
            reg.register(
                "sfgi_proofs",
                "Reachability proofs run (--prove): two passes over the target's heap each",
                self.proofs,
            );
            reg.register(
                "sfgi_proof_candidates",
                "Goroutines blocked on channels or sync objects in the last proof's second pass",
                self.proof_candidates,
            );
            reg.register(
                "sfgi_proof_bytes_read",
                "Bytes of target memory the last proof read (both passes)",
                self.proof_bytes,
            );
            reg.register(
                "sfgi_proof_duration_milliseconds",
                "Time the last proof's two passes took, reading included",
                self.proof_ms,
            );
            reg.register(
                "sfgi_proof_refused",
                "1 when the last proof proved nothing because something it needed could not be read or the passes disagreed",
                self.proof_refused,
            );
        }
        if budget {
            reg.register(
                "sfgi_overhead_mode",
                "Overhead budget mode: 0 full, 1 sampled (ring buffer overflowed), 2 parks-only, 3 inventory-only",
                self.mode,
            );
            reg.register(
                "sfgi_probe_hits_per_second",
                "Probe hits per second in the target over the last budget window",
                self.rate,
            );
        }
    }
}

/// Registers SFGI's own CPU time and resident memory (once per process, no target labels).
pub fn register_self_usage(reg: &mut Registry) {
    let (cpu, rss) = self_usage();
    let cpu_c: Counter<f64, AtomicU64> = Counter::default();
    cpu_c.inc_by(cpu.unwrap_or(0.0));
    reg.register(
        "sfgi_process_cpu_seconds",
        "CPU time SFGI itself used (user + system)",
        cpu_c,
    );
    let rss_g: Gauge = Gauge::default();
    rss_g.set(rss.unwrap_or(0) as i64);
    reg.register(
        "sfgi_process_resident_memory_bytes",
        "Resident memory of SFGI itself",
        rss_g,
    );
}

/// The registry in the Prometheus text format (0.0.4).
pub fn encode_registry(reg: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, reg);
    out
}

/// `GET /metrics`: the snapshot's numbers plus the scan-duration histogram and SFGI's own usage,
/// in the Prometheus text format (0.0.4).
pub fn encode_metrics(s: &Snapshot, scans: &Histogram) -> String {
    let mut reg = Registry::default();
    let mut fams = TargetFamilies::default();
    fams.add(s, &[]);
    let budget = s.report.stats.budget.is_some();
    let pprof = s.report.stats.pprof.as_ref();
    fams.register(&mut reg, budget, pprof.is_none());
    reg.register(
        "sfgi_inventory_scan_seconds",
        if pprof.is_some() {
            "Duration of the polls of the target's pprof endpoint (goroutine?debug=2, periodic and triggered): upper bounds of the target's stop-the-world pauses"
        } else {
            "Duration of goroutine inventory scans (start, periodic, triggered)"
        },
        scans.clone(),
    );
    if let Some(p) = pprof {
        register_pprof(&mut reg, p);
    }
    register_self_usage(&mut reg);
    encode_registry(&reg)
}

/// The polls of `watch --pprof`: what the source costs the target and how it answers (in place
/// of the probe and event families, which a pprof source does not have).
fn register_pprof(reg: &mut Registry, p: &PprofStats) {
    let counter = |v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        c
    };
    let gauge = |v: f64| {
        let g: Gauge<f64, AtomicU64> = Gauge::default();
        g.set(v);
        g
    };
    reg.register(
        "sfgi_pprof_polls",
        "Polls of the target's net/http/pprof endpoint answered",
        counter(p.polls),
    );
    reg.register(
        "sfgi_pprof_poll_failures",
        "Polls of the target's net/http/pprof endpoint that failed",
        counter(p.failed),
    );
    reg.register(
        "sfgi_pprof_leak_polls",
        "Of the answered polls, goroutineleak profiles (each costs the target a GC cycle)",
        counter(p.leak_polls),
    );
    reg.register(
        "sfgi_pprof_last_poll_seconds",
        "Duration of the last poll: an upper bound of the target's stop-the-world pause for it",
        gauge(p.last_poll_ms / 1e3),
    );
    reg.register(
        "sfgi_pprof_longest_poll_seconds",
        "Duration of the longest poll so far",
        gauge(p.max_poll_ms / 1e3),
    );
    reg.register(
        "sfgi_pprof_poll_interval_seconds",
        "Time between two polls the pause budget chose last",
        gauge(p.interval_seconds),
    );
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// One group's profile series: newest status, newest pattern, `(timestamp ms, count)` points.
type GroupSeries = (String, String, Vec<(i64, usize)>);

/// `GET /sfgi/profile`: goroutines per state and per leak group, one sample per 5 minutes over
/// the last hour plus the current value, each with its timestamp (ms). Series are grouped, each
/// in time order.
pub fn encode_profile(s: &Snapshot) -> String {
    let mut samples = s.profile.as_ref().clone();
    let now = s.profile_sample();
    if samples.last().is_none_or(|l| l.ts_ms < now.ts_ms) {
        samples.push(now);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sfgi_profile_goroutines Goroutines of the target by state: one sample per 5 minutes over the last hour, and now."
    );
    let _ = writeln!(out, "# TYPE sfgi_profile_goroutines gauge");
    for (i, (state, _)) in s.states.by_name().iter().enumerate() {
        for p in &samples {
            let _ = writeln!(
                out,
                "sfgi_profile_goroutines{{state=\"{state}\"}} {} {}",
                p.states.by_name()[i].1,
                p.ts_ms
            );
        }
    }
    // One series per group, labelled with its newest status and pattern; a sample where the
    // group was not a leak group has no point.
    let mut series: BTreeMap<&str, GroupSeries> = BTreeMap::new();
    for p in &samples {
        for g in &p.groups {
            let e = series
                .entry(g.id.as_str())
                .or_insert_with(|| (String::new(), String::new(), Vec::new()));
            e.0 = g.status.as_str().to_string();
            e.1 = g.pattern.clone();
            e.2.push((p.ts_ms, g.count));
        }
    }
    let _ = writeln!(
        out,
        "# HELP sfgi_profile_group_goroutines Goroutines per leak group: one sample per 5 minutes over the last hour, and now."
    );
    let _ = writeln!(out, "# TYPE sfgi_profile_group_goroutines gauge");
    for (id, (status, pattern, points)) in &series {
        for (ts, n) in points {
            let _ = writeln!(
                out,
                "sfgi_profile_group_goroutines{{group=\"{}\",status=\"{}\",pattern=\"{}\"}} {n} {ts}",
                escape(id),
                escape(status),
                escape(pattern)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn reads_own_usage() {
        let (cpu, rss) = self_usage();
        assert!(cpu.is_some_and(|c| c >= 0.0));
        assert!(rss.is_some_and(|r| r > 0));
    }
}
