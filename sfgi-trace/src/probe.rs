//! Loads SFGI's eBPF programs and attaches them as uprobes to one Go process.
//!
//! Dropping a [`Tracer`] detaches every probe and frees every map (aya closes the perf-event and
//! program fds); the kernel does the same if SFGI dies, even by `kill -9`.
//!
//! The programs' diagnostics (aya-log records from their rare failure paths: a read of target
//! memory that fails, a refused state insert, stack or ring-buffer reservation) go to the `log`
//! crate under the target [`EBPF_LOG_TARGET`], at debug level. The kernel side writes them only
//! when that level is enabled when the probes load (`sfgi -v`, or `RUST_LOG=sfgi=debug`);
//! otherwise the verifier removes that code. [`Tracer::flush_log`] forwards what was written.
pub use crate::stats::{DiagKindStats, DiagStats, MissingProbe, ProbeCounters};
use aya::maps::{Array, MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use aya_log::EbpfLogger;
pub use sfgi_common::EBPF_LOG_TARGET;
use sfgi_common::{
    config, counter_index, globals, maps, programs, CounterKind, DiagKind, ProbeId, SpawnReg,
    DIAG_LOG_LIMIT, PROBE_COUNT,
};
use sfgi_goexe::{GoBinary, GoExeError, SpawnProbeKind};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

/// The compiled eBPF object (empty off x86_64, where the probes cannot run: see build.rs).
static BPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sfgi.bpf.o"));

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probes are written for amd64 (they read its registers); this is another machine.
    #[error("{}", crate::target::AMD64_ONLY)]
    UnsupportedArch,
    /// The CLI was built without the eBPF object.
    #[error(
        "this sfgi was built without its eBPF object: run `cargo xtask build-ebpf`, then rebuild"
    )]
    NoObject,
    /// The kernel refused to load the programs or maps.
    #[error("loading the eBPF programs failed: {0}{hint}", hint = privilege_hint())]
    Load(String),
    /// A probe point SFGI cannot do without is missing or refused.
    #[error("cannot probe {function}: {why}")]
    Required {
        /// The Go runtime function.
        function: String,
        /// What went wrong.
        why: String,
    },
    /// The binary could not be analysed.
    #[error(transparent)]
    Binary(#[from] GoExeError),
}

/// Why an uprobe could not be attached: aya's message, the system error under it, and what to do
/// when the kernel refused it for want of CAP_SYS_ADMIN.
fn attach_error(e: &aya::programs::ProgramError) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut eacces = false;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            eacces |= io.raw_os_error() == Some(libc::EACCES);
        }
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    if eacces && !has_sys_admin() {
        // Linux's "perf: Require CAP_SYS_ADMIN for uprobes" (2025, also in stable kernels):
        // CAP_PERFMON no longer suffices to create a uprobe perf event.
        msg.push_str(
            " (this kernel creates uprobes only for CAP_SYS_ADMIN: CAP_BPF and CAP_PERFMON are \
             not enough since Linux's \"perf: Require CAP_SYS_ADMIN for uprobes\"; grant \
             CAP_SYS_ADMIN)",
        );
    }
    msg
}

/// Whether this process holds CAP_SYS_ADMIN (effective).
fn has_sys_admin() -> bool {
    use crate::target::{has_cap, CAP_SYS_ADMIN};
    has_cap(crate::procfs::effective_caps(), CAP_SYS_ADMIN)
}

fn privilege_hint() -> &'static str {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        " (not root: sfgi needs CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON on kernels that still \
         let those create uprobes, plus CAP_SYS_PTRACE; run it with sudo)"
    } else {
        ""
    }
}

/// Where one probe goes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeSite {
    /// Which probe.
    #[serde(skip)]
    pub id: ProbeId,
    /// Short name (`park`, `spawn`, …).
    pub probe: &'static str,
    /// The Go runtime function it instruments.
    pub function: String,
    /// Link-time virtual address of the probed instruction.
    pub address: u64,
    /// File offset of the probed instruction (what the kernel takes).
    pub file_offset: u64,
    /// Whether the probe is past the stack-check prologue (cheap: emulated, no single-step).
    pub past_prologue: bool,
    /// Whether SFGI cannot work without it.
    pub required: bool,
}

