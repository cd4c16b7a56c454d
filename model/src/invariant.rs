//! Named invariants: what must hold in every state (safety) or be restored (availability).

use crate::capacity;
use crate::cluster::{Cluster, EtcdData};
use crate::observe;
use crate::topology::{NodeIx, Topology};
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
///
/// Both functions read the same culprit (the node, hypervisor or consumer at fault), so they
/// agree by construction: `broken` answers without words (the exploration asks it of every
/// state it reaches), `explain` builds the message, asked only for a break that is reported.
pub struct Invariant {
    pub name: &'static str,
    pub class: InvariantClass,
    pub why: &'static str,
    /// Whether the state breaks the invariant; builds no message.
    pub broken: fn(&Cluster, &Topology) -> bool,
    /// Why the state breaks it, or `None` where it holds.
    pub explain: fn(&Cluster, &Topology) -> Option<String>,
}

impl Invariant {
    /// `Err(why)` where `c` breaks the invariant. Builds the message: where only the verdict
    /// matters, ask [`Invariant::broken`].
    pub fn holds(&self, c: &Cluster, t: &Topology) -> Result<(), String> {
        match (self.explain)(c, t) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invariant").field("name", &self.name).finish()
    }
}

fn data_lost(c: &Cluster) -> Option<u32> {
    match c.etcd_data {
        EtcdData::Intact => None,
        EtcdData::RestoredFromSnapshot { lost_s } => Some(lost_s),
    }
}

fn explain_data_lost(c: &Cluster, _: &Topology) -> Option<String> {
    data_lost(c)
        .map(|lost_s| format!("etcd restored from a snapshot: the last {} of writes are gone", crate::plan::format_duration(lost_s)))
}

/// A voter whose etcd is not running while quorum is lost: its member cannot be removed.
fn irreversible_voter(c: &Cluster) -> Option<NodeIx> {
    // Every voter's etcd started is the common case and needs no quorum count (checked after
    // every transition of the exploration).
    let never_started = c.voters.minus(c.etcd_started);
    if never_started.is_empty() || observe::quorum(c).holds() {
        return None;
    }
    never_started.iter().next()
}

fn explain_irreversible_voter(c: &Cluster, t: &Topology) -> Option<String> {
    irreversible_voter(c).map(|n| {
        format!(
            "{}; {} is a voter whose etcd is not running (never started or wiped), and `etcdctl member remove` needs quorum",
            observe::quorum(c),
            t.name(n)
        )
    })
}

/// A backend serving the VIP's clients a certificate without the VIP SAN.
fn vip_without_san(c: &Cluster) -> Option<NodeIx> {
    let vip_users = c.consumers_vip != 0 || !c.kubelet_vip.and(c.joined).is_empty() || c.kube_proxy_vip;
    if !vip_users {
        return None;
    }
    let serving = c.lb_running.pool.and(c.apiserver_running).and(c.control_plane);
    serving.minus(c.served_vip).iter().next()
}

fn explain_vip_without_san(c: &Cluster, t: &Topology) -> Option<String> {
    vip_without_san(c).map(|n| format!("clients use the VIP, but {} serves a certificate without the VIP SAN", t.name(n)))
}

/// A backend in the VIP pool without the config stack's apiserver flags.
fn backend_without_flags(c: &Cluster) -> Option<NodeIx> {
    c.lb_running.pool.and(c.control_plane).minus(c.apiserver_flags).iter().next()
}

fn explain_backend_without_flags(c: &Cluster, t: &Topology) -> Option<String> {
    backend_without_flags(c).map(|n| {
        let oidc: Vec<&str> = t.consumers.iter().filter(|c| c.oidc).map(|c| c.name.as_str()).collect();
        let who = if oidc.is_empty() { "OIDC users".to_string() } else { oidc.join(", ") };
        format!(
            "{} is in the VIP pool without the apiserver flags ({}): {who} fail intermittently through the VIP",
            t.name(n),
            t.scenario.apiserver_flags().join(", ")
        )
    })
}

