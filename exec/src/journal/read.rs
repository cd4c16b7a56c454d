//! Reading a journal file byte by byte: its whole records, where it stops being readable, and the
//! repair that keeps what comes before damage in its middle.

use super::{fsync_dir, journal_error, now_ms, Record, JOURNAL_FILE, RUN_MARKER_FILE};
use crate::ExecError;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where a journal file stops being readable.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    /// 1-based number of the first line that is not a whole record.
    pub line: usize,
    /// Byte offset at which that line starts: everything before it is whole records.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// Why that line cannot be read.
    pub reason: String,
    /// Lines from `line` to the end (the last one counted even without its newline).
    pub lines: usize,
    /// Readable records after the damaged line; none for a damaged tail.
    pub records_after: Vec<Record>,
    /// The damage is one last line without its newline: a write torn by a crash or a full disk,
    /// which the executor itself leaves behind.
    pub torn_write: bool,
}

impl Damage {
    /// Damage with no record after it: the tail of the file, which may be cut off.
    pub fn is_tail(&self) -> bool {
        self.records_after.is_empty()
    }
}

/// What a journal file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    /// The records before any damage.
    pub records: Vec<Record>,
    pub damage: Option<Damage>,
}

/// One line of the file: its bytes without the newline, where it starts, whether it has one.
struct Line<'b> {
    text: &'b [u8],
    offset: usize,
    ended: bool,
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset >= bytes.len() {
            return None;
        }
        let rest = &bytes[offset..];
        let line = match rest.iter().position(|b| *b == b'\n') {
            Some(end) => Line { text: &rest[..end], offset, ended: true },
            None => Line { text: rest, offset, ended: false },
        };
        offset += line.text.len() + usize::from(line.ended);
        Some(line)
    })
}

/// A line as a record, or why it is none. A line without its newline is never a record: its write
/// was torn before the newline, so it was never synced whole.
fn record(line: &Line<'_>) -> Result<Record, String> {
    let text = std::str::from_utf8(line.text).map_err(|e| format!("not UTF-8 at byte {}", e.valid_up_to()))?;
    let parsed = serde_json::from_str::<Record>(text).map_err(|e| e.to_string())?;
    if line.ended {
        Ok(parsed)
    } else {
        Err("no newline at the end: the write was torn".to_string())
    }
}

/// Splits journal bytes into the records before the first unreadable line and what follows.
/// Blank lines are skipped. Any byte sequence is accepted: a torn UTF-8 character, a NUL run
/// from a crash on some file systems, a line of garbage that ends in a newline.
pub fn parse(bytes: &[u8]) -> Contents {
    let mut contents = Contents::default();
    for (i, line) in lines(bytes).enumerate() {
        if line.ended && line.text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = record(&line);
        match (&mut contents.damage, parsed) {
            (None, Ok(record)) => contents.records.push(record),
            (None, Err(reason)) => {
                contents.damage = Some(Damage {
                    line: i + 1,
                    offset: line.offset as u64,
                    bytes: (bytes.len() - line.offset) as u64,
                    reason,
                    lines: 0,
                    records_after: Vec::new(),
                    torn_write: !line.ended,
                })
            }
            (Some(damage), Ok(record)) => damage.records_after.push(record),
            (Some(_), Err(_)) => {}
        }
        if let Some(damage) = &mut contents.damage {
            damage.lines += 1;
        }
    }
    contents
}

/// The journal's path in `state_dir`.
pub fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join(JOURNAL_FILE)
}

/// The journal's bytes; none when there is no journal yet.
fn journal_bytes(path: &Path) -> Result<Vec<u8>, ExecError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(journal_error(path, e)),
    }
}

