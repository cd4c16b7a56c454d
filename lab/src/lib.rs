//! A loopback replica of a scenario's control plane from real processes, and rehearsals that
//! measure the twin against it.
//!
//! What is real: one `etcd` process per master (Debian's etcd-server), driven with `etcdctl`;
//! `haproxy` at the lab VIP; serving certs from a lab CA and TLS verified by rustls; `/readyz`
//! from the local etcd's health. Stand-ins: the apiserver (an HTTPS server answering `/readyz`
//! only), kubeadm. Not built: kubelets, consumers, the hypervisor. The walk drives the lab straight
//! from the twin's step actions; [`executor_rehearsal`] runs a slice of the plan through the
//! executor on sshd fixture hosts ([`host`]). Every address the lab binds or dials is in
//! 127.0.0.0/8.

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
