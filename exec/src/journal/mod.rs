//! The journal: an append-only JSON-lines file, synced to disk before and after every command,
//! from which a run resumes and `plan status` reports.

mod expired;
mod progress;
mod read;

pub use progress::{Halted, Progress, WrittenOff};
pub use read::{journal_path, parse, read, repair, Contents, Damage, Repair};

use crate::observe::Drift;
use crate::ExecError;
pub use expired::ExpiredCredentials;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Version of the journal format; every record carries it.
pub const JOURNAL_FORMAT: u32 = 1;
/// The journal's file name in the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Written once, beside the journal, when the first run in a state directory is journalled (it
/// holds that `run-started` record): a missing or empty journal next to it was lost, not never
/// written. The lock file cannot tell: it is made before anything is journalled, also by a
/// `--resume` that finds nothing to resume.
pub const RUN_MARKER_FILE: &str = "run-started";

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
        /// `before`, `after`, `resume`, `after-waiting` (a host wait's last look), `after-settling`
        /// (lagging facts before a step, looked at again), `after-rollback`.
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
        /// At by-hand work the run could not ask about (`--yes`): the index of that command in
        /// the step, which `plan execute --resume --by-hand-done` confirms as done.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by_hand: Option<usize>,
        /// The join credentials kubeadm said expired in the failed command's output (which is a
        /// secret's and not kept): what `plan recover` writes over the twin's state. Always
        /// written; absent only in journals written before it existed, whose reason is read for
        /// kubeadm's words instead ([`ExpiredCredentials::read`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expired: Option<ExpiredCredentials>,
    },
    RollbackStarted {
        step: String,
        recovery: String,
        /// The recovery's number in the twin's ranking (`plan recover --list`); absent when no
        /// candidate could be carried out (it held, doing nothing) and in journals written
        /// before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<usize>,
        /// Who chose it; absent in journals written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chosen_by: Option<ChosenBy>,
    },
    RollbackFinished {
        step: String,
        ok: bool,
        reason: Option<String>,
        /// The steps the recovery undid, pending again (a resume runs them); empty when it failed.
        #[serde(default)]
        reopened: Vec<String>,
    },
    /// A go-forward carried out at the halt in `step`: `nodes` written off, `state` the twin's
    /// state after it (what the hosts were checked against; the resume predicts the rest of the
    /// plan from it), `plan_digest` the fingerprint of the plan going on without them, which the
    /// run follows from `step` on, or from `going_on_from` where the halt came after every
    /// command of `step` had run (the step is done, the plan goes on from the next one).
    WrittenOff {
        step: String,
        nodes: Vec<String>,
        state: Box<plan_model::cluster::Cluster>,
        plan_digest: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        going_on_from: Option<String>,
    },
    /// At a halt: the plan's `forget-join-secrets` operation ran on every master (the join
    /// secrets and tokens the run made are gone); `left` names the places it could not reach.
    SecretsSwept {
        #[serde(default)]
        left: Vec<String>,
    },
    /// At a resume after a sweep: the commands of `step` that write the join secrets ran again
    /// before the first command that reads them.
    SecretsRemade {
        step: String,
    },
    RunFinished,
}

/// Who chose the recovery a `rollback-started` record begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChosenBy {
    /// The twin: its best candidate (`plan recover` without `--choose`).
    Twin,
    /// The operator: `plan recover --choose N`.
    Operator,
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

impl Record {
    /// `<event> <step>` (`step-finished 4.2`), for saying which records a repair dropped.
    pub fn summary(&self) -> String {
        let value = serde_json::to_value(&self.event).unwrap_or_default();
        let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let mut summary = field("event");
        for name in ["step", "phase"] {
            if !field(name).is_empty() {
                summary = format!("{summary} {}", field(name));
            }
        }
        if let Some(index) = value.get("index").and_then(serde_json::Value::as_u64) {
            summary = format!("{summary} #{index}");
        }
        summary
    }
}

