//! The VIP: its address, the load balancer or daemons that serve it, and its DNS name.

use super::refuse::{needs_up, Words};
use super::{Action, Refusal};
use crate::cluster::Cluster;
use crate::topology::Topology;

/// The VIP's and the load balancer's actions: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn lb_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    match action {
        Action::ReserveVip => {
            if !c.lb_up {
                return w.refuse(|| format!("{} unreachable", t.scenario.load_balancer.name));
            }
            n.vip_alias = true;
        }
        Action::ReleaseVip => {
            if !c.lb_up {
                return w.refuse(|| format!("{} unreachable", t.scenario.load_balancer.name));
            }
            n.vip_alias = false;
        }
        Action::StartVipDaemon(x) => {
            needs_up(w, c, t, x, "start the VIP's daemon")?;
            // kube-vip runs as a static pod that talks to the node's own apiserver, which only a
            // joined control plane has (kube-vip's static-pod guide: join, then copy the manifest).
            if t.scenario.load_balancer.kind == crate::scenario::LbKind::KubeVip && !c.control_plane.contains(x) {
                return w.refuse(|| format!("kube-vip on {} needs its control plane: place the manifest after the join", t.name(x)));
            }
            n.vip_daemons = c.vip_daemons.with(x);
        }
        Action::StopVipDaemon(x) => {
            needs_up(w, c, t, x, "stop the VIP's daemon")?;
            n.vip_daemons = c.vip_daemons.without(x);
        }
        Action::DeclareLbFrontend => n.lb_declared.frontend = true,
        Action::RemoveLbFrontend => n.lb_declared = Default::default(),
        Action::DeclareLbPool(pool) => n.lb_declared.pool = pool,
        Action::RemoveLbBackend(x) => n.lb_declared.pool = c.lb_declared.pool.without(x),
        Action::DeployLb => {
            if !c.lb_up {
                return w.refuse(|| "ssh pfSense: host is down");
            }
            n.lb_running = c.lb_declared;
        }
        _ => unreachable!("{action:?} is not a load balancer action"),
    }
    Ok(())
}

/// The DNS actions, which the state never refuses: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn dns_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action) {
    match action {
        Action::DeclareVipRecord => n.dns_vip_declared = true,
        Action::DeclareStaleRecordDeletion => n.dns_stale_deletion_declared = true,
        // The apply makes the records what the repo declares: nothing new without the edit.
        Action::AddVipDnsRecord => n.dns_vip = c.dns_vip_declared,
        Action::DeleteStaleDnsRecord => n.dns_stale = c.dns_stale && !c.dns_stale_deletion_declared,
        Action::RestoreStaleDnsRecords => {
            n.dns_stale_deletion_declared = false;
            n.dns_stale = t.scenario.dns.records.iter().any(|r| r.stale);
        }
        Action::RevertDns => {
            n.dns_vip_declared = false;
            n.dns_stale_deletion_declared = false;
            n.dns_vip = false;
            n.dns_stale = t.scenario.dns.records.iter().any(|r| r.stale);
        }
        _ => unreachable!("{action:?} is not a DNS action"),
    }
}