/// A hypervisor whose RAM the new masters over-commit.
fn over_committed_hypervisor(c: &Cluster, t: &Topology) -> Option<usize> {
    // No new master that can over-commit its hypervisor exists (where every hypervisor fits all
    // of its new masters: always): no load is summed.
    if t.ram_at_risk.and(c.vm_exists).is_empty() {
        return None;
    }
    over_committed_summed(c, t)
}

/// [`over_committed_hypervisor`], each hypervisor's load summed.
fn over_committed_summed(c: &Cluster, t: &Topology) -> Option<usize> {
    (0..t.scenario.hypervisors.len()).find(|h| {
        // No new master on it adds nothing (the common case, asked after every transition of
        // the exploration): its load is not summed.
        if capacity::new_masters_on(c, t, *h).is_empty() {
            return false;
        }
        let load = capacity::ram_load(c, t, *h);
        load.committed_gb > load.limit_gb && load.added_gb > 0.0
    })
}

fn explain_over_committed_hypervisor(c: &Cluster, t: &Topology) -> Option<String> {
    let h = over_committed_hypervisor(c, t)?;
    let hypervisor = &t.scenario.hypervisors[h];
    let load = capacity::ram_load(c, t, h);
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
    Some(why)
}

fn explain_quorum_lost(c: &Cluster, _: &Topology) -> Option<String> {
    let q = observe::quorum(c);
    (!q.holds()).then(|| q.to_string())
}

/// A consumer that does not reach the API, and how it fails.
fn unreachable_consumer(c: &Cluster, t: &Topology) -> Option<(usize, observe::Reach)> {
    (0..t.consumers.len()).map(|i| (i, observe::consumer_reach(c, t, i))).find(|(_, reach)| !reach.is_ok())
}

fn explain_unreachable_consumer(c: &Cluster, t: &Topology) -> Option<String> {
    unreachable_consumer(c, t).map(|(i, reach)| format!("{} ({}): {reach}", t.consumers[i].name, t.consumers[i].kind.as_str()))
}

/// A running kubelet that cannot reach the API (and how), or a Node object without a kubelet.
fn not_ready_node(c: &Cluster, t: &Topology) -> Option<(NodeIx, Option<observe::Reach>)> {
    // A node that is down is the fault itself; this asks whether running kubelets reach the API.
    let running = c.joined.and(c.up).iter().map(|n| (n, observe::node_ready(c, t, n))).find(|(_, reach)| reach.is_down());
    // `kubeadm reset` and a destroyed VM leave the Node object (kubeadm
    // `cmd/kubeadm/app/cmd/reset.go` never deletes it): it stays NotReady until deleted.
    running.map(|(n, reach)| (n, Some(reach))).or_else(|| c.stale_nodes.iter().next().map(|n| (n, None)))
}

fn explain_not_ready_node(c: &Cluster, t: &Topology) -> Option<String> {
    not_ready_node(c, t).map(|(n, reach)| match reach {
        Some(reach) => format!("{} NotReady: {reach}", t.name(n)),
        None => format!("{} NotReady: its Node object outlived its kubelet (kubectl delete node {0})", t.name(n)),
    })
}

fn explain_kube_proxy_cut_off(c: &Cluster, t: &Topology) -> Option<String> {
    match observe::kube_proxy_reach(c, t) {
        observe::Reach::Ok => None,
        reach => Some(format!("kube-proxy (kube-system/kube-proxy kubeconfig): {reach}")),
    }
}

