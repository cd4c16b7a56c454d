//! The cluster's state at one instant: what every machine, member, certificate and config holds.

use crate::topology::{NodeIx, NodeKind, NodeSet, Topology};
use serde::{Deserialize, Serialize};

/// What the load balancer serves, as declared in its bootstrap script or as running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LbConfig {
    /// The apiserver frontend at the VIP exists.
    pub frontend: bool,
    /// Backends in the apiserver pool.
    pub pool: NodeSet,
}

/// Whether etcd still holds everything it ever committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdData {
    Intact,
    /// Restored from a snapshot: writes after the snapshot are gone.
    RestoredFromSnapshot {
        lost_s: u32,
    },
}

/// The whole cluster state. Small and `Copy` so the checker can keep millions of them.
///
/// Liveness is split from configuration: `up` says a machine runs; `etcd_members_started` and
/// `apiserver_running` say what runs on it *when* it is up. Consequences (quorum, readiness,
/// TLS) are never stored: [`crate::observe`] derives them.
///
/// It reads and writes as JSON for the executor's journal, which keeps the twin's state after a
/// write-off (the resume predicts the rest of the plan from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Seconds since the migration started.
    pub clock_s: u32,
    /// VMs that exist.
    pub vm_exists: NodeSet,
    /// Machines that are powered and running.
    pub up: NodeSet,
    /// Hypervisors that are down (bit per hypervisor).
    pub hypervisors_down: u8,
    /// A Proxmox snapshot of the existing master was taken.
    pub vm_snapshot: bool,
    /// Masters cut off from the other masters by a partition.
    pub partitioned: NodeSet,

    /// etcd voting members.
    pub voters: NodeSet,
    /// etcd learners (non-voting, catching up).
    pub learners: NodeSet,
    /// Members whose etcd has started and synced at least once since they were added.
    pub etcd_started: NodeSet,
    pub etcd_data: EtcdData,
    /// Clock time of the newest etcd snapshot (negative: taken before the migration).
    pub last_backup_s: i64,

    /// `apiserver.crt` is on disk.
    pub cert_present: NodeSet,
    /// The on-disk apiserver cert carries the VIP and FQDN SANs.
    pub cert_vip: NodeSet,
    /// The running apiserver serves a cert with the VIP and FQDN SANs.
    pub served_vip: NodeSet,
    /// The old cert/key pair is backed up (`/tmp/apiserver-backup`).
    pub cert_backup: bool,

    /// `kubeadm-config` has `controlPlaneEndpoint` = VIP and the VIP/FQDN `certSANs`.
    pub kubeadm_endpoint: bool,
    /// When `kubeadm init phase upload-certs` last ran.
    pub certs_uploaded_s: Option<u32>,
    /// When the join token was created.
    pub token_s: Option<u32>,
    /// Hosts holding the join command or the certificate key the plan wrote (root-only files).
    pub join_secrets_on: NodeSet,

    /// Nodes with the control-plane static pods (apiserver, etcd, controller-manager, scheduler).
    pub control_plane: NodeSet,
    /// Control-plane nodes whose apiserver starts when the node is up (cert present, manifest valid).
    pub apiserver_running: NodeSet,
    /// Apiservers carrying the config stack's flags (OIDC, audit policy, etcd tuning).
    pub apiserver_flags: NodeSet,
    /// Nodes registered with the cluster.
    pub joined: NodeSet,
    /// Nodes where `kubeadm join --control-plane` wrote its manifests and etcd data dir (from
    /// the member add until `kubeadm reset`): a second join there fails its preflight.
    pub join_files: NodeSet,
    /// Master VMs the template's first boot joined as workers.
    pub joined_as_worker: NodeSet,
    /// VMs built from a template whose kubeadm and kubelet differ from the cluster's version.
    pub old_kubeadm: NodeSet,
    /// Nodes whose kubelet.conf points at the VIP.
    pub kubelet_vip: NodeSet,
    /// Control-plane nodes whose kubelet.conf points at their own apiserver (kubeadm's
    /// `ControlPlaneKubeletLocalMode`); a node in neither set points at the existing master.
    pub kubelet_local: NodeSet,
    /// Node objects whose kubelet is gone (`kubeadm reset` or a destroyed VM leaves them,
    /// NotReady, until `kubectl delete node`).
    pub stale_nodes: NodeSet,
    /// Machines written off while down for good ([`crate::action::Action::WriteOff`]): their
    /// Node objects deleted, the plan going on without them; what their disks hold stays there
    /// until they are wiped.
    pub written_off: NodeSet,
    /// Machines a fault took down for good (a crash they do not come back from): no boot starts
    /// them again, the plan's own (a planned reboot) included. Absent from a journal written
    /// before it was modelled: none.
    #[serde(default)]
    pub broken: NodeSet,
    /// kube-proxy's kubeconfig (the `kube-proxy` ConfigMap) names the VIP; else the existing
    /// master's address it was rendered with at `kubeadm init`.
    pub kube_proxy_vip: bool,

    pub lb_up: bool,
    /// The VIP is reserved as an alias on the load balancer's interface.
    pub vip_alias: bool,
    pub lb_declared: LbConfig,
    pub lb_running: LbConfig,
    /// Masters running the VIP's daemon (keepalived and HAProxy, or the kube-vip static pod):
    /// the machines that can hold the VIP when it lives on the masters.
    pub vip_daemons: NodeSet,

    /// DNS A record FQDN -> VIP exists.
    pub dns_vip: bool,
    /// The infra repo declares the VIP's record (applied by the DNS stack's apply).
    pub dns_vip_declared: bool,
    /// The infra repo declares the stale records' deletion (applied by the DNS stack's apply).
    pub dns_stale_deletion_declared: bool,
    /// The stale per-master record still exists.
    pub dns_stale: bool,

    /// Consumers (bit per consumer) whose server is the VIP.
    pub consumers_vip: u64,

    /// The VM template installs the cluster's kubeadm version.
    pub template_version_ok: bool,
    /// The infra repo declares the template's bump (applied by the template stack's apply).
    pub template_declared: bool,
    /// New masters whose VM module the infra repo declares (created by the VM's apply).
    pub vm_declared: NodeSet,
    /// The VM template skips the worker join command for masters.
    pub template_master_safe: bool,
    /// The config stack loops over a list of master hosts (as applied).
    pub stack_list: bool,
    /// The infra repo declares the config stack as a loop over a list of masters.
    pub stack_list_declared: bool,
    /// Hosts the config stack applies apiserver flags on (as applied).
    pub stack_hosts: NodeSet,
    /// Hosts the infra repo's config stack lists.
    pub stack_hosts_declared: NodeSet,
    /// The etcd CronJobs select any control-plane node instead of a pinned one (as applied).
    pub cronjobs_any_master: bool,
    /// The infra repo declares the CronJobs on any control-plane node.
    pub cronjobs_declared_any_master: bool,
    /// The reboot gate checks control-plane quorum (as applied).
    pub gate_quorum: bool,
    /// The infra repo declares the reboot gate's quorum check.
    pub gate_declared_quorum: bool,
    /// The upgrade chain discovers masters and loops over them with a quorum check (as applied).
    pub chain_all_masters: bool,
    /// The infra repo declares the chain's loop over the discovered masters.
    pub chain_loop_declared: bool,
    /// The infra repo declares the chain's preflight and master phase on any control-plane node.
    pub chain_any_master_declared: bool,
}

