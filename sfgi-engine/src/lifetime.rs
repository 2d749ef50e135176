//! One state machine per goroutine, rebuilt from runtime events.
use crate::event::RuntimeEvent;
// Keyed by goid, looked up a few times per goroutine per inventory read: a fast hasher.
use foldhash::HashMap;

/// Where a goroutine came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Creation {
    /// The creating goroutine.
    pub parent: u64,
    /// pc of the `go` statement.
    pub gopc: u64,
    /// Start function pc.
    pub startpc: u64,
    /// Creation stack id (negative when none).
    pub stack_id: i32,
    /// When (monotonic ns); 0 when SFGI did not see it happen.
    pub at_ns: u64,
}

/// What a parked goroutine is waiting on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parked {
    /// Raw wait reason.
    pub reason: u32,
    /// Return address into `gopark`'s caller.
    pub caller_pc: u64,
    /// The object parked on.
    pub object: u64,
    /// Park stack id (negative when none).
    pub stack_id: i32,
    /// Since when (monotonic ns).
    pub since_ns: u64,
    /// [`Lifetimes::gc_cycles`] when it parked (wrapping).
    pub gc_at_park: u32,
    /// Group this park belongs to (assigned by the engine; `u32::MAX` until then).
    pub group: u32,
}

/// What SFGI knows of one goroutine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Goroutine {
    /// Its goid.
    pub goid: u64,
    /// Whether it is parked now (else running or runnable).
    pub parked: bool,
    /// Its current park, or its last one when not parked (`since_ns` 0: never seen parking).
    pub park: Parked,
    /// Its creation, when SFGI saw it.
    pub creation: Option<Creation>,
    /// First event SFGI saw of it (monotonic ns).
    pub first_seen_ns: u64,
    /// How many times it parked.
    pub parks: u32,
    /// How many times it was woken.
    pub wakes: u32,
    /// Times in a row it parked at the same place (same caller pc): ≥ 2 means a loop or a pool
    /// worker that keeps coming back.
    pub repeat_parks: u32,
    /// When the first of those parks in a row began (monotonic ns): since when it has kept
    /// coming back to this site. Equals `park.since_ns` when it parked there once.
    pub streak_since_ns: u64,
    /// Wake history at the current park site: intervals between consecutive parks there.
    pub intervals: IntervalStats,
    /// Whether the Go runtime marked it `_Gleaked` (seen by the inventory).
    pub leaked: bool,
    /// Its stack's size in bytes, from the last inventory (0: unknown).
    pub stack_bytes: u32,
    /// The last inventory that saw it (or the one current when it was first seen).
    epoch: u32,
    /// When an inventory last saw it parked (monotonic ns, 0: never): its current park is
    /// confirmed by memory, not only by events, when this is not before `park.since_ns`.
    pub confirmed_ns: u64,
}

/// Running mean and variance (Welford) of the intervals between a goroutine's parks at one site,
/// in seconds: how regularly a loop wakes. 12 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IntervalStats {
    /// Intervals seen.
    pub n: u32,
    /// Mean interval, seconds.
    pub mean: f32,
    /// Sum of squared deviations.
    pub m2: f32,
}

impl IntervalStats {
    /// Adds one interval.
    pub fn push(&mut self, secs: f32) {
        self.n = self.n.saturating_add(1);
        let d = secs - self.mean;
        self.mean += d / self.n as f32;
        self.m2 += d * (secs - self.mean);
    }

    /// Coefficient of variation (stddev / mean): low for a periodic loop. `None` below 3 samples.
    pub fn cv(&self) -> Option<f64> {
        if self.n < 3 || self.mean <= 0.0 {
            return None;
        }
        let var = self.m2 / (self.n - 1) as f32;
        Some((var.max(0.0).sqrt() / self.mean) as f64)
    }
}

/// A stack size as the tables keep it (Go stacks are at most 1 GB on 64-bit).
fn stack_size(bytes: u64) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// A goroutine an inventory found parked that no event has touched since: what the verdicts
/// need of it and nothing more, 64 bytes in a goid-sorted `Vec` (no hash table), so a target's
/// million idle goroutines cost SFGI 64 MB. The first event about it promotes it to a
/// [`Goroutine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dormant {
    goid: u64,
    /// Since when it is known blocked (what it is aged from).
    since_ns: u64,
    /// When it was first seen parked at this site (its arrival in the group).
    arrived_ns: u64,
    object: u64,
    caller_pc: u64,
    /// Creator goid (0: unknown).
    parent: u64,
    reason: u32,
    group: u32,
    gc_at_park: u32,
    stack_bytes: u32,
    /// The last inventory that saw it.
    epoch: u32,
    leaked: bool,
    /// Promoted, exited or gone: a tombstone until the next compaction.
    dead: bool,
}