/// A damaged tail the journal cut when it was opened to append.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    pub damage: Damage,
    /// Where the cut bytes were written; none for a torn last write (what a crash of the
    /// executor leaves, dropped as before).
    pub aside: Option<PathBuf>,
}

/// An open journal file (or none, for a dry run).
pub struct Journal {
    file: Option<File>,
    path: PathBuf,
    state_dir: PathBuf,
    pub records: Vec<Record>,
    /// The damaged tail cut when it was opened, for the caller to report.
    pub cut: Option<Cut>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

fn journal_error(path: &Path, reason: impl std::fmt::Display) -> ExecError {
    ExecError::Journal { path: path.display().to_string(), reason: reason.to_string() }
}

/// Syncs a directory, so that a file created, cut or renamed in it survives a crash.
fn fsync_dir(dir: &Path) -> Result<(), ExecError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| journal_error(dir, format!("fsync of the directory: {e}")))
}

/// Opens `path` to append, never through a symbolic link.
fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path)
}

impl Journal {
    /// A journal kept in memory only (dry runs).
    pub fn in_memory() -> Journal {
        Journal { file: None, path: PathBuf::from("<memory>"), state_dir: PathBuf::new(), records: Vec::new(), cut: None }
    }

    /// Opens (creating) the journal in `state_dir` and reads what it holds; cuts a damaged tail
    /// off first, so that the next record starts where the readable ones end.
    ///
    /// *Caveats*: a torn last write (no newline) is dropped, as a crash leaves it; any other
    /// damaged tail (garbage that ends in a newline, a run of NULs) is written byte for byte to
    /// `journal.jsonl.cut-<unix ms>` first and reported in [`Journal::cut`]. The journal's
    /// directory is synced after the file is created and after a cut. The caller holds the lock.
    ///
    /// # Errors
    /// As [`read`] (damage in the middle, a lost journal), and when the file cannot be opened,
    /// cut or synced, or is a symbolic link.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("journal.jsonl"), "garbage\n").unwrap();
    /// let journal = plan_exec::journal::Journal::open(dir.path()).unwrap();
    /// assert!(journal.cut.unwrap().aside.is_some(), "the garbage is kept aside");
    /// assert_eq!(std::fs::read(dir.path().join("journal.jsonl")).unwrap(), b"");
    /// ```
    pub fn open(state_dir: &Path) -> Result<Journal, ExecError> {
        let path = journal_path(state_dir);
        let contents = read(state_dir)?;
        let existed = std::fs::symlink_metadata(&path).is_ok();
        let file = open_append(&path).map_err(|e| journal_error(&path, e))?;
        if !existed {
            fsync_dir(state_dir)?;
        }
        let cut = match contents.damage {
            Some(damage) => Some(cut_tail(state_dir, damage)?),
            None => None,
        };
        Ok(Journal { file: Some(file), path, state_dir: state_dir.to_path_buf(), records: contents.records, cut })
    }

    /// Appends `event` and syncs it to disk before returning. The first `run-started` of a state
    /// directory also writes the run marker ([`RUN_MARKER_FILE`]).
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
            if matches!(record.event, Event::RunStarted { .. }) {
                mark_run_began(&self.state_dir, line.as_bytes())?;
            }
        }
        self.records.push(record);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Cuts a damaged tail off the journal, keeping it aside unless it is a torn last write.
fn cut_tail(state_dir: &Path, damage: Damage) -> Result<Cut, ExecError> {
    let aside = if damage.torn_write {
        None
    } else {
        let bytes = std::fs::read(journal_path(state_dir)).map_err(|e| journal_error(&journal_path(state_dir), e))?;
        Some(read::set_aside(state_dir, "cut", bytes.get(damage.offset as usize..).unwrap_or_default())?)
    };
    read::cut_at(state_dir, damage.offset)?;
    Ok(Cut { damage, aside })
}

