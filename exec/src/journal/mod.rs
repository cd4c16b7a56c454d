//! The journal: an append-only JSON-lines file, synced to disk before and after every command,
//! from which a run resumes and `plan status` reports; and the lock that keeps one executor per
//! state directory.

use crate::observe::Drift;
use crate::ExecError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Version of the journal format; every record carries it.
pub const JOURNAL_FORMAT: u32 = 1;
/// The journal's file name in the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// The lock's file name in the state directory.
pub const LOCK_FILE: &str = "lock";

/// One thing that happened, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    RunStarted {
        scenario: String,
        /// Fingerprint of the plan's step ids and commands: a resume must run the same plan.
        plan_digest: String,
        steps: Vec<String>,
        /// `pass` or `fail`: what `plan check` said.
        check: String,
        /// The reason given with `--override-check`, when the check failed.
        override_check: Option<String>,
        resume: bool,
        pid: u32,
    },
    PhaseConfirmed {
        phase: String,
        by: String,
    },
    StepStarted {
        step: String,
    },
    Observed {
        step: String,
        /// `before`, `after`, `resume`, `rollback`, `after-rollback`.
        when: String,
        drift: Vec<Drift>,
    },
    CommandStarted {
        step: String,
        index: usize,
        place: String,
        command: String,
    },
    CommandFinished {
        step: String,
        index: usize,
        exit: Option<i32>,
        duration_ms: u64,
        /// Redacted tail of the output; nothing for a secret command.
        output: String,
    },
    StepFinished {
        step: String,
        /// `ran`, or `verified-done` when a resumed step was found already done.
        how: String,
    },
    Halted {
        step: String,
        reason: String,
        drift: Vec<Drift>,
        /// The twin's recovery for this point.
        recovery: String,
        recovery_actions: Vec<String>,
    },
    RollbackStarted {
        step: String,
        recovery: String,
    },
    RollbackFinished {
        step: String,
        ok: bool,
        reason: Option<String>,
    },
    RunFinished,
}

/// A record: the event with its format version and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// An open journal file (or none, for a dry run).
pub struct Journal {
    file: Option<File>,
    path: PathBuf,
    pub records: Vec<Record>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

fn journal_error(path: &Path, reason: impl std::fmt::Display) -> ExecError {
    ExecError::Journal { path: path.display().to_string(), reason: reason.to_string() }
}

impl Journal {
    /// A journal kept in memory only (dry runs).
    pub fn in_memory() -> Journal {
        Journal { file: None, path: PathBuf::from("<memory>"), records: Vec::new() }
    }

    /// Opens (creating) the journal in `state_dir` and reads what it holds.
    ///
    /// # Errors
    /// The file cannot be opened, or a line is not a record (a torn last line, from a crash in
    /// the middle of a write, is dropped: it was never synced as a whole).
    pub fn open(state_dir: &Path) -> Result<Journal, ExecError> {
        let path = state_dir.join(JOURNAL_FILE);
        let records = read_records(&path)?;
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| journal_error(&path, e))?;
        drop_torn_line(&file, &path)?;
        Ok(Journal { file: Some(file), path, records })
    }

    /// Appends `event` and syncs it to disk before returning.
    ///
    /// # Errors
    /// The write or the sync failed: the runner stops, since it can no longer promise a resume.
    pub fn append(&mut self, event: Event) -> Result<(), ExecError> {
        let record = Record { v: JOURNAL_FORMAT, at_ms: now_ms(), event };
        if let Some(file) = &mut self.file {
            let mut line = serde_json::to_string(&record).map_err(|e| journal_error(&self.path, e))?;
            line.push('\n');
            file.write_all(line.as_bytes()).map_err(|e| journal_error(&self.path, e))?;
            file.sync_data().map_err(|e| journal_error(&self.path, format!("fsync: {e}")))?;
        }
        self.records.push(record);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Cuts a torn last line (no newline: a crash in the middle of a write) off the file and syncs,
/// so that the next record starts on a line of its own instead of being glued onto the torn one,
/// which would make both unreadable in the middle of the file.
fn drop_torn_line(file: &File, path: &Path) -> Result<(), ExecError> {
    let text = std::fs::read(path).map_err(|e| journal_error(path, e))?;
    if text.last().is_none_or(|b| *b == b'\n') {
        return Ok(());
    }
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
    file.set_len(whole as u64).map_err(|e| journal_error(path, format!("cutting the torn last line: {e}")))?;
    file.sync_all().map_err(|e| journal_error(path, format!("fsync: {e}")))
}

/// Reads the records of a journal file; a missing file has none.
///
/// # Errors
/// A line in the middle of the file is not a record.
pub fn read_records(path: &Path) -> Result<Vec<Record>, ExecError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(journal_error(path, e)),
    };
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(|e| journal_error(path, e))?;
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(record) => records.push(record),
            // A torn last line: the crash came in the middle of the write, before its sync.
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => return Err(journal_error(path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(records)
}

/// Where a run stands, as its journal tells.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub plan_digest: Option<String>,
    pub scenario: Option<String>,
    pub steps: Vec<String>,
    pub completed: BTreeSet<String>,
    /// A step whose start is journalled but not its end (crash, Ctrl-C, halt).
    pub interrupted: Option<String>,
    /// Commands that finished, per step, with their exit codes.
    pub finished_commands: BTreeMap<String, BTreeMap<usize, Option<i32>>>,
    /// The last halt, if the run is halted (cleared by a later successful step or rollback).
    pub halted: Option<Halted>,
    pub rolled_back: Option<String>,
    pub finished: bool,
    pub override_check: Option<String>,
    /// The drift the last observation reported.
    pub last_drift: Vec<Drift>,
}

/// A journalled halt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Halted {
    pub step: String,
    pub reason: String,
    pub drift: Vec<Drift>,
    pub recovery: String,
    pub recovery_actions: Vec<String>,
}

