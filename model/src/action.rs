//! The atomic transitions of the cluster: what each command does to the state, and when it refuses.
//!
//! A plan step is a short list of actions; a step that fails half-way has applied only some of
//! them. Every precondition here mirrors what the real command checks, and a refusal says why in
//! terms of state ("etcd 1/2 voters up: no quorum").

use crate::cluster::Cluster;
use crate::observe::{self, NotReady};
use crate::topology::{NodeIx, NodeSet, Topology};
use serde::Serialize;

mod certs;
mod check;
mod describe;
mod duration;
mod etcd;
mod hosts;
mod kubeconfigs;
mod refuse;
mod rerun;
mod stacks;
mod transient;
mod vip;
pub use check::Check;
pub use hosts::boot;
pub use refuse::join_credentials;
use refuse::Words;
pub use rerun::{already_done, cut_cleanup, cut_leftovers};
pub use transient::{transient, Transient};

/// One atomic change a command makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "node")]
pub enum Action {
    Verify(Check),
    TakeVmSnapshot,
    PatchKubeadmConfig,
    RevertKubeadmConfig,
    MoveCertAside(NodeIx),
    GenerateCert(NodeIx),
    RestoreCert(NodeIx),
    RestartApiserver(NodeIx),
    ReserveVip,
    ReleaseVip,
    /// The VIP's daemon (keepalived + HAProxy, or kube-vip) starts on a master.
    StartVipDaemon(NodeIx),
    /// The VIP's daemon is removed from a master.
    StopVipDaemon(NodeIx),
    /// The infra repo declares the VIP's record.
    DeclareVipRecord,
    /// The infra repo declares the stale records' deletion.
    DeclareStaleRecordDeletion,
    /// The DNS stack's apply: the VIP record appears, if the repo declares it.
    AddVipDnsRecord,
    /// The DNS stack's apply: the stale record goes, if the repo declares its deletion.
    DeleteStaleDnsRecord,
    /// The cut-over's rollback: the stale records the cut-over deleted come back (declared and
    /// applied), for consumers that name the master by them again.
    RestoreStaleDnsRecords,
    RevertDns,
    /// The bootstrap script declares the VIP frontend (its pool is declared apart).
    DeclareLbFrontend,
    RemoveLbFrontend,
    /// The bootstrap script's apiserver pool is exactly these masters.
    DeclareLbPool(NodeSet),
    RemoveLbBackend(NodeIx),
    DeployLb,
    /// The config stack's edit in the infra repo: a single host variable -> a list of masters.
    RefactorConfigStack,
    /// `tg apply` of the config stack: what runs follows what the repo declares.
    ApplyConfigStack,
    /// The refactor reverted in the repo and applied.
    RevertConfigStack,
    /// The infra repo's config stack lists exactly these masters (applied by [`Action::ApplyConfigStack`]).
    DeclareStackHosts(NodeSet),
    ConfigStackRemoveHost(NodeIx),
    /// The infra repo declares the template's bump (the cluster's version, no join for masters).
    DeclareTemplate,
    /// The template stack's apply: the template follows what the repo declares.
    BumpTemplate,
    /// The infra repo declares the master's VM module.
    DeclareVm(NodeIx),
    /// The VM stack's apply: the declared VM is created.
    CreateVm(NodeIx),
    DestroyVm(NodeIx),
    UploadCerts,
    CreateToken,
    /// `kubeadm join --control-plane`, first half: the etcd member is added (learner or voter).
    EtcdMemberAdd(NodeIx),
    /// The new member's etcd starts and syncs.
    EtcdStart(NodeIx),
    /// A learner is promoted to voter once synced (learner mode only; a no-op otherwise).
    EtcdPromote(NodeIx),
    /// The remaining control-plane static pods, the apiserver cert, kubelet.conf, node registration.
    ControlPlaneUp(NodeIx),
    KubeadmReset(NodeIx),
    /// `kubectl delete node`: the Node object that `kubeadm reset` or a destroyed VM left behind.
    DeleteNode(NodeIx),
    /// `rm` of the join command and certificate key on every host that is up and holds them.
    ForgetJoinSecrets,
    /// `kubeadm token delete` of the join tokens the plan made (24 h credentials to join).
    RevokeJoinTokens,
    /// The kubeconfig in the `kube-proxy` ConfigMap: server -> VIP, then a rollout restart of the
    /// DaemonSet (kubeadm rendered it once, at init, from the endpoint it had then).
    PointKubeProxyAtVip,
    EtcdMemberRemove(NodeIx),
    /// These kubeconfig consumers (bit per consumer) name the VIP.
    FlipConsumersOf(u64),
    RevertConsumers,
    FlipKubelet(NodeIx),
    RevertKubelet(NodeIx),
    /// The etcd CronJobs' edit in the infra repo: node pin -> control-plane selector.
    DeclareCronJobsOnControlPlane,
    /// `tg apply` of the CronJobs' stack: the live CronJobs follow what the repo declares.
    ApplyCronJobs,
    /// The reboot gate's edit in the infra repo: the control-plane quorum check.
    DeclareGateQuorumCheck,
    /// `tg apply` of the reboot gate's stack.
    ApplyRebootGate,
    /// The upgrade chain's edit: discover the masters and loop over them with a quorum check.
    DeclareChainMasterLoop,
    /// The upgrade chain's edit: its preflight and master phase take any control-plane node.
    DeclareChainAnyMaster,
    /// `tg apply` of the upgrade chain's stack.
    ApplyUpgradeChain,
    Shutdown(NodeIx),
    Boot(NodeIx),
    /// A machine down for good written off: its Node object deleted (`kubectl delete node`),
    /// the plan going on without it (its etcd member is removed apart, while quorum allows).
    WriteOff(NodeIx),
    /// `etcd --force-new-cluster` on a surviving voter: a one-member cluster with all committed data.
    ForceNewCluster(NodeIx),
    /// `etcdctl snapshot restore` of the newest backup on one master.
    RestoreSnapshot(NodeIx),
}

