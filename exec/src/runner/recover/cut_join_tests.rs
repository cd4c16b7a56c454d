//! Where a halt inside a join is believed cut, and what may be recovered from there: the hosts'
//! files and etcd's answers (or refusals) against the states the join passes through.

use super::super::tests::{options, Yes};
use super::super::Prediction;
use super::tests::{joins, scenario};
use super::*;
use crate::journal::Journal;
use crate::transport::Recorder;

/// A join cut right after its member add, its host back: the hosts show the learner (or voter)
/// added and nothing else of the join. Written over the state the step leaves, the twin would
/// take the join as done up to the promotion and refuse to run it again ("learner not
/// started"); written over the closest state the step passes through (the one right after the
/// add), running it again cleans the cut join up first and applies. (Where kubeadm registers the
/// node before the member add, without `ControlPlaneKubeletLocalMode`, the executor keeps the
/// step's end: docs/facts.md K19; these scenarios have the mode on.)
#[test]
fn a_join_cut_after_its_member_add_is_believed_cut_there_and_can_be_run_again() {
    use crate::observe::{self, Fact, Field, Observation, Seen};
    for file in ["homelab.yaml", "five-masters.yaml", "keepalived-five.yaml", "loopback.yaml"] {
        let (t, plan) = scenario(file);
        assert!(t.kubelet_local_mode && t.learner_mode, "{file}");
        let prediction = Prediction::new(&t, &plan);
        for join in joins(&plan) {
            let i = plan.steps.iter().position(|s| s.id == join).expect("the join");
            let Some(Action::EtcdMemberAdd(x)) = plan.steps[i].actions.iter().find(|a| matches!(a, Action::EtcdMemberAdd(_))).copied()
            else {
                unreachable!("a join step adds a member")
            };
            let node = t.name(x).to_string();
            let fact = |field, seen| Fact { node: node.clone(), field, seen, evidence: String::new() };
            let observation = Observation {
                facts: vec![
                    fact(Field::EtcdLearner, Seen::Yes),
                    fact(Field::EtcdVoter, Seen::No),
                    fact(Field::EtcdStarted, Seen::No),
                    fact(Field::NodeRegistered, Seen::No),
                    fact(Field::CertHasVip, Seen::Missing),
                    fact(Field::KubeletOnVip, Seen::Missing),
                ],
                ..Observation::default()
            };
            let states = prediction.within(&t, &plan, i);
            let closest = observe::closest(&t, &observation, &states).expect("states");
            let label = format!("{file} {join}");
            assert!(closest.members().contains(x) && !closest.control_plane.contains(x), "{label}: {closest:?}");
            assert!(!closest.etcd_started.contains(x), "{label}: cut before its etcd started");
            let believed = observe::overlay(&t, &observation, closest);
            let cut = search::retry(&believed, &t, &plan, i);
            assert!(plan_model::observe::quorum(&believed).holds(), "{label}: a learner does not vote");
            assert!(cut.applicable(), "{label}: {:?}", cut.refused);
            assert_eq!(&cut.actions[..2], &[Action::EtcdMemberRemove(x), Action::KubeadmReset(x)], "{label}: cleaned up first");
            let at_the_end = search::retry(&observe::overlay(&t, &observation, prediction.after(i)), &t, &plan, i);
            assert!(!at_the_end.applicable(), "{label}: over the step's end the join looks done: {:?}", at_the_end.actions);
        }
    }
}

