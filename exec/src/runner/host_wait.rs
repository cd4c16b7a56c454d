//! Hosts that do not answer: waited for, before a step and at a halt, for up to
//! [`RunOptions::host_wait`] (by default the twin's reboot time), then taken as dead.
//!
//! The executor cannot tell a rebooting host from a dead one but by waiting. Before a step a host
//! that answers again lets the step run. At a halt, hosts that did not answer and answer again
//! within the wait make the fault a temporary one, as the twin's policy treats it: the recovery
//! proposed first is to wait for it and run the step again (`plan_sim::search::retry`); hosts
//! still silent are down in the state the recoveries are chosen from.

use super::{Runner, HOST_WAIT_POLL_S};
use crate::journal::Event;
use crate::observe::{self, Drift, Observation};
use crate::ExecError;
use plan_model::cluster::Cluster;
use std::time::{Duration, Instant};

/// What the executor believes at a halt, once it waited for the hosts that did not answer.
pub(super) struct AtHalt {
    /// The twin's state with the last look written over it.
    pub(super) believed: Cluster,
    /// Hosts that did not answer the first look at the halt, as drift (`reachable: no answer`).
    pub(super) silent: Vec<Drift>,
    /// The hosts that still do not answer after the wait.
    pub(super) still_silent: Vec<String>,
}

impl AtHalt {
    /// Every host that did not answer at the halt answers again: the fault was temporary.
    pub(super) fn hosts_back(&self) -> bool {
        !self.silent.is_empty() && self.still_silent.is_empty()
    }
}

/// The drift entries of hosts no SSH connection reached in `observation`.
pub(super) fn silent_hosts(observation: &Observation) -> Vec<Drift> {
    let drift = observe::drift_of_unreachable(observation);
    drift.into_iter().filter(|d| observation.no_ssh.contains(&d.node)).collect()
}

/// Whether the halt journalled as `halted_drift` saw hosts that did not answer, and every one of
/// them answers in `now`: what [`AtHalt::hosts_back`] says, read back by `plan recover`.
pub(super) fn hosts_back_since(halted_drift: &[Drift], now: Option<&Observation>) -> bool {
    let silent: Vec<&Drift> = halted_drift.iter().filter(|d| observe::is_unreachable(d)).collect();
    match now {
        Some(now) => !silent.is_empty() && silent.iter().all(|d| !now.no_ssh.contains(&d.node)),
        None => false,
    }
}

impl Runner<'_> {
    /// The state recoveries are chosen from at a halt in step `i`: the twin's, before the step or
    /// after it when some of its commands ran, with the hosts' answers written over it; hosts
    /// that did not answer are looked at again every [`HOST_WAIT_POLL_S`] for up to
    /// [`RunOptions::host_wait`] first (journalled as an `observed` record `after-waiting`).
    ///
    /// # Errors
    /// An observer failed, or the journal cannot be written.
    pub(super) fn believed_at_halt(&mut self, i: usize, started: bool) -> Result<AtHalt, ExecError> {
        let (believed, observation) = self.believed(i, started)?;
        let Some(mut last) = observation else {
            return Ok(AtHalt { believed, silent: Vec::new(), still_silent: Vec::new() });
        };
        let silent = silent_hosts(&last);
        if silent.is_empty() || self.options.host_wait.is_zero() {
            let still_silent = last.no_ssh.clone();
            return Ok(AtHalt { believed, silent, still_silent });
        }
        let base = if started { *self.prediction.after(i) } else { *self.prediction.before(i) };
        let scope = self.scope(i);
        let deadline = Instant::now() + self.options.host_wait;
        while !last.no_ssh.is_empty() && Instant::now() < deadline {
            tracing::warn!(hosts = %last.no_ssh.join(", "), "waiting at the halt for hosts that do not answer");
            std::thread::sleep(Duration::from_secs(HOST_WAIT_POLL_S).min(deadline.saturating_duration_since(Instant::now())));
            let Some(observation) = self.observe_now(&base, scope)? else { break };
            last = observation;
        }
        let step = self.plan.steps[i].id.clone();
        let drift = observe::drift(self.t, &last, &[&base]);
        self.journal.append(Event::Observed { step, when: "after-waiting".to_string(), drift })?;
        Ok(AtHalt { believed: observe::overlay(self.t, &last, &base), silent, still_silent: last.no_ssh })
    }

    /// A host that did not answer may be rebooting: look again every [`HOST_WAIT_POLL_S`] until
    /// it answers and nothing differs, or until [`RunOptions::host_wait`] has passed; then it is
    /// taken as dead and the drift stands.
    pub(super) fn wait_for_hosts(
        &mut self,
        i: usize,
        allowed: &[&Cluster],
        silent: &[String],
        mut drift: Vec<Drift>,
    ) -> Result<Vec<Drift>, ExecError> {
        let deadline = std::time::Instant::now() + self.options.host_wait;
        let step = self.plan.steps[i].id.clone();
        let scope = self.scope(i);
        let base = *allowed[0];
        while std::time::Instant::now() < deadline {
            tracing::warn!(hosts = %silent.join(", "), "waiting for hosts that do not answer");
            std::thread::sleep(Duration::from_secs(HOST_WAIT_POLL_S).min(deadline.saturating_duration_since(std::time::Instant::now())));
            let Some(observation) = self.observe_now(&base, scope)? else { break };
            drift = observe::drift(self.t, &observation, allowed);
            if drift.is_empty() || observation.no_ssh.is_empty() {
                break;
            }
        }
        self.journal.append(Event::Observed { step, when: "after-waiting".to_string(), drift: drift.clone() })?;
        Ok(drift)
    }
}