/// What kind of obstacle a refusal is, so the executor can pick a recovery without reading prose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalKind {
    /// A precondition of the command does not hold.
    Precondition,
    /// The host the command runs on is down.
    HostDown,
    /// etcd has no quorum.
    NoQuorum,
    /// A credential (uploaded certs, join token) expired.
    Expired,
    /// A verification failed.
    CheckFailed,
}

/// Why the real command would fail in this state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{reason}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub reason: String,
}

/// Seconds an apiserver static pod takes to come back after a restart.
pub const APISERVER_RESTART_S: u32 = 30;
/// Seconds a node is NotReady while its kubelet restarts against a new endpoint.
pub const KUBELET_RESTART_S: u32 = 10;
/// A snapshot older than this fails the pre-flight.
pub const BACKUP_AGE_MAX_S: i64 = 26 * 3600;

impl Action {
    /// The node the action runs on or changes, if one.
    pub fn node(self) -> Option<NodeIx> {
        use Action::*;
        match self {
            Verify(
                Check::CertHasVip(n)
                | Check::ServedCertHasVip(n)
                | Check::ApiserverReady(n)
                | Check::ReadyToJoin(n)
                | Check::FlagsOn(n)
                | Check::NodeReady(n)
                | Check::KubeletLocal(n),
            ) => Some(n),
            Verify(_) => None,
            MoveCertAside(n)
            | GenerateCert(n)
            | RestoreCert(n)
            | RestartApiserver(n)
            | RemoveLbBackend(n)
            | ConfigStackRemoveHost(n)
            | DeclareVm(n)
            | CreateVm(n)
            | DestroyVm(n)
            | EtcdMemberAdd(n)
            | EtcdStart(n)
            | EtcdPromote(n)
            | ControlPlaneUp(n)
            | KubeadmReset(n)
            | DeleteNode(n)
            | WriteOff(n)
            | EtcdMemberRemove(n)
            | FlipKubelet(n)
            | RevertKubelet(n)
            | Shutdown(n)
            | Boot(n)
            | ForceNewCluster(n)
            | RestoreSnapshot(n) => Some(n),
            // The node order puts the newest master last: the one the step adds.
            DeclareLbPool(set) | DeclareStackHosts(set) => set.iter().last(),
            _ => None,
        }
    }

    /// Whether the action changes etcd membership (and so must be reversible).
    pub fn changes_membership(self) -> bool {
        matches!(
            self,
            Action::EtcdMemberAdd(_)
                | Action::EtcdPromote(_)
                | Action::EtcdMemberRemove(_)
                | Action::ForceNewCluster(_)
                | Action::RestoreSnapshot(_)
        )
    }
}

/// Applies `action` to `c`.
///
/// # Errors
/// A [`Refusal`] when the real command would fail in this state; the state is then unchanged.
pub fn apply(c: &Cluster, t: &Topology, action: Action) -> Result<Cluster, Refusal> {
    let mut n = *c;
    transition(c, &mut n, t, action, Words(true))?;
    Ok(n)
}

