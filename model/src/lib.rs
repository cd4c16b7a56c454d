//! The pure model of a kubeadm control-plane migration: inventory, state, steps, faults, invariants.
//!
//! No IO, no async, no clock, no randomness: every transition is a function of its arguments.

pub mod action;
pub mod capacity;
pub mod cluster;
pub mod diff;
pub mod facts;
pub mod fault;
pub mod hand;
pub mod identity;
pub mod invariant;
pub mod locate;
pub mod observe;
pub mod operation;
pub mod plan;
pub mod planner;
pub mod scenario;
pub mod starter;
#[cfg(test)]
mod test_states;
pub mod topology;
pub mod validate;
