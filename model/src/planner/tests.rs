use super::*;
use crate::validate::parse_scenario;

fn homelab() -> Topology {
    Topology::new(&parse_scenario(include_str!("../../../scenarios/homelab.yaml")).unwrap())
}

#[test]
fn the_homelab_plan_has_every_source_step() {
    let plan = generate(&homelab());
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    for id in [
        "0.1", "0.2", "0.3", "0.4", "0.6", "1.1", "1.2", "1.3", "1.4", "1.5.1", "1.5.2", "1.5.3", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5",
        "2.6", "2.7", "2.8", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "4.1", "4.2", "4.3", "4.4", "4.5", "4.5.1", "4.5.2",
        "4.5.3", "5.1", "5.2", "5.3", "6.1", "6.2", "6.3", "7.1", "7.2", "7.3", "7.4", "7.5", "8.1",
    ] {
        assert!(ids.contains(&id), "missing step {id}");
    }
    assert!(plan.rollbacks.iter().any(|r| r.id == "0.5"));
    plan.check_order().expect("the generated order satisfies the DAG");
}

#[test]
fn phases_follow_the_source_order() {
    let plan = generate(&homelab());
    let phases: Vec<&str> = plan.phases.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(phases, ["0", "1", "1.5", "2", "3", "4", "4.5", "5", "6", "7", "8"]);
}

#[test]
fn moving_the_cutover_before_the_retrofit_names_both_steps() {
    let mut plan = generate(&homelab());
    let at = plan.steps.iter().position(|s| s.id == "4.1").unwrap();
    let cutover = plan.steps.remove(at);
    plan.steps.insert(0, cutover);
    let error = plan.check_order().unwrap_err().to_string();
    assert!(error.contains("step 4.1") && error.contains("step 0."), "{error}");
}

#[test]
fn master_phases_past_the_third_get_letters() {
    assert_eq!(master_phase(0), "2");
    assert_eq!(master_phase(1), "3");
    assert_eq!(master_phase(2), "3b");
    assert_eq!(master_phase(3), "3c");
}
