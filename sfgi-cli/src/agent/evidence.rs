//! Evidence bundles: when a leak group first reaches severity L3 or L4, the agent writes once,
//! under a bounded directory, what an operator needs later: the group's JSON, a goroutine dump of
//! its members in Go's `debug=2` text format (`sfgi analyze` reads it back), and the target's RSS
//! and cgroup memory limit. Oldest bundles are evicted past `max_bundles` or `max_bytes`.
//! `--on-alert CMD` runs `sh -c CMD` with the group's JSON on stdin, on a thread of its own, killed
//! after a timeout: it never blocks the agent.
use crate::snapshot::Snapshot;
use anyhow::{Context, Result};
use sfgi_engine::engine::Leak;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where bundles go and how much of them is kept.
#[derive(Clone, Debug)]
pub struct EvidenceOptions {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// Most bundles kept.
    pub max_bundles: usize,
    /// Most bytes kept (all bundles together).
    pub max_bytes: u64,
    /// `--on-alert` command.
    pub on_alert: Option<String>,
    /// Its time limit.
    pub on_alert_timeout: Duration,
}

/// Most `--on-alert` commands running at once (more are skipped, and logged).
pub const MAX_HOOKS: usize = 4;

/// Who a target is: in `/sfgi/targets` and in its evidence bundles' `target.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetFacts {
    /// Host PID.
    pub pid: u32,
    /// PID in its own PID namespace (`NSpid`, last field).
    pub ns_pid: Option<u32>,
    /// Executable file name.
    pub exe: String,
    /// Go version.
    pub go_version: String,
    /// Container id.
    pub container: Option<String>,
    /// Container name (from the kubelet's `/var/log/containers`).
    pub container_name: Option<String>,
    /// Kubernetes pod UID.
    pub pod_uid: Option<String>,
    /// Pod name (from the kubelet's pod log directories).
    pub pod: Option<String>,
    /// Pod namespace (same source).
    pub namespace: Option<String>,
}

/// Writes bundles (shared by the targets' threads).
pub struct Evidence {
    opts: EvidenceOptions,
    hooks: Arc<AtomicUsize>,
}

/// A group's name made safe for a file name.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A goroutine dump of `group`'s members, in Go's `debug=2` format (all members share the
/// group's blocking stack and creation site; each has its own goid and wait time).
pub fn go_dump(snap: &Snapshot, group: &Leak) -> String {
    let idx = snap.report.groups.iter().position(|g| g.id == group.id);
    let mut members: Vec<(u64, f64)> = snap
        .members
        .iter()
        .filter(|m| Some(m.group as usize) == idx)
        .map(|m| (m.goid, snap.now_ns.saturating_sub(m.since_ns) as f64 / 1e9))
        .collect();
    if members.is_empty() {
        members = group
            .goroutine_ids
            .iter()
            .map(|&g| (g, group.duration_seconds))
            .collect();
    }
    let created = match group.created_by.split_once(" at ") {
        Some((func, loc)) => format!("created by {func} in goroutine 1\n\t{loc} +0x0\n"),
        None if !group.created_by.is_empty() => {
            format!("created by {} in goroutine 1\n\t?\n", group.created_by)
        }
        None => String::new(),
    };
    let reason = if group.wait_reason.is_empty() {
        "select"
    } else {
        group.wait_reason.as_str()
    };
    let mut out = String::new();
    for (goid, secs) in members {
        let minutes = (secs / 60.0) as u64;
        let wait = if minutes >= 1 {
            format!(", {minutes} minutes")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "goroutine {goid} [{reason}{wait}]:\n{}{created}\n",
            group.stack_trace
        ));
    }
    out
}

