//! Which goroutines a proof may cover, and what each waits on.
//!
//! As in Go's leak detector (`isMaybeRunnable`, `runtime/mgc.go` 1.26+): a goroutine parked on
//! a channel operation or `select` waits on the channels of its `g.waiting` sudogs; one parked
//! on a nil channel or in `select {}` waits on nothing and can never run again; one parked on
//! `sync.Mutex`, `RWMutex`, `WaitGroup` (or `Cond`, from Go 1.26) waits on the semaphore word
//! its sudog's `elem` names. From Go 1.26 the runtime links that sudog from `g.waiting`; before,
//! it is found in `runtime.semtable`'s treaps by its `g`. Every other goroutine (running,
//! runnable, in a system call, asleep, in I/O, on a timer, or parked on something whose object
//! could not be read) is a root.

use crate::memory::Memory;
use crate::{u64_at, HeapError};
use sfgi_engine::goroutine::{GStatus, GoroutineInfo};
use sfgi_goexe::HeapLayout;
use std::collections::{HashMap, HashSet};

/// Most sudogs visited in `semtable` (all treaps together).
pub const MAX_SEMA_SUDOGS: usize = 1 << 20;

/// What a candidate waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// A channel send/receive or `select` on channels.
    Chan,
    /// A nil channel or `select {}`: nothing can wake it.
    Nothing(&'static str),
    /// A semaphore (`sync.Mutex`, …): the name of the primitive.
    Sema(&'static str),
}

/// A goroutine blocked on something a proof can decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Index into the goroutine list.
    pub index: usize,
    /// `g.goid`.
    pub goid: u64,
    /// What kind of wait.
    pub kind: WaitKind,
    /// The objects it waits on (`*hchan`s, or the semaphore word): it can run again only if one
    /// of them is reachable. Empty for [`WaitKind::Nothing`].
    pub objects: Vec<u64>,
    /// Its sudogs: not scanned while it is a candidate (their `c`/`elem` point at what it waits
    /// on, as Go hides them from the GC with `maybeTraceablePtr`).
    pub sudogs: Vec<u64>,
}

impl Candidate {
    /// The type name of what it waits on, for reports.
    pub fn object_type(&self) -> &'static str {
        match self.kind {
            WaitKind::Chan => "chan",
            WaitKind::Nothing(t) | WaitKind::Sema(t) => t,
        }
    }
}

/// The candidates of one inventory.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    /// The candidates, in goroutine order.
    pub list: Vec<Candidate>,
    /// Sema waits that could not be tied to a semaphore (not found in `semtable`): roots.
    pub unresolved: usize,
}

/// The wait kind of a wait reason, `None` for reasons a proof does not cover.
fn kind_of(reason: &str) -> Option<WaitKind> {
    Some(match reason {
        "chan receive" | "chan send" | "select" => WaitKind::Chan,
        "chan receive (nil chan)" | "chan send (nil chan)" => WaitKind::Nothing("nil chan"),
        "select (no cases)" => WaitKind::Nothing("select {}"),
        "sync.Mutex.Lock" => WaitKind::Sema("sync.Mutex"),
        "sync.RWMutex.Lock" | "sync.RWMutex.RLock" => WaitKind::Sema("sync.RWMutex"),
        "sync.WaitGroup.Wait" => WaitKind::Sema("sync.WaitGroup"),
        "sync.Cond.Wait" => WaitKind::Sema("sync.Cond"),
        "semacquire" => WaitKind::Sema("semaphore"),
        _ => return None,
    })
}

