//! The locks that keep one executor per state directory and one per cluster: exclusive `flock`s
//! on `DIR/lock` and on `cluster-<key>.lock` in a directory private to the user.

use crate::ExecError;
use plan_model::topology::Topology;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock's file name in the state directory.
pub const LOCK_FILE: &str = "lock";

/// An exclusive `flock` on the state directory's lock file, released when dropped (or when the
/// process dies, however it dies: the kernel drops the lock).
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Drop for Lock {
    /// Released with `LOCK_UN`, not only by closing the descriptor: a child another thread has
    /// just forked holds a copy of it until it execs (`O_CLOEXEC` closes it only then), and a
    /// `flock` lasts while any copy of its open file is open. `LOCK_UN` releases it for every
    /// copy (flock(2)). Seen: the suite's lock test failed to take the lock again after a drop.
    fn drop(&mut self) {
        // SAFETY: flock on the descriptor this lock owns, still open here; no memory is shared.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn lock_error(path: &Path, reason: impl std::fmt::Display) -> ExecError {
    ExecError::Journal { path: path.display().to_string(), reason: reason.to_string() }
}

impl Lock {
    /// Takes the lock without waiting, writing this process's pid into the file.
    ///
    /// *Caveats*: the lock file is opened with `O_NOFOLLOW`: a symbolic link in its place is
    /// refused, since following it would write the pid over the link's target (any file the
    /// executor's user may write). Anything but a regular file is refused too.
    ///
    /// # Errors
    /// [`ExecError::Locked`] naming the holder's pid when another executor holds it;
    /// [`ExecError::UnsafePath`] for a link or a non-file; [`ExecError::Journal`] when the file
    /// cannot be opened or written.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let lock = plan_exec::lock::Lock::take(dir.path()).unwrap();
    /// assert!(plan_exec::lock::Lock::take(dir.path()).is_err(), "held");
    /// drop(lock);
    /// ```
    pub fn take(state_dir: &Path) -> Result<Lock, ExecError> {
        Lock::take_file(&state_dir.join(LOCK_FILE), &std::process::id().to_string())
    }

    /// Takes the lock of the cluster `t` describes, on this machine, for this user: a second
    /// executor against the same cluster is refused whatever its state directory. The file holds
    /// the holder's pid and state directory. The lock directory is [`cluster_lock_dir`], created
    /// private (0700) and refused when it is a link, another user's or writable by others; the
    /// CLI gives [`cluster_lock_dir`].
    ///
    /// *Caveats*: it covers executors of one user on one workstation; another workstation or
    /// user running against the same cluster is not seen.
    ///
    /// # Errors
    /// As [`Lock::take`]; [`ExecError::UnsafePath`] for an unsafe lock directory.
    pub fn take_cluster(t: &Topology, state_dir: &Path, dir: &Path) -> Result<Lock, ExecError> {
        crate::ssh::private_dir(dir, "cluster lock directory")?;
        let holder = format!("{} {}", std::process::id(), state_dir.display());
        Lock::take_file(&dir.join(format!("cluster-{}.lock", cluster_key(t))), &holder)
    }

    fn take_file(path: &Path, holder_line: &str) -> Result<Lock, ExecError> {
        let path = path.to_path_buf();
        let unsafe_path = |reason: &str| ExecError::UnsafePath { path: path.display().to_string(), reason: reason.to_string() };
        let mut file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(unsafe_path("a symbolic link: the lock would write over its target"))
            }
            Err(e) => return Err(lock_error(&path, e)),
        };
        if !file.metadata().map_err(|e| lock_error(&path, e))?.is_file() {
            return Err(unsafe_path("not a regular file"));
        }
        // SAFETY: flock on a file descriptor this function owns; no memory is shared.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !taken {
            let mut holder = String::new();
            let _ = std::io::Read::read_to_string(&mut file, &mut holder);
            let holder = holder.trim();
            return Err(ExecError::Locked {
                path: path.display().to_string(),
                holder: match holder.split_once(' ') {
                    _ if holder.is_empty() => String::new(),
                    // A cluster lock: the holder's pid and state directory.
                    Some((pid, state_dir)) => format!(" (pid {pid}, state directory {state_dir}): one executor per cluster"),
                    None => format!(" (pid {holder})"),
                },
            });
        }
        // Held from here: a failure to write the holder releases it on the way out (`Drop`).
        let mut lock = Lock { file };
        lock.file.set_len(0).map_err(|e| lock_error(&path, e))?;
        writeln!(lock.file, "{holder_line}").map_err(|e| lock_error(&path, e))?;
        Ok(lock)
    }
}

/// Where the cluster locks live: `$PLAN_LOCK_DIR` when set, else `$XDG_RUNTIME_DIR/plan-locks`,
/// else `$TMPDIR/plan-locks-<uid>`.
pub fn cluster_lock_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PLAN_LOCK_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("plan-locks");
    }
    // SAFETY: geteuid reads this process's effective uid; it cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("plan-locks-{uid}"))
}

