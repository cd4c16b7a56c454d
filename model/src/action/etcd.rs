//! etcd membership: a control-plane join's member add and start, a learner's promotion, a
//! member's removal, and the quorum recoveries that rebuild the cluster from one member.

use super::refuse::{join_credentials_in, needs_up, Words};
use super::{Action, Refusal, RefusalKind};
use crate::cluster::{Cluster, EtcdData};
use crate::observe::{self, ClientNeeds, Endpoint};
use crate::topology::{NodeIx, NodeSet, Topology};

/// The etcd membership actions: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn etcd_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    match action {
        Action::EtcdMemberAdd(x) => member_add(c, n, t, x, w)?,
        Action::EtcdStart(x) => {
            needs_up(w, c, t, x, "etcd")?;
            if !c.members().contains(x) {
                return w.refuse(|| format!("etcd on {}: member not found in the cluster", t.name(x)));
            }
            if observe::leader(c).is_none() && !c.voters.contains(x) {
                return w.refuse_as(RefusalKind::NoQuorum, || format!("etcd learner {} cannot sync: no leader", t.name(x)));
            }
            n.etcd_started = c.etcd_started.with(x);
        }
        Action::EtcdPromote(x) => {
            if c.learners.contains(x) {
                if !observe::live_members(c).contains(x) {
                    return w.refuse(|| format!("etcdctl member promote {}: learner not started", t.name(x)));
                }
                let q = observe::quorum(c);
                if !q.holds() {
                    return w.refuse_as(RefusalKind::NoQuorum, || format!("etcdctl member promote: {q}"));
                }
                n.learners = c.learners.without(x);
                n.voters = c.voters.with(x);
            }
        }
        Action::EtcdMemberRemove(x) => {
            if !c.members().contains(x) {
                return Ok(());
            }
            let others = c.control_plane.without(x).and(c.up);
            if others.is_empty() {
                return w.refuse(|| format!("etcdctl member remove {}: no surviving master to run it from", t.name(x)));
            }
            let q = observe::quorum(c);
            if !q.holds() {
                return w.refuse_as(RefusalKind::NoQuorum, || {
                    format!("etcdctl member remove {}: etcdserver: request timed out ({q})", t.name(x))
                });
            }
            n.voters = c.voters.without(x);
            n.learners = c.learners.without(x);
            n.etcd_started = c.etcd_started.without(x);
        }
        Action::ForceNewCluster(x) => {
            needs_up(w, c, t, x, "etcd --force-new-cluster")?;
            if !c.voters.contains(x) || !c.etcd_started.contains(x) {
                return w.refuse(|| format!("etcd --force-new-cluster on {}: not a started voter, its data may be incomplete", t.name(x)));
            }
            *n = single_member(n, x);
        }
        Action::RestoreSnapshot(x) => {
            needs_up(w, c, t, x, "etcdctl snapshot restore")?;
            let lost = (c.clock_s as i64 - c.last_backup_s).max(0) as u32;
            *n = single_member(n, x);
            n.etcd_data = match c.etcd_data {
                EtcdData::Intact => EtcdData::RestoredFromSnapshot { lost_s: lost },
                EtcdData::RestoredFromSnapshot { lost_s } => EtcdData::RestoredFromSnapshot { lost_s: lost_s.max(lost) },
            };
        }
        _ => unreachable!("{action:?} is not an etcd membership action"),
    }
    Ok(())
}

/// The command whose first half the member add is, as its refusals name it.
const JOIN: &str = "kubeadm join --control-plane";

/// `kubeadm join --control-plane`'s first half on `x`: its preflight, then the etcd member added
/// (as a learner in learner mode, else as a voter).
#[inline]
fn member_add(c: &Cluster, n: &mut Cluster, t: &Topology, x: NodeIx, w: Words) -> Result<(), Refusal> {
    join_preflight(c, t, x, w)?;
    n.join_files = c.join_files.with(x);
    // The join runs from the secrets copied to the joining host.
    n.join_secrets_on = c.join_secrets_on.with(x);
    // `addMember` accepts an existing peer URL: a member of this node that still answers
    // is taken as it is (one that does not answer was refused by the preflight's check-etcd, so a
    // reset that could not remove the member needs `etcdctl member remove` first).
    if c.members().contains(x) {
        return Ok(());
    }
    if t.learner_mode {
        if let Some(other) = c.learners.iter().next() {
            return w.refuse(|| format!("{JOIN}: etcdserver: too many learner members in cluster ({} is one)", t.name(other)));
        }
        n.learners = c.learners.with(x);
    } else {
        n.voters = c.voters.with(x);
    }
    Ok(())
}

