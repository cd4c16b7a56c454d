//! What a re-run of an action finds after the executor died inside its step: its effect already
//! there (skipped), nothing of it (run again), or the leftovers of a cut `kubeadm join` that must
//! be cleaned up before it can run again.

use super::Action;
use crate::cluster::Cluster;
use crate::topology::NodeIx;

/// Whether re-running `action` after an interrupted step would find its effect already there
/// (the executor's commands are guarded by the same test, so a resumed step skips it).
pub fn already_done(c: &Cluster, action: Action) -> bool {
    match action {
        Action::CreateVm(x) => c.vm_exists.contains(x),
        // A half-finished join is not done: only a finished one is skipped; its leftovers are
        // cleaned up first ([`cut_cleanup`]).
        Action::EtcdMemberAdd(x) | Action::EtcdStart(x) => c.control_plane.contains(x),
        Action::MoveCertAside(x) => !c.cert_present.contains(x) && c.cert_backup,
        Action::ControlPlaneUp(x) => c.control_plane.contains(x),
        Action::Shutdown(x) => !c.up.contains(x),
        Action::Boot(x) => c.up.contains(x),
        _ => false,
    }
}

/// Whether node `x` holds what a `kubeadm join` cut off before its end leaves: its etcd member
/// (added, perhaps started or promoted), its etcd running, or kubelet.conf, while its control
/// plane is not up. kubeadm's preflight refuses to join such a node again
/// (`[preflight] /etc/kubernetes/manifests/etcd.yaml already exists`, kubelet.conf likewise:
/// docs/facts.md K9; kubeadm's own `member add` would accept the existing peer URL, the lab's
/// plain `etcdctl member add` does not).
pub fn cut_leftovers(c: &Cluster, x: NodeIx) -> bool {
    !c.control_plane.contains(x) && (c.members().contains(x) || c.etcd_started.contains(x) || c.joined.contains(x))
}

/// What a resume must carry out before running `action` again when the executor died inside
/// the command it belongs to and the command's probe says it did not take effect: for a join's
/// first action (the member's add), where the node holds a cut join's leftovers, the removal of
/// its etcd member, then `kubeadm reset` of the node. The member goes first, while its etcd still
/// runs: reset stops it whether or not its own removal worked, and etcd refuses to remove a voter
/// connected for less than 5 s where the rest would not be a quorum of active members
/// (`mayRemoveMember`, `ErrUnhealthy`), so a reset right after a promotion would leave a
/// two-voter cluster with one voter running. Nothing otherwise. The executor runs the commands
/// [`crate::operation::Operation::cut_cleanup`] renders for the same actions.
pub fn cut_cleanup(c: &Cluster, action: Action) -> Vec<Action> {
    match action {
        Action::EtcdMemberAdd(x) if cut_leftovers(c, x) => cleanup_of_join(x),
        _ => Vec::new(),
    }
}

/// The actions that clean up node `x`'s cut join.
pub(crate) fn cleanup_of_join(x: NodeIx) -> Vec<Action> {
    vec![Action::EtcdMemberRemove(x), Action::KubeadmReset(x)]
}
