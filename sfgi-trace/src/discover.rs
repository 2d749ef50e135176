//! Finding the Go processes of a node (for `sfgi agent`) and what container each one is in.
//!
//! Everything here reads `/proc` (through [`crate::procfs`]'s conventions) and nothing else but
//! the names in the kubelet's log directories, `/var/log/pods` and `/var/log/containers` (see
//! [`PodDirectory`]):
//!
//! - [`Scanner`] lists the processes and recognises a Go program by reading `.go.buildinfo`
//!   through `/proc/PID/exe` — never the path the process was started from, which may exist only
//!   in the process's own mount namespace. What it read is cached per executable (device,
//!   inode), so a scan of a node whose processes did not change reads no executable at all.
//! - [`parse_cgroup`] turns `/proc/PID/cgroup` (v1 and v2) into a container id and a
//!   Kubernetes pod UID: docker (`/docker/<id>`, `docker-<id>.scope`), containerd
//!   (`cri-containerd-<id>.scope`, `/kubepods/<qos>/pod<uid>/<id>`), CRI-O (`crio-<id>.scope`),
//!   other systemd `….scope` units and the `kubepods-<qos>-pod<uid>.slice` form.
//! - [`ns_pid`] is the PID inside the process's own PID namespace (`NSpid`, last field).
use crate::procfs;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a process is: container and pod, as far as its cgroup says.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    /// Container id (the 64-hex id for docker/containerd/CRI-O), `None` outside containers.
    pub container: Option<String>,
    /// Kubernetes pod UID (dashes, as the API shows it), `None` outside pods.
    pub pod_uid: Option<String>,
    /// The cgroup path the ids were read from (the v2 one, else the first v1 one that names a
    /// container).
    pub cgroup: String,
}

/// Whether `s` is a container id: 12 to 64 hex digits.
fn is_container_id(s: &str) -> bool {
    (12..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A pod UID from the text after `pod` (`0b0c…-…` or, in systemd slice names, with `_`).
fn pod_uid(s: &str) -> Option<String> {
    let uid = s.strip_suffix(".slice").unwrap_or(s).replace('_', "-");
    (uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(uid)
}

/// Container id and pod UID from one cgroup path (`/kubepods.slice/…/cri-containerd-<id>.scope`).
fn parse_path(path: &str) -> (Option<String>, Option<String>) {
    let mut container = None;
    let mut pod = None;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        // kubepods-burstable-pod<uid>.slice, kubepods-pod<uid>.slice, pod<uid>
        if let Some(i) = comp.rfind("pod") {
            let rest = &comp[i + 3..];
            if comp.starts_with("pod") || comp.starts_with("kubepods") {
                if let Some(u) = pod_uid(rest) {
                    pod = Some(u);
                    continue;
                }
            }
        }
        // <runtime>-<id>.scope (docker-, cri-containerd-, crio-, libpod-, …)
        if let Some(unit) = comp.strip_suffix(".scope") {
            if let Some((_, id)) = unit.rsplit_once('-') {
                if is_container_id(id) && id.len() == 64 {
                    container = Some(id.to_string());
                    continue;
                }
            }
        }
        // crio-conmon-<id> is the monitor, not the container; a bare 64-hex component is one
        // (`/docker/<id>`, `/kubepods/besteffort/pod<uid>/<id>`).
        if comp.len() == 64 && is_container_id(comp) {
            container = Some(comp.to_string());
        }
    }
    (container, pod)
}

/// Parses the text of `/proc/PID/cgroup` (v2 `0::/path` and v1 `N:controllers:/path` lines).
pub fn parse_cgroup(text: &str) -> Placement {
    let mut best = Placement::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(_ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (container, pod_uid) = parse_path(path);
        let v2 = id == "0";
        // The v2 line wins; otherwise the first v1 line that names something.
        let better = (v2 && (container.is_some() || pod_uid.is_some() || best.cgroup.is_empty()))
            || (best.container.is_none() && best.pod_uid.is_none() && container.is_some())
            || best.cgroup.is_empty();
        if better {
            best = Placement {
                container,
                pod_uid,
                cgroup: path.to_string(),
            };
        }
    }
    best
}

/// The placement of `pid` (empty if its cgroup cannot be read).
pub fn placement(pid: u32) -> Placement {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map(|t| parse_cgroup(&t))
        .unwrap_or_default()
}

/// The PID of `pid` inside its own (innermost) PID namespace: the last field of `NSpid`.
pub fn ns_pid(pid: u32) -> Option<u32> {
    procfs::status_field(Some(pid), "NSpid")?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// The cgroup memory limit of `pid`, bytes: v2 `memory.max` of its cgroup (walking up to the
/// first limited ancestor), else v1 `memory.limit_in_bytes`. `None`: unlimited or unreadable.
pub fn memory_limit(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut v1_memory = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" {
            v2 = Some(path.to_string());
        } else if ctrl.split(',').any(|c| c == "memory") {
            v1_memory = Some(path.to_string());
        }
    }
    let read = |file: PathBuf| -> Option<u64> {
        let v = std::fs::read_to_string(file).ok()?;
        let v = v.trim();
        // v1 reports "unlimited" as a huge page-rounded number.
        v.parse::<u64>().ok().filter(|&n| n < (1 << 62))
    };
    if let Some(p) = v2 {
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let mut dir = Path::new(root).join(p.trim_start_matches('/'));
            loop {
                let f = dir.join("memory.max");
                if f.exists() {
                    if let Some(n) = read(f) {
                        return Some(n);
                    }
                }
                if dir == Path::new(root) || !dir.pop() {
                    break;
                }
            }
        }
    }
    let p = v1_memory?;
    read(
        Path::new("/sys/fs/cgroup/memory")
            .join(p.trim_start_matches('/'))
            .join("memory.limit_in_bytes"),
    )
}

