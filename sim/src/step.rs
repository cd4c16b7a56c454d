//! The executor's loop over the plan, one pass at a time, wherever its actions are carried out:
//! on the model alone (the twin, [`crate::run`]) or as the real executor's forecast of a run
//! (`plan_exec::predict`). The loop is written once: the faults due at a point struck, the
//! temporary ones that are over healed, the drift check before and after every step, a re-run's
//! skipping of what is done and its cleanup of what a cut step left, and at a halt the recovery
//! policy ([`crate::policy::recover`]).

use crate::policy::{self, Executor, Next};
use crate::recovery::RecoveryKind;
use crate::run::{EventKind, Halt, Injection, Outcome, Point};
use plan_model::action::{self, Action, Refusal};
use plan_model::fault::Fault;
use plan_model::plan::{Plan, Step};
use plan_model::topology::{NodeSet, Topology};

/// Where the executor is in the plan, besides the state: with it, enough to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    pub step: usize,
    /// The next action of the step (0: the step boundary).
    pub k: usize,
    /// Re-running a step after a halt or a crash: actions already done are skipped.
    pub skip_done: bool,
    /// Recoveries taken so far (bounded by `policy::RECOVERIES_MAX`).
    pub recoveries: u32,
}

impl Position {
    pub fn point(&self) -> Point {
        Point { step: self.step as u16, action: self.k as u16 }
    }
}

/// What one pass of the executor's loop leads to.
pub enum Flow {
    /// The loop goes on from the new position.
    Next,
    /// The run is over.
    Stop(Outcome),
}

/// How far one action moved a step.
enum Progress {
    Moved,
    /// Past its last action.
    StepDone,
}

/// A place the executor's loop runs on: beyond what the recovery policy asks of it
/// ([`Executor`]), it strikes and heals faults and carries out the plan's own actions.
pub trait Place: Executor {
    /// Strikes `fault` (a fault on the cluster: not the executor's crash nor a step failing
    /// half-way, which the loop itself plays out).
    ///
    /// # Errors
    /// The place underneath failed.
    fn strike(&mut self, fault: Fault, step: &str) -> Result<(), Self::Error>;
    /// Ends the temporary faults whose time is over.
    ///
    /// # Errors
    /// The place underneath failed.
    fn heal_due(&mut self, step: &str) -> Result<(), Self::Error>;
    /// Carries out one of the plan's actions (`kind` says whether it is the step's own or a
    /// cleanup before a cut step runs again).
    ///
    /// # Errors
    /// The place underneath failed; a refused action is `Ok(Err(refusal))`.
    fn act(&mut self, a: Action, step: &str, kind: EventKind) -> Result<Result<(), Refusal>, Self::Error>;
    /// Why the cluster is not what the next step expects, checked at every step boundary; the
    /// machines in `rebooting` ([`policy::rebooting`]) are expected down.
    fn drift(&self, t: &Topology, rebooting: NodeSet) -> Option<std::sync::Arc<str>> {
        policy::Drift::of(self.cluster(), rebooting).map(|d| d.describe(t).into())
    }
    /// Step `s` is done: the part of its time its actions do not account for passes.
    ///
    /// # Errors
    /// The place underneath failed.
    fn step_done(&mut self, s: &Step) -> Result<(), Self::Error>;
    /// Action `k` of step `s` was carried out (`no_fault`: on a run without faults).
    fn action_done(&mut self, _s: &Step, _k: usize, _no_fault: bool) {}
    /// The loop halts at `step`, before the policy chooses a recovery.
    ///
    /// # Errors
    /// The place underneath failed.
    fn halting(&mut self, _step: &str, _halt: &Halt) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The halt at step `step` (by index), once its recovery is taken.
    fn halted(&mut self, _step: usize, _halt: Halt) {}
}

/// The seconds of step `s` its actions do not account for (reading output, editing, waiting for
/// pods): they pass once the step is done, so the clock, the TTLs and the plan's total agree
/// with `plan show`.
pub fn rest_of_step_s(s: &Step) -> u32 {
    let actions_s: u32 = s.actions.iter().map(|a| a.duration_s()).sum();
    s.duration_s.saturating_sub(actions_s)
}

