//! The leak engine: events and inventory snapshots → lifetimes → groups → classification and
//! judgement → leak reports.
//!
//! Park sites are resolved once (symbolized, grouped) and cached by (stack, caller pc, wait
//! reason, creation pc); each parked goroutine then carries its group's index, so sampling
//! populations is one pass over the live goroutines with no symbolization or string hashing.
use crate::classify::{Classification, Classifier, GroupFeatures};
use crate::event::RuntimeEvent;
use crate::format::go_duration;
use crate::frame::{go_dump_text, Frame, Symbols};
use crate::goroutine::{ChanKind, GStatus, GoroutineInfo, Unchanged};
use crate::group::{
    blocking_frame, created_by_site, creation_stack, stable_id, strip_line, StackSource,
};
use crate::judge::{GroupView, Judge, JudgeConfig, MemberView, Severity, Status, UNKNOWN_OBJECT};
use crate::lifetime::{Creation, Lifetimes, Parked, ParkedView};
use crate::proof::{ProofKind, ProofReport, WaitedObject};
// A fast non-cryptographic hasher: these tables are keyed by goids and sites, not by input an
// attacker picks, and a verdict pass at a million goroutines hashes a few million keys.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// Wait reason SFGI uses for goroutines the inventory finds in a system call.
pub const SYSCALL_REASON: &str = "syscall";
/// Raw wait-reason number SFGI uses for [`SYSCALL_REASON`] (outside Go's uint8 range).
const SYSCALL_RAW: u32 = 0x1_0000;
/// Most groups tracked; parks at new sites past this share one overflow group (its own, never
/// a real one), which the report names and counts.
pub const MAX_GROUPS: usize = 50_000;
/// How long a goroutine can stay blocked without Go stamping its wait start (a GC's stack scan
/// does; the runtime forces a GC at least every 2 minutes), plus the minute a dump rounds
/// down: a dump showing no wait time for a park SFGI has known longer shows a new park.
pub const UNSTAMPED_WAIT_NS: u64 = 180_000_000_000;
/// Id of the overflow group.
pub const OVERFLOW_GROUP_ID: &str = "g-overflow";
/// Wait reason shown for the overflow group.
pub const OVERFLOW_REASON: &str = "(many sites: over the group limit)";
/// Most goids listed per group in [`Leak::proven_goroutine_ids`].
pub const MAX_PROVEN_IDS: usize = 10_000;
/// Distinct inventory-unwound stacks whose resolved site is cached; past this, stacks are
/// resolved each time (never keyed together).
pub const MAX_UNWOUND_CACHED: usize = 1 << 20;

/// A leak verdict, in the JSON shape tools consume (field names are a contract).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Leak {
    /// Stable group id.
    pub id: String,
    /// `growing`, `suspect`, `proven` (and, in group listings, `resident`, `normal`).
    pub status: Status,
    /// `L1`…`L4` (absent for non-leak statuses).
    pub severity: Option<Severity>,
    /// Since when the group has had this status without a break (RFC 3339): the judge holds a
    /// status through short gaps in the evidence, so an alert's `for:` can rest on it.
    pub status_since: String,
    /// How long the group has had this status, seconds (from `status_since` to the verdict).
    pub status_seconds: f64,
    /// Pattern ID from the classifier.
    pub pattern: String,
    /// One plain sentence on what is happening.
    pub explanation: String,
    /// One plain sentence on how to fix it.
    pub fix_hint: String,
    /// Members now.
    pub count: usize,
    /// Oldest member's time blocked, as Go prints durations.
    pub duration: String,
    /// Oldest member's time blocked, seconds.
    pub duration_seconds: f64,
    /// When the oldest member blocked (RFC 3339).
    pub first_seen: String,
    /// When the newest member blocked (RFC 3339).
    pub last_seen: String,
    /// Go wait reason.
    pub wait_reason: String,
    /// First frame of the program's own code in the park stack (`function at file:line`).
    pub blocked_at: String,
    /// The `go` statement that created the members.
    pub created_by: String,
    /// Members gained per minute over the threshold window.
    pub growth_per_minute: f64,
    /// Most GC cycles a member stayed blocked across.
    pub gc_cycles_blocked: u64,
    /// Park stack of one member in Go's goroutine-dump text.
    pub stack_trace: String,
    /// Creation stack of one member (empty when created before SFGI attached).
    pub creation_stack: String,
    /// Up to 20 member goids, oldest first.
    pub goroutine_ids: Vec<u64>,
    /// Stack memory the members hold (from each goroutine's stack bounds; 0 when unknown).
    pub stack_bytes: u64,
    /// Why the judge decided so.
    pub reason: String,
    /// Distinct objects (channels, locks) the members park on.
    pub distinct_objects: usize,
    /// Whether the verdict rests on data SFGI knows is incomplete (dropped events, unreadable
    /// memory): say so rather than hide it.
    pub incomplete: bool,
    /// How members were proven leaked, when some were: `"runtime"` (the Go runtime marked them
    /// `_Gleaked`) or `"unreachable"` (SFGI's reachability proof); `null` otherwise.
    pub proof: Option<ProofKind>,
    /// Members proven leaked (either way).
    pub proven: usize,
    /// Goids of the members proven leaked, oldest first, up to [`MAX_PROVEN_IDS`]: to find
    /// them in a goroutine dump, or to compare with the runtime's own `goroutineleak` profile.
    pub proven_goroutine_ids: Vec<u64>,
    /// What a member proven unreachable waits on (type and address), when one was.
    pub proven_object: Option<WaitedObject>,
}

/// One resolved park site → group.
struct GroupSite {
    id: String,
    wait_reason: String,
    blocked_at: String,
    created_by: String,
    park_frames: Vec<Frame>,
    park_functions: Vec<String>,
    /// What the channels of the last member an inventory read whole wait on are (empty:
    /// none read).
    waits_on: Vec<ChanKind>,
}

/// Key of a resolved park site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StackKey {
    /// A kernel stack-map id (plus the caller pc the event carried).
    Kernel(i32, u64),
    /// A stack the inventory unwound, by its index in the engine's table.
    Unwound(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SiteKey {
    stack: StackKey,
    reason: u32,
    gopc: u64,
}

/// Engine tuning.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Judge thresholds.
    pub judge: JudgeConfig,
    /// Wall-clock minus monotonic time (ns) when the session started: turns the monotonic
    /// timestamps of events into RFC 3339 times. The engine reads no clock itself.
    pub wall_minus_mono_ns: i128,
    /// Bounds on the engine's tables.
    pub limits: Limits,
    /// The goroutine records come from saved dumps (`sfgi-dump`), not a live process: a park
    /// first seen in one is dated back by the dump's own wait time (`wait_age_ns`: Go's whole
    /// minutes since a GC first saw it blocked), and the objects its members wait on are
    /// unknown (a dump names none), not nil.
    pub from_dumps: bool,
}

/// Bounds on the engine's tables (memory stays bounded whatever the target does).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most groups, the overflow group included ([`MAX_GROUPS`]).
    pub groups: usize,
    /// Most inventory-unwound stacks whose site is cached ([`MAX_UNWOUND_CACHED`]).
    pub unwound_stacks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            groups: MAX_GROUPS,
            unwound_stacks: MAX_UNWOUND_CACHED,
        }
    }
}

/// Counters of one inventory pass (the goroutines themselves go through
/// [`Engine::ingest_goroutines`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct InventoryPass {
    /// Goroutines that could not be read consistently.
    pub unreadable: usize,
    /// Goroutines not read whole (see [`Unchanged`]).
    pub unchanged: usize,
    /// How long the read took (ns).
    pub read_ns: u64,
}

/// Counters of what the engine could not see.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EngineHealth {
    /// Inventory snapshots taken.
    pub inventories: u64,
    /// Goroutines the last inventory could not read consistently.
    pub inventory_unreadable: usize,
    /// The last inventory error, if the last attempt failed.
    pub inventory_error: Option<String>,
    /// How long the last inventory took, ms.
    pub inventory_ms: f64,
    /// How long the first inventory took, ms (it reads every goroutine whole; later ones are
    /// incremental).
    pub inventory_first_ms: f64,
    /// Goroutines the last inventory did not read whole (unchanged since the read before, or
    /// not parked; see [`Unchanged`]).
    pub inventory_unchanged: usize,
    /// Goroutines found parked by an inventory although SFGI thought them running (missed park).
    pub reconciled_parked: u64,
    /// Goroutines found running by an inventory although SFGI thought them parked (missed wake).
    pub reconciled_running: u64,
    /// Goroutines SFGI tracked that an inventory no longer found (missed exit).
    pub reconciled_gone: u64,
    /// Parks filed into the overflow group because the group limit was reached.
    pub overflow_parks: u64,
    /// Inventory stacks resolved without the site cache (it was full).
    pub uncached_stacks: u64,
    /// Group ids that collided and were made unique with a suffix.
    pub id_collisions: u64,
    /// Parked goroutines the last verdicts left out: known only from events while events
    /// were not trusted (probes detached, events lost), not yet confirmed by an inventory.
    pub unconfirmed: usize,
    /// Whether event-derived states are trusted now (see [`Engine::distrust_events`]).
    pub events_trusted: bool,
    /// Reachability proofs run.
    pub proofs: u64,
    /// The last proof (without its proven list): candidates, bytes read, time, refusal.
    pub last_proof: Option<ProofReport>,
}

