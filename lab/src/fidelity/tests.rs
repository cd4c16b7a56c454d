//! The verdict of a row is its values': equal (a reason by its kind), and a stand-in never agrees.

use super::*;
use plan_model::validate::parse_scenario;
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{Outcome, StoppedAt};

fn homelab() -> Topology {
    Topology::new(&parse_scenario(include_str!("../../../scenarios/homelab.yaml")).expect("the homelab parses"))
}

fn verdict(twin: Observed, lab: Observed) -> Verdict {
    Verdict::of(&twin, &lab, Evidence::Real)
}

#[test]
fn a_stand_in_with_the_twins_value_is_a_stand_in_not_agreement() {
    let t = homelab();
    let refused = Observed::Answer(Err("k8s-master-2 is down".to_string()));
    let row = FidelityRow::new(&t, "2.5", "etcd member add k8s-master-2", refused.clone(), refused, Evidence::StandIn);
    assert_eq!(row.verdict(), Verdict::StandIn);
    assert!(!row.verdict().fails(), "a stand-in does not fail the rehearsal");
    let json = serde_json::to_value(&row).expect("serialises");
    assert_eq!((json["agree"].as_bool(), json["verdict"].as_str()), (Some(false), Some("stand-in")), "{json}");
    assert_eq!(json["evidence"], "stand-in");
}

#[test]
fn a_stand_in_that_differs_from_the_twin_disagrees() {
    let t = homelab();
    let row = FidelityRow::new(
        &t,
        "end",
        "kubeadm-config controlPlaneEndpoint is the VIP",
        Observed::Yes(true),
        Observed::Yes(false),
        Evidence::StandIn,
    );
    assert_eq!(row.verdict(), Verdict::Disagree);
}

#[test]
fn a_refusal_agrees_with_a_refusal_whatever_it_says() {
    let twin = Observed::Answer(Err("no quorum: 1 of 2 voters up".to_string()));
    let etcd = Observed::Answer(Err("etcdserver: unhealthy cluster".to_string()));
    assert_eq!(verdict(twin.clone(), etcd), Verdict::Agree);
    assert_eq!(verdict(twin, Observed::Answer(Ok(()))), Verdict::Disagree, "etcd took what the twin refuses");
    assert_eq!(verdict(Observed::Answer(Ok(())), Observed::Answer(Ok(()))), Verdict::Agree);
}

#[test]
fn a_node_the_inventory_lacks_disagrees() {
    let t = homelab();
    let m1 = t.existing_master();
    let seen = Observed::named_nodes(&t, ["k8s-master", "stranger"]);
    assert_eq!(seen, Observed::Nodes { known: NodeSet::of(m1), unknown: vec!["stranger".to_string()] });
    assert_eq!(verdict(Observed::nodes(NodeSet::of(m1)), seen.clone()), Verdict::Disagree);
    assert_eq!(seen.render(&t), "k8s-master + no inventory node: stranger");
    assert_eq!(verdict(Observed::nodes(NodeSet::of(m1)), Observed::named_nodes(&t, ["k8s-master"])), Verdict::Agree);
}

#[test]
fn what_the_lab_could_not_read_agrees_with_nothing() {
    let nothing = Observed::Unanswered("no member answers: context deadline exceeded".to_string());
    assert_eq!(verdict(nothing.clone(), nothing.clone()), Verdict::Disagree);
    assert_eq!(verdict(Observed::Yes(true), nothing), Verdict::Disagree);
}

/// But for the twin's own word that nothing is up to answer (every etcd member down): then the
/// lab's read gets no answer, and anything it did read disagrees, members that differ too.
#[test]
fn nothing_up_to_answer_agrees_with_no_answer_alone() {
    let nothing = Observed::NoAnswer("no answer: context deadline exceeded".to_string());
    let differ = Observed::Unanswered("members differ: k8s-master holds it, k8s-master-2 does not".to_string());
    assert_eq!(verdict(Observed::NothingUp("no member is up to answer".to_string()), differ), Verdict::Disagree);
    let nothing_up = Observed::NothingUp("no member is up to answer".to_string());
    assert_eq!(verdict(nothing_up.clone(), nothing.clone()), Verdict::Agree);
    assert_eq!(verdict(nothing_up.clone(), Observed::Yes(true)), Verdict::Disagree);
    assert_eq!(verdict(nothing_up.clone(), Observed::nodes(NodeSet::EMPTY)), Verdict::Disagree);
    assert_eq!(verdict(nothing, nothing_up), Verdict::Disagree, "the lab never predicts");
}

#[test]
fn reasons_are_shown_and_compared_by_their_kind() {
    let halted = |why: &str| Observed::Step(StepStatus::Halted(why.to_string()));
    assert_eq!(verdict(halted("no quorum"), halted("exit 1")), Verdict::Agree);
    assert_eq!(verdict(halted("no quorum"), Observed::Step(StepStatus::Done)), Verdict::Disagree);
}

