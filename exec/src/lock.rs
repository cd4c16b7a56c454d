//! The lock that keeps one executor per state directory: an exclusive `flock` on `DIR/lock`.

use crate::ExecError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The lock's file name in the state directory.
pub const LOCK_FILE: &str = "lock";

/// An exclusive `flock` on the state directory's lock file, released when dropped (or when the
/// process dies, however it dies: the kernel drops the lock).
#[derive(Debug)]
pub struct Lock {
    _file: File,
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
        let path = state_dir.join(LOCK_FILE);
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
                holder: if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
            });
        }
        file.set_len(0).map_err(|e| lock_error(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| lock_error(&path, e))?;
        Ok(Lock { _file: file })
    }
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