/// Writes the run marker with `line` (the first `run-started` record) unless it exists.
fn mark_run_began(state_dir: &Path, line: &[u8]) -> Result<(), ExecError> {
    let path = state_dir.join(RUN_MARKER_FILE);
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(journal_error(&path, e)),
    };
    file.write_all(line).and_then(|()| file.sync_all()).map_err(|e| journal_error(&path, e))?;
    fsync_dir(state_dir)
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
        let records = read(dir.path()).expect("every line reads back").records;
        let progress = Progress::from_records(&records);
        assert!(progress.completed.contains("4.2") && progress.interrupted.is_none(), "{progress:?}");
        assert_eq!(records.len(), 2, "the torn line is gone, the new record kept");
    }

    fn started() -> Event {
        Event::RunStarted {
            scenario: "s".into(),
            plan_digest: "d".into(),
            steps: vec!["4.2".into()],
            check: "pass".into(),
            override_check: None,
            resume: false,
            pid: 1,
        }
    }

    fn damage_then_resume(tail: &[u8]) -> (tempfile::TempDir, Journal, Vec<Record>) {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.append(started()).unwrap();
        journal.append(Event::StepStarted { step: "4.2".into() }).unwrap();
        drop(journal);
        OpenOptions::new().append(true).open(dir.path().join(JOURNAL_FILE)).unwrap().write_all(tail).unwrap();
        let mut journal = Journal::open(dir.path()).expect("a damaged tail never makes the journal unreadable");
        assert_eq!(journal.records.len(), 2);
        journal.append(Event::StepFinished { step: "4.2".into(), how: "ran".into() }).unwrap();
        let records = read(dir.path()).expect("readable after the append").records;
        (dir, journal, records)
    }

    #[test]
    fn a_garbage_last_line_is_cut_and_kept_aside_before_the_next_append() {
        let (_dir, journal, records) = damage_then_resume(b"{\"v\":1,\"event\":garbage}\n");
        assert_eq!(records.len(), 3, "the new record follows the readable ones");
        let cut = journal.cut.expect("the cut is reported");
        assert_eq!((cut.damage.line, cut.damage.lines), (3, 1));
        let aside = cut.aside.expect("garbage is kept, not silently dropped");
        assert_eq!(std::fs::read(aside).unwrap(), b"{\"v\":1,\"event\":garbage}\n");
    }

    #[test]
    fn a_write_torn_inside_a_utf8_character_is_cut() {
        let torn = "{\"v\":1,\"at_ms\":1,\"event\":\"command-finished\",\"output\":\"\u{2026}".as_bytes();
        let (_dir, journal, records) = damage_then_resume(&torn[..torn.len() - 1]);
        assert_eq!(records.len(), 3);
        assert!(journal.cut.is_some_and(|c| c.damage.torn_write && c.aside.is_none()));
    }

    #[test]
    fn any_bytes_at_the_end_leave_a_journal_that_reads_after_a_resume() {
        for tail in [&b"\0\0\0\0"[..], b"\n\n\xff\n", b"\xe2\x80", b"{}\n{}\n", b"garbage\n\xc3"] {
            let (_dir, _, records) = damage_then_resume(tail);
            assert_eq!(records.len(), 3, "{tail:?}");
        }
    }

    #[test]
    fn the_first_run_marks_the_directory_and_a_deleted_journal_is_then_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        assert!(!dir.path().join(RUN_MARKER_FILE).exists(), "opening alone marks nothing");
        journal.append(started()).unwrap();
        drop(journal);
        assert!(std::fs::read_to_string(dir.path().join(RUN_MARKER_FILE)).unwrap().contains("\"event\":\"run-started\""));
        std::fs::remove_file(dir.path().join(JOURNAL_FILE)).unwrap();
        assert!(matches!(Journal::open(dir.path()), Err(ExecError::JournalLost { .. })));
        std::fs::write(dir.path().join(JOURNAL_FILE), "").unwrap();
        assert!(matches!(Journal::open(dir.path()), Err(ExecError::JournalLost { .. })));
    }

    #[test]
    fn a_symlinked_journal_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.path().join(JOURNAL_FILE)).unwrap();
        assert!(Journal::open(dir.path()).is_err());
        assert!(!target.exists());
    }
}
