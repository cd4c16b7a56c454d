//! Fuzzes the plan-file loader the way `plan --plan FILE` runs it: bytes -> UTF-8 -> Plan from
//! YAML -> Plan::from_edited against the embedded homelab plan (which checks the DAG order).
//! Any panic is a bug: a bad plan file must come back as a YAML error or a PlanError.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plan_model::plan::Plan;
use plan_model::{planner, topology::Topology, validate::parse_scenario};
use std::sync::OnceLock;

static GENERATED: OnceLock<(Topology, Plan)> = OnceLock::new();

fn homelab() -> &'static (Topology, Plan) {
    GENERATED.get_or_init(|| {
        let scenario = parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("the embedded scenario is valid");
        let t = Topology::new(&scenario);
        let plan = planner::generate(&t);
        (t, plan)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(file) = serde_yaml_ng::from_str::<Plan>(text) else { return };
    let _ = file.check_order();
    let (t, generated) = homelab();
    if let Ok(plan) = Plan::from_edited(t, generated, &file) {
        assert!(plan.check_order().is_ok(), "from_edited accepted a plan that breaks its DAG");
    }
});
