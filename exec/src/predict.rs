//! What the twin predicts at every step boundary of the plan run without faults.

use plan_model::action::{self, Action, Refusal};
use plan_model::cluster::Cluster;
use plan_model::plan::{Plan, Step};
use plan_model::topology::{NodeSet, Topology};
use plan_sim::policy::Executor;
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{EventKind, Outcome};
use plan_sim::step::{self, Flow, Place, Position};
use std::convert::Infallible;

/// The twin's state before each step, and after the last.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// `states[i]` is before step `i`; `states[steps.len()]` is after the last step.
    pub states: Vec<Cluster>,
    /// Where the twin refused an action (an edited plan may skip what a step needs): step id and
    /// reason. The prediction carries on with the state unchanged by that action.
    pub refusals: Vec<(String, String)>,
    /// Where a verification of the step fails in the twin's state (the acceptance criteria of a
    /// plan going on without a master): step id and why. The runner halts before such a step.
    pub failed_checks: Vec<(String, String)>,
}

impl Prediction {
    /// Runs the plan's actions over the model from the scenario's initial state.
    pub fn new(t: &Topology, plan: &Plan) -> Prediction {
        Prediction::from(t, plan, Cluster::initial(t))
    }

    /// Runs the plan's actions over the model from `start`, through the executor's own loop
    /// ([`step::run_to_end`]) without faults. A refused verification halts nothing (it is
    /// recorded by the runner's own checks); a refused command is kept.
    pub fn from(t: &Topology, plan: &Plan, start: Cluster) -> Prediction {
        let mut forecast = Forecast::new(t, start);
        let Ok(outcome) = step::run_to_end(&mut forecast, t, plan, Position::default(), &[]);
        // Nothing halts a forecast (no fault, no drift, a refusal kept): it runs to the end.
        debug_assert_eq!(outcome, Outcome::Completed);
        Prediction { states: forecast.states, refusals: forecast.refusals, failed_checks: forecast.failed_checks }
    }

    /// Why the twin refuses step `id` in the state it predicts, where it does: a command of it
    /// refused, else a verification of it failed.
    pub fn refused(&self, id: &str) -> Option<&str> {
        self.refusals.iter().chain(&self.failed_checks).find(|(step, _)| step == id).map(|(_, why)| why.as_str())
    }

    /// The prediction of a run that went on from `start` at step `from` (the twin's state after a
    /// write-off, [`crate::journal::WrittenOff`]): the steps before it as predicted from the
    /// scenario's initial state, the rest from `start`.
    pub fn going_on(t: &Topology, plan: &Plan, from: usize, start: Cluster) -> Prediction {
        let before = Prediction::new(t, plan);
        let mut forecast = Forecast::new(t, start);
        let Ok(outcome) = step::run_to_end(&mut forecast, t, plan, Position { step: from, ..Position::default() }, &[]);
        debug_assert_eq!(outcome, Outcome::Completed);
        let mut states = before.states[..from].to_vec();
        states.extend(forecast.states);
        let earlier = |(id, _): &(String, String)| plan.steps[..from].iter().any(|s| &s.id == id);
        let mut refusals: Vec<(String, String)> = before.refusals.into_iter().filter(earlier).collect();
        refusals.extend(forecast.refusals);
        let mut failed_checks: Vec<(String, String)> = before.failed_checks.into_iter().filter(earlier).collect();
        failed_checks.extend(forecast.failed_checks);
        Prediction { states, refusals, failed_checks }
    }

    /// As [`Prediction::going_on`] from the step after `halted`, which had run whole when the
    /// machines were written off at its halt: the state before it is `start` too (its commands
    /// are done; the resume skips them and only looks).
    pub fn going_on_after(t: &Topology, plan: &Plan, halted: usize, start: Cluster) -> Prediction {
        let mut prediction = Self::going_on(t, plan, halted + 1, start);
        prediction.states[halted] = start;
        prediction
    }

    /// The states step `step` passes through, its actions applied one by one from the state
    /// before it, that state and the one after it included: what a step the executor died in
    /// may have left (a cut `kubeadm join` leaves its member added, or started as a learner).
    pub fn within(&self, t: &Topology, plan: &Plan, step: usize) -> Vec<Cluster> {
        let mut forecast = Forecast::new(t, self.states[step]);
        let mut out = vec![self.states[step]];
        let mut pos = Position { step, ..Position::default() };
        // One pass per action, and one past the last that ends the step.
        for _ in 0..=plan.steps[step].actions.len() {
            let Ok(flow) = step::iterate(&mut forecast, t, plan, &mut pos, &[], &mut []);
            if !out.contains(&forecast.c) {
                out.push(forecast.c);
            }
            if matches!(flow, Flow::Stop(_)) || pos.step != step {
                break;
            }
        }
        if !out.contains(&self.states[step + 1]) {
            out.push(self.states[step + 1]);
        }
        out
    }

