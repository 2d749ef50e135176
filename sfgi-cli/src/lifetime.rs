//! One state machine per goroutine, rebuilt from runtime events.
use crate::event::RuntimeEvent;
use std::collections::HashMap;

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
    /// The goroutine that last woke it.
    pub last_waker: u64,
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

/// Every live goroutine SFGI knows of, and counts over the whole session.
#[derive(Debug, Default)]
pub struct Lifetimes {
    live: HashMap<u64, Goroutine>,
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

    fn entry(&mut self, goid: u64, ts_ns: u64) -> &mut Goroutine {
        self.live.entry(goid).or_insert(Goroutine {
            goid,
            parked: false,
            park: Parked::default(),
            creation: None,
            first_seen_ns: ts_ns,
            parks: 0,
            wakes: 0,
            last_waker: 0,
            repeat_parks: 0,
            streak_since_ns: 0,
            intervals: IntervalStats::default(),
            leaked: false,
        })
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
                self.live.remove(&goid);
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
            RuntimeEvent::Ready { ts_ns, goid, waker } => {
                let g = self.entry(goid, ts_ns);
                g.wakes += 1;
                g.last_waker = waker;
                g.parked = false;
            }
            RuntimeEvent::Run { ts_ns, goid } => {
                let g = self.entry(goid, ts_ns);
                g.wakes += 1;
                g.parked = false;
            }
            RuntimeEvent::Exit { goid, .. } => {
                self.exited += 1;
                self.live.remove(&goid);
            }
            RuntimeEvent::GcStart { .. } => {}
            RuntimeEvent::GcEnd { .. } => self.gc_cycles += 1,
        }
    }

    /// Live goroutines SFGI knows of.
    pub fn live(&self) -> impl Iterator<Item = &Goroutine> {
        self.live.values()
    }

    /// How many live goroutines SFGI knows of.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether SFGI knows of no live goroutine.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The goroutine `goid`, if SFGI knows of it.
    pub fn get_mut(&mut self, goid: u64) -> Option<&mut Goroutine> {
        self.live.get_mut(&goid)
    }

    /// Records a goroutine an inventory found running or runnable.
    pub fn seed_active(&mut self, goid: u64, now_ns: u64) {
        let g = self.entry(goid, now_ns);
        g.parked = false;
    }

    /// Records a goroutine an inventory found parked (SFGI saw no event of this park).
    pub fn seed_parked(&mut self, goid: u64, park: Parked, creation: Creation, leaked: bool) {
        let g = self.entry(goid, park.since_ns);
        if g.streak_since_ns == 0 || g.park.caller_pc != park.caller_pc {
            g.streak_since_ns = park.since_ns;
        }
        g.parked = true;
        g.park = park;
        g.repeat_parks = g.repeat_parks.max(1);
        g.leaked = leaked;
        if g.creation.is_none() {
            g.creation = Some(creation);
        }
    }

    /// Keeps only the goroutines for which `keep(goid)` holds; returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) -> usize {
        let before = self.live.len();
        self.live.retain(|&goid, _| keep(goid));
        before - self.live.len()
    }

    /// GC cycles a parked goroutine has stayed blocked across.
    pub fn gc_cycles_blocked(&self, p: &Parked) -> u64 {
        u64::from((self.gc_cycles as u32).wrapping_sub(p.gc_at_park))
    }

    /// Parked goroutines.
    pub fn parked(&self) -> impl Iterator<Item = (&Goroutine, &Parked)> {
        self.live
            .values()
            .filter_map(|g| g.parked.then_some((g, &g.park)))
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
        let (g, p) = l.parked().next().expect("parked");
        assert_eq!((g.goid, p.reason, p.since_ns), (7, 14, 5));
        assert_eq!(l.gc_cycles_blocked(p), 1);
        assert_eq!(g.creation.map(|c| c.parent), Some(1));
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
        let (g, _) = l.parked().next().expect("parked");
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
        let (g, _) = l.parked().next().expect("parked");
        assert_eq!(g.creation, None);
        assert_eq!(g.first_seen_ns, 1);
    }
}