impl Progress {
    /// Replays the records.
    pub fn from_records(records: &[Record]) -> Progress {
        let mut p = Progress::default();
        for record in records {
            match &record.event {
                Event::RunStarted { plan_digest, scenario, steps, override_check, resume, .. } => {
                    if !resume {
                        // A fresh run: what an earlier, finished run did is history.
                        p = Progress::default();
                    }
                    p.plan_digest = Some(plan_digest.clone());
                    p.scenario = Some(scenario.clone());
                    p.steps = steps.clone();
                    p.finished = false;
                    if override_check.is_some() {
                        p.override_check = override_check.clone();
                    }
                }
                Event::StepStarted { step } => {
                    p.interrupted = Some(step.clone());
                    p.finished_commands.entry(step.clone()).or_default();
                }
                Event::CommandFinished { step, index, exit, .. } => {
                    p.finished_commands.entry(step.clone()).or_default().insert(*index, *exit);
                }
                Event::StepFinished { step, .. } => {
                    p.completed.insert(step.clone());
                    p.interrupted = None;
                    p.halted = None;
                }
                Event::Observed { drift, .. } => p.last_drift = drift.clone(),
                Event::Halted { step, reason, drift, recovery, recovery_actions } => {
                    p.halted = Some(Halted {
                        step: step.clone(),
                        reason: reason.clone(),
                        drift: drift.clone(),
                        recovery: recovery.clone(),
                        recovery_actions: recovery_actions.clone(),
                    });
                }
                Event::RollbackFinished { step, ok: true, .. } => {
                    p.rolled_back = Some(step.clone());
                    p.halted = None;
                    p.interrupted = None;
                }
                Event::RunFinished => p.finished = true,
                Event::PhaseConfirmed { .. }
                | Event::CommandStarted { .. }
                | Event::RollbackStarted { .. }
                | Event::RollbackFinished { .. } => {}
            }
        }
        p
    }

    /// Whether command `index` of `step` finished with exit 0 (a resume skips it).
    pub fn command_done(&self, step: &str, index: usize) -> bool {
        self.finished_commands.get(step).and_then(|c| c.get(&index)).is_some_and(|exit| *exit == Some(0))
    }
}

/// An exclusive `flock` on the state directory's lock file, released when dropped (or when the
/// process dies, however it dies: the kernel drops the lock).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock without waiting, writing this process's pid into the file.
    ///
    /// # Errors
    /// [`ExecError::Locked`] naming the holder's pid when another executor holds it.
    pub fn take(state_dir: &Path) -> Result<Lock, ExecError> {
        let path = state_dir.join(LOCK_FILE);
        let mut file =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(|e| journal_error(&path, e))?;
        // SAFETY: flock on a file descriptor this function owns; no memory is shared.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !taken {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(ExecError::Locked {
                path: path.display().to_string(),
                holder: if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
            });
        }
        file.set_len(0).map_err(|e| journal_error(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| journal_error(&path, e))?;
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.append(Event::StepStarted { step: "4.2".into() }).unwrap();
        journal
            .append(Event::CommandFinished { step: "4.2".into(), index: 0, exit: Some(0), duration_ms: 5, output: String::new() })
            .unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(dir.path().join(JOURNAL_FILE)).unwrap();
        file.write_all(b"{\"v\":1,\"at_ms\":1,\"event\":\"step-fin").unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let progress = Progress::from_records(&journal.records);
        assert_eq!(progress.interrupted.as_deref(), Some("4.2"));
        assert!(progress.command_done("4.2", 0));
        assert!(!progress.command_done("4.2", 1));
    }

    #[test]
    fn an_append_after_a_torn_line_starts_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.append(Event::StepStarted { step: "4.2".into() }).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(dir.path().join(JOURNAL_FILE)).unwrap();
        file.write_all(b"{\"v\":1,\"at_ms\":1,\"event\":\"step-fin").unwrap();
        drop(file);
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.append(Event::StepFinished { step: "4.2".into(), how: "ran".into() }).unwrap();
        drop(journal);
        let records = read_records(&dir.path().join(JOURNAL_FILE)).expect("every line reads back");
        let progress = Progress::from_records(&records);
        assert!(progress.completed.contains("4.2") && progress.interrupted.is_none(), "{progress:?}");
        assert_eq!(records.len(), 2, "the torn line is gone, the new record kept");
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
}
