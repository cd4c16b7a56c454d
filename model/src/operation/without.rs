//! The plan going on without machines written off: a master or worker down for good is taken out
//! of every operation that names it, so the rest of the plan runs on the machines that are left.
//!
//! This is the one definition of "going on without a node": the twin's `go-forward` recovery
//! runs the effects of the operations it leaves ([`crate::plan::Plan::going_on_without`]), and
//! the executor renders the same operations to the commands it runs after the write-off.

use super::{IacStack, Operation};
use crate::topology::{NodeSet, Topology};

impl Operation {
    /// The operation with every node of `gone` taken out, or `None` where nothing of it is left
    /// to run: it acts on a gone node (joins it, reboots it, snapshots its VM), runs its commands
    /// there, or verifies something of it. Lists of nodes (a pool, the config stack's hosts, the
    /// kubelets to move) lose the gone ones and keep the rest; an operation that names no node
    /// is kept as it is.
    pub fn without(&self, t: &Topology, gone: NodeSet) -> Option<Operation> {
        let is_gone = |name: &str| gone.iter().any(|n| t.name(n) == name);
        let left = |names: &[String]| -> Vec<String> { names.iter().filter(|n| !is_gone(n)).cloned().collect() };
        let mut kept = self.clone();
        match &mut kept {
            Operation::VmSnapshot { node, .. }
            | Operation::MoveCertAside { node, .. }
            | Operation::GenerateCert { node, .. }
            | Operation::StartVipDaemon { node }
            | Operation::DeclareVm { node }
            | Operation::IacApply(IacStack::Vm { node })
            | Operation::Join { node }
            | Operation::Drain { node }
            | Operation::Reboot { node }
            | Operation::Uncordon { node } => {
                if is_gone(node) {
                    return None;
                }
            }
            Operation::Shell { at: Some(at), .. } => {
                if is_gone(at) {
                    return None;
                }
            }
            // A verification is one piece: its commands are not split by check, so one that
            // verifies something of a gone node, or runs there, goes whole.
            Operation::Verify { checks, at, .. } => {
                let of_gone = |key: &String| crate::action::Check::node_in_key(key).is_some_and(is_gone);
                if at.as_deref().is_some_and(is_gone) || checks.iter().any(of_gone) {
                    return None;
                }
            }
            Operation::DeclareLbFrontend { pool } | Operation::DeclareLbPool { pool } => *pool = left(pool),
            Operation::ConfigStackHosts { hosts } => *hosts = left(hosts),
            Operation::DeployLbOn { nodes } | Operation::KubeletServer { nodes, .. } => {
                *nodes = left(nodes);
                if nodes.is_empty() {
                    return None;
                }
            }
            // The tokens are revoked wherever the files are: the files of a gone host stay
            // with it.
            Operation::ForgetJoinSecrets { nodes } => *nodes = left(nodes),
            Operation::Shell { at: None, .. }
            | Operation::BackupKubeadmConfig { .. }
            | Operation::PrepareKubeadmConfig { .. }
            | Operation::UploadKubeadmConfig { .. }
            | Operation::ReserveVip
            | Operation::DeclareDnsRecords { .. }
            | Operation::DeployLb
            | Operation::ConfigStackToList
            | Operation::ConfigStackServer { .. }
            | Operation::EditTemplate
            | Operation::IacApply(_)
            | Operation::UploadCerts
            | Operation::CreateToken
            | Operation::KubeconfigConsumers { .. }
            | Operation::NoLeftoverAddress
            | Operation::GitCommit { .. }
            | Operation::KubeProxyServer { .. }
            | Operation::CronJobsOnControlPlane { .. }
            | Operation::RunJob { .. }
            | Operation::RebootGateRule { .. }
            | Operation::UpgradeChainLoop { .. }
            | Operation::UpgradeChainAnyMaster
            | Operation::CloseIssue
            | Operation::ByHand { .. } => {}
        }
        Some(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeIx;
    use crate::validate::parse_scenario;

    fn five_masters() -> Topology {
        Topology::new(&parse_scenario(include_str!("../../../scenarios/five-masters.yaml")).expect("scenario"))
    }

    fn names(t: &Topology, set: NodeSet) -> Vec<String> {
        set.iter().map(|n| t.name(n).to_string()).collect()
    }

    /// Each kind of operation, with a master gone and with another one gone: what acts on it,
    /// runs there or verifies something of it goes; lists lose it and keep the rest (and a list
    /// of nodes to act on left empty goes too); an operation that names no node stays as it is.
    #[test]
    fn each_operation_without_a_gone_master_goes_loses_it_or_stays() {
        let t = five_masters();
        let masters: Vec<String> = names(&t, t.target_masters());
        let (gone_name, kept_name) = (masters[1].clone(), masters[2].clone());
        let gone = NodeSet::of(t.resolve(&gone_name).expect("a master"));
        let on = |node: &str| node.to_string();
        for op in [
            Operation::Join { node: on(&gone_name) },
            Operation::Reboot { node: on(&gone_name) },
            Operation::Drain { node: on(&gone_name) },
            Operation::VmSnapshot { node: on(&gone_name), name: "pre".into() },
            Operation::IacApply(IacStack::Vm { node: on(&gone_name) }),
            Operation::Shell { run: "true".into(), at: Some(on(&gone_name)) },
            Operation::Verify { checks: vec![format!("node-ready {gone_name}")], run: vec![], at: None },
            Operation::Verify { checks: vec!["cluster-healthy".into()], run: vec!["true".into()], at: Some(on(&gone_name)) },
            Operation::KubeletServer { nodes: vec![on(&gone_name)], server: "https://x:6443".into(), wait_ready: false },
            Operation::DeployLbOn { nodes: vec![on(&gone_name)] },
        ] {
            assert_eq!(op.without(&t, gone), None, "{op:?} acts on, runs on or verifies {gone_name}");
            let renamed = serde_json::to_string(&op)
                .expect("json")
                .replace(&format!("\"{gone_name}\""), &format!("\"{kept_name}\""))
                .replace(&format!(" {gone_name}\""), &format!(" {kept_name}\""));
            let on_kept: Operation = serde_json::from_str(&renamed).expect("the same operation on another master");
            assert_eq!(on_kept.without(&t, gone), Some(on_kept.clone()), "{on_kept:?} names no gone node");
        }
        for op in [
            Operation::DeclareLbPool { pool: masters.clone() },
            Operation::DeclareLbFrontend { pool: masters.clone() },
            Operation::ConfigStackHosts { hosts: masters.clone() },
            Operation::DeployLbOn { nodes: masters.clone() },
            Operation::KubeletServer { nodes: masters.clone(), server: "https://x:6443".into(), wait_ready: true },
            Operation::ForgetJoinSecrets { nodes: masters.clone() },
        ] {
            let kept = op.without(&t, gone).unwrap_or_else(|| panic!("{op:?} keeps the others"));
            let listed = serde_json::to_value(&kept).expect("json").to_string();
            assert!(!listed.contains(&format!("\"{gone_name}\"")), "{kept:?}");
            for other in masters.iter().filter(|m| **m != gone_name) {
                assert!(listed.contains(&format!("\"{other}\"")), "{kept:?} keeps {other}");
            }
        }
        // The join secrets' list may end empty: the tokens are still revoked.
        let secrets = Operation::ForgetJoinSecrets { nodes: vec![on(&gone_name)] };
        assert_eq!(secrets.without(&t, gone), Some(Operation::ForgetJoinSecrets { nodes: vec![] }));
        for op in [Operation::DeployLb, Operation::UploadCerts, Operation::CreateToken, Operation::Shell { run: "true".into(), at: None }] {
            assert_eq!(op.without(&t, gone), Some(op.clone()));
        }
    }

    /// Two write-offs: the plan going on without the first machine from its step, then without
    /// the second from a later step, is the first pruning up to the later step and the pruning
    /// without both from there on; no later operation names either machine.
    #[test]
    fn a_second_write_off_prunes_the_plan_going_on_again_from_its_own_step() {
        let t = five_masters();
        let plan = crate::planner::generate(&t);
        let masters: Vec<NodeIx> = t.target_masters().iter().collect();
        let (first, second) = (NodeSet::of(masters[1]), NodeSet::of(masters[2]));
        let at = |id: &str| plan.steps.iter().position(|s| s.id == id).expect(id);
        let (i, j) = (at("4.1"), at("5.1"));
        let once = plan.going_on_without(&t, i, first).expect("without the first");
        let twice = once.going_on_without(&t, j, second).expect("then without the second");
        let both = plan.going_on_without(&t, j, first.or(second)).expect("without both");
        assert_eq!(twice.steps[..j], once.steps[..j], "up to the second write-off, as after the first");
        assert_eq!(twice.steps[j..], both.steps[j..], "from it on, without both");
        assert_ne!(twice.steps[j..], once.steps[j..], "the second write-off changed something");
        let named = |plan: &crate::plan::Plan, from: usize, n: NodeIx| {
            let name = format!("\"{}\"", t.name(n));
            plan.steps[from..].iter().flat_map(|s| &s.operations).any(|o| serde_json::to_string(o).expect("json").contains(&name))
        };
        assert!(named(&plan, j, masters[2]), "the plan names the second master after {}", plan.steps[j].id);
        assert!(!named(&twice, i, masters[1]) && !named(&twice, j, masters[2]), "the plan going on names neither");
    }
}
