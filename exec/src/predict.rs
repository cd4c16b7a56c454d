//! What the twin predicts at every step boundary of the plan run without faults.

use plan_model::action::{self, Action};
use plan_model::cluster::Cluster;
use plan_model::plan::Plan;
use plan_model::topology::Topology;

/// The twin's state before each step, and after the last.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// `states[i]` is before step `i`; `states[steps.len()]` is after the last step.
    pub states: Vec<Cluster>,
    /// Where the twin refused an action (an edited plan may skip what a step needs): step id and
    /// reason. The prediction carries on with the state unchanged by that action.
    pub refusals: Vec<(String, String)>,
}

impl Prediction {
    /// Runs the plan's actions over the model from the scenario's initial state.
    pub fn new(t: &Topology, plan: &Plan) -> Prediction {
        Prediction::from(t, plan, Cluster::initial(t))
    }

    /// Runs the plan's actions over the model from `start`. A refused verification halts
    /// nothing (it is recorded by the runner's own checks); a refused command is kept.
    pub fn from(t: &Topology, plan: &Plan, start: Cluster) -> Prediction {
        let mut c = start;
        let mut states = vec![c];
        let mut refusals = Vec::new();
        for step in &plan.steps {
            for &a in &step.actions {
                match action::apply(&c, t, a) {
                    Ok(next) => c = next,
                    Err(refusal) if !matches!(a, Action::Verify(_)) => refusals.push((step.id.clone(), refusal.reason)),
                    Err(_) => {}
                }
            }
            states.push(c);
        }
        Prediction { states, refusals }
    }

    /// The states step `step` passes through, its actions applied one by one from the state
    /// before it, that state and the one after it included: what a step the executor died in
    /// may have left (a cut `kubeadm join` leaves its member added, or started as a learner).
    pub fn within(&self, t: &Topology, plan: &Plan, step: usize) -> Vec<Cluster> {
        let mut c = self.states[step];
        let mut out = vec![c];
        for &a in &plan.steps[step].actions {
            if let Ok(next) = action::apply(&c, t, a) {
                c = next;
                if !out.contains(&c) {
                    out.push(c);
                }
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
