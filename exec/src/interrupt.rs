//! Ctrl-C (SIGINT) and SIGTERM during `plan execute` (a `plan recover` keeps the default: its
//! recovery is not cut into resumable commands).
//!
//! The first signal asks the run to stop at the next safe point: the command that runs now
//! finishes (it runs in a process group or on an SSH master of its own, which the terminal's
//! signal does not reach), its end is journalled, and the run halts with "stopped by the
//! operator" (the join secrets are swept as at any halt; `--resume` goes on). A second signal
//! ends the process at once, as SIGKILL would: the journal holds the command as started, and
//! `--resume` settles it by its operation's probe.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// What the first signal prints; `write(2)` is all a handler may call.
const NOTICE: &[u8] = b"\nplan: stopping after the command that runs now (Ctrl-C again stops at once; --resume goes on)\n";

extern "C" fn on_signal(signal: libc::c_int) {
    if REQUESTED.swap(true, Ordering::SeqCst) {
        // SAFETY: signal(2) and raise(3) are async-signal-safe; the default action ends the
        // process the way the operator asked a second time.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        return;
    }
    // SAFETY: write(2) is async-signal-safe; the buffer is a static.
    unsafe {
        libc::write(2, NOTICE.as_ptr().cast(), NOTICE.len());
    }
}

/// Installs the handler for SIGINT and SIGTERM and returns the flag it sets, which
/// [`crate::runner::RunOptions::stop`] takes.
pub fn install() -> &'static AtomicBool {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler of the right type and an empty mask; the
        // handler only touches an atomic and calls async-signal-safe functions. SA_RESTART keeps
        // the reads and waits in flight going.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    &REQUESTED
}

/// The flag [`install`] sets, without installing the handler: a run that honours it stops when a
/// caller that did install it is signalled, and never otherwise.
pub fn flag() -> &'static AtomicBool {
    &REQUESTED
}

/// Whether a stop was asked for through `flag`.
pub fn asked(flag: Option<&AtomicBool>) -> bool {
    flag.is_some_and(|f| f.load(Ordering::SeqCst))
}