    pub fn before(&self, step: usize) -> &Cluster {
        &self.states[step]
    }

    pub fn after(&self, step: usize) -> &Cluster {
        &self.states[step + 1]
    }
}

/// The executor's loop run on the model alone, without faults: the state at every step boundary,
/// and the actions the model refused.
///
/// Nothing halts it, so the recovery policy's side of [`Executor`] is never asked for: no fault is
/// struck (the schedule is empty), the drift check finds nothing, and a refused action is
/// recorded and passed over rather than halting the step.
struct Forecast<'t> {
    t: &'t Topology,
    c: Cluster,
    states: Vec<Cluster>,
    refusals: Vec<(String, String)>,
    failed_checks: Vec<(String, String)>,
}

impl<'t> Forecast<'t> {
    fn new(t: &'t Topology, start: Cluster) -> Self {
        Forecast { t, c: start, states: vec![start], refusals: Vec::new(), failed_checks: Vec::new() }
    }
}

/// The model cannot fail underneath. A recovery is never taken (nothing halts), so `apply`,
/// `took`, `note` and `wait_for_pending` are not reached; each does the plain, harmless thing.
impl Executor for Forecast<'_> {
    type Error = Infallible;

    fn cluster(&self) -> &Cluster {
        &self.c
    }

    /// No fault is struck.
    fn struck(&self) -> NodeSet {
        NodeSet::EMPTY
    }

    fn fault_pending(&self) -> bool {
        false
    }

    /// Not reached: no temporary fault is ever pending.
    fn wait_for_pending(&mut self, _step: &str) -> Result<(), Infallible> {
        Ok(())
    }

    /// Not reached (no recovery is taken); carried out on the model, as the twin does.
    fn apply(&mut self, a: Action, _step: &str) -> Result<Result<(), Refusal>, Infallible> {
        Ok(action::apply(&self.c, self.t, a).map(|next| self.c = next))
    }

    /// Not reached: no recovery is taken.
    fn took(&mut self, _kind: RecoveryKind) {}

    /// The forecast keeps no timeline.
    fn note(&mut self, _step: &str, _kind: EventKind, _what: String) {}

    fn timeline(&self) -> bool {
        false
    }
}

impl Place for Forecast<'_> {
    /// Not reached: the schedule is empty.
    fn strike(&mut self, _fault: plan_model::fault::Fault, _step: &str) -> Result<(), Infallible> {
        Ok(())
    }

    /// Nothing was struck, so nothing heals.
    fn heal_due(&mut self, _step: &str) -> Result<(), Infallible> {
        Ok(())
    }

    /// The action on the model; a refused one leaves the state as it was and the forecast goes
    /// on. A refused command is recorded (an edited plan may skip what a step needs), and so is
    /// a refused verification, the first of each step (the runner halts before that step).
    fn act(&mut self, a: Action, step: &str, _kind: EventKind) -> Result<Result<(), Refusal>, Infallible> {
        match action::apply(&self.c, self.t, a) {
            Ok(next) => self.c = next,
            Err(refusal) if !matches!(a, Action::Verify(_)) => self.refusals.push((step.to_string(), refusal.reason)),
            Err(refusal) => {
                if !self.failed_checks.iter().any(|(id, _)| id == step) {
                    self.failed_checks.push((step.to_string(), refusal.reason));
                }
            }
        }
        Ok(Ok(()))
    }

    /// Never drift. The prediction is what the executor expects of the plan without faults, and
    /// it carries on past what the twin would refuse (an edited plan's refusal leaves the state
    /// short of what the next step expects); the drift check is the executor's own, against
    /// what it observes on the hosts, not the forecast's against itself.
    fn drift(&self, _t: &Topology, _rebooting: NodeSet) -> Option<std::sync::Arc<str>> {
        None
    }

    /// The step's time beyond its actions passes ([`step::rest_of_step_s`]), as in the twin's run,
    /// and the state after the step is recorded: the clock the TTLs are judged by
    /// (the uploaded certificate key's 2 h, the join token's 24 h) is the twin's, so a recovery
    /// the executor ranks at a halt sees a secret expired where the twin did.
    fn step_done(&mut self, s: &Step) -> Result<(), Infallible> {
        self.c.clock_s = self.c.clock_s.saturating_add(step::rest_of_step_s(s));
        self.states.push(self.c);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
