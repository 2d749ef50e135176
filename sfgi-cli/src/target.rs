//! The process SFGI attaches to: its executable, Go binary facts and load address.
use crate::goexe::{GoBinary, GoExeError};
use std::path::{Path, PathBuf};

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
    #[error("PID {pid} ({exe}) is not a Go program SFGI can trace: {source}")]
    NotGo {
        /// The PID.
        pid: u32,
        /// Its executable.
        exe: String,
        /// What the binary reader said.
        source: GoExeError,
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
    /// The analysed binary.
    pub binary: GoBinary,
    /// Runtime address minus link-time address of the executable's code (non-zero for PIE).
    pub load_bias: u64,
}

impl Target {
    /// Opens process `pid` as a target.
    pub fn open(pid: u32) -> Result<Target, TargetError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if pid == 0 || !proc_dir.exists() {
            return Err(TargetError::NoProcess(pid));
        }
        let exe_path = proc_dir.join("exe");
        let exe_display = std::fs::read_link(&exe_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound && !proc_dir.exists() {
                TargetError::NoProcess(pid)
            } else {
                TargetError::Exe {
                    pid,
                    why: e.to_string(),
                }
            }
        })?;
        let binary = GoBinary::open(&exe_path).map_err(|source| {
            if process_alive(pid) {
                TargetError::NotGo {
                    pid,
                    exe: exe_display.display().to_string(),
                    source,
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

/// Whether `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name, which may contain spaces.
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// For a PIE executable: runtime address minus link-time address, from where the mapping that
/// holds `runtime.main`'s code was placed.
fn load_bias(pid: u32, exe: &Path, bin: &GoBinary) -> Option<u64> {
    let anchor = bin.func_by_name("runtime.main")?.entry;
    let anchor_off = bin.file_offset(anchor)?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
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
