//! Everything `plan` prints goes out here: colour decided once per stream, a closed pipe ends the
//! output quietly.
//!
//! Text is styled with `anstyle` where it is built and written through `anstream`, which drops
//! the escape codes when `NO_COLOR` is set or the stream is not a terminal: the report a script
//! or a file receives is plain text.

use crate::Failure;
use anstyle::{AnsiColor, Style};
use std::io::{ErrorKind, Write};

/// A verdict that passed, a run that completed.
pub const GOOD: Style = AnsiColor::Green.on_default().bold();
/// A verdict that failed, a violation's name.
pub const BAD: Style = AnsiColor::Red.on_default().bold();
/// The `warning:` label.
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
/// The `error:` label on stderr.
pub const ERROR: Style = AnsiColor::Red.on_default().bold();

/// `text` in `style`. The codes reach a terminal only: the stream strips them elsewhere.
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// `warning:` in its colour, the label every finding that is not a violation starts with.
pub fn warning() -> String {
    paint(WARNING, "warning:")
}

/// Writes `text` to standard output.
///
/// A closed pipe is not an error: the reader has what it wanted (`plan show | head -1`), so the
/// rest is dropped and the command still ends with the exit code of what it found, as it would
/// have with the whole report read. This is the one place that decides it, for every command:
/// a `SIGPIPE` that killed the process would also kill an executor mid-step when a child's pipe
/// closed.
///
/// # Errors
/// Any other write error (a full disk, `> /dev/full`) as [`Failure::Input`]: the report did not
/// reach its reader.
pub fn print(text: &str) -> Result<(), Failure> {
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(Failure::Input(format!("cannot write to standard output: {e}"))),
        _ => Ok(()),
    }
}

/// Writes `value` to standard output as one pretty-printed JSON document and a newline.
///
/// # Errors
/// As [`print`]; a value serde cannot write (never for the documents here) as [`Failure::Input`].
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::Input(format!("cannot write the JSON document: {e}")))?;
    print(&(text + "\n"))
}

/// Writes `text` to standard error, where nothing is left to report a failure to: an error
/// writing it is dropped, never a panic.
pub fn eprint(text: &str) {
    let mut err = anstream::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_wraps_the_text_in_codes_that_reset() {
        let painted = paint(BAD, "FAIL");
        assert!(painted.starts_with("\u{1b}[") && painted.contains("FAIL") && painted.ends_with("\u{1b}[0m"), "{painted:?}");
        let plain = anstream::adapter::strip_str(&painted).to_string();
        assert_eq!(plain, "FAIL");
    }
}
