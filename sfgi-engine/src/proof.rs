//! Proofs of leaks: the outcome of a reachability pass over the target's memory (read by a
//! source, e.g. `sfgi-heap`), handed to the engine as plain data. The engine stays pure: it
//! neither reads memory nor keeps time for proofs, it only attaches them to the parks it knows.
use serde::Serialize;

/// How a member was proven leaked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProofKind {
    /// What it waits on is unreachable from every root (SFGI's reachability pass, twice).
    Unreachable,
    /// The target's own Go runtime marked it `_Gleaked` (Go 1.26+ leak detector).
    Runtime,
}

impl ProofKind {
    /// `"unreachable"` or `"runtime"`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ProofKind::Unreachable => "unreachable",
            ProofKind::Runtime => "runtime",
        }
    }
}

/// The object a proven goroutine waits on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WaitedObject {
    /// What it is: `chan`, `nil chan`, `select {}`, `sync.Mutex`, `sync.RWMutex`,
    /// `sync.WaitGroup`, `sync.Cond`, `semaphore`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Runtime address (the `*hchan`, or the semaphore word; 0 for a nil channel or `select {}`),
    /// as `0x…`.
    pub address: String,
}

/// One goroutine a reachability proof found leaked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvenGoroutine {
    /// `g.goid`.
    pub goid: u64,
    /// What it waits on.
    pub object: WaitedObject,
}

/// The outcome of one proof (two passes over the heap some time apart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProofReport {
    /// Goroutines proven leaked: unreachable in both passes, parked the same way in both.
    pub proven: Vec<ProvenGoroutine>,
    /// Candidates (goroutines blocked on channels or sync objects) in the last pass.
    pub candidates: usize,
    /// Bytes read from the target by both passes.
    pub bytes_read: u64,
    /// Time both passes took (ns, reading included).
    pub pass_ns: u64,
    /// Why nothing was proven, when the proof was refused (unknown layout, unreadable memory,
    /// the passes disagreed…).
    pub refused: Option<String>,
}