/// Every probe site for a binary, plus the ones that could not be placed.
#[derive(Clone, Debug, Default)]
pub struct ProbePlan {
    /// Sites to attach.
    pub sites: Vec<ProbeSite>,
    /// Probes that could not be placed (the output says so).
    pub missing: Vec<MissingProbe>,
    /// Register holding the new `g` at the spawn site.
    pub spawn_reg: Option<SpawnReg>,
}

fn program_name(id: ProbeId) -> &'static str {
    match id {
        ProbeId::Spawn => programs::SPAWN,
        ProbeId::Park => programs::PARK,
        ProbeId::Ready => programs::READY,
        ProbeId::Run => programs::RUN,
        ProbeId::Exit => programs::EXIT,
        ProbeId::GcStart => programs::GC_START,
        ProbeId::GcEnd => programs::GC_END,
    }
}

/// All probes in counter order.
pub const ALL_PROBES: [ProbeId; PROBE_COUNT as usize] = [
    ProbeId::Spawn,
    ProbeId::Park,
    ProbeId::Ready,
    ProbeId::Run,
    ProbeId::Exit,
    ProbeId::GcStart,
    ProbeId::GcEnd,
];

impl ProbePlan {
    /// Works out where every probe goes in `bin`.
    pub fn for_binary(bin: &GoBinary) -> ProbePlan {
        let mut plan = ProbePlan::default();
        let simple = [
            (ProbeId::Park, "runtime.gopark", true),
            (ProbeId::Ready, "runtime.ready", false),
            (ProbeId::Run, "runtime.execute", false),
            (ProbeId::Exit, "runtime.goexit1", false),
            (ProbeId::GcStart, "runtime.gcStart", false),
            (ProbeId::GcEnd, "runtime.gcMarkTermination", false),
        ];
        for (id, function, required) in simple {
            match bin.probe_point(function) {
                Ok(p) => plan.sites.push(ProbeSite {
                    id,
                    probe: id.name(),
                    function: function.to_string(),
                    address: p.address,
                    file_offset: p.file_offset,
                    past_prologue: p.past_prologue,
                    required,
                }),
                Err(e) => plan.missing.push(MissingProbe {
                    probe: id.name(),
                    function: function.to_string(),
                    why: e.to_string(),
                }),
            }
        }
        plan.add_spawn(bin);
        plan
    }

    /// Spawn: the `CALL runtime.runqput(pp, newg, next)` inside `runtime.newproc.func1` (RBX holds
    /// the new g; CALL is emulated by the kernel), else the instruction after
    /// `CALL runtime.newproc1` (RAX holds its result).
    fn add_spawn(&mut self, bin: &GoBinary) {
        match bin.spawn_probe() {
            Ok(sp) => {
                let (reg, function) = match sp.kind {
                    SpawnProbeKind::RunqputCall => (
                        SpawnReg::Rbx,
                        "runtime.newproc.func1 (CALL runtime.runqput)",
                    ),
                    SpawnProbeKind::AfterNewproc1 => (
                        SpawnReg::Rax,
                        "runtime.newproc.func1 (after CALL runtime.newproc1)",
                    ),
                };
                self.spawn_reg = Some(reg);
                self.sites.push(ProbeSite {
                    id: ProbeId::Spawn,
                    probe: ProbeId::Spawn.name(),
                    function: function.to_string(),
                    address: sp.address,
                    file_offset: sp.file_offset,
                    past_prologue: reg == SpawnReg::Rbx,
                    required: false,
                });
            }
            Err(e) => self.missing.push(MissingProbe {
                probe: ProbeId::Spawn.name(),
                function: "runtime.newproc.func1".to_string(),
                why: e.to_string(),
            }),
        }
    }
}

/// Tuning of the kernel side.
#[derive(Clone, Debug)]
pub struct TracerOptions {
    /// Capture user stacks at park and spawn.
    pub stacks: bool,
    /// Ring-buffer size in bytes (power of two, multiple of the page size); 0: sized for the
    /// target by the caller ([`ring_bytes_for`]).
    pub ring_bytes: u32,
    /// Capacity of the stack map.
    pub stack_entries: u32,
    /// Also attach the `runtime.ready` probe (reports who woke whom). Off by default: `execute`
    /// sees every wake, so `ready` only adds a trap per park/wake pair (measured in
    /// docs/PERFORMANCE.md) for the waker's goid, which no verdict uses.
    pub ready_probe: bool,
    /// Capacity of the per-goroutine probe state map (see [`gstate_entries_for`]).
    pub gstate_entries: u32,
}

