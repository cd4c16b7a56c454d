//! Named invariants: what must hold in every state (safety) or be restored (availability).

use crate::capacity;
use crate::cluster::{Cluster, EtcdData};
use crate::observe;
use crate::topology::Topology;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum InvariantClass {
    /// Must hold in every reachable state, under any fault.
    Safety,
    /// Holds outside declared windows without faults; after a fault, a recovery restores it.
    Availability,
}

/// A property with a name and the reason it matters.
pub struct Invariant {
    pub name: &'static str,
    pub class: InvariantClass,
    pub why: &'static str,
    pub holds: fn(&Cluster, &Topology) -> Result<(), String>,
}

impl std::fmt::Debug for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invariant").field("name", &self.name).finish()
    }
}

fn etcd_data_preserved(c: &Cluster, _: &Topology) -> Result<(), String> {
    match c.etcd_data {
        EtcdData::Intact => Ok(()),
        EtcdData::RestoredFromSnapshot { lost_s } => {
            Err(format!("etcd restored from a snapshot: the last {} of writes are gone", crate::plan::format_duration(lost_s)))
        }
    }
}

fn membership_reversible(c: &Cluster, t: &Topology) -> Result<(), String> {
    let q = observe::quorum(c);
    if q.holds() {
        return Ok(());
    }
    let not_running = c.voters.minus(c.etcd_started);
    match not_running.iter().next() {
        Some(n) => Err(format!(
            "{q}; {} is a voter whose etcd is not running (never started or wiped), and `etcdctl member remove` needs quorum",
            t.name(n)
        )),
        None => Ok(()),
    }
}

fn tls_names_match(c: &Cluster, t: &Topology) -> Result<(), String> {
    let vip_users = c.consumers_vip != 0 || !c.kubelet_vip.and(c.joined).is_empty() || c.kube_proxy_vip;
    if !vip_users {
        return Ok(());
    }
    let serving = c.lb_running.pool.and(c.apiserver_running).and(c.control_plane);
    match serving.minus(c.served_vip).iter().next() {
        Some(n) => Err(format!("clients use the VIP, but {} serves a certificate without the VIP SAN", t.name(n))),
        None => Ok(()),
    }
}

fn lb_backends_uniform(c: &Cluster, t: &Topology) -> Result<(), String> {
    let serving = c.lb_running.pool.and(c.control_plane);
    match serving.minus(c.apiserver_flags).iter().next() {
        Some(n) => {
            let oidc: Vec<&str> = t.consumers.iter().filter(|c| c.oidc).map(|c| c.name.as_str()).collect();
            let who = if oidc.is_empty() { "OIDC users".to_string() } else { oidc.join(", ") };
            Err(format!(
                "{} is in the VIP pool without the apiserver flags ({}): {who} fail intermittently through the VIP",
                t.name(n),
                t.scenario.config_stack.apiserver_flags.join(", ")
            ))
        }
        None => Ok(()),
    }
}

fn hypervisor_ram(c: &Cluster, t: &Topology) -> Result<(), String> {
    for (h, hypervisor) in t.scenario.hypervisors.iter().enumerate() {
        let load = capacity::ram_load(c, t, h);
        if load.committed_gb > load.limit_gb && load.added_gb > 0.0 {
            // The sum as the operator writes it (262 + 32 = 294), and where the plan is heading
            // once every new master exists (262 + 2 x 32 = 326): the figure that deferred it.
            let now: Vec<f64> = capacity::new_masters_on(c, t, h).iter().map(|n| t.node(n).ram_gb.unwrap_or(0.0)).collect();
            let planned = capacity::planned_new_masters_gb(t, h);
            let mut why = format!(
                "{}: {} GB committed, over the {} GB limit ({} GB physical less {}% headroom)",
                hypervisor.name,
                capacity::ram_sum(load.before_gb, &now),
                capacity::gb(load.limit_gb),
                capacity::gb(hypervisor.ram_physical_gb),
                capacity::gb(t.scenario.capacity.ram_headroom_percent),
            );
            if planned.len() > now.len() {
                why.push_str(&format!(
                    "; with every new master: {} GB against {} GB physical",
                    capacity::ram_sum(load.before_gb, &planned),
                    capacity::gb(hypervisor.ram_physical_gb)
                ));
            }
            return Err(why);
        }
    }
    Ok(())
}

fn etcd_quorum(c: &Cluster, _: &Topology) -> Result<(), String> {
    let q = observe::quorum(c);
    if q.holds() {
        Ok(())
    } else {
        Err(q.to_string())
    }
}

fn api_reachable(c: &Cluster, t: &Topology) -> Result<(), String> {
    for (i, consumer) in t.consumers.iter().enumerate() {
        let reach = observe::consumer_reach(c, t, i);
        if !reach.is_ok() {
            return Err(format!("{} ({}): {reach}", consumer.name, consumer.kind.as_str()));
        }
    }
    Ok(())
}

