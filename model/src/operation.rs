//! The plan's operations: what a step does, typed, with its parameters.
//!
//! A step is a list of operations. Each operation defines in one place what the twin applies
//! ([`Operation::effect`], a list of [`Action`]s), the commands it runs ([`Operation::render`], the
//! only source of command text for `show`, `execute` and the lab), how to tell on the real hosts
//! whether it already took effect ([`Operation::probe`]), what undoes it ([`Operation::undo`]) and
//! whether running it twice is safe ([`Operation::rerun`]). The plan file holds the operations:
//! a user who changes a parameter changes both what the twin proves and what runs.
//!
//! Nodes are named by their scenario names; an operation that names no node of the cluster, or a
//! node of the wrong kind, is refused with an [`OperationError`].

use crate::action::{Action, Check};
use crate::plan::RunsOn;
use crate::topology::{NodeIx, NodeKind, NodeSet, Topology};
use serde::{Deserialize, Serialize};

mod carrying_out;
mod render;
mod without;
pub use render::{
    backends_state, command_text, cronjob_stack, haproxy_sections, iac_command, kubelet_server_shell, vip_listening, Probe,
    CERTIFICATE_KEY_FILE, ETCDCTL_LOCAL, JOIN_COMMAND_FILE, JOIN_TOKEN_DESCRIPTION, KUBEADM_RESET,
};

/// A stack of the infra repo that `scripts/tg apply` applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "stack")]
pub enum IacStack {
    /// The DNS server's module: its records follow the repo.
    Dns,
    /// The VM template's module.
    Template,
    /// A master VM's module: the VM is created and boots.
    Vm { node: String },
    /// The config stack (apiserver flags on the masters it lists).
    ConfigStack,
    /// The portal stack, which reads the cluster's kubeconfig.
    Portal,
    /// The stack of the etcd backup and defrag CronJobs.
    CronJobs,
    /// The reboot gate's stack (kured).
    RebootGate,
    /// The upgrade chain's stack.
    UpgradeChain,
}

