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
