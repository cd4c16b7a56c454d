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
use crate::observe::{self, Drift, Observation};
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

/// Adds `entry` to `drift` unless an entry of the same node and fact is there.
pub(super) fn add_new(drift: &mut Vec<Drift>, entry: Drift) {
    if !drift.iter().any(|d| d.node == entry.node && d.what == entry.what) {
        drift.push(entry);
    }
}

/// Whether the halt journalled with `halted_drift` saw something that did not answer, and
/// everything answers in `now` (the drift of a new look; `None`: nobody looked): what
/// [`AtHalt::hosts_back`] says, read back by `plan recover`.
pub(super) fn hosts_back_since(halted_drift: &[Drift], now: Option<&[Drift]>) -> bool {
    now.is_some_and(|now| !silent(halted_drift).is_empty() && silent(now).is_empty())
}

/// What the look at a halt still waits for before it takes what is silent as dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HaltWait {
    /// Everything that does not answer: nothing was waited for yet.
    All,
    /// Only the hypervisors: the halt's drift went through the wait before the step, which does
    /// not look at them.
    Hypervisors,
    /// Nothing: the halt is at by-hand work, nothing failed, and the operator is told at once,
    /// what is silent named and taken as down by the recovery shown; the resume looks at the
    /// hosts again before it goes on (a hypervisor only when a command of the plan reaches it),
    /// and `plan recover` looks at everything again.
    Nothing,
}

impl Runner<'_> {
    /// The twin's states a halt in step `i` may show: before it, or, once some of its commands
    /// ran (`started`), any state its actions pass through. The halt and `plan recover` judge
    /// what differs, and what does not answer, against the same states.
    pub(super) fn states_at_halt(&self, i: usize, started: bool) -> Vec<Cluster> {
        if started {
            self.prediction.within(self.t, self.plan, i)
        } else {
            vec![*self.prediction.before(i)]
        }
    }

    /// The state recoveries are chosen from at a halt in step `i`: the twin's, before the step or
    /// after it when some of its commands ran, with the hosts' answers written over it. What does
    /// not answer is waited for first ([`Runner::wait_while_silent`]), as far as `wait` allows.
    ///
    /// # Errors
    /// An observer failed, or the journal cannot be written.
    pub(super) fn believed_at_halt(&mut self, i: usize, started: bool, wait: HaltWait) -> Result<AtHalt, ExecError> {
        let (believed, observation) = self.believed(i, started)?;
        let Some(last) = observation else {
            return Ok(AtHalt { believed, silent: Vec::new(), still_silent: Vec::new() });
        };
        let base = if started { *self.prediction.after(i) } else { *self.prediction.before(i) };
        let states = self.states_at_halt(i, started);
        let allowed: Vec<&Cluster> = states.iter().collect();
        let first = silent(&observe::drift(self.t, &last, &allowed));
        // A wait before the step did not look at the hypervisors: one silent now is waited for.
        let hypervisors = &self.t.scenario.hypervisors;
        let unwaited = match wait {
            HaltWait::All => true,
            HaltWait::Hypervisors => first.iter().any(|d| hypervisors.iter().any(|h| h.name == d.node)),
            HaltWait::Nothing => false,
        };
        // A stop the operator asked for is not held up by a wait.
        if first.is_empty() || !unwaited || self.options.host_wait.is_zero() || crate::interrupt::asked(self.options.stop) {
            return Ok(AtHalt { believed, still_silent: first.clone(), silent: first });
        }
        let (last, drift) = self.wait_while_silent(i, &base, &allowed, last, false)?;
        let believed = observe::overlay(self.t, &last, &self.base_at_halt(i, started, &last));
        Ok(AtHalt { believed, silent: first, still_silent: silent(&drift) })
    }

    /// What did not answer in step `i` (`last`, against the twin's `allowed` states) may come
    /// back (a host rebooting, an etcd member cut off for a while): look again, `base` as the
    /// twin's state to read by, until nothing left does not answer, or until
    /// [`RunOptions::host_wait`] has passed or the operator asks to stop; then what is still
    /// silent is taken as dead. Journalled as an `observed` record `after-waiting`; returns the
    /// last look and its drift.
    ///
    /// # Errors
    /// An observer failed, or the journal cannot be written.
    pub(super) fn wait_while_silent(
        &mut self,
        i: usize,
        base: &Cluster,
        allowed: &[&Cluster],
        mut last: Observation,
        settle: bool,
    ) -> Result<(Observation, Vec<Drift>), ExecError> {
        let deadline = Instant::now() + self.options.host_wait;
        // A few looks within the wait, at most one every HOST_WAIT_POLL_S.
        let poll = self
            .options
            .host_poll
            .unwrap_or_else(|| (self.options.host_wait / 3).clamp(Duration::from_millis(100), Duration::from_secs(HOST_WAIT_POLL_S)));
        // Around a halt the hypervisors are looked at too, as the halt's first look did.
        let scope = if settle { self.scope(i) } else { self.scope(i).with_hypervisors() };
        let mut drift = observe::drift(self.t, &last, allowed);
        let told: Vec<String> = silent(&drift).iter().map(|d| format!("{}: {}", d.node, d.evidence)).collect();
        if !told.is_empty() {
            let step = self.plan.steps[i].clone();
            self.operator.waiting(&step, &told, self.options.host_wait);
        }
        while !silent(&drift).is_empty() && Instant::now() < deadline && !crate::interrupt::asked(self.options.stop) {
            let names: Vec<String> = silent(&drift).into_iter().map(|d| d.node).collect();
            tracing::warn!(silent = %names.join(", "), "waiting for what does not answer");
            self.pause_until((Instant::now() + poll).min(deadline));
            let Some(observation) = self.observe_now(base, scope)? else { break };
            drift = observe::drift(self.t, &observation, allowed);
            last = observation;
        }
        // What was silent answers again: with `settle` (before a step), what follows it (a load
        // balancer's health check taking the backend back, a few checks later) is given the same
        // time to settle as after a step.
        if settle && !drift.is_empty() && silent(&drift).is_empty() {
            drift = self.settle(i, base, allowed, scope, drift)?;
        }
        let step = self.plan.steps[i].id.clone();
        self.journal.append(Event::Observed { step, when: "after-waiting".to_string(), drift: drift.clone() })?;
        Ok((last, drift))
    }

    /// Sleeps until `until`, or until the operator asks the run to stop (looked at every 100 ms).
    pub(super) fn pause_until(&self, until: Instant) {
        while !crate::interrupt::asked(self.options.stop) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}
