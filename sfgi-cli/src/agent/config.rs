//! The agent's configuration file (TOML): which processes to trace and with which judge settings.
//!
//! ```toml
//! # No [[include]]: every Go process. Several: any of them (each one's fields all match).
//! [[include]]
//! namespace = "payments"        # Kubernetes namespace (from /var/log/pods), glob
//! [[include]]
//! exe = "api-*"                 # executable file name, glob
//!
//! [[exclude]]                   # wins over include
//! pod = "*-canary-*"
//!
//! [[settings]]                  # judge settings, first match wins (else the command line's)
//! match = { namespace = "payments" }
//! threshold = "2m"
//! min_repeat = 3
//! fast_growth = 30.0
//! avalanche = 1000.0
//! rules = ["/etc/sfgi/rules.toml"]
//! ```
//!
//! Selector fields (all optional, all must match): `exe`, `container` (id; a glob, so a 12-digit
//! prefix works as `3f2ab8b3c5d1*`), `container_name` (from /var/log/containers), `namespace`,
//! `pod`, `pod_uid`. Globs: `*` and `?`. Pod labels are not offered: they are known only to the
//! API server (or the kubelet's authenticated API), which the agent does not call.
use anyhow::{bail, Context, Result};
use sfgi_engine::judge::JudgeConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a selector is matched against.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Executable file name.
    pub exe: String,
    /// Container id.
    pub container: Option<String>,
    /// Container name.
    pub container_name: Option<String>,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Pod name.
    pub pod: Option<String>,
    /// Pod UID.
    pub pod_uid: Option<String>,
}

/// A set of conditions on a process.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Executable file name glob.
    pub exe: Option<String>,
    /// Container id glob.
    pub container: Option<String>,
    /// Container name glob (the pod spec's `containers[].name`).
    pub container_name: Option<String>,
    /// Kubernetes namespace glob.
    pub namespace: Option<String>,
    /// Pod name glob.
    pub pod: Option<String>,
    /// Pod UID glob.
    pub pod_uid: Option<String>,
}

/// `*` and `?` glob match.
pub fn glob(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Selector {
    /// Whether `f` meets every condition (a condition on a missing fact fails).
    pub fn matches(&self, f: &Facts) -> bool {
        let one = |pat: &Option<String>, v: Option<&str>| match pat {
            None => true,
            Some(p) => v.is_some_and(|v| glob(p, v)),
        };
        one(&self.exe, Some(&f.exe))
            && one(&self.container, f.container.as_deref())
            && one(&self.container_name, f.container_name.as_deref())
            && one(&self.namespace, f.namespace.as_deref())
            && one(&self.pod, f.pod.as_deref())
            && one(&self.pod_uid, f.pod_uid.as_deref())
    }
}

/// Judge settings for the processes a selector matches.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Which processes.
    #[serde(rename = "match", default)]
    pub selector: Selector,
    /// `--threshold` (`2m`, `30s`).
    pub threshold: Option<String>,
    /// `--min-repeat`.
    pub min_repeat: Option<usize>,
    /// `--fast-growth` (per minute).
    pub fast_growth: Option<f64>,
    /// `--avalanche` (per minute).
    pub avalanche: Option<f64>,
    /// `--rules` files.
    pub rules: Option<Vec<PathBuf>>,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Trace only processes matching one of these (none: all).
    #[serde(default)]
    pub include: Vec<Selector>,
    /// Never trace processes matching one of these.
    #[serde(default)]
    pub exclude: Vec<Selector>,
    /// Per-selector judge settings, first match wins.
    #[serde(default)]
    pub settings: Vec<Settings>,
}

/// The judge and rules a target gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    /// Judge thresholds.
    pub judge: JudgeConfig,
    /// Rules files.
    pub rules: Vec<PathBuf>,
}

impl Config {
    /// Parses and checks `text` (durations, globs, rules files).
    pub fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).map_err(|e| {
            // toml's message spans lines; one line is wanted.
            anyhow::anyhow!(
                "{}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })?;
        for s in &c.settings {
            if let Some(t) = &s.threshold {
                humantime::parse_duration(t)
                    .with_context(|| format!("settings: bad threshold {t:?}"))?;
            }
            if let Some(rules) = &s.rules {
                sfgi_engine::classify::Classifier::with_user_rules(rules)
                    .context("settings: rules")?;
            }
            if s.min_repeat == Some(0) {
                bail!("settings: min_repeat must be at least 1");
            }
        }
        Ok(c)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Whether a process with these facts is to be traced.
    pub fn selects(&self, f: &Facts) -> bool {
        (self.include.is_empty() || self.include.iter().any(|s| s.matches(f)))
            && !self.exclude.iter().any(|s| s.matches(f))
    }

    /// The settings for `f`: the first matching `[[settings]]` over `base`.
    pub fn effective(&self, f: &Facts, base: &JudgeConfig, base_rules: &[PathBuf]) -> Effective {
        let mut e = Effective {
            judge: base.clone(),
            rules: base_rules.to_vec(),
        };
        if let Some(s) = self.settings.iter().find(|s| s.selector.matches(f)) {
            if let Some(t) = s
                .threshold
                .as_deref()
                .and_then(|t| humantime::parse_duration(t).ok())
            {
                e.judge.threshold = t;
            }
            if let Some(n) = s.min_repeat {
                e.judge.min_repeat = n;
            }
            if let Some(g) = s.fast_growth {
                e.judge.fast_growth_per_min = g;
            }
            if let Some(a) = s.avalanche {
                e.judge.avalanche_per_min = a;
            }
            if let Some(r) = &s.rules {
                e.rules = r.clone();
            }
        }
        e
    }
}

/// What identifies the file's current version: the resolved path (a ConfigMap update swaps the
/// `..data` symlink, so the resolved path changes), its modification time, length and inode.
type Version = (PathBuf, Option<SystemTime>, u64, u64);

/// A config file watched for changes (polled).
pub struct Watched {
    path: PathBuf,
    version: Option<Version>,
    /// The config in force.
    pub config: Config,
}

fn version(path: &Path) -> Option<Version> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path).ok()?;
    let md = std::fs::metadata(&real).ok()?;
    Some((real, md.modified().ok(), md.len(), md.ino()))
}

