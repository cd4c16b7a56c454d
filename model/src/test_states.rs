//! For tests: every state a scenario's plan passes through, each also struck by every fault.

use crate::cluster::Cluster;
use crate::fault::Fault;
use crate::planner;
use crate::topology::Topology;
use crate::validate::parse_scenario;

/// The scenario of `text`, and every state of its plan, each as it is and struck by every fault.
pub(crate) fn states_struck(text: &str) -> (Topology, Vec<Cluster>) {
    let t = Topology::new(&parse_scenario(text).expect("the scenario is valid"));
    let plan = planner::generate(&t);
    let mut c = Cluster::initial(&t);
    let mut states = vec![c];
    for a in plan.steps.iter().flat_map(|s| s.actions.iter()) {
        if let Ok(next) = crate::action::apply(&c, &t, *a) {
            c = next;
            states.push(c);
        }
    }
    let faults = Fault::all(&t);
    let struck = states.iter().flat_map(|s| std::iter::once(*s).chain(faults.iter().map(|f| f.strike(s, &t)))).collect();
    (t, struck)
}