/// Fewest and most entries of the per-goroutine probe state map.
pub const GSTATE_ENTRIES: std::ops::RangeInclusive<u32> = (1 << 16)..=(1 << 21);

/// Capacity of the per-goroutine probe state map for a target with `goroutines` `g`s: room for
/// all of them (a power of two, within [`GSTATE_ENTRIES`]). Past it the map evicts the least
/// recently seen goroutines: their next wake is reported again (an extra event, never a lost
/// one), and the report says so.
pub fn gstate_entries_for(goroutines: u64) -> u32 {
    let want = goroutines
        .saturating_add(4096)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX);
    let want = u32::try_from(want).unwrap_or(u32::MAX);
    want.clamp(*GSTATE_ENTRIES.start(), *GSTATE_ENTRIES.end())
}

/// Ring-buffer size for a target with `goroutines` `g`s: the ring must hold what arrives while
/// the session loop is busy elsewhere — above all an inventory read, whose length follows the
/// target's size — plus a burst above `--max-event-rate` before the budget acts. 4 MiB (≈ 58k
/// 72-byte records) up to 10k goroutines, 8 MiB up to 100k, 16 MiB past that. The ring is
/// mapped twice into SFGI's address space and counts twice in its RSS, so this is most of a
/// small target's cost (docs/PERFORMANCE.md "Memory").
pub fn ring_bytes_for(goroutines: u64) -> u32 {
    match goroutines {
        0..=10_000 => 4 << 20,
        10_001..=100_000 => 8 << 20,
        _ => 16 << 20,
    }
}

impl Default for TracerOptions {
    fn default() -> Self {
        Self {
            stacks: true,
            ring_bytes: 16 << 20,
            stack_entries: 32768,
            ready_probe: false,
            gstate_entries: 1 << 18,
        }
    }
}

/// The aya-log level the eBPF side filters on before it formats anything: the most verbose
/// level the `log` crate's logger takes for [`EBPF_LOG_TARGET`] now (0: none).
fn ebpf_log_level() -> u8 {
    use log::Level;
    [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ]
    .into_iter()
    .find(|&l| log::log_enabled!(target: EBPF_LOG_TARGET, l))
    .map_or(0, |l| l as u8)
}

/// Attached probes on one process.
pub struct Tracer {
    // Field order matters: the ring buffers and maps go before the `Ebpf` that owns the programs.
    events: RingBuf<MapData>,
    stacks: StackTraceMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    config: Array<MapData, u32>,
    diag: PerCpuArray<MapData, u64>,
    /// Forwards the programs' diagnostics to the `log` crate (`None`: logging is off).
    logger: Option<EbpfLogger<&'static dyn log::Log>>,
    ebpf: Ebpf,
    /// What was attached and what could not be.
    pub plan: ProbePlan,
    links: Vec<(ProbeId, Option<UProbeLinkId>)>,
    scope: UProbeScope,
    exe: PathBuf,
    gstate_entries: u32,
    stack_entries: u32,
}

impl Tracer {
    /// Capacity of the per-goroutine probe state map.
    pub fn gstate_entries(&self) -> u32 {
        self.gstate_entries
    }

    /// Capacity of the stack map (never pruned while attached: once it is full, or two stacks
    /// hash alike, new stacks are refused and counted as stack errors).
    pub fn stack_entries(&self) -> u32 {
        self.stack_entries
    }

