//! What the classifier and its rules see of one group.
use crate::goroutine::ChanKind;

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
    /// What the channels a member waits on are, as an inventory read them (one per channel
    /// case of a select); empty when none was read (a wait on no channel, or known from
    /// events only).
    pub waits_on: Vec<ChanKind>,
    /// Members started by a live goroutine that serves a network connection (parked in
    /// network I/O, not accepting) or that started one, or by a child of one: they are the
    /// connection's goroutines and end with it.
    pub connection_members: usize,
}

impl GroupFeatures {
    /// Some channel waited on is a timer that may still fire.
    pub fn timer_case(&self) -> bool {
        self.waits_on.iter().any(|k| k.live_timer())
    }

    /// Some channel waited on is a stopped timer's, and no timer waited on may still fire.
    pub fn stopped_timer(&self) -> bool {
        self.waits_on.contains(&ChanKind::TimerStopped) && !self.timer_case()
    }

    /// Every member belongs to a live network connection ([`GroupFeatures::connection_members`])
    /// and waits for what the connection's end will close: a done/stop channel among its cases
    /// (its context cancelled, its transport closed), or the channel it ranges over (a
    /// per-connection writer pump, `for v := range c.send`, whose channel is closed when the
    /// connection is unregistered).
    pub fn connection_bound(&self) -> bool {
        self.count > 0
            && self.connection_members == self.count
            && (self.waits_on.contains(&ChanKind::Signal)
                || self.park_frames.iter().any(|f| f == "runtime.chanrecv2"))
    }

    /// Every channel waited on carries zero-size elements (a done/stop signal).
    pub fn signal_channel(&self) -> bool {
        !self.waits_on.is_empty() && self.waits_on.iter().all(|&k| k == ChanKind::Signal)
    }

    /// The channels waited on, as text (`a ticker and a done/stop channel (chan struct{})`).
    pub fn cases(&self) -> String {
        let mut kinds: Vec<(ChanKind, usize)> = Vec::new();
        for &k in &self.waits_on {
            match kinds.iter_mut().find(|(have, _)| *have == k) {
                Some((_, n)) => *n += 1,
                None => kinds.push((k, 1)),
            }
        }
        // A select's sudogs come in lock order (by channel address): name timers first,
        // then data, then done channels, whatever that order.
        kinds.sort_by_key(|&(k, _)| match k {
            ChanKind::Timer | ChanKind::Ticker | ChanKind::TimerAsync | ChanKind::TimerStopped => 0,
            ChanKind::Data => 1,
            ChanKind::Signal => 2,
            ChanKind::Unknown => 3,
        });
        let d: Vec<String> = kinds.iter().map(|&(k, n)| k.describe(n)).collect();
        match d.as_slice() {
            [] => "channels not read".to_string(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}