/// Reads the journal of `state_dir` (a missing file has no records).
///
/// *Caveats*: a damaged tail is reported in [`Contents::damage`] and not read; it is cut when the
/// journal is next opened to append ([`super::Journal::open`]).
///
/// # Errors
/// [`ExecError::JournalDamaged`] when a readable record follows an unreadable line (the damage is
/// in the middle: [`repair`] is the way on); [`ExecError::JournalLost`] when the journal is
/// missing or holds no record although the run marker shows a run began in `state_dir`;
/// [`ExecError::Journal`] when the file cannot be read.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("journal.jsonl"), "garbage\n").unwrap();
/// let contents = plan_exec::journal::read(dir.path()).unwrap();
/// assert!(contents.records.is_empty() && contents.damage.unwrap().is_tail());
/// ```
pub fn read(state_dir: &Path) -> Result<Contents, ExecError> {
    let path = journal_path(state_dir);
    let contents = parse(&journal_bytes(&path)?);
    if let Some(damage) = contents.damage.as_ref().filter(|d| !d.is_tail()) {
        return Err(ExecError::JournalDamaged {
            path: path.display().to_string(),
            line: damage.line,
            reason: damage.reason.clone(),
            records_after: damage.records_after.len(),
        });
    }
    if contents.records.is_empty() {
        if let Some(started) = run_began(state_dir)? {
            let marker = state_dir.join(RUN_MARKER_FILE).display().to_string();
            return Err(ExecError::JournalLost { path: path.display().to_string(), marker, started });
        }
    }
    Ok(contents)
}