impl Cluster {
    /// The cluster as the scenario describes it before the migration.
    pub fn initial(t: &Topology) -> Cluster {
        let s = &t.scenario;
        let master = NodeSet::of(t.existing_master());
        let existing = t
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind != NodeKind::NewMaster)
            .fold(NodeSet::EMPTY, |set, (i, _)| set.with(NodeIx(i as u8)));
        let joins_masters = s.vm_template.as_ref().is_some_and(|v| v.join_command_for_masters);
        Cluster {
            clock_s: 0,
            vm_exists: existing,
            up: existing,
            hypervisors_down: 0,
            vm_snapshot: false,
            partitioned: NodeSet::EMPTY,
            voters: master,
            learners: NodeSet::EMPTY,
            etcd_started: master,
            etcd_data: EtcdData::Intact,
            last_backup_s: -(s.etcd_backup.age_h as i64) * 3600,
            cert_present: master,
            cert_vip: NodeSet::EMPTY,
            served_vip: NodeSet::EMPTY,
            cert_backup: false,
            kubeadm_endpoint: false,
            certs_uploaded_s: None,
            token_s: None,
            join_secrets_on: NodeSet::EMPTY,
            control_plane: master,
            apiserver_running: master,
            apiserver_flags: master,
            joined: existing,
            join_files: NodeSet::EMPTY,
            joined_as_worker: NodeSet::EMPTY,
            old_kubeadm: NodeSet::EMPTY,
            kubelet_vip: NodeSet::EMPTY,
            // The existing master's kubelet already names its own address.
            kubelet_local: master,
            stale_nodes: NodeSet::EMPTY,
            written_off: NodeSet::EMPTY,
            broken: NodeSet::EMPTY,
            kube_proxy_vip: false,
            lb_up: true,
            vip_alias: false,
            lb_declared: LbConfig::default(),
            lb_running: LbConfig::default(),
            vip_daemons: NodeSet::EMPTY,
            dns_vip: false,
            dns_vip_declared: false,
            dns_stale_deletion_declared: false,
            dns_stale: s.dns.records.iter().any(|r| r.stale),
            consumers_vip: 0,
            template_version_ok: t.template_version == t.version,
            template_declared: t.template_version == t.version && !joins_masters,
            vm_declared: existing,
            template_master_safe: !joins_masters,
            stack_list: t.stack_starts_as_list(),
            stack_list_declared: t.stack_starts_as_list(),
            stack_hosts: master,
            stack_hosts_declared: master,
            cronjobs_any_master: s.cronjobs.iter().all(|j| j.pinned_to.is_none()),
            cronjobs_declared_any_master: s.cronjobs.iter().all(|j| j.pinned_to.is_none()),
            // No gate: nothing reboots a master on its own. No chain: nothing upgrades them.
            gate_quorum: s.reboot_gate.as_ref().is_none_or(|g| g.control_plane_quorum_check),
            gate_declared_quorum: s.reboot_gate.as_ref().is_none_or(|g| g.control_plane_quorum_check),
            chain_all_masters: s.upgrade_chain.is_none(),
            chain_loop_declared: s.upgrade_chain.is_none(),
            chain_any_master_declared: s.upgrade_chain.is_none(),
        }
    }

    pub fn consumer_on_vip(&self, consumer: usize) -> bool {
        self.consumers_vip & (1 << consumer) != 0
    }

    pub fn members(&self) -> NodeSet {
        self.voters.or(self.learners)
    }
}