/// Pod namespaces and names, and container names, from the names in the kubelet's log
/// directories, on every node (mount both read-only into the agent's pod; no file is opened, no
/// link followed, no API server asked):
/// - `/var/log/pods` holds one directory per pod, `<namespace>_<pod name>_<pod UID>`;
/// - `/var/log/containers` one link per container, `<pod name>_<namespace>_<container name>-<container
///   id>.log`.
#[derive(Clone, Debug, Default)]
pub struct PodDirectory {
    /// UID → (namespace, name).
    pods: HashMap<String, (String, String)>,
    /// Container id → container name.
    containers: HashMap<String, String>,
}

impl PodDirectory {
    /// Reads the names in `pods_dir` and `containers_dir` (missing or unreadable: none).
    pub fn read(pods_dir: &Path, containers_dir: &Path) -> PodDirectory {
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let pods = names(pods_dir)
            .iter()
            .filter_map(|n| parse_pod_dir(n))
            .map(|(uid, ns, pod)| (uid, (ns, pod)))
            .collect();
        let containers = names(containers_dir)
            .iter()
            .filter_map(|n| parse_container_log(n))
            .map(|c| (c.id, c.name))
            .collect();
        PodDirectory { pods, containers }
    }

    /// `(namespace, pod name)` of the pod with `uid`.
    pub fn lookup(&self, uid: &str) -> Option<(&str, &str)> {
        self.pods.get(uid).map(|(n, p)| (n.as_str(), p.as_str()))
    }

    /// The name of the container with id `id` (its pod spec's `containers[].name`).
    pub fn container_name(&self, id: &str) -> Option<&str> {
        self.containers.get(id).map(String::as_str)
    }
}

/// One `/var/log/containers` entry's name, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLog {
    /// Pod name.
    pub pod: String,
    /// Pod namespace.
    pub namespace: String,
    /// Container name.
    pub name: String,
    /// Container id (64 hex digits).
    pub id: String,
}

/// `<pod>_<namespace>_<container>-<64 hex id>.log` → its parts. Pod, namespace and container
/// names are DNS labels or subdomains: no `_`; a container name may hold `-`, the id never.
pub fn parse_container_log(name: &str) -> Option<ContainerLog> {
    let stem = name.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    if id.len() != 64 || !is_container_id(id) {
        return None;
    }
    let mut it = rest.splitn(3, '_');
    let (pod, namespace, container) = (it.next()?, it.next()?, it.next()?);
    if pod.is_empty() || namespace.is_empty() || container.is_empty() || container.contains('_') {
        return None;
    }
    Some(ContainerLog {
        pod: pod.into(),
        namespace: namespace.into(),
        name: container.into(),
        id: id.into(),
    })
}

