//! The process SFGI attaches to: its executable, Go binary facts and load address.
pub use crate::procfs::process_alive;
use crate::procfs::{effective_caps, kernel_release};
use sfgi_goexe::{GoBinary, GoExeError};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Analysed binaries by executable (device, inode): the agent's targets that run one program
/// share one [`GoBinary`] (its file data and tables) instead of reading it once each.
#[derive(Default)]
pub struct BinaryCache {
    by_file: Mutex<HashMap<(u64, u64), Weak<GoBinary>>>,
}

impl BinaryCache {
    /// The binary at `exe` (a `/proc/PID/exe` link), read unless a live target has it already.
    fn open(&self, exe: &Path) -> Result<Arc<GoBinary>, GoExeError> {
        let md = std::fs::metadata(exe)?;
        let key = (md.dev(), md.ino());
        let mut m = self.by_file.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, w| w.strong_count() > 0);
        if let Some(b) = m.get(&key).and_then(Weak::upgrade) {
            return Ok(b);
        }
        let b = Arc::new(GoBinary::open(exe)?);
        m.insert(key, Arc::downgrade(&b));
        Ok(b)
    }
}

/// Why a PID cannot be a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// No such process.
    #[error("no process with PID {0}")]
    NoProcess(u32),
    /// The process exists but its executable cannot be read.
    #[error("cannot read the executable of PID {pid}: {why}")]
    Exe {
        /// The PID.
        pid: u32,
        /// The OS error.
        why: String,
    },
    /// The executable is not a Go program SFGI can read.
    // (`why`, not `source`: a `source` field would also be the error's cause, and the one-line
    // error chain would print the reader's message twice.)
    #[error("PID {pid} ({exe}) is not a Go program SFGI can trace: {why}")]
    NotGo {
        /// The PID.
        pid: u32,
        /// Its executable.
        exe: String,
        /// What the binary reader said.
        why: GoExeError,
    },
}

/// A running Go process.
pub struct Target {
    /// The PID.
    pub pid: u32,
    /// Path the executable had when started (`/proc/PID/exe` link text).
    pub exe_display: PathBuf,
    /// Path to attach probes through: `/proc/PID/exe` (works across mount namespaces and for
    /// deleted or replaced binaries).
    pub exe_path: PathBuf,
    /// The analysed binary (shared by the targets that run the same executable, see
    /// [`BinaryCache`]).
    pub binary: Arc<GoBinary>,
    /// Runtime address minus link-time address of the executable's code (non-zero for PIE).
    pub load_bias: u64,
}

impl Target {
    /// Opens process `pid` as a target.
    pub fn open(pid: u32) -> Result<Target, TargetError> {
        Self::open_with(pid, None)
    }

    /// Opens process `pid` as a target, taking its binary from `cache` when another target
    /// runs the same executable.
    pub fn open_with(pid: u32, cache: Option<&BinaryCache>) -> Result<Target, TargetError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if pid == 0 || !proc_dir.exists() {
            return Err(TargetError::NoProcess(pid));
        }
        let exe_path = proc_dir.join("exe");
        let exe_display = std::fs::read_link(&exe_path).map_err(|e| {
            // Gone, or a zombie (its exe link is gone before its /proc directory is).
            if e.kind() == std::io::ErrorKind::NotFound && !process_alive(pid) {
                TargetError::NoProcess(pid)
            } else {
                TargetError::Exe {
                    pid,
                    why: exe_error(&e),
                }
            }
        })?;
        let binary = match cache {
            Some(c) => c.open(&exe_path),
            None => GoBinary::open(&exe_path).map(Arc::new),
        };
        let binary = binary.map_err(|why| {
            if process_alive(pid) {
                TargetError::NotGo {
                    pid,
                    exe: exe_display.display().to_string(),
                    why,
                }
            } else {
                TargetError::NoProcess(pid)
            }
        })?;
        let load_bias = if binary.is_pie() {
            load_bias(pid, &exe_display, &binary).unwrap_or(0)
        } else {
            0
        };
        Ok(Target {
            pid,
            exe_display,
            exe_path,
            binary,
            load_bias,
        })
    }

    /// Whether the process still exists (and is not a zombie).
    pub fn alive(&self) -> bool {
        process_alive(self.pid)
    }
}

/// An OS error reading `/proc/PID/exe`, with what to do about a permission problem.
pub fn exe_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        format!("{e}: another user's process needs root or CAP_SYS_PTRACE")
    } else {
        e.to_string()
    }
}

