//! The inventory file: what the cluster is today and what it should become, as the operator writes it.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

impl Scenario {
    /// The apiserver flags the config stack sets (none without a config stack).
    pub fn apiserver_flags(&self) -> &[String] {
        self.config_stack.as_ref().map_or(&[], |c| c.apiserver_flags.as_slice())
    }
    pub fn iac_kind(&self) -> IacKind {
        self.iac.as_ref().map_or(IacKind::None, |i| i.kind)
    }
    /// How DNS changes are made, with `iac` meaning by hand where there is no IaC.
    pub fn dns_via(&self) -> DnsVia {
        match self.dns.via {
            DnsVia::Iac if self.iac_kind() == IacKind::None => DnsVia::ByHand,
            via => via,
        }
    }
    /// The name ssh and the checks use for a node: `NAME.ZONE`, or its address without DNS.
    pub fn host_name(&self, name: &str, address: Ipv4Addr) -> String {
        if self.dns.via == DnsVia::None {
            address.to_string()
        } else {
            format!("{name}.{}", self.dns.zone)
        }
    }
}

/// A whole scenario (inventory) as read from YAML. Validated by [`crate::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub kubernetes: KubernetesSpec,
    /// Where the infra repository (kubeconfigs, CI files, stacks) lives on the operator's machine.
    pub infra_repo: String,
    /// The SSH user for cluster nodes.
    pub ssh_user: String,
    pub hypervisors: Vec<HypervisorSpec>,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub new_masters: Vec<NewMasterSpec>,
    pub target: TargetSpec,
    pub control_plane_endpoint: EndpointSpec,
    pub load_balancer: LoadBalancerSpec,
    #[serde(default)]
    pub metallb_pool: Option<AddressRange>,
    /// The endpoint's DNS; absent: none (`via: none`).
    #[serde(default = "no_dns")]
    pub dns: DnsSpec,
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
    #[serde(default)]
    pub cronjobs: Vec<CronJobSpec>,
    /// Operators whose pods the plan looks at after the apiserver's brief outage (0.6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorSpec>,
    pub etcd_backup: EtcdBackupSpec,
    /// The infra repo's IaC tool; absent: none, and declared changes are by-hand steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iac: Option<IacSpec>,
    /// The reboot gate (kured) that must learn quorum; absent: nothing reboots masters on its
    /// own, and the plan has no phase for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_gate: Option<RebootGateSpec>,
    /// The version-upgrade chain that lists the masters; absent: the plan has no phase for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_chain: Option<UpgradeChainSpec>,
    /// The IaC stack that puts apiserver flags on the masters it lists; absent: the flags live
    /// in kubeadm-config (`apiServer.extraArgs`) and every join renders them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_stack: Option<ConfigStackSpec>,
    #[serde(default)]
    pub kubeadm: KubeadmSpec,
    /// The template new master VMs are built from; absent: the machines come without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_template: Option<VmTemplateSpec>,
    #[serde(default)]
    pub capacity: CapacityPolicy,
    /// The issue that tracks the migration, closed in the last phase.
    #[serde(default)]
    pub tracking_issue: Option<String>,
    /// The command that closes it, with `{issue}` where its id goes (`bd close {issue}`);
    /// absent: closing it is a by-hand step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_issue_command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSpec {
    /// `major.minor`, e.g. "1.34".
    pub version: String,
    /// The port kube-apiserver listens on, on every master; absent: the endpoint's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apiserver_port: Option<u16>,
    #[serde(default)]
    pub etcd_learner_mode: LearnerModeSetting,
}

/// Whether `kubeadm join --control-plane` adds the etcd member as a learner first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearnerModeSetting {
    /// Follow the Kubernetes version: default on from 1.29, locked on from 1.32.
    #[default]
    Auto,
    On,
    Off,
}

/// What runs the machines: the environment's hypervisor profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HypervisorKind {
    /// Proxmox VE: `qm` on the host, VMs by id.
    #[default]
    Proxmox,
    /// libvirt: `virsh` on the host, domains by the node's name.
    Libvirt,
    /// None the plan drives: the operator provides the machines (bare metal or a cloud), and
    /// every VM operation is a by-hand step with the check that confirms it.
    None,
}

