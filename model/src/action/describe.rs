//! Actions described for people, with node names (timelines, traces, the executor's recovery).

use super::Action;
use crate::scenario::LbKind;
use crate::topology::{NodeIx, Topology};

impl Action {
    /// A human description, with node names.
    pub fn describe(self, t: &Topology) -> String {
        use Action::*;
        let n = |ix: NodeIx| t.name(ix).to_string();
        let lb = &t.scenario.load_balancer;
        let lb_config = match lb.kind {
            LbKind::PfsenseBootstrap => "the bootstrap script",
            LbKind::Haproxy | LbKind::Keepalived => "the HAProxy config",
            LbKind::KubeVip => "the kube-vip manifest",
        };
        match self {
            Verify(check) => format!("verify: {}", check.describe(t)),
            TakeVmSnapshot => format!("snapshot VM of {}", n(t.existing_master())),
            PatchKubeadmConfig => "kubeadm-config: controlPlaneEndpoint = VIP, certSANs += VIP, FQDN".to_string(),
            RevertKubeadmConfig => "kubeadm-config: revert to the backup".to_string(),
            MoveCertAside(x) => format!("move apiserver cert of {} aside", n(x)),
            GenerateCert(x) => format!("generate apiserver cert on {}", n(x)),
            RestoreCert(x) => format!("restore apiserver cert of {} from backup", n(x)),
            RestartApiserver(x) => format!("restart kube-apiserver on {}", n(x)),
            ReserveVip if lb.kind.on_masters() => format!("reserve the VIP for {}", lb.kind.as_str()),
            ReserveVip => format!("reserve the VIP on {}", lb.name),
            ReleaseVip => "release the VIP".to_string(),
            StartVipDaemon(x) => format!("start {} on {}", lb.kind.as_str(), n(x)),
            StopVipDaemon(x) => format!("remove {} from {}", lb.kind.as_str(), n(x)),
            AddVipDnsRecord => "add DNS A record FQDN -> VIP".to_string(),
            DeleteStaleDnsRecord => "delete the stale per-master DNS record".to_string(),
            RevertDns => "revert the DNS records".to_string(),
            RestoreStaleDnsRecords => "restore the stale DNS records the cut-over deleted".to_string(),
            DeclareLbFrontend => format!("declare the VIP frontend in {lb_config}"),
            RemoveLbFrontend => format!("remove the VIP frontend and pool from {lb_config}"),
            DeclareLbPool(pool) => format!("declare the apiserver pool: {}", names(t, pool)),
            RemoveLbBackend(x) => format!("remove {} from the declared pool", n(x)),
            DeployLb => match lb.kind {
                LbKind::PfsenseBootstrap if lb.reset_to_declared_state => {
                    "run the LB bootstrap script (reset to declared state)".to_string()
                }
                LbKind::PfsenseBootstrap => "run the LB bootstrap script".to_string(),
                LbKind::Haproxy => format!("install the HAProxy config on {} and reload it gracefully", lb.name),
                LbKind::Keepalived => "install the HAProxy config on the masters and reload it gracefully".to_string(),
                LbKind::KubeVip => "kube-vip has no pool to deploy".to_string(),
            },
            RefactorConfigStack => "config stack (repo): single host -> list of masters".to_string(),
            ApplyConfigStack => "config stack: apply what the repo declares".to_string(),
            RevertConfigStack => "config stack: back to a single host".to_string(),
            DeclareStackHosts(hosts) => format!("config stack (repo): lists {}", names(t, hosts)),
            ConfigStackRemoveHost(x) => format!("config stack: drop {}", n(x)),
            DeclareVipRecord => "the infra repo declares the VIP's DNS record".to_string(),
            DeclareStaleRecordDeletion => "the infra repo declares the stale DNS records' deletion".to_string(),
            DeclareTemplate => "the infra repo declares the VM template's bump".to_string(),
            DeclareVm(x) => format!("the infra repo declares VM {}", n(x)),
            BumpTemplate => "VM template: cluster's Kubernetes version, no worker join for masters".to_string(),
            CreateVm(x) => format!("create and boot VM {}", n(x)),
            DestroyVm(x) => format!("destroy VM {}", n(x)),
            UploadCerts => "upload control-plane certs (kubeadm-certs Secret)".to_string(),
            CreateToken => "create a join token".to_string(),
            EtcdMemberAdd(x) => format!("etcd member add {} ({})", n(x), if t.learner_mode { "learner" } else { "voter" }),
            EtcdStart(x) => format!("etcd starts on {} and syncs", n(x)),
            EtcdPromote(x) => format!("etcd promote {}", n(x)),
            ControlPlaneUp(x) => format!("control-plane static pods, cert and kubelet.conf on {}", n(x)),
            KubeadmReset(x) => format!("kubeadm reset on {}", n(x)),
            DeleteNode(x) => format!("kubectl delete node {}", n(x)),
            WriteOff(x) => format!("write off {0}, down for good: kubectl delete node {0}; wipe its disk before it ever boots again", n(x)),
            ForgetJoinSecrets => "delete the join command and certificate key from every host".to_string(),
            RevokeJoinTokens => "kubeadm token delete of the join tokens the plan made".to_string(),
            PointKubeProxyAtVip => "kube-proxy ConfigMap: server -> VIP, DaemonSet restarted".to_string(),
            EtcdMemberRemove(x) => format!("etcdctl member remove {}", n(x)),
            FlipConsumersOf(mask) => format!("kubeconfig consumers to the VIP: {}", consumer_names(t, mask)),
            RevertConsumers => "revert every kubeconfig consumer to the direct address".to_string(),
            FlipKubelet(x) => format!("kubelet.conf of {} -> VIP, restart kubelet", n(x)),
            RevertKubelet(x) => format!("kubelet.conf of {} -> direct address, restart kubelet", n(x)),
            DeclareCronJobsOnControlPlane => "etcd CronJobs (repo): node pin -> control-plane selector".to_string(),
            ApplyCronJobs => "etcd CronJobs: apply what the repo declares".to_string(),
            DeclareGateQuorumCheck => "reboot gate (repo): add the control-plane quorum check".to_string(),
            ApplyRebootGate => "reboot gate: apply what the repo declares".to_string(),
            DeclareChainMasterLoop => "upgrade chain (repo): loop over every master with a quorum check".to_string(),
            DeclareChainAnyMaster => "upgrade chain (repo): preflight and master phase on any control-plane node".to_string(),
            ApplyUpgradeChain => "upgrade chain: apply what the repo declares".to_string(),
            Shutdown(x) => format!("drain and shut down {}", n(x)),
            Boot(x) => format!("boot {}", n(x)),
            ForceNewCluster(x) => format!("etcd --force-new-cluster on {}", n(x)),
            RestoreSnapshot(x) => format!("etcdctl snapshot restore on {}", n(x)),
        }
    }
}

/// `a, b, c`, or `none`.
fn names(t: &Topology, set: crate::topology::NodeSet) -> String {
    let list: Vec<&str> = set.iter().map(|x| t.name(x)).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

fn consumer_names(t: &Topology, mask: u64) -> String {
    let list: Vec<&str> = t.consumers.iter().enumerate().filter(|(i, _)| mask & (1u64 << i) != 0).map(|(_, c)| c.name.as_str()).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}
