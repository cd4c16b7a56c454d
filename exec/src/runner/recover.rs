//! Recovery at a halt (`plan recover`): the twin's ranked recoveries for what the hosts show,
//! numbered once, and the one the operator picks carried out and checked.
//!
//! One function numbers the candidates ([`Runner::choices`]): the halt's message, `plan recover
//! --list` and `plan recover --choose N` all read that numbering, so the same journal and the
//! same observation give the same numbers.

use super::{reopened_by, Recovery, RollbackOutcome, Runner, OUTPUT_KEPT_BYTES_MAX};
use crate::invocation::{Invocation, Work};
use crate::journal::{ChosenBy, Event, Progress};
use crate::observe::{self, Drift, Scope};
use crate::redact;
use crate::ExecError;
use plan_model::action::Action;
use plan_model::cluster::Cluster;
use plan_sim::recovery::RecoveryKind;
use plan_sim::search::{self, Cost};
use serde::Serialize;

/// One recovery the twin weighed at a halt, numbered as the operator chooses it.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    /// Its place in the twin's ranking, from 1 (best first; those that cannot be carried out last).
    pub number: usize,
    /// The kind, as `plan simulate` prints it (`kind`, and `phase` for a rollback).
    #[serde(flatten)]
    pub kind: RecoveryKind,
    /// The kind in words.
    pub recovery: String,
    /// The recovery the plan documents for this halt.
    pub documented: bool,
    /// The one carried out without `--choose`: the best that can be carried out.
    pub best: bool,
    /// What it leaves, as the twin predicts; `None` when it cannot be carried out.
    pub cost: Option<Cost>,
    /// The cost in words, or why it cannot be carried out.
    pub summary: String,
    /// Why it cannot be carried out (a command it needs would be refused), if so.
    pub refused: Option<String>,
    /// What it would run, in order: each action's commands (an upload and its run are two, each
    /// beside the action's words).
    pub commands: Vec<ChoiceCommand>,
    /// Its actions passed over because their machine is down (a VM on a hypervisor that does not
    /// answer, a reset of a node no SSH reaches), each with why: nothing runs for them, and what
    /// they would have done is left for later.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    #[serde(skip)]
    pub actions: Vec<Action>,
    #[serde(skip)]
    pub invocations: Vec<Invocation>,
    /// The state the twin expects once it is done (where the search's run of it ended).
    #[serde(skip)]
    pub end: Cluster,
}

impl Choice {
    pub fn applicable(&self) -> bool {
        self.refused.is_none()
    }
}

/// One command a candidate would run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChoiceCommand {
    /// The model's action it carries out, in words.
    pub action: String,
    /// Where it runs (a host, `workstation`, `infra-repo`, `operator` for by-hand work).
    pub place: String,
    /// The command, redacted, as the journal will hold it.
    pub command: String,
    /// Its output is never shown or kept.
    pub secret: bool,
}

/// Whether a halt leaves anything to undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Undo {
    /// No command of the halted step ran and the hosts are as the twin expects before it:
    /// nothing is proposed; fix the cause and resume.
    Nothing,
    /// Something ran or the hosts differ: the candidates are the twin's recoveries for what
    /// the hosts show.
    Recoveries,
}

/// What `plan recover` proposes for the journalled halt.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// The halted step.
    pub step: String,
    /// Why it halted, as journalled.
    pub reason: String,
    /// Commands of the halted step the journal shows started (by-hand work done included).
    pub commands_ran: usize,
    /// What the hosts show now that the twin expects neither before nor (when commands ran)
    /// after the step; empty when nothing was observed.
    pub drift: Vec<Drift>,
    pub undo: Undo,
    /// Every candidate, numbered; empty when there is nothing to undo.
    pub candidates: Vec<Choice>,
    #[serde(skip)]
    step_index: usize,
    /// The twin's state at the halt with what was observed written over it.
    #[serde(skip)]
    believed: Cluster,
}