/// The whole engine for one target.
pub struct Engine<'t> {
    sym: Box<dyn Symbols + 't>,
    classifier: Classifier,
    /// Every live goroutine SFGI knows of.
    pub life: Lifetimes,
    judge: Judge,
    sites: Vec<GroupSite>,
    /// Per group: members that left after being blocked longer than the threshold (running).
    old_departed: Vec<u64>,
    site_of: HashMap<SiteKey, u32>,
    group_of_key: HashMap<(String, String, String), u32>,
    /// Group ids handed out (ids must stay unique: the judge keys its history by id).
    ids: HashSet<String>,
    kernel_stacks: HashMap<i32, Option<Vec<u64>>>,
    unwound: HashMap<Vec<u64>, u32>,
    /// Index of the overflow group, once made.
    overflow: Option<u32>,
    /// Since when event-derived states may be stale (monotonic ns).
    untrusted_since: Option<u64>,
    limits: Limits,
    /// When the inventory read being ingested started, and the last complete one (monotonic
    /// ns), and the interval between the last two.
    read_now_ns: u64,
    last_read_ns: u64,
    read_gap_ns: u64,
    /// Goroutines proven unreachable: goid → (the park it was proven in, what it waits on).
    proofs: HashMap<u64, (u64, WaitedObject)>,
    /// Live goroutines seen parked in network I/O (not accepting): connection readers.
    readers: HashSet<u64>,
    /// What the engine could not see.
    pub health: EngineHealth,
    wall_minus_mono_ns: i128,
    from_dumps: bool,
}

impl<'t> Engine<'t> {
    /// An engine that names addresses with `sym` and classifies with `classifier`.
    pub fn new(sym: Box<dyn Symbols + 't>, classifier: Classifier, cfg: EngineConfig) -> Self {
        Self {
            sym,
            classifier,
            life: Lifetimes::new(),
            judge: Judge::new(cfg.judge),
            sites: Vec::new(),
            old_departed: Vec::new(),
            site_of: HashMap::new(),
            group_of_key: HashMap::new(),
            ids: HashSet::new(),
            kernel_stacks: HashMap::new(),
            unwound: HashMap::new(),
            overflow: None,
            untrusted_since: None,
            read_now_ns: 0,
            last_read_ns: 0,
            read_gap_ns: 0,
            limits: cfg.limits,
            proofs: HashMap::new(),
            readers: HashSet::new(),
            health: EngineHealth {
                events_trusted: true,
                ..EngineHealth::default()
            },
            wall_minus_mono_ns: cfg.wall_minus_mono_ns,
            from_dumps: cfg.from_dumps,
        }
    }

    /// From `now_ns` on, states known only from events may be stale (a probe was detached, so
    /// wakes or exits go unseen; or events were lost): such a parked goroutine is left out of
    /// the verdicts until an inventory read confirms its park. Returns whether this is news
    /// (the caller should then re-read the inventory at once).
    pub fn distrust_events(&mut self, now_ns: u64) -> bool {
        self.health.events_trusted = false;
        if self.untrusted_since.is_some() {
            return false;
        }
        self.untrusted_since = Some(now_ns);
        true
    }

    /// Events are complete again (every probe attached, nothing lost since the last inventory).
    pub fn trust_events(&mut self) {
        self.untrusted_since = None;
        self.health.events_trusted = true;
    }

    /// Whether a parked goroutine's state may be judged: always while events are trusted;
    /// otherwise only when an inventory saw it in this park after events became untrusted.
    fn confirmed(&self, v: &ParkedView) -> bool {
        match self.untrusted_since {
            None => true,
            Some(t) => v.confirmed_ns >= v.park.since_ns.max(t),
        }
    }

    /// Applies one runtime event; `stacks` resolves kernel stack ids the first time one is seen.
    pub fn apply(&mut self, ev: &RuntimeEvent, stacks: &dyn StackSource) {
        if let RuntimeEvent::Ready { ts_ns, goid, .. }
        | RuntimeEvent::Run { ts_ns, goid }
        | RuntimeEvent::Exit { ts_ns, goid } = *ev
        {
            self.note_departure(goid, ts_ns);
        }
        self.life.apply(ev);
        if let RuntimeEvent::Park {
            goid,
            reason,
            caller_pc,
            stack_id,
            gopc,
            ..
        } = *ev
        {
            let key = SiteKey {
                stack: StackKey::Kernel(stack_id, caller_pc),
                reason,
                gopc,
            };
            let group = match self.site_of.get(&key) {
                Some(&g) => g,
                None => {
                    let ips = self
                        .kernel_stacks
                        .entry(stack_id)
                        .or_insert_with(|| stacks.stack(stack_id))
                        .clone();
                    let pcs = park_pcs(ips.as_deref(), caller_pc);
                    let g = self.resolve(&pcs, reason, gopc);
                    self.site_of.insert(key, g);
                    g
                }
            };
            if let Some(g) = self.life.get_mut(goid) {
                g.park.group = group;
            }
        }
    }

    /// A parked goroutine is leaving its group: count it if it had been there past the threshold.
    fn note_departure(&mut self, goid: u64, ts_ns: u64) {
        let threshold = self.judge.config().threshold.as_nanos() as u64;
        let Some(g) = self.life.parked_view(goid) else {
            return;
        };
        if ts_ns.saturating_sub(g.park.since_ns) <= threshold {
            return;
        }
        if let Some(n) = self.old_departed.get_mut(g.park.group as usize) {
            *n += 1;
        }
    }

    /// Resolves a park stack to its group (creating the group if new).
    fn resolve(&mut self, pcs: &[u64], reason: u32, gopc: u64) -> u32 {
        let frames = match pcs.split_first() {
            Some((&first, rest)) => {
                let mut f = self.sym.frames(first, false);
                for &pc in rest {
                    f.extend(self.sym.frames(pc, true));
                }
                f
            }
            None => Vec::new(),
        };
        let wait_reason = if reason == SYSCALL_RAW {
            SYSCALL_REASON.to_string()
        } else {
            self.sym
                .wait_reason(reason)
                .unwrap_or_else(|| format!("wait reason {reason}"))
        };
        let blocked_at = blocking_frame(&frames)
            .map(Frame::site)
            .unwrap_or_else(|| "unknown (no stack)".to_string());
        let created_by = if gopc == 0 {
            "unknown".to_string()
        } else {
            self.sym
                .frames(gopc, true)
                .first()
                .map(created_by_site)
                .unwrap_or_else(|| format!("{gopc:#x}"))
        };
        let key = (wait_reason, blocked_at, created_by);
        if let Some(&g) = self.group_of_key.get(&key) {
            return g;
        }
        // The last slot is the overflow group's: new sites past the limit go there, never into
        // a real group.
        if self.sites.len() + 1 >= self.limits.groups {
            self.health.overflow_parks += 1;
            return self.overflow_group();
        }
        let (wait_reason, blocked_at, created_by) = key.clone();
        // Ids leave out line numbers so they survive rebuilds; two groups that differ only in
        // lines (two `go` statements in one function) get ids with the lines instead.
        let mut id = stable_id(&[
            &wait_reason,
            &strip_line(&blocked_at),
            &strip_line(&created_by),
        ]);
        if self.ids.contains(&id) {
            id = stable_id(&[&wait_reason, &blocked_at, &created_by]);
        }
        let id = self.unique_id(id);
        let idx = self.push_site(GroupSite {
            id,
            park_functions: frames.iter().map(|f| f.function.clone()).collect(),
            park_frames: frames,
            wait_reason,
            blocked_at,
            created_by,
            waits_on: Vec::new(),
        });
        self.group_of_key.insert(key, idx);
        idx
    }

    /// `id`, or — when a different group already has it (the ids are 32-bit hashes) — `id`
    /// with the first free `-2`, `-3`… suffix, counted in [`EngineHealth::id_collisions`].
    fn unique_id(&mut self, id: String) -> String {
        if !self.ids.contains(&id) {
            self.ids.insert(id.clone());
            return id;
        }
        self.health.id_collisions += 1;
        let mut n = 2u32;
        loop {
            let candidate = format!("{id}-{n}");
            if !self.ids.contains(&candidate) {
                self.ids.insert(candidate.clone());
                return candidate;
            }
            n += 1;
        }
    }

    fn push_site(&mut self, site: GroupSite) -> u32 {
        let idx = self.sites.len() as u32;
        self.sites.push(site);
        self.old_departed.push(0);
        idx
    }

