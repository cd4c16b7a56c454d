//! The inventory file: what the cluster is today and what it should become, as the operator writes it.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

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
    pub dns: DnsSpec,
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
    #[serde(default)]
    pub cronjobs: Vec<CronJobSpec>,
    /// Operators whose pods the plan looks at after the apiserver's brief outage (0.6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorSpec>,
    pub etcd_backup: EtcdBackupSpec,
    /// The reboot gate (kured) that must learn quorum; absent: nothing reboots masters on its
    /// own, and the plan has no phase for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_gate: Option<RebootGateSpec>,
    /// The version-upgrade chain that lists the masters; absent: the plan has no phase for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_chain: Option<UpgradeChainSpec>,
    pub config_stack: ConfigStackSpec,
    #[serde(default)]
    pub kubeadm: KubeadmSpec,
    pub vm_template: VmTemplateSpec,
    #[serde(default)]
    pub capacity: CapacityPolicy,
    /// The issue that tracks the migration, closed in the last phase.
    #[serde(default)]
    pub tracking_issue: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSpec {
    /// `major.minor`, e.g. "1.34".
    pub version: String,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HypervisorSpec {
    pub name: String,
    pub address: Ipv4Addr,
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
    pub vmid: u32,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSpec {
    pub name: String,
    pub address: Ipv4Addr,
    #[serde(default = "default_lb_user")]
    pub ssh_user: String,
    pub health_check: HealthCheck,
    /// Each run of the bootstrap script tears all frontends down and rebuilds them.
    pub reset_to_declared_state: bool,
    #[serde(default = "default_reset_window")]
    pub reset_window_s: u32,
    #[serde(default = "default_lb_reboot")]
    pub reboot_s: u32,
    pub bootstrap_script: String,
    /// The hypervisor the load balancer runs on, if it is a VM; absent for a separate box.
    #[serde(default)]
    pub hypervisor: Option<String>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    pub zone: String,
    /// The file in the infra repo that holds the zone's records.
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
    /// One `k8s_master_host` variable: the stack can only reach one master.
    Single,
    /// A `k8s_master_hosts` list looped over with `for_each`.
    List,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigStackSpec {
    pub name: String,
    pub path: String,
    pub apiserver_flags: Vec<String>,
    pub hosts: StackHosts,
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