fn nodes_ready(c: &Cluster, t: &Topology) -> Result<(), String> {
    // A node that is down is the fault itself; this asks whether running kubelets reach the API.
    for node in c.joined.and(c.up).iter() {
        let reach = observe::node_ready(c, t, node);
        if reach.is_down() {
            return Err(format!("{} NotReady: {reach}", t.name(node)));
        }
    }
    // `kubeadm reset` and a destroyed VM leave the Node object (kubeadm
    // `cmd/kubeadm/app/cmd/reset.go` never deletes it): it stays NotReady until deleted.
    if let Some(node) = c.stale_nodes.iter().next() {
        return Err(format!("{} NotReady: its Node object outlived its kubelet (kubectl delete node {0})", t.name(node)));
    }
    Ok(())
}

fn kube_proxy_reaches_api(c: &Cluster, t: &Topology) -> Result<(), String> {
    match observe::kube_proxy_reach(c, t) {
        observe::Reach::Ok => Ok(()),
        reach => Err(format!("kube-proxy (kube-system/kube-proxy kubeconfig): {reach}")),
    }
}

fn backup_runs(c: &Cluster, t: &Topology) -> Result<(), String> {
    observe::backup_runs(c, t).map(|_| ())
}

/// Every invariant, safety first.
/// The migration's goal, judged on the state a plan ends in: losing any one master for good
/// leaves etcd with quorum, the API reachable for every consumer, every node that is up Ready
/// and the backup job runnable. Damage a fault does before this point can be blamed on the
/// single master the cluster started with; a plan that ends without reaching this cannot.
pub fn survives_any_master_loss(c: &Cluster, t: &Topology) -> Result<(), String> {
    for master in c.control_plane.iter() {
        let after = crate::fault::Fault::NodeDown { node: master, lasts_s: None }.strike(c, t);
        for inv in INVARIANTS.iter().filter(|i| i.class == InvariantClass::Availability) {
            if let Err(why) = (inv.holds)(&after, t) {
                return Err(format!("losing {} breaks {}: {why}", t.name(master), inv.name));
            }
        }
    }
    Ok(())
}

pub const INVARIANTS: &[Invariant] = &[
    Invariant {
        name: "etcd-data-preserved",
        class: InvariantClass::Safety,
        why: "a restore from snapshot loses every write since it was taken",
        holds: etcd_data_preserved,
    },
    Invariant {
        name: "membership-reversible",
        class: InvariantClass::Safety,
        why: "a membership change must be undoable: member remove needs quorum, a voter that never started can take it away",
        holds: membership_reversible,
    },
    Invariant {
        name: "tls-names-match",
        class: InvariantClass::Safety,
        why: "a client pointed at an endpoint whose certificate lacks the name fails TLS",
        holds: tls_names_match,
    },
    Invariant {
        name: "lb-backends-uniform",
        class: InvariantClass::Safety,
        why: "every backend behind the VIP must behave the same, or requests fail depending on where they land",
        holds: lb_backends_uniform,
    },
    Invariant {
        name: "hypervisor-ram",
        class: InvariantClass::Safety,
        why: "over-committing a hypervisor's RAM ends in swap and the OOM killer",
        holds: hypervisor_ram,
    },
    Invariant {
        name: "etcd-quorum",
        class: InvariantClass::Availability,
        why: "writes stop when fewer than floor(n/2)+1 voters are up",
        holds: etcd_quorum,
    },
    Invariant {
        name: "api-reachable",
        class: InvariantClass::Availability,
        why: "every kubeconfig consumer must reach a ready apiserver and verify its TLS",
        holds: api_reachable,
    },
    Invariant {
        name: "nodes-ready",
        class: InvariantClass::Availability,
        why: "a running kubelet that cannot reach the API makes its node NotReady",
        holds: nodes_ready,
    },
    Invariant {
        name: "kube-proxy-reaches-api",
        class: InvariantClass::Availability,
        why:
            "kube-proxy on every node follows Services through the server its ConfigMap names; cut off, Service changes stop reaching nodes",
        holds: kube_proxy_reaches_api,
    },
    Invariant {
        name: "backup-runs",
        class: InvariantClass::Availability,
        why: "the etcd backup job must be able to run",
        holds: backup_runs,
    },
];

pub fn by_name(name: &str) -> Option<&'static Invariant> {
    INVARIANTS.iter().find(|i| i.name == name)
}

/// The first invariant of `class` that `c` breaks, with the reason.
pub fn first_broken(c: &Cluster, t: &Topology, class: InvariantClass) -> Option<(&'static Invariant, String)> {
    INVARIANTS.iter().filter(|i| i.class == class).find_map(|i| (i.holds)(c, t).err().map(|why| (i, why)))
}

/// Every broken invariant.
pub fn broken(c: &Cluster, t: &Topology) -> Vec<(&'static Invariant, String)> {
    INVARIANTS.iter().filter_map(|i| (i.holds)(c, t).err().map(|why| (i, why))).collect()
}