/// `<namespace>_<pod>_<uid>` → (uid, namespace, pod). Namespaces and pod names cannot hold `_`.
pub fn parse_pod_dir(name: &str) -> Option<(String, String, String)> {
    let mut it = name.splitn(3, '_');
    let (ns, pod, uid) = (it.next()?, it.next()?, it.next()?);
    (!ns.is_empty() && !pod.is_empty() && pod_uid(uid).is_some())
        .then(|| (uid.to_string(), ns.to_string(), pod.to_string()))
}

/// A process that runs a Go program.
#[derive(Clone, Debug)]
pub struct GoProcess {
    /// Host PID.
    pub pid: u32,
    /// Start time (ticks after boot): with the PID, the process's identity.
    pub start_time: u64,
    /// The executable's file name (as `/proc/PID/exe` names it; may not exist on the host).
    pub exe: String,
    /// The runtime version (`go1.27.3`).
    pub go_version: String,
}

/// What the scanner learned about one executable.
#[derive(Clone, Debug)]
enum Exe {
    /// A Go 1.21+ program, its version.
    Go(String),
    /// Anything else (not ELF, no build info, an older Go, unreadable).
    Other,
}

/// Lists the Go processes of the node, cheaply: each executable (device, inode) is read once.
#[derive(Debug, Default)]
pub struct Scanner {
    exes: HashMap<(u64, u64), Exe>,
}

/// The executable file names never traced: SFGI itself.
const SELF_NAMES: [&str; 1] = ["sfgi"];

impl Scanner {
    /// A scanner that has read nothing yet.
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// The Go 1.21+ processes now, by PID, this process and other SFGI processes excluded.
    /// Kernel threads, zombies and processes whose executable cannot be read are skipped.
    pub fn scan(&mut self) -> Vec<GoProcess> {
        let me = std::process::id();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let exe_link = PathBuf::from(format!("/proc/{pid}/exe"));
            // Kernel threads have no exe; a process we may not read is skipped.
            let Ok(md) = std::fs::metadata(&exe_link) else {
                continue;
            };
            let key = (md.dev(), md.ino());
            seen.insert(key);
            let exe_name = std::fs::read_link(&exe_link)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            let exe_name = exe_name
                .strip_suffix(" (deleted)")
                .map(str::to_string)
                .unwrap_or(exe_name);
            if SELF_NAMES.contains(&exe_name.as_str()) {
                continue;
            }
            let kind = self
                .exes
                .entry(key)
                .or_insert_with(|| match sfgi_goexe::read_build_info(&exe_link) {
                    Ok(Some(bi)) if bi.version.major == 1 && bi.version.minor >= 21 => {
                        Exe::Go(bi.go_version)
                    }
                    Ok(Some(bi)) if bi.version.major > 1 => Exe::Go(bi.go_version),
                    _ => Exe::Other,
                })
                .clone();
            let Exe::Go(go_version) = kind else {
                continue;
            };
            if !procfs::process_alive(pid) {
                continue;
            }
            let Some(start_time) = procfs::start_time(pid) else {
                continue;
            };
            out.push(GoProcess {
                pid,
                start_time,
                exe: exe_name,
                go_version,
            });
        }
        // Forget executables no process runs any more (bounded memory on a churning node).
        self.exes.retain(|k, _| seen.contains(k));
        out.sort_unstable_by_key(|p| p.pid);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2ab8b3c5d14d9c9e1f0a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f809";
    const UID: &str = "0b0c7d3e-1f2a-4b5c-8d9e-0f1a2b3c4d5e";

    fn one(line: &str) -> Placement {
        parse_cgroup(line)
    }

    #[test]
    fn docker_v1_and_v2() {
        let p = one(&format!(
            "12:memory:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n0::/docker/{ID}\n"
        ));
        assert_eq!(p.container.as_deref(), Some(ID));
        assert_eq!(p.pod_uid, None);
        let p = one(&format!("0::/system.slice/docker-{ID}.scope\n"));
        assert_eq!(p.container.as_deref(), Some(ID));
    }