/// For a PIE executable: runtime address minus link-time address, from where the mapping that
/// holds `runtime.main`'s code was placed.
fn load_bias(pid: u32, exe: &Path, bin: &GoBinary) -> Option<u64> {
    let anchor = bin.func_by_name("runtime.main")?.entry;
    let anchor_off = bin.file_offset(anchor)?;
    let maps = crate::procfs::maps(pid)?;
    let exe = exe.to_str()?;
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let (Some(range), Some(_perms), Some(offset)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let path = it.skip(2).collect::<Vec<_>>().join(" ");
        if path != exe {
            continue;
        }
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi), Ok(offset)) = (
            u64::from_str_radix(lo, 16),
            u64::from_str_radix(hi, 16),
            u64::from_str_radix(offset, 16),
        ) else {
            continue;
        };
        if anchor_off >= offset && anchor_off < offset + (hi - lo) {
            return Some((lo + (anchor_off - offset)).wrapping_sub(anchor));
        }
    }
    None
}

/// Capability numbers (`linux/capability.h`).
const CAP_SYS_PTRACE: u32 = 19;
pub(crate) const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What this host and process offer SFGI, read once before attaching (see [`check_host`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSupport {
    /// Effective capabilities of this process (bit n = capability n).
    pub cap_eff: u64,
    /// `/sys/kernel/btf/vmlinux` exists.
    pub btf: bool,
    /// Whether a BPF ring buffer could be created (not tried without the privileges).
    pub ringbuf: Option<Result<(), String>>,
    /// `uname -r`.
    pub kernel: String,
}

impl HostSupport {
    /// Reads the real host. Test hook (only in builds with the `test-hooks` feature):
    /// `SFGI_TEST_HOST` (comma-separated `no-caps`, `no-btf`, `no-ringbuf`) makes SFGI believe
    /// the host lacks those, so the refusals can be tested on a kernel that has everything.
    pub fn probe() -> HostSupport {
        #[cfg(feature = "test-hooks")]
        let fake = std::env::var("SFGI_TEST_HOST").unwrap_or_default();
        #[cfg(not(feature = "test-hooks"))]
        let fake = String::new();
        let fake: Vec<&str> = fake.split(',').map(str::trim).collect();
        let cap_eff = if fake.contains(&"no-caps") {
            0
        } else {
            effective_caps()
        };
        let btf = !fake.contains(&"no-btf") && Path::new("/sys/kernel/btf/vmlinux").exists();
        let ringbuf = if !has_bpf_caps(cap_eff) {
            None
        } else if fake.contains(&"no-ringbuf") {
            Some(Err(
                "BPF_MAP_TYPE_RINGBUF: Invalid argument (os error 22)".into()
            ))
        } else {
            Some(ringbuf_supported())
        };
        HostSupport {
            cap_eff,
            btf,
            ringbuf,
            kernel: kernel_release(),
        }
    }
}

pub(crate) fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

fn has_bpf_caps(caps: u64) -> bool {
    has_cap(caps, CAP_SYS_ADMIN) || (has_cap(caps, CAP_BPF) && has_cap(caps, CAP_PERFMON))
}

/// Why `attach --pid`, `watch --pid` and `agent` refuse on a machine other than amd64: the
/// eBPF probes read amd64 registers (`r14` = g, `rax`/`rbx` arguments, `rbp`/`rsp`/`rip`) and
/// the globals are found by decoding amd64 code. An arm64 build carries no eBPF object.
pub const AMD64_ONLY: &str = "eBPF attach is amd64-only for now (the probes read amd64 \
     registers; this sfgi is built for another machine): use `sfgi attach --pprof URL` or \
     `sfgi analyze DUMP`";

/// Whether SFGI can attach on `host`: `Err` is the one-line reason it cannot. First of all
/// the machine: anything but amd64 is refused ([`AMD64_ONLY`]). Kernel BTF is not
/// checked as a requirement: SFGI's eBPF object has no CO-RE relocations (it reads only the
/// target's user memory, at offsets from the Go binary), so it loads without
/// `/sys/kernel/btf/vmlinux`; its absence is logged at `info` level only.
pub fn check_host(host: &HostSupport) -> Result<(), String> {
    if !cfg!(target_arch = "x86_64") {
        return Err(AMD64_ONLY.to_string());
    }
    if !has_bpf_caps(host.cap_eff) {
        let missing: Vec<&str> = [
            (CAP_BPF, "CAP_BPF"),
            (CAP_PERFMON, "CAP_PERFMON"),
            (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
        ]
        .iter()
        .filter(|(c, _)| !has_cap(host.cap_eff, *c))
        .map(|(_, n)| *n)
        .collect();
        return Err(format!(
            "attaching needs root, or CAP_BPF and CAP_PERFMON (to load the eBPF programs and \
             attach the uprobes; kernels since 2025 want CAP_SYS_ADMIN for uprobes) plus \
             CAP_SYS_PTRACE (to read the target's executable and memory for \
             the inventory); this process lacks {}: run it with sudo",
            missing.join(", ")
        ));
    }
    if let Some(Err(e)) = &host.ringbuf {
        // EPERM while holding the capabilities: not the kernel's version but a filter in front
        // of bpf(2) — container runtimes' default seccomp profiles (podman's, older Docker's)
        // allow it only with CAP_SYS_ADMIN.
        if e.contains("(os error 1)") {
            return Err(format!(
                "the kernel refused bpf(2) ({e}) although this process holds the capabilities: \
                 a seccomp profile is blocking it (container runtimes' default profiles may allow \
                 bpf and perf_event_open only with CAP_SYS_ADMIN); run with a profile that allows \
                 both, or grant CAP_SYS_ADMIN"
            ));
        }
        return Err(format!(
            "this kernel ({}) cannot create a BPF ring buffer ({e}): SFGI needs Linux 5.8 or newer",
            host.kernel
        ));
    }
    if !host.btf {
        log::info!("kernel has no BTF (/sys/kernel/btf/vmlinux); SFGI does not need it");
    }
    Ok(())
}

/// Creates (and closes) a one-page BPF ring buffer map to see if the kernel has them.
fn ringbuf_supported() -> Result<(), String> {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_RINGBUF: u32 = 27;
    /// The first fields of `union bpf_attr` for `BPF_MAP_CREATE`, zero-padded.
    #[repr(C)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        rest: [u32; 28],
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let attr = MapCreate {
        map_type: BPF_MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: u32::try_from(page).unwrap_or(4096),
        rest: [0; 28],
    };
    // SAFETY: bpf(BPF_MAP_CREATE) reads `size` bytes of a valid, initialized attribute block.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreate,
            std::mem::size_of::<MapCreate>(),
        )
    };
    if fd < 0 {
        return Err(format!(
            "BPF_MAP_TYPE_RINGBUF: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `fd` is a descriptor this function just got and owns.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(cap_eff: u64, btf: bool, ringbuf: Option<Result<(), String>>) -> HostSupport {
        HostSupport {
            cap_eff,
            btf,
            ringbuf,
            kernel: "5.4.0-test".into(),
        }
    }

    const ALL: u64 = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_SYS_PTRACE);

    #[test]
    fn refuses_without_bpf_capabilities_and_names_them() {
        let e = check_host(&host(0, true, None)).unwrap_err();
        assert!(e.contains("CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE"), "{e}");
        let e = check_host(&host(1 << CAP_BPF, true, None)).unwrap_err();
        assert!(e.contains("lacks CAP_PERFMON, CAP_SYS_PTRACE"), "{e}");
        assert!(check_host(&host(1 << CAP_SYS_ADMIN, true, Some(Ok(())))).is_ok());
        assert!(check_host(&host(ALL, true, Some(Ok(())))).is_ok());
    }

    #[test]
    fn refuses_a_kernel_without_ring_buffers() {
        let e = check_host(&host(ALL, true, Some(Err("EINVAL".into())))).unwrap_err();
        assert!(e.contains("5.4.0-test") && e.contains("ring buffer"), "{e}");
    }

    #[test]
    fn a_seccomp_refusal_is_not_called_an_old_kernel() {
        let e = check_host(&host(
            ALL,
            true,
            Some(Err(
                "BPF_MAP_TYPE_RINGBUF: Operation not permitted (os error 1)".into(),
            )),
        ))
        .unwrap_err();
        assert!(e.contains("seccomp") && !e.contains("5.8"), "{e}");
    }

    #[test]
    fn btf_is_not_required() {
        assert!(check_host(&host(ALL, false, Some(Ok(())))).is_ok());
    }

    #[test]
    fn this_host_reads() {
        let h = HostSupport::probe();
        assert!(!h.kernel.is_empty());
        // Root on the test machines: the ring buffer probe ran and succeeded.
        if has_bpf_caps(h.cap_eff)
            && !(cfg!(feature = "test-hooks") && std::env::var_os("SFGI_TEST_HOST").is_some())
        {
            assert_eq!(h.ringbuf, Some(Ok(())));
        }
    }
}