/// [`apply`] to `state` in place: for a caller that keeps only the state after, one copy of the
/// state (the state before, which the checks read) instead of one for the result and one more to
/// store it (the exploration applies millions of actions).
///
/// # Errors
/// A [`Refusal`] when the real command would fail in this state; `state` is then as it was.
pub fn apply_in_place(state: &mut Cluster, t: &Topology, action: Action) -> Result<(), Refusal> {
    in_place(state, t, action, Words(true))
}

/// [`apply_in_place`] with a refusal left unworded: its kind is the one [`apply`] gives, its
/// reason empty. For a caller that refuses often and reports few refusals (the exploration):
/// [`apply`] of the action to `state` (as it is after the refusal, unchanged) words it.
///
/// # Errors
/// A [`Refusal`] without its reason when the real command would fail in this state; `state` is
/// then as it was.
pub fn apply_in_place_unworded(state: &mut Cluster, t: &Topology, action: Action) -> Result<(), Refusal> {
    in_place(state, t, action, Words(false))
}

fn in_place(state: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    // A verification reads the state and only moves its clock (as `transition` does): no copy
    // of the state before is needed (a third of the exploration's transitions are checks).
    if let Action::Verify(check) = action {
        verify(state, t, check, w)?;
        state.clock_s = state.clock_s.saturating_add(action.duration_s());
        return Ok(());
    }
    let before = *state;
    let result = transition(&before, state, t, action, w);
    if result.is_err() {
        *state = before;
    }
    result
}

/// A verification of `c`: refused, with why, where the check fails.
fn verify(c: &Cluster, t: &Topology, check: Check, w: Words) -> Result<(), Refusal> {
    match check.evaluate_in(c, t, w) {
        Ok(()) => Ok(()),
        Err(why) => w.refuse_as(RefusalKind::CheckFailed, || format!("check failed: {}: {why}", check.describe(t))),
    }
}

/// What `action` makes of `c`, written into `n`, a copy of `c` on entry; after a refusal `n` is
/// left half-written, for the caller to drop or restore. Each family of actions is worked out
/// in the module of the part of the system it changes.
fn transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    use Action::*;
    n.clock_s = c.clock_s.saturating_add(action.duration_s());
    match action {
        Verify(check) => verify(c, t, check, w),
        PatchKubeadmConfig | RevertKubeadmConfig | MoveCertAside(_) | GenerateCert(_) | RestoreCert(_) | RestartApiserver(_) => {
            certs::cert_transition(c, n, t, action, w)
        }
        UploadCerts | CreateToken | ForgetJoinSecrets | RevokeJoinTokens => certs::join_secret_transition(c, n, t, action, w),
        ReserveVip | ReleaseVip | StartVipDaemon(_) | StopVipDaemon(_) | DeclareLbFrontend | RemoveLbFrontend | DeclareLbPool(_)
        | RemoveLbBackend(_) | DeployLb => vip::lb_transition(c, n, t, action, w),
        DeclareVipRecord | DeclareStaleRecordDeletion | AddVipDnsRecord | DeleteStaleDnsRecord | RestoreStaleDnsRecords | RevertDns => {
            vip::dns_transition(c, n, t, action);
            Ok(())
        }
        RefactorConfigStack | ApplyConfigStack | RevertConfigStack | DeclareStackHosts(_) | ConfigStackRemoveHost(_) => {
            stacks::config_stack_transition(c, n, t, action, w)
        }
        DeclareCronJobsOnControlPlane
        | ApplyCronJobs
        | DeclareGateQuorumCheck
        | ApplyRebootGate
        | DeclareChainMasterLoop
        | DeclareChainAnyMaster
        | ApplyUpgradeChain => stacks::maintenance_transition(c, n, t, action, w),
        TakeVmSnapshot | DeclareTemplate | BumpTemplate | DeclareVm(_) | CreateVm(_) | DestroyVm(_) | Shutdown(_) | Boot(_) => {
            hosts::host_transition(c, n, t, action, w)
        }
        ControlPlaneUp(_) | KubeadmReset(_) | DeleteNode(_) | WriteOff(_) => hosts::control_plane_transition(c, n, t, action, w),
        EtcdMemberAdd(_) | EtcdStart(_) | EtcdPromote(_) | EtcdMemberRemove(_) | ForceNewCluster(_) | RestoreSnapshot(_) => {
            etcd::etcd_transition(c, n, t, action, w)
        }
        PointKubeProxyAtVip | FlipConsumersOf(_) | RevertConsumers | FlipKubelet(_) | RevertKubelet(_) => {
            kubeconfigs::kubeconfig_transition(c, n, t, action, w)
        }
    }
}

/// Readiness problems worth naming for a node (used by reports).
pub fn not_ready_reason(c: &Cluster, node: NodeIx) -> Option<NotReady> {
    observe::apiserver_ready(c, node).err()
}