impl Dormant {
    fn park(&self) -> Parked {
        Parked {
            reason: self.reason,
            caller_pc: self.caller_pc,
            object: self.object,
            stack_id: -1,
            since_ns: self.since_ns,
            gc_at_park: self.gc_at_park,
            group: self.group,
        }
    }

    fn view(&self) -> ParkedView {
        ParkedView {
            goid: self.goid,
            park: self.park(),
            streak_since_ns: self.arrived_ns,
            repeat_parks: 1,
            wakes: 0,
            intervals: IntervalStats::default(),
            parent: (self.parent != 0).then_some(self.parent),
            creation_stack_id: -1,
            stack_bytes: u64::from(self.stack_bytes),
            leaked: self.leaked,
            confirmed_ns: u64::MAX,
        }
    }

    fn promote(&self) -> Goroutine {
        Goroutine {
            goid: self.goid,
            parked: true,
            park: self.park(),
            creation: Some(Creation {
                parent: self.parent,
                gopc: 0,
                startpc: 0,
                stack_id: -1,
                at_ns: 0,
            }),
            first_seen_ns: self.arrived_ns,
            parks: 0,
            wakes: 0,
            repeat_parks: 1,
            streak_since_ns: self.arrived_ns,
            intervals: IntervalStats::default(),
            leaked: self.leaked,
            stack_bytes: self.stack_bytes,
            epoch: self.epoch,
            confirmed_ns: 0,
        }
    }
}

/// A parked goroutine as the judge and the views see it (from either kind of entry).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParkedView {
    /// Its goid.
    pub goid: u64,
    /// Its current park.
    pub park: Parked,
    /// Since when it has kept parking at this site (see [`Goroutine::streak_since_ns`]).
    pub streak_since_ns: u64,
    /// Parks in a row at this site.
    pub repeat_parks: u32,
    /// Times it was woken.
    pub wakes: u32,
    /// Wake history at this site.
    pub intervals: IntervalStats,
    /// The goroutine that created it, when known.
    pub parent: Option<u64>,
    /// Creation stack id (negative when none).
    pub creation_stack_id: i32,
    /// Its stack's size in bytes (0: unknown).
    pub stack_bytes: u64,
    /// Whether the Go runtime marked it `_Gleaked`.
    pub leaked: bool,
    /// When an inventory last saw it in this park (monotonic ns; `u64::MAX` for goroutines
    /// known only from inventories, which every read re-confirms).
    pub confirmed_ns: u64,
}

impl Goroutine {
    fn view(&self) -> ParkedView {
        ParkedView {
            goid: self.goid,
            park: self.park,
            streak_since_ns: self.streak_since_ns,
            repeat_parks: self.repeat_parks,
            wakes: self.wakes,
            intervals: self.intervals,
            parent: self.creation.map(|c| c.parent),
            creation_stack_id: self.creation.map(|c| c.stack_id).unwrap_or(-1),
            stack_bytes: u64::from(self.stack_bytes),
            leaked: self.leaked,
            confirmed_ns: self.confirmed_ns,
        }
    }
}

/// Every live goroutine SFGI knows of, and counts over the whole session.
///
/// Two tiers: goroutines SFGI has seen events of live in a hash map with their full history;
/// goroutines only an inventory has seen parked (typically most of a big idle target) live in
/// a compact sorted table until their first event.
#[derive(Debug, Default)]
pub struct Lifetimes {
    live: HashMap<u64, Goroutine>,
    /// Sorted by goid; entries with `dead` set are tombstones.
    dormant: Vec<Dormant>,
    /// Tombstones in `dormant`.
    dormant_dead: usize,
    /// Where the last `dormant` lookup landed: inventories list goroutines in `allgs` order,
    /// which mostly follows goid order, so the next lookup is usually the next entry (a
    /// binary search over a million entries is ~20 cache misses).
    dormant_hint: std::cell::Cell<usize>,
    /// Seeded by the inventory being ingested; merged into `dormant` at its end.
    dormant_new: Vec<Dormant>,
    /// Inventories begun.
    epoch: u32,
    /// Goroutines seen created.
    pub spawned: u64,
    /// Goroutines seen exit.
    pub exited: u64,
    /// Completed GC cycles seen.
    pub gc_cycles: u64,
    /// Events applied.
    pub events: u64,
}

