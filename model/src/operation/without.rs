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
