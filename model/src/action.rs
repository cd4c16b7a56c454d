//! The atomic transitions of the cluster: what each command does to the state, and when it refuses.
//!
//! A plan step is a short list of actions; a step that fails half-way has applied only some of
//! them. Every precondition here mirrors what the real command checks, and a refusal says why in
//! terms of state ("etcd 1/2 voters up: no quorum").

use crate::cluster::{Cluster, EtcdData};
use crate::observe::{self, ClientNeeds, Endpoint, NotReady};
use crate::topology::{NodeIx, NodeSet, Topology};
use serde::Serialize;

mod check;
mod describe;
mod duration;
mod refuse;
mod rerun;
mod transient;
pub use check::Check;
pub use refuse::join_credentials;
use refuse::{api_for_operator, join_credentials_in, needs_api, needs_up, Words};
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
/// left half-written, for the caller to drop or restore.
fn transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    use Action::*;
    n.clock_s = c.clock_s.saturating_add(action.duration_s());
    let master = t.existing_master();
    match action {
        Verify(check) => verify(c, t, check, w)?,
        TakeVmSnapshot => {
            let h = t.node(master).hypervisor;
            if c.hypervisors_down & (1 << h) != 0 {
                return w.refuse(|| "qm snapshot: hypervisor unreachable");
            }
            n.vm_snapshot = true;
        }
        PatchKubeadmConfig => {
            needs_api(w, c, t, "kubeadm init phase upload-config")?;
            n.kubeadm_endpoint = true;
        }
        RevertKubeadmConfig => {
            needs_api(w, c, t, "kubeadm init phase upload-config")?;
            n.kubeadm_endpoint = false;
        }
        MoveCertAside(x) => {
            needs_up(w, c, t, x, "mv apiserver.{crt,key}")?;
            if !c.cert_present.contains(x) && !c.cert_backup {
                return w.refuse(|| "mv: apiserver.crt: no such file");
            }
            if c.cert_present.contains(x) {
                n.cert_backup = true;
            }
            n.cert_present.set(x, false);
            n.cert_vip.set(x, false);
        }
        GenerateCert(x) => {
            needs_up(w, c, t, x, "kubeadm init phase certs apiserver")?;
            // The new ClusterConfiguration it reads is written by the kubeadm-config patch step;
            // without it kubeadm stops (the lab's run through the executor showed it).
            if !c.kubeadm_endpoint {
                return w
                    .refuse(|| "kubeadm init phase certs apiserver --config /tmp/kubeadm-new.yaml: unable to read config: no such file");
            }
            // The phase reuses any existing pair that chains to the CA ("Using existing apiserver
            // certificate and key on disk", `runCertPhase` in cmd/phases/init/certs.go) without
            // looking at its SANs: they only change when the old pair was moved away first.
            if !c.cert_present.contains(x) {
                n.cert_present.set(x, true);
                n.cert_vip.set(x, c.kubeadm_endpoint);
            }
            *n = reload_serving_cert(n, x);
        }
        RestoreCert(x) => {
            needs_up(w, c, t, x, "cp apiserver backup")?;
            if !c.cert_backup {
                return w.refuse(|| "cp: /tmp/apiserver-backup/apiserver.crt: no such file");
            }
            n.cert_present.set(x, true);
            n.cert_vip.set(x, false);
            *n = reload_serving_cert(n, x);
        }
        RestartApiserver(x) => {
            needs_up(w, c, t, x, "restart kube-apiserver")?;
            if !c.control_plane.contains(x) {
                return w.refuse(|| format!("{} has no kube-apiserver static pod", t.name(x)));
            }
            n.apiserver_running.set(x, c.cert_present.contains(x));
            n.served_vip.set(x, c.cert_vip.contains(x));
        }
        ReserveVip => {
            if !c.lb_up {
                return w.refuse(|| format!("{} unreachable", t.scenario.load_balancer.name));
            }
            n.vip_alias = true;
        }
        ReleaseVip => {
            if !c.lb_up {
                return w.refuse(|| format!("{} unreachable", t.scenario.load_balancer.name));
            }
            n.vip_alias = false;
        }
        StartVipDaemon(x) => {
            needs_up(w, c, t, x, "start the VIP's daemon")?;
            // kube-vip runs as a static pod that talks to the node's own apiserver, which only a
            // joined control plane has (kube-vip's static-pod guide: join, then copy the manifest).
            if t.scenario.load_balancer.kind == crate::scenario::LbKind::KubeVip && !c.control_plane.contains(x) {
                return w.refuse(|| format!("kube-vip on {} needs its control plane: place the manifest after the join", t.name(x)));
            }
            n.vip_daemons = c.vip_daemons.with(x);
        }
        StopVipDaemon(x) => {
            needs_up(w, c, t, x, "stop the VIP's daemon")?;
            n.vip_daemons = c.vip_daemons.without(x);
        }
        DeclareVipRecord => n.dns_vip_declared = true,
        DeclareStaleRecordDeletion => n.dns_stale_deletion_declared = true,
        // The apply makes the records what the repo declares: nothing new without the edit.
        AddVipDnsRecord => n.dns_vip = c.dns_vip_declared,
        DeleteStaleDnsRecord => n.dns_stale = c.dns_stale && !c.dns_stale_deletion_declared,
        RestoreStaleDnsRecords => {
            n.dns_stale_deletion_declared = false;
            n.dns_stale = t.scenario.dns.records.iter().any(|r| r.stale);
        }
        RevertDns => {
            n.dns_vip_declared = false;
            n.dns_stale_deletion_declared = false;
            n.dns_vip = false;
            n.dns_stale = t.scenario.dns.records.iter().any(|r| r.stale);
        }
        DeclareLbFrontend => n.lb_declared.frontend = true,
        RemoveLbFrontend => n.lb_declared = Default::default(),
        DeclareLbPool(pool) => n.lb_declared.pool = pool,
        RemoveLbBackend(x) => n.lb_declared.pool = c.lb_declared.pool.without(x),
        DeployLb => {
            if !c.lb_up {
                return w.refuse(|| "ssh pfSense: host is down");
            }
            n.lb_running = c.lb_declared;
        }
        RefactorConfigStack => n.stack_list_declared = true,
        ApplyConfigStack => {
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
                    return w
                        .refuse(|| format!("remote-exec on {}: /etc/kubernetes/manifests/kube-apiserver.yaml: no such file", t.name(x)));
                }
            }
            n.stack_list = c.stack_list_declared;
            n.apiserver_flags = c.apiserver_flags.or(added);
            n.stack_hosts = hosts;
        }
        RevertConfigStack => {
            if c.stack_hosts != NodeSet::of(master) {
                return w.refuse(|| "the config stack still lists more than one master");
            }
            n.stack_list = t.stack_starts_as_list();
            n.stack_list_declared = t.stack_starts_as_list();
            n.stack_hosts_declared = NodeSet::of(master);
        }
        DeclareStackHosts(hosts) => n.stack_hosts_declared = hosts,
        ConfigStackRemoveHost(x) => {
            n.stack_hosts = c.stack_hosts.without(x);
            n.stack_hosts_declared = c.stack_hosts_declared.without(x);
        }
        DeclareTemplate => n.template_declared = true,
        BumpTemplate => {
            n.template_version_ok = c.template_version_ok || c.template_declared;
            n.template_master_safe = c.template_master_safe || c.template_declared;
        }
        DeclareVm(x) => n.vm_declared = c.vm_declared.with(x),
        CreateVm(x) if !c.vm_declared.contains(x) => {
            return w
                .refuse(|| format!("tg apply -target=module.{}: no such module in the infra repo (the VM is not declared)", t.name(x)));
        }
        CreateVm(x) => {
            let h = t.node(x).hypervisor;
            if c.hypervisors_down & (1 << h) != 0 {
                return w.refuse(|| "tg apply: hypervisor unreachable");
            }
            if c.vm_exists.contains(x) {
                return w.refuse(|| format!("the VM of {} already exists", t.name(x)));
            }
            n.vm_exists = c.vm_exists.with(x);
            n.up = c.up.with(x);
            n.old_kubeadm.set(x, !c.template_version_ok);
            if !c.template_master_safe && api_for_operator(c, t).is_ok() {
                // cloud-init's runcmd runs the worker join command on first boot.
                n.joined_as_worker = c.joined_as_worker.with(x);
                n.joined = c.joined.with(x);
            }
        }
        DestroyVm(x) => {
            let h = t.node(x).hypervisor;
            if c.hypervisors_down & (1 << h) != 0 {
                return w.refuse(|| "tg destroy: hypervisor unreachable");
            }
            let gone = NodeSet::of(x);
            n.vm_exists = c.vm_exists.minus(gone);
            n.up = c.up.minus(gone);
            n.joined = c.joined.minus(gone);
            n.joined_as_worker = c.joined_as_worker.minus(gone);
            n.old_kubeadm = c.old_kubeadm.minus(gone);
            n.control_plane = c.control_plane.minus(gone);
            n.apiserver_running = c.apiserver_running.minus(gone);
            n.apiserver_flags = c.apiserver_flags.minus(gone);
            n.cert_present = c.cert_present.minus(gone);
            n.cert_vip = c.cert_vip.minus(gone);
            n.served_vip = c.served_vip.minus(gone);
            n.kubelet_vip = c.kubelet_vip.minus(gone);
            n.kubelet_local = c.kubelet_local.minus(gone);
            n.etcd_started = c.etcd_started.minus(gone);
            n.join_files = c.join_files.minus(gone);
            n.join_secrets_on = c.join_secrets_on.minus(gone);
            if c.joined.contains(x) {
                n.stale_nodes = c.stale_nodes.with(x);
            }
        }
        UploadCerts => {
            needs_api(w, c, t, "kubeadm init phase upload-certs")?;
            n.certs_uploaded_s = Some(c.clock_s);
            // The plan keeps the printed key in a root-only file on the existing master.
            n.join_secrets_on = c.join_secrets_on.with(master);
        }
        CreateToken => {
            needs_api(w, c, t, "kubeadm token create")?;
            n.token_s = Some(c.clock_s);
            n.join_secrets_on = c.join_secrets_on.with(master);
        }
        EtcdMemberAdd(x) => {
            let join = "kubeadm join --control-plane";
            needs_up(w, c, t, x, join)?;
            if !c.kubeadm_endpoint {
                return w.refuse(|| format!("{join}: unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address"));
            }
            // An older kubeadm only warns (`KubernetesVersionCheck`, preflight/checks.go): the
            // join goes on; Check::ReadyToJoin and the acceptance check report the skew. One two
            // or more minors newer stops (`NormalizeKubernetesVersion`, util/config/common.go).
            if c.old_kubeadm.contains(x) && t.template_version >= (t.version.0, t.version.1 + 2) {
                return w.refuse(|| format!(
                    "{join}: this version of kubeadm only supports deploying clusters with the control plane version >= {}.{}.0. Current version: v{}.{}",
                    t.template_version.0,
                    t.template_version.1 - 1,
                    t.version.0,
                    t.version.1
                ));
            }
            if c.joined.contains(x) {
                return w.refuse(|| {
                    format!("{join}: [preflight] /etc/kubernetes/kubelet.conf already exists ({} is already a node)", t.name(x))
                });
            }
            if c.join_files.contains(x) {
                // A join that got as far as adding the member also wrote the manifests and the
                // etcd data dir: preflight refuses them until `kubeadm reset`.
                return w.refuse(|| format!(
                    "{join}: [preflight] /etc/kubernetes/manifests/etcd.yaml already exists, /var/lib/etcd is not empty: run kubeadm reset on {} first",
                    t.name(x)
                ));
            }
            join_credentials_in(c, t, w)?;
            // `--print-join-command` prints the server of admin.conf on the first master, its own
            // address (`getJoinCommand`, cmd/util/join.go): discovery fetches cluster-info there.
            let discovery = observe::reach(c, t, Endpoint::Direct(master), ClientNeeds { oidc: false });
            if discovery.is_down() {
                return w.refuse(|| format!("{join}: discovery at {}: {discovery}", t.node(master).address));
            }
            // The join's later phases use the admin.conf it writes, which names controlPlaneEndpoint.
            let via = observe::reach(c, t, Endpoint::Vip, ClientNeeds { oidc: false });
            if via.is_down() {
                return w.refuse(|| format!("{join}: controlPlaneEndpoint: {via}"));
            }
            let q = observe::quorum(c);
            if !q.holds() {
                return w.refuse_as(RefusalKind::NoQuorum, || format!("{join}: etcdserver: request timed out ({q})"));
            }
            // check-etcd asks every member for its status before anything is added
            // (phases/join/checketcd.go -> CheckClusterHealth), and etcd itself refuses any add
            // unless the leader has been connected to every voter (`isConnectedFullySince`).
            let answering = match observe::leader(c) {
                Some(leader) => observe::live_members(c).and(observe::side(c, leader)),
                None => NodeSet::EMPTY,
            };
            if let Some(down) = c.members().minus(answering).iter().next() {
                return w.refuse(|| format!("{join}: [check-etcd] etcd cluster is not healthy: member {} does not answer", t.name(down)));
            }
            if !t.learner_mode && !crate::facts::may_add_voter(c.voters.len(), c.voters.and(c.etcd_started).len()) {
                return w.refuse_as(RefusalKind::NoQuorum, || {
                    format!("{join}: etcdserver: re-configuration failed due to not enough started members")
                });
            }
            n.join_files = c.join_files.with(x);
            // The join runs from the secrets copied to the joining host.
            n.join_secrets_on = c.join_secrets_on.with(x);
            // `addMember` accepts an existing peer URL: a member of this node that still answers
            // is taken as it is (one that does not answer was refused by check-etcd above, so a
            // reset that could not remove the member needs `etcdctl member remove` first).
            if c.members().contains(x) {
                return Ok(());
            }
            if t.learner_mode {
                if let Some(other) = c.learners.iter().next() {
                    return w.refuse(|| format!("{join}: etcdserver: too many learner members in cluster ({} is one)", t.name(other)));
                }
                n.learners = c.learners.with(x);
            } else {
                n.voters = c.voters.with(x);
            }
        }
        EtcdStart(x) => {
            needs_up(w, c, t, x, "etcd")?;
            if !c.members().contains(x) {
                return w.refuse(|| format!("etcd on {}: member not found in the cluster", t.name(x)));
            }
            if observe::leader(c).is_none() && !c.voters.contains(x) {
                return w.refuse_as(RefusalKind::NoQuorum, || format!("etcd learner {} cannot sync: no leader", t.name(x)));
            }
            n.etcd_started = c.etcd_started.with(x);
        }
        EtcdPromote(x) => {
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
        ControlPlaneUp(x) => {
            needs_up(w, c, t, x, "kubeadm join --control-plane")?;
            if !observe::live_members(c).contains(x) {
                return w.refuse(|| format!("kubeadm join: etcd on {} is not running", t.name(x)));
            }
            n.control_plane = c.control_plane.with(x);
            n.cert_present = c.cert_present.with(x);
            n.cert_vip.set(x, c.kubeadm_endpoint);
            n.served_vip.set(x, c.kubeadm_endpoint);
            n.apiserver_running = c.apiserver_running.with(x);
            // Without a config stack the flags live in kubeadm-config, which the join renders.
            if t.scenario.config_stack.is_none() {
                n.apiserver_flags = c.apiserver_flags.with(x);
            }
            n.joined = c.joined.with(x);
            n.stale_nodes = c.stale_nodes.without(x);
            // Local mode: kubelet.conf names the node's own apiserver; without it, the server of
            // the discovered cluster-info, which still names the first master.
            n.kubelet_vip = c.kubelet_vip.without(x);
            n.kubelet_local.set(x, t.kubelet_local_mode);
        }
        KubeadmReset(x) => {
            needs_up(w, c, t, x, "kubeadm reset")?;
            // kubeadm reset removes the node's own etcd member first when the cluster can take
            // the change (it needs quorum); otherwise it warns and leaves the member behind.
            if c.members().contains(x) && observe::quorum(c).holds() && !c.voters.minus(NodeSet::of(x)).is_empty() {
                n.voters = c.voters.without(x);
                n.learners = c.learners.without(x);
            }
            let gone = NodeSet::of(x);
            n.control_plane = c.control_plane.minus(gone);
            n.apiserver_running = c.apiserver_running.minus(gone);
            n.apiserver_flags = c.apiserver_flags.minus(gone);
            n.cert_present = c.cert_present.minus(gone);
            n.cert_vip = c.cert_vip.minus(gone);
            n.served_vip = c.served_vip.minus(gone);
            n.joined = c.joined.minus(gone);
            n.joined_as_worker = c.joined_as_worker.minus(gone);
            n.kubelet_vip = c.kubelet_vip.minus(gone);
            n.kubelet_local = c.kubelet_local.minus(gone);
            n.etcd_started = c.etcd_started.minus(gone);
            n.join_files = c.join_files.minus(gone);
            // reset.go never deletes the Node object: it stays, NotReady.
            if c.joined.contains(x) {
                n.stale_nodes = c.stale_nodes.with(x);
            }
        }
        DeleteNode(x) => {
            needs_api(w, c, t, "kubectl delete node")?;
            n.stale_nodes = c.stale_nodes.without(x);
        }
        WriteOff(x) => {
            if c.up.contains(x) {
                return w.refuse(|| format!("write off {}: it is up; only a machine down for good is written off", t.name(x)));
            }
            if c.joined.contains(x) || c.stale_nodes.contains(x) {
                needs_api(w, c, t, "kubectl delete node")?;
            }
            n.joined = c.joined.without(x);
            n.stale_nodes = c.stale_nodes.without(x);
            n.written_off = c.written_off.with(x);
        }
        // A host that is down keeps its files until it is back (or destroyed).
        ForgetJoinSecrets => n.join_secrets_on = c.join_secrets_on.minus(c.up),
        RevokeJoinTokens => {
            if c.token_s.is_some() {
                needs_api(w, c, t, "kubeadm token delete")?;
            }
            n.token_s = None;
        }
        PointKubeProxyAtVip => {
            needs_api(w, c, t, "kubectl -n kube-system apply configmap/kube-proxy")?;
            n.kube_proxy_vip = true;
        }
        EtcdMemberRemove(x) => {
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
        FlipConsumersOf(mask) => n.consumers_vip = c.consumers_vip | mask,
        RevertConsumers => n.consumers_vip = 0,
        FlipKubelet(x) => {
            needs_up(w, c, t, x, "sed kubelet.conf")?;
            n.kubelet_vip = c.kubelet_vip.with(x);
            n.kubelet_local = c.kubelet_local.without(x);
        }
        RevertKubelet(x) => {
            needs_up(w, c, t, x, "sed kubelet.conf")?;
            n.kubelet_vip = c.kubelet_vip.without(x);
            // The first master's direct address is its own.
            n.kubelet_local.set(x, x == master || c.kubelet_local.contains(x));
        }
        DeclareCronJobsOnControlPlane => n.cronjobs_declared_any_master = true,
        ApplyCronJobs => {
            needs_api(w, c, t, "tg apply infra-maintenance")?;
            n.cronjobs_any_master = c.cronjobs_declared_any_master;
        }
        DeclareGateQuorumCheck => n.gate_declared_quorum = true,
        ApplyRebootGate => {
            needs_api(w, c, t, "tg apply kured")?;
            n.gate_quorum = c.gate_declared_quorum;
        }
        DeclareChainMasterLoop => n.chain_loop_declared = true,
        DeclareChainAnyMaster => n.chain_any_master_declared = true,
        ApplyUpgradeChain => {
            needs_api(w, c, t, "tg apply k8s-version-upgrade")?;
            n.chain_all_masters = c.chain_loop_declared && c.chain_any_master_declared;
        }
        Shutdown(x) => {
            needs_up(w, c, t, x, "reboot")?;
            n.up = c.up.without(x);
        }
        Boot(x) => {
            let h = t.node(x).hypervisor;
            if c.hypervisors_down & (1 << h) != 0 || !c.vm_exists.contains(x) {
                return w.refuse(|| format!("qm start {}: no such VM or hypervisor down", t.name(x)));
            }
            *n = boot(n, x);
        }
        ForceNewCluster(x) => {
            needs_up(w, c, t, x, "etcd --force-new-cluster")?;
            if !c.voters.contains(x) || !c.etcd_started.contains(x) {
                return w.refuse(|| format!("etcd --force-new-cluster on {}: not a started voter, its data may be incomplete", t.name(x)));
            }
            *n = single_member(n, x);
        }
        RestoreSnapshot(x) => {
            needs_up(w, c, t, x, "etcdctl snapshot restore")?;
            let lost = (c.clock_s as i64 - c.last_backup_s).max(0) as u32;
            *n = single_member(n, x);
            n.etcd_data = match c.etcd_data {
                EtcdData::Intact => EtcdData::RestoredFromSnapshot { lost_s: lost },
                EtcdData::RestoredFromSnapshot { lost_s } => EtcdData::RestoredFromSnapshot { lost_s: lost_s.max(lost) },
            };
        }
    }
    Ok(())
}

/// A running apiserver serves the pair on disk within [`crate::facts::APISERVER_CERT_RELOAD_S`];
/// with no pair on disk it keeps the last good one.
fn reload_serving_cert(c: &Cluster, x: NodeIx) -> Cluster {
    let mut n = *c;
    let running = c.up.contains(x) && c.control_plane.contains(x) && c.apiserver_running.contains(x);
    if running && c.cert_present.contains(x) {
        n.served_vip.set(x, c.cert_vip.contains(x));
    }
    n
}

/// A node coming up: its static pods start again from what is on disk.
pub fn boot(c: &Cluster, x: NodeIx) -> Cluster {
    let mut n = *c;
    n.up = c.up.with(x);
    if c.control_plane.contains(x) {
        n.apiserver_running.set(x, c.cert_present.contains(x));
        n.served_vip.set(x, c.cert_vip.contains(x));
    }
    n
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

/// Readiness problems worth naming for a node (used by reports).
pub fn not_ready_reason(c: &Cluster, node: NodeIx) -> Option<NotReady> {
    observe::apiserver_ready(c, node).err()
}
