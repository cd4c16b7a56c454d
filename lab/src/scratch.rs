//! The executor's lab's scratch directory: owned by the process that made it (removed when the
//! [`Scratch`] is dropped), and claimed for that process's lifetime so that the next lab start can
//! tell a directory whose owner died without cleaning up (a SIGKILL) and sweep it.
//!
//! The claim is an abstract Unix socket named after the directory, bound by the owner: the kernel
//! releases it however the owner dies, it leaves no file behind, and a pid reused by another
//! program cannot be mistaken for the owner. A directory carries the [`CLAIM_FILE`] marker once it
//! is claimed; one without the marker (an older lab's) is never swept.
//!
//! A lab's loopback range (`127.N.0.0/16`) is claimed the same way ([`LabRange`]): two labs of one
//! scenario, up at once, each take a range of their own.

use crate::error::LabError;
use crate::process::{self, Signal};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the executor's lab's scratch directories go: not under `/tmp`, which each host mounts over.
pub const SCRATCH_DIR: &str = "/dev/shm";
/// The prefix of every executor lab's scratch directory.
pub const SCRATCH_PREFIX: &str = "plan-exec-lab-";
/// The marker a claimed directory carries: the abstract socket name of its claim.
pub const CLAIM_FILE: &str = "claim";
/// Bound on the wait for a swept directory's leftover processes to die.
pub const SWEEP_KILL_WAIT_MS: u64 = 2000;

/// A scratch directory, removed with everything in it when dropped, and claimed while it lives.
pub struct Scratch {
    // Field order is drop order: the directory goes before the claim is released, so that a sweep
    // never sees a claimed-then-free directory that is still being removed by its owner.
    dir: tempfile::TempDir,
    _claim: UnixListener,
}

/// The claim names' prefixes: a scratch directory's (then its file name) and a range's (then its octet).
const DIR_CLAIM: &str = "plan-exec-lab/";
const RANGE_CLAIM: &str = "plan-exec-lab-range/";

fn claim_name(dir: &Path) -> String {
    format!("{DIR_CLAIM}{}", dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

fn bind_claim(name: &str) -> std::io::Result<UnixListener> {
    UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)
}

impl Scratch {
    /// Sweeps the stale directories of dead owners under `parent` ([`sweep_stale`]), then makes and
    /// claims a new one.
    ///
    /// # Errors
    /// The directory cannot be made, the claim cannot be bound or its marker written.
    pub fn new_in(parent: &Path) -> Result<Scratch, LabError> {
        sweep_stale(parent);
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir_in(parent)
            .map_err(|e| LabError::io(format!("a scratch directory in {}", parent.display()), e))?;
        let name = claim_name(dir.path());
        let claim = bind_claim(&name).map_err(|e| LabError::io(format!("claim {}", dir.path().display()), e))?;
        std::fs::write(dir.path().join(CLAIM_FILE), &name).map_err(|e| LabError::io("the scratch directory's claim", e))?;
        Ok(Scratch { dir, _claim: claim })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The highest range a lab may claim: `127.RANGES_MAX.0.0/16`.
pub const RANGES_MAX: u8 = 63;

/// A loopback range `127.N.0.0/16` this process holds for one lab: the lowest one no other live
/// lab holds. Released when dropped, or when the process dies however it dies.
pub struct LabRange {
    octet: u8,
    _claim: UnixListener,
}

impl LabRange {
    /// Claims the lowest free range, 0 first (a lab alone reads like its scenario: 127.0.20.10).
    ///
    /// # Errors
    /// Every range up to [`RANGES_MAX`] is held by another lab.
    pub fn claim() -> Result<LabRange, LabError> {
        (0..=RANGES_MAX).find_map(|octet| LabRange::claim_octet(octet).ok()).ok_or_else(|| LabError::NotRehearsable {
            what: "a loopback range for the lab".to_string(),
            why: format!("127.0.0.0/16 to 127.{RANGES_MAX}.0.0/16 are all held by other labs"),
        })
    }

    /// Claims range `127.octet.0.0/16` itself: for servers that sit at a scenario's own loopback
    /// addresses (the executor's test fixture at 127.0.20.x), so that no lab starts there beside them.
    ///
    /// # Errors
    /// Another live lab holds it.
    pub fn claim_octet(octet: u8) -> Result<LabRange, LabError> {
        bind_claim(&format!("{RANGE_CLAIM}{octet}")).map(|claim| LabRange { octet, _claim: claim }).map_err(|_| LabError::NotRehearsable {
            what: format!("the loopback range 127.{octet}.0.0/16"),
            why: "another lab holds it".to_string(),
        })
    }

    /// The second octet of the range.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// The range as a network, `127.N.0.0/16`: what a report says the lab was on.
    pub fn network(&self) -> String {
        format!("127.{}.0.0/16", self.octet)
    }
}

/// What one process holds claims on: the labs it owns, told apart from every other lab's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Its scratch directories' names (each in the directory it was made in: [`SCRATCH_DIR`] for a lab).
    pub dirs: Vec<String>,
    /// Its loopback ranges' second octets.
    pub ranges: Vec<u8>,
}

/// The claims `pid` holds, read from `/proc` (the abstract sockets it has open, by inode, named in
/// `/proc/net/unix`); never by binding one, which would take the claim from a lab being made at
/// that moment. Empty for a process that is gone.
pub fn claims_of(pid: u32) -> Claims {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Claims::default() };
    let inodes: Vec<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| Some(link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_string()))
        .collect();
    let mut claims = Claims::default();
    for (inode, name) in abstract_sockets() {
        if !inodes.contains(&inode) {
            continue;
        }
        if let Some(dir) = name.strip_prefix(DIR_CLAIM) {
            claims.dirs.push(dir.to_string());
        } else if let Some(octet) = name.strip_prefix(RANGE_CLAIM).and_then(|o| o.parse().ok()) {
            claims.ranges.push(octet);
        }
    }
    claims
}