/// The cluster's identity as a file name: a fingerprint of its first master's name and address
/// and its API endpoint (VIP and port), the things a second scenario file for the same cluster
/// shares whatever else it changes.
pub fn cluster_key(t: &Topology) -> String {
    let m0 = t.node(t.existing_master());
    let endpoint = &t.scenario.control_plane_endpoint;
    let identity = format!("{}\0{}\0{}\0{}", m0.name, m0.address, endpoint.vip, endpoint.port);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in identity.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The pid written in the lock of `state_dir` when an executor holds it now; `None` when none
/// does (no lock file, or a lock nobody holds: a killed executor's lock is free).
///
/// *Caveats*: it takes and at once drops a shared lock to ask; a link in the lock's place is
/// not followed and reads as not held.
pub fn holder(state_dir: &Path) -> Option<String> {
    let path = state_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path).ok()?;
    // SAFETY: flock on a file descriptor this function owns; no memory is shared.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        // SAFETY: as above; the shared lock just taken is released.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    let mut pid = String::new();
    let _ = std::io::Read::read_to_string(&mut file, &mut pid);
    Some(pid.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(scenario: &str) -> Topology {
        Topology::new(&plan_model::validate::parse_scenario(scenario).expect("valid"))
    }

    #[test]
    fn a_second_executor_against_one_cluster_is_refused_whatever_its_state_directory() {
        let (locks, a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let homelab = topology(include_str!("../../scenarios/homelab.yaml"));
        let held = Lock::take_cluster(&homelab, a.path(), locks.path()).expect("the first");
        let refused = Lock::take_cluster(&homelab, b.path(), locks.path()).unwrap_err().to_string();
        assert!(refused.contains(&a.path().display().to_string()) && refused.contains("one executor per cluster"), "{refused}");
        // Another cluster is another lock; the same cluster again once the first let go.
        let other = topology(include_str!("../../scenarios/five-masters.yaml"));
        assert_ne!(cluster_key(&homelab), cluster_key(&other));
        let _other = Lock::take_cluster(&other, b.path(), locks.path()).expect("another cluster");
        drop(held);
        assert!(Lock::take_cluster(&homelab, b.path(), locks.path()).is_ok(), "released on drop");
    }

    #[test]
    fn a_cluster_lock_directory_others_may_write_or_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (root, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let t = topology(include_str!("../../scenarios/homelab.yaml"));
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(Lock::take_cluster(&t, state.path(), &shared), Err(ExecError::UnsafePath { .. })));
        let link = root.path().join("link");
        std::os::unix::fs::symlink(state.path(), &link).unwrap();
        assert!(matches!(Lock::take_cluster(&t, state.path(), &link), Err(ExecError::UnsafePath { .. })));
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::take(dir.path()).unwrap();
        let second = Lock::take(dir.path()).unwrap_err().to_string();
        assert!(second.contains(&format!("pid {}", std::process::id())), "{second}");
        drop(first);
        assert!(Lock::take(dir.path()).is_ok(), "released on drop");
    }

    #[test]
    fn a_symlinked_lock_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE)).unwrap();
        let error = Lock::take(dir.path()).unwrap_err();
        assert!(matches!(error, ExecError::UnsafePath { .. }), "{error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n", "the link's target is untouched");
        // A dangling link is refused too (O_CREAT would otherwise create its target).
        std::fs::remove_file(&target).unwrap();
        assert!(matches!(Lock::take(dir.path()), Err(ExecError::UnsafePath { .. })));
        assert!(!target.exists(), "nothing created through the link");
    }

    /// A child forked while the lock is held (by another test's thread, or any library) holds a
    /// copy of its descriptor until it execs or exits; the lock is free at the drop all the same.
    /// Fails without the `LOCK_UN` in `drop`: the second take is refused while the child lives.
    #[test]
    fn a_lock_is_free_at_its_drop_while_a_forked_child_still_holds_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock::take(dir.path()).unwrap();
        let mut pipe = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        assert_eq!(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the child calls only close, read and _exit, which are async-signal-safe.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let mut byte = 0u8;
            // SAFETY: the child keeps no write end of its own, so its read ends when the
            // parent's closes (or the parent dies); then it leaves without unwinding.
            unsafe {
                libc::close(pipe[1]);
                libc::read(pipe[0], std::ptr::addr_of_mut!(byte).cast(), 1);
                libc::_exit(0);
            }
        }
        // SAFETY: closes the write end, which lets the child go, and the read end; both are
        // this test's. Done before any assertion, so no failure leaves the child waiting.
        let let_go = || unsafe {
            libc::close(pipe[1]);
            libc::close(pipe[0]);
        };
        if child < 0 {
            let_go();
            panic!("fork: {}", std::io::Error::last_os_error());
        }
        drop(lock);
        let again = Lock::take(dir.path());
        let_go();
        // SAFETY: reaps the child, which ends once the write end is closed.
        unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        assert!(again.is_ok(), "the lock is free at its drop: {again:?}");
    }

    #[test]
    fn a_directory_in_the_locks_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(LOCK_FILE)).unwrap();
        assert!(Lock::take(dir.path()).is_err());
    }

    #[test]
    fn the_holder_is_named_while_held_and_none_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(super::holder(dir.path()), None, "no lock file");
        let lock = Lock::take(dir.path()).expect("taken");
        assert_eq!(super::holder(dir.path()), Some(std::process::id().to_string()));
        drop(lock);
        assert_eq!(super::holder(dir.path()), None, "released");
    }
}
