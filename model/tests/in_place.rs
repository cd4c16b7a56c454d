//! The transitions the exploration makes in place (`action::apply_in_place`,
//! `Fault::strike_in_place`, `Fault::heal_in_place`) against the ones that return a new state:
//! the same state after, the same refusal, and after a refusal the state as it was (every
//! transition writes the clock before it may refuse); unworded (`action::apply_in_place_unworded`),
//! the same but for the refusal's words, left out.

use plan_model::action::{self, Action};
use plan_model::cluster::Cluster;
use plan_model::fault::Fault;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;

/// Every state the plan passes without faults, and each of them struck by every fault.
fn states(t: &Topology, actions: &[Action]) -> Vec<Cluster> {
    let mut c = Cluster::initial(t);
    let mut states = vec![c];
    for a in actions {
        if let Ok(next) = action::apply(&c, t, *a) {
            c = next;
            states.push(c);
        }
    }
    let faults = Fault::all(t);
    let struck: Vec<Cluster> = states.iter().step_by(4).flat_map(|c| faults.iter().map(|f| f.strike(c, t))).collect();
    states.extend(struck);
    states
}

#[test]
fn a_transition_in_place_is_the_transition() {
    for text in [include_str!("../../scenarios/homelab.yaml"), include_str!("../../scenarios/kube-vip-bare.yaml")] {
        let t = Topology::new(&parse_scenario(text).expect("the scenario is valid"));
        let plan = planner::generate(&t);
        let actions: Vec<Action> = plan.steps.iter().flat_map(|s| s.actions.iter().copied()).collect();
        let (mut applied, mut refused) = (0, 0);
        for c in states(&t, &actions) {
            for a in &actions {
                let mut in_place = c;
                // Unworded (the exploration's): the same state after, or the same refusal
                // without its words and the state as it was.
                let mut unworded = c;
                match (action::apply(&c, &t, *a), action::apply_in_place_unworded(&mut unworded, &t, *a)) {
                    (Ok(next), Ok(())) => assert_eq!(next, unworded, "{a:?} unworded"),
                    (Err(worded), Err(bare)) => {
                        assert_eq!((worded.kind, ""), (bare.kind, bare.reason.as_str()), "{a:?} unworded");
                        assert_eq!(c, unworded, "{a:?} refused unworded left the state changed");
                    }
                    (worded, bare) => panic!("{a:?}: {worded:?} worded, {bare:?} unworded"),
                }
                match (action::apply(&c, &t, *a), action::apply_in_place(&mut in_place, &t, *a)) {
                    (Ok(next), Ok(())) => {
                        assert_eq!(next, in_place, "{a:?}");
                        applied += 1;
                    }
                    (Err(by_value), Err(here)) => {
                        assert_eq!(by_value, here, "{a:?}");
                        assert_eq!(c, in_place, "{a:?} refused left the state changed");
                        refused += 1;
                    }
                    (by_value, here) => panic!("{a:?}: {by_value:?} by value, {here:?} in place"),
                }
            }
            for f in Fault::all(&t) {
                let (mut struck, mut healed) = (c, c);
                f.strike_in_place(&mut struck, &t);
                f.heal_in_place(&mut healed, &t);
                assert_eq!(f.strike(&c, &t), struck, "{f:?} struck");
                assert_eq!(f.heal(&c, &t), healed, "{f:?} healed");
            }
        }
        assert!(applied > 1000 && refused > 1000, "both paths were taken: {applied} applied, {refused} refused");
    }
}
