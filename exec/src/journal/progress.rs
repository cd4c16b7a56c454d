//! Where a run stands, replayed from its journal records: what `--resume` skips and `plan status` shows.

use super::ExpiredCredentials;
use super::{Event, Record};
use crate::observe::Drift;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Where a run stands, as its journal tells.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub plan_digest: Option<String>,
    pub scenario: Option<String>,
    pub steps: Vec<String>,
    pub completed: BTreeSet<String>,
    /// A step whose start is journalled but not its end (crash, Ctrl-C, halt).
    pub interrupted: Option<String>,
    /// Commands that finished, per step, with their exit codes.
    pub finished_commands: BTreeMap<String, BTreeMap<usize, Option<i32>>>,
    /// Commands journalled as started, per step (a started command with no end was cut off).
    pub started_commands: BTreeMap<String, BTreeSet<usize>>,
    /// The last halt, if the run is halted (cleared by a later successful step or rollback).
    pub halted: Option<Halted>,
    /// The halted step whose recovery ran last, until the run moves on (a step starts).
    pub rolled_back: Option<String>,
    pub finished: bool,
    pub override_check: Option<String>,
    /// The drift the last observation reported.
    pub last_drift: Vec<Drift>,
    /// The join secrets were swept at a halt and not made again since: a resume makes them
    /// again before the first command that reads them.
    pub secrets_swept: bool,
    /// Where the last sweep could not remove them (a host down, the API down for the tokens).
    pub secrets_left: Vec<String>,
    /// The write-offs of the go-forwards carried out, in order (a fresh run forgets them): the
    /// run follows the plan going on without each from its step on.
    pub write_offs: Vec<WrittenOff>,
}

/// A journalled write-off: the plan goes on without `nodes` from `step` on, or from
/// `going_on_from` where the halted step had run whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WrittenOff {
    pub step: String,
    pub nodes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub going_on_from: Option<String>,
    /// The twin's state after the write-off.
    #[serde(skip)]
    pub state: plan_model::cluster::Cluster,
}

/// A journalled halt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Halted {
    pub step: String,
    pub reason: String,
    pub drift: Vec<Drift>,
    pub recovery: String,
    pub recovery_actions: Vec<String>,
    /// The halt waits for by-hand work: the index of that command in the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_hand: Option<usize>,
    /// The join credentials kubeadm said expired (absent when none did).
    #[serde(skip_serializing_if = "ExpiredCredentials::is_nothing")]
    pub expired: ExpiredCredentials,
}

impl WrittenOff {
    /// The step the plan going on without the machines starts at.
    pub fn from(&self) -> &str {
        self.going_on_from.as_deref().unwrap_or(&self.step)
    }
}

impl Progress {
    /// The last write-off journalled: its state is the twin's after every write-off so far.
    pub fn written_off(&self) -> Option<&WrittenOff> {
        self.write_offs.last()
    }
}

impl Progress {
    /// Replays the records.
    pub fn from_records(records: &[Record]) -> Progress {
        let mut p = Progress::default();
        for record in records {
            match &record.event {
                Event::RunStarted { plan_digest, scenario, steps, override_check, resume, .. } => {
                    if !resume {
                        // A fresh run: what an earlier, finished run did is history.
                        p = Progress::default();
                    }
                    p.plan_digest = Some(plan_digest.clone());
                    p.scenario = Some(scenario.clone());
                    p.steps = steps.clone();
                    p.finished = false;
                    if override_check.is_some() {
                        p.override_check = override_check.clone();
                    }
                }
                Event::StepStarted { step } => {
                    // The run moved on from the rollback: the state is the run's again.
                    p.rolled_back = None;
                    p.interrupted = Some(step.clone());
                    p.finished_commands.entry(step.clone()).or_default();
                }
                Event::CommandStarted { step, index, .. } => {
                    p.started_commands.entry(step.clone()).or_default().insert(*index);
                }
                Event::CommandFinished { step, index, exit, .. } => {
                    p.finished_commands.entry(step.clone()).or_default().insert(*index, *exit);
                }
                Event::StepFinished { step, .. } => {
                    p.completed.insert(step.clone());
                    p.interrupted = None;
                    p.halted = None;
                }
                Event::Observed { drift, .. } => p.last_drift = drift.clone(),
                Event::Halted { step, reason, drift, recovery, recovery_actions, by_hand, expired } => {
                    p.halted = Some(Halted {
                        step: step.clone(),
                        reason: reason.clone(),
                        drift: drift.clone(),
                        recovery: recovery.clone(),
                        recovery_actions: recovery_actions.clone(),
                        by_hand: *by_hand,
                        expired: expired.unwrap_or_else(|| ExpiredCredentials::read(reason)),
                    });
                }
                Event::RollbackFinished { step, ok: true, reopened, .. } => {
                    // What the recovery undid must run again: neither done nor half done.
                    for undone in reopened {
                        p.completed.remove(undone);
                        p.finished_commands.remove(undone);
                        p.started_commands.remove(undone);
                    }
                    p.rolled_back = Some(step.clone());
                    p.halted = None;
                    // A step the recovery did not undo (waiting for a fault to clear) stays as it
                    // was cut: the resume finishes it.
                    if p.interrupted.as_ref().is_some_and(|cut| reopened.contains(cut)) {
                        p.interrupted = None;
                    }
                }
                Event::SecretsSwept { left } => {
                    p.secrets_swept = true;
                    p.secrets_left = left.clone();
                }
                Event::SecretsRemade { .. } => {
                    p.secrets_swept = false;
                    p.secrets_left.clear();
                }
                Event::WrittenOff { step, nodes, state, plan_digest, going_on_from } => {
                    // From here on the run follows the plan going on without them.
                    let going_on_from = going_on_from.clone();
                    p.write_offs.push(WrittenOff { step: step.clone(), nodes: nodes.clone(), going_on_from, state: **state });
                    p.plan_digest = Some(plan_digest.clone());
                }
                Event::RunFinished => p.finished = true,
                Event::PhaseConfirmed { .. } | Event::RollbackStarted { .. } | Event::RollbackFinished { .. } => {}
            }
        }
        p
    }

