//! The executor dies inside a `kubeadm join`: the twin resumes the step, cleans up what the cut
//! join left (reset, then the member's removal) and runs it again, as the executor does; it does
//! not roll the phase back. Without learners, a voter added and never started leaves etcd without
//! quorum: the cleanup is refused and the twin halts instead.

use plan_model::action::Action;
use plan_model::fault::Fault;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{Engine, Injection, Outcome, Point, Recording};

fn topology(text: &str) -> Topology {
    Topology::new(&parse_scenario(text).expect("the scenario is valid"))
}

/// Every point inside a join: after its member add, its etcd start, its promotion.
fn points_inside_joins(plan: &plan_model::plan::Plan) -> Vec<(Point, Action)> {
    let mut out = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for (k, a) in step.actions.iter().enumerate() {
            if matches!(a, Action::EtcdMemberAdd(_) | Action::EtcdStart(_) | Action::EtcdPromote(_)) {
                out.push((Point { step: i as u16, action: (k + 1) as u16 }, *a));
            }
        }
    }
    out
}

#[test]
fn a_join_cut_by_the_executors_death_is_cleaned_up_and_run_again() {
    for text in [
        include_str!("../../scenarios/homelab.yaml"),
        include_str!("../../scenarios/homelab-rightsized.yaml"),
        include_str!("../../scenarios/five-masters.yaml"),
        include_str!("../../scenarios/three-hypervisors.yaml"),
    ] {
        let t = topology(text);
        let plan = planner::generate(&t);
        let engine = Engine::new(&t, &plan, Recording::default());
        let clean = engine.run(&[]);
        let points = points_inside_joins(&plan);
        assert!(points.len() >= 3 * t.new_masters().count(), "{}: {points:?}", t.scenario.name);
        for (at, action) in points {
            let label = format!("{} at {}@{} ({action:?})", t.scenario.name, plan.steps[at.step as usize].id, at.action);
            let result = engine.run(&[Injection { at, fault: Fault::ExecutorCrash }]);
            assert!(matches!(result.outcome, Outcome::Completed), "{label}: {:?}", result.outcome);
            assert!(!result.recoveries.iter().any(|r| matches!(r, RecoveryKind::Rollback { .. })), "{label}: rolled back");
            // The resumed run ends where the uninterrupted one does, membership and all.
            assert_eq!(result.final_state.voters, clean.final_state.voters, "{label}");
            assert_eq!(result.final_state.learners, clean.final_state.learners, "{label}");
            assert_eq!(result.final_state.control_plane, clean.final_state.control_plane, "{label}");
        }
    }
}

#[test]
fn without_learners_a_voter_added_and_never_started_is_not_cleaned_up_blindly() {
    let t = topology(include_str!("../../scenarios/legacy-1.28.yaml"));
    assert!(!t.learner_mode, "1.28 joins without learners here");
    let plan = planner::generate(&t);
    let engine = Engine::new(&t, &plan, Recording::default());
    // After the second master's add (a voter of two, one started): no quorum.
    let (at, _) = points_inside_joins(&plan).into_iter().find(|(_, a)| matches!(a, Action::EtcdMemberAdd(_))).expect("a join");
    let result = engine.run(&[Injection { at, fault: Fault::ExecutorCrash }]);
    let halted = result.recoveries.iter().any(|r| !matches!(r, RecoveryKind::Resume));
    assert!(halted, "the removal needs quorum; the twin halts and recovers: {:?} {:?}", result.outcome, result.recoveries);
}
