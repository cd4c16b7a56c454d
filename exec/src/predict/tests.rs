use super::*;
use plan_model::action::Check;
use plan_model::scenario::{NewMasterSpec, Scenario};
use plan_model::validate::{parse_scenario, validate};

/// The plan's actions folded over the model, every refusal kept with its action, and each step's
/// time beyond its actions passed after it, as the twin's run passes it. Here only, to check the
/// loop against.
struct Folded {
    states: Vec<Cluster>,
    refused: Vec<(String, Action, String)>,
}

fn fold(t: &Topology, plan: &Plan, start: Cluster) -> Folded {
    let mut c = start;
    let mut folded = Folded { states: vec![c], refused: Vec::new() };
    for step in &plan.steps {
        for &a in &step.actions {
            match action::apply(&c, t, a) {
                Ok(next) => c = next,
                Err(refusal) => folded.refused.push((step.id.clone(), a, refusal.reason)),
            }
        }
        c.clock_s = c.clock_s.saturating_add(step.duration_s.saturating_sub(step.actions.iter().map(|a| a.duration_s()).sum()));
        folded.states.push(c);
    }
    folded
}

/// The refusals the prediction keeps: the commands', not the verifications'.
fn commands_refused(folded: &Folded) -> Vec<(String, String)> {
    folded.refused.iter().filter(|(_, a, _)| !matches!(a, Action::Verify(_))).map(|(id, _, why)| (id.clone(), why.clone())).collect()
}

fn planned(scenario: &Scenario) -> (Topology, Plan) {
    if let Err(problem) = validate(scenario) {
        panic!("{}: {} ({})", scenario.name, problem.message, problem.path);
    }
    let t = Topology::new(scenario);
    let plan = plan_model::planner::generate(&t);
    (t, plan)
}

fn homelab() -> Scenario {
    parse_scenario(include_str!("../../../scenarios/homelab.yaml")).expect("the homelab is valid")
}

fn five_masters() -> Scenario {
    parse_scenario(include_str!("../../../scenarios/five-masters.yaml")).expect("five masters is valid")
}

/// Five masters and two more, on the same hypervisors.
fn seven_masters() -> Scenario {
    let mut s = five_masters();
    s.name = "seven-masters".to_string();
    for (name, last_octet, vmid, hypervisor) in [("ctl-f", 15, 305, "pve-b"), ("ctl-g", 16, 306, "pve-a")] {
        s.new_masters.push(NewMasterSpec {
            name: name.to_string(),
            address: std::net::Ipv4Addr::new(198, 51, 100, last_octet),
            vmid: Some(vmid),
            hypervisor: hypervisor.to_string(),
            vcpu: 4,
            ram_gb: 16.0,
            disk_gb: 64,
        });
    }
    s.target.control_plane_count = 7;
    s
}

#[test]
fn the_loop_predicts_what_the_fold_did_on_three_five_and_seven_masters() {
    for (scenario, masters) in [(homelab(), 3), (five_masters(), 5), (seven_masters(), 7)] {
        let (t, plan) = planned(&scenario);
        assert_eq!(t.target_masters().len(), masters as u32, "{}", scenario.name);
        let folded = fold(&t, &plan, Cluster::initial(&t));
        let predicted = Prediction::new(&t, &plan);
        assert_eq!(predicted.states.len(), plan.steps.len() + 1, "{}", scenario.name);
        assert_eq!(predicted.states, folded.states, "{}", scenario.name);
        assert_eq!(predicted.refusals, commands_refused(&folded), "{}", scenario.name);
        // The clock too: each step takes its time, or its actions' where they take longer.
        let taken_s: u32 = plan.steps.iter().map(|s| s.duration_s.max(s.actions.iter().map(|a| a.duration_s()).sum())).sum();
        let last = predicted.states.last().expect("a state after the last step");
        assert_eq!(last.clock_s, Cluster::initial(&t).clock_s + taken_s, "{}", scenario.name);
    }
}

#[test]
fn a_prediction_from_a_later_state_is_the_fold_from_it() {
    let (t, plan) = planned(&five_masters());
    let whole = Prediction::new(&t, &plan);
    let first = plan.steps.len() / 2;
    let sliced = Plan { steps: plan.steps[first..].to_vec(), ..plan.clone() };
    let predicted = Prediction::from(&t, &sliced, *whole.before(first));
    assert_eq!(predicted.states, whole.states[first..], "the second half as the whole plan saw it");
    assert_eq!(predicted.states, fold(&t, &sliced, *whole.before(first)).states);
}