fn explain_backup_stopped(c: &Cluster, t: &Topology) -> Option<String> {
    observe::backup_runs(c, t).err()
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
            if let Err(why) = inv.holds(&after, t) {
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
        broken: |c, _| data_lost(c).is_some(),
        explain: explain_data_lost,
    },
    Invariant {
        name: "membership-reversible",
        class: InvariantClass::Safety,
        why: "a membership change must be undoable: member remove needs quorum, a voter that never started can take it away",
        broken: |c, _| irreversible_voter(c).is_some(),
        explain: explain_irreversible_voter,
    },
    Invariant {
        name: "tls-names-match",
        class: InvariantClass::Safety,
        why: "a client pointed at an endpoint whose certificate lacks the name fails TLS",
        broken: |c, _| vip_without_san(c).is_some(),
        explain: explain_vip_without_san,
    },
    Invariant {
        name: "lb-backends-uniform",
        class: InvariantClass::Safety,
        why: "every backend behind the VIP must behave the same, or requests fail depending on where they land",
        broken: |c, _| backend_without_flags(c).is_some(),
        explain: explain_backend_without_flags,
    },
    Invariant {
        name: "hypervisor-ram",
        class: InvariantClass::Safety,
        why: "over-committing a hypervisor's RAM ends in swap and the OOM killer",
        broken: |c, t| over_committed_hypervisor(c, t).is_some(),
        explain: explain_over_committed_hypervisor,
    },
    Invariant {
        name: "etcd-quorum",
        class: InvariantClass::Availability,
        why: "writes stop when fewer than floor(n/2)+1 voters are up",
        broken: |c, _| !observe::quorum(c).holds(),
        explain: explain_quorum_lost,
    },
    Invariant {
        name: "api-reachable",
        class: InvariantClass::Availability,
        why: "every kubeconfig consumer must reach a ready apiserver and verify its TLS",
        broken: |c, t| observe::consumers_reachability(c, t).any(|r| !r.is_ok()),
        explain: explain_unreachable_consumer,
    },
    Invariant {
        name: "nodes-ready",
        class: InvariantClass::Availability,
        why: "a running kubelet that cannot reach the API makes its node NotReady",
        broken: |c, t| !c.stale_nodes.is_empty() || c.joined.and(c.up).iter().any(|n| observe::node_reachability(c, t, n).is_down()),
        explain: explain_not_ready_node,
    },
    Invariant {
        name: "kube-proxy-reaches-api",
        class: InvariantClass::Availability,
        why:
            "kube-proxy on every node follows Services through the server its ConfigMap names; cut off, Service changes stop reaching nodes",
        broken: |c, t| !observe::kube_proxy_reachability(c, t).is_ok(),
        explain: explain_kube_proxy_cut_off,
    },
    Invariant {
        name: "backup-runs",
        class: InvariantClass::Availability,
        why: "the etcd backup job must be able to run",
        broken: |c, t| observe::backup_node(c, t).is_none(),
        explain: explain_backup_stopped,
    },
];

/// The safety invariants among `asked` (bits by index in [`INVARIANTS`]) that `c` breaks: what
/// their `broken` answers, in one call that reads each directly (the exploration asks it after
/// every transition, where a call through the table per invariant cost as much as the checks).
/// A test holds it to the table.
pub fn safety_broken(c: &Cluster, t: &Topology, asked: u32) -> u32 {
    let checks: [(u32, &dyn Fn() -> bool); 5] = [
        (1 << 0, &|| data_lost(c).is_some()),
        (1 << 1, &|| irreversible_voter(c).is_some()),
        (1 << 2, &|| vip_without_san(c).is_some()),
        (1 << 3, &|| backend_without_flags(c).is_some()),
        (1 << 4, &|| over_committed_hypervisor(c, t).is_some()),
    ];
    checks.iter().filter(|(bit, broken)| asked & bit != 0 && broken()).fold(0, |now, (bit, _)| now | bit)
}

/// The safety invariants `c` breaks (bits as [`safety_broken`] gives them) that no sequence of
/// actions repairs unless one of them destroys a VM (`Action::DestroyVm`): writes lost to a
/// snapshot restore stay lost (no action brings them back; a later restore loses as many or
/// more), and a hypervisor the new masters' VMs over-commit stays over-committed, its load only
/// growing with each VM created, where every new master's size is a plain figure
/// ([`capacity::may_over_commit`] reads the load the same way). Every other safety invariant
/// some action repairs (a member removed, a backend out of the pool, a certificate made again):
/// none of them is counted. A test holds it to every action of three plans and their
/// recoveries, from every state those reach under every fault.
pub fn safety_broken_while_no_vm_goes(c: &Cluster, t: &Topology) -> u32 {
    let lost = u32::from(data_lost(c).is_some());
    let over_committed = over_committed_hypervisor(c, t).is_some() && capacity::loads_only_grow(t);
    lost | u32::from(over_committed) << 4
}