impl Candidates {
    /// The candidates among `goroutines`. `sema` maps a `g` address to its semaphore sudogs
    /// `(sudog, elem)` (from [`read_semtable`]; empty when unknown): for Go 1.21–1.25 the only
    /// way to tie a sync wait to its object. From Go 1.26, `g.waiting` gives it directly.
    pub fn find(goroutines: &[GoroutineInfo], sema: &HashMap<u64, Vec<(u64, u64)>>) -> Candidates {
        let mut out = Candidates::default();
        for (index, g) in goroutines.iter().enumerate() {
            // `_Gleaked` (Go 1.26+): parked like any waiting goroutine; the mark is the runtime's
            // own verdict, which a proof does not take on trust.
            if !matches!(g.status, GStatus::Waiting | GStatus::Leaked) {
                continue;
            }
            let Some(kind) = g.wait_reason.as_deref().and_then(kind_of) else {
                continue;
            };
            let sudogs: Vec<u64> = g.sudogs.iter().map(|s| s.addr).collect();
            let (objects, sudogs) = match kind {
                WaitKind::Chan => {
                    // Every sudog must name its channel, or the wait is not fully known.
                    if g.sudogs.is_empty() || g.sudogs.iter().any(|s| s.c == 0) {
                        continue;
                    }
                    (g.sudogs.iter().map(|s| s.c).collect(), sudogs)
                }
                WaitKind::Nothing(_) => (Vec::new(), sudogs),
                WaitKind::Sema(_) => match g.sudogs.first() {
                    // Go 1.26+: g.waiting is the sema sudog, elem the semaphore word.
                    Some(s) if s.elem != 0 => (vec![s.elem], sudogs),
                    _ => match sema.get(&g.g_addr) {
                        Some(v) if !v.is_empty() && v.iter().all(|&(_, e)| e != 0) => (
                            v.iter().map(|&(_, e)| e).collect(),
                            v.iter().map(|&(s, _)| s).collect(),
                        ),
                        _ => {
                            out.unresolved += 1;
                            continue;
                        }
                    },
                },
            };
            out.list.push(Candidate {
                index,
                goid: g.goid,
                kind,
                objects,
                sudogs,
            });
        }
        out
    }

    /// Every sudog of every candidate.
    pub fn opaque(&self) -> HashSet<u64> {
        self.list
            .iter()
            .flat_map(|c| c.sudogs.iter().copied())
            .collect()
    }
}

