//! Names what kind of leak (or healthy resident) a group is: one pattern ID per group, with a
//! plain explanation and a fix hint. Rules are data (see `rules/`), user-extensible.

/// What the classifier sees of one group. Frame lists hold Go function names, innermost first.
#[derive(Clone, Debug, Default)]
pub struct GroupFeatures {
    /// Go's wait-reason text (`chan send`, `select`, `sync.Mutex.Lock`, `IO wait`, …); for
    /// goroutines in a system call (seen by the inventory) `syscall`.
    pub wait_reason: String,
    /// Function names of the park stack, innermost (`runtime.gopark`) first.
    pub park_frames: Vec<String>,
    /// Function containing the `go` statement that created the members.
    pub created_by: String,
    /// Function names of the creation stack, innermost (the `go` statement's function) first;
    /// empty when the goroutines were created before SFGI attached.
    pub creation_frames: Vec<String>,
    /// Members.
    pub count: usize,
    /// Distinct objects the members park on (channel locks, semaphore addresses); 0 if unknown.
    pub distinct_objects: usize,
    /// Whether members park on no object at all (nil channel, `select {}`, sleep).
    pub nil_object: bool,
    /// Distinct creator goroutines (fan-in: one creator spawning many, or many creators).
    pub creators: usize,
    /// Mean wake-ups per member while SFGI watched.
    pub wakes_per_member: f64,
    /// Coefficient of variation of members' wake intervals (low = periodic); `None` when too few
    /// wake-ups were seen.
    pub wake_interval_cv: Option<f64>,
    /// Median interval between a member's wake-ups, in seconds.
    pub wake_interval_median_s: Option<f64>,
}

/// The verdict of the classifier for one group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Classification {
    /// Pattern ID (`chan-send-blocked`, …, or `unclassified`).
    pub pattern: String,
    /// One plain sentence: what is going on.
    pub explanation: String,
    /// One plain sentence: how to fix it.
    pub fix_hint: String,
    /// Whether the rule describes a healthy, long-lived goroutine (worker pool, idle keep-alive
    /// connection, ticker, signal waiter) rather than a leak: the judge then calls it
    /// `resident` unless it grows.
    pub healthy: bool,
    /// The rule that matched (its `id` in the rules file).
    pub rule: String,
}
