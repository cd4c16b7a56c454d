//! Where each step of the drawn DAG goes: one lane per phase, one column per dependency layer.
//!
//! A step's column is its longest-path layer: the length of the longest chain of dependencies
//! that ends at it. Every edge then points right, and steps that could run side by side share a
//! column, also across phases. Within a lane, steps of one column stack in plan order.
//!
//! Why not a general layered-graph layout (rust-sugiyama, layout-rs): they place every node in
//! both directions to reduce crossings, and a node's lane here is fixed by its phase. What is
//! left for a layout to decide, the layer, is the longest path, which also reads as "the
//! earliest a step could start"; a layering that shortens edges would hide that.

use plan_model::plan::Plan;
use std::collections::HashMap;

/// Where one step goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Index into the lanes.
    pub lane: usize,
    /// Longest-path layer: 0 for a step that needs no other step of the plan.
    pub column: usize,
    /// Position among the steps of the same lane and column, in plan order.
    pub row: usize,
}

/// A phase's lane: the phase and how many rows its busiest column needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// Index into `plan.phases`; `None` for a phase a step names that the plan does not list.
    pub phase: Option<usize>,
    pub phase_id: String,
    pub rows: usize,
}

/// The whole arrangement: a slot per step, in the plan's step order, and the lanes top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrangement {
    pub slots: Vec<Slot>,
    pub lanes: Vec<Lane>,
    pub columns: usize,
}

/// Longest-path layer of every step, in plan order. A plan is in an order where each step's
/// dependencies come first (`Plan::check_order`, on every loaded plan), so one pass suffices; a
/// dependency that is absent (a step removed from an edited plan) or later is no edge to draw.
pub fn layers(plan: &Plan) -> Vec<usize> {
    let mut layer_of: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let layer = step.after.iter().filter_map(|d| layer_of.get(d.step.as_str())).map(|l| l + 1).max().unwrap_or(0);
        layer_of.insert(step.id.as_str(), layer);
        out.push(layer);
    }
    out
}

/// The lanes, one per phase that has a step, in the plan's phase order.
fn lanes(plan: &Plan) -> Vec<Lane> {
    let mut out: Vec<Lane> = plan
        .phases
        .iter()
        .enumerate()
        .filter(|(_, p)| plan.steps.iter().any(|s| s.phase == p.id))
        .map(|(i, p)| Lane { phase: Some(i), phase_id: p.id.clone(), rows: 1 })
        .collect();
    for step in &plan.steps {
        if !out.iter().any(|l| l.phase_id == step.phase) {
            out.push(Lane { phase: None, phase_id: step.phase.clone(), rows: 1 });
        }
    }
    out
}

/// Arranges the plan's steps in lanes and columns.
pub fn arrange(plan: &Plan) -> Arrangement {
    let mut lanes = lanes(plan);
    let layers = layers(plan);
    let mut taken: HashMap<(usize, usize), usize> = HashMap::new();
    let mut slots = Vec::with_capacity(plan.steps.len());
    for (step, column) in plan.steps.iter().zip(&layers) {
        let lane = lanes.iter().position(|l| l.phase_id == step.phase).expect("lanes() made a lane for every step's phase");
        let row = taken.entry((lane, *column)).or_default();
        slots.push(Slot { lane, column: *column, row: *row });
        *row += 1;
        lanes[lane].rows = lanes[lane].rows.max(*row);
    }
    let columns = layers.iter().max().map_or(0, |m| m + 1);
    Arrangement { slots, lanes, columns }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::plan::{Dependency, Phase, RunsOn, Step, PLAN_FORMAT};

    fn step(id: &str, phase: &str, after: &[&str]) -> Step {
        Step {
            id: id.to_string(),
            phase: phase.to_string(),
            title: format!("step {id}"),
            runs_on: RunsOn::Workstation,
            operations: Vec::new(),
            commands: Vec::new(),
            checks: Vec::new(),
            rollback: Vec::new(),
            actions: Vec::new(),
            effects: Vec::new(),
            after: after.iter().map(|a| Dependency { step: a.to_string(), why: "needs it".to_string() }).collect(),
            duration_s: 60,
            extra_s: 0,
            disruption: None,
            note: None,
        }
    }

    fn plan(steps: Vec<Step>, phases: &[&str]) -> Plan {
        Plan {
            plan_format: PLAN_FORMAT,
            scenario: "test".to_string(),
            phases: phases.iter().map(|p| Phase { id: p.to_string(), title: format!("phase {p}") }).collect(),
            steps,
            rollbacks: Vec::new(),
            only_phase: None,
        }
    }

    #[test]
    fn a_step_sits_one_column_right_of_its_latest_dependency() {
        let p = plan(
            vec![step("0.1", "0", &[]), step("0.2", "0", &["0.1"]), step("1.1", "1", &["0.1"]), step("1.2", "1", &["1.1", "0.2"])],
            &["0", "1"],
        );
        assert_eq!(layers(&p), [0, 1, 1, 2]);
        let a = arrange(&p);
        assert_eq!(a.columns, 3);
        assert_eq!(a.slots[2], Slot { lane: 1, column: 1, row: 0 }, "1.1 can start beside 0.2, in its own lane");
    }

    #[test]
    fn steps_of_one_lane_and_column_stack_and_the_lane_grows() {
        let p = plan(vec![step("0.1", "0", &[]), step("0.2", "0", &["0.1"]), step("0.3", "0", &["0.1"])], &["0"]);
        let a = arrange(&p);
        assert_eq!((a.slots[1].row, a.slots[2].row), (0, 1));
        assert_eq!(a.lanes[0].rows, 2);
        let mut seen = std::collections::HashSet::new();
        assert!(a.slots.iter().all(|s| seen.insert(*s)), "no two steps share a slot");
    }

    #[test]
    fn removed_steps_and_empty_phases_leave_no_edge_and_no_lane() {
        // 0.2 was removed from an edited plan: 0.3 still names it, and starts a chain of its own.
        let p = plan(vec![step("0.1", "0", &[]), step("0.3", "0", &["0.2"]), step("2.1", "2", &["0.3"])], &["0", "1", "2"]);
        assert_eq!(layers(&p), [0, 0, 1]);
        let a = arrange(&p);
        let ids: Vec<&str> = a.lanes.iter().map(|l| l.phase_id.as_str()).collect();
        assert_eq!(ids, ["0", "2"], "phase 1 has no step left");
        assert_eq!(a.lanes[1].phase, Some(2));
    }

    #[test]
    fn an_empty_plan_has_no_column() {
        let a = arrange(&plan(Vec::new(), &["0"]));
        assert_eq!((a.columns, a.lanes.len(), a.slots.len()), (0, 0, 0));
    }
}