impl HypervisorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HypervisorKind::Proxmox => "proxmox",
            HypervisorKind::Libvirt => "libvirt",
            HypervisorKind::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypervisorSpec {
    pub name: String,
    #[serde(default)]
    pub kind: HypervisorKind,
    /// The host's address, for `qm` or `virsh` over SSH; none for `kind: none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// The SSH user there; `qm` and a system libvirt need root.
    #[serde(default = "default_hypervisor_user")]
    pub ssh_user: String,
    pub ram_physical_gb: f64,
    /// RAM already allocated to VMs on this host, the inventory's nodes on it included.
    pub ram_allocated_gb: f64,
    #[serde(default)]
    pub swap_used_gb: f64,
    /// Physical cores, when known; vCPU commitment is reported against it.
    #[serde(default)]
    pub cpus_physical: Option<u32>,
    /// vCPUs already allocated to VMs on this host, when known.
    #[serde(default)]
    pub vcpu_allocated: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    pub role: NodeRole,
    pub address: Ipv4Addr,
    #[serde(default)]
    pub vmid: Option<u32>,
    pub hypervisor: String,
    #[serde(default)]
    pub vcpu: Option<u32>,
    #[serde(default)]
    pub ram_gb: Option<f64>,
    #[serde(default)]
    pub disk_gb: Option<u32>,
    /// Measured memory use, for sizing advice.
    #[serde(default)]
    pub ram_used_gb: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMasterSpec {
    pub name: String,
    pub address: Ipv4Addr,
    /// The VM id Proxmox creates it with; only a Proxmox hypervisor needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    pub hypervisor: String,
    pub vcpu: u32,
    pub ram_gb: f64,
    pub disk_gb: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub control_plane_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub vip: Ipv4Addr,
    pub fqdn: String,
    #[serde(default = "default_port")]
    pub port: u16,
}

impl EndpointSpec {
    /// The VIP's URL, as a kubeconfig's `server` and the plan's operations name it.
    pub fn vip_url(&self) -> String {
        format!("https://{}:{}", self.vip, self.port)
    }
}

fn default_port() -> u16 {
    6443
}

/// How the load balancer decides a backend is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthCheck {
    /// A TCP connect: listener up counts as healthy, ready or not.
    Tcp,
    /// HTTPS `GET /readyz` with `verify none`: only a ready apiserver is healthy.
    HttpsReadyz,
}

impl HealthCheck {
    /// The check as the pfSense HAProxy package's pool options say it (`build_pool_https()` in
    /// the bootstrap script): what the plan tells the operator to declare, and what the lab's
    /// stand-in of that script reads.
    pub fn pfsense_pool_options(self) -> &'static str {
        match self {
            HealthCheck::HttpsReadyz => "check_type='HTTP', monitor_uri='/readyz', ssl='yes', sslverify='no'",
            HealthCheck::Tcp => "check_type='TCP'",
        }
    }
}

/// What serves the VIP: the environment's load balancer profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LbKind {
    /// HAProxy on a pfSense box, driven by a bootstrap script run over SSH (the homelab's).
    #[default]
    PfsenseBootstrap,
    /// HAProxy on a Linux box: a config file, `haproxy -c`, a graceful `systemctl reload`.
    Haproxy,
    /// keepalived and HAProxy on every master: VRRP moves the VIP between masters.
    Keepalived,
    /// kube-vip static pods on the masters: the leader holds the VIP (ARP), no pool.
    KubeVip,
}