    /// Loads the programs configured for `bin` and attaches them to process `pid`, whose
    /// executable is reachable at `exe` (e.g. `/proc/PID/exe`).
    pub fn attach(
        pid: u32,
        exe: &Path,
        bin: &GoBinary,
        opts: &TracerOptions,
    ) -> Result<Tracer, ProbeError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(ProbeError::UnsupportedArch);
        }
        if BPF_OBJECT.is_empty() {
            return Err(ProbeError::NoObject);
        }
        let mut plan = ProbePlan::for_binary(bin);
        if let Some(m) = plan.missing.iter().find(|m| m.probe == "park") {
            return Err(ProbeError::Required {
                function: m.function.clone(),
                why: m.why.clone(),
            });
        }
        let off = bin.offsets();
        let spawn_reg = plan.spawn_reg.unwrap_or(SpawnReg::Rbx) as u32;
        let want_stacks = u32::from(opts.stacks);
        let sudog = bin.sudog_offsets();
        // Only trust sudog offsets that come from DWARF or a table for this exact version.
        let (g_waiting, sudog_c, sudog_is_select, sudog_waitlink) = match sudog.source {
            sfgi_goexe::SudogSource::Guess { .. } => (0u64, 0u64, 0u64, 0u64),
            _ => (off.g_waiting, sudog.c, sudog.is_select, sudog.waitlink),
        };
        // (global, the field as the probes' diagnostics name it, offset)
        #[cfg_attr(
            not(feature = "test-hooks"),
            expect(unused_mut, reason = "test hook only")
        )]
        let mut offsets: [(&str, &str, u64); 10] = [
            (globals::G_GOID, "g.goid", off.g_goid),
            (globals::G_M, "g.m", off.g_m),
            (globals::M_CURG, "m.curg", off.m_curg),
            (globals::G_PARENT_GOID, "g.parentGoid", off.g_parent_goid),
            (globals::G_GOPC, "g.gopc", off.g_gopc),
            (globals::G_STARTPC, "g.startpc", off.g_startpc),
            (globals::G_WAITING, "g.waiting", g_waiting),
            (globals::SUDOG_C, "sudog.c", sudog_c),
            (globals::SUDOG_IS_SELECT, "sudog.isSelect", sudog_is_select),
            (globals::SUDOG_WAITLINK, "sudog.waitlink", sudog_waitlink),
        ];
        #[cfg(feature = "test-hooks")]
        test_hooks::break_offset(&mut offsets);
        let log_level = ebpf_log_level();
        let mut loader = EbpfLoader::new();
        loader
            .override_global(globals::TARGET_TGID, &pid, true)
            .override_global(globals::WANT_STACKS, &want_stacks, true)
            .override_global(globals::SPAWN_REG, &spawn_reg, true)
            .override_global(aya_log::LEVEL, &log_level, true)
            .map_max_entries(maps::EVENTS, opts.ring_bytes)
            .map_max_entries(maps::STACKS, opts.stack_entries)
            .map_max_entries(maps::GSTATE, opts.gstate_entries);
        for (global, _, value) in &offsets {
            loader.override_global(global, value, true);
        }
        let mut ebpf = loader
            .load(BPF_OBJECT)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        // Takes the log ring buffer out of `ebpf` (the programs keep it open either way). The
        // probes' records are all at debug level: below it there is nothing to forward.
        let logger = if log_level >= log::Level::Debug as u8 {
            match EbpfLogger::init(&mut ebpf) {
                Ok(l) => Some(l),
                Err(e) => {
                    log::warn!("the eBPF programs' diagnostics are not available: {e}");
                    None
                }
            }
        } else {
            None
        };
        let scope = UProbeScope::OneProcess(
            NonZeroU32::new(pid)
                .ok_or_else(|| ProbeError::Load("pid 0 is not a process".to_string()))?,
        );
        let exe: PathBuf = exe.to_path_buf();
        let mut attached = Vec::new();
        let mut links = Vec::new();
        for site in std::mem::take(&mut plan.sites) {
            if site.id == ProbeId::Ready && !opts.ready_probe {
                continue;
            }
            let res = (|| -> Result<UProbeLinkId, String> {
                let prog: &mut UProbe = ebpf
                    .program_mut(program_name(site.id))
                    .ok_or("program missing from the eBPF object")?
                    .try_into()
                    .map_err(|e: aya::programs::ProgramError| e.to_string())?;
                prog.load().map_err(|e| load_error(&e))?;
                prog.attach(
                    UProbeAttachLocation::AbsoluteOffset(site.file_offset),
                    &exe,
                    scope,
                )
                .map_err(|e| attach_error(&e))
            })();
            match res {
                Ok(link) => {
                    links.push((site.id, Some(link)));
                    attached.push(site)
                }
                Err(why) if site.required => {
                    return Err(ProbeError::Required {
                        function: site.function,
                        why: format!("{why}{}", privilege_hint()),
                    })
                }
                Err(why) => plan.missing.push(MissingProbe {
                    probe: site.probe,
                    function: site.function,
                    why,
                }),
            }
        }
        plan.sites = attached;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| ProbeError::Load(format!("map {name} missing from the eBPF object")))
        };
        let events = RingBuf::try_from(take(&mut ebpf, maps::EVENTS)?)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        let stacks = StackTraceMap::try_from(take(&mut ebpf, maps::STACKS)?)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, maps::COUNTERS)?)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        let config = Array::try_from(take(&mut ebpf, maps::CONFIG)?)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        let diag = PerCpuArray::try_from(take(&mut ebpf, maps::DIAG)?)
            .map_err(|e| ProbeError::Load(e.to_string()))?;
        Ok(Tracer {
            events,
            stacks,
            counters,
            config,
            diag,
            logger,
            ebpf,
            plan,
            links,
            scope,
            exe,
            gstate_entries: opts.gstate_entries,
            stack_entries: opts.stack_entries,
        })
    }

    /// Makes the park probe report 1 in `n` repeat parks of a goroutine at one site (0 or 1:
    /// all). Takes effect on the next hit; new sites are always reported.
    pub fn set_sample_every(&mut self, n: u32) -> Result<(), String> {
        self.config
            .set(config::SAMPLE_EVERY, n, 0)
            .map_err(|e| e.to_string())
    }

    /// Whether probe `id` is attached now.
    pub fn is_attached(&self, id: ProbeId) -> bool {
        self.links.iter().any(|(p, l)| *p == id && l.is_some())
    }

    /// Detaches probe `id` (its program stays loaded; [`Tracer::reattach`] puts it back).
    pub fn detach(&mut self, id: ProbeId) -> Result<(), String> {
        let Some(slot) = self.links.iter_mut().find(|(p, _)| *p == id) else {
            return Ok(());
        };
        let Some(link) = slot.1.take() else {
            return Ok(());
        };
        program(&mut self.ebpf, id)?
            .detach(link)
            .map_err(|e| e.to_string())
    }

    /// Attaches a probe [`Tracer::detach`] took off.
    pub fn reattach(&mut self, id: ProbeId) -> Result<(), String> {
        let Some(site) = self.plan.sites.iter().find(|s| s.id == id) else {
            return Ok(());
        };
        let off = site.file_offset;
        let Some(slot) = self.links.iter_mut().find(|(p, _)| *p == id) else {
            return Ok(());
        };
        if slot.1.is_some() {
            return Ok(());
        }
        let link = program(&mut self.ebpf, id)?
            .attach(
                UProbeAttachLocation::AbsoluteOffset(off),
                &self.exe,
                self.scope,
            )
            .map_err(|e| attach_error(&e))?;
        slot.1 = Some(link);
        Ok(())
    }

    /// Hands up to `max` records waiting in the ring buffer to `f`; returns how many it handed
    /// over (`max` means more may be waiting). Bounded so that a target flooding events cannot
    /// keep the caller from its other work (signals, HTTP, verdicts).
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some(item) = self.events.next() else {
                break;
            };
            f(&item);
            n += 1;
        }
        n
    }

    /// Forwards the diagnostics the programs wrote since the last call to the `log` crate (one
    /// record per line, each naming its probe). Cheap when there are none; nothing when logging
    /// is off.
    pub fn flush_log(&mut self) {
        if let Some(l) = &mut self.logger {
            l.flush();
        }
    }

    /// How many diagnostics the programs logged and how many the rate limit left out (both 0
    /// when logging is off: the failures themselves are in [`Tracer::counters`]).
    pub fn diag_stats(&self) -> DiagStats {
        let mut stats = DiagStats {
            enabled: self.logger.is_some(),
            limit_per_cpu: DIAG_LOG_LIMIT,
            ..DiagStats::default()
        };
        for kind in DiagKind::ALL {
            let per_cpu = self.diag.get(&(kind as u32), 0);
            let (logged, suppressed) = per_cpu.map_or((0, 0), |v| {
                v.iter().fold((0, 0), |(l, s), &n| {
                    (
                        l + n.min(DIAG_LOG_LIMIT),
                        s + n.saturating_sub(DIAG_LOG_LIMIT),
                    )
                })
            });
            stats.logged += logged;
            stats.suppressed += suppressed;
            stats.kinds.push(DiagKindStats {
                kind: kind.name(),
                logged,
                suppressed,
            });
        }
        stats
    }

    /// The user stack (instruction pointers, innermost first) with id `id`, if still stored.
    pub fn stack(&self, id: i32) -> Option<Vec<u64>> {
        let id = u32::try_from(id).ok()?;
        let st = self.stacks.get(&id, 0).ok()?;
        Some(st.frames().iter().map(|f| f.ip).collect())
    }

    /// Counters of one probe, summed over CPUs.
    pub fn counters(&self, id: ProbeId) -> ProbeCounters {
        let sum = |kind: CounterKind| -> u64 {
            self.counters
                .get(&counter_index(id, kind), 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0)
        };
        ProbeCounters {
            hits: sum(CounterKind::Hits),
            emitted: sum(CounterKind::Emitted),
            dropped: sum(CounterKind::Dropped),
            read_errors: sum(CounterKind::ReadErrors),
            stack_errors: sum(CounterKind::StackErrors),
            filtered: sum(CounterKind::Filtered),
            stack_reused: sum(CounterKind::StackReused),
        }
    }
}