/// A state hashes as its words: each set of nodes, each time and count, and every flag packed
/// into one word, where a derived hash fed each flag on its own (the exploration hashes a state
/// at every step boundary a run passes, millions at depth 3: 35 words instead of some 60). Every field
/// is named, so a field added to the state and not hashed does not compile.
impl std::hash::Hash for Cluster {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let Cluster {
            clock_s,
            vm_exists,
            up,
            hypervisors_down,
            vm_snapshot,
            partitioned,
            voters,
            learners,
            etcd_started,
            etcd_data,
            last_backup_s,
            cert_present,
            cert_vip,
            served_vip,
            cert_backup,
            kubeadm_endpoint,
            certs_uploaded_s,
            token_s,
            join_secrets_on,
            control_plane,
            apiserver_running,
            apiserver_flags,
            joined,
            join_files,
            joined_as_worker,
            old_kubeadm,
            kubelet_vip,
            kubelet_local,
            stale_nodes,
            written_off,
            broken,
            kube_proxy_vip,
            lb_up,
            vip_alias,
            lb_declared,
            lb_running,
            vip_daemons,
            dns_vip,
            dns_vip_declared,
            dns_stale_deletion_declared,
            dns_stale,
            consumers_vip,
            template_version_ok,
            template_declared,
            vm_declared,
            template_master_safe,
            stack_list,
            stack_list_declared,
            stack_hosts,
            stack_hosts_declared,
            cronjobs_any_master,
            cronjobs_declared_any_master,
            gate_quorum,
            gate_declared_quorum,
            chain_all_masters,
            chain_loop_declared,
            chain_any_master_declared,
        } = *self;
        let (LbConfig { frontend: declared_frontend, pool: declared_pool }, LbConfig { frontend: running_frontend, pool: running_pool }) =
            (lb_declared, lb_running);
        let flags = [
            vm_snapshot,
            cert_backup,
            kubeadm_endpoint,
            kube_proxy_vip,
            lb_up,
            vip_alias,
            declared_frontend,
            running_frontend,
            dns_vip,
            dns_vip_declared,
            dns_stale_deletion_declared,
            dns_stale,
            template_version_ok,
            template_declared,
            template_master_safe,
            stack_list,
            stack_list_declared,
            cronjobs_any_master,
            cronjobs_declared_any_master,
            gate_quorum,
            gate_declared_quorum,
            chain_all_masters,
            chain_loop_declared,
            chain_any_master_declared,
        ]
        .iter()
        .enumerate()
        .fold(u64::from(hypervisors_down) << 56, |word, (i, &flag)| word | u64::from(flag) << i);
        // A time or an amount that may be absent: present ones carry bit 32.
        let maybe = |at: Option<u32>| at.map_or(0, |at| 1 << 32 | u64::from(at));
        let etcd = match etcd_data {
            EtcdData::Intact => 0,
            EtcdData::RestoredFromSnapshot { lost_s } => 1 << 32 | u64::from(lost_s),
        };
        let sets = [
            vm_exists,
            up,
            partitioned,
            voters,
            learners,
            etcd_started,
            cert_present,
            cert_vip,
            served_vip,
            join_secrets_on,
            control_plane,
            apiserver_running,
            apiserver_flags,
            joined,
            join_files,
            joined_as_worker,
            old_kubeadm,
            kubelet_vip,
            kubelet_local,
            stale_nodes,
            written_off,
            broken,
            declared_pool,
            running_pool,
            vip_daemons,
            vm_declared,
            stack_hosts,
            stack_hosts_declared,
        ];
        for word in [u64::from(clock_s), flags, last_backup_s as u64, maybe(certs_uploaded_s), maybe(token_s), etcd, consumers_vip] {
            h.write_u64(word);
        }
        for set in sets {
            h.write_u64(set.0);
        }
    }
}