#[test]
fn a_plan_without_its_first_join_is_refused_where_the_fold_refused_it_and_runs_to_the_end() {
    for scenario in [homelab(), five_masters()] {
        let (t, mut plan) = planned(&scenario);
        let join = plan.steps.iter().position(|s| s.actions.iter().any(|a| matches!(a, Action::EtcdMemberAdd(_)))).expect("a join step");
        plan.steps.remove(join);
        let folded = fold(&t, &plan, Cluster::initial(&t));
        let predicted = Prediction::new(&t, &plan);
        assert!(!predicted.refusals.is_empty(), "{}: a later step needs the joined master", scenario.name);
        assert_eq!(predicted.refusals, commands_refused(&folded), "{}", scenario.name);
        assert_eq!(predicted.states.len(), plan.steps.len() + 1, "{}: carries on to the end", scenario.name);
        assert_eq!(predicted.states, folded.states, "{}", scenario.name);
    }
}

#[test]
fn a_refused_verification_is_not_recorded() {
    let (t, mut plan) = planned(&homelab());
    let start = Cluster::initial(&t);
    // Before any step, the VIP does not answer: its verification is refused.
    assert!(action::apply(&start, &t, Action::Verify(Check::ViaVip)).is_err(), "the VIP answers before the migration");
    plan.steps.truncate(1);
    plan.steps[0].actions = vec![Action::Verify(Check::ViaVip)];
    let predicted = Prediction::new(&t, &plan);
    assert_eq!(predicted.refusals, Vec::<(String, String)>::new());
    // The refused verification's own time does not pass (it did not happen); the rest of the step's does.
    let later = Cluster { clock_s: start.clock_s + step::rest_of_step_s(&plan.steps[0]), ..start };
    assert!(later.clock_s > start.clock_s, "the step takes longer than its verification");
    assert_eq!(predicted.states, vec![start, later], "a refused verification changes nothing but the clock");
}

#[test]
fn the_edited_plans_refused_verifications_are_left_out_and_its_commands_kept() {
    let (t, mut plan) = planned(&homelab());
    let join = plan.steps.iter().position(|s| s.actions.iter().any(|a| matches!(a, Action::EtcdMemberAdd(_)))).expect("a join step");
    plan.steps.remove(join);
    let folded = fold(&t, &plan, Cluster::initial(&t));
    let verifications = folded.refused.iter().filter(|(_, a, _)| matches!(a, Action::Verify(_))).count();
    assert!(verifications > 0, "a verification after the missing join is refused");
    let predicted = Prediction::new(&t, &plan);
    assert_eq!(predicted.refusals.len(), folded.refused.len() - verifications);
}

#[test]
fn within_a_step_are_the_states_its_actions_pass_through() {
    let (t, plan) = planned(&homelab());
    let predicted = Prediction::new(&t, &plan);
    for (i, step) in plan.steps.iter().enumerate() {
        let mut c = predicted.states[i];
        let mut expected = vec![c];
        for &a in &step.actions {
            if let Ok(next) = action::apply(&c, &t, a) {
                c = next;
                if !expected.contains(&c) {
                    expected.push(c);
                }
            }
        }
        // And the state after the step, its time beyond its actions passed.
        if !expected.contains(predicted.after(i)) {
            expected.push(*predicted.after(i));
        }
        let within = predicted.within(&t, &plan, i);
        assert_eq!(within, expected, "{}", step.id);
        assert!(within.contains(predicted.after(i)), "{}", step.id);
    }
}

#[test]
fn a_prediction_from_a_state_the_executor_would_call_drift_carries_on() {
    let (t, plan) = planned(&homelab());
    let start = plan_model::fault::Fault::LbDown { lasts_s: 60 }.strike(&Cluster::initial(&t), &t);
    assert!(plan_sim::policy::drift(&start, &t).is_some(), "the load balancer down is drift");
    let predicted = Prediction::from(&t, &plan, start);
    let folded = fold(&t, &plan, start);
    assert_eq!(predicted.states.len(), plan.steps.len() + 1, "carries on to the end");
    assert_eq!(predicted.states, folded.states);
    assert_eq!(predicted.refusals, commands_refused(&folded));
}

/// A write-off at a halt after every command of the step had run: the run goes on from the next
/// step, so the halted step is predicted as done already, from and to the write-off's state (the
/// resume only looks at it), and the rest from that state, as `going_on` from the next step
/// predicts it; the steps before are the whole plan's.
#[test]
fn a_run_going_on_after_a_step_that_ran_whole_holds_the_write_off_state_around_it() {
    for scenario in [homelab(), five_masters()] {
        let (t, plan) = planned(&scenario);
        let whole = Prediction::new(&t, &plan);
        let halted = plan.steps.len() / 2;
        let mut start = *whole.after(halted);
        start.clock_s += 600;
        let after = Prediction::going_on_after(&t, &plan, halted, start);
        let from_next = Prediction::going_on(&t, &plan, halted + 1, start);
        assert_eq!(after.states[..halted], whole.states[..halted], "{}", scenario.name);
        assert_eq!((after.before(halted), after.after(halted)), (&start, &start), "{}", scenario.name);
        assert_eq!(after.states[halted + 1..], from_next.states[halted + 1..], "{}", scenario.name);
        assert_ne!(
            from_next.before(halted),
            &start,
            "{}: going on from the next step alone predicts the halted one without the write-off",
            scenario.name
        );
    }
}