    /// The overflow group's index (made on first use).
    fn overflow_group(&mut self) -> u32 {
        if let Some(i) = self.overflow {
            return i;
        }
        self.ids.insert(OVERFLOW_GROUP_ID.to_string());
        let i = self.push_site(GroupSite {
            id: OVERFLOW_GROUP_ID.to_string(),
            wait_reason: OVERFLOW_REASON.to_string(),
            blocked_at: format!(
                "many sites (over the limit of {} groups)",
                self.limits.groups
            ),
            created_by: "many".to_string(),
            park_frames: Vec::new(),
            park_functions: Vec::new(),
            waits_on: Vec::new(),
        });
        self.overflow = Some(i);
        i
    }

    /// Folds a whole inventory snapshot in (read at `now_monotonic_ns`): seeds goroutines SFGI
    /// has no events for (parked before it attached), and reconciles ones whose events were
    /// missed.
    pub fn ingest_inventory(
        &mut self,
        goroutines: &[GoroutineInfo],
        now_monotonic_ns: i64,
        pass: InventoryPass,
    ) {
        self.begin_inventory();
        self.ingest_goroutines(goroutines, now_monotonic_ns);
        self.end_inventory(pass);
    }

    /// Starts folding in an inventory read in batches ([`Engine::ingest_goroutines`] for each,
    /// then [`Engine::end_inventory`]), so the whole snapshot never sits in memory at once.
    pub fn begin_inventory(&mut self) {
        self.life.begin_inventory();
    }

    /// Folds in one batch of an inventory read at `now_monotonic_ns`.
    pub fn ingest_goroutines(&mut self, goroutines: &[GoroutineInfo], now_monotonic_ns: i64) {
        let now = now_monotonic_ns.max(0) as u64;
        self.read_now_ns = now;
        for gi in goroutines {
            let parked_now = matches!(
                gi.status,
                GStatus::Waiting | GStatus::Leaked | GStatus::Syscall
            );
            let leaked = parked_now.then_some(gi.status == GStatus::Leaked);
            let reason = if gi.status == GStatus::Syscall {
                SYSCALL_RAW
            } else {
                u32::from(gi.wait_reason_raw)
            };
            let caller_pc = gi.stack.get(1).copied().unwrap_or(0);
            let known = self.life.observe(gi.goid, gi.stack_bytes(), leaked);
            match (known, parked_now) {
                (Some(true), true) => {
                    let group = self.inventory_group(gi, reason);
                    let dormant_park = self.life.dormant_park(gi.goid);
                    let dormant = dormant_park.is_some();
                    let same_site = self
                        .life
                        .parked_view(gi.goid)
                        .is_some_and(|v| v.park.group == group)
                        && dormant_park.is_none_or(|p| p == (reason, caller_pc));
                    // Events are fresher than a snapshot taken while the target runs: with
                    // events trusted the snapshot only confirms the park. A park known only from
                    // an earlier read, or from events that may be stale, in another site: it
                    // woke and parked again in between unseen; this park is new (age from now).
                    // A dump's own wait time may say this park began after the one SFGI
                    // knows: it woke and parked again at the same site between two dumps. And a
                    // dump has no events fresher than itself: it alone says where a goroutine is.
                    let same_site = same_site && !(self.from_dumps && self.parked_again(gi, now));
                    if same_site || (!self.from_dumps && !dormant && self.untrusted_since.is_none())
                    {
                        self.life.confirm(gi.goid, now);
                        if !gi.stayed_blocked {
                            self.restart_unproven(gi.goid, now);
                        }
                        if let Some(v) = self.life.parked_view(gi.goid) {
                            self.note_waits(v.park.group, gi);
                        }
                        continue;
                    }
                    if dormant {
                        self.life.forget_dormant(gi.goid);
                    }
                    self.seed_from_inventory(gi, reason, caller_pc, group, now);
                    continue;
                }
                (Some(false), false) | (None, false) => {
                    self.life.seed_active(gi.goid, now, gi.stack_bytes());
                    continue;
                }
                (Some(true), false) => {
                    // A wake SFGI did not see (or the goroutine just woke): trust the snapshot
                    // only for goroutines it parked long ago.
                    self.health.reconciled_running += 1;
                    if let Some(g) = self.life.get_mut(gi.goid) {
                        g.parked = false;
                    }
                    continue;
                }
                (Some(false), true) => self.health.reconciled_parked += 1,
                (None, true) => {}
            }
            let group = self.inventory_group(gi, reason);
            self.seed_from_inventory(gi, reason, caller_pc, group, now);
        }
    }

    /// The group of the park an inventory read whole (its unwound stack, wait reason and
    /// creation site).
    fn inventory_group(&mut self, gi: &GoroutineInfo, reason: u32) -> u32 {
        let stack_idx = match self.unwound.get(&gi.stack) {
            Some(&i) => Some(i),
            None if self.unwound.len() < self.limits.unwound_stacks => {
                let i = self.unwound.len() as u32;
                self.unwound.insert(gi.stack.clone(), i);
                Some(i)
            }
            // The cache is full: resolve this stack on its own (symbolization has its own
            // cache) rather than key it together with others.
            None => None,
        };
        match stack_idx {
            Some(i) => {
                let key = SiteKey {
                    stack: StackKey::Unwound(i),
                    reason,
                    gopc: gi.gopc,
                };
                match self.site_of.get(&key) {
                    Some(&g) => g,
                    None => {
                        let g = self.resolve(&gi.stack, reason, gi.gopc);
                        self.site_of.insert(key, g);
                        g
                    }
                }
            }
            None => {
                self.health.uncached_stacks += 1;
                self.resolve(&gi.stack, reason, gi.gopc)
            }
        }
    }

    /// Files a park an inventory found (SFGI saw no event of it) into `group`, from `now`.
    fn seed_from_inventory(
        &mut self,
        gi: &GoroutineInfo,
        reason: u32,
        caller_pc: u64,
        group: u32,
        now: u64,
    ) {
        // A lower bound: SFGI saw no event of this park, and `g.waitsince` is no better than
        // an upper bound (the runtime stamps it at a GC scan with the previous GC's time,
        // up to a whole GC interval, even two minutes, before the park). Counting from this
        // first sighting, an age error can only delay a verdict, never invent one. A dump
        // is all there is of its moment: its own wait time (whole minutes, rounded down) is
        // the best age it has.
        let since = if self.from_dumps {
            now.saturating_sub(gi.wait_age_ns.unwrap_or(0))
        } else {
            now
        };
        self.life.seed_parked(
            gi.goid,
            Parked {
                reason,
                caller_pc,
                // The inventory follows no sudogs of `_Gleaked` goroutines: their object is
                // unknown, not nil (else a leaked channel op would look like a nil channel).
                // Nor does a dump name any object.
                object: if gi.waiting_on.is_empty()
                    && (gi.status == GStatus::Leaked || self.from_dumps)
                {
                    UNKNOWN_OBJECT
                } else {
                    gi.waiting_on
                        .iter()
                        .take(sfgi_common::MAX_OBJECT_SUDOGS)
                        .fold(0, |k, &c| sfgi_common::fold_object(k, c))
                },
                stack_id: -1,
                since_ns: since,
                gc_at_park: self.life.gc_cycles as u32,
                group,
            },
            Creation {
                parent: gi.parent_goid,
                gopc: gi.gopc,
                startpc: gi.startpc,
                stack_id: -1,
                at_ns: 0,
            },
            gi.status == GStatus::Leaked,
            gi.stack_bytes(),
        );
        self.life.confirm(gi.goid, now);
        self.note_waits(group, gi);
    }

    /// Whether a dump's goroutine, which SFGI knows parked at the same site, must have parked
    /// again since: its wait began later than the known park. Go stamps the wait start at a
    /// GC's stack scan, never later than the real start, and prints whole minutes rounded
    /// down, so a dump saying `m` minutes means the wait began after `now - (m+1) min`. A
    /// dump saying nothing (under a minute, or no GC scanned it blocked yet) proves a new
    /// park only when the known one is older than [`UNSTAMPED_WAIT_NS`].
    fn parked_again(&self, gi: &GoroutineInfo, now: u64) -> bool {
        let Some(v) = self.life.parked_view(gi.goid) else {
            return false;
        };
        let began_after = match gi.wait_age_ns {
            Some(age) => now.saturating_sub(age.saturating_add(60_000_000_000)),
            None => now.saturating_sub(UNSTAMPED_WAIT_NS),
        };
        v.park.since_ns < began_after
    }

    /// While events are untrusted, an inventory that cannot show `goid` stayed blocked since
    /// the read before restarts its age (a goroutine that parks and wakes a thousand times a
    /// second is found "in the same park" by every read otherwise). With events trusted, a
    /// re-park would have been seen.
    fn restart_unproven(&mut self, goid: u64, now: u64) {
        if self.untrusted_since.is_some() {
            self.life.restart_park(goid, now);
        }
    }

    /// Keeps what the channels of `gi` (a member of `group` read whole) are.
    fn note_waits(&mut self, group: u32, gi: &GoroutineInfo) {
        if gi.sudogs.iter().all(|s| s.kind == ChanKind::Unknown) {
            return;
        }
        if let Some(site) = self.sites.get_mut(group as usize) {
            site.waits_on.clear();
            site.waits_on.extend(gi.sudogs.iter().map(|s| s.kind));
        }
    }