/// Which candidate to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The best that can be carried out (where none can, [`Runner::recover`] fails and runs
    /// nothing).
    Best,
    /// The candidate of this number, as [`Proposal::candidates`] numbers them.
    Number(usize),
    /// The best candidate of this kind (`hold`, `rollback`, `quorum-recovery`, ...: the `kind`
    /// [`Choice`] serializes): unlike a number, it names the same recovery when a new look at the
    /// hosts ranks the candidates differently.
    Kind(&'static str),
}

/// Every kind name `--choose` takes.
pub use plan_sim::recovery::KIND_NAMES;

impl Proposal {
    /// The recovery `pick` names.
    ///
    /// # Errors
    /// [`ExecError::NothingToUndo`] for a number when nothing is proposed;
    /// [`ExecError::NoSuchRecovery`] for a number out of range; [`ExecError::RecoveryRefused`]
    /// for a candidate that cannot be carried out.
    pub fn pick(&self, pick: Pick) -> Result<Recovery, ExecError> {
        if pick == Pick::Best {
            return Ok(Recovery::best_of(self.candidates.clone(), &self.believed));
        }
        if self.undo == Undo::Nothing {
            return Err(ExecError::NothingToUndo { step: self.step.clone() });
        }
        let number = match pick {
            Pick::Number(n) => n,
            Pick::Kind(name) => match self.candidates.iter().find(|c| c.kind.name() == name) {
                Some(choice) => choice.number,
                None => {
                    let weighed: Vec<&str> = self.candidates.iter().map(|c| c.kind.name()).collect();
                    return Err(ExecError::NoSuchKind { kind: name, step: self.step.clone(), weighed: weighed.join(", ") });
                }
            },
            Pick::Best => unreachable!("the best is returned above"),
        };
        let Some(choice) = number.checked_sub(1).and_then(|k| self.candidates.get(k)) else {
            return Err(ExecError::NoSuchRecovery { number, step: self.step.clone(), count: self.candidates.len() });
        };
        if let Some(why) = &choice.refused {
            return Err(ExecError::RecoveryRefused {
                number,
                recovery: choice.recovery.clone(),
                step: self.step.clone(),
                why: why.clone(),
            });
        }
        Ok(Recovery::of(choice, self.candidates.clone()))
    }
}

impl Recovery {
    /// Carrying out `choice`, with the whole ranking beside it.
    fn of(choice: &Choice, ranking: Vec<Choice>) -> Recovery {
        Recovery {
            kind: choice.kind.clone(),
            candidate: Some(choice.number),
            actions: choice.actions.clone(),
            descriptions: choice.commands.iter().map(|c| c.action.clone()).collect(),
            invocations: choice.invocations.clone(),
            expected: choice.end,
            ranking,
        }
    }

    /// The best candidate of `ranking` that can be carried out; none can: holding with nothing
    /// to do, the hosts expected to stay as `c`.
    pub(super) fn best_of(ranking: Vec<Choice>, c: &Cluster) -> Recovery {
        match ranking.iter().find(|choice| choice.best) {
            Some(best) => Recovery::of(best, ranking.clone()),
            None => Recovery {
                kind: RecoveryKind::Hold,
                candidate: None,
                actions: Vec::new(),
                descriptions: Vec::new(),
                invocations: Vec::new(),
                expected: *c,
                ranking,
            },
        }
    }
}