impl LbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LbKind::PfsenseBootstrap => "pfsense-bootstrap",
            LbKind::Haproxy => "haproxy",
            LbKind::Keepalived => "keepalived",
            LbKind::KubeVip => "kube-vip",
        }
    }
    /// The VIP lives on the masters themselves: no separate load balancer machine.
    pub fn on_masters(self) -> bool {
        matches!(self, LbKind::Keepalived | LbKind::KubeVip)
    }
    /// HAProxy balances over a pool of masters (not kube-vip, which sends to the leader).
    pub fn has_pool(self) -> bool {
        self != LbKind::KubeVip
    }
    /// Seconds the VIP is unanswered when its holder dies: VRRP's master-down interval
    /// (3 x advert_int 1 s + skew) for keepalived, the leader lease (5 s) for kube-vip.
    pub fn default_failover_s(self) -> u32 {
        match self {
            LbKind::Keepalived => 4,
            LbKind::KubeVip => 5,
            LbKind::PfsenseBootstrap | LbKind::Haproxy => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSpec {
    #[serde(default)]
    pub kind: LbKind,
    /// The load balancer machine's name; for keepalived and kube-vip, the name of the VIP's
    /// daemon (default: the kind).
    #[serde(default)]
    pub name: String,
    /// The load balancer machine's address; none for keepalived and kube-vip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    #[serde(default = "default_lb_user")]
    pub ssh_user: String,
    #[serde(default = "default_health_check")]
    pub health_check: HealthCheck,
    /// Each run of the bootstrap script tears all frontends down and rebuilds them.
    #[serde(default)]
    pub reset_to_declared_state: bool,
    #[serde(default = "default_reset_window")]
    pub reset_window_s: u32,
    #[serde(default = "default_lb_reboot")]
    pub reboot_s: u32,
    /// pfsense-bootstrap: the bootstrap script in the infra repo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_script: Option<String>,
    /// haproxy, keepalived: the HAProxy config file in the infra repo, copied to the machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// keepalived, kube-vip: the masters' network interface that carries the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// keepalived, kube-vip: seconds the VIP goes unanswered when its holder dies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_s: Option<u32>,
    /// kube-vip: the image tag of `ghcr.io/kube-vip/kube-vip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_vip_version: Option<String>,
    /// The hypervisor the load balancer runs on, if it is a VM; absent for a separate box.
    #[serde(default)]
    pub hypervisor: Option<String>,
}

impl LoadBalancerSpec {
    /// The separate load balancer machine's address (none when the VIP lives on the masters).
    pub fn machine_address(&self) -> Option<Ipv4Addr> {
        if self.kind.on_masters() {
            None
        } else {
            self.address
        }
    }
    pub fn failover_s(&self) -> u32 {
        self.failover_s.unwrap_or(self.kind.default_failover_s())
    }
    /// A deploy bounces every frontend (pfSense's bootstrap script resets to its declared state).
    pub fn deploy_bounces(&self) -> bool {
        self.kind == LbKind::PfsenseBootstrap && self.reset_to_declared_state
    }
    pub fn bootstrap_script(&self) -> &str {
        self.bootstrap_script.as_deref().unwrap_or("the bootstrap script")
    }
    pub fn config_file(&self) -> &str {
        self.config.as_deref().unwrap_or("haproxy/haproxy.cfg")
    }
    pub fn interface(&self) -> &str {
        self.interface.as_deref().unwrap_or("eth0")
    }
}

fn default_health_check() -> HealthCheck {
    HealthCheck::HttpsReadyz
}
fn default_lb_user() -> String {
    "admin".to_string()
}
fn default_reset_window() -> u32 {
    5
}
fn default_lb_reboot() -> u32 {
    180
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl AddressRange {
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.first <= address && address <= self.last
    }
}

/// How the infra repo's declarations become live: the environment's IaC profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IacKind {
    /// No IaC: a change the plan would declare is a by-hand step with its check.
    #[default]
    None,
    /// A terragrunt (or terraform) repo: an edit declares, `apply` makes it live.
    Terragrunt,
}

/// The infra repo's IaC tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IacSpec {
    #[serde(default)]
    pub kind: IacKind,
    /// The command that applies a stack: run in the stack's directory with `-target=…` added
    /// where one module is meant; a wrapper that takes the stack or target as an argument writes
    /// `{stack}` where it goes (`scripts/tg apply {stack}`). `destroy` replaces `apply` for a
    /// rollback. Unattended runs need it to apply without asking (`-auto-approve`).
    #[serde(default = "default_iac_apply")]
    pub apply: String,
    /// The file that declares the VMs (one module per VM, named after the node).
    #[serde(default = "default_vms")]
    pub vms: String,
    /// The `-target` that applies the DNS records, if the DNS stack is shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_target: Option<String>,
    /// The `-target` that applies the VM template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_target: Option<String>,
}

fn no_dns() -> DnsSpec {
    DnsSpec { via: DnsVia::None, zone: String::new(), source: String::new(), records: Vec::new() }
}

fn default_iac_apply() -> String {
    "terragrunt apply -auto-approve".to_string()
}
fn default_vms() -> String {
    "main.tf".to_string()
}

/// How the endpoint's DNS records are changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsVia {
    /// The records live in the infra repo (`source`) and the IaC apply serves them; by hand
    /// when there is no IaC.
    #[default]
    Iac,
    /// The operator changes the DNS server by hand; the plan checks the answer.
    ByHand,
    /// No DNS for the API: nothing names the endpoint, and machines are reached by address.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    #[serde(default)]
    pub via: DnsVia,
    #[serde(default)]
    pub zone: String,
    /// The file in the infra repo that holds the zone's records.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub records: Vec<DnsRecordSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecordSpec {
    pub name: String,
    pub address: Ipv4Addr,
    /// A record the migration must delete (it points at a single master by a generic name).
    #[serde(default)]
    pub stale: bool,
    #[serde(default)]
    pub line: Option<u32>,
}

