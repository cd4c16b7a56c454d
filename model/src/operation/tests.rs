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

/// Runs the first part of a cut join's cleanup (the member's removal on the first master) with
/// `etcdctl` answering `member list` with `list` (`None`: failing, as etcd 3.5's linearizable
/// list does without quorum): its exit code and the ids it removed.
fn run_member_removal(t: &Topology, node: &str, list: Option<&str>) -> (Option<i32>, String) {
    let cleanup = Operation::Join { node: node.to_string() }.cut_cleanup(t);
    let Some(crate::plan::Part::Run { shell, .. }) = cleanup[0].parts.first() else { panic!("a shell part: {cleanup:?}") };
    let dir = std::env::temp_dir().join(format!("plan-cut-cleanup-{}-{}", std::process::id(), list.map_or(0, str::len)));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("a shim");
        std::process::Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
    };
    write("sudo", "#!/bin/sh\nexec \"$@\"\n");
    write(
        "etcdctl",
        &format!(
            "#!/bin/sh\ncase \"$*\" in\n  *'member list'*) {}\n  *'member remove'*) for a; do id=$a; done; echo \"$id\" >> {removed}; echo \"Member $id removed\" ;;\nesac\n",
            match list {
                Some(text) => format!("printf '%s\\n' '{text}' ;;"),
                None => "echo 'Error: context deadline exceeded' >&2; exit 1 ;;".to_string(),
            },
            removed = dir.join("removed").display()
        ),
    );
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let status = std::process::Command::new("sh").arg("-c").arg(shell).env("PATH", path).status().expect("sh runs");
    let removed = std::fs::read_to_string(dir.join("removed")).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    (status.code(), removed)
}

#[test]
fn a_cut_joins_member_is_found_by_its_exact_peer_address() {
    // k8s-master-3 at 10.0.20.11: k8s-master-2's 10.0.20.110 has it as a prefix.
    let t = topology(&include_str!("../../../scenarios/homelab.yaml").replace("10.0.20.111", "10.0.20.11"));
    let list = "8e9e05c52164694d, started, k8s-master, https://10.0.20.100:2380, https://10.0.20.100:2379, false\n\
                2a1b3c4d5e6f7a8b, started, k8s-master-2, https://10.0.20.110:2380, https://10.0.20.110:2379, false\n\
                5aafdb8b62e4a35, unstarted, , https://10.0.20.11:2380, , true";
    assert_eq!(run_member_removal(&t, "k8s-master-3", Some(list)), (Some(0), "5aafdb8b62e4a35\n".to_string()));
    let without = list.lines().take(2).collect::<Vec<_>>().join("\n");
    assert_eq!(run_member_removal(&t, "k8s-master-3", Some(&without)), (Some(0), String::new()));
}

#[test]
fn a_member_list_that_fails_fails_the_cleanup() {
    // Without quorum etcd 3.5 refuses the (linearizable) list: that is not "no member left",
    // and the `kubeadm reset` after it must not run.
    let t = topology(include_str!("../../../scenarios/homelab.yaml"));
    let (exit, removed) = run_member_removal(&t, "k8s-master-2", None);
    assert_ne!(exit, Some(0), "the cleanup went on without knowing the member's fate");
    assert_eq!(removed, "");
}

/// The pool's health check the plan tells the operator to declare is the one the twin judges
/// the pool by (the scenario's), on the pfSense bootstrap script and on Linux HAProxy's config:
/// an HTTP check of `/readyz` only for `https-readyz`, a plain connect for `tcp`. (pfSense's once
/// said HTTP whatever the scenario said: five masters' TCP pool was declared as an HTTP one.)
#[test]
fn the_declared_health_check_is_the_scenarios() {
    for (text, http_words) in [
        (include_str!("../../../scenarios/homelab.yaml"), "check_type='HTTP'"),
        (include_str!("../../../scenarios/five-masters.yaml"), "check_type='HTTP'"),
        (include_str!("../../../scenarios/haproxy-libvirt.yaml"), "option httpchk"),
    ] {
        for (check, http) in [("https-readyz", true), ("tcp", false)] {
            let text = text
                .replace("health_check: https-readyz", &format!("health_check: {check}"))
                .replace("health_check: tcp", &format!("health_check: {check}"));
            let t = topology(&text);
            let frontend =
                generate(&t).steps.into_iter().flat_map(|s| s.operations).find(|o| matches!(o, Operation::DeclareLbFrontend { .. }));
            let words: String = frontend.expect("a frontend is declared").render(&t).iter().map(|c| c.run.clone()).collect();
            assert_eq!(words.contains(http_words), http, "{} with {check}: {words}", t.scenario.name);
            if !http {
                assert!(!words.contains("/readyz"), "{} with {check}: {words}", t.scenario.name);
            }
        }
    }
}

/// Where each action of an operation ends among its commands: one entry per action, never
/// back, never past the commands, the last action with the last command; a reboot's shutdown
/// with `sudo reboot` (not with the drain before it), its boot inside `kubectl wait`.
#[test]
fn every_action_ends_with_a_command_or_inside_one() {
    let texts = [
        include_str!("../../../scenarios/homelab.yaml"),
        include_str!("../../../scenarios/five-masters.yaml"),
        include_str!("../../../scenarios/haproxy-libvirt.yaml"),
        include_str!("../../../scenarios/legacy-1.28.yaml"),
    ];
    for text in texts {
        let t = topology(text);
        for step in generate(&t).steps {
            for op in &step.operations {
                let (actions, commands) = (op.effect(&t).expect("fits").len(), op.render(&t).len());
                let through = op.commands_through(&t).expect("fits");
                assert_eq!(through.len(), actions, "{}: {op:?}", step.id);
                let ends: Vec<usize> = through.iter().flatten().copied().collect();
                assert!(ends.windows(2).all(|w| w[0] <= w[1]) && ends.iter().all(|c| *c <= commands), "{}: {through:?}", step.id);
                if actions > 0 {
                    assert_eq!(through[actions - 1], Some(commands), "{}: {op:?}", step.id);
                }
                // Each kubelet's flip is its node's command; the tokens go with the first.
                match op {
                    Operation::KubeletServer { nodes, wait_ready, .. } => {
                        let ends = if *wait_ready { nodes.len() } else { actions };
                        assert_eq!(through.iter().flatten().count(), ends, "{}: {through:?}", step.id);
                    }
                    Operation::ForgetJoinSecrets { .. } => assert_eq!(through[0], Some(1), "{}", step.id),
                    _ => {}
                }
            }
            if let Some(reboot) = step.operations.iter().position(|o| matches!(o, Operation::Reboot { .. })) {
                let before: usize = step.operations[..reboot].iter().map(|o| o.render(&t).len()).sum();
                let shutdown = step.operations[..reboot].iter().map(|o| o.effect(&t).expect("fits").len()).sum::<usize>() + 1;
                assert!(step.commands[before].run.contains("sudo reboot"), "{}: {:?}", step.id, step.commands[before]);
                assert_eq!(step.commands_after(&t, shutdown), Some(before + 1), "{}", step.id);
                assert_eq!(step.commands_after(&t, shutdown + 2), None, "{}: the boot", step.id);
            }
        }
    }
}
