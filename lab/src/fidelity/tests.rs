//! The verdict of a row is its values': equal (a reason by its kind), and a stand-in never agrees.

use super::*;
use plan_model::observe::Reach;
use plan_model::validate::parse_scenario;
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::Outcome;

fn homelab() -> Topology {
    Topology::new(&parse_scenario(include_str!("../../../scenarios/homelab.yaml")).expect("the homelab parses"))
}

fn verdict(twin: Observed, lab: Observed) -> Verdict {
    Verdict::of(&twin, &lab, Evidence::Real)
}

fn report(rows: Vec<FidelityRow>) -> FidelityReport {
    FidelityReport {
        scenario: "homelab".to_string(),
        learner_mode: true,
        fault: None,
        at: None,
        rows,
        twin_outcome: "completed".to_string(),
        lab_outcome: "completed".to_string(),
        twin_recoveries: Vec::new(),
        lab_recoveries: Vec::new(),
        figures: Figures::default(),
    }
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
fn different_member_sets_disagree() {
    let t = homelab();
    let (m1, m2) = (t.existing_master(), t.resolve("master-2").expect("master-2"));
    let twin = Observed::Members { voters: NodeSet::of(m1), learners: NodeSet::of(m2) };
    let promoted = Observed::Members { voters: NodeSet::of(m1).with(m2), learners: NodeSet::EMPTY };
    assert_eq!(verdict(twin.clone(), promoted), Verdict::Disagree);
    assert_eq!(verdict(twin.clone(), twin.clone()), Verdict::Agree);
    let row = FidelityRow::new(&t, "2.5", "etcd members after the fault", twin.clone(), twin, Evidence::Real);
    assert_eq!(row.lab(), "voters k8s-master; learners k8s-master-2");
    assert_eq!(serde_json::to_value(&row).expect("serialises")["agree"], true);
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

#[test]
fn reasons_are_shown_and_compared_by_their_kind() {
    let down = |why: &str| Observed::Reach(Reach::Down(why.to_string()));
    assert_eq!(verdict(down("no backend"), down("unreachable: connection refused")), Verdict::Agree);
    assert_eq!(verdict(Observed::Reach(Reach::Ok), Observed::Reach(Reach::Intermittent("1 of 2".to_string()))), Verdict::Disagree);
    let rejected = |why: &str| Observed::Tls(Tls::Rejected(why.to_string()));
    assert_eq!(verdict(rejected("cert lacks the VIP SAN"), rejected("not valid for name")), Verdict::Agree);
    assert_eq!(verdict(rejected("x"), Observed::Tls(Tls::Mixed("x".to_string()))), Verdict::Disagree);
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
    let went_on =
        |without: &str, at: Option<&str>| end(Outcome::WentOn { without: vec![without.to_string()], stopped_at: at.map(str::to_string) });
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
    let rows = vec![
        FidelityRow::new(&t, "start", "quorum before the migration", Observed::Yes(true), Observed::Yes(true), Evidence::Real),
        FidelityRow::new(&t, "2.5", "etcd member add k8s-master-2", refused.clone(), refused, Evidence::StandIn),
        FidelityRow::event("2.5", "fault injected", "k8s-master-2 goes down", "SIGKILL to etcd of k8s-master-2 (pid 7)"),
    ];
    let passing = report(rows.clone());
    assert!(passing.agrees(), "a stand-in and an event do not fail the rehearsal");
    let text = render(&passing);
    assert!(text.contains("\n2 observations, 1 real, 1 stand-in, 0 disagree; 1 lab event(s), compared with nothing."), "{text}");
    assert!(text.contains("\n~ 2.5"), "a stand-in is marked: {text}");
    assert!(text.contains("1 stand-in row(s) only repeat the model"), "{text}");

    let mut failing = rows;
    failing.push(FidelityRow::new(&t, "end", "committed data", Observed::Yes(true), Observed::Yes(false), Evidence::Real));
    let failing = report(failing);
    assert!(!failing.agrees());
    assert_eq!(failing.disagreements().count(), 1);
    assert_eq!(Tally::of(&failing.rows), Tally { observations: 3, real: 2, stand_in: 1, not_rehearsed: 0, disagree: 1, events: 1 });
    assert!(render(&failing).contains("The lab DISAGREES with the twin."));
}

#[test]
fn an_event_is_neither_agreement_nor_disagreement() {
    let row = FidelityRow::event("4.1", "the executor halts", "(see outcome)", "halt: no quorum");
    assert_eq!(row.verdict(), Verdict::Event);
    assert!(!row.verdict().fails());
    let json = serde_json::to_value(&row).expect("serialises");
    assert_eq!((json["agree"].as_bool(), json["verdict"].as_str(), json["evidence"].as_str()), (Some(false), Some("event"), Some("real")));
}

#[test]
fn downtime_agrees_by_where_it_falls_not_by_how_long() {
    let t = homelab();
    let served =
        |unpredicted: &[&str]| Observed::Downtime { served: true, unpredicted: unpredicted.iter().map(|s| s.to_string()).collect() };
    let twin = served(&[]).with("300 s on the model clock in 2.5");
    let row = FidelityRow::new(
        &t,
        "end",
        "client downtime through the VIP",
        twin.clone(),
        served(&[]).with("9021 ms on the wall clock"),
        Evidence::Real,
    );
    assert_eq!((row.twin(), row.verdict()), ("served (300 s on the model clock in 2.5)", Verdict::Agree));
    let row = FidelityRow::new(&t, "end", "client downtime through the VIP", twin, served(&["1500 ms in 3.1"]), Evidence::Real);
    assert_eq!((row.lab(), row.verdict()), ("served; outages the twin does not predict: 1500 ms in 3.1", Verdict::Disagree));
    let never = Observed::Downtime { served: false, unpredicted: Vec::new() };
    assert_eq!(verdict(never, served(&[])), Verdict::Disagree, "the VIP served where the twin says it never does");
}
