//! The infra repo's stacks the plan edits and applies: the config stack that sets the apiserver
//! flags, and the maintenance stacks (the etcd CronJobs, the reboot gate, the upgrade chain).

use super::refuse::{needs_api, needs_up, Words};
use super::{Action, Refusal};
use crate::cluster::Cluster;
use crate::topology::{NodeSet, Topology};

/// The config stack's actions: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn config_stack_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    let master = t.existing_master();
    match action {
        Action::RefactorConfigStack => n.stack_list_declared = true,
        Action::ApplyConfigStack => apply_config_stack(c, n, t, w)?,
        Action::RevertConfigStack => {
            if c.stack_hosts != NodeSet::of(master) {
                return w.refuse(|| "the config stack still lists more than one master");
            }
            n.stack_list = t.stack_starts_as_list();
            n.stack_list_declared = t.stack_starts_as_list();
            n.stack_hosts_declared = NodeSet::of(master);
        }
        Action::DeclareStackHosts(hosts) => n.stack_hosts_declared = hosts,
        Action::ConfigStackRemoveHost(x) => {
            n.stack_hosts = c.stack_hosts.without(x);
            n.stack_hosts_declared = c.stack_hosts_declared.without(x);
        }
        _ => unreachable!("{action:?} is not a config stack action"),
    }
    Ok(())
}

/// `tg apply` of the config stack: what runs follows what the repo declares, the flags set on
/// every master it adds.
#[inline]
fn apply_config_stack(c: &Cluster, n: &mut Cluster, t: &Topology, w: Words) -> Result<(), Refusal> {
    let master = t.existing_master();
    // terragrunt's remote-exec runs the stack's edits on the hosts it lists: from the
    // first master, or, that one written off, the first host the stack still lists.
    let from = match c.written_off.contains(master) {
        true => c.stack_hosts_declared.minus(c.written_off).iter().next().unwrap_or(master),
        false => master,
    };
    needs_up(w, c, t, from, "tg apply: remote-exec")?;
    let hosts = c.stack_hosts_declared;
    if hosts.len() > 1 && !c.stack_list_declared {
        return w.refuse(|| format!("config stack takes a single host ({}): refactor it to a list first", t.name(master)));
    }
    let added = hosts.minus(c.stack_hosts);
    for x in added.iter() {
        needs_up(w, c, t, x, "tg apply: remote-exec")?;
        if !c.control_plane.contains(x) {
            return w.refuse(|| format!("remote-exec on {}: /etc/kubernetes/manifests/kube-apiserver.yaml: no such file", t.name(x)));
        }
    }
    n.stack_list = c.stack_list_declared;
    n.apiserver_flags = c.apiserver_flags.or(added);
    n.stack_hosts = hosts;
    Ok(())
}

/// The maintenance stacks' edits and applies: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn maintenance_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    match action {
        Action::DeclareCronJobsOnControlPlane => n.cronjobs_declared_any_master = true,
        Action::ApplyCronJobs => {
            needs_api(w, c, t, "tg apply infra-maintenance")?;
            n.cronjobs_any_master = c.cronjobs_declared_any_master;
        }
        Action::DeclareGateQuorumCheck => n.gate_declared_quorum = true,
        Action::ApplyRebootGate => {
            needs_api(w, c, t, "tg apply kured")?;
            n.gate_quorum = c.gate_declared_quorum;
        }
        Action::DeclareChainMasterLoop => n.chain_loop_declared = true,
        Action::DeclareChainAnyMaster => n.chain_any_master_declared = true,
        Action::ApplyUpgradeChain => {
            needs_api(w, c, t, "tg apply k8s-version-upgrade")?;
            n.chain_all_masters = c.chain_loop_declared && c.chain_any_master_declared;
        }
        _ => unreachable!("{action:?} is not a maintenance stack action"),
    }
    Ok(())
}