/// The first master lost inside the second join, after the new member's etcd started and before
/// its promotion: two voters, one of them down, so no quorum. Its host does not answer; the
/// others' etcd refuses the member list (etcd 3.5 lists linearizably: docs/facts.md E9), so
/// nothing shows how far the join went. Counting each refusal the state does not explain, the
/// halt is believed where the promotion had not happened, without quorum, and the twin's best
/// is the quorum recovery; without the refusals every state within the step is as close, the
/// step's end is taken (three voters, quorum) and writing the master off is proposed, whose
/// `member remove` etcd then refuses. Three, five and seven masters; with and without kubelet
/// local mode (`closest` alone: the runner keeps the step's end where it explains the refusals).
#[test]
fn refused_member_lists_place_a_cut_join_before_its_promotion() {
    use crate::observe::{self, Observation};
    for file in ["homelab.yaml", "five-masters.yaml", "keepalived-five.yaml", "three-hypervisors.yaml", "loopback.yaml"] {
        let (t, plan) = scenario(file);
        let prediction = Prediction::new(&t, &plan);
        let join = joins(&plan)[1].clone();
        let i = plan.steps.iter().position(|s| s.id == join).expect("the second join");
        let first = t.existing_master();
        let names = |set: plan_model::topology::NodeSet| set.iter().map(|n| t.name(n).to_string()).collect::<Vec<_>>();
        let end = *prediction.after(i);
        let others = end.voters.minus(plan_model::topology::NodeSet::of(first));
        let refusing = names(others).into_iter().map(|n| (n, "member list: context deadline exceeded (exit 1)".to_string()));
        let observation = Observation {
            unreachable: vec![(format!("etcd via {}", t.name(first)), "ssh: connection refused".to_string())],
            no_ssh: vec![t.name(first).to_string()],
            etcd_refused: refusing.collect(),
            ..Observation::default()
        };
        let label = format!("{file} {join}");
        let states = prediction.within(&t, &plan, i);
        let cut = observe::closest(&t, &observation, &states).expect("states");
        let believed = observe::overlay(&t, &observation, cut);
        assert!(!plan_model::observe::quorum(&believed).holds(), "{label}: {:?}", names(believed.voters));
        assert_eq!(observe::unexplained_refusals(&t, &observation, cut), 0, "{label}");
        let best = search::recoveries(&believed, &t, &plan, i).into_iter().find(|c| c.applicable()).expect("a recovery");
        assert_eq!(best.kind, RecoveryKind::QuorumRecovery, "{label}");

        let unrefused = Observation { etcd_refused: Vec::new(), ..observation.clone() };
        let taken = observe::closest(&t, &unrefused, &states).expect("states");
        assert_eq!(taken, &end, "{label}: every state as close, the last is taken");
        let over_the_end = observe::overlay(&t, &unrefused, taken);
        assert!(plan_model::observe::quorum(&over_the_end).holds(), "{label}");
        assert!(observe::unexplained_refusals(&t, &observation, &end) > 0, "{label}");
        let wrong = search::recoveries(&over_the_end, &t, &plan, i).into_iter().find(|c| c.applicable()).expect("a recovery");
        assert_ne!(wrong.kind, RecoveryKind::QuorumRecovery, "{label}: over the step's end quorum holds");
    }
}

/// The first master lost inside a join after the joining member's etcd started: no quorum, and
/// nothing shows whether the promotion happened (etcd 3.5 lists no members without quorum; a
/// member that never synced cannot even say it is a learner). Where the joining member was the
/// only other one (the first join), forcing a new cluster from it would start from a learner
/// that may hold none of the data: that quorum recovery is refused, whatever state the halt is
/// believed in, unless the look at the halt saw it as a voter (its own `endpoint status`: no
/// learner, the log applied). Where a voter from before the step survives (the second join), it
/// is carried out.
#[test]
fn a_quorum_recovery_from_a_member_promoted_only_within_the_cut_step_is_refused() {
    use plan_model::topology::NodeSet;
    for file in ["homelab.yaml", "five-masters.yaml", "three-hypervisors.yaml"] {
        let (t, plan) = scenario(file);
        let (mut transport, mut journal, mut operator) = (Recorder::default(), Journal::in_memory(), Yes);
        let mut runner = Runner::new(&t, &plan, &mut transport, &mut journal, &mut operator, options(false));
        let first = t.existing_master();
        let survivor = |c: &Choice| c.actions.iter().find_map(|a| if let Action::ForceNewCluster(n) = a { Some(*n) } else { None });
        for (k, join) in joins(&plan).into_iter().take(2).enumerate() {
            let i = plan.steps.iter().position(|s| s.id == join).expect("the join");
            // Believed promoted (the step's end) at the first join; cut after the joining
            // member's start at the second, where quorum holds at the end with one down.
            let mut believed = if k == 0 {
                *runner.prediction.after(i)
            } else {
                let within = runner.prediction.within(&t, &plan, i);
                *within.iter().find(|c| !c.learners.is_empty() && c.learners.and(c.etcd_started) == c.learners).expect("a learner started")
            };
            believed.up = believed.up.minus(NodeSet::of(first));
            assert!(!plan_model::observe::quorum(&believed).holds(), "{file} {join}: two voters, one down");
            let choices = runner.choices(i, &believed, false);
            let rq = choices.iter().find(|c| c.kind == RecoveryKind::QuorumRecovery).expect("a quorum recovery is weighed");
            let from = survivor(rq).expect("from a survivor");
            let label = format!("{file} {join} from {}", t.name(from));
            if k == 0 {
                let why = rq.refused.as_deref().unwrap_or_default();
                assert!(why.contains("became an etcd voter only within step"), "{label}: {why:?}");
                assert!(!choices.iter().any(|c| c.best && c.kind == RecoveryKind::QuorumRecovery), "{label}");
                runner.voters_seen = NodeSet::of(from);
                let seen = runner.choices(i, &believed, false);
                let rq = seen.iter().find(|c| c.kind == RecoveryKind::QuorumRecovery).expect("weighed");
                assert!(rq.refused.is_none() && rq.best, "{label}: seen as a voter: {:?}", rq.refused);
                runner.voters_seen = NodeSet::EMPTY;
            } else {
                assert!(runner.prediction.before(i).voters.contains(from), "{label}");
                assert!(rq.refused.is_none() && rq.best, "{label}: {:?}", rq.refused);
            }
        }
    }
}