    /// Folds in goroutines an incremental re-read at `now_monotonic_ns` did not read whole
    /// (see [`Unchanged`]): a parked one SFGI knows parked is confirmed in its park exactly as a
    /// whole read would; one that is not parked is recorded as active. Returns the slots of
    /// parked ones the engine does not know parked (forgotten, or last seen running): the reader
    /// must read those whole next time.
    pub fn ingest_unchanged(
        &mut self,
        goroutines: &[Unchanged],
        now_monotonic_ns: i64,
    ) -> Vec<u32> {
        let now = now_monotonic_ns.max(0) as u64;
        self.read_now_ns = now;
        let mut whole = Vec::new();
        for g in goroutines {
            if !g.parked() {
                match self.life.observe(g.goid, g.stack_bytes, None) {
                    Some(true) => {
                        self.health.reconciled_running += 1;
                        if let Some(l) = self.life.get_mut(g.goid) {
                            l.parked = false;
                        }
                    }
                    Some(false) | None => self.life.seed_active(g.goid, now, g.stack_bytes),
                }
                continue;
            }
            let leaked = Some(g.status == GStatus::Leaked);
            match self.life.observe(g.goid, g.stack_bytes, leaked) {
                // Unchanged since it was read whole, so in the park SFGI knows.
                Some(true) => {
                    self.life.confirm(g.goid, now);
                    if !g.stayed_blocked {
                        self.restart_unproven(g.goid, now);
                    }
                }
                Some(false) | None => whole.push(g.slot),
            }
        }
        whole
    }

    /// Ends an inventory begun with [`Engine::begin_inventory`]: goroutines it did not see are
    /// gone (exits SFGI missed). `pass` carries the pass's counters.
    pub fn end_inventory(&mut self, pass: InventoryPass) {
        self.health.inventories += 1;
        self.health.inventory_unreadable = pass.unreadable;
        self.health.inventory_error = None;
        self.health.inventory_ms = pass.read_ns as f64 / 1e6;
        self.health.inventory_unchanged = pass.unchanged;
        if self.read_now_ns > self.last_read_ns {
            if self.last_read_ns > 0 {
                self.read_gap_ns = self.read_now_ns - self.last_read_ns;
            }
            self.last_read_ns = self.read_now_ns;
        }
        if self.health.inventories == 1 {
            self.health.inventory_first_ms = self.health.inventory_ms;
        }
        let gone = self.life.end_inventory();
        self.health.reconciled_gone += gone as u64;
    }

    /// Records an inventory failure (the engine then works from events alone). Whatever part of
    /// it was ingested stays; nothing is dropped as gone.
    pub fn inventory_failed(&mut self, why: String) {
        self.life.abandon_inventory();
        self.health.inventory_error = Some(why);
    }