pub fn by_name(name: &str) -> Option<&'static Invariant> {
    INVARIANTS.iter().find(|i| i.name == name)
}

/// The first invariant of `class` that `c` breaks, with the reason.
pub fn first_broken(c: &Cluster, t: &Topology, class: InvariantClass) -> Option<(&'static Invariant, String)> {
    INVARIANTS.iter().filter(|i| i.class == class).find_map(|i| i.holds(c, t).err().map(|why| (i, why)))
}

/// Every broken invariant.
pub fn broken(c: &Cluster, t: &Topology) -> Vec<(&'static Invariant, String)> {
    INVARIANTS.iter().filter_map(|i| i.holds(c, t).err().map(|why| (i, why))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `safety_broken_while_no_vm_goes` counts stays broken through every action but a VM
    /// destroyed, from every seventh state of three plans' runs struck by every fault, each also
    /// with its data restored from a snapshot and with no backend serving the VIP SAN or holding
    /// the apiserver flags: the breaks it names are broken after the action and named again
    /// there, so through any sequence of such actions. The actions: every one of the plan and, on
    /// every node, the recoveries' (member removed, reset, written off, quorum forced, snapshot
    /// restored, shut down, booted, out of the pool and the stack). The breaks it leaves out are
    /// repaired by some action, and a VM destroyed does end an over-commitment: neither is
    /// counted.
    #[test]
    fn what_no_action_repairs_but_a_vm_destroyed_stays_broken() {
        use crate::action::{apply, Action};
        use crate::cluster::EtcdData;
        use crate::topology::NodeSet;
        let scenarios = [
            include_str!("../../scenarios/homelab.yaml"),
            include_str!("../../scenarios/five-masters.yaml"),
            include_str!("../../scenarios/two-hypervisors.yaml"),
        ];
        let (mut kept, mut lost_kept, mut others_repaired, mut destroyed_repairs) = (0, 0, 0, 0);
        for text in scenarios {
            let (t, states) = crate::test_states::states_struck(text);
            let plan = crate::planner::generate(&t);
            let mut actions: Vec<Action> = plan.steps.iter().flat_map(|s| s.actions.iter().copied()).collect();
            for i in 0..t.nodes.len() {
                let n = NodeIx(i as u8);
                actions.extend([
                    Action::EtcdMemberRemove(n),
                    Action::KubeadmReset(n),
                    Action::DeleteNode(n),
                    Action::WriteOff(n),
                    Action::ForceNewCluster(n),
                    Action::RestoreSnapshot(n),
                    Action::Shutdown(n),
                    Action::Boot(n),
                    Action::RemoveLbBackend(n),
                    Action::ConfigStackRemoveHost(n),
                ]);
            }
            actions.retain(|a| !matches!(a, Action::DestroyVm(_)));
            actions.sort_by_key(|a| format!("{a:?}"));
            actions.dedup();
            for state in states.iter().step_by(7) {
                let lost = EtcdData::RestoredFromSnapshot { lost_s: 600 };
                let variants = [
                    *state,
                    Cluster { etcd_data: lost, ..*state },
                    Cluster { served_vip: NodeSet::EMPTY, apiserver_flags: NodeSet::EMPTY, ..*state },
                    Cluster { etcd_data: lost, served_vip: NodeSet::EMPTY, apiserver_flags: NodeSet::EMPTY, ..*state },
                ];
                for c in variants {
                    let for_good = safety_broken_while_no_vm_goes(&c, &t);
                    let broken = safety_broken(&c, &t, u32::MAX);
                    for &a in &actions {
                        let Ok(after) = apply(&c, &t, a) else { continue };
                        let broken_after = safety_broken(&after, &t, u32::MAX);
                        others_repaired += usize::from(broken & !for_good & !broken_after != 0);
                        assert_eq!(broken_after & for_good, for_good, "{a:?} repaired one");
                        assert_eq!(safety_broken_while_no_vm_goes(&after, &t) & for_good, for_good, "{a:?}");
                        kept += usize::from(for_good & 1 << 4 != 0);
                        lost_kept += usize::from(for_good & 1 != 0);
                    }
                    for n in t.new_masters() {
                        let repaired =
                            apply(&c, &t, Action::DestroyVm(n)).is_ok_and(|after| over_committed_hypervisor(&after, &t).is_none());
                        destroyed_repairs += usize::from(for_good & 1 << 4 != 0 && repaired);
                    }
                }
            }
        }
        assert!(kept > 1000 && lost_kept > 1000, "{kept} {lost_kept} kept");
        assert!(others_repaired > 100 && destroyed_repairs > 10, "{others_repaired} {destroyed_repairs} repaired");
    }

    /// `broken` (no words) and `explain` (the message) agree on every state of every scenario's
    /// plan, each struck by every fault: the exploration asks one, the report the other.
    #[test]
    fn the_verdict_without_words_agrees_with_the_message() {
        let scenarios = [
            include_str!("../../scenarios/homelab.yaml"),
            include_str!("../../scenarios/five-masters.yaml"),
            include_str!("../../scenarios/legacy-1.28.yaml"),
            include_str!("../../scenarios/two-hypervisors.yaml"),
        ];
        let (mut broken, mut holding) = (0, 0);
        for text in scenarios {
            let (t, states) = crate::test_states::states_struck(text);
            for struck in &states {
                for inv in INVARIANTS {
                    let verdict = (inv.broken)(struck, &t);
                    assert_eq!(verdict, (inv.explain)(struck, &t).is_some(), "{}", inv.name);
                    if verdict {
                        broken += 1;
                    } else {
                        holding += 1;
                    }
                }
            }
        }
        assert!(broken > 0 && holding > 0, "both verdicts met: {broken} broken, {holding} holding");
    }

    /// The RAM check skips the sums where no new master that can over-commit exists, and finds
    /// what the sums find: on every scenario, in every state of its plan struck by every fault.
    #[test]
    fn the_ram_check_without_sums_finds_what_the_sums_find() {
        let mut over = 0;
        for text in [
            include_str!("../../scenarios/homelab.yaml"),
            include_str!("../../scenarios/homelab-rightsized.yaml"),
            include_str!("../../scenarios/five-masters.yaml"),
            include_str!("../../scenarios/two-hypervisors.yaml"),
            include_str!("../../scenarios/three-hypervisors.yaml"),
        ] {
            let (t, states) = crate::test_states::states_struck(text);
            for c in &states {
                assert_eq!(over_committed_hypervisor(c, &t), over_committed_summed(c, &t));
                over += usize::from(over_committed_summed(c, &t).is_some());
            }
        }
        assert!(over > 0, "some state over-commits");
    }

    /// `safety_broken` answers what the table's `broken` does, invariant by invariant, and
    /// knows every safety invariant of the table (and no other).
    #[test]
    fn the_safety_check_in_one_call_agrees_with_the_table() {
        let safety = INVARIANTS.iter().enumerate().filter(|(_, i)| i.class == InvariantClass::Safety).fold(0u32, |m, (i, _)| m | 1 << i);
        assert_eq!(safety, 0b11111, "safety_broken reads the first five invariants of the table");
        for text in [include_str!("../../scenarios/homelab.yaml"), include_str!("../../scenarios/five-masters.yaml")] {
            let (t, states) = crate::test_states::states_struck(text);
            for c in &states {
                for (i, inv) in INVARIANTS.iter().enumerate().filter(|(_, i)| i.class == InvariantClass::Safety) {
                    assert_eq!(safety_broken(c, &t, 1 << i) != 0, (inv.broken)(c, &t), "{}", inv.name);
                    assert_eq!(safety_broken(c, &t, safety) & 1 << i != 0, (inv.broken)(c, &t), "{}", inv.name);
                }
            }
        }
    }
}