impl Runner<'_> {
    /// Every recovery the twin weighs from `c` (what the executor observed) for a halt in step
    /// `i`, numbered best first: the candidates of the same search the twin runs
    /// (`plan_sim::search::recoveries`), each with the commands it would run here. Where the hosts
    /// that did not answer at the halt answer again (`hosts_back`), the fault was temporary and,
    /// as the twin's policy does, waiting for it and running the step again comes first
    /// (`plan_sim::search::retry`; it runs nothing, the resume runs the step).
    pub fn choices(&self, i: usize, c: &Cluster, hosts_back: bool) -> Vec<Choice> {
        let t = self.t;
        let compiler = self.compiler();
        let mut ranking = search::recoveries(c, t, self.plan, i);
        if hosts_back {
            search::put_first(&mut ranking, search::retry(c, t, self.plan, i));
        }
        let mut choices: Vec<Choice> = ranking
            .into_iter()
            .enumerate()
            .map(|(k, candidate)| {
                // A renewal runs the plan's own commands that made the credentials; any other
                // recovery's actions are rendered one by one.
                // A go-forward carries out the write-off here; the resume runs the rest of the
                // plan without the machines, step by step.
                let writes_off = candidate.kind == RecoveryKind::GoForward && candidate.applicable();
                let (actions, rendered): (Vec<Action>, Vec<(Action, Invocation)>) = match candidate.kind {
                    RecoveryKind::Renew => {
                        let pairs = self.renewal_invocations(i);
                        (pairs.iter().map(|(a, _)| *a).collect(), pairs)
                    }
                    RecoveryKind::WaitAndRetry => (Vec::new(), Vec::new()),
                    RecoveryKind::GoForward => {
                        let write_off = search::write_off_actions(c, t);
                        let rendered = compiler.recovery(c, &write_off);
                        (write_off, rendered)
                    }
                    _ => (candidate.actions.clone(), compiler.recovery(c, &candidate.actions)),
                };
                // Waiting leaves the hosts as they are until the resume runs the step: that is
                // what they are checked against once it is carried out; a go-forward leaves them
                // as its write-off does.
                let waits = candidate.kind == RecoveryKind::WaitAndRetry;
                let end = if waits {
                    *c
                } else if writes_off {
                    after_write_off(t, c, &actions)
                } else {
                    candidate.end(c, t)
                };
                let commands = rendered
                    .iter()
                    .map(|(action, invocation)| ChoiceCommand {
                        action: action.describe(t),
                        place: invocation.place_label(),
                        command: invocation.display(),
                        secret: invocation.secret,
                    })
                    .collect();
                // A renewal runs the plan's commands as they are: nothing of it is passed over.
                let passed_over = if candidate.kind == RecoveryKind::Renew { Vec::new() } else { compiler.passed_over(c, &actions) };
                let unconfirmed = self.unconfirmed_survivor(i, &candidate);
                let mut refused = candidate.refused;
                let invocations: Vec<Invocation> = rendered.into_iter().map(|(_, invocation)| invocation).collect();
                if let Some(why) = unconfirmed {
                    refused.get_or_insert(why);
                }
                if candidate.kind == RecoveryKind::Renew && !actions.contains(&Action::UploadCerts) {
                    // Nothing of the plan before the step makes the key again: nothing to run.
                    refused
                        .get_or_insert_with(|| format!("no command of the plan before step {} uploads the certs", self.plan.steps[i].id));
                }
                let summary = match &refused {
                    None => candidate.cost.summary(),
                    Some(why) => format!("cannot be carried out: {why}"),
                };
                Choice {
                    number: k + 1,
                    recovery: candidate.kind.describe(),
                    kind: candidate.kind,
                    documented: candidate.documented,
                    best: false,
                    cost: refused.is_none().then_some(candidate.cost),
                    summary,
                    refused,
                    commands,
                    passed_over,
                    actions: if waits {
                        Vec::new()
                    } else if writes_off {
                        actions
                    } else {
                        candidate.actions
                    },
                    invocations,
                    end,
                }
            })
            .collect();
        if let Some(best) = choices.iter_mut().find(|c| c.applicable()) {
            best.best = true;
        }
        choices
    }

    /// Why a quorum recovery from `candidate`'s survivor cannot be carried out: that member
    /// became a voter within the halted step `i`, and the look at the halt did not see it as one.
    /// Without quorum etcd 3.5 lists no members (docs/facts.md E9); the member's own `endpoint
    /// status` says whether it is a learner and how far it applied the log, unless it never
    /// synced. Without that, nothing shows whether the promotion happened, and
    /// `--force-new-cluster` from a learner that never synced starts a cluster without the data.
    /// A voter before the step was confirmed by the look before it.
    fn unconfirmed_survivor(&self, i: usize, candidate: &search::Candidate) -> Option<String> {
        let before = self.prediction.before(i);
        let survivor = candidate.actions.iter().find_map(|a| match a {
            Action::ForceNewCluster(n) => Some(*n),
            _ => None,
        })?;
        (!before.voters.contains(survivor) && !self.voters_seen.contains(survivor)).then(|| {
            format!(
                "{} became an etcd voter only within step {} and no member list confirms it: forcing a new cluster from a learner that never synced would lose the data",
                self.t.name(survivor),
                self.plan.steps[i].id
            )
        })
    }

    /// What `plan recover` proposes for the journalled halt: the hosts observed (when the run
    /// observes) and the twin's numbered recoveries for what they show, or nothing to undo when
    /// no command of the halted step ran and the hosts are as the twin expects before it.
    /// Appends nothing to the journal.
    ///
    /// # Errors
    /// No halt journalled, the journal of another plan, a halted step the plan lacks, or an
    /// observer failed.
    pub fn proposal(&mut self) -> Result<Proposal, ExecError> {
        let progress = Progress::from_records(&self.journal.records);
        if progress.plan_digest.as_deref() != Some(super::plan_digest(self.plan).as_str()) {
            return Err(ExecError::Input("the journal holds no run of this plan".to_string()));
        }
        let Some(halted) = progress.halted.clone() else {
            return Err(ExecError::Input("nothing to recover from: the journal shows no halted run".to_string()));
        };
        let Some(i) = self.plan.steps.iter().position(|s| s.id == halted.step) else {
            return Err(ExecError::Input(format!("the halted step {} is not in the plan", halted.step)));
        };
        let commands_ran = commands_ran(&progress, &halted.step);
        let (believed, observation) = self.believed(i, commands_ran > 0)?;
        // What the failed command printed is observed too: the credentials kubeadm said expired,
        // journalled with the halt (super::renew).
        let believed = halted.expired.written_over(self.t, &believed);
        // What ran may have left any state the step's actions pass through, as a resume allows.
        let within = self.states_at_halt(i, commands_ran > 0);
        let allowed: Vec<&Cluster> = within.iter().collect();
        let drift = observation.as_ref().map(|o| observe::drift(self.t, o, &allowed)).unwrap_or_default();
        let undo = if commands_ran == 0 && drift.is_empty() { Undo::Nothing } else { Undo::Recoveries };
        let candidates = match undo {
            Undo::Nothing => Vec::new(),
            Undo::Recoveries => {
                let now = observation.is_some().then_some(drift.as_slice());
                self.choices(i, &believed, super::host_wait::hosts_back_since(&halted.drift, now))
            }
        };
        Ok(Proposal { step: halted.step, reason: halted.reason, commands_ran, drift, undo, candidates, step_index: i, believed })
    }

    /// Runs the twin's best recovery for the journalled halt (`plan rollback`, `plan recover`).
    ///
    /// # Errors
    /// As [`Runner::recover`].
    pub fn rollback(&mut self) -> Result<RollbackOutcome, ExecError> {
        self.recover(Pick::Best)
    }

    /// Carries out the recovery `pick` names for the journalled halt, then checks the hosts
    /// against the state the twin expects after it. Where there is nothing to undo, runs nothing
    /// and journals nothing.
    ///
    /// # Errors
    /// As [`Runner::proposal`] and [`Proposal::pick`] (before anything runs or is journalled), or
    /// the journal cannot be written.
    pub fn recover(&mut self, pick: Pick) -> Result<RollbackOutcome, ExecError> {
        let proposal = self.proposal()?;
        if pick == Pick::Best && proposal.undo == Undo::Nothing {
            return Ok(RollbackOutcome::NothingToUndo { step: proposal.step });
        }
        let recovery = proposal.pick(pick)?;
        // None of the twin's candidates can be carried out (the single master lost for good):
        // holding changes nothing and is no recovery; the run stays halted, nothing journalled,
        // for the operator's worst case by hand.
        if recovery.none_applies() {
            let why: Vec<String> = recovery
                .ranking
                .iter()
                .map(|c| format!("{}. {}: {}", c.number, c.recovery, c.refused.as_deref().unwrap_or("not carried out")))
                .collect();
            let reason = format!("no recovery can be carried out ({}); the run stays halted", why.join("; "));
            return Ok(RollbackOutcome::Failed { step: proposal.step, reason, drift: Vec::new() });
        }
        if !self.operator.confirm_recovery(&recovery) {
            return Ok(RollbackOutcome::Declined);
        }
        let chosen_by = match pick {
            Pick::Best => ChosenBy::Twin,
            Pick::Number(_) | Pick::Kind(_) => ChosenBy::Operator,
        };
        let halted = proposal.step.clone();
        self.journal.append(Event::RollbackStarted {
            step: halted.clone(),
            recovery: recovery.describe(),
            candidate: recovery.candidate,
            chosen_by: Some(chosen_by),
        })?;
        let failed = self.carry_out(&proposal, &recovery)?;
        let renews = recovery.kind == RecoveryKind::Renew && !recovery.invocations.is_empty();
        if renews && Progress::from_records(&self.journal.records).secrets_swept {
            // The renewal wrote the secrets the halt swept, or may have before it failed: the
            // resume reads these, and a later halt sweeps them again.
            self.journal.append(Event::SecretsRemade { step: format!("rollback:{halted}") })?;
        }
        if let Some(reason) = failed {
            return self.recovery_failed(renews, halted, reason, vec![]);
        }
        let i = proposal.step_index;
        let scope = self.scope(i).or(Scope::between(&proposal.believed, &recovery.expected));
        if let Some(observation) = self.observe_now(&recovery.expected, scope)? {
            // As after a step: what the recovery's commands set going (etcd restarted on its data,
            // a kubelet reporting its node Ready) is given the same few seconds to settle.
            let drift = self.settled_drift(i, &recovery.expected, scope, observation)?;
            self.journal.append(Event::Observed { step: halted.clone(), when: "after-rollback".to_string(), drift: drift.clone() })?;
            if !drift.is_empty() {
                let reason = "the recovery did not leave the state the twin expects".to_string();
                return self.recovery_failed(renews, halted, reason, drift);
            }
        }
        // Halted on the look after the step, every command of it done: the plan goes on without
        // the machines from the next step, and the resume finishes this one as it finishes any
        // interrupted step (nothing of it runs again), as the twin goes on to the next step; a
        // join done once would refuse to run again (kubelet.conf exists).
        let progress = Progress::from_records(&self.journal.records);
        let every_command_done = !self.compiled[i].is_empty() && (0..self.compiled[i].len()).all(|j| progress.command_done(&halted, j));
        if recovery.kind == RecoveryKind::GoForward {
            let from = if every_command_done && i + 1 < self.plan.steps.len() { i + 1 } else { i };
            self.journal_write_off(&halted, from, &recovery.expected)?;
        }
        let reopened = if recovery.kind == RecoveryKind::GoForward && every_command_done {
            Vec::new()
        } else {
            reopened_by(self.plan, i, &recovery.kind)
        };
        self.journal.append(Event::RollbackFinished { step: halted.clone(), ok: true, reason: None, reopened: reopened.clone() })?;
        Ok(RollbackOutcome::Done { step: halted, recovery: recovery.describe(), candidate: recovery.candidate, reopened })
    }

    /// Journals the write-off a go-forward carried out at the halt in step `halted`, the hosts
    /// checked against `state`: the run goes on from step `from` (the halted one, or the next
    /// where the halted one ran whole) on the plan without the machines
    /// ([`super::plan_to_run`]).
    ///
    /// # Errors
    /// The journal cannot be written, or the plan going on does not fit the scenario.
    fn journal_write_off(&mut self, halted: &str, from: usize, state: &Cluster) -> Result<(), ExecError> {
        let gone = state.written_off;
        let going_on = self
            .plan
            .going_on_without(self.t, from, gone)
            .map_err(|e| ExecError::Input(format!("the plan going on without the machines written off: {e}")))?;
        self.journal.append(Event::WrittenOff {
            step: halted.to_string(),
            nodes: gone.iter().map(|n| self.t.name(n).to_string()).collect(),
            state: Box::new(*state),
            plan_digest: super::plan_digest(&going_on),
            going_on_from: (self.plan.steps[from].id != halted).then(|| self.plan.steps[from].id.clone()),
        })
    }

    /// Runs the recovery's commands in order, each journalled under `rollback:<step>`; the
    /// reason it stopped, if a command failed or by-hand work was not done.
    fn carry_out(&mut self, proposal: &Proposal, recovery: &Recovery) -> Result<Option<String>, ExecError> {
        let step_id = format!("rollback:{}", proposal.step);
        let step = self.plan.steps[proposal.step_index].clone();
        for (j, invocation) in recovery.invocations.iter().enumerate() {
            self.operator.starting(&step, j, invocation, 0);
            if let Work::Manual { instruction, task } = &invocation.work {
                if !self.operator.by_hand(&step, instruction, task) {
                    return Ok(Some(format!("needs the operator: {}", redact::redact(instruction))));
                }
                continue;
            }
            self.journal.append(Event::CommandStarted {
                step: step_id.clone(),
                index: j,
                place: invocation.place_label(),
                command: invocation.display(),
            })?;
            let result = self.execute(&step_id, invocation);
            let shown = result.clone().map_err(|e| redact::redact(&e.to_string()));
            self.operator.finished(&step, invocation, &shown);
            let (exit, output) = match &result {
                Ok(done) => (
                    done.exit,
                    redact::keepable_output(&format!("{}{}", done.stdout, done.stderr), invocation.secret, OUTPUT_KEPT_BYTES_MAX),
                ),
                Err(e) => (None, redact::redact(&e.to_string())),
            };
            self.journal.append(Event::CommandFinished {
                step: step_id.clone(),
                index: j,
                exit,
                duration_ms: 0,
                output: output.clone(),
            })?;
            if exit != Some(0) {
                return Ok(Some(format!("{} on {} failed: {}", invocation.display(), invocation.place_label(), output.trim())));
            }
        }
        Ok(None)
    }

    /// [`Runner::rollback_failed`]; a renewal that failed leaves no secret out (`renews`): what
    /// it wrote is swept, as at a halt.
    fn recovery_failed(&mut self, renews: bool, step: String, reason: String, drift: Vec<Drift>) -> Result<RollbackOutcome, ExecError> {
        if renews {
            self.sweep_join_secrets()?;
        }
        self.rollback_failed(step, reason, drift)
    }

    fn rollback_failed(&mut self, step: String, reason: String, drift: Vec<Drift>) -> Result<RollbackOutcome, ExecError> {
        self.journal.append(Event::RollbackFinished { step: step.clone(), ok: false, reason: Some(reason.clone()), reopened: vec![] })?;
        Ok(RollbackOutcome::Failed { step, reason, drift })
    }
}

/// The state `c` is in once the write-off `actions` are carried out (a go-forward's first part):
/// a removal on a host that is down is passed over as every recovery passes it over; the search
/// found none refused.
fn after_write_off(t: &plan_model::topology::Topology, c: &Cluster, actions: &[Action]) -> Cluster {
    let mut state = *c;
    for a in actions {
        let _ = plan_model::action::apply_in_place(&mut state, t, *a);
    }
    state
}

/// Commands of `step` the journal shows started, by-hand work done included (a command cut off
/// by the executor's death counts: it may have taken effect).
fn commands_ran(progress: &Progress, step: &str) -> usize {
    let started = progress.started_commands.get(step).map(|s| s.iter().copied());
    let finished = progress.finished_commands.get(step).map(|f| f.keys().copied());
    started.into_iter().flatten().chain(finished.into_iter().flatten()).collect::<std::collections::BTreeSet<usize>>().len()
}

#[cfg(test)]
mod cut_join_tests;
#[cfg(test)]
mod go_forward_tests;
#[cfg(test)]
mod tests;