    /// Samples every group's population (call once per `--interval`).
    pub fn tick(&mut self, now_ns: u64) {
        let mut counts = vec![0usize; self.sites.len()];
        // Unconfirmed members are counted: leaving them out would make every population dip
        // while events are untrusted, and a dip breaks the growth a leak shows. They only do
        // not age (see `verdicts`).
        for v in self.life.parked() {
            if let Some(c) = counts.get_mut(v.park.group as usize) {
                *c += 1;
            }
        }
        let (sites, departed) = (&self.sites, &self.old_departed);
        self.judge.observe(
            now_ns,
            counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| (sites[i].id.as_str(), c, departed[i])),
            self.life.len(),
        );
    }

    /// Takes a reachability proof (run by a source from `started_ns` on). A proven goroutine
    /// counts only if the engine knows it parked, in a park that began at least `settle_ns`
    /// before the proof started (so it did not re-park during the proof, as far as events
    /// tell); the proof then stands for that park until it ends. Returns how many were taken.
    pub fn ingest_proofs(
        &mut self,
        report: &ProofReport,
        started_ns: u64,
        settle_ns: u64,
    ) -> usize {
        self.health.proofs += 1;
        let mut summary = report.clone();
        summary.proven.clear();
        self.health.last_proof = Some(summary);
        if report.proven.is_empty() {
            return 0;
        }
        let wanted: HashMap<u64, &WaitedObject> =
            report.proven.iter().map(|p| (p.goid, &p.object)).collect();
        let mut taken = 0;
        for g in self.life.parked() {
            let Some(obj) = wanted.get(&g.goid) else {
                continue;
            };
            if g.park.since_ns.saturating_add(settle_ns) > started_ns || !self.confirmed(&g) {
                continue;
            }
            self.proofs
                .insert(g.goid, (g.park.since_ns, (*obj).clone()));
            taken += 1;
        }
        taken
    }

    /// The live goroutines a network connection's goroutines descend from: each one seen
    /// parked in network I/O other than an accept — a connection's reader, which stays one
    /// while it lives even when it blocks elsewhere for a moment (a mutex, a full channel,
    /// GC assist) — and the live goroutine that started it (a per-connection serve loop owning
    /// its reader), but never the main goroutine, whose life is the program's. A goroutine
    /// whose creator or creator's creator is one of them belongs to a live connection (a
    /// stream handler, a per-connection writer or watcher), as does the owner itself (a
    /// client's transport loop); one whose connection's goroutines are gone does not any more.
    fn connection_anchors(&mut self) -> HashSet<u64> {
        let serves: Vec<bool> = self
            .sites
            .iter()
            .map(|s| {
                s.wait_reason == "IO wait"
                    && !s
                        .park_functions
                        .iter()
                        .any(|f| f.contains("Accept") || f.contains(".accept"))
            })
            .collect();
        let life = &self.life;
        self.readers.retain(|&g| life.alive(g));
        // No site in network I/O (most programs without connections): no walk over every
        // goroutine.
        if serves.contains(&true) {
            for (goid, group) in self.life.last_parks() {
                if goid != 1 && serves.get(group as usize).copied().unwrap_or(false) {
                    self.readers.insert(goid);
                }
            }
        }
        let mut anchors = self.readers.clone();
        let owners: Vec<u64> = anchors
            .iter()
            .filter_map(|&g| self.life.parent_of(g))
            .filter(|&p| p > 1 && self.life.alive(p))
            .collect();
        anchors.extend(owners);
        anchors
    }

    /// Judges every group now. Groups are returned most severe first, then largest.
    pub fn verdicts(
        &mut self,
        now_ns: u64,
        stacks: &dyn StackSource,
        incomplete: bool,
    ) -> Vec<Leak> {
        // Untrusted events: members are seen to arrive only at inventory reads.
        self.judge.set_resolution(match self.untrusted_since {
            Some(_) => self.read_gap_ns.saturating_mul(3) / 2,
            None => 0,
        });
        struct Acc {
            members: Vec<MemberView>,
            gc_max: u64,
            parents: HashSet<u64>,
            /// The creator last added to `parents` (members in goid order mostly share it).
            last_parent: u64,
            wakes: u64,
            connection: usize,
            cv: Vec<f64>,
            intervals: Vec<f64>,
            creation_stack: Option<i32>,
            stack_bytes: u64,
            proven_object: Option<WaitedObject>,
        }
        // Proofs stand only for the park they were made in.
        let mut live_proofs: HashMap<u64, (u64, WaitedObject)> = HashMap::new();
        // Members per group first, so each group's member list is allocated once, exactly.
        let mut sizes = vec![0usize; self.sites.len()];
        let mut unconfirmed = 0usize;
        for g in self.life.parked() {
            if !self.confirmed(&g) {
                unconfirmed += 1;
            }
            if let Some(n) = sizes.get_mut(g.park.group as usize) {
                *n += 1;
            }
        }
        self.health.unconfirmed = unconfirmed;
        let anchors = self.connection_anchors();
        // Indexed by group: no hashing per member.
        let mut by_group: Vec<Option<Acc>> = Vec::new();
        by_group.resize_with(self.sites.len(), || None);
        for g in self.life.parked() {
            // A park known only from events while events are untrusted may have ended unseen:
            // it is counted, but does not age into a verdict until an inventory confirms it.
            let fresh = !self.confirmed(&g);
            let p = &g.park;
            if p.group == u32::MAX {
                continue;
            }
            let Some(slot) = by_group.get_mut(p.group as usize) else {
                continue;
            };
            let a = slot.get_or_insert_with(|| Acc {
                members: Vec::with_capacity(sizes.get(p.group as usize).copied().unwrap_or(0)),
                gc_max: 0,
                parents: HashSet::new(),
                last_parent: 0,
                wakes: 0,
                connection: 0,
                cv: Vec::new(),
                intervals: Vec::new(),
                creation_stack: None,
                stack_bytes: 0,
                proven_object: None,
            });
            // Most passes have no proof at all: no lookup per member then.
            let proof = if self.proofs.is_empty() {
                None
            } else {
                self.proofs.remove(&g.goid)
            };
            let proven = match proof {
                Some((since, obj)) if since == p.since_ns && !fresh => {
                    if a.proven_object.is_none() {
                        a.proven_object = Some(obj.clone());
                    }
                    live_proofs.insert(g.goid, (since, obj));
                    true
                }
                _ => false,
            };
            a.members.push(MemberView {
                goid: g.goid,
                since_ns: if fresh { now_ns } else { p.since_ns },
                arrived_ns: if fresh {
                    now_ns
                } else if g.streak_since_ns == 0 {
                    p.since_ns
                } else {
                    g.streak_since_ns.min(p.since_ns)
                },
                repeat_parks: g.repeat_parks,
                object: p.object,
                leaked: g.leaked,
                proven,
            });
            a.gc_max = a.gc_max.max(self.life.gc_cycles_blocked(p));
            if let Some(parent) = g.parent {
                if parent != a.last_parent {
                    a.parents.insert(parent);
                    a.last_parent = parent;
                }
            }
            if !anchors.is_empty()
                && (anchors.contains(&g.goid)
                    || g.parent.is_some_and(|p| {
                        anchors.contains(&p)
                            || self
                                .life
                                .parent_of(p)
                                .is_some_and(|gp| anchors.contains(&gp))
                    }))
            {
                a.connection += 1;
            }
            if g.creation_stack_id >= 0 && a.creation_stack.is_none() {
                a.creation_stack = Some(g.creation_stack_id);
            }
            a.wakes += u64::from(g.wakes);
            if let Some(cv) = g.intervals.cv() {
                a.cv.push(cv);
                a.intervals.push(f64::from(g.intervals.mean));
            }
            a.stack_bytes += g.stack_bytes;
        }
        self.proofs = live_proofs;
        let mut out = Vec::new();
        for (gidx, a) in by_group.into_iter().enumerate() {
            let Some(mut a) = a else {
                continue;
            };
            let gidx = gidx as u32;
            let Some(site) = self.sites.get(gidx as usize) else {
                continue;
            };
            a.members.sort_unstable_by_key(|m| (m.since_ns, m.goid));
            let views = &a.members;
            // Distinct objects by sorting (a million members' hash set would double the cost).
            let mut objects: Vec<u64> = views
                .iter()
                .map(|m| m.object)
                .filter(|&o| o != 0 && o != UNKNOWN_OBJECT)
                .collect();
            objects.sort_unstable();
            objects.dedup();
            let unknown_objects = views.iter().any(|m| m.object == UNKNOWN_OBJECT);
            let count = views.len();
            let creation_frames = a
                .creation_stack
                .and_then(|id| {
                    self.kernel_stacks
                        .entry(id)
                        .or_insert_with(|| stacks.stack(id))
                        .clone()
                })
                .map(|ips| creation_stack(&mut *self.sym, &ips))
                .unwrap_or_default();
            let features = GroupFeatures {
                wait_reason: site.wait_reason.clone(),
                park_frames: site.park_functions.clone(),
                created_by: strip_line(&site.created_by),
                creation_frames: creation_frames.iter().map(|f| f.function.clone()).collect(),
                count,
                distinct_objects: objects.len(),
                nil_object: objects.is_empty() && !unknown_objects,
                creators: a.parents.len(),
                wakes_per_member: a.wakes as f64 / count.max(1) as f64,
                wake_interval_cv: median(&mut a.cv),
                wake_interval_median_s: median(&mut a.intervals),
                waits_on: site.waits_on.clone(),
                connection_members: a.connection,
            };
            let class: Classification = self.classifier.classify(&features);
            let verdict = self.judge.judge(
                now_ns,
                &GroupView {
                    id: &site.id,
                    wait_reason: &site.wait_reason,
                    members: views,
                    healthy: class.healthy,
                },
            );
            let oldest = views.first().map(|m| m.since_ns).unwrap_or(now_ns);
            let newest = views.last().map(|m| m.since_ns).unwrap_or(now_ns);
            let secs = now_ns.saturating_sub(oldest) as f64 / 1e9;
            // A shape the rules call healthy that keeps growing: say so, rather than leave the
            // healthy reading ("the timer wakes them", "they end with the connection") alone.
            let explanation = if class.healthy && verdict.status == Status::Growing {
                format!(
                    "{} Yet the group keeps growing ({:+.1}/min): more start than end, so some outlive what they were for.",
                    class.explanation, verdict.growth_per_minute
                )
            } else {
                class.explanation
            };
            out.push(Leak {
                id: site.id.clone(),
                status: verdict.status,
                severity: verdict.severity,
                status_since: self.rfc3339(verdict.status_since_ns),
                status_seconds: (now_ns.saturating_sub(verdict.status_since_ns) as f64 / 1e6)
                    .round()
                    / 1e3,
                pattern: class.pattern,
                explanation,
                fix_hint: class.fix_hint,
                count,
                duration: go_duration(secs),
                duration_seconds: (secs * 1000.0).round() / 1000.0,
                first_seen: self.rfc3339(oldest),
                last_seen: self.rfc3339(newest),
                wait_reason: site.wait_reason.clone(),
                blocked_at: site.blocked_at.clone(),
                created_by: site.created_by.clone(),
                growth_per_minute: (verdict.growth_per_minute * 10.0).round() / 10.0,
                gc_cycles_blocked: a.gc_max,
                stack_trace: go_dump_text(&site.park_frames),
                creation_stack: go_dump_text(&creation_frames),
                goroutine_ids: views.iter().take(20).map(|m| m.goid).collect(),
                stack_bytes: a.stack_bytes,
                reason: verdict.reason,
                distinct_objects: objects.len(),
                // The overflow group mixes sites: never a firm verdict.
                incomplete: incomplete || Some(gidx) == self.overflow,
                proof: if views.iter().any(|m| m.leaked) {
                    Some(ProofKind::Runtime)
                } else if views.iter().any(|m| m.proven) {
                    Some(ProofKind::Unreachable)
                } else {
                    None
                },
                proven: views.iter().filter(|m| m.leaked || m.proven).count(),
                proven_goroutine_ids: views
                    .iter()
                    .filter(|m| m.leaked || m.proven)
                    .take(MAX_PROVEN_IDS)
                    .map(|m| m.goid)
                    .collect(),
                proven_object: a.proven_object.take(),
            });
        }
        out.sort_by(|a, b| {
            (
                a.status,
                std::cmp::Reverse(a.severity),
                std::cmp::Reverse(a.count),
            )
                .cmp(&(
                    b.status,
                    std::cmp::Reverse(b.severity),
                    std::cmp::Reverse(b.count),
                ))
        });
        out
    }

    /// Wall-clock minus monotonic time (ns) the engine formats times with.
    pub fn wall_minus_mono_ns(&self) -> i128 {
        self.wall_minus_mono_ns
    }

    /// A monotonic timestamp as RFC 3339 wall-clock time.
    pub fn rfc3339(&self, mono_ns: u64) -> String {
        crate::format::rfc3339(mono_ns, self.wall_minus_mono_ns)
    }
}