impl Lifetimes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn find_dormant(&self, goid: u64) -> Option<usize> {
        let h = self.dormant_hint.get();
        let near = [h, h + 1]
            .into_iter()
            .find(|&i| self.dormant.get(i).is_some_and(|d| d.goid == goid));
        let i = match near {
            Some(i) => i,
            None => self.dormant.binary_search_by_key(&goid, |d| d.goid).ok()?,
        };
        self.dormant_hint.set(i);
        (!self.dormant[i].dead).then_some(i)
    }

    /// Marks a dormant entry dead; compacts the table once half of it is tombstones.
    fn bury(&mut self, i: usize) {
        if let Some(d) = self.dormant.get_mut(i) {
            if !d.dead {
                d.dead = true;
                self.dormant_dead += 1;
            }
        }
        if self.dormant_dead > 1024 && self.dormant_dead * 2 > self.dormant.len() {
            self.dormant.retain(|d| !d.dead);
            self.dormant.shrink_to_fit();
            self.dormant_dead = 0;
        }
    }

    /// Moves a dormant goroutine into the live map (its first event); nothing if it is already
    /// there or unknown.
    fn promote(&mut self, goid: u64) {
        if self.live.contains_key(&goid) {
            return;
        }
        if let Some(i) = self.find_dormant(goid) {
            let g = self.dormant[i].promote();
            self.bury(i);
            self.live.insert(goid, g);
        }
    }

    fn entry(&mut self, goid: u64, ts_ns: u64) -> &mut Goroutine {
        self.promote(goid);
        let epoch = self.epoch;
        self.live.entry(goid).or_insert(Goroutine {
            goid,
            parked: false,
            park: Parked::default(),
            creation: None,
            first_seen_ns: ts_ns,
            parks: 0,
            wakes: 0,
            repeat_parks: 0,
            streak_since_ns: 0,
            intervals: IntervalStats::default(),
            leaked: false,
            stack_bytes: 0,
            epoch,
            confirmed_ns: 0,
        })
    }

    /// Forgets `goid` entirely (it exited, or its goid reappeared in a spawn).
    fn forget(&mut self, goid: u64) {
        self.live.remove(&goid);
        if let Some(i) = self.find_dormant(goid) {
            self.bury(i);
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, ev: &RuntimeEvent) {
        self.events += 1;
        match *ev {
            RuntimeEvent::Spawn {
                ts_ns,
                goid,
                parent,
                gopc,
                startpc,
                stack_id,
            } => {
                self.spawned += 1;
                // A goid is never reused while its goroutine lives; a stale entry means an exit
                // was missed: start afresh.
                self.forget(goid);
                let g = self.entry(goid, ts_ns);
                g.creation = Some(Creation {
                    parent,
                    gopc,
                    startpc,
                    stack_id,
                    at_ns: ts_ns,
                });
            }
            RuntimeEvent::Park {
                ts_ns,
                goid,
                reason,
                caller_pc,
                object,
                stack_id,
                gopc,
                parent,
            } => {
                let gc_at_park = self.gc_cycles;
                let g = self.entry(goid, ts_ns);
                g.parks += 1;
                if g.park.caller_pc == caller_pc && g.park.since_ns != 0 {
                    g.repeat_parks = g.repeat_parks.saturating_add(1);
                    g.intervals
                        .push(ts_ns.saturating_sub(g.park.since_ns) as f32 / 1e9);
                } else {
                    g.repeat_parks = 1;
                    g.streak_since_ns = ts_ns;
                    g.intervals = IntervalStats::default();
                }
                if g.creation.is_none() && gopc != 0 {
                    // Created before SFGI attached: site and creator known, stack and time not.
                    g.creation = Some(Creation {
                        parent,
                        gopc,
                        startpc: 0,
                        stack_id: -1,
                        at_ns: 0,
                    });
                }
                g.parked = true;
                g.park = Parked {
                    reason,
                    caller_pc,
                    object,
                    stack_id,
                    since_ns: ts_ns,
                    gc_at_park: gc_at_park as u32,
                    group: u32::MAX,
                };
            }
            // Who woke it (`waker`) is not kept: no verdict uses it.
            RuntimeEvent::Ready { ts_ns, goid, .. } => {
                let g = self.entry(goid, ts_ns);
                g.wakes += 1;
                g.parked = false;
            }
            RuntimeEvent::Run { ts_ns, goid } => {
                let g = self.entry(goid, ts_ns);
                g.wakes += 1;
                g.parked = false;
            }
            RuntimeEvent::Exit { goid, .. } => {
                self.exited += 1;
                self.forget(goid);
            }
            RuntimeEvent::GcStart { .. } => {}
            RuntimeEvent::GcEnd { .. } => self.gc_cycles += 1,
        }
    }

    /// How many live goroutines SFGI knows of.
    pub fn len(&self) -> usize {
        self.live.len() + self.dormant.len() - self.dormant_dead + self.dormant_new.len()
    }

    /// Whether SFGI knows of no live goroutine.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The goroutine `goid` with its full history, if SFGI knows of it (a goroutine known only
    /// from an inventory gets its full entry now).
    pub fn get_mut(&mut self, goid: u64) -> Option<&mut Goroutine> {
        self.promote(goid);
        self.live.get_mut(&goid)
    }

    /// Whether `goid` is parked (`Some(true)`), running or runnable (`Some(false)`), or unknown.
    pub fn is_parked(&self, goid: u64) -> Option<bool> {
        match self.live.get(&goid) {
            Some(g) => Some(g.parked),
            None => self.find_dormant(goid).map(|_| true),
        }
    }

    /// The parked goroutine `goid`, if SFGI knows it parked.
    pub fn parked_view(&self, goid: u64) -> Option<ParkedView> {
        match self.live.get(&goid) {
            Some(g) => g.parked.then(|| g.view()),
            None => self.find_dormant(goid).map(|i| self.dormant[i].view()),
        }
    }

    /// Starts folding in an inventory: goroutines it does not [`Lifetimes::observe`] are
    /// dropped by [`Lifetimes::end_inventory`].
    pub fn begin_inventory(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.dormant_new.clear();
    }

    /// The current inventory saw `goid` (with a stack of `stack_bytes`, a `_Gleaked` mark or
    /// not); returns whether SFGI knew it parked, as [`Lifetimes::is_parked`].
    pub fn observe(&mut self, goid: u64, stack_bytes: u64, leaked: Option<bool>) -> Option<bool> {
        let epoch = self.epoch;
        let bytes = stack_size(stack_bytes);
        if let Some(g) = self.live.get_mut(&goid) {
            g.epoch = epoch;
            g.stack_bytes = bytes;
            if let Some(l) = leaked.filter(|_| g.parked) {
                g.leaked = l;
            }
            return Some(g.parked);
        }
        let i = self.find_dormant(goid)?;
        let d = &mut self.dormant[i];
        d.epoch = epoch;
        d.stack_bytes = bytes;
        if let Some(l) = leaked {
            d.leaked = l;
        }
        Some(true)
    }

    /// An inventory read at `now_ns` saw `goid` parked where SFGI thinks it is parked.
    pub fn confirm(&mut self, goid: u64, now_ns: u64) {
        if let Some(g) = self.live.get_mut(&goid) {
            g.confirmed_ns = now_ns;
        }
    }

    /// An inventory at `now_ns` found `goid` in the park SFGI knows, with no evidence that it
    /// stayed blocked since the read before (it may have woken and parked again at the same
    /// place in between: its `g.waitsince` is not set, or its header changed): its age starts
    /// again from `now_ns`, and so does its membership of the group (a goroutine that left and
    /// came back is not a member that stayed).
    pub fn restart_park(&mut self, goid: u64, now_ns: u64) {
        if let Some(g) = self.live.get_mut(&goid) {
            if g.parked {
                g.park.since_ns = g.park.since_ns.max(now_ns);
                g.streak_since_ns = g.park.since_ns;
            }
            return;
        }
        if let Some(i) = self.find_dormant(goid) {
            let d = &mut self.dormant[i];
            d.since_ns = d.since_ns.max(now_ns);
            d.arrived_ns = d.since_ns;
        }
    }

    /// The park (raw wait reason, caller pc) of `goid` when only inventories know it.
    pub fn dormant_park(&self, goid: u64) -> Option<(u32, u64)> {
        let d = &self.dormant[self.find_dormant(goid)?];
        Some((d.reason, d.caller_pc))
    }

    /// Forgets a goroutine only inventories knew (the current one found it in another park).
    pub fn forget_dormant(&mut self, goid: u64) {
        if let Some(i) = self.find_dormant(goid) {
            self.bury(i);
        }
    }

    /// Records a goroutine an inventory found running or runnable, with its stack size.
    pub fn seed_active(&mut self, goid: u64, now_ns: u64, stack_bytes: u64) {
        let g = self.entry(goid, now_ns);
        g.parked = false;
        g.stack_bytes = stack_size(stack_bytes);
    }

    /// Records a goroutine an inventory found parked (SFGI saw no event of this park).
    pub fn seed_parked(
        &mut self,
        goid: u64,
        park: Parked,
        creation: Creation,
        leaked: bool,
        stack_bytes: u64,
    ) {
        let stack_bytes = stack_size(stack_bytes);
        if let Some(g) = self.live.get_mut(&goid) {
            // Another site (group or caller): its membership starts with this park.
            if g.streak_since_ns == 0
                || g.park.caller_pc != park.caller_pc
                || g.park.group != park.group
                || !g.parked
            {
                g.streak_since_ns = park.since_ns;
            }
            g.parked = true;
            g.park = park;
            g.repeat_parks = g.repeat_parks.max(1);
            g.leaked = leaked;
            g.stack_bytes = stack_bytes;
            g.epoch = self.epoch;
            if g.creation.is_none() {
                g.creation = Some(creation);
            }
            return;
        }
        self.dormant_new.push(Dormant {
            goid,
            since_ns: park.since_ns,
            arrived_ns: park.since_ns,
            object: park.object,
            caller_pc: park.caller_pc,
            parent: creation.parent,
            reason: park.reason,
            group: park.group,
            gc_at_park: park.gc_at_park,
            stack_bytes,
            epoch: self.epoch,
            leaked,
            dead: false,
        });
    }

    /// Ends an inventory: drops the goroutines it did not see; returns how many.
    pub fn end_inventory(&mut self) -> usize {
        self.finish_inventory(true)
    }

    /// Ends an inventory that failed part-way: keeps what it seeded, drops nothing.
    pub fn abandon_inventory(&mut self) {
        self.finish_inventory(false);
    }

    fn finish_inventory(&mut self, complete: bool) -> usize {
        let epoch = self.epoch;
        let before = self.live.len();
        if complete {
            self.live.retain(|_, g| g.epoch == epoch);
        }
        let mut gone = before - self.live.len();
        let mut new = std::mem::take(&mut self.dormant_new);
        new.sort_unstable_by_key(|d| d.goid);
        new.dedup_by_key(|d| d.goid);
        new.retain(|d| !self.live.contains_key(&d.goid));
        // In place, never a second copy of the table (a million entries are 64 MB).
        let before = self.dormant.len() - self.dormant_dead;
        self.dormant
            .retain(|d| !d.dead && (!complete || d.epoch == epoch));
        gone += before - self.dormant.len();
        self.dormant_dead = 0;
        if self.dormant.is_empty() {
            self.dormant = new;
        } else if !new.is_empty() {
            self.dormant.reserve_exact(new.len());
            self.dormant.append(&mut new);
            self.dormant.sort_unstable_by_key(|d| d.goid);
            // A goid both dormant and newly seeded cannot happen (seeding checks first).
            self.dormant.dedup_by_key(|d| d.goid);
        }
        self.dormant.shrink_to_fit();
        gone
    }

    /// GC cycles a parked goroutine has stayed blocked across.
    pub fn gc_cycles_blocked(&self, p: &Parked) -> u64 {
        u64::from((self.gc_cycles as u32).wrapping_sub(p.gc_at_park))
    }

    /// Every goroutine SFGI knows to be alive, running or parked: `(goid, group of its last
    /// park or u32::MAX)`.
    pub fn last_parks(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.live
            .values()
            .map(|g| {
                let known = g.parked || g.park.since_ns != 0;
                (g.goid, if known { g.park.group } else { u32::MAX })
            })
            .chain(
                self.dormant
                    .iter()
                    .filter(|d| !d.dead)
                    .map(|d| (d.goid, d.group)),
            )
    }

    /// The creator of the live goroutine `goid` (`None`: not alive, or creator unknown).
    pub fn parent_of(&self, goid: u64) -> Option<u64> {
        let p = match self.live.get(&goid) {
            Some(g) => g.creation.map(|c| c.parent),
            None => self.find_dormant(goid).map(|i| self.dormant[i].parent),
        };
        p.filter(|&p| p != 0)
    }

    /// Whether SFGI knows `goid` to be alive.
    pub fn alive(&self, goid: u64) -> bool {
        self.live.contains_key(&goid) || self.find_dormant(goid).is_some()
    }

    /// Parked goroutines.
    pub fn parked(&self) -> impl Iterator<Item = ParkedView> + '_ {
        self.live
            .values()
            .filter(|g| g.parked)
            .map(Goroutine::view)
            .chain(self.dormant.iter().filter(|d| !d.dead).map(Dormant::view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn park(goid: u64, ts_ns: u64) -> RuntimeEvent {
        RuntimeEvent::Park {
            ts_ns,
            goid,
            reason: 14,
            caller_pc: 0x10,
            object: 0x20,
            stack_id: 3,
            gopc: 0,
            parent: 0,
        }
    }

    #[test]
    fn spawn_park_wake_exit() {
        let mut l = Lifetimes::new();
        l.apply(&RuntimeEvent::Spawn {
            ts_ns: 1,
            goid: 7,
            parent: 1,
            gopc: 0x40,
            startpc: 0x50,
            stack_id: 2,
        });
        l.apply(&park(7, 5));
        assert_eq!(l.parked().count(), 1);
        l.apply(&RuntimeEvent::GcEnd { ts_ns: 6 });
        let g = l.parked().next().expect("parked");
        assert_eq!((g.goid, g.park.reason, g.park.since_ns), (7, 14, 5));
        assert_eq!(l.gc_cycles_blocked(&g.park), 1);
        assert_eq!(g.parent, Some(1));
        assert_eq!(g.creation_stack_id, 2);
        l.apply(&RuntimeEvent::Ready {
            ts_ns: 8,
            goid: 7,
            waker: 9,
        });
        assert_eq!(l.parked().count(), 0);
        l.apply(&park(7, 9));
        l.apply(&RuntimeEvent::Run { ts_ns: 10, goid: 7 });
        assert_eq!(l.parked().count(), 0);
        l.apply(&RuntimeEvent::Exit { ts_ns: 11, goid: 7 });
        assert!(l.is_empty());
        assert_eq!((l.spawned, l.exited, l.gc_cycles), (1, 1, 1));
    }

    #[test]
    fn repeated_parks_at_one_site_build_a_regular_wake_history() {
        let mut l = Lifetimes::new();
        for i in 0..10u64 {
            l.apply(&park(4, (i + 1) * 100_000_000));
            l.apply(&RuntimeEvent::Ready {
                ts_ns: (i + 1) * 100_000_000 + 1,
                goid: 4,
                waker: 0,
            });
        }
        l.apply(&park(4, 1_100_000_000));
        let g = l.parked().next().expect("parked");
        assert_eq!(g.repeat_parks, 11);
        assert_eq!(
            g.streak_since_ns, 100_000_000,
            "looping there since its first park"
        );
        let cv = g.intervals.cv().expect("enough intervals");
        assert!(cv < 0.01, "a 100 ms loop is periodic: cv {cv}");
        assert!((g.intervals.mean - 0.1).abs() < 1e-3);
    }

    #[test]
    fn per_goroutine_state_stays_small() {
        // Budget: ≤ 200 bytes per tracked goroutine including the hash map's own overhead
        // (key + one control byte + load factor 7/8).
        let entry = std::mem::size_of::<Goroutine>() + std::mem::size_of::<u64>();
        let per_goroutine = entry * 8 / 7 + 1;
        assert!(per_goroutine <= 200, "{per_goroutine} bytes per goroutine");
    }

    #[test]
    fn goroutines_seen_only_parking_are_tracked_without_creation() {
        let mut l = Lifetimes::new();
        l.apply(&park(3, 1));
        assert_eq!(l.parked().next().map(|g| g.parent), Some(None));
        let g = l.get_mut(3).expect("known");
        assert_eq!(g.creation, None);
        assert_eq!(g.first_seen_ns, 1);
    }

    fn seed(l: &mut Lifetimes, goid: u64, since_ns: u64) {
        l.seed_parked(
            goid,
            Parked {
                reason: 14,
                caller_pc: 0x10,
                object: 0x100 + goid,
                stack_id: -1,
                since_ns,
                gc_at_park: 0,
                group: 2,
            },
            Creation {
                parent: 1,
                gopc: 0x40,
                startpc: 0x50,
                stack_id: -1,
                at_ns: 0,
            },
            false,
            8192,
        );
    }

    #[test]
    fn a_dormant_goroutine_stays_compact() {
        // 72 MB for a million goroutines parked before SFGI attached.
        assert_eq!(std::mem::size_of::<Dormant>(), 72);
    }

    #[test]
    fn inventory_seeds_dormant_goroutines_that_events_promote() {
        let mut l = Lifetimes::new();
        l.begin_inventory();
        for goid in [30, 10, 20] {
            seed(&mut l, goid, goid * 1000);
        }
        assert_eq!(l.end_inventory(), 0);
        assert_eq!(l.len(), 3);
        assert!(
            l.live.is_empty(),
            "no hash-map entry for inventory-only goroutines"
        );
        let mut v: Vec<ParkedView> = l.parked().collect();
        v.sort_by_key(|g| g.goid);
        assert_eq!(v.iter().map(|g| g.goid).collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(
            (
                v[1].park.since_ns,
                v[1].park.object,
                v[1].parent,
                v[1].stack_bytes
            ),
            (20_000, 0x114, Some(1), 8192)
        );
        assert_eq!(l.is_parked(20), Some(true));
        assert_eq!(l.is_parked(21), None);
        // Its wake promotes it: running now, history kept.
        l.apply(&RuntimeEvent::Run {
            ts_ns: 50_000,
            goid: 20,
        });
        assert_eq!(l.is_parked(20), Some(false));
        assert_eq!(l.len(), 3);
        assert_eq!(l.parked().count(), 2);
        let g = l.get_mut(20).expect("promoted");
        assert_eq!((g.park.since_ns, g.stack_bytes, g.wakes), (20_000, 8192, 1));
        // Parks again at the same site: a repeat park, as if SFGI had seen the first one.
        l.apply(&park(20, 60_000));
        assert_eq!(l.get_mut(20).map(|g| g.repeat_parks), Some(2));
        // An exit of a dormant one forgets it.
        l.apply(&RuntimeEvent::Exit {
            ts_ns: 70_000,
            goid: 30,
        });
        assert_eq!((l.len(), l.is_parked(30)), (2, None));
    }

    #[test]
    fn the_next_inventory_drops_what_it_did_not_see() {
        let mut l = Lifetimes::new();
        l.begin_inventory();
        for goid in 1..=5 {
            seed(&mut l, goid, 1);
        }
        l.end_inventory();
        l.apply(&park(6, 2)); // seen by events only
        l.begin_inventory();
        for goid in [2, 4, 6] {
            assert_eq!(l.observe(goid, 4096, Some(goid == 4)), Some(true));
        }
        seed(&mut l, 7, 3);
        assert_eq!(l.end_inventory(), 3, "1, 3 and 5 are gone");
        let mut v: Vec<(u64, bool, u64)> = l
            .parked()
            .map(|g| (g.goid, g.leaked, g.stack_bytes))
            .collect();
        v.sort_unstable();
        assert_eq!(
            v,
            [
                (2, false, 4096),
                (4, true, 4096),
                (6, false, 4096),
                (7, false, 8192)
            ]
        );
    }

    #[test]
    fn many_exits_of_dormant_goroutines_compact_the_table() {
        let mut l = Lifetimes::new();
        l.begin_inventory();
        for goid in 1..=10_000 {
            seed(&mut l, goid, 1);
        }
        l.end_inventory();
        for goid in 1..=9_000 {
            l.apply(&RuntimeEvent::Exit { ts_ns: 2, goid });
        }
        assert_eq!(l.len(), 1000);
        assert!(l.dormant.len() < 10_000, "tombstones were compacted");
        assert_eq!(l.parked().count(), 1000);
        assert_eq!(l.is_parked(9_500), Some(true));
    }
}