/// What the run marker says of the first run in `state_dir`, if it exists.
fn run_began(state_dir: &Path) -> Result<Option<String>, ExecError> {
    let path = state_dir.join(RUN_MARKER_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let first = parse(&bytes).records.into_iter().next();
            Ok(Some(match first {
                Some(record) => format!("{}, at {} ms since the epoch", record.summary(), record.at_ms),
                None => "its record cannot be read".to_string(),
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(journal_error(&path, e)),
    }
}

/// Writes `bytes` to a new file beside the journal, `journal.jsonl.<what>-<unix ms>`, synced.
pub(super) fn set_aside(state_dir: &Path, what: &str, bytes: &[u8]) -> Result<PathBuf, ExecError> {
    let aside = state_dir.join(format!("{JOURNAL_FILE}.{what}-{}", now_ms()));
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&aside).map_err(|e| journal_error(&aside, e))?;
    file.write_all(bytes).map_err(|e| journal_error(&aside, e))?;
    file.sync_all().map_err(|e| journal_error(&aside, format!("fsync: {e}")))?;
    Ok(aside)
}

/// Cuts the journal at `offset` and syncs it and its directory.
pub(super) fn cut_at(state_dir: &Path, offset: u64) -> Result<(), ExecError> {
    let path = journal_path(state_dir);
    let file = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(&path).map_err(|e| journal_error(&path, e))?;
    file.set_len(offset).map_err(|e| journal_error(&path, format!("cutting at byte {offset}: {e}")))?;
    file.sync_all().map_err(|e| journal_error(&path, format!("fsync: {e}")))?;
    fsync_dir(state_dir)
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Repair {
    /// Every line is a record.
    Nothing { records: usize },
    /// The journal was cut before its first unreadable line.
    Cut {
        /// Records kept (those before the damage).
        kept: usize,
        damage: Damage,
        /// Where the cut-off part was written, byte for byte.
        aside: PathBuf,
    },
}

/// Keeps the records before the journal's first unreadable line and moves the rest, byte for
/// byte, to `journal.jsonl.damaged-<unix ms>` beside it.
///
/// *Caveats*: readable records after the damage are dropped from the journal (they are in the
/// file set aside): a resume then observes the hosts before the first step the kept records do
/// not show done, and halts on drift if that step (or a later one) ran. The caller holds the lock.
///
/// # Errors
/// [`ExecError::Journal`] when the journal cannot be read, or the file set aside or the cut
/// cannot be written and synced.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let record = r#"{"v":1,"at_ms":1,"event":"run-finished"}"#;
/// std::fs::write(dir.path().join("journal.jsonl"), format!("{record}\ngarbage\n{record}\n")).unwrap();
/// assert!(plan_exec::journal::read(dir.path()).is_err(), "damage in the middle is refused");
/// let repair = plan_exec::journal::repair(dir.path()).unwrap();
/// assert!(matches!(repair, plan_exec::journal::Repair::Cut { kept: 1, .. }));
/// assert_eq!(plan_exec::journal::read(dir.path()).unwrap().records.len(), 1);
/// ```
pub fn repair(state_dir: &Path) -> Result<Repair, ExecError> {
    let path = journal_path(state_dir);
    let bytes = journal_bytes(&path)?;
    let contents = parse(&bytes);
    let Some(damage) = contents.damage else {
        return Ok(Repair::Nothing { records: contents.records.len() });
    };
    let aside = set_aside(state_dir, "damaged", &bytes[damage.offset as usize..])?;
    cut_at(state_dir, damage.offset)?;
    Ok(Repair::Cut { kept: contents.records.len(), damage, aside })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"v":1,"at_ms":1,"event":"step-started","step":"4.2"}"#;

    #[test]
    fn whole_records_read_back_and_blank_lines_are_skipped() {
        let contents = parse(format!("{RECORD}\n\n{RECORD}\n").as_bytes());
        assert_eq!(contents.records.len(), 2);
        assert_eq!(contents.damage, None);
    }

    #[test]
    fn a_torn_utf8_character_is_a_damaged_tail_not_an_unreadable_journal() {
        // "…" is three bytes; a full disk tore the write after the first.
        let torn = format!("{RECORD}\n{{\"v\":1,\"output\":\"\u{2026}");
        let cut = torn.len() - 2;
        let contents = parse(&torn.as_bytes()[..cut]);
        assert_eq!(contents.records.len(), 1);
        let damage = contents.damage.expect("the torn line");
        assert!(damage.is_tail() && damage.torn_write, "{damage:?}");
        assert_eq!((damage.line, damage.offset), (2, RECORD.len() as u64 + 1));
    }

    #[test]
    fn a_garbage_line_with_its_newline_is_damage_not_a_torn_write() {
        let contents = parse(format!("{RECORD}\n\u{0}\u{0}garbage\n").as_bytes());
        let damage = contents.damage.expect("the garbage line");
        assert!(damage.is_tail() && !damage.torn_write);
        assert_eq!(damage.lines, 1);
    }

    #[test]
    fn a_record_without_its_newline_was_never_synced_whole() {
        let contents = parse(format!("{RECORD}\n{RECORD}").as_bytes());
        assert_eq!(contents.records.len(), 1);
        assert!(contents.damage.is_some_and(|d| d.torn_write));
    }

    #[test]
    fn damage_in_the_middle_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(journal_path(dir.path()), format!("{RECORD}\n{RECORD}\nnot json\n{RECORD}\n")).unwrap();
        match read(dir.path()) {
            Err(ExecError::JournalDamaged { line: 3, records_after: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn repair_keeps_the_records_before_the_damage_and_sets_the_rest_aside() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{RECORD}\n\u{ff}\u{fe}\n{RECORD}\n");
        std::fs::write(journal_path(dir.path()), &text).unwrap();
        let Repair::Cut { kept, damage, aside } = repair(dir.path()).unwrap() else { panic!("a cut") };
        assert_eq!((kept, damage.line, damage.lines, damage.records_after.len()), (1, 2, 2, 1));
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), text[RECORD.len() + 1..], "set aside byte for byte");
        assert_eq!(std::fs::read_to_string(journal_path(dir.path())).unwrap(), format!("{RECORD}\n"));
        assert_eq!(read(dir.path()).unwrap().records.len(), 1);
        assert_eq!(repair(dir.path()).unwrap(), Repair::Nothing { records: 1 });
    }

    #[test]
    fn a_missing_or_empty_journal_after_a_run_began_is_lost_not_new() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Contents::default(), "a new state directory");
        let started = r#"{"v":1,"at_ms":7,"event":"run-started","scenario":"s","plan_digest":"d","steps":[],"check":"pass","override_check":null,"resume":false,"pid":1}"#;
        std::fs::write(dir.path().join(RUN_MARKER_FILE), format!("{started}\n")).unwrap();
        for journal in [None, Some(""), Some("garbage\n")] {
            if let Some(text) = journal {
                std::fs::write(journal_path(dir.path()), text).unwrap();
            }
            match read(dir.path()) {
                Err(ExecError::JournalLost { started, .. }) => assert!(started.contains("run-started"), "{started}"),
                other => panic!("{journal:?}: {other:?}"),
            }
        }
    }
}