/// Park stack pcs: the stack map's entries with the caller's return address spliced in after
/// `gopark` when the kernel did not already record it (kernels before 6.12).
fn park_pcs(ips: Option<&[u64]>, caller_pc: u64) -> Vec<u64> {
    match ips {
        Some(ips) if !ips.is_empty() => {
            let mut v = Vec::with_capacity(ips.len() + 1);
            v.push(ips[0]);
            if caller_pc != 0 && ips.get(1) != Some(&caller_pc) {
                v.push(caller_pc);
            }
            v.extend_from_slice(&ips[1..]);
            v
        }
        _ if caller_pc != 0 => vec![0, caller_pc],
        _ => Vec::new(),
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goroutine::GoroutineInfo;
    use crate::group::StackSource;
    use crate::judge::JudgeConfig;

    /// Names every pc `main.fN` (N = the pc), in `main.go` at line N.
    struct FakeSymbols;

    impl Symbols for FakeSymbols {
        fn frames(&mut self, pc: u64, _return_address: bool) -> Vec<Frame> {
            vec![Frame {
                pc,
                function: format!("main.f{pc}"),
                file: Some("main.go".into()),
                line: Some(pc as u32),
                offset: 0,
                inlined: false,
            }]
        }

        fn wait_reason(&self, raw: u32) -> Option<String> {
            match raw {
                2 => Some("IO wait".to_string()),
                7 => Some("chan receive".to_string()),
                9 => Some("select".to_string()),
                _ => None,
            }
        }
    }

    struct NoStacks;

    impl StackSource for NoStacks {
        fn stack(&self, _id: i32) -> Option<Vec<u64>> {
            None
        }
    }

    const S: u64 = 1_000_000_000;

    fn engine(limits: Limits) -> Engine<'static> {
        Engine::new(
            Box::new(FakeSymbols),
            Classifier::builtin(),
            EngineConfig {
                limits,
                ..EngineConfig::default()
            },
        )
    }

    /// A goroutine parked in `chan receive` with stack `stack`, created at pc 1.
    fn parked(goid: u64, stack: Vec<u64>) -> GoroutineInfo {
        GoroutineInfo {
            goid,
            status: GStatus::Waiting,
            status_raw: 4,
            wait_reason: Some("chan receive".into()),
            wait_reason_raw: 7,
            waitsince_ns: 0,
            wait_age_ns: None,
            gopc: 1,
            startpc: 2,
            parent_goid: 1,
            stack_lo: 0,
            stack_hi: 8192,
            sched_pc: stack[0],
            sched_sp: 0,
            sched_bp: 0,
            stack,
            stack_truncated: false,
            waiting_on: vec![0xc000_0000 + goid],
            sudogs: Vec::new(),
            g_addr: 0xc100_0000 + goid,
            stayed_blocked: false,
        }
    }

    fn ingest(e: &mut Engine<'_>, gs: &[GoroutineInfo], now_s: u64) {
        e.ingest_inventory(gs, (now_s * S) as i64, InventoryPass::default());
    }

    #[test]
    fn sites_past_the_group_limit_go_to_their_own_overflow_group() {
        let mut e = engine(Limits {
            groups: 4,
            ..Limits::default()
        });
        // Three real groups (one member each, blocked in main.f100…f102), then two more
        // sites that no longer fit.
        let gs: Vec<GoroutineInfo> = (0..5).map(|i| parked(10 + i, vec![100 + i])).collect();
        ingest(&mut e, &gs, 10);
        let v = e.verdicts(11 * S, &NoStacks, false);
        let real: Vec<&Leak> = v.iter().filter(|l| l.id != OVERFLOW_GROUP_ID).collect();
        assert_eq!(real.len(), 3, "{v:#?}");
        for l in &real {
            assert_eq!(l.count, 1, "a real group took a stranger: {l:#?}");
            assert!(!l.incomplete);
        }
        let over = v
            .iter()
            .find(|l| l.id == OVERFLOW_GROUP_ID)
            .expect("no overflow group");
        assert_eq!(over.count, 2);
        assert_eq!(over.wait_reason, OVERFLOW_REASON);
        assert!(
            over.incomplete,
            "the overflow group must be marked incomplete"
        );
        assert_eq!(e.health.overflow_parks, 2);
    }

    #[test]
    fn past_the_stack_cache_different_stacks_stay_apart() {
        let mut e = engine(Limits {
            unwound_stacks: 1,
            ..Limits::default()
        });
        let gs = vec![
            parked(1, vec![200]),
            parked(2, vec![201]),
            parked(3, vec![202]),
            parked(4, vec![202]),
        ];
        ingest(&mut e, &gs, 10);
        let v = e.verdicts(11 * S, &NoStacks, false);
        let mut counts: Vec<(String, usize)> =
            v.iter().map(|l| (l.blocked_at.clone(), l.count)).collect();
        counts.sort();
        assert_eq!(
            counts,
            vec![
                ("main.f200 at main.go:200".to_string(), 1),
                ("main.f201 at main.go:201".to_string(), 1),
                ("main.f202 at main.go:202".to_string(), 2),
            ]
        );
        assert_eq!(e.health.uncached_stacks, 3);
    }

    #[test]
    fn colliding_group_ids_get_a_suffix_and_are_counted() {
        let mut e = engine(Limits::default());
        assert_eq!(e.unique_id("g-00000001".into()), "g-00000001");
        assert_eq!(e.unique_id("g-00000001".into()), "g-00000001-2");
        assert_eq!(e.unique_id("g-00000001".into()), "g-00000001-3");
        assert_eq!(e.health.id_collisions, 2);
    }

    #[test]
    fn two_sites_whose_ids_collide_stay_two_groups() {
        // Find two blocking functions whose ids (wait reason, site, creator) collide: the ids
        // are 32-bit hashes, so among ~2^17 names a pair is all but certain.
        let creator = "main.f1 at main.go:1";
        let creator = strip_line(creator);
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut pair = None;
        for pc in 1000..400_000u64 {
            let id = stable_id(&["chan receive", &format!("main.f{pc}"), &creator]);
            if let Some(&other) = seen.get(&id) {
                pair = Some((other, pc));
                break;
            }
            seen.insert(id, pc);
        }
        let (a, b) = pair.expect("no 32-bit id collision among 400k names");
        let mut e = engine(Limits::default());
        // Stacks whose first user frame has no line: strip_line changes nothing, so the retry
        // with lines collides too and only the suffix can tell them apart.
        struct NoLines;
        impl Symbols for NoLines {
            fn frames(&mut self, pc: u64, _: bool) -> Vec<Frame> {
                vec![Frame {
                    pc,
                    function: format!("main.f{pc}"),
                    file: None,
                    line: None,
                    offset: 0,
                    inlined: false,
                }]
            }
            fn wait_reason(&self, _: u32) -> Option<String> {
                Some("chan receive".into())
            }
        }
        e.sym = Box::new(NoLines);
        ingest(&mut e, &[parked(1, vec![a]), parked(2, vec![b])], 10);
        let v = e.verdicts(11 * S, &NoStacks, false);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert_ne!(v[0].id, v[1].id);
        assert_eq!(e.health.id_collisions, 1);
    }

    fn park_event(goid: u64, t_s: u64) -> RuntimeEvent {
        RuntimeEvent::Park {
            ts_ns: t_s * S,
            goid,
            reason: 7,
            caller_pc: 300,
            object: 0xc000_0000 + goid,
            stack_id: -1,
            gopc: 1,
            parent: 1,
        }
    }

    fn judge_cfg(threshold_s: u64) -> EngineConfig {
        EngineConfig {
            judge: JudgeConfig {
                threshold: std::time::Duration::from_secs(threshold_s),
                ..JudgeConfig::default()
            },
            ..EngineConfig::default()
        }
    }

    /// Parks seen by the park probe, then the wake probe detached (parks-only): those parks
    /// may have ended unseen, so they do not age into a verdict until an inventory confirms
    /// them (they stay counted); one the inventory no longer finds parked is gone, the others
    /// are judged on their real age again.
    #[test]
    fn parks_known_only_from_events_wait_for_an_inventory_once_events_are_untrusted() {
        let mut e = Engine::new(Box::new(FakeSymbols), Classifier::builtin(), judge_cfg(10));
        for goid in 10..15 {
            e.apply(&park_event(goid, 1), &NoStacks);
        }
        e.tick(2 * S);
        let suspect = |e: &mut Engine<'_>, t: u64| -> Option<usize> {
            e.verdicts(t * S, &NoStacks, false)
                .iter()
                .find(|l| l.status == Status::Suspect)
                .map(|l| l.count)
        };
        // Trusted: five members blocked past the threshold are suspect.
        assert_eq!(suspect(&mut e, 30), Some(5));
        assert!(e.distrust_events(31 * S), "news the first time");
        assert!(!e.distrust_events(32 * S), "not news the second time");
        assert_eq!(suspect(&mut e, 40), None, "judged on stale events");
        assert_eq!(e.health.unconfirmed, 5);
        let v = e.verdicts(40 * S, &NoStacks, false);
        assert_eq!(
            (v.len(), v[0].count),
            (1, 5),
            "unconfirmed members stay counted: {v:#?}"
        );
        assert_eq!(v[0].duration_seconds, 0.0, "unconfirmed members do not age");
        assert!(!e.health.events_trusted);
        // An inventory at 41 s: four still parked (their waits started long ago), one woke.
        let gs: Vec<GoroutineInfo> = (10..14)
            .map(|goid| parked(goid, vec![300]))
            .chain(std::iter::once(GoroutineInfo {
                status: GStatus::Runnable,
                ..parked(14, vec![300])
            }))
            .collect();
        ingest(&mut e, &gs, 41);
        // Confirmed, but nothing proves they stayed blocked since their parks at 1 s (they
        // may have woken and parked again in the same place unseen): aged from this read.
        assert_eq!(suspect(&mut e, 42), None);
        assert_eq!(e.health.unconfirmed, 0);
        // Later reads find them unchanged with g.waitsince set: blocked all along.
        for t in [45, 50] {
            e.begin_inventory();
            let same: Vec<Unchanged> = (10..14)
                .map(|goid| Unchanged {
                    goid,
                    status: GStatus::Waiting,
                    stack_bytes: 8192,
                    stayed_blocked: true,
                    slot: goid as u32,
                })
                .collect();
            assert!(e.ingest_unchanged(&same, (t * S) as i64).is_empty());
            e.end_inventory(InventoryPass::default());
        }
        assert_eq!(suspect(&mut e, 52), Some(4));
        // A new park seen by the park probe after that read waits for the next one.
        e.apply(&park_event(20, 43), &NoStacks);
        let _ = e.verdicts(60 * S, &NoStacks, false);
        assert_eq!(e.health.unconfirmed, 1);
        e.trust_events();
        let _ = e.verdicts(61 * S, &NoStacks, false);
        assert_eq!(e.health.unconfirmed, 0);
        assert!(e.health.events_trusted);
    }

    /// Goroutines from dumps: a park first seen is dated back by the dump's own wait time, a
    /// park seen again in a later dump keeps its age, and the objects are unknown, not nil.
    #[test]
    fn dump_parks_are_dated_back_by_their_own_wait_time() {
        let mut e = Engine::new(
            Box::new(FakeSymbols),
            Classifier::builtin(),
            EngineConfig {
                from_dumps: true,
                ..judge_cfg(300)
            },
        );
        let gs: Vec<GoroutineInfo> = (1..=3)
            .map(|goid| GoroutineInfo {
                wait_age_ns: Some(420 * S),
                waiting_on: Vec::new(),
                ..parked(goid, vec![500])
            })
            .collect();
        ingest(&mut e, &gs, 1000);
        e.tick(1000 * S);
        let v = e.verdicts(1000 * S, &NoStacks, false);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(v[0].duration_seconds, 420.0);
        assert_eq!(v[0].status, Status::Suspect, "{v:#?}");
        assert_eq!(v[0].distinct_objects, 0);
        // The next dump, a minute on, says 8 minutes: the same park, aged from the first.
        let gs: Vec<GoroutineInfo> = gs
            .into_iter()
            .map(|g| GoroutineInfo {
                wait_age_ns: Some(480 * S),
                ..g
            })
            .collect();
        ingest(&mut e, &gs, 1060);
        let v = e.verdicts(1060 * S, &NoStacks, false);
        assert_eq!(v[0].duration_seconds, 480.0);
        // Two minutes on, goroutine 1 waits 2 minutes at the same site: its wait began after
        // 1180 - 180 s, later than the park SFGI knows (since 580 s), so it parked again and its
        // age starts over. Goroutine 2 says 10 minutes: the same park. Goroutine 3 says
        // nothing: a park known for 10 minutes would have been stamped by a GC, so it is new.
        let age = |g: &GoroutineInfo, s: Option<u64>| GoroutineInfo {
            wait_age_ns: s.map(|s| s * S),
            ..g.clone()
        };
        ingest(
            &mut e,
            &[
                age(&gs[0], Some(120)),
                age(&gs[1], Some(600)),
                age(&gs[2], None),
            ],
            1180,
        );
        let v = e.verdicts(1180 * S, &NoStacks, false);
        assert_eq!(v[0].goroutine_ids, vec![2, 1, 3], "{v:#?}");
        assert_eq!(v[0].duration_seconds, 600.0);
        // Two more minutes: goroutine 1 at 4 minutes and goroutine 3 still without a stamp
        // (2 minutes can pass without a GC scan) keep their parks.
        ingest(
            &mut e,
            &[
                age(&gs[0], Some(240)),
                age(&gs[1], Some(720)),
                age(&gs[2], None),
            ],
            1300,
        );
        let v = e.verdicts(1300 * S, &NoStacks, false);
        assert_eq!(v[0].goroutine_ids, vec![2, 1, 3], "{v:#?}");
        let first = e.life.parked_view(1).map(|p| p.park.since_ns);
        assert_eq!(first, Some(1060 * S));
        assert_eq!(
            e.life.parked_view(3).map(|p| p.park.since_ns),
            Some(1180 * S)
        );
    }

    /// A proof makes the group `proven` at once (far below the threshold), with the proof kind,
    /// the count and the object; it stands only for the park it was made in, and only for parks
    /// that began at least the settle time before the proof started.
    #[test]
    fn proofs_make_groups_proven_for_their_park_only() {
        use crate::proof::{ProvenGoroutine, WaitedObject};
        let mut e = Engine::new(Box::new(FakeSymbols), Classifier::builtin(), judge_cfg(300));
        let gs: Vec<GoroutineInfo> = (1..=3).map(|g| parked(g, vec![400, 500])).collect();
        ingest(&mut e, &gs, 10);
        let obj = WaitedObject {
            kind: "chan".into(),
            address: "0xc000000001".into(),
        };
        let report = ProofReport {
            proven: [1u64, 2, 9]
                .iter()
                .map(|&goid| ProvenGoroutine {
                    goid,
                    object: obj.clone(),
                })
                .collect(),
            candidates: 3,
            ..ProofReport::default()
        };
        // Parked at 10 s, proof started at 10.5 s with a 1 s settle time: too fresh.
        assert_eq!(e.ingest_proofs(&report, 10 * S + S / 2, S), 0);
        let v = e.verdicts(11 * S, &NoStacks, false);
        assert_eq!((v[0].status, v[0].proof), (Status::Normal, None), "{v:#?}");
        // At 12 s: goroutines 1 and 2 (9 is unknown to the engine).
        assert_eq!(e.ingest_proofs(&report, 12 * S, S), 2);
        let v = e.verdicts(13 * S, &NoStacks, false);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(
            (v[0].status, v[0].severity, v[0].proof, v[0].proven),
            (
                Status::Proven,
                Some(Severity::L3),
                Some(ProofKind::Unreachable),
                2
            )
        );
        assert_eq!(v[0].proven_object.as_ref(), Some(&obj));
        let json = serde_json::to_value(&v[0]).unwrap();
        assert_eq!(json["proof"], "unreachable");
        assert_eq!(json["proven_object"]["type"], "chan");
        let mut ids = v[0].proven_goroutine_ids.clone();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2], "{v:#?}");
        // Goroutine 1 parks elsewhere, 2 is gone: the proofs no longer stand.
        let gs = vec![parked(1, vec![400, 600]), parked(3, vec![400, 500])];
        ingest(&mut e, &gs, 20);
        let v = e.verdicts(21 * S, &NoStacks, false);
        assert!(
            v.iter().all(|l| l.proof.is_none() && l.proven == 0),
            "{v:#?}"
        );
        assert_eq!(e.health.proofs, 2);
    }

    /// A goroutine SFGI saw no event of is aged from the first read that found it in its
    /// park, never from `g.waitsince` (which a GC may stamp a whole GC interval too early); a
    /// later read finding it in another park starts a new age, the same park keeps it.
    #[test]
    fn ages_from_inventories_are_never_too_old() {
        let mut e = engine(Limits::default());
        let mut g = parked(7, vec![400, 500]);
        // The runtime says it has waited 2 minutes; SFGI first sees it at 10 s.
        g.wait_age_ns = Some(120 * S);
        ingest(&mut e, std::slice::from_ref(&g), 10);
        let age =
            |e: &mut Engine<'_>, t: u64| e.verdicts(t * S, &NoStacks, false)[0].duration_seconds;
        assert_eq!(age(&mut e, 12), 2.0);
        // Same park at the next read: the age goes on.
        ingest(&mut e, std::slice::from_ref(&g), 20);
        assert_eq!(age(&mut e, 21), 11.0);
        // Another park (another caller) at the read after: it woke and parked again unseen.
        let g2 = parked(7, vec![400, 600]);
        ingest(&mut e, std::slice::from_ref(&g2), 30);
        let v = e.verdicts(31 * S, &NoStacks, false);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(v[0].duration_seconds, 1.0);
        assert_eq!(v[0].count, 1);
    }

    /// Stream handlers started by a live connection's reader and waiting with a done case are
    /// its goroutines (resident); once the reader is gone they are judged as leaks. Nothing is
    /// bound through the main goroutine, nor through an accept loop.
    #[test]
    fn goroutines_of_a_live_connection_are_resident_until_it_ends() {
        use crate::goroutine::{ChanKind, SudogInfo};
        let mut e = engine(Limits::default());
        let mut reader = parked(10, vec![900, 901]);
        reader.wait_reason = Some("IO wait".into());
        reader.wait_reason_raw = 2;
        reader.parent_goid = 5;
        let mut accept = parked(5, vec![950, 951]);
        accept.wait_reason = Some("IO wait".into());
        accept.wait_reason_raw = 2;
        let handler = |goid: u64, parent: u64, stack: Vec<u64>| {
            let mut h = parked(goid, stack);
            h.wait_reason = Some("select".into());
            h.wait_reason_raw = 9;
            h.parent_goid = parent;
            h.sudogs = [(ChanKind::Data, 0xd000), (ChanKind::Signal, 0xe000 + goid)]
                .into_iter()
                .map(|(kind, c)| SudogInfo {
                    addr: c + 1,
                    elem: 0,
                    c,
                    is_select: true,
                    kind,
                })
                .collect();
            h
        };
        let handlers: Vec<GoroutineInfo> =
            (20..23).map(|g| handler(g, 10, vec![700, 701])).collect();
        // Children of the main goroutine's children: not a connection's, whatever main does.
        let orphans: Vec<GoroutineInfo> = (30..33).map(|g| handler(g, 1, vec![800, 801])).collect();
        let mut all = vec![reader.clone(), accept.clone()];
        all.extend(handlers.iter().cloned());
        all.extend(orphans.iter().cloned());
        ingest(&mut e, &all, 10);
        ingest(&mut e, &all, 400);
        let v = e.verdicts(401 * S, &NoStacks, false);
        let at = |v: &[Leak], f: &str| -> Leak {
            v.iter()
                .find(|l| l.blocked_at.contains(f))
                .cloned()
                .unwrap_or_else(|| panic!("no group at {f}: {v:#?}"))
        };
        let h = at(&v, "main.f700");
        assert_eq!(h.pattern, "per-connection", "{h:#?}");
        assert_eq!(h.status, Status::Resident, "{h:#?}");
        assert!(
            h.explanation.contains("live network connection"),
            "{}",
            h.explanation
        );
        let o = at(&v, "main.f800");
        assert_eq!(o.pattern, "select-blocked", "{o:#?}");
        assert_eq!(o.status, Status::Suspect, "{o:#?}");
        // The reader blocks elsewhere for a moment (a full channel): still the connection's.
        let mut busy = all.clone();
        busy[0] = parked(10, vec![910, 911]);
        busy[0].parent_goid = 5;
        ingest(&mut e, &busy, 402);
        let v = e.verdicts(403 * S, &NoStacks, false);
        assert_eq!(at(&v, "main.f700").pattern, "per-connection");
        // The connection ends (its reader exits); its handlers stay behind: leaks.
        let mut rest = vec![accept];
        rest.extend(handlers.iter().cloned());
        ingest(&mut e, &rest, 800);
        ingest(&mut e, &rest, 1200);
        let v = e.verdicts(1201 * S, &NoStacks, false);
        let h = at(&v, "main.f700");
        assert_eq!(h.pattern, "select-blocked", "{h:#?}");
        assert_eq!(h.status, Status::Suspect, "{h:#?}");
    }

    /// An incremental re-read's unchanged goroutines keep and confirm their parks exactly as a
    /// whole read would; those the engine does not know parked are asked for whole; those
    /// not seen at all by a complete read are gone.
    #[test]
    fn unchanged_goroutines_are_confirmed_as_a_whole_read_would() {
        let mut e = engine(Limits::default());
        let gs: Vec<GoroutineInfo> = (1..=3).map(|g| parked(g, vec![400, 500])).collect();
        ingest(&mut e, &gs, 10);
        assert!(e.distrust_events(11 * S));
        let same = |goid: u64, status: GStatus, slot: u32| Unchanged {
            goid,
            status,
            stack_bytes: 8192,
            stayed_blocked: true,
            slot,
        };
        e.begin_inventory();
        let whole = e.ingest_unchanged(
            &[
                same(1, GStatus::Waiting, 0),
                same(2, GStatus::Waiting, 1),
                // Never read whole: the engine cannot place it in a group.
                same(9, GStatus::Waiting, 7),
                same(4, GStatus::Running, 3),
            ],
            (20 * S) as i64,
        );
        e.end_inventory(InventoryPass::default());
        assert_eq!(whole, vec![7]);
        // 3 was not in this complete read: gone. 1 and 2 confirmed, aged from 10 s.
        assert_eq!(e.health.reconciled_gone, 1);
        let v = e.verdicts(25 * S, &NoStacks, false);
        assert_eq!((v.len(), v[0].count), (1, 2), "{v:#?}");
        assert_eq!(v[0].duration_seconds, 15.0);
        assert_eq!(e.health.unconfirmed, 0);
        // Found running: no longer parked.
        e.begin_inventory();
        let whole = e.ingest_unchanged(
            &[same(1, GStatus::Runnable, 0), same(2, GStatus::Waiting, 1)],
            (30 * S) as i64,
        );
        e.end_inventory(InventoryPass::default());
        assert!(whole.is_empty());
        let v = e.verdicts(31 * S, &NoStacks, false);
        assert_eq!(v[0].count, 1, "{v:#?}");
        // Running now, parked again unseen: the reader must read it whole.
        e.begin_inventory();
        let whole = e.ingest_unchanged(
            &[same(1, GStatus::Waiting, 0), same(2, GStatus::Waiting, 1)],
            (32 * S) as i64,
        );
        e.end_inventory(InventoryPass::default());
        assert_eq!(whole, vec![0]);
    }

    /// With events untrusted (probes detached), a goroutine found again in the same park ages
    /// only while its `g.waitsince` proves it stayed blocked: a keep-alive connection that
    /// parks and wakes thousands of times a second between two reads must not look blocked
    /// for the whole time.
    #[test]
    fn untrusted_parks_age_only_on_proof_of_continuity() {
        let mut e = engine(Limits::default());
        assert!(e.distrust_events(S));
        let gs: Vec<GoroutineInfo> = (1..=4).map(|g| parked(g, vec![400, 500])).collect();
        ingest(&mut e, &gs, 10);
        let read = |e: &mut Engine<'_>, t: u64, stamped: bool| {
            e.begin_inventory();
            let unchanged: Vec<Unchanged> = (1..=4)
                .map(|goid| Unchanged {
                    goid,
                    status: GStatus::Waiting,
                    stack_bytes: 8192,
                    stayed_blocked: stamped,
                    slot: goid as u32,
                })
                .collect();
            assert!(e.ingest_unchanged(&unchanged, (t * S) as i64).is_empty());
            e.end_inventory(InventoryPass::default());
        };
        // waitsince not set: every read may be a new park at the same place.
        for t in 11..=20 {
            read(&mut e, t, false);
        }
        let v = e.verdicts(20 * S, &NoStacks, false);
        assert_eq!(v[0].duration_seconds, 0.0, "{v:#?}");
        assert_eq!(v[0].count, 4);
        // Stamped by a GC and unchanged: blocked all along since the first read that showed it.
        read(&mut e, 21, true);
        read(&mut e, 30, true);
        let v = e.verdicts(30 * S, &NoStacks, false);
        assert_eq!(v[0].duration_seconds, 10.0, "{v:#?}");
        // With events trusted a re-park would have been seen: ages go on.
        e.trust_events();
        read(&mut e, 40, false);
        let v = e.verdicts(40 * S, &NoStacks, false);
        assert_eq!(v[0].duration_seconds, 20.0, "{v:#?}");
    }

    /// A pile-up seen only through inventory re-reads about a second apart (events untrusted):
    /// members arrive only at reads, so "arrived all along the window" is judged at that
    /// resolution. Threshold 2 s: `growing` within the threshold plus a few reads, then
    /// `growing` at every judgment while it rises.
    #[test]
    fn a_pile_up_seen_through_re_reads_is_growing_and_stays_so() {
        let mut e = Engine::new(Box::new(FakeSymbols), Classifier::builtin(), judge_cfg(2));
        assert!(e.distrust_events(S));
        let ms = 1_000_000u64;
        let mut statuses = Vec::new();
        for k in 0..30u64 {
            let t = 10_000 * ms + k * 1_050 * ms;
            // Members read before are found in the same park, their park counter unchanged.
            let gs: Vec<GoroutineInfo> = (0..10 * (k + 1))
                .map(|i| GoroutineInfo {
                    stayed_blocked: i < 10 * k,
                    ..parked(100 + i, vec![700, 800])
                })
                .collect();
            e.ingest_inventory(&gs, t as i64, InventoryPass::default());
            for j in 0..2 {
                let now = t + 100 * ms + j * 500 * ms;
                e.tick(now);
                let v = e.verdicts(now, &NoStacks, false);
                statuses.push(((now - 10_000 * ms) / ms, v[0].status));
            }
        }
        let first = statuses
            .iter()
            .position(|(_, s)| *s == Status::Growing)
            .unwrap_or_else(|| panic!("never growing: {statuses:?}"));
        assert!(statuses[first].0 <= 6_000, "late: {statuses:?}");
        assert!(
            statuses[first..].iter().all(|(_, s)| *s == Status::Growing),
            "left growing while rising: {statuses:?}"
        );
    }

    /// Probes detached: a goroutine last seen by the park probe at one site that an inventory
    /// finds parked at another site moved there unseen. It belongs to the site the inventory
    /// read, aged from that read, not to the stale one (a keep-alive connection seen once in a
    /// handler must not stay a member of the handler's group while it idles).
    #[test]
    fn untrusted_parks_follow_the_site_the_inventory_reads() {
        let mut e = Engine::new(Box::new(FakeSymbols), Classifier::builtin(), judge_cfg(10));
        for goid in 10..13 {
            e.apply(&park_event(goid, 1), &NoStacks);
        }
        assert!(e.distrust_events(2 * S));
        let sites = |e: &mut Engine<'_>, t: u64| -> Vec<(String, usize)> {
            let mut v: Vec<(String, usize)> = e
                .verdicts(t * S, &NoStacks, false)
                .iter()
                .map(|l| (l.blocked_at.clone(), l.count))
                .collect();
            v.sort();
            v
        };
        let before = sites(&mut e, 3);
        assert_eq!(before.len(), 1, "{before:?}");
        // Read at 5 s: all three parked elsewhere (main.f900).
        let gs: Vec<GoroutineInfo> = (10..13).map(|g| parked(g, vec![900, 901])).collect();
        ingest(&mut e, &gs, 5);
        let after = sites(&mut e, 6);
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0].0.contains("main.f900"), "{after:?}");
        assert_eq!(after[0].1, 3);
        let v = e.verdicts(6 * S, &NoStacks, false);
        assert_eq!(v[0].duration_seconds, 1.0, "aged from the read: {v:#?}");
    }
}