/// One pass of the executor's loop at `pos` (a step that exists): strikes the injections due
/// here, ends the faults that are over, then runs the next action, or halts and recovers.
///
/// # Errors
/// The place underneath failed.
pub fn iterate<P: Place>(
    p: &mut P,
    t: &Topology,
    plan: &Plan,
    pos: &mut Position,
    schedule: &[Injection],
    fired: &mut [bool],
) -> Result<Flow, P::Error> {
    let s = &plan.steps[pos.step];
    let point = pos.point();
    let mut halfway = false;
    let mut crashed = false;
    for (i, injection) in schedule.iter().enumerate() {
        if !fired[i] && injection.at == point {
            fired[i] = true;
            match injection.fault {
                Fault::StepFailsHalfway => halfway = true,
                Fault::ExecutorCrash => crashed = true,
                fault => p.strike(fault, &s.id)?,
            }
        }
    }
    p.heal_due(&s.id)?;
    if crashed {
        if p.timeline() {
            p.note(&s.id, EventKind::Fault, "FAULT: executor crashes; on restart it resumes the step from its journal".to_string());
        }
        p.took(RecoveryKind::Resume);
        pos.k = 0;
        pos.skip_done = true;
        return Ok(Flow::Next);
    }
    let progress = if halfway {
        if p.timeline() {
            p.note(&s.id, EventKind::Fault, "FAULT: the step fails half-way".to_string());
        }
        Err(Halt::HalfWay)
    } else {
        next_action(p, t, s, pos, schedule.is_empty())?
    };
    let mut after_step = false;
    let progress = match progress {
        Ok(Progress::StepDone) => {
            p.step_done(s)?;
            // The executor looks at the hosts after each step as well as before it: a fault the
            // step's own actions did not meet halts the run in this step, whose phase its
            // recovery undoes, not in the next one.
            p.heal_due(&s.id)?;
            match p.drift(t, NodeSet::EMPTY) {
                Some(why) => {
                    after_step = true;
                    Err(Halt::Drift(why))
                }
                None => Ok(Progress::StepDone),
            }
        }
        other => other,
    };
    Ok(match progress {
        Ok(Progress::StepDone) => {
            *pos = Position { step: pos.step + 1, k: 0, skip_done: false, recoveries: pos.recoveries };
            Flow::Next
        }
        Ok(Progress::Moved) => Flow::Next,
        Err(halt) => {
            p.halting(&s.id, &halt)?;
            let next = policy::recover(p, t, plan, pos.step, &halt, &mut pos.recoveries)?;
            p.halted(pos.step, halt);
            match next {
                // Every action of the step is done: the executor's resume skips each command
                // and looks again, before the next step; so does the twin (the step's time and
                // actions are not taken a second time).
                Next::Retry if after_step => {
                    *pos = Position { step: pos.step + 1, k: 0, skip_done: false, recoveries: pos.recoveries };
                    Flow::Next
                }
                Next::Retry => {
                    pos.skip_done = true;
                    pos.k = 0;
                    Flow::Next
                }
                Next::Stop(outcome) => Flow::Stop(outcome),
            }
        }
    })
}

/// The drift check at a step boundary, then the action at `pos` (skipped when a re-run finds it
/// done), and `pos.k` moves past it; past the last action, the step is done.
fn next_action<P: Place>(
    p: &mut P,
    t: &Topology,
    s: &Step,
    pos: &mut Position,
    no_fault: bool,
) -> Result<Result<Progress, Halt>, P::Error> {
    if pos.k == 0 {
        // A re-run of a step that shut a machine down to boot it again (the executor resuming
        // its journal after a crash, or a retry once a fault is over) finds the machine as the
        // step left it: no drift, the step's own boot brings it back.
        let rebooting = if pos.skip_done { policy::rebooting(p.cluster(), s, p.struck()) } else { NodeSet::EMPTY };
        if let Some(why) = p.drift(t, rebooting) {
            return Ok(Err(Halt::Drift(why)));
        }
    }
    let Some(&a) = s.actions.get(pos.k) else {
        return Ok(Ok(Progress::StepDone));
    };
    if pos.skip_done && action::already_done(p.cluster(), a) {
        pos.k += 1;
        return Ok(Ok(Progress::Moved));
    }
    if pos.skip_done {
        // A re-run finds what a cut join left: cleaned up first, as the executor does.
        for cleanup in action::cut_cleanup(p.cluster(), a) {
            if let Err(refusal) = p.act(cleanup, &s.id, EventKind::Recovery)? {
                return Ok(Err(Halt::Refused(refusal)));
            }
        }
    }
    if let Err(refusal) = p.act(a, &s.id, EventKind::Action)? {
        return Ok(Err(Halt::Refused(refusal)));
    }
    p.action_done(s, pos.k, no_fault);
    pos.k += 1;
    Ok(Ok(Progress::Moved))
}

/// The executor's loop from `pos` to the plan's end, or to the outcome a recovery stops at;
/// temporary faults still running then end on their own (the place waits for them).
///
/// # Errors
/// The place underneath failed.
pub fn run_to_end<P: Place>(p: &mut P, t: &Topology, plan: &Plan, mut pos: Position, schedule: &[Injection]) -> Result<Outcome, P::Error> {
    let mut fired = vec![false; schedule.len()];
    let outcome = loop {
        if pos.step >= plan.steps.len() {
            break Outcome::Completed;
        }
        if let Flow::Stop(outcome) = iterate(p, t, plan, &mut pos, schedule, &mut fired)? {
            break outcome;
        }
    };
    if p.fault_pending() {
        let last = plan.steps.last().map(|s| s.id.as_str()).unwrap_or_default();
        p.wait_for_pending(last)?;
    }
    Ok(outcome)
}
