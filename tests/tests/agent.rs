//! `sfgi agent` against real programs and real probes (root): two leaking Go targets — one in its
//! own PID + mount namespace, its binary on a tmpfs mounted only there, in a Kubernetes-style
//! cgroup (cgroup v1 `pids` hierarchy: `/kubepods/besteffort/pod<uid>/<64 hex>`) — plus a
//! non-Go process. Other Go processes may run on this machine: the agent's config includes only
//! the executables this test starts (`sfgi-agent-leaks-*`) and `sleep`, so the non-Go process is
//! excluded by discovery, not by the config.
use serde_json::Value;
use sfgi_tests::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UID: &str = "5f0c7d3e-1f2a-4b5c-8d9e-0f1a2b3c4d5e";
const CID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let len = if method == "POST" {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{len}\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn json(addr: SocketAddr, path: &str) -> Value {
    let (st, body) = http(addr, "GET", path);
    assert_eq!(st, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn wait<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out ({secs} s) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn target_pids(addr: SocketAddr) -> Vec<u64> {
    let mut v: Vec<u64> = json(addr, "/sfgi/targets")
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["pid"].as_u64()).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Removes what the test made on every path: cgroup dirs (deepest first), temp dir.
struct Cleanup {
    cgroups: Vec<PathBuf>,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for cg in self.cgroups.iter().rev() {
            // Members were killed above; a cgroup dir is removed with rmdir.
            for _ in 0..20 {
                if std::fs::remove_dir(cg).is_ok() || !cg.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("config");
    std::fs::rename(&tmp, path).expect("config rename");
}

/// The host PID of the only child of `pid`.
fn child_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn agent_traces_the_node() {
    require_root();
    let bin = build_program("leaks", NEWEST, false);
    let dir = std::env::temp_dir().join(format!("sfgi-agent-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ns-bin")).expect("mkdir");
    std::fs::create_dir_all(dir.join(format!("pods/team-a_web-7d9f_{UID}"))).expect("mkdir");
    std::fs::create_dir_all(dir.join("containers")).expect("mkdir");
    // The kubelet's link for B's container (a name only: its target is never read).
    std::os::unix::fs::symlink(
        format!("/var/log/pods/team-a_web-7d9f_{UID}/api/0.log"),
        dir.join(format!("containers/web-7d9f_team-a_api-{CID}.log")),
    )
    .expect("symlink");
    let mut clean = Cleanup {
        cgroups: Vec::new(),
        dir: dir.clone(),
        children: Vec::new(),
    };
    let host_bin = dir.join("sfgi-agent-leaks-a");
    std::fs::copy(&bin, &host_bin).expect("copy");
    let leak_args = [
        "chan-send",
        "-delay",
        "100ms",
        "-count",
        "1000",
        "-interval",
        "100ms",
    ];

    // Target A: on the host.
    let mut a = Target::start(&host_bin, &leak_args);

    // Target B: own PID + mount namespace, binary on a tmpfs only it sees, in a kubepods cgroup.
    let cg_root = Path::new("/sys/fs/cgroup/pids");
    let cg = cg_root.join(format!("kubepods/besteffort/pod{UID}/{CID}"));
    for p in [
        cg_root.join("kubepods"),
        cg_root.join("kubepods/besteffort"),
        cg_root.join(format!("kubepods/besteffort/pod{UID}")),
        cg.clone(),
    ] {
        if !p.exists() {
            std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
            clean.cgroups.push(p);
        }
    }
    let mnt = dir.join("ns-bin");
    let script = format!(
        "echo $$ > {procs} && mount -t tmpfs tmpfs {mnt} && cp {bin} {mnt}/sfgi-agent-leaks-b && exec {mnt}/sfgi-agent-leaks-b {args}",
        procs = cg.join("cgroup.procs").display(),
        mnt = mnt.display(),
        bin = bin.display(),
        args = leak_args.join(" "),
    );
    let unshare = Command::new("unshare")
        .args([
            "--pid",
            "--mount",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare");
    let unshare_pid = unshare.id();
    clean.children.push(unshare);
    let b_pid = wait("the namespaced target", 15, || {
        let c = child_of(unshare_pid)?;
        let exe = std::fs::read_link(format!("/proc/{c}/exe")).ok()?;
        exe.to_string_lossy()
            .contains("sfgi-agent-leaks-b")
            .then_some(c)
    });
    assert!(
        !mnt.join("sfgi-agent-leaks-b").exists(),
        "the namespaced binary must not exist on the host"
    );

    // A non-Go process the config would admit.
    let sleep = Command::new("sleep").arg("120").spawn().expect("sleep");
    let sleep_pid = sleep.id();
    clean.children.push(sleep);

    let config = dir.join("agent.toml");
    write_config(
        &config,
        "[[include]]\nexe = \"sfgi-agent-leaks-*\"\n[[include]]\nexe = \"sleep\"\n",
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let evidence = dir.join("evidence");
    let t0 = Instant::now();
    let agent = Command::new(sfgi_bin())
        .args([
            "agent",
            "--listen",
            &addr.to_string(),
            "--config",
            &config.to_string_lossy(),
            "--pods-dir",
            &dir.join("pods").to_string_lossy(),
            "--containers-dir",
            &dir.join("containers").to_string_lossy(),
            "--evidence-dir",
            &evidence.to_string_lossy(),
            "--on-alert",
            &format!("cat > {}/alert.json", dir.display()),
            "--interval",
            "200ms",
            "--threshold",
            "2s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sfgi agent");
    let agent_pid = agent.id();
    let agent_idx = clean.children.len();
    clean.children.push(agent);

    let (a_pid, b_pid) = (u64::from(a.pid()), u64::from(b_pid));
    // Both Go targets within 5 s of discovery (+ start-up), nothing else of ours.
    let pids = wait("both targets", 20, || {
        let p = std::panic::catch_unwind(|| target_pids(addr)).ok()?;
        (p.contains(&a_pid) && p.contains(&b_pid)).then_some(p)
    });
    assert!(
        !pids.contains(&u64::from(sleep_pid)),
        "sleep listed: {pids:?}"
    );
    assert!(
        !pids.contains(&u64::from(agent_pid)),
        "the agent lists itself"
    );
    assert_eq!(pids.len(), 2, "{pids:?}");
    eprintln!("both targets listed after {:?}", t0.elapsed());
    let targets = json(addr, "/sfgi/targets");
    let b = targets
        .as_array()
        .and_then(|a| a.iter().find(|t| t["pid"].as_u64() == Some(b_pid)))
        .expect("B")
        .clone();
    assert_eq!(b["container"], CID, "{b}");
    assert_eq!(b["pod_uid"], UID, "{b}");
    assert_eq!(b["namespace"], "team-a", "{b}");
    assert_eq!(b["pod"], "web-7d9f", "{b}");
    assert_eq!(b["container_name"], "api", "{b}");
    assert_eq!(b["ns_pid"], 1, "{b}");
    assert_eq!(b["exe"], "sfgi-agent-leaks-b", "{b}");
    assert!(
        b["go_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("go1.")),
        "{b}"
    );

    // Each one's leak, with its pid, in /sfgi/leaks and /metrics.
    wait("both leaks", 30, || {
        let l = json(addr, "/sfgi/leaks");
        let has = |pid| {
            l.as_array().is_some_and(|a| {
                a.iter().any(|g| {
                    g["pid"].as_u64() == Some(pid)
                        && g["blocked_at"]
                            .as_str()
                            .is_some_and(|s| s.contains("main.leakChanSend"))
                })
            })
        };
        (has(a_pid) && has(b_pid)).then_some(())
    });
    let only_b = json(addr, &format!("/sfgi/leaks?pid={b_pid}"));
    assert!(only_b.as_array().is_some_and(|a| !a.is_empty()
        && a.iter().all(|g| g["pid"].as_u64() == Some(b_pid)
            && g["container"] == CID
            && g["pod_uid"] == UID)));
    let (st, m) = http(addr, "GET", "/metrics");
    assert_eq!(st, 200);
    for pid in [a_pid, b_pid] {
        assert!(
            m.lines().any(|l| l.starts_with("sfgi_leaked_goroutines{")
                && l.contains(&format!("pid=\"{pid}\""))),
            "no sfgi_leaked_goroutines for {pid}:\n{m}"
        );
    }
    assert!(
        m.lines()
            .any(|l| l.starts_with("sfgi_leak_group_goroutines{")
                && l.contains(&format!("container=\"{CID}\""))
                && l.contains("namespace=\"team-a\"")
                && l.contains("blocking_site=\"main.leakChanSend at main.go:")),
        "{m}"
    );
    assert!(m.contains("sfgi_agent_targets{state=\"tracing\"} 2"), "{m}");
    assert!(m.contains("sfgi_agent_target_info{"), "{m}");
    assert_eq!(
        m.matches("# TYPE sfgi_process_resident_memory_bytes ")
            .count(),
        1
    );
    // --max-targets: a second agent allowed one target lists the other as refused.
    let port2 = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr2: SocketAddr = format!("127.0.0.1:{port2}").parse().expect("addr");
    let capped = Command::new(sfgi_bin())
        .args([
            "agent",
            "--max-targets",
            "1",
            "--listen",
            &addr2.to_string(),
            "--config",
        ])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("second agent");
    let capped_pid = capped.id();
    let capped_idx = clean.children.len();
    clean.children.push(capped);
    wait("one target refused", 20, || {
        let v = std::panic::catch_unwind(|| json(addr2, "/sfgi/targets")).ok()?;
        let a = v.as_array()?;
        let refused = a
            .iter()
            .filter(|t| {
                t["state"] == "failed"
                    && t["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("refused: --max-targets 1"))
            })
            .count();
        let tracing = a.iter().filter(|t| t["state"] == "tracing").count();
        (a.len() == 2 && refused == 1 && tracing == 1).then_some(())
    });
    assert!(signal(capped_pid, libc::SIGINT));
    let st2 = wait("the second agent to exit", 20, || {
        clean.children[capped_idx].try_wait().ok().flatten()
    });
    assert!(st2.success(), "second agent exited with {st2}");

    let (st, scan) = http(addr, "POST", &format!("/sfgi/trigger-scan?pid={a_pid}"));
    assert_eq!(st, 200, "{scan}");

    // Evidence at L3 (10 leaks/s is 600/min, over --fast-growth 60): a bundle that
    // `sfgi analyze` reads back, and the hook ran.
    let bundle = wait("an evidence bundle", 20, || {
        std::fs::read_dir(&evidence).ok()?.flatten().find_map(|e| {
            let p = e.path();
            (p.join("target.json").exists()).then_some(p)
        })
    });
    let group: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("group.json")).expect("group"))
            .expect("group json");
    assert!(
        matches!(group["severity"].as_str(), Some("L3" | "L4")),
        "{group}"
    );
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("target.json")).expect("t"))
            .expect("target json");
    assert!(info["rss_bytes"].as_u64().is_some_and(|r| r > 0), "{info}");
    let gid = group["id"].as_str().expect("id").to_string();
    let ev = json(addr, &format!("/sfgi/evidence/{gid}"));
    assert!(
        ev["goroutines"]
            .as_str()
            .is_some_and(|d| d.starts_with("goroutine ")),
        "{ev}"
    );
    let out = Command::new(sfgi_bin())
        .args([
            "analyze",
            "--format",
            "json",
            "--threshold",
            "1s",
            "--min-repeat",
            "1",
        ])
        .arg(bundle.join("goroutines.txt"))
        .output()
        .expect("sfgi analyze");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("analyze json");
    assert!(
        report["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["blocked_at"]
                .as_str()
                .is_some_and(|s| s.contains("main.leakChanSend")))),
        "{report}"
    );
    wait("the --on-alert hook", 10, || {
        dir.join("alert.json")
            .metadata()
            .ok()
            .filter(|m| m.len() > 0)
    });

    // An exited target is dropped and a new one picked up within 10 s.
    a.stop();
    let mut c = Target::start(&host_bin, &leak_args);
    let c_pid = u64::from(c.pid());
    let t1 = Instant::now();
    wait("A dropped and C picked up", 10, || {
        let p = target_pids(addr);
        (!p.contains(&a_pid) && p.contains(&c_pid)).then_some(())
    });
    eprintln!("exit + new target seen after {:?}", t1.elapsed());

    // A config reload changes what is attached: exclude B.
    write_config(
        &config,
        "[[include]]\nexe = \"sfgi-agent-leaks-*\"\n[[exclude]]\nnamespace = \"team-a\"\n",
    );
    wait("B let go after the reload", 10, || {
        let p = target_pids(addr);
        (!p.contains(&b_pid) && p.contains(&c_pid)).then_some(())
    });
    // A bad config keeps the old one.
    write_config(&config, "[[include]\n");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(target_pids(addr), vec![c_pid]);

    // SIGINT: exit 0, every probe detached. Other sfgi processes (other tests, other
    // worktrees) may hold programs of their own: only the IDs this agent held count.
    let mine = bpf_prog_ids_held(agent_pid);
    assert!(!mine.is_empty(), "the agent holds no BPF programs");
    assert!(signal(agent_pid, libc::SIGINT));
    let status = wait("the agent to exit", 20, || {
        clean.children[agent_idx].try_wait().ok().flatten()
    });
    assert!(status.success(), "agent exited with {status}");
    let out = Command::new(sfgi_gotool::tools::require("bpftool"))
        .args(["-j", "prog", "show"])
        .output()
        .expect("bpftool");
    let progs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let left: Vec<u64> = progs
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["id"].as_u64())
                .filter(|id| mine.contains(id))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "programs of the agent left loaded: {left:?}"
    );
    c.stop();
    eprintln!("agent test took {:?}", t0.elapsed());
}
