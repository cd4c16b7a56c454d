//! Upstream behaviour the twin relies on, keyed on the scenario's versions, each fact once.
//!
//! Every function and constant here cites the upstream source it was read from; docs/facts.md
//! lists them with the versions they hold for and where the model uses them. Nothing here is
//! remembered: where upstream changes with the version, the version is an argument.

use crate::scenario::LearnerModeSetting;

/// A Kubernetes `major.minor`.
pub type Version = (u32, u32);

/// Whether `kubeadm join --control-plane` adds the etcd member as a learner first.
///
/// kubeadm `cmd/kubeadm/app/features/features.go`: `EtcdLearnerMode` beta (default on) from
/// 1.29, GA and locked on from 1.32; alpha (off unless enabled) from 1.27.
pub fn learner_mode(version: Version, setting: LearnerModeSetting) -> bool {
    if version >= (1, 32) {
        return true;
    }
    match setting {
        LearnerModeSetting::Auto => version >= (1, 29),
        LearnerModeSetting::On => version >= (1, 27),
        LearnerModeSetting::Off => false,
    }
}

/// Whether a control-plane node's kubelet.conf names its own apiserver rather than the cluster's
/// endpoint.
///
/// kubeadm `cmd/kubeadm/app/features/features.go`: `ControlPlaneKubeletLocalMode` alpha in 1.31,
/// beta and on by default from 1.33. With it, `runKubeletStartJoinPhase`
/// (`cmd/kubeadm/app/cmd/phases/join/kubelet.go`) points a joining control-plane node's
/// kubelet.conf at the node's advertise address, and `kubeadm upgrade` (`UpdateKubeletLocalMode`,
/// `cmd/kubeadm/app/phases/upgrade/postupgrade.go`) rewrites a control-plane kubelet.conf that
/// names the endpoint back to the local address. Without it the kubelet bootstraps against the
/// server of the discovered `cluster-info`, which `kubeadm init` wrote and nothing in the
/// migration rewrites: the first master's address.
pub fn kubelet_local_mode(version: Version) -> bool {
    version >= (1, 33)
}

/// Whether etcd accepts a new *voting* member now (strict reconfiguration check, on by default).
///
/// etcd `server/etcdserver/api/membership/cluster.go` `IsReadyToAddVotingMember` (3.4, 3.5, 3.6):
/// the voters that have *ever* started (published their name) must be a quorum of the membership
/// after the add; a one-member cluster may always add a second. Learners skip this check. The
/// other check of `mayAddMember` (the leader connected to every voter for 5 s; to a quorum only
/// from 3.5.30 and 3.6.11) is kubeadm's check-etcd already, which asks every member.
pub fn may_add_voter(voters: u32, started_voters: u32) -> bool {
    let members_after = voters + 1;
    if started_voters == 1 && members_after == 2 {
        return true;
    }
    started_voters >= crate::topology::Topology::quorum(members_after)
}

/// Seconds within which kube-apiserver serves a changed certificate pair from disk: at most.
///
/// apiserver `staging/src/k8s.io/apiserver/pkg/server/dynamiccertificates/dynamic_serving_content.go`
/// `NewDynamicServingContentFromFiles`: an fsnotify watch sees the change at once (from 1.23); a
/// watch that failed is set up again after a minute, which bounds the wait. When the files vanish
/// or do not parse, the last good pair stays served; new handshakes get the new pair.
pub const APISERVER_CERT_RELOAD_S: u32 = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learner_mode_follows_the_version() {
        assert!(!learner_mode((1, 28), LearnerModeSetting::Auto));
        assert!(learner_mode((1, 29), LearnerModeSetting::Auto));
        assert!(!learner_mode((1, 30), LearnerModeSetting::Off));
        assert!(learner_mode((1, 32), LearnerModeSetting::Off), "locked on from 1.32");
    }

    #[test]
    fn kubelet_local_mode_is_on_by_default_from_1_33() {
        assert!(!kubelet_local_mode((1, 31)));
        assert!(!kubelet_local_mode((1, 32)));
        assert!(kubelet_local_mode((1, 33)));
        assert!(kubelet_local_mode((1, 34)));
    }

    #[test]
    fn a_voter_needs_a_started_quorum_of_the_grown_cluster() {
        assert!(may_add_voter(1, 1), "one member may always add a second");
        assert!(may_add_voter(2, 2));
        assert!(!may_add_voter(2, 1), "2 voters, 1 started: 1 < quorum of 3");
        assert!(!may_add_voter(3, 2), "3 voters, 2 started: 2 < quorum of 4, though 2/3 is a quorum now");
        assert!(may_add_voter(3, 3));
        assert!(!may_add_voter(1, 0));
    }
}
