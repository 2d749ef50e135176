//! What the classifier and its rules see of one group.

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
