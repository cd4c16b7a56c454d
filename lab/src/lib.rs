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