/// A far-future clock for fingerprints: timestamps become "this far before now".
const FINGERPRINT_NOW_S: u32 = 1 << 30;

impl Cluster {
    /// The state with time abstracted: the clock dropped, every timestamp turned into an age
    /// capped where it stops mattering (a TTL, the backup age limit). Two states with the same
    /// fingerprint behave the same from here on, so the checker explores only one of them.
    pub fn fingerprint(&self, t: &Topology) -> Cluster {
        let ttl_certs = t.scenario.kubeadm.certs_ttl_min * 60;
        let ttl_token = t.scenario.kubeadm.token_ttl_h * 3600;
        let age = |at: Option<u32>, cap: u32| at.map(|at| FINGERPRINT_NOW_S - (self.clock_s - at).min(cap));
        // Only "fresh or not" matters to behaviour (the pre-flight check); the exact age only
        // to the loss figure of a restore.
        let backup_age = if self.clock_s as i64 - self.last_backup_s <= crate::action::BACKUP_AGE_MAX_S {
            0
        } else {
            crate::action::BACKUP_AGE_MAX_S + 1
        };
        Cluster {
            clock_s: FINGERPRINT_NOW_S,
            certs_uploaded_s: age(self.certs_uploaded_s, ttl_certs),
            token_s: age(self.token_s, ttl_token),
            last_backup_s: FINGERPRINT_NOW_S as i64 - backup_age,
            etcd_data: match self.etcd_data {
                EtcdData::Intact => EtcdData::Intact,
                EtcdData::RestoredFromSnapshot { .. } => EtcdData::RestoredFromSnapshot { lost_s: 0 },
            },
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{DefaultHasher, Hash, Hasher};

    fn hashed(c: &Cluster) -> u64 {
        let mut h = DefaultHasher::new();
        c.hash(&mut h);
        h.finish()
    }

    /// Every field of the state, nested ones too, changes its hash, each in its own way: the
    /// hand-written hash packs the flags into one word, and a flag put on another's bit, or a
    /// field left out, would let two states the exploration must tell apart share a key. Each
    /// field is changed on its own through the state's JSON (a flag negated, a number or set
    /// moved, an absent time made present, the etcd data restored) and read back; the initial
    /// state and the 58 states so changed hash to 59 different values.
    #[test]
    fn every_field_of_the_state_changes_its_hash() {
        let t = Topology::new(&crate::validate::parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("valid"));
        let base = Cluster::initial(&t);
        let json = serde_json::to_value(base).expect("a state writes as JSON");
        let mut hashes = std::collections::BTreeMap::from([(hashed(&base), vec!["(none)".to_string()])]);
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (key, value) in json.as_object().expect("an object") {
            match value {
                serde_json::Value::Object(inner) => paths.extend(inner.keys().map(|k| vec![key.clone(), k.clone()])),
                _ => paths.push(vec![key.clone()]),
            }
        }
        for path in paths {
            let mut edited = json.clone();
            let slot = path.iter().fold(&mut edited, |v, k| &mut v[k.as_str()]);
            *slot = match slot.take() {
                serde_json::Value::Bool(b) => serde_json::Value::Bool(!b),
                serde_json::Value::Number(n) if n.as_i64().is_some() => serde_json::json!(n.as_i64().unwrap_or_default() ^ 1),
                serde_json::Value::Null => serde_json::json!(5),
                serde_json::Value::String(_) => serde_json::json!({ "restored-from-snapshot": { "lost_s": 7 } }),
                other => panic!("{path:?}: {other} not edited"),
            };
            let other: Cluster = serde_json::from_value(edited).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert_ne!(other, base, "{path:?}");
            hashes.entry(hashed(&other)).or_default().push(path.join("."));
        }
        let shared: Vec<_> = hashes.values().filter(|changed| changed.len() > 1).collect();
        assert!(shared.is_empty(), "states that hash alike: {shared:?}");
        assert!(hashes.len() >= 59, "{} fields changed", hashes.len() - 1);
    }
}