#[test]
fn runs_end_alike_by_their_outcome_and_two_stuck_runs_agree() {
    let end = |o: Outcome| Observed::Ending(Ending::Outcome(o));
    let stuck = |why: &str| end(Outcome::Stuck { why: why.to_string() });
    assert_eq!(verdict(stuck("no voter left"), stuck("rollback: etcdctl member remove refused")), Verdict::Agree);
    let rolled = |phase: &str| end(Outcome::RolledBack { phase: phase.to_string() });
    assert_eq!(verdict(rolled("2"), rolled("3")), Verdict::Disagree);
    // The executor halting with nothing carried out is not the twin's hold after the cut-over.
    let hold = end(Outcome::Halted { step: "4.1".to_string() });
    assert_eq!(verdict(hold, Observed::Ending(Ending::HaltedAt("4.1".to_string()))), Verdict::Disagree);
    let t = homelab();
    assert_eq!(Observed::Ending(Ending::HaltedAt("0.3".to_string())).render(&t), "halted at 0.3");
    let path = Observed::Recoveries(vec![RecoveryKind::WaitAndRetry]);
    assert_eq!(verdict(path.clone(), Observed::Recoveries(Vec::new())), Verdict::Disagree);
    assert_eq!(Observed::Recoveries(Vec::new()).render(&t), "none");
    // A restore from the backup agrees with the twin's whatever its clock says was lost, and
    // with nothing else.
    let restored = Observed::Ending(Ending::Restored);
    let twin_restored = end(Outcome::RestoredFromSnapshot { lost_s: 27 * 3600 });
    assert_eq!(verdict(twin_restored.clone(), restored.clone()), Verdict::Agree);
    assert_eq!(verdict(restored.clone(), twin_restored), Verdict::Agree);
    assert_eq!(verdict(end(Outcome::QuorumRecovered), restored.clone()), Verdict::Disagree);
    assert_eq!(verdict(end(Outcome::Completed), restored.clone()), Verdict::Disagree);
    assert_eq!(restored.render(&t), "restored from the backup");
    // Going on: the same machines written off and the same step stopped at agree, whatever
    // words each gives for why; another step, none, or other machines do not.
    let went_on = |without: &str, at: Option<&str>| {
        let stopped_at =
            at.and_then(|at| at.split_once(": ")).map(|(step, why)| StoppedAt { step: step.to_string(), why: why.to_string() });
        end(Outcome::WentOn { without: vec![without.to_string()], stopped_at })
    };
    let twin = went_on("k8s-master", Some("8.1: acceptance criteria: k8s-master is not in the load balancer's pool"));
    assert_eq!(verdict(twin.clone(), went_on("k8s-master", Some("8.1: the twin refuses the step: acceptance"))), Verdict::Agree);
    assert_eq!(verdict(twin.clone(), went_on("k8s-master", Some("7.1: the twin refuses the step"))), Verdict::Disagree);
    assert_eq!(verdict(twin.clone(), went_on("k8s-master", None)), Verdict::Disagree);
    assert_eq!(verdict(twin, went_on("k8s-master-2", Some("8.1: acceptance"))), Verdict::Disagree);
    assert_eq!(verdict(went_on("k8s-master", None), went_on("k8s-master", None)), Verdict::Agree);
}

#[test]
fn not_rehearsed_is_its_own_verdict_and_fails() {
    let t = homelab();
    let row = FidelityRow::new(
        &t,
        "end",
        "acceptance: the reboot gate keeps quorum",
        Observed::Yes(true),
        Observed::Yes(true),
        Evidence::NotRehearsed,
    );
    assert_eq!(row.verdict(), Verdict::NotRehearsed);
    assert!(row.verdict().fails());
}

#[test]
fn a_note_is_shown_beside_the_value_and_not_compared() {
    let t = homelab();
    let twin = Observed::Yes(true).with("quorum: 2 of 3 voters up");
    let lab = Observed::Yes(true).with("a write committed in 12 ms");
    let row = FidelityRow::new(&t, "2.5", "quorum after the fault", twin, lab, Evidence::Real);
    assert_eq!((row.twin(), row.lab()), ("yes (quorum: 2 of 3 voters up)", "yes (a write committed in 12 ms)"));
    assert_eq!(row.verdict(), Verdict::Agree);
}

#[test]
fn the_summary_counts_real_rows_stand_ins_and_disagreements_apart() {
    let t = homelab();
    let refused = Observed::Answer(Err("down".to_string()));
    let mut rows = vec![
        FidelityRow::new(&t, "start", "quorum before the migration", Observed::Yes(true), Observed::Yes(true), Evidence::Real),
        FidelityRow::new(&t, "2.5", "etcd member add k8s-master-2", refused.clone(), refused, Evidence::StandIn),
    ];
    let tally = Tally::of(&rows);
    assert!(!rows.iter().any(|r| r.verdict().fails()), "a stand-in does not fail the rehearsal");
    assert_eq!(tally.to_string(), "2 observations, 1 real, 1 stand-in, 0 disagree");
    assert!(verdict_line(true, tally).contains("1 stand-in row(s) only repeat the model"));
    rows.push(FidelityRow::new(&t, "end", "committed data", Observed::Yes(true), Observed::Yes(false), Evidence::Real));
    let tally = Tally::of(&rows);
    assert_eq!(tally, Tally { observations: 3, real: 2, stand_in: 1, not_rehearsed: 0, disagree: 1 });
    assert_eq!(verdict_line(false, tally), "The lab DISAGREES with the twin.\n");
}
