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

    pub fn before(&self, step: usize) -> &Cluster {
        &self.states[step]
    }

    pub fn after(&self, step: usize) -> &Cluster {
        &self.states[step + 1]
    }
}