/// Who uses a kubeconfig-style server URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerKind {
    Kubeconfig,
    CiPipeline,
    UserPortal,
    JoinCommand,
}

impl ConsumerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerKind::Kubeconfig => "kubeconfig",
            ConsumerKind::CiPipeline => "ci-pipeline",
            ConsumerKind::UserPortal => "user-portal",
            ConsumerKind::JoinCommand => "join-command",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub name: String,
    pub kind: ConsumerKind,
    /// Path inside the infra repo.
    pub path: String,
    #[serde(default)]
    pub line: Option<u32>,
    /// The server URL it uses today, `https://ADDRESS:PORT`.
    pub server: String,
    /// Its users authenticate with OIDC (so every apiserver behind the VIP needs the OIDC flags).
    #[serde(default)]
    pub oidc: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronJobSpec {
    pub name: String,
    /// Its namespace; none: the kubeconfig's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `node_name` pin, if any.
    #[serde(default)]
    pub pinned_to: Option<String>,
    pub path: String,
    #[serde(default)]
    pub line: Option<u32>,
    /// This job takes the etcd backup.
    #[serde(default)]
    pub backup: bool,
}

/// An operator running in the cluster, found by namespace and (optionally) a label selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSpec {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdBackupSpec {
    pub path: String,
    /// Age of the newest snapshot when the migration starts.
    pub age_h: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootGateSpec {
    pub name: String,
    /// The namespace its DaemonSet runs in.
    #[serde(default = "default_gate_namespace")]
    pub namespace: String,
    pub path: String,
    pub control_plane_quorum_check: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeChainSpec {
    pub path: String,
    pub masters: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackHosts {
    /// One host variable (`host_variable`): the stack can only reach one master.
    Single,
    /// A list of hosts (`host_variable` + `s`) looped over with `for_each`.
    List,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigStackSpec {
    pub name: String,
    pub path: String,
    pub apiserver_flags: Vec<String>,
    pub hosts: StackHosts,
    /// The stack's variable that names the master host; its list form adds an `s`
    /// (`k8s_master_host` -> `k8s_master_hosts`).
    #[serde(default = "default_host_variable")]
    pub host_variable: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeadmSpec {
    #[serde(default = "default_certs_ttl")]
    pub certs_ttl_min: u32,
    #[serde(default = "default_token_ttl")]
    pub token_ttl_h: u32,
}

impl Default for KubeadmSpec {
    fn default() -> Self {
        KubeadmSpec { certs_ttl_min: default_certs_ttl(), token_ttl_h: default_token_ttl() }
    }
}

fn default_gate_namespace() -> String {
    "kube-system".to_string()
}

fn default_hypervisor_user() -> String {
    "root".to_string()
}

fn default_host_variable() -> String {
    "master_host".to_string()
}

fn default_certs_ttl() -> u32 {
    120
}
fn default_token_ttl() -> u32 {
    24
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmTemplateSpec {
    pub name: String,
    pub kubernetes_version: String,
    /// The template's first boot runs the worker join command even on a master VM.
    pub join_command_for_masters: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityPolicy {
    /// RAM to keep free on every hypervisor, as a share of physical RAM.
    #[serde(default = "default_headroom")]
    pub ram_headroom_percent: f64,
    /// RAM to keep free inside a master above its measured use, as a share of the master's RAM:
    /// etcd compaction, upgrades and watch caches need room, so sizing advice never sizes a
    /// master to its measured use alone.
    #[serde(default = "default_master_headroom")]
    pub master_ram_headroom_percent: f64,
    /// vCPUs allowed per physical core on a hypervisor. vCPU over-commit is normal, so it is
    /// only judged when the operator states a limit; otherwise it is reported, not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu_per_core_max: Option<f64>,
    /// Judge the revisit triggers the source plan set when it deferred hardware HA (a second
    /// hypervisor, right-sized masters, RAM freed, upgrade nursing): a homelab's own list, off
    /// unless asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revisit_triggers: bool,
}

impl Default for CapacityPolicy {
    fn default() -> Self {
        CapacityPolicy {
            ram_headroom_percent: default_headroom(),
            master_ram_headroom_percent: default_master_headroom(),
            vcpu_per_core_max: None,
            revisit_triggers: false,
        }
    }
}

fn default_headroom() -> f64 {
    5.0
}
fn default_master_headroom() -> f64 {
    40.0
}
