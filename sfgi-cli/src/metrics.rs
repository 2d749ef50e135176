//! Prometheus exposition of a watch [`Snapshot`]: `GET /metrics` (through `prometheus-client`)
//! and `GET /sfgi/profile` (the goroutine-count trend of the last hour, with sample timestamps).
//!
//! Label cardinality is bounded in `/metrics`: states, statuses, severities, patterns and probes
//! only — never goroutine or group ids. The profile is an explicit per-group view and does carry
//! group ids (at most [`crate::snapshot::PROFILE_GROUPS`] per sample).
use crate::snapshot::Snapshot;
use prometheus_client::encoding::EncodeLabelSet;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeakLabels {
    status: String,
    severity: String,
    pattern: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiagLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe: String,
}

pub use sfgi_trace::procfs::self_usage;

/// `GET /metrics`: the snapshot's numbers plus the scan-duration histogram and SFGI's own usage,
/// in the Prometheus text format (0.0.4).
pub fn encode_metrics(s: &Snapshot, scans: &Histogram) -> String {
    let mut reg = Registry::default();

    let goroutines = Family::<StateLabels, Gauge>::default();
    for (state, n) in s.states.by_name() {
        goroutines
            .get_or_create(&StateLabels {
                state: state.to_string(),
            })
            .set(n as i64);
    }
    reg.register(
        "sfgi_goroutines",
        "Goroutines of the target by state (running = not parked as far as SFGI knows)",
        goroutines,
    );

    let groups = Family::<LeakLabels, Gauge>::default();
    let leaked = Family::<LeakLabels, Gauge>::default();
    let held = Family::<LeakLabels, Gauge>::default();
    for g in &s.report.leaks {
        let l = LeakLabels {
            status: g.status.as_str().to_string(),
            severity: g.severity.map(|s| s.as_str()).unwrap_or("none").to_string(),
            pattern: g.pattern.clone(),
        };
        groups.get_or_create(&l).inc();
        leaked.get_or_create(&l).inc_by(g.count as i64);
        let h = held.get_or_create(&l);
        h.set(h.get().max(g.status_seconds as i64));
    }
    reg.register(
        "sfgi_leak_status_seconds",
        "How long the longest-standing leak group with these labels has had its status (the judge holds a status through gaps in the evidence)",
        held,
    );
    reg.register(
        "sfgi_leak_groups",
        "Leak groups (growing, suspect, proven) by status, severity and pattern",
        groups,
    );
    reg.register(
        "sfgi_leaked_goroutines",
        "Goroutines in leak groups by status, severity and pattern",
        leaked,
    );

    let events = Family::<ProbeLabels, Counter>::default();
    let dropped = Family::<ProbeLabels, Counter>::default();
    for p in &s.report.stats.probes {
        let l = ProbeLabels {
            probe: p.probe.clone(),
        };
        events.get_or_create(&l).inc_by(p.counters.emitted);
        dropped.get_or_create(&l).inc_by(p.counters.dropped);
    }
    reg.register(
        "sfgi_events",
        "Events the probes wrote to the ring buffer, by probe",
        events,
    );
    reg.register(
        "sfgi_events_dropped",
        "Events lost to a full ring buffer, by probe",
        dropped,
    );

    // Everything that makes SFGI's picture incomplete, so dashboards can alert on it.
    let read_errors = Family::<ProbeLabels, Counter>::default();
    let stack_errors = Family::<ProbeLabels, Counter>::default();
    for p in &s.report.stats.probes {
        let l = ProbeLabels {
            probe: p.probe.clone(),
        };
        read_errors.get_or_create(&l).inc_by(p.counters.read_errors);
        stack_errors
            .get_or_create(&l)
            .inc_by(p.counters.stack_errors);
    }
    reg.register(
        "sfgi_probe_read_errors",
        "Failed reads of target memory inside probes, by probe",
        read_errors,
    );
    reg.register(
        "sfgi_probe_stack_errors",
        "Failed user-stack captures inside probes, by probe",
        stack_errors,
    );
    let missing = Family::<ProbeLabels, Gauge>::default();
    for m in &s.report.stats.missing_probes {
        missing
            .get_or_create(&ProbeLabels {
                probe: m.probe.to_string(),
            })
            .set(1);
    }
    reg.register(
        "sfgi_probe_missing",
        "1 for each probe SFGI wanted and could not place",
        missing,
    );
    let decode_errors: Counter = Counter::default();
    decode_errors.inc_by(s.report.stats.decode_errors);
    reg.register(
        "sfgi_event_decode_errors",
        "Ring-buffer records that could not be decoded",
        decode_errors,
    );
    let diag = Family::<DiagLabels, Counter>::default();
    for k in &s.report.stats.ebpf_log.kinds {
        for (outcome, n) in [("logged", k.logged), ("suppressed", k.suppressed)] {
            diag.get_or_create(&DiagLabels {
                kind: k.kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n);
        }
    }
    reg.register(
        "sfgi_ebpf_log_records",
        "The probes' diagnostics while -v is on, by kind: logged, or left out by the rate limit",
        diag,
    );
    let unreadable: Gauge = Gauge::default();
    let inventory_failed: Gauge = Gauge::default();
    if let Some(h) = &s.report.stats.inventory {
        unreadable.set(h.inventory_unreadable as i64);
        inventory_failed.set(i64::from(h.inventory_error.is_some()));
    }
    reg.register(
        "sfgi_inventory_unreadable_goroutines",
        "Goroutines the last inventory read could not read consistently",
        unreadable,
    );
    reg.register(
        "sfgi_inventory_failed",
        "1 when the last inventory read failed (SFGI then works from events alone)",
        inventory_failed,
    );

    let gc: Counter = Counter::default();
    gc.inc_by(s.report.stats.gc_cycles);
    reg.register(
        "sfgi_gc_cycles",
        "Completed GC cycles of the target seen while attached",
        gc,
    );

    reg.register(
        "sfgi_inventory_scan_seconds",
        "Duration of goroutine inventory scans (start, periodic, triggered)",
        scans.clone(),
    );

    if let Some(b) = &s.report.stats.budget {
        let mode: Gauge = Gauge::default();
        mode.set(b.mode.level());
        reg.register(
            "sfgi_overhead_mode",
            "Overhead budget mode: 0 full, 1 sampled (ring buffer overflowed), 2 parks-only, 3 inventory-only",
            mode,
        );
        let rate: Gauge = Gauge::default();
        rate.set(b.probe_hits_per_second as i64);
        reg.register(
            "sfgi_probe_hits_per_second",
            "Probe hits per second in the target over the last budget window",
            rate,
        );
    }

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

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &reg);
    out
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