/// One typed operation of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op", deny_unknown_fields)]
pub enum Operation {
    /// Read-only commands that confirm `checks` ([`Check::key`] names); the twin verifies each.
    Verify {
        checks: Vec<String>,
        #[serde(default)]
        run: Vec<String>,
        /// The machine (node, load balancer, hypervisor) the commands run on; none: where
        /// the step runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    /// A hypervisor snapshot of a VM (`qm snapshot`).
    VmSnapshot { node: String, name: String },
    /// `kubeadm-config` saved to a file on the first master.
    BackupKubeadmConfig { to: String },
    /// A kubeadm config with `controlPlaneEndpoint` and the VIP SANs written by hand to `file`.
    PrepareKubeadmConfig { file: String },
    /// `kubeadm init phase upload-config` of `file`: kubeadm-config takes the endpoint.
    UploadKubeadmConfig { file: String },
    /// The apiserver's cert and key moved to the directory `to`.
    MoveCertAside { node: String, to: String },
    /// `kubeadm init phase certs apiserver` from `config`.
    GenerateCert { node: String, config: String },
    /// The VIP as an alias on the load balancer's interface, by hand.
    ReserveVip,
    /// The DNS records edited in the repo: FQDN -> VIP, stale per-master records deleted.
    DeclareDnsRecords {
        /// The VIP's record is declared.
        #[serde(default = "yes")]
        vip: bool,
        /// The stale records' deletion is declared.
        #[serde(default = "yes")]
        delete_stale: bool,
    },
    /// The bootstrap script declares the VIP frontend and the apiserver pool `pool`.
    DeclareLbFrontend { pool: Vec<String> },
    /// The bootstrap script's apiserver pool becomes `pool`.
    DeclareLbPool { pool: Vec<String> },
    /// The bootstrap script copied to the load balancer and run (reset to the declared state).
    DeployLb,
    /// keepalived's profile: the masters' HAProxy config installed and reloaded on each.
    DeployLbOn { nodes: Vec<String> },
    /// The VIP's daemon (keepalived + HAProxy, or the kube-vip static pod) started on a master.
    StartVipDaemon { node: String },
    /// The config stack refactored to loop over a list of masters.
    ConfigStackToList,
    /// The config stack's list of masters set to `hosts`.
    ConfigStackHosts { hosts: Vec<String> },
    /// The kubeconfig default of the config stack set to `address`.
    ConfigStackServer { address: String },
    /// The VM template's edits: the cluster's Kubernetes version, no worker join for masters.
    EditTemplate,
    /// A master VM's module added to the repo.
    DeclareVm { node: String },
    /// `scripts/tg apply` of one stack: its live state follows what the repo declares.
    IacApply(IacStack),
    /// `kubeadm init phase upload-certs`; the certificate key kept in a root-only file.
    UploadCerts,
    /// `kubeadm token create --print-join-command`, kept in a root-only file.
    CreateToken,
    /// `kubeadm join --control-plane` on a new master with the kept join command and key.
    Join { node: String },
    /// Every consumer listed edited to name `server`.
    KubeconfigConsumers { consumers: Vec<String>, server: String },
    /// The repo searched for the first master's address: none may be left.
    NoLeftoverAddress,
    /// `git commit -am MESSAGE && git push` in the infra repo.
    GitCommit { message: String },
    /// kubelet.conf on `nodes` set to `server` and kubelet restarted; with `wait_ready`, one
    /// node at a time, each waited Ready.
    KubeletServer {
        nodes: Vec<String>,
        server: String,
        #[serde(default)]
        wait_ready: bool,
    },
    /// The join tokens the plan made revoked, the join command and certificate key deleted from `nodes`.
    ForgetJoinSecrets { nodes: Vec<String> },
    /// kube-proxy's kubeconfig set to `server` and its DaemonSet restarted.
    KubeProxyServer { server: String },
    /// The etcd CronJobs `jobs` take any control-plane node instead of their pin.
    CronJobsOnControlPlane { jobs: Vec<String> },
    /// `kubectl create job --from=cronjob/CRONJOB JOB`.
    RunJob { namespace: String, cronjob: String, job: String },
    /// The reboot gate blocks a reboot while `block_at_or_below` control-plane nodes or fewer are Ready.
    RebootGateRule { block_at_or_below: u32 },
    /// The upgrade chain discovers the masters and drains one only while more than
    /// `require_ready_above` are Ready.
    UpgradeChainLoop { require_ready_above: u32 },
    /// The upgrade chain's preflight and master phase take any control-plane node.
    UpgradeChainAnyMaster,
    /// `kubectl drain`.
    Drain { node: String },
    /// A reboot watched through the VIP until the node is Ready again.
    Reboot { node: String },
    /// `kubectl uncordon`.
    Uncordon { node: String },
    /// The tracking issue closed.
    CloseIssue,
    /// Something a person does that the twin does not model; listed as unverified.
    ByHand { instruction: String },
    /// A shell command the twin does not model: it assumes the command changes nothing, and
    /// `plan check` lists it as unverified.
    Shell {
        run: String,
        /// The machine it runs on; none: where the step runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
}

/// Whether an operation may run again after an interruption left it unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rerun {
    /// Running it twice leaves the same state.
    Safe,
    /// A second run fails or destroys something: its probe decides.
    ProbeFirst,
}

/// Why an operation cannot be used in this cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    #[error("{op}: no node {name:?} in the scenario")]
    UnknownNode { op: &'static str, name: String },
    #[error("{op}: {name} is {kind}, the operation needs {needs}")]
    WrongKind { op: &'static str, name: String, kind: &'static str, needs: &'static str },
    #[error("{op}: no consumer {name:?} in the scenario")]
    UnknownConsumer { op: &'static str, name: String },
    #[error("verify: {0}")]
    UnknownCheck(String),
    #[error("{op}: server {server:?} is neither the VIP (https://{vip}) nor a master's address")]
    UnknownServer { op: &'static str, server: String, vip: String },
    #[error("{op}: the scenario declares no {section}")]
    NotDeclared { op: &'static str, section: &'static str },
    #[error("{op}: at {name:?}: no machine of that name in the scenario (a node, the load balancer or a hypervisor)")]
    UnknownMachine { op: &'static str, name: String },
}

/// The place of the scenario's machine `name`: a node, the load balancer or a hypervisor.
pub fn machine(t: &Topology, name: &str) -> Option<RunsOn> {
    let s = &t.scenario;
    if t.nodes.iter().any(|n| n.name == name) {
        Some(RunsOn::Node(name.to_string()))
    } else if s.load_balancer.machine_address().is_some() && s.load_balancer.name == name {
        Some(RunsOn::LoadBalancer(name.to_string()))
    } else if s.hypervisors.iter().any(|h| h.name == name) {
        Some(RunsOn::Hypervisor(name.to_string()))
    } else {
        None
    }
}

fn yes() -> bool {
    true
}

/// Where a kubeconfig's server points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Vip,
    Node(NodeIx),
}

impl Operation {
    /// The operation's name in the plan file (`kubelet-server`).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Verify { .. } => "verify",
            Operation::VmSnapshot { .. } => "vm-snapshot",
            Operation::BackupKubeadmConfig { .. } => "backup-kubeadm-config",
            Operation::PrepareKubeadmConfig { .. } => "prepare-kubeadm-config",
            Operation::UploadKubeadmConfig { .. } => "upload-kubeadm-config",
            Operation::MoveCertAside { .. } => "move-cert-aside",
            Operation::GenerateCert { .. } => "generate-cert",
            Operation::ReserveVip => "reserve-vip",
            Operation::DeclareDnsRecords { .. } => "declare-dns-records",
            Operation::DeclareLbFrontend { .. } => "declare-lb-frontend",
            Operation::DeclareLbPool { .. } => "declare-lb-pool",
            Operation::DeployLb => "deploy-lb",
            Operation::DeployLbOn { .. } => "deploy-lb-on",
            Operation::StartVipDaemon { .. } => "start-vip-daemon",
            Operation::ConfigStackToList => "config-stack-to-list",
            Operation::ConfigStackHosts { .. } => "config-stack-hosts",
            Operation::ConfigStackServer { .. } => "config-stack-server",
            Operation::EditTemplate => "edit-template",
            Operation::DeclareVm { .. } => "declare-vm",
            Operation::IacApply(_) => "iac-apply",
            Operation::UploadCerts => "upload-certs",
            Operation::CreateToken => "create-token",
            Operation::Join { .. } => "join",
            Operation::KubeconfigConsumers { .. } => "kubeconfig-consumers",
            Operation::NoLeftoverAddress => "no-leftover-address",
            Operation::GitCommit { .. } => "git-commit",
            Operation::KubeletServer { .. } => "kubelet-server",
            Operation::ForgetJoinSecrets { .. } => "forget-join-secrets",
            Operation::KubeProxyServer { .. } => "kube-proxy-server",
            Operation::CronJobsOnControlPlane { .. } => "cron-jobs-on-control-plane",
            Operation::RunJob { .. } => "run-job",
            Operation::RebootGateRule { .. } => "reboot-gate-rule",
            Operation::UpgradeChainLoop { .. } => "upgrade-chain-loop",
            Operation::UpgradeChainAnyMaster => "upgrade-chain-any-master",
            Operation::Drain { .. } => "drain",
            Operation::Reboot { .. } => "reboot",
            Operation::Uncordon { .. } => "uncordon",
            Operation::CloseIssue => "close-issue",
            Operation::ByHand { .. } => "by-hand",
            Operation::Shell { .. } => "shell",
        }
    }

    /// What the twin applies for the operation, in order.
    ///
    /// # Errors
    /// A parameter names nothing of this cluster, or a node of the wrong kind.
    pub fn effect(&self, t: &Topology) -> Result<Vec<Action>, OperationError> {
        self.refuse_undeclared(t)?;
        let named = Named { t, op: self.name() };
        Ok(match self {
            Operation::Verify { checks, .. } => checks
                .iter()
                .map(|key| Check::parse(t, key).map(Action::Verify).map_err(OperationError::UnknownCheck))
                .collect::<Result<_, _>>()?,
            Operation::UploadKubeadmConfig { .. } => vec![Action::PatchKubeadmConfig],
            Operation::MoveCertAside { node: name, .. } => vec![Action::MoveCertAside(named.master(name)?)],
            Operation::GenerateCert { node: name, .. } => vec![Action::GenerateCert(named.master(name)?)],
            Operation::ReserveVip
            | Operation::DeclareLbFrontend { .. }
            | Operation::DeclareLbPool { .. }
            | Operation::DeployLb
            | Operation::DeployLbOn { .. }
            | Operation::StartVipDaemon { .. } => self.lb_effect(&named)?,
            Operation::ConfigStackToList => vec![Action::RefactorConfigStack],
            Operation::ConfigStackHosts { hosts } => vec![Action::DeclareStackHosts(named.masters(hosts)?)],
            Operation::IacApply(stack) => apply_effect(&named, stack)?,
            Operation::UploadCerts | Operation::CreateToken | Operation::Join { .. } | Operation::ForgetJoinSecrets { .. } => {
                self.join_effect(&named)?
            }
            Operation::KubeconfigConsumers { .. } | Operation::KubeletServer { .. } | Operation::KubeProxyServer { .. } => {
                self.kubeconfig_effect(&named)?
            }
            Operation::CronJobsOnControlPlane { .. }
            | Operation::RebootGateRule { .. }
            | Operation::UpgradeChainLoop { .. }
            | Operation::UpgradeChainAnyMaster => self.maintenance_effect(t),
            Operation::VmSnapshot { .. }
            | Operation::Reboot { .. }
            | Operation::Drain { .. }
            | Operation::Uncordon { .. }
            | Operation::DeclareVm { .. }
            | Operation::EditTemplate => self.host_effect(&named)?,
            Operation::DeclareDnsRecords { vip, delete_stale } => {
                [vip.then_some(Action::DeclareVipRecord), delete_stale.then_some(Action::DeclareStaleRecordDeletion)]
                    .into_iter()
                    .flatten()
                    .collect()
            }
            Operation::BackupKubeadmConfig { .. }
            | Operation::PrepareKubeadmConfig { .. }
            | Operation::ConfigStackServer { .. }
            | Operation::NoLeftoverAddress
            | Operation::GitCommit { .. }
            | Operation::RunJob { .. }
            | Operation::CloseIssue
            | Operation::ByHand { .. }
            | Operation::Shell { .. } => vec![],
        })
    }

    /// For each of the operation's actions ([`Self::effect`]), how many of its commands
    /// ([`Self::render`]) have finished once that action took effect, where a command ends right
    /// there; `None` where no command ends right after the action. The last action ends with
    /// the operation's last command; the others end inside its commands (a join's member add,
    /// start and promote inside `kubeadm join`; the frontend and the pool of an LB in one edit),
    /// where equal counts would pair them by chance. The operations whose commands each carry
    /// out an action say so: a reboot's shutdown ends with `sudo reboot`, its watch through the
    /// VIP with the watch, and the machine boots inside `kubectl wait`, which ends once its
    /// apiserver is ready; each kubelet's flip ends with its node's command (with the wait for
    /// the node Ready in it, where the operation waits); the join tokens are revoked by the
    /// first command, the secrets forgotten by the last.
    ///
    /// # Errors
    /// As [`Self::effect`].
    pub fn commands_through(&self, t: &Topology) -> Result<Vec<Option<usize>>, OperationError> {
        let actions = self.effect(t)?.len();
        let commands = self.render(t).len();
        Ok(match self {
            Operation::Reboot { .. } => {
                debug_assert_eq!((actions, commands), (4, 3), "a reboot: shutdown, watch, boot, ready; reboot, watch, wait");
                vec![Some(1), Some(2), None, Some(3)]
            }
            Operation::KubeletServer { wait_ready: false, .. } => (1..=commands).map(Some).collect(),
            Operation::KubeletServer { wait_ready: true, .. } => (1..=commands).flat_map(|c| [None, Some(c)]).collect(),
            Operation::ForgetJoinSecrets { .. } => vec![Some(1), Some(commands)],
            _ => (1..=actions).map(|a| (a == actions).then_some(commands)).collect(),
        })
    }

    /// Refuses an operation that names a machine the scenario does not have, or works on a
    /// section (the reboot gate, the upgrade chain) it does not declare.
    fn refuse_undeclared(&self, t: &Topology) -> Result<(), OperationError> {
        if let Operation::Verify { at: Some(name), .. } | Operation::Shell { at: Some(name), .. } = self {
            if machine(t, name).is_none() {
                return Err(OperationError::UnknownMachine { op: self.name(), name: name.clone() });
            }
        }
        let gate_op = matches!(self, Operation::RebootGateRule { .. } | Operation::IacApply(IacStack::RebootGate));
        let chain_op = matches!(
            self,
            Operation::UpgradeChainLoop { .. } | Operation::UpgradeChainAnyMaster | Operation::IacApply(IacStack::UpgradeChain)
        );
        if gate_op && t.scenario.reboot_gate.is_none() {
            return Err(OperationError::NotDeclared { op: self.name(), section: "reboot_gate" });
        }
        if chain_op && t.scenario.upgrade_chain.is_none() {
            return Err(OperationError::NotDeclared { op: self.name(), section: "upgrade_chain" });
        }
        Ok(())
    }

    /// The VIP reserved, and the load balancer's frontend, pool and daemons declared and deployed.
    fn lb_effect(&self, named: &Named<'_>) -> Result<Vec<Action>, OperationError> {
        Ok(match self {
            Operation::ReserveVip => vec![Action::ReserveVip],
            Operation::DeclareLbFrontend { pool } => vec![Action::DeclareLbFrontend, Action::DeclareLbPool(named.masters(pool)?)],
            Operation::DeclareLbPool { pool } => vec![Action::DeclareLbPool(named.masters(pool)?)],
            Operation::DeployLb => vec![Action::DeployLb],
            Operation::DeployLbOn { nodes } => {
                named.masters(nodes)?;
                vec![Action::DeployLb]
            }
            Operation::StartVipDaemon { node: name } => vec![Action::StartVipDaemon(named.master(name)?)],
            _ => unreachable!("{self:?} is no load balancer operation"),
        })
    }

    /// The join credentials made, a new master joined, the credentials revoked and deleted.
    fn join_effect(&self, named: &Named<'_>) -> Result<Vec<Action>, OperationError> {
        Ok(match self {
            Operation::UploadCerts => vec![Action::UploadCerts],
            Operation::CreateToken => vec![Action::CreateToken],
            Operation::Join { node: name } => {
                let x = named.new_master(name)?;
                vec![Action::EtcdMemberAdd(x), Action::EtcdStart(x), Action::EtcdPromote(x), Action::ControlPlaneUp(x)]
            }
            Operation::ForgetJoinSecrets { nodes } => {
                named.masters(nodes)?;
                vec![Action::RevokeJoinTokens, Action::ForgetJoinSecrets]
            }
            _ => unreachable!("{self:?} is no join operation"),
        })
    }

    /// The consumers', the kubelets' and kube-proxy's kubeconfigs pointed at a server: the VIP
    /// (flipped), or a master's own address (reverted, or nothing to model).
    fn kubeconfig_effect(&self, named: &Named<'_>) -> Result<Vec<Action>, OperationError> {
        let (t, op) = (named.t, named.op);
        Ok(match self {
            Operation::KubeconfigConsumers { consumers, server } => {
                let mut mask = 0u64;
                for name in consumers {
                    let i = t
                        .consumers
                        .iter()
                        .position(|c| &c.name == name)
                        .ok_or_else(|| OperationError::UnknownConsumer { op, name: name.clone() })?;
                    mask |= 1 << i;
                }
                match server_named(t, op, server)? {
                    Server::Vip => vec![Action::FlipConsumersOf(mask)],
                    Server::Node(_) => vec![],
                }
            }
            Operation::KubeletServer { nodes, server, wait_ready } => {
                let target = server_named(t, op, server)?;
                let mut actions = Vec::new();
                for name in nodes {
                    let x = named.node(name)?;
                    actions.push(match target {
                        Server::Vip => Action::FlipKubelet(x),
                        Server::Node(_) => Action::RevertKubelet(x),
                    });
                    if *wait_ready {
                        actions.push(Action::Verify(Check::NodeReady(x)));
                    }
                }
                actions
            }
            Operation::KubeProxyServer { server } => match server_named(t, op, server)? {
                Server::Vip => vec![Action::PointKubeProxyAtVip],
                Server::Node(_) => vec![],
            },
            _ => unreachable!("{self:?} is no kubeconfig operation"),
        })
    }

    /// The maintenance stacks' edits, each modelled only where it covers what the twin checks:
    /// every pinned CronJob moved, a reboot gate or upgrade chain that keeps quorum.
    fn maintenance_effect(&self, t: &Topology) -> Vec<Action> {
        let quorum = t.target_masters().len() / 2 + 1;
        match self {
            Operation::CronJobsOnControlPlane { jobs } => {
                let pinned = t.scenario.cronjobs.iter().filter(|j| j.pinned_to.is_some());
                let covered = pinned.clone().all(|j| jobs.contains(&j.name));
                if covered {
                    vec![Action::DeclareCronJobsOnControlPlane]
                } else {
                    vec![]
                }
            }
            // A reboot must leave quorum Ready: the gate blocks at quorum or fewer.
            Operation::RebootGateRule { block_at_or_below } => {
                if *block_at_or_below >= quorum {
                    vec![Action::DeclareGateQuorumCheck]
                } else {
                    vec![]
                }
            }
            Operation::UpgradeChainLoop { require_ready_above } => {
                if *require_ready_above >= quorum {
                    vec![Action::DeclareChainMasterLoop]
                } else {
                    vec![]
                }
            }
            Operation::UpgradeChainAnyMaster => vec![Action::DeclareChainAnyMaster],
            _ => unreachable!("{self:?} is no maintenance operation"),
        }
    }

    /// The machines: a VM snapshot, the template and a new master's VM declared, a node
    /// rebooted, drained or uncordoned.
    fn host_effect(&self, named: &Named<'_>) -> Result<Vec<Action>, OperationError> {
        Ok(match self {
            Operation::VmSnapshot { node: name, .. } => {
                named.node(name)?;
                vec![Action::TakeVmSnapshot]
            }
            Operation::Reboot { node: name } => {
                let x = named.node(name)?;
                vec![Action::Shutdown(x), Action::Verify(Check::ViaVip), Action::Boot(x), Action::Verify(Check::ApiserverReady(x))]
            }
            Operation::Drain { node: name } | Operation::Uncordon { node: name } => {
                named.node(name)?;
                vec![]
            }
            Operation::DeclareVm { node: name } => vec![Action::DeclareVm(named.new_master(name)?)],
            Operation::EditTemplate => vec![Action::DeclareTemplate],
            _ => unreachable!("{self:?} is no host operation"),
        })
    }

    /// What the operation does, for an operation the twin cannot model (a shell command, a
    /// by-hand instruction): `plan check` lists it as unverified.
    pub fn unmodelled(&self) -> Option<&str> {
        match self {
            Operation::Shell { run, .. } => Some(run),
            Operation::ByHand { instruction } => Some(instruction),
            _ => None,
        }
    }

    /// Whether running the operation a second time is safe.
    pub fn rerun(&self) -> Rerun {
        match self {
            // A second snapshot of the same name fails; a second move overwrites the backup with
            // the new cert; a second join fails its preflight on a joined node; a second commit
            // has nothing to commit; a second job of one name already exists.
            Operation::VmSnapshot { .. }
            | Operation::BackupKubeadmConfig { .. }
            | Operation::MoveCertAside { .. }
            | Operation::Join { .. }
            | Operation::GitCommit { .. }
            | Operation::RunJob { .. }
            | Operation::Shell { .. } => Rerun::ProbeFirst,
            _ => Rerun::Safe,
        }
    }

    /// What undoes the operation, where one operation does.
    pub fn undo(&self, t: &Topology) -> Option<Operation> {
        let m0 = t.name(t.existing_master()).to_string();
        let direct = format!("https://{}:{}", t.node(t.existing_master()).address, t.apiserver_port());
        match self {
            Operation::KubeletServer { nodes, wait_ready, .. } => {
                Some(Operation::KubeletServer { nodes: nodes.clone(), server: direct, wait_ready: *wait_ready })
            }
            Operation::KubeconfigConsumers { consumers, .. } => {
                Some(Operation::KubeconfigConsumers { consumers: consumers.clone(), server: direct })
            }
            Operation::KubeProxyServer { .. } => Some(Operation::KubeProxyServer { server: direct }),
            Operation::DeclareLbPool { .. } => Some(Operation::DeclareLbPool { pool: vec![m0] }),
            Operation::ConfigStackHosts { .. } => Some(Operation::ConfigStackHosts { hosts: vec![m0] }),
            Operation::Drain { node } => Some(Operation::Uncordon { node: node.clone() }),
            _ => None,
        }
    }
}

/// The nodes an operation's parameters name, looked up in the topology; an error names the
/// operation.
struct Named<'t> {
    t: &'t Topology,
    op: &'static str,
}

impl Named<'_> {
    fn node(&self, name: &str) -> Result<NodeIx, OperationError> {
        node_named(self.t, self.op, name)
    }

