//! Every test that starts real servers on loopback (sshd fixture hosts, etcd, HAProxy, the lab's
//! stand-ins) and drives them through `plan`: one test binary, so that the harness runs these
//! tests side by side. Cargo runs test binaries one after another; as seven binaries, each one's
//! last long test held a core while the other idled.
//!
//! Filter by module: `cargo test --test loopback lab_executor::`.
//!
//! The harness starts tests in the order of their names, so the longest ones, the crash sweep and
//! the join cut against a standing lab, are in the module that sorts first (`crash_sweep`): started
//! last, they ran on alone for half a minute after everything else had finished.

#[path = "../common/mod.rs"]
mod common;

mod crash_sweep;
mod execute;
mod execute_ssh;
mod lab_executor;
mod lab_lifecycle;
mod observe;
