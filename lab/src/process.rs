//! Starting, signalling and reaping the lab's processes, by pid, with a check that a pid from a
//! state file still belongs to the lab before anything is sent to it; and the lab's threads, each
//! owned by a [`Worker`] that stops it.

use crate::error::LabError;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a wait looks again.
pub const POLL_MS: u64 = 20;

/// What the lab sends to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A crash: the process gets no chance to clean up.
    Kill,
    /// A clean shutdown.
    Term,
    /// Frozen: its peers see it as gone (partition-like), it resumes on [`Signal::Cont`].
    Stop,
    Cont,
}

impl Signal {
    /// Its number and its name.
    fn of(self) -> (libc::c_int, &'static str) {
        match self {
            Signal::Kill => (libc::SIGKILL, "SIGKILL"),
            Signal::Term => (libc::SIGTERM, "SIGTERM"),
            Signal::Stop => (libc::SIGSTOP, "SIGSTOP"),
            Signal::Cont => (libc::SIGCONT, "SIGCONT"),
        }
    }

    pub fn name(self) -> &'static str {
        self.of().1
    }
}

/// Whether a process should die with the thread that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed by the kernel when the starting thread ends (a test or a rehearsal owns it).
    Owned,
    /// Outlives the command that started it (`plan lab up`); `plan lab down` ends it.
    Detached,
}

/// Starts `program` with `args`, stdout and stderr appended to `log`, in its own process group.
///
/// # Errors
/// The log cannot be opened or the program cannot be started.
pub fn spawn(program: &Path, args: &[String], log: &Path, lifetime: Lifetime) -> Result<Child, LabError> {
    let out =
        std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| LabError::io(format!("open {}", log.display()), e))?;
    let err = out.try_clone().map_err(|e| LabError::io(format!("open {}", log.display()), e))?;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
    // etcd reads ETCD_* from the environment; the lab's flags must be the only configuration.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCD") {
            command.env_remove(key);
        }
    }
    if lifetime == Lifetime::Owned {
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command.spawn().map_err(|e| LabError::io(format!("start {}", program.display()), e))
}

/// Whether `pid` runs (a zombie does not).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')).unwrap_or(false),
        Err(_) => false,
    }
}

/// Whether `pid`'s command line mentions `marker` (a lab directory): a pid read back from a state
/// file may have been reused by an unrelated process since.
pub fn belongs_to(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|raw| String::from_utf8_lossy(&raw).contains(marker)).unwrap_or(false)
}

/// Sends `signal` to `pid`. Returns whether it was delivered.
pub fn signal(pid: u32, signal: Signal) -> bool {
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill(2) with a positive pid signals exactly that process.
    unsafe { libc::kill(raw_pid, signal.of().0) == 0 }
}

/// Waits until `pid` no longer runs, reaping it when it is `child`.
pub fn wait_gone(pid: u32, child: Option<&mut Child>, timeout: Duration) -> bool {
    let start = Instant::now();
    let mut child = child;
    loop {
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
        }
        if !is_alive(pid) {
            if let Some(c) = child.as_deref_mut() {
                let _ = c.try_wait();
            }
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// A thread of the lab that runs until it is told to stop: [`Self::stop`], or dropping it, tells it
/// and waits for it.
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Runs `body` on a thread named `name`; `body` returns once the flag it is given is set.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(name: String, body: impl FnOnce(&AtomicBool) + Send + 'static) -> Result<Worker, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || body(&stopping))
            .map_err(|e| LabError::io(format!("start {name}"), e))?;
        Ok(Worker { stop, thread: Some(thread) })
    }

    /// Tells the thread to stop and waits for it; again, nothing.
    pub fn stop(&mut self) {
        self.stop_with(|| {});
    }

    /// Tells the thread to stop, calls `wake` (a thread that waits for something, a connection,
    /// sees its flag at once rather than at its next look) and waits for it; again, nothing.
    pub fn stop_with(&mut self, wake: impl FnOnce()) {
        if self.thread.is_none() {
            return;
        }
        self.stop.store(true, Ordering::SeqCst);
        wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a log, for an error message.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_child_is_gone_and_reaped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sleep.log");
        let mut child = spawn(Path::new("/bin/sleep"), &["30".to_string()], &log, Lifetime::Owned).expect("sleep starts");
        let pid = child.id();
        assert!(is_alive(pid));
        assert!(signal(pid, Signal::Kill));
        assert!(wait_gone(pid, Some(&mut child), Duration::from_secs(5)));
        assert!(!is_alive(pid));
    }

    #[test]
    fn a_stopped_child_can_continue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sleep.log");
        let mut child = spawn(Path::new("/bin/sleep"), &["30".to_string()], &log, Lifetime::Owned).expect("sleep starts");
        let pid = child.id();
        assert!(signal(pid, Signal::Stop));
        assert!(is_alive(pid), "a stopped process still exists");
        assert!(signal(pid, Signal::Cont));
        assert!(signal(pid, Signal::Kill));
        assert!(wait_gone(pid, Some(&mut child), Duration::from_secs(5)));
    }

    #[test]
    fn pids_of_other_programs_do_not_belong_to_the_lab() {
        assert!(!belongs_to(std::process::id(), "/no/such/lab/dir"));
        assert!(!is_alive(u32::MAX));
    }
}
