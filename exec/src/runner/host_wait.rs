//! What does not answer (a host no SSH connection reaches, an etcd member that does not answer
//! `endpoint health`: [`observe::is_silent`]): waited for, before a step and at a halt, for up to
//! [`RunOptions::host_wait`] (by default the twin's reboot time), then taken as dead.
//!
//! The executor cannot tell a rebooting host from a dead one, or a partitioned etcd member from a
//! dead one, but by waiting. Before a step, what answers again lets the step run. At a halt, what
//! did not answer and answers again within the wait makes the fault a temporary one, as the twin's
//! policy treats it: the recovery proposed first is to wait for it and run the step again
//! (`plan_sim::search::retry`); a host still silent is down in the state the recoveries are
//! chosen from.

use super::{Runner, HOST_WAIT_POLL_S};
use crate::journal::Event;
use crate::observe::{self, Drift};
use crate::ExecError;
use plan_model::cluster::Cluster;
use std::time::{Duration, Instant};

/// What the executor believes at a halt, once it waited for what did not answer.
pub(super) struct AtHalt {
    /// The twin's state with the last look written over it.
    pub(super) believed: Cluster,
    /// What did not answer at the first look at the halt, as drift ([`observe::is_silent`]).
    pub(super) silent: Vec<Drift>,
    /// What still does not answer after the wait.
    pub(super) still_silent: Vec<Drift>,
}

impl AtHalt {
    /// Everything that did not answer at the halt answers again: the fault was temporary.
    pub(super) fn hosts_back(&self) -> bool {
        !self.silent.is_empty() && self.still_silent.is_empty()
    }
}

/// The entries of `drift` that do not answer ([`observe::is_silent`]).
pub(super) fn silent(drift: &[Drift]) -> Vec<Drift> {
    drift.iter().filter(|d| observe::is_silent(d)).cloned().collect()
}

/// Whether the halt journalled with `halted_drift` saw something that did not answer, and
/// everything answers in `now` (the drift of a new look; `None`: nobody looked): what
/// [`AtHalt::hosts_back`] says, read back by `plan recover`.
pub(super) fn hosts_back_since(halted_drift: &[Drift], now: Option<&[Drift]>) -> bool {
    now.is_some_and(|now| !silent(halted_drift).is_empty() && silent(now).is_empty())
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
        let base = if started { *self.prediction.after(i) } else { *self.prediction.before(i) };
        let first = silent(&observe::drift(self.t, &last, &[&base]));
        // A stop the operator asked for is not held up by a wait.
        if first.is_empty() || self.options.host_wait.is_zero() || crate::interrupt::asked(self.options.stop) {
            return Ok(AtHalt { believed, still_silent: first.clone(), silent: first });
        }
        let scope = self.scope(i);
        let deadline = Instant::now() + self.options.host_wait;
        let mut drift = observe::drift(self.t, &last, &[&base]);
        while !silent(&drift).is_empty() && Instant::now() < deadline && !crate::interrupt::asked(self.options.stop) {
            let names: Vec<String> = silent(&drift).into_iter().map(|d| d.node).collect();
            tracing::warn!(silent = %names.join(", "), "waiting at the halt for what does not answer");
            self.pause_until((Instant::now() + Duration::from_secs(HOST_WAIT_POLL_S)).min(deadline));
            let Some(observation) = self.observe_now(&base, scope)? else { break };
            last = observation;
            drift = observe::drift(self.t, &last, &[&base]);
        }
        let step = self.plan.steps[i].id.clone();
        self.journal.append(Event::Observed { step, when: "after-waiting".to_string(), drift: drift.clone() })?;
        Ok(AtHalt { believed: observe::overlay(self.t, &last, &base), silent: first, still_silent: silent(&drift) })
    }

    /// What did not answer before step `i` may come back (a host rebooting, an etcd member cut
    /// off for a while): look again every [`HOST_WAIT_POLL_S`] until nothing differs or nothing
    /// left does not answer, or until [`RunOptions::host_wait`] has passed; then it is taken as
    /// dead and the drift stands.
    pub(super) fn wait_for_hosts(&mut self, i: usize, allowed: &[&Cluster], mut drift: Vec<Drift>) -> Result<Vec<Drift>, ExecError> {
        let deadline = Instant::now() + self.options.host_wait;
        let step = self.plan.steps[i].id.clone();
        let scope = self.scope(i);
        let base = *allowed[0];
        while Instant::now() < deadline && !crate::interrupt::asked(self.options.stop) {
            let names: Vec<String> = silent(&drift).into_iter().map(|d| d.node).collect();
            tracing::warn!(silent = %names.join(", "), "waiting for what does not answer");
            self.pause_until((Instant::now() + Duration::from_secs(HOST_WAIT_POLL_S)).min(deadline));
            let Some(observation) = self.observe_now(&base, scope)? else { break };
            drift = observe::drift(self.t, &observation, allowed);
            if drift.is_empty() || silent(&drift).is_empty() {
                break;
            }
        }
        self.journal.append(Event::Observed { step, when: "after-waiting".to_string(), drift: drift.clone() })?;
        Ok(drift)
    }

    /// Sleeps until `until`, or until the operator asks the run to stop (looked at every 100 ms).
    fn pause_until(&self, until: Instant) {
        while !crate::interrupt::asked(self.options.stop) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}
