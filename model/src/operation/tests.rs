use super::*;
use crate::planner::generate;
use crate::validate::parse_scenario;

fn topology(text: &str) -> Topology {
    Topology::new(&parse_scenario(text).expect("a valid scenario"))
}

#[test]
fn every_check_is_named_and_read_back() {
    let t = topology(include_str!("../../../scenarios/five-masters.yaml"));
    for step in generate(&t).steps {
        for action in &step.actions {
            if let Action::Verify(check) = action {
                assert_eq!(Check::parse(&t, &check.key(&t)), Ok(*check));
            }
        }
    }
    assert!(Check::parse(&t, "node-ready nobody").unwrap_err().contains("node-ready NODE"));
}

#[test]
fn the_plan_is_its_operations_rendered() {
    for text in [include_str!("../../../scenarios/homelab.yaml"), include_str!("../../../scenarios/five-masters.yaml")] {
        let t = topology(text);
        for step in generate(&t).steps {
            let rendered: Vec<_> = step.operations.iter().flat_map(|o| o.render(&t)).collect();
            assert_eq!(rendered, step.commands, "step {}", step.id);
            let actions: Vec<_> = step.operations.iter().flat_map(|o| o.effect(&t).expect("the planner's operations fit")).collect();
            assert_eq!(actions, step.actions, "step {}", step.id);
        }
    }
}

#[test]
fn a_kubelet_pointed_at_the_old_master_is_reverted_not_flipped() {
    let t = topology(include_str!("../../../scenarios/homelab.yaml"));
    let worker = t.name(t.workers().next().unwrap()).to_string();
    let m0 = t.node(t.existing_master()).address;
    let port = t.scenario.control_plane_endpoint.port;
    let op = Operation::KubeletServer { nodes: vec![worker.clone()], server: format!("https://{m0}:{port}"), wait_ready: false };
    let x = t.workers().next().unwrap();
    assert_eq!(op.effect(&t), Ok(vec![Action::RevertKubelet(x)]));
    assert!(op.render(&t)[0].run.contains(&format!("server: https://{m0}:{port}")));
    let nowhere = Operation::KubeletServer { nodes: vec![worker], server: "https://192.0.2.1:6443".to_string(), wait_ready: false };
    assert!(matches!(nowhere.effect(&t), Err(OperationError::UnknownServer { .. })));
}

#[test]
fn a_gate_or_chain_below_quorum_declares_nothing() {
    let t = topology(include_str!("../../../scenarios/five-masters.yaml"));
    let quorum = t.target_masters().len() / 2 + 1;
    assert_eq!(Operation::RebootGateRule { block_at_or_below: quorum }.effect(&t), Ok(vec![Action::DeclareGateQuorumCheck]));
    assert_eq!(Operation::RebootGateRule { block_at_or_below: quorum - 1 }.effect(&t), Ok(vec![]));
    assert_eq!(Operation::UpgradeChainLoop { require_ready_above: 1 }.effect(&t), Ok(vec![]));
}

#[test]
fn operations_name_nodes_of_the_right_kind() {
    let t = topology(include_str!("../../../scenarios/homelab.yaml"));
    let worker = t.name(t.workers().next().unwrap()).to_string();
    assert!(matches!(Operation::Join { node: worker.clone() }.effect(&t), Err(OperationError::WrongKind { .. })));
    assert!(matches!(Operation::DeclareLbPool { pool: vec![worker] }.effect(&t), Err(OperationError::WrongKind { .. })));
    assert!(matches!(Operation::Join { node: "k8s-master-9".to_string() }.effect(&t), Err(OperationError::UnknownNode { .. })));
}

#[test]
fn what_must_not_run_twice_has_a_probe() {
    let t = topology(include_str!("../../../scenarios/homelab.yaml"));
    for step in generate(&t).steps {
        for op in &step.operations {
            if op.rerun() == Rerun::ProbeFirst && !matches!(op, Operation::Shell { .. }) {
                assert!(op.probe(&t).is_some(), "step {}: {} has no probe", step.id, op.name());
            }
        }
    }
}

#[test]
fn a_join_token_left_valid_at_the_end_is_a_finding() {
    let t = topology(include_str!("../../../scenarios/homelab-rightsized.yaml"));
    let plan = generate(&t);
    let end = |skip_revoke: bool| {
        let mut c = crate::cluster::Cluster::initial(&t);
        for step in &plan.steps {
            for a in &step.actions {
                if skip_revoke && *a == Action::RevokeJoinTokens {
                    continue;
                }
                c = crate::action::apply(&c, &t, *a).unwrap_or(c);
            }
        }
        c
    };
    assert_eq!(Check::NoJoinSecrets.evaluate(&end(false), &t), Ok(()));
    let left = Check::NoJoinSecrets.evaluate(&end(true), &t).unwrap_err();
    assert!(left.contains("join token") && left.contains("kubeadm token delete"), "{left}");
}