/// Walks every treap of `runtime.semtable` (runtime address `semtable`): `g` address →
/// `(sudog, elem)` of each goroutine parked on a semaphore. Each treap node is the first waiter
/// on one address (`prev`/`next` its children); later waiters on that address hang off it
/// through `waitlink`. Bounded by [`MAX_SEMA_SUDOGS`]; a cycle or an unreadable node fails the
/// walk (the caller then proves no sync wait).
pub fn read_semtable(
    mem: &dyn Memory,
    layout: &HeapLayout,
    semtable: u64,
) -> Result<HashMap<u64, Vec<(u64, u64)>>, HeapError> {
    let len = (layout.semtable_len * layout.semtable_entry) as usize;
    let table = mem.read_one(semtable, len, "runtime.semtable")?;
    let mut todo: Vec<u64> = (0..layout.semtable_len)
        .filter_map(|i| u64_at(&table, i * layout.semtable_entry + layout.semaroot_treap))
        .filter(|&p| p != 0)
        .collect();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut out: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    let size = [
        layout.sudog_g,
        layout.sudog_next,
        layout.sudog_prev,
        layout.sudog_waitlink,
        layout.sudog_elem,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
        + 8;
    while !todo.is_empty() {
        let batch: Vec<u64> = todo.drain(..).filter(|p| seen.insert(*p)).collect();
        if seen.len() > MAX_SEMA_SUDOGS {
            return Err(HeapError::Cap(format!(
                "more than {MAX_SEMA_SUDOGS} semaphore sudogs"
            )));
        }
        let ranges: Vec<(u64, usize)> = batch.iter().map(|&p| (p, size as usize)).collect();
        for (&p, b) in batch.iter().zip(mem.read_ranges(&ranges)?) {
            let b = b.ok_or(HeapError::Unreadable {
                what: "semaphore sudog",
                addr: p,
                len: size as usize,
            })?;
            let word = |off| u64_at(&b, off).unwrap_or(0);
            let (g, elem) = (word(layout.sudog_g), word(layout.sudog_elem));
            if g != 0 {
                out.entry(g).or_default().push((p, elem));
            }
            for next in [
                word(layout.sudog_prev),
                word(layout.sudog_next),
                word(layout.sudog_waitlink),
            ] {
                if next != 0 && !seen.contains(&next) {
                    todo.push(next);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::fake::FakeMemory;
    use sfgi_engine::goroutine::SudogInfo;

    pub(crate) fn g(goid: u64, reason: &str, sudogs: &[(u64, u64, u64)]) -> GoroutineInfo {
        GoroutineInfo {
            goid,
            status: GStatus::Waiting,
            status_raw: 4,
            wait_reason: Some(reason.into()),
            wait_reason_raw: 0,
            waitsince_ns: 0,
            wait_age_ns: None,
            gopc: 0,
            startpc: 0,
            parent_goid: 1,
            stack_lo: 0,
            stack_hi: 0,
            sched_pc: 0,
            sched_sp: 0,
            sched_bp: 0,
            stack: Vec::new(),
            stack_truncated: false,
            waiting_on: sudogs
                .iter()
                .map(|s| if s.1 != 0 { s.1 } else { s.2 })
                .collect(),
            sudogs: sudogs
                .iter()
                .map(|&(addr, c, elem)| SudogInfo {
                    addr,
                    elem,
                    c,
                    is_select: sudogs.len() > 1,
                    kind: Default::default(),
                })
                .collect(),
            g_addr: 0x1000 * goid,
            stayed_blocked: false,
        }
    }

    #[test]
    fn classifies() {
        let gs = vec![
            g(1, "chan receive", &[(0x10, 0xc0, 0)]),
            g(2, "select", &[(0x20, 0xc1, 0), (0x28, 0, 0)]), // a case not read: not a candidate
            g(3, "select (no cases)", &[]),
            g(4, "sync.Mutex.Lock", &[]),     // found in semtable
            g(5, "sync.WaitGroup.Wait", &[]), // not found: unresolved
            g(6, "sync.Mutex.Lock", &[(0x60, 0, 0xd4)]), // Go 1.26+: g.waiting
            g(7, "sleep", &[]),
        ];
        let mut sema = HashMap::new();
        sema.insert(0x4000u64, vec![(0x40u64, 0xd0u64)]);
        let c = Candidates::find(&gs, &sema);
        let got: Vec<(u64, Vec<u64>, &str)> = c
            .list
            .iter()
            .map(|c| (c.goid, c.objects.clone(), c.object_type()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, vec![0xc0], "chan"),
                (3, vec![], "select {}"),
                (4, vec![0xd0], "sync.Mutex"),
                (6, vec![0xd4], "sync.Mutex"),
            ]
        );
        assert_eq!(c.unresolved, 1);
        assert_eq!(c.opaque(), [0x10, 0x40, 0x60].into_iter().collect());
    }

    #[test]
    fn walks_semtable() {
        let l = HeapLayout::for_minor(21).unwrap();
        let mut m = FakeMemory::default();
        let base = 0x5000u64;
        let mut table = vec![0u64; (l.semtable_len * l.semtable_entry / 8) as usize];
        table[((3 * l.semtable_entry + l.semaroot_treap) / 8) as usize] = 0x100;
        m.put_words(base, &table);
        let sudog = |g: u64, next: u64, prev: u64, waitlink: u64, elem: u64| {
            let mut w = vec![0u64; 12];
            w[(l.sudog_g / 8) as usize] = g;
            w[(l.sudog_next / 8) as usize] = next;
            w[(l.sudog_prev / 8) as usize] = prev;
            w[(l.sudog_waitlink / 8) as usize] = waitlink;
            w[(l.sudog_elem / 8) as usize] = elem;
            w
        };
        m.put_words(0x100, &sudog(0xa000, 0x200, 0, 0x300, 0xe0));
        m.put_words(0x200, &sudog(0xb000, 0, 0x100, 0, 0xe8)); // a cycle back to the root
        m.put_words(0x300, &sudog(0xc000, 0, 0, 0, 0xe0));
        let s = read_semtable(&m, &l, base).unwrap();
        assert_eq!(s[&0xa000], vec![(0x100, 0xe0)]);
        assert_eq!(s[&0xb000], vec![(0x200, 0xe8)]);
        assert_eq!(s[&0xc000], vec![(0x300, 0xe0)]);
        // An unreadable node fails the walk.
        m.put_words(0x300, &sudog(0xc000, 0x999_0000, 0, 0, 0xe0));
        assert!(read_semtable(&m, &l, base).is_err());
    }
}
