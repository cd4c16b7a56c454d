//! The twin's executor looks at the hosts after every step as well as before it, as the real
//! executor does: a machine lost inside a step, where the step's remaining actions do not meet
//! it, halts the run in that step (whose phase the recovery undoes), never in a later one.

use plan_model::fault::Fault;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::run::{Engine, Halt, Injection, Recording};

fn topology(text: &str) -> Topology {
    Topology::new(&parse_scenario(text).expect("the scenario is valid"))
}

#[test]
fn a_machine_lost_inside_a_step_halts_the_run_in_that_step() {
    let scenarios = [
        topology(include_str!("../../scenarios/homelab.yaml")),
        topology(include_str!("../../scenarios/five-masters.yaml")),
        topology(include_str!("../../scenarios/legacy-1.28.yaml")),
        topology(include_str!("../../scenarios/three-hypervisors.yaml")),
    ];
    for t in &scenarios {
        let plan = planner::generate(t);
        let engine = Engine::new(t, &plan, Recording::default());
        let (_, states) = engine.track();
        let mut drift_halts = 0;
        for (point, before) in states.iter().filter(|(p, _)| p.action > 0) {
            for node in before.vm_exists.minus(before.written_off).and(before.up).iter() {
                let fault = Fault::NodeDown { node, lasts_s: None };
                let result = engine.run(&[Injection { at: *point, fault }]);
                let step = &plan.steps[point.step as usize].id;
                if let Some(Halt::Drift(why)) = &result.halt {
                    drift_halts += 1;
                    let label = format!("{}: {} lost at {step}@{}: {why}", t.scenario.name, t.name(node), point.action);
                    assert_eq!(result.halted_at.as_ref(), Some(step), "{label}");
                }
            }
        }
        assert!(drift_halts > 20, "{}: {drift_halts} drift halts", t.scenario.name);
    }
}

/// A fault the look after a step waits out (a worker rebooting inside the failover test, 6.1)
/// does not make the twin run the step again: the executor's resume skips every command done
/// and only looks again, so the failover master is shut down once, and the step's time passes
/// once.
#[test]
fn waiting_out_a_fault_found_after_a_step_does_not_run_the_step_again() {
    use plan_model::action::Action;
    use plan_sim::run::EventKind;
    let t = topology(include_str!("../../scenarios/homelab.yaml"));
    let plan = planner::generate(&t);
    let failover = plan.steps.iter().position(|s| s.actions.iter().any(|a| matches!(a, Action::Shutdown(_)))).expect("a reboot step");
    let shutdown = plan.steps[failover].actions.iter().find(|a| matches!(a, Action::Shutdown(_))).expect("its shutdown").describe(&t);
    let worker = t.workers().next().expect("a worker");
    let engine = Engine::new(&t, &plan, Recording { events: true, downtime: false });
    let mut waited_after = 0;
    for action in 1..plan.steps[failover].actions.len() as u16 {
        let at = plan_sim::run::Point { step: failover as u16, action };
        let result = engine.run(&[Injection { at, fault: Fault::NodeDown { node: worker, lasts_s: Some(90) } }]);
        let shutdowns = result.events.iter().filter(|e| e.kind == EventKind::Action && e.what == shutdown).count();
        assert_eq!(shutdowns, 1, "a worker rebooting at {}@{action}: {:?}", plan.steps[failover].id, result.recoveries);
        waited_after += usize::from(result.halted_at.as_deref() == Some(plan.steps[failover].id.as_str()));
    }
    assert!(waited_after > 0, "some placement halts after the step and waits");
}
