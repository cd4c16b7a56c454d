//! A loopback replica of a scenario from real processes, driven by the real executor, and
//! rehearsals that measure the twin against it.
//!
//! One sshd host per machine of the scenario ([`host`]), each in its own mount and PID
//! namespace; real etcd (Debian's etcd-server, driven by the plan's own commands through shims
//! and by `etcdctl`); real HAProxy on the load balancer's host; serving certs from a lab CA and
//! TLS verified by rustls. Stand-ins: the apiservers (an HTTPS server whose `/readyz` is its local
//! etcd's health, answering the executor's three API reads), the kubelets (a thread), and the
//! `kubeadm`, `kubectl`, hypervisor and IaC shims. [`executor_rehearsal`] runs the plan (or a
//! slice) through `plan execute`'s runner on it and sets every observation beside the twin's
//! ([`fidelity`]). Every address the lab binds or dials is in 127.0.0.0/8.

pub mod address;
pub mod apiserver;
pub mod error;
pub mod etcd;
pub mod executor_etcd;
pub mod executor_fault;
pub mod executor_lab;
pub mod executor_rehearsal;
pub mod fidelity;
pub mod haproxy;
pub mod host;
pub mod pki;
pub mod probe;
pub mod process;
pub mod scratch;

pub use error::LabError;

/// `ask` of every item at once, one thread each, the answers in the items' order: a look at a
/// node or member that is down runs into its whole timeout, and the others need not wait for it.
/// A panic in one is raised again here.
pub(crate) fn at_once<I: Send, R: Send>(items: impl IntoIterator<Item = I>, ask: impl Fn(I) -> R + Sync) -> Vec<R> {
    let ask = &ask;
    std::thread::scope(|scope| {
        let asks: Vec<_> = items.into_iter().map(|item| scope.spawn(move || ask(item))).collect();
        asks.into_iter().map(|asked| asked.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}
