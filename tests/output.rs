//! What every command prints, off a terminal: a reader that closes the pipe early (`| head -1`)
//! never makes `plan` panic, and piped or `NO_COLOR` output holds no escape codes.

mod common;

use common::{plan, root};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

/// A pipe whose reading end is already closed: every write to the other end fails with EPIPE,
/// the first as surely as the last (no race with a reader that has not closed yet).
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe(2)");
    // SAFETY: pipe(2) just returned these two descriptors; each is owned exactly once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

struct Closed {
    /// None: killed by a signal.
    code: Option<i32>,
    stderr: String,
}

/// Runs `plan` with stdout a closed pipe, and stderr too when `stderr_closed` (`2>&1 | head`).
fn with_stdout_closed(args: &[&str], stderr_closed: bool) -> Closed {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plan"));
    command.args(args).current_dir(root()).stdin(Stdio::null()).stdout(Stdio::from(closed_pipe()));
    if stderr_closed {
        command.stderr(Stdio::from(closed_pipe()));
    } else {
        command.stderr(Stdio::piped());
    }
    let out = command.output().expect("the plan binary runs");
    Closed { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// Every subcommand that prints, in every format: with stdout closed it ends with the exit code it
/// has when its output is read (the verdict still counts), not by a signal, never by a panic.
#[test]
fn a_closed_stdout_never_panics_and_keeps_the_exit_code() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let page = state.path().join("report.html");
    let page = page.to_str().unwrap();
    let mut cases: Vec<Vec<&str>> = Vec::new();
    for format in ["text", "markdown", "json", "yaml", "dot", "mermaid"] {
        cases.push(vec!["show", "--format", format]);
    }
    cases.push(vec!["show", "--view", "topology"]);
    cases.push(vec!["show", "--format", "dot", "--view", "topology"]);
    for format in ["text", "json"] {
        cases.push(vec!["check", "--format", format]);
        cases.push(vec!["simulate", "--fail", "master-2", "--at", "2.5", "--format", format]);
        cases.push(vec!["capacity", "--format", format]);
        cases.push(vec!["status", "--state-dir", state_dir, "--format", format]);
        cases.push(vec!["lab", "status", "--state-dir", state_dir, "--format", format]);
    }
    cases.push(vec!["report", "--html", page]);
    cases.push(vec!["execute", "--dry-run"]);
    cases.push(vec!["execute", "--dry-run", "--host", "master-2"]);
    cases.push(vec!["completions", "bash"]);
    cases.push(vec!["man"]);
    cases.push(vec!["--help"]);
    for args in &cases {
        let expected = plan(args).code;
        assert_ne!(expected, 101, "plan {args:?} panics even with its output read");
        let closed = with_stdout_closed(args, false);
        assert!(!closed.stderr.contains("panicked"), "plan {args:?}: {}", closed.stderr);
        assert_eq!(closed.code, Some(expected), "plan {args:?} with stdout closed (None: killed by a signal)\n{}", closed.stderr);
        let both = with_stdout_closed(args, true);
        assert_eq!(both.code, Some(expected), "plan {args:?} with stdout and stderr closed");
    }
}

/// Off a terminal, and under NO_COLOR, the reports are plain text: no escape code in stdout or
/// stderr, also where the text would be coloured (FAIL, violations, `warning:`, `error:`).
#[test]
fn piped_and_no_color_output_has_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let cases: [&[&str]; 6] = [
        &["check"],
        &["report", "--html", page.to_str().unwrap()],
        &["simulate", "--fail", "master-2", "--at", "2.5"],
        &["capacity"],
        &["show", "--phase", "2"],
        &["simulate", "--fail", "nowhere"],
    ];
    for args in cases {
        for no_color in [false, true] {
            let mut command = Command::new(env!("CARGO_BIN_EXE_plan"));
            command.args(args).current_dir(root()).env_remove("CLICOLOR_FORCE");
            if no_color {
                command.env("NO_COLOR", "1");
            } else {
                command.env_remove("NO_COLOR");
            }
            let out = command.output().expect("the plan binary runs");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(!text.is_empty(), "plan {args:?} printed nothing");
            assert!(!text.contains('\u{1b}'), "plan {args:?} (NO_COLOR: {no_color}) prints escape codes:\n{text}");
        }
    }
}

/// The negative space of the test above: forced colour does reach a pipe, so the absence of
/// codes there is the stream's decision, not text that was never coloured.
#[test]
fn forced_colour_paints_the_verdict_and_warnings() {
    let out = Command::new(env!("CARGO_BIN_EXE_plan"))
        .arg("check")
        .current_dir(root())
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .output()
        .expect("the plan binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\u{1b}[1m\u{1b}[31mFAIL") || stdout.contains("\u{1b}[31;1mFAIL") || stdout.contains("FAIL\u{1b}[0m"),
        "{stdout}"
    );
    assert!(stdout.contains("warning:\u{1b}[0m"), "{stdout}");
}

/// Runs `plan args` with RUST_LOG set to `rust_log` (or unset) and returns (stdout, stderr).
fn logged(args: &[&str], rust_log: Option<&str>) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plan"));
    command.args(args).current_dir(root());
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let out = command.output().expect("the plan binary runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `-v` and RUST_LOG log to stderr through tracing; without them stderr holds no log line, and
/// stdout holds the report only either way.
#[test]
fn verbose_and_rust_log_log_to_stderr_only() {
    let (quiet_out, quiet_err) = logged(&["show", "--format", "json"], None);
    assert!(quiet_err.is_empty(), "no logs unless asked: {quiet_err}");
    let (verbose_out, verbose_err) = logged(&["-v", "show", "--format", "json"], None);
    assert!(verbose_err.contains("INFO") && verbose_err.contains("scenario and plan loaded"), "{verbose_err}");
    assert_eq!(verbose_out, quiet_out, "logs never reach stdout");
    let (_, filtered_err) = logged(&["show"], Some("warn"));
    assert!(!filtered_err.contains("INFO"), "RUST_LOG=warn drops info: {filtered_err}");
    let (_, env_err) = logged(&["check"], Some("info"));
    assert!(env_err.contains("exploration done"), "{env_err}");
    let (_, bad) = logged(&["show"], Some("=["));
    assert!(bad.starts_with("plan: error: RUST_LOG \"=[\": "), "{bad}");
}
