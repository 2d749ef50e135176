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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// [`Lifetimes::gc_cycles`] when it parked.
    pub gc_at_park: u64,
}

/// A goroutine's state as far as SFGI knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Running or runnable (not parked).
    Active,
    /// Parked in `gopark`.
    Parked(Parked),
}

/// What SFGI knows of one goroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Goroutine {
    /// Its goid.
    pub goid: u64,
    /// Its state.
    pub state: State,
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
            state: State::Active,
            creation: None,
            first_seen_ns: ts_ns,
            parks: 0,
            wakes: 0,
            last_waker: 0,
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
                g.state = State::Parked(Parked {
                    reason,
                    caller_pc,
                    object,
                    stack_id,
                    since_ns: ts_ns,
                    gc_at_park,
                });
            }
            RuntimeEvent::Ready { ts_ns, goid, waker } => {
                let g = self.entry(goid, ts_ns);
                g.wakes += 1;
                g.last_waker = waker;
                g.state = State::Active;
            }
            RuntimeEvent::Run { ts_ns, goid } => {
                let g = self.entry(goid, ts_ns);
                g.wakes += 1;
                g.state = State::Active;
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

    /// GC cycles a parked goroutine has stayed blocked across.
    pub fn gc_cycles_blocked(&self, p: &Parked) -> u64 {
        self.gc_cycles.saturating_sub(p.gc_at_park)
    }

    /// Parked goroutines.
    pub fn parked(&self) -> impl Iterator<Item = (&Goroutine, &Parked)> {
        self.live.values().filter_map(|g| match &g.state {
            State::Parked(p) => Some((g, p)),
            State::Active => None,
        })
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
    fn goroutines_seen_only_parking_are_tracked_without_creation() {
        let mut l = Lifetimes::new();
        l.apply(&park(3, 1));
        let (g, _) = l.parked().next().expect("parked");
        assert_eq!(g.creation, None);
        assert_eq!(g.first_seen_ns, 1);
    }
}