impl Evidence {
    /// Bundles under `opts.dir`.
    pub fn new(opts: EvidenceOptions) -> Result<Evidence> {
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("creating the evidence directory {}", opts.dir.display()))?;
        Ok(Evidence {
            opts,
            hooks: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Writes the bundle of `group` (just reached L3+) and starts the hook. Returns the
    /// bundle's directory.
    pub fn write(&self, snap: &Snapshot, group: &Leak, target: &TargetFacts) -> Result<PathBuf> {
        let ms = sfgi_trace::clock::wall_ns() / 1_000_000;
        let dir = self
            .opts
            .dir
            .join(format!("{ms}-{}-{}", target.pid, safe(&group.id)));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut gjson = serde_json::to_value(group).context("group JSON")?;
        if let Some(o) = gjson.as_object_mut() {
            o.insert("pid".into(), target.pid.into());
            o.insert("exe".into(), target.exe.clone().into());
            o.insert("container".into(), target.container.clone().into());
            o.insert(
                "container_name".into(),
                target.container_name.clone().into(),
            );
            o.insert("pod_uid".into(), target.pod_uid.clone().into());
        }
        let gtext = serde_json::to_string_pretty(&gjson).context("group JSON")?;
        std::fs::write(dir.join("group.json"), &gtext)?;
        std::fs::write(dir.join("goroutines.txt"), go_dump(snap, group))?;
        let info = serde_json::json!({
            "target": target,
            "rss_bytes": sfgi_trace::procfs::rss_bytes(Some(target.pid)),
            "memory_limit_bytes": sfgi_trace::discover::memory_limit(target.pid),
            "written_at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        });
        std::fs::write(
            dir.join("target.json"),
            serde_json::to_string_pretty(&info).unwrap_or_default(),
        )?;
        self.evict();
        self.hook(gtext);
        Ok(dir)
    }

    /// Bundles, oldest first: (name, path, bytes).
    fn bundles(&self) -> Vec<(String, PathBuf, u64)> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.opts.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(ms) = name.split('-').next().and_then(|s| s.parse::<u64>().ok()) else {
                    continue;
                };
                let bytes = std::fs::read_dir(e.path())
                    .map(|d| {
                        d.flatten()
                            .filter_map(|f| f.metadata().ok())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0);
                v.push((ms, name, e.path(), bytes));
            }
        }
        v.sort();
        v.into_iter().map(|(_, n, p, b)| (n, p, b)).collect()
    }

    /// Drops the oldest bundles past the caps.
    fn evict(&self) {
        let mut b = self.bundles();
        let mut total: u64 = b.iter().map(|x| x.2).sum();
        while !b.is_empty() && (b.len() > self.opts.max_bundles || total > self.opts.max_bytes) {
            let (_, path, bytes) = b.remove(0);
            let _ = std::fs::remove_dir_all(&path);
            total = total.saturating_sub(bytes);
        }
    }

    /// The newest bundle of group `id` (of `pid`, if given): its directory.
    pub fn find(&self, id: &str, pid: Option<u32>) -> Option<PathBuf> {
        let want = safe(id);
        self.bundles()
            .into_iter()
            .rev()
            .find_map(|(name, path, _)| {
                let mut it = name.splitn(3, '-');
                let (_, p, g) = (it.next()?, it.next()?, it.next()?);
                (g == want && pid.is_none_or(|pid| p == pid.to_string())).then_some(path)
            })
    }

    /// Runs `--on-alert` with `json` on stdin, on its own thread, killed after the timeout.
    fn hook(&self, json: String) {
        let Some(cmd) = self.opts.on_alert.clone() else {
            return;
        };
        if self.hooks.fetch_add(1, Ordering::SeqCst) >= MAX_HOOKS {
            self.hooks.fetch_sub(1, Ordering::SeqCst);
            eprintln!("sfgi: --on-alert: {MAX_HOOKS} already running, this alert's hook skipped");
            return;
        }
        let hooks = Arc::clone(&self.hooks);
        let timeout = self.opts.on_alert_timeout;
        let spawned = std::thread::Builder::new()
            .name("sfgi-on-alert".into())
            .spawn(move || {
                run_hook(&cmd, &json, timeout);
                hooks.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.hooks.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The directory bundles go to.
    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }
}

fn run_hook(cmd: &str, json: &str, timeout: Duration) {
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfgi: --on-alert: cannot run {cmd:?}: {e}");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input gets EPIPE: not an error of ours.
        let _ = stdin.write_all(json.as_bytes());
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                if !st.success() {
                    eprintln!("sfgi: --on-alert: {cmd:?} exited with {st}");
                }
                return;
            }
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "sfgi: --on-alert: {cmd:?} killed after {}",
                    humantime::format_duration(timeout)
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_bundles_and_finds_the_newest() {
        let dir = std::env::temp_dir().join(format!("sfgi-evidence-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ev = Evidence::new(EvidenceOptions {
            dir: dir.clone(),
            max_bundles: 2,
            max_bytes: 1 << 20,
            on_alert: None,
            on_alert_timeout: Duration::from_secs(1),
        })
        .expect("dir");
        for (ms, pid, g) in [(1, 10, "g-a"), (2, 11, "g-b"), (3, 10, "g-a")] {
            let b = dir.join(format!("{ms}-{pid}-{g}"));
            std::fs::create_dir_all(&b).expect("mkdir");
            std::fs::write(b.join("group.json"), "{}").expect("write");
        }
        std::fs::create_dir_all(dir.join("not-a-bundle")).expect("mkdir");
        ev.evict();
        assert!(!dir.join("1-10-g-a").exists(), "oldest kept");
        assert!(dir.join("2-11-g-b").exists() && dir.join("3-10-g-a").exists());
        assert_eq!(ev.find("g-a", None), Some(dir.join("3-10-g-a")));
        assert_eq!(ev.find("g-b", Some(11)), Some(dir.join("2-11-g-b")));
        assert_eq!(ev.find("g-b", Some(10)), None);
        // A byte cap below one bundle's size keeps none.
        let small = Evidence {
            opts: EvidenceOptions {
                max_bytes: 1,
                ..ev.opts.clone()
            },
            hooks: Arc::new(AtomicUsize::new(0)),
        };
        small.evict();
        assert!(small.bundles().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hook_gets_the_json_and_is_killed_after_the_timeout() {
        let out = std::env::temp_dir().join(format!("sfgi-hook-{}", std::process::id()));
        run_hook(
            &format!("cat > {}", out.display()),
            "{\"id\":1}",
            Duration::from_secs(5),
        );
        assert_eq!(
            std::fs::read_to_string(&out).expect("hook output"),
            "{\"id\":1}"
        );
        let _ = std::fs::remove_file(&out);
        let t0 = Instant::now();
        run_hook("sleep 30", "{}", Duration::from_millis(200));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
