//! Ctrl-C (SIGINT) and SIGTERM during `plan execute` (a `plan recover` keeps the default: its
//! recovery is not cut into resumable commands).
//!
//! The first signal asks the run to stop at the next safe point: the command that runs now
//! finishes (it runs in a process group or on an SSH master of its own, which the terminal's
//! signal does not reach), its end is journalled, and the run halts with "stopped by the
//! operator" (the join secrets are swept as at any halt; `--resume` goes on). A second signal
//! ends the process at once, as SIGKILL would: the journal holds the command as started, and
//! `--resume` settles it by its operation's probe.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// What follows the stop, which the first signal's notice tells the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AfterStop {
    /// `plan execute`: the run halts, and `--resume` goes on.
    Resume = 0,
    /// `plan rehearse`: the executor halts, then the lab stops and removes its directory.
    LabRemoved = 1,
    /// `plan lab serve` (behind `plan lab down`): the lab stops and removes its directory.
    LabDown = 2,
}

/// The notices, by [`AfterStop`]; `write(2)` of a static is all a handler may do.
const NOTICES: [&[u8]; 3] = [
    b"\nplan: stopping after the command that runs now (Ctrl-C again stops at once; --resume goes on)\n",
    b"\nplan: stopping after the command that runs now, then the lab stops and removes its directory (Ctrl-C again stops at once)\n",
    b"\nplan: the lab stops and removes its directory\n",
];

/// Which notice the handler prints (an [`AfterStop`]).
static NOTICE: AtomicU8 = AtomicU8::new(AfterStop::Resume as u8);

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
    let notice = NOTICES[usize::from(NOTICE.load(Ordering::SeqCst)).min(NOTICES.len() - 1)];
    // SAFETY: write(2) is async-signal-safe; the buffer is a static.
    unsafe {
        libc::write(2, notice.as_ptr().cast(), notice.len());
    }
}

/// Installs the handler for SIGINT and SIGTERM and returns the flag it sets, which
/// [`crate::runner::RunOptions::stop`] takes; its notice says `--resume` goes on.
pub fn install() -> &'static AtomicBool {
    install_for(AfterStop::Resume)
}

/// [`install`], the first signal's notice saying what follows the stop.
pub fn install_for(after: AfterStop) -> &'static AtomicBool {
    NOTICE.store(after as u8, Ordering::SeqCst);
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
