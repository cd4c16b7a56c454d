//! Fuzzes the scenario pipeline: bytes -> UTF-8 -> parse_scenario (YAML + validation + error
//! location) -> Topology -> planner -> a fault-free twin run. Any panic is a bug: bad input must
//! come back as a ScenarioError, and a scenario that validates must plan and simulate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plan_model::{planner, topology::Topology, validate::parse_scenario};
use plan_sim::run::{Engine, Recording};

fuzz_target!(|bytes: &[u8]| {
    // The CLI refuses non-UTF-8 before parsing; do the same, lossily, so junk still reaches the parser.
    let text = String::from_utf8_lossy(bytes);
    let Ok(scenario) = parse_scenario(&text) else { return };
    let topology = Topology::new(&scenario);
    let plan = planner::generate(&topology);
    assert!(plan.check_order().is_ok(), "the planner's own plan breaks its DAG");
    let _ = Engine::new(&topology, &plan, Recording::default()).run(&[]);
});
