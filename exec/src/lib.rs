//! The executor: replays a verified plan on real hosts, checking reality against the twin.
//!
//! The pieces, each in its own module: where a command runs ([`target`]), what the plan's
//! commands become when run ([`invocation`]), the transports that run them ([`transport`],
//! [`ssh`]), the loopback guard ([`guard`]), how it reads a command ([`simple_command`]), what it asks of a host ([`confirm`]) and the ssh configuration it reads first ([`ssh_config`]), the workstation on another machine ([`workstation`]), redaction of secrets ([`redact`]), what the twin
//! predicts ([`predict`]), what the hosts show ([`observe`]: files, [`etcd`], [`haproxy`],
//! [`kubernetes`]), a cluster surveyed for `plan init` ([`survey`]), the journal ([`journal`]) and its lock ([`lock`]), and the runner that ties them together ([`runner`]).

pub mod address;
pub mod confirm;
pub mod etcd;
pub mod guard;
pub mod haproxy;
pub mod interrupt;
pub mod invocation;
pub mod journal;
pub mod kubernetes;
pub mod lock;
pub mod observe;
pub mod predict;
pub mod preflight;
pub mod redact;
pub mod resume;
pub mod runner;
pub mod simple_command;
pub mod ssh;
pub mod ssh_config;
pub mod survey;
pub mod target;
pub mod transport;
pub mod workstation;

/// Why the executor could not do what it was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// The loopback guard refused a destination.
    #[error("refused {destination}: PLAN_LOOPBACK_ONLY=1 allows loopback destinations (127.0.0.0/8) only{why}")]
    NotLoopback { destination: String, why: String },
    /// An SSH session could not be opened or broke.
    #[error("ssh {host}: {reason}")]
    Ssh { host: String, reason: String },
    /// A local command could not be started.
    #[error("local command: {reason}")]
    Local { reason: String },
    /// A command ran past its deadline and was stopped.
    #[error("{place}: command did not finish within {timeout_s} s")]
    Timeout { place: String, timeout_s: u64 },
    /// The journal cannot be read or written.
    #[error("journal {path}: {reason}")]
    Journal { path: String, reason: String },
    /// A line in the middle of the journal cannot be read: records after it would be read out of
    /// their context, so nothing is read (`journal::repair` keeps what comes before it).
    #[error("journal {path}: line {line} cannot be read ({reason}) and {records_after} record(s) follow it")]
    JournalDamaged { path: String, line: usize, reason: String, records_after: usize },
    /// The journal is missing or holds no record, yet the state directory shows a run began there.
    #[error("journal {path} holds no record, but {marker} shows a run began in this state directory ({started})")]
    JournalLost { path: String, marker: String, started: String },
    /// A file or directory the executor relies on is not safe to use (a link, another owner, open
    /// to other users).
    #[error("{path}: {reason}")]
    UnsafePath { path: String, reason: String },
    /// The ssh configuration holds a directive the executor does not run ssh with
    /// ([`ssh_config::check`]).
    #[error("ssh config {file}:{line}: `{directive}` refused: {why}")]
    SshConfigRefused { file: String, line: usize, directive: String, why: String },
    /// Another executor runs on this state directory.
    #[error("another executor holds {path}{holder}")]
    Locked { path: String, holder: String },
    /// The Kubernetes API could not be read.
    #[error("kubernetes {what}: {reason}")]
    Kube { what: String, reason: String },
    /// `--choose N` when the halt leaves nothing to undo.
    #[error("nothing to undo for the halt at step {step}: none of its commands ran and the hosts are as the twin expects before it, so no recovery is proposed; fix the cause and `plan execute --resume`")]
    NothingToUndo { step: String },
    /// `--choose N` names no candidate of the twin's ranking.
    #[error("there is no recovery {number} for the halt at step {step}: the twin weighs {count}, numbered 1 to {count} (`plan recover --list` shows them)")]
    NoSuchRecovery { number: usize, step: String, count: usize },
    /// `--choose KIND` names no kind the twin weighs for this halt.
    #[error("the twin weighs no {kind} recovery for the halt at step {step}: it weighs {weighed} (`plan recover --list` shows them)")]
    NoSuchKind { kind: &'static str, step: String, weighed: String },
    /// `--choose N` names a candidate the twin says cannot be carried out.
    #[error("recovery {number} for the halt at step {step} ({recovery}) cannot be carried out: {why}; nothing was run")]
    RecoveryRefused { number: usize, recovery: String, step: String, why: String },
    /// The request does not fit the plan or the journal.
    #[error("{0}")]
    Input(String),
}