/// A one-line account of a program load failure (the verifier's last words, not its whole log).
fn load_error(e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let last: Vec<&str> = log
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("verification time"))
                .filter(|l| !l.starts_with("processed ") && !l.starts_with("stack depth"))
                .collect();
            let tail = last[last.len().saturating_sub(2)..].join(" | ");
            format!("the kernel refused the program ({io_error}): {tail}")
        }
        other => other.to_string(),
    }
}

/// Test-only ways to make the probes fail on purpose (the `test-hooks` feature; a normal build
/// has none of this and never reads these variables).
#[cfg(feature = "test-hooks")]
mod test_hooks {
    /// An offset no `g` or `sudog` field has: 64 TiB past the struct, unmapped in any Go process,
    /// so every read of that field fails with `EFAULT`.
    const BAD_OFFSET: u64 = 1 << 46;

    /// `SFGI_TEST_BAD_OFFSET=g.gopc` (a field name as the diagnostics write it: `g.goid`,
    /// `g.gopc`, `sudog.waitlink`, …) points the probes at a wrong offset for that field.
    pub(super) fn break_offset(offsets: &mut [(&str, &str, u64)]) {
        let Ok(field) = std::env::var("SFGI_TEST_BAD_OFFSET") else {
            return;
        };
        match offsets.iter_mut().find(|(_, f, _)| *f == field) {
            Some((_, _, off)) => {
                log::warn!("SFGI_TEST_BAD_OFFSET: reading {field} at a wrong offset on purpose");
                *off = BAD_OFFSET;
            }
            None => log::warn!("SFGI_TEST_BAD_OFFSET: no field {field}"),
        }
    }
}

/// The loaded uprobe program of probe `id`.
fn program(ebpf: &mut Ebpf, id: ProbeId) -> Result<&mut UProbe, String> {
    ebpf.program_mut(program_name(id))
        .ok_or("program missing")?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())
}

impl sfgi_engine::group::StackSource for Tracer {
    fn stack(&self, id: i32) -> Option<Vec<u64>> {
        Tracer::stack(self, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_map_has_room_for_every_goroutine_within_bounds() {
        assert_eq!(gstate_entries_for(0), 1 << 16);
        assert_eq!(gstate_entries_for(100_000), 1 << 17);
        // The advertised million goroutines fit.
        assert!(u64::from(gstate_entries_for(1_000_009)) >= 1_000_009);
        assert_eq!(gstate_entries_for(1_000_009), 1 << 20);
        assert_eq!(gstate_entries_for(50_000_000), 1 << 21);
        assert_eq!(gstate_entries_for(u64::MAX), 1 << 21);
    }
}