/// Whether a live process holds `dir`'s claim, read from `/proc/net/unix` (never by binding it).
pub fn claim_held(dir: &Path) -> bool {
    let name = claim_name(dir);
    abstract_sockets().iter().any(|(_, bound)| *bound == name)
}

/// The abstract Unix sockets bound on this machine: (inode, name without the leading `@`).
fn abstract_sockets() -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    // Num RefCount Protocol Flags Type St Inode Path
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.get(6)?.to_string(), fields.get(7)?.strip_prefix('@')?.to_string()))
        })
        .collect()
}

/// The pids of the processes whose command line names `dir`: what a lab in `dir` started (its
/// sshds' PID namespaces, etcd members, the executor's ControlMasters), and nothing else.
pub fn processes_naming(dir: &Path) -> Vec<u32> {
    let marker = dir.to_string_lossy().into_owned();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own && process::is_alive(pid) && process::belongs_to(pid, &marker))
        .collect()
}

/// Removes every claimed scratch directory under `parent` whose owner is gone, after killing any
/// process still naming it. Returns the directories removed.
///
/// A directory whose claim another process holds is alive and left alone; so is one without the
/// claim marker (being made right now, or an older lab's).
pub fn sweep_stale(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    let mut swept = Vec::new();
    for dir in entries.flatten().map(|e| e.path()) {
        let named = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(SCRATCH_PREFIX));
        let Ok(name) = std::fs::read_to_string(dir.join(CLAIM_FILE)) else { continue };
        if !named || name != claim_name(&dir) {
            continue;
        }
        // Held while the directory goes: no other sweep works on it at the same time.
        let Ok(_held) = bind_claim(&name) else { continue };
        for pid in processes_naming(&dir) {
            process::signal(pid, Signal::Kill);
            process::wait_gone(pid, None, Duration::from_millis(SWEEP_KILL_WAIT_MS));
        }
        if std::fs::remove_dir_all(&dir).is_ok() {
            swept.push(dir);
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim released in this process can stay bound for a moment: a child another test's
    /// thread has just forked holds a copy of the socket until it execs (`SOCK_CLOEXEC` closes
    /// it only then), and an abstract name is free only once every copy is closed. Unlike a
    /// `flock` (see `plan_exec::lock`), nothing releases it for every copy; so a test that claims
    /// again what it released tries for up to two seconds.
    fn soon<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(done) = attempt() {
                return Some(done);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn two_labs_hold_two_ranges_and_a_released_range_is_taken_again() {
        let first = LabRange::claim().expect("a range");
        let second = LabRange::claim().expect("another range");
        assert_ne!(first.octet(), second.octet());
        let octet = first.octet();
        drop(first);
        let lowest = octet.max(second.octet());
        let third = soon(|| LabRange::claim().ok().filter(|r| r.octet() <= lowest)).expect("the lowest free range");
        assert_eq!(third.network(), format!("127.{}.0.0/16", third.octet()));
    }

    #[test]
    fn a_range_claimed_by_its_octet_is_not_given_to_another_lab() {
        let held = LabRange::claim_octet(RANGES_MAX).expect("the top range is free");
        assert_eq!(held.network(), format!("127.{RANGES_MAX}.0.0/16"));
        assert!(LabRange::claim_octet(RANGES_MAX).is_err(), "held once");
        // The labs of this process's other tests take ranges from 0 up: none reaches the top.
        let other = LabRange::claim().expect("a range");
        assert_ne!(other.octet(), RANGES_MAX);
        drop(held);
        assert!(soon(|| LabRange::claim_octet(RANGES_MAX).ok()).is_some(), "released when dropped");
    }

    #[test]
    fn a_process_s_claims_are_read_without_taking_them() {
        let parent = tempfile::tempdir().expect("tempdir");
        let scratch = Scratch::new_in(parent.path()).expect("a scratch directory");
        let range = LabRange::claim().expect("a range");
        let held = claims_of(std::process::id());
        let name = scratch.path().file_name().and_then(|n| n.to_str()).expect("a name").to_string();
        assert!(held.dirs.contains(&name) && held.ranges.contains(&range.octet()), "{held:?}");
        assert!(claim_held(scratch.path()), "held while the scratch lives");
        // Reading did not take it: the owner still holds it, and it goes when the owner lets go.
        // (A released range may be taken again at once by another test of this process: only the
        // directory, whose name is unique, is looked for afterwards.)
        let path = scratch.path().to_path_buf();
        drop((scratch, range));
        // Another test of this process forking right then holds a copy of the claim's socket
        // (close-on-exec) until its child execs: looked at again for a moment (this failed
        // once in a workspace run, at `claim_held`).
        let released = || !claim_held(&path) && !claims_of(std::process::id()).dirs.contains(&name);
        assert!(soon(|| released().then_some(())).is_some(), "released once the owner let go");
        assert_eq!(claims_of(u32::MAX), Claims::default(), "no such process, no claims");
    }

    #[test]
    fn a_live_claim_is_left_alone_and_a_dead_one_is_swept_with_its_processes() {
        let parent = tempfile::tempdir().expect("tempdir");
        let live = Scratch::new_in(parent.path()).expect("a scratch directory");
        // A dead owner's directory: claimed by name, marker written, nobody holding the claim.
        let dead = parent.path().join(format!("{SCRATCH_PREFIX}dead"));
        std::fs::create_dir(&dead).expect("mkdir");
        std::fs::write(dead.join(CLAIM_FILE), claim_name(&dead)).expect("marker");
        let log = dead.join("sleep.log");
        let marker = dead.join("marker");
        let mut child = process::spawn(
            Path::new("/bin/sh"),
            &["-c".into(), format!("sleep 30; true # {}", marker.display())],
            &log,
            process::Lifetime::Detached,
        )
        .expect("sh starts");
        // An older lab's directory, without the marker: never touched.
        let legacy = parent.path().join(format!("{SCRATCH_PREFIX}legacy"));
        std::fs::create_dir(&legacy).expect("mkdir");
        // Between sh's fork of `sleep` and its exec, the forked child also names the directory.
        // `spawn` returns once the exec has closed the descriptors, a moment before the kernel
        // sets the new command line (an empty one is read until then): looked for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !processes_naming(&dead).contains(&child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(processes_naming(&dead).contains(&child.id()), "sh names the directory it was started for");
        assert_eq!(sweep_stale(parent.path()), vec![dead.clone()]);
        assert!(!dead.exists() && legacy.exists() && live.path().exists());
        assert!(child.try_wait().expect("wait").is_some() || process::wait_gone(child.id(), Some(&mut child), Duration::from_secs(2)));
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists(), "dropped, removed");
    }
}