    /// Whether command `index` of `step` started and was never journalled as ended: the
    /// executor died while it ran, so whether it took effect is unknown.
    pub fn command_cut(&self, step: &str, index: usize) -> bool {
        let started = self.started_commands.get(step).is_some_and(|s| s.contains(&index));
        started && !self.finished_commands.get(step).is_some_and(|c| c.contains_key(&index))
    }

    /// Whether command `index` of `step` finished, and not with exit 0.
    pub fn command_failed(&self, step: &str, index: usize) -> bool {
        self.finished_commands.get(step).and_then(|c| c.get(&index)).is_some_and(|exit| *exit != Some(0))
    }

    /// Whether command `index` of `step` finished with exit 0 (a resume skips it).
    pub fn command_done(&self, step: &str, index: usize) -> bool {
        self.finished_commands.get(step).and_then(|c| c.get(&index)).is_some_and(|exit| *exit == Some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[&str]) -> Vec<Record> {
        lines.iter().map(|l| serde_json::from_str(l).expect("a record")).collect()
    }

    const STARTED: &str = r#"{"v":1,"at_ms":1,"event":"run-started","scenario":"s","plan_digest":"d","steps":["4.2","4.3"],"check":"pass","override_check":null,"resume":false,"pid":1}"#;
    const DONE_42: &str = r#"{"v":1,"at_ms":2,"event":"step-finished","step":"4.2","how":"ran"}"#;
    const HALTED_43: &str =
        r#"{"v":1,"at_ms":3,"event":"halted","step":"4.3","reason":"r","drift":[],"recovery":"phase 4 rollback","recovery_actions":[]}"#;

    #[test]
    fn a_rollback_reopens_the_steps_it_undid_until_the_run_moves_on() {
        let rolled = r#"{"v":1,"at_ms":4,"event":"rollback-finished","step":"4.3","ok":true,"reason":null,"reopened":["4.2","4.3"]}"#;
        let p = Progress::from_records(&records(&[STARTED, DONE_42, HALTED_43, rolled]));
        assert!(p.completed.is_empty() && p.halted.is_none() && p.interrupted.is_none(), "{p:?}");
        assert_eq!(p.rolled_back.as_deref(), Some("4.3"));
        let resumed = r#"{"v":1,"at_ms":5,"event":"step-started","step":"4.2"}"#;
        let p = Progress::from_records(&records(&[STARTED, DONE_42, HALTED_43, rolled, resumed]));
        assert_eq!((p.rolled_back, p.interrupted.as_deref()), (None, Some("4.2")));
    }

    #[test]
    fn a_rollback_journalled_before_reopened_existed_still_reads() {
        let rolled = r#"{"v":1,"at_ms":4,"event":"rollback-finished","step":"4.3","ok":true,"reason":null}"#;
        let p = Progress::from_records(&records(&[STARTED, DONE_42, HALTED_43, rolled]));
        assert!(p.completed.contains("4.2") && p.rolled_back.is_some(), "{p:?}");
    }
}