impl Watched {
    /// Loads `path`; an error is the start's one-line error.
    pub fn open(path: &Path) -> Result<Watched> {
        let version = version(path);
        let config = Config::load(path)?;
        Ok(Watched {
            path: path.to_path_buf(),
            version,
            config,
        })
    }

    /// Reloads when the file changed: `Ok(true)` when a new config is in force, `Err` (one line)
    /// when the new version is bad (the old one stays in force; the same bad version is not
    /// reported again).
    pub fn reload(&mut self) -> Result<bool> {
        let v = version(&self.path);
        if v == self.version {
            return Ok(false);
        }
        self.version = v;
        let c = Config::load(&self.path)?;
        let changed = c != self.config;
        self.config = c;
        Ok(changed)
    }
}

/// How long an unchanged config is not re-checked (the agent checks at every discovery tick).
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("leaks*", "leaks"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(glob("*-canary-*", "web-canary-1"));
        assert!(!glob("leaks", "leaks2"));
        assert!(!glob("a*b", "acd"));
    }

    #[test]
    fn selects_and_settings() {
        let c = Config::parse(
            r#"
[[include]]
exe = "leaks*"
[[include]]
namespace = "payments"
[[exclude]]
pod = "*-canary-*"
[[exclude]]
container_name = "istio-*"
[[settings]]
match = { namespace = "payments" }
threshold = "2m"
min_repeat = 5
"#,
        )
        .expect("config");
        let mut f = Facts {
            exe: "leaks".into(),
            ..Facts::default()
        };
        assert!(c.selects(&f));
        f.exe = "other".into();
        assert!(!c.selects(&f));
        f.namespace = Some("payments".into());
        assert!(c.selects(&f));
        f.pod = Some("api-canary-1".into());
        assert!(!c.selects(&f));
        let base = JudgeConfig::default();
        let e = c.effective(&f, &base, &[]);
        assert_eq!(e.judge.threshold, Duration::from_secs(120));
        assert_eq!(e.judge.min_repeat, 5);
        f.namespace = None;
        assert_eq!(c.effective(&f, &base, &[]).judge, base);
        // A sidecar of a selected pod is left out by its container name.
        f.exe = "leaks".into();
        f.pod = Some("api-1".into());
        assert!(c.selects(&f));
        f.container_name = Some("istio-proxy".into());
        assert!(!c.selects(&f));
    }

    #[test]
    fn bad_configs_are_one_line_errors() {
        for bad in [
            "include = 3",
            "[[include]]\nexe = 1",
            "[[include]]\nbogus = \"x\"",
            "[[settings]]\nthreshold = \"soon\"",
            "[[settings]]\nmin_repeat = 0",
            "[[settings]]\nrules = [\"/nonexistent/rules.toml\"]",
            "[[[",
        ] {
            let e = Config::parse(bad).expect_err(bad);
            let msg = format!("{e:#}");
            assert!(!msg.contains('\n'), "{bad}: {msg}");
        }
        assert_eq!(Config::parse("").expect("empty"), Config::default());
    }

    #[test]
    fn reload_follows_a_swapped_symlink() {
        let dir = std::env::temp_dir().join(format!("sfgi-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("v1")).expect("mkdir");
        std::fs::create_dir_all(dir.join("v2")).expect("mkdir");
        std::fs::write(dir.join("v1/agent.toml"), "[[include]]\nexe = \"a\"\n").expect("w");
        std::fs::write(dir.join("v2/agent.toml"), "[[include]]\nexe = \"b\"\n").expect("w");
        std::fs::write(dir.join("v3-bad"), "").expect("w");
        // The ConfigMap layout: agent.toml -> ..data/agent.toml, ..data -> v1.
        std::os::unix::fs::symlink("v1", dir.join("..data")).expect("ln");
        std::os::unix::fs::symlink("..data/agent.toml", dir.join("agent.toml")).expect("ln");
        let mut w = Watched::open(&dir.join("agent.toml")).expect("open");
        assert_eq!(w.config.include[0].exe.as_deref(), Some("a"));
        assert!(!w.reload().expect("same"));
        std::os::unix::fs::symlink("v2", dir.join("..data_tmp")).expect("ln");
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
        assert!(w.reload().expect("swapped"));
        assert_eq!(w.config.include[0].exe.as_deref(), Some("b"));
        // A bad version keeps the old config.
        std::fs::write(dir.join("v2/agent.toml"), "[[include]\n").expect("w");
        assert!(w.reload().is_err());
        assert_eq!(w.config.include[0].exe.as_deref(), Some("b"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