    #[test]
    fn containerd_systemd_kubepods() {
        let uid_ = UID.replace('-', "_");
        let p = one(&format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
        ));
        assert_eq!(p.container.as_deref(), Some(ID));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
        // Guaranteed QoS: no QoS slice.
        let p = one(&format!(
            "0::/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
        ));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
        assert_eq!(p.container.as_deref(), Some(ID));
    }

    #[test]
    fn crio_scope() {
        let uid_ = UID.replace('-', "_");
        let p = one(&format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope\n"
        ));
        assert_eq!(p.container.as_deref(), Some(ID));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn plain_kubepods_cgroupfs_v1() {
        let p = one(&format!(
            "11:memory:/kubepods/burstable/pod{UID}/{ID}\n10:pids:/kubepods/burstable/pod{UID}/{ID}\n1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n"
        ));
        assert_eq!(p.container.as_deref(), Some(ID));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
        // Guaranteed: /kubepods/pod<uid>/<id>
        let p = one(&format!("0::/kubepods/pod{UID}/{ID}\n"));
        assert_eq!(p.pod_uid.as_deref(), Some(UID));
        assert_eq!(p.container.as_deref(), Some(ID));
    }

    #[test]
    fn other_systemd_scopes_and_hosts() {
        // A systemd session scope is not a container.
        let p = one("0::/user.slice/user-0.slice/session-3.scope\n");
        assert_eq!(p.container, None);
        assert_eq!(p.pod_uid, None);
        assert_eq!(p.cgroup, "/user.slice/user-0.slice/session-3.scope");
        // libpod (podman) scopes name the container too.
        let p = one(&format!("0::/machine.slice/libpod-{ID}.scope\n"));
        assert_eq!(p.container.as_deref(), Some(ID));
        // Hybrid hierarchy: v1 lines name the container, the v2 line is the init scope.
        let p = one(&format!("4:memory:/docker/{ID}\n0::/init.scope\n"));
        assert_eq!(p.container.as_deref(), Some(ID));
        // Garbage never panics.
        for t in [
            "",
            ":",
            "x",
            "0::",
            "1:a",
            "::::",
            "0::/kubepods/pod/",
            "\u{0}",
        ] {
            let _ = parse_cgroup(t);
        }
    }

    #[test]
    fn pod_log_directories() {
        assert_eq!(
            parse_pod_dir(&format!("default_web-7d9f_{UID}")),
            Some((UID.to_string(), "default".into(), "web-7d9f".into()))
        );
        assert_eq!(parse_pod_dir("default_web"), None);
        assert_eq!(parse_pod_dir("a_b_notauid"), None);
    }

    #[test]
    fn container_log_links() {
        let id = "3f2ab8b3c5d1e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e";
        assert_eq!(
            parse_container_log(&format!("web-7d9f_team-a_istio-proxy-{id}.log")),
            Some(ContainerLog {
                pod: "web-7d9f".into(),
                namespace: "team-a".into(),
                name: "istio-proxy".into(),
                id: id.into(),
            })
        );
        assert_eq!(parse_container_log(&format!("web_ns_app-{id}")), None);
        assert_eq!(parse_container_log("web_ns_app-3f2ab8b3c5d1.log"), None);
        assert_eq!(parse_container_log(&format!("web_app-{id}.log")), None);
        let dir = std::env::temp_dir().join(format!("sfgi-pod-dir-{}", std::process::id()));
        let (pods, containers) = (dir.join("pods"), dir.join("containers"));
        std::fs::create_dir_all(pods.join(format!("team-a_web-7d9f_{UID}"))).unwrap();
        std::fs::create_dir_all(&containers).unwrap();
        std::fs::write(containers.join(format!("web-7d9f_team-a_app-{id}.log")), "").unwrap();
        std::fs::write(containers.join("not-a-container.log"), "").unwrap();
        let d = PodDirectory::read(&pods, &containers);
        assert_eq!(d.lookup(UID), Some(("team-a", "web-7d9f")));
        assert_eq!(d.container_name(id), Some("app"));
        assert_eq!(d.container_name(&id.replace('3', "4")), None);
        let none = PodDirectory::read(&dir.join("missing"), &dir.join("missing"));
        assert_eq!(none.lookup(UID), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scanner_skips_itself_and_sees_no_go_in_sleep() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let mut s = Scanner::new();
        let found = s.scan();
        assert!(!found.iter().any(|p| p.pid == std::process::id()));
        assert!(!found.iter().any(|p| p.pid == child.id()));
        // A second scan reads no new executable for the same processes.
        let n = s.exes.len();
        let _ = s.scan();
        assert!(s.exes.len() <= n + 2);
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn own_ns_pid() {
        assert!(ns_pid(std::process::id()).is_some());
    }
}
