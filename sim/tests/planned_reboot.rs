//! A step that shuts a machine down and boots it again (the failover test's planned reboot):
//! a re-run of the step finds the machine as the step left it and boots it itself, and a
//! machine that fails for good while it is down does not come back with that boot.

use plan_model::action::Action;
use plan_model::fault::{Fault, FaultKind};
use plan_model::plan::Plan;
use plan_model::planner;
use plan_model::topology::{NodeIx, Topology};
use plan_model::validate::parse_scenario;
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{Engine, Injection, Outcome, Point, Recording};

fn topology(text: &str) -> Topology {
    Topology::new(&parse_scenario(text).expect("the scenario is valid"))
}

/// Scenarios with other names, sizes and VIPs than the homelab's.
fn scenarios() -> Vec<Topology> {
    vec![
        topology(include_str!("../../scenarios/homelab.yaml")),
        topology(include_str!("../../scenarios/five-masters.yaml")),
        topology(include_str!("../../scenarios/kube-vip-bare.yaml")),
        topology(include_str!("../../scenarios/three-hypervisors.yaml")),
        topology(include_str!("../../scenarios/keepalived-five.yaml")),
    ]
}

/// Every point of the plan where a step has shut a machine down and not yet booted it: the
/// machine, and the point (after the shutdown, up to the boot), read off the steps' actions.
fn while_rebooting(plan: &Plan) -> Vec<(NodeIx, Point)> {
    let mut points = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        for (k, a) in s.actions.iter().enumerate() {
            let Action::Shutdown(x) = *a else { continue };
            let Some(boot) = s.actions[k..].iter().position(|b| *b == Action::Boot(x)).map(|b| k + b) else { continue };
            points.extend((k + 1..=boot).map(|action| (x, Point { step: i as u16, action: action as u16 })));
        }
    }
    points
}

/// The executor crashing, or a temporary fault on another machine, while a planned reboot is
/// under way: the step is resumed or re-run, finds the machine down as it left it (no drift),
/// boots it, and the plan completes. Before, the re-run halted on that drift and held: the
/// plan stopped for good at the failover test.
#[test]
fn a_planned_reboot_cut_by_a_crash_or_a_passing_fault_is_finished_and_the_plan_completes() {
    for t in scenarios() {
        let plan = planner::generate(&t);
        let engine = Engine::new(&t, &plan, Recording::default());
        let points = while_rebooting(&plan);
        assert!(!points.is_empty(), "{}: the plan has a planned reboot", t.scenario.name);
        for &(x, at) in &points {
            let passing = Fault::all(&t).into_iter().filter(|f| {
                f.kind() == FaultKind::ExecutorCrash
                    || (f.lasts_s().is_some() && f.kind() != FaultKind::OperatorAway && !f.nodes_down(&t).contains(x))
            });
            for fault in passing {
                let result = engine.run(&[Injection { at, fault }]);
                let label = format!("{}: {} at {}@{}", t.scenario.name, fault.describe(&t), plan.steps[at.step as usize].id, at.action);
                assert_eq!(result.outcome, Outcome::Completed, "{label}: halted with {:?}", result.halt);
                assert!(result.final_state.up.contains(x), "{label}: {} is up at the end", t.name(x));
                // The crash is resumed and nothing more; a fault that halts the step is waited for.
                let only = if fault.kind() == FaultKind::ExecutorCrash { RecoveryKind::Resume } else { RecoveryKind::WaitAndRetry };
                assert!(result.recoveries.iter().all(|r| *r == only), "{label}: {:?}", result.recoveries);
                if fault.kind() == FaultKind::ExecutorCrash {
                    assert!(!result.recoveries.is_empty(), "{label}: the crash is resumed");
                }
            }
        }
    }
}

/// The machine failing for good while the step has it down: the step's own boot does not bring
/// it back; the run halts there, and the recovery taken leaves it down and out of etcd.
#[test]
fn a_machine_lost_for_good_during_its_planned_reboot_is_not_booted_back() {
    for t in scenarios() {
        let plan = planner::generate(&t);
        let engine = Engine::new(&t, &plan, Recording::default());
        for (x, at) in while_rebooting(&plan) {
            let result = engine.run(&[Injection { at, fault: Fault::NodeDown { node: x, lasts_s: None } }]);
            let label = format!("{}: {} lost at {}@{}", t.scenario.name, t.name(x), plan.steps[at.step as usize].id, at.action);
            assert_ne!(result.outcome, Outcome::Completed, "{label}");
            assert!(result.halt.is_some(), "{label}: the run halts");
            let end = result.final_state;
            assert!(!end.up.contains(x) && end.broken.contains(x), "{label}: it stays down");
            assert!(!end.members().contains(x), "{label}: its etcd member is removed");
        }
    }
}