/// What a control-plane join of `x` checks before it adds the member: the host, kubeadm's own
/// preflight, the join's credentials, and the cluster it joins reachable and healthy.
#[inline]
fn join_preflight(c: &Cluster, t: &Topology, x: NodeIx, w: Words) -> Result<(), Refusal> {
    needs_up(w, c, t, x, JOIN)?;
    kubeadm_preflight(c, t, x, w)?;
    join_credentials_in(c, t, w)?;
    let master = t.existing_master();
    // `--print-join-command` prints the server of admin.conf on the first master, its own
    // address (`getJoinCommand`, cmd/util/join.go): discovery fetches cluster-info there.
    let discovery = observe::reach(c, t, Endpoint::Direct(master), ClientNeeds { oidc: false });
    if discovery.is_down() {
        return w.refuse(|| format!("{JOIN}: discovery at {}: {discovery}", t.node(master).address));
    }
    // The join's later phases use the admin.conf it writes, which names controlPlaneEndpoint.
    let via = observe::reach(c, t, Endpoint::Vip, ClientNeeds { oidc: false });
    if via.is_down() {
        return w.refuse(|| format!("{JOIN}: controlPlaneEndpoint: {via}"));
    }
    let q = observe::quorum(c);
    if !q.holds() {
        return w.refuse_as(RefusalKind::NoQuorum, || format!("{JOIN}: etcdserver: request timed out ({q})"));
    }
    // check-etcd asks every member for its status before anything is added
    // (phases/join/checketcd.go -> CheckClusterHealth), and etcd itself refuses any add
    // unless the leader has been connected to every voter (`isConnectedFullySince`).
    let answering = match observe::leader(c) {
        Some(leader) => observe::live_members(c).and(observe::side(c, leader)),
        None => NodeSet::EMPTY,
    };
    if let Some(down) = c.members().minus(answering).iter().next() {
        return w.refuse(|| format!("{JOIN}: [check-etcd] etcd cluster is not healthy: member {} does not answer", t.name(down)));
    }
    if !t.learner_mode && !crate::facts::may_add_voter(c.voters.len(), c.voters.and(c.etcd_started).len()) {
        return w
            .refuse_as(RefusalKind::NoQuorum, || format!("{JOIN}: etcdserver: re-configuration failed due to not enough started members"));
    }
    Ok(())
}

/// What kubeadm's own preflight on `x` refuses: no controlPlaneEndpoint, a kubeadm too old for
/// the cluster, a node already joined, or a cut join's leftovers.
#[inline]
fn kubeadm_preflight(c: &Cluster, t: &Topology, x: NodeIx, w: Words) -> Result<(), Refusal> {
    if !c.kubeadm_endpoint {
        return w.refuse(|| {
            format!(
                "{JOIN}: unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address"
            )
        });
    }
    // An older kubeadm only warns (`KubernetesVersionCheck`, preflight/checks.go): the
    // join goes on; Check::ReadyToJoin and the acceptance check report the skew. One two
    // or more minors newer stops (`NormalizeKubernetesVersion`, util/config/common.go).
    if c.old_kubeadm.contains(x) && t.template_version >= (t.version.0, t.version.1 + 2) {
        return w.refuse(|| format!(
            "{JOIN}: this version of kubeadm only supports deploying clusters with the control plane version >= {}.{}.0. Current version: v{}.{}",
            t.template_version.0,
            t.template_version.1 - 1,
            t.version.0,
            t.version.1
        ));
    }
    if c.joined.contains(x) {
        return w.refuse(|| format!("{JOIN}: [preflight] /etc/kubernetes/kubelet.conf already exists ({} is already a node)", t.name(x)));
    }
    if c.join_files.contains(x) {
        // A join that got as far as adding the member also wrote the manifests and the
        // etcd data dir: preflight refuses them until `kubeadm reset`.
        return w.refuse(|| format!(
            "{JOIN}: [preflight] /etc/kubernetes/manifests/etcd.yaml already exists, /var/lib/etcd is not empty: run kubeadm reset on {} first",
            t.name(x)
        ));
    }
    Ok(())
}

/// etcd reduced to one member on `x`; the other masters' members are gone and their control
/// planes must be reset before they can rejoin.
fn single_member(c: &Cluster, x: NodeIx) -> Cluster {
    let mut n = *c;
    n.voters = NodeSet::of(x);
    n.learners = NodeSet::EMPTY;
    n.etcd_started = NodeSet::of(x);
    n
}