    fn master(&self, name: &str) -> Result<NodeIx, OperationError> {
        master_named(self.t, self.op, name)
    }

    fn new_master(&self, name: &str) -> Result<NodeIx, OperationError> {
        let x = self.node(name)?;
        match self.t.node(x).kind {
            NodeKind::NewMaster => Ok(x),
            kind => Err(OperationError::WrongKind { op: self.op, name: name.to_string(), kind: kind_name(kind), needs: "a new master" }),
        }
    }

    /// The masters `names`, as a set.
    fn masters(&self, names: &[String]) -> Result<NodeSet, OperationError> {
        names.iter().try_fold(NodeSet::EMPTY, |set, name| Ok::<_, OperationError>(set.with(self.master(name)?)))
    }
}

/// What the apply of `stack` makes what the infra repo declares.
fn apply_effect(named: &Named<'_>, stack: &IacStack) -> Result<Vec<Action>, OperationError> {
    Ok(match stack {
        IacStack::Dns => vec![Action::AddVipDnsRecord, Action::DeleteStaleDnsRecord],
        IacStack::Template => vec![Action::BumpTemplate],
        IacStack::Vm { node: name } => vec![Action::CreateVm(named.new_master(name)?)],
        IacStack::ConfigStack => vec![Action::ApplyConfigStack],
        IacStack::CronJobs => vec![Action::ApplyCronJobs],
        IacStack::RebootGate => vec![Action::ApplyRebootGate],
        IacStack::UpgradeChain => vec![Action::ApplyUpgradeChain],
        IacStack::Portal => vec![],
    })
}

fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::ExistingMaster => "the existing master",
        NodeKind::NewMaster => "a new master",
        NodeKind::Worker => "a worker",
    }
}

fn node_named(t: &Topology, op: &'static str, name: &str) -> Result<NodeIx, OperationError> {
    t.nodes
        .iter()
        .position(|n| n.name == name)
        .map(|i| NodeIx(i as u8))
        .ok_or_else(|| OperationError::UnknownNode { op, name: name.to_string() })
}

fn master_named(t: &Topology, op: &'static str, name: &str) -> Result<NodeIx, OperationError> {
    let x = node_named(t, op, name)?;
    match t.node(x).kind {
        NodeKind::Worker => Err(OperationError::WrongKind { op, name: name.to_string(), kind: "a worker", needs: "a master" }),
        _ => Ok(x),
    }
}

/// `https://VIP:PORT` or `https://FQDN:PORT` is the VIP; `https://ADDRESS:PORT` a master's apiserver.
fn server_named(t: &Topology, op: &'static str, server: &str) -> Result<Server, OperationError> {
    let e = &t.scenario.control_plane_endpoint;
    if server == e.vip_url() || server == format!("https://{}:{}", e.fqdn, e.port) {
        return Ok(Server::Vip);
    }
    let port = t.apiserver_port();
    let master = t.nodes.iter().position(|n| n.kind != NodeKind::Worker && server == format!("https://{}:{}", n.address, port));
    master.map(|i| Server::Node(NodeIx(i as u8))).ok_or_else(|| OperationError::UnknownServer {
        op,
        server: server.to_string(),
        vip: format!("{}:{}", e.vip, e.port),
    })
}

#[cfg(test)]
mod tests;
