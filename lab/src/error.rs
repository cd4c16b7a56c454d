//! What can stop the lab from running: missing binaries, clashing addresses, processes that die.
//!
//! A refusal by real etcd (no quorum, a timeout) is not an error here: it is an observation, and
//! [`crate::etcd::Refused`] carries it.

use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{binary} not found at {}: install Debian's {package} (apt-get install {package})", path.display())]
    BinaryMissing { binary: &'static str, path: PathBuf, package: &'static str },
    #[error("{node} ({address}) and {other} both map to {loopback}: the lab keeps the last two octets, so they must differ")]
    AddressClash { node: String, other: String, address: Ipv4Addr, loopback: Ipv4Addr },
    #[error("{node} ({address}) maps to {loopback}, which is not a usable loopback host address")]
    UnusableAddress { node: String, address: Ipv4Addr, loopback: Ipv4Addr },
    #[error("refusing to dial {0}: the lab only talks to 127.0.0.0/8")]
    NotLoopback(Ipv4Addr),
    #[error("{address}:{port} is in use (another lab on the same loopback range?)")]
    PortBusy { address: Ipv4Addr, port: u16 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not happen within {timeout_ms} ms")]
    Timeout { what: String, timeout_ms: u64 },
    #[error("{process} exited right after it started; last log lines:\n{log_tail}")]
    Exited { process: String, log_tail: String },
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    #[error("the lab cannot rehearse {what}: {why}")]
    NotRehearsable { what: String, why: String },
    #[error("stopped by the operator at step {step}: the lab is stopped and its directory removed")]
    Interrupted { step: String },
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io { what: what.into(), source }
    }
}
