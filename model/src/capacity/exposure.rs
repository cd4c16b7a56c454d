//! Single points of failure and etcd fault tolerance along the plan, found by striking every machine in every state.
//!
//! Nothing here is a table: in each state the plan passes through, each running machine (node,
//! load balancer, hypervisor) is failed with the same [`Fault`] the twin injects, and what breaks
//! is read from [`observe`] — etcd quorum, every consumer's reach, every running kubelet. A machine
//! whose loss breaks something that worked is a single point of failure in that state. A step's
//! exposure is the worst of the states it passes through; its time is the step's duration.

use super::PlanWalk;
use crate::cluster::Cluster;
use crate::fault::Fault;
use crate::observe;
use crate::plan::Plan;
use crate::topology::{NodeIx, NodeKind, NodeSet, Topology};
use serde::Serialize;
use std::collections::BTreeMap;

/// A machine that can fail on its own. Ordered as reports list them: nodes, the load balancer, hypervisors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Machine {
    Node(NodeIx),
    LoadBalancer,
    Hypervisor(u8),
}

/// What a machine is, in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MachineKind {
    Master,
    Worker,
    LoadBalancer,
    Hypervisor,
}

fn describe(t: &Topology, machine: Machine) -> (String, MachineKind) {
    match machine {
        Machine::Node(n) => {
            let node = t.node(n);
            (node.name.clone(), if node.kind == NodeKind::Worker { MachineKind::Worker } else { MachineKind::Master })
        }
        Machine::LoadBalancer => (t.scenario.load_balancer.name.clone(), MachineKind::LoadBalancer),
        Machine::Hypervisor(h) => (t.scenario.hypervisors[h as usize].name.clone(), MachineKind::Hypervisor),
    }
}

/// What stops working when one machine fails, that worked before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub quorum_lost: bool,
    /// Kubeconfig consumers (CI, portal, operators) whose endpoint no longer answers.
    pub consumers_down: Vec<String>,
    /// Running nodes whose kubelet no longer reaches an apiserver.
    pub nodes_not_ready: Vec<String>,
    /// kube-proxy no longer reaches an apiserver: Service changes stop reaching every node.
    pub kube_proxy_cut_off: bool,
}

impl Impact {
    pub fn is_empty(&self) -> bool {
        !self.quorum_lost && self.consumers_down.is_empty() && self.nodes_not_ready.is_empty() && !self.kube_proxy_cut_off
    }

    /// `etcd quorum lost; API down for 8 consumers; 4 nodes NotReady`.
    pub fn summary(&self) -> String {
        let names = |list: &[String], one: &str, many: &str| {
            if list.len() <= 2 {
                list.join(", ")
            } else {
                format!("{} {}", list.len(), if list.len() == 1 { one } else { many })
            }
        };
        let mut parts = Vec::new();
        if self.quorum_lost {
            parts.push("etcd quorum lost".to_string());
        }
        if !self.consumers_down.is_empty() {
            parts.push(format!("API down for {}", names(&self.consumers_down, "consumer", "consumers")));
        }
        if !self.nodes_not_ready.is_empty() {
            parts.push(format!("{} NotReady", names(&self.nodes_not_ready, "node", "nodes")));
        }
        if self.kube_proxy_cut_off {
            parts.push("kube-proxy cut off".to_string());
        }
        if parts.is_empty() {
            "nothing stops".to_string()
        } else {
            parts.join("; ")
        }
    }
}

/// An [`Impact`] as sets, so impacts merge and compare without regard to order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Harm {
    quorum_lost: bool,
    /// Bit per consumer.
    consumers_down: u64,
    nodes_not_ready: NodeSet,
    kube_proxy_cut_off: bool,
}

impl Harm {
    fn is_empty(self) -> bool {
        !self.quorum_lost && self.consumers_down == 0 && self.nodes_not_ready.is_empty() && !self.kube_proxy_cut_off
    }

    fn widen(&mut self, other: Harm) {
        self.quorum_lost |= other.quorum_lost;
        self.kube_proxy_cut_off |= other.kube_proxy_cut_off;
        self.consumers_down |= other.consumers_down;
        self.nodes_not_ready = self.nodes_not_ready.or(other.nodes_not_ready);
    }

    fn named(self, t: &Topology) -> Impact {
        Impact {
            quorum_lost: self.quorum_lost,
            consumers_down: t
                .consumers
                .iter()
                .enumerate()
                .filter(|(i, _)| self.consumers_down & (1 << i) != 0)
                .map(|(_, c)| c.name.clone())
                .collect(),
            nodes_not_ready: self.nodes_not_ready.iter().map(|n| t.name(n).to_string()).collect(),
            kube_proxy_cut_off: self.kube_proxy_cut_off,
        }
    }
}

/// A machine whose failure alone stops part of the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinglePoint {
    pub machine: String,
    pub kind: MachineKind,
    pub impact: Impact,
}

/// The exposure of one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateExposure {
    /// etcd voting members.
    pub voters: u32,
    /// Voters running and started.
    pub voters_live: u32,
    pub quorum: bool,
    /// Live voters that can fail with quorum kept (1 voter: 0, 2: 0, 3: 1, 5: 2).
    pub tolerance: u32,
    pub single_points: Vec<SinglePoint>,
}

/// What works in a state before anything is struck: only what breaks from there counts.
struct Working {
    quorum: bool,
    consumers: Vec<bool>,
    nodes: NodeSet,
    kube_proxy: bool,
}

fn working(c: &Cluster, t: &Topology) -> Working {
    Working {
        quorum: observe::quorum(c).holds(),
        consumers: (0..t.consumers.len()).map(|i| !observe::consumer_reach(c, t, i).is_down()).collect(),
        nodes: c.joined.and(c.up).iter().filter(|n| !observe::node_ready(c, t, *n).is_down()).fold(NodeSet::EMPTY, NodeSet::with),
        kube_proxy: !observe::kube_proxy_reach(c, t).is_down(),
    }
}

fn harm_of(t: &Topology, before: &Working, struck: &Cluster) -> Harm {
    Harm {
        quorum_lost: before.quorum && !observe::quorum(struck).holds(),
        consumers_down: (0..t.consumers.len())
            .filter(|i| before.consumers[*i] && observe::consumer_reach(struck, t, *i).is_down())
            .fold(0u64, |mask, i| mask | (1 << i)),
        nodes_not_ready: before
            .nodes
            .and(struck.up)
            .iter()
            .filter(|n| observe::node_ready(struck, t, *n).is_down())
            .fold(NodeSet::EMPTY, NodeSet::with),
        kube_proxy_cut_off: before.kube_proxy && observe::kube_proxy_reach(struck, t).is_down(),
    }
}

/// Every machine running in `c`, with the fault that takes it away.
fn machines(c: &Cluster, t: &Topology) -> Vec<(Machine, Fault)> {
    let mut out: Vec<(Machine, Fault)> =
        c.vm_exists.and(c.up).iter().map(|node| (Machine::Node(node), Fault::NodeDown { node, lasts_s: None })).collect();
    let lb = &t.scenario.load_balancer;
    // A VIP on the masters has no machine of its own to lose.
    if c.lb_up && !lb.kind.on_masters() {
        out.push((Machine::LoadBalancer, Fault::LbDown { lasts_s: lb.reboot_s }));
    }
    for (h, spec) in t.scenario.hypervisors.iter().enumerate() {
        let hosts_vm = !t.on_hypervisor(h).and(c.vm_exists).is_empty();
        let hosts_lb = lb.hypervisor.as_deref() == Some(spec.name.as_str());
        if c.hypervisors_down & (1 << h) == 0 && (hosts_vm || hosts_lb) {
            out.push((Machine::Hypervisor(h as u8), Fault::HypervisorDown { hypervisor: h as u8, lasts_s: None }));
        }
    }
    out
}

/// Every machine's harm in `c`, the harmless ones included.
fn harms(c: &Cluster, t: &Topology) -> BTreeMap<Machine, Harm> {
    let before = working(c, t);
    machines(c, t).into_iter().map(|(machine, fault)| (machine, harm_of(t, &before, &fault.strike(c, t)))).collect()
}

/// The exposure of a state, or the worst over several.
#[derive(Debug, Clone, PartialEq)]
struct Envelope {
    voters_min: u32,
    voters_max: u32,
    tolerance: u32,
    points: BTreeMap<Machine, Harm>,
}

impl Envelope {
    fn of(c: &Cluster, t: &Topology) -> Envelope {
        let q = observe::quorum(c);
        let points = harms(c, t).into_iter().filter(|(_, harm)| !harm.is_empty()).collect();
        Envelope { voters_min: q.voters, voters_max: q.voters, tolerance: tolerance(&q), points }
    }

    fn widen(&mut self, other: &Envelope) {
        self.voters_min = self.voters_min.min(other.voters_min);
        self.voters_max = self.voters_max.max(other.voters_max);
        self.tolerance = self.tolerance.min(other.tolerance);
        for (machine, harm) in &other.points {
            self.points.entry(*machine).or_default().widen(*harm);
        }
    }

    /// What makes two steps the same exposure window: the same tolerance, and the same machines
    /// stopping the same things.
    fn key(&self) -> (u32, &BTreeMap<Machine, Harm>) {
        (self.tolerance, &self.points)
    }

    fn single_points(&self, t: &Topology) -> Vec<SinglePoint> {
        self.points
            .iter()
            .map(|(machine, harm)| {
                let (name, kind) = describe(t, *machine);
                SinglePoint { machine: name, kind, impact: harm.named(t) }
            })
            .collect()
    }
}

fn tolerance(q: &observe::QuorumView) -> u32 {
    if q.holds() {
        q.voters_up - q.needed
    } else {
        0
    }
}

/// The exposure of state `c`: voters, tolerance and single points of failure.
pub fn exposure_at(c: &Cluster, t: &Topology) -> StateExposure {
    let q = observe::quorum(c);
    StateExposure {
        voters: q.voters,
        voters_live: q.voters_up,
        quorum: q.holds(),
        tolerance: tolerance(&q),
        single_points: Envelope::of(c, t).single_points(t),
    }
}

/// A phase of the plan and the worst exposure in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseExposure {
    pub phase: String,
    pub title: String,
    pub first_step: String,
    pub last_step: String,
    pub duration_s: u32,
    pub voters_min: u32,
    pub voters_max: u32,
    pub tolerance: u32,
    pub single_points: Vec<SinglePoint>,
}

/// A run of consecutive steps with the same tolerance and the same single points of failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureWindow {
    pub from_step: String,
    pub to_step: String,
    pub steps: u32,
    pub duration_s: u32,
    pub voters_min: u32,
    pub voters_max: u32,
    pub tolerance: u32,
    pub single_points: Vec<SinglePoint>,
}

/// How long one machine is a single point of failure during the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinglePointTime {
    pub machine: String,
    pub kind: MachineKind,
    pub duration_s: u32,
}

/// Whether a kind of failure leaves the control plane working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Survival {
    Survivable,
    /// Some machines of the kind can fail, others cannot.
    PartlySurvivable,
    NotSurvivable,
}

impl Survival {
    fn of(failing: usize, total: usize) -> Survival {
        if failing == 0 {
            Survival::Survivable
        } else if failing == total {
            Survival::NotSurvivable
        } else {
            Survival::PartlySurvivable
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Survival::Survivable => "survivable",
            Survival::PartlySurvivable => "partly survivable",
            Survival::NotSurvivable => "NOT survivable",
        }
    }
}

/// One hypervisor holding a master or the load balancer failing once the migration is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFailure {
    pub hypervisor: String,
    pub masters: Vec<String>,
    /// etcd voters on it.
    pub voters: u32,
    pub survivable: bool,
    pub impact: Impact,
}

/// What the finished cluster survives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resilience {
    pub master_vm_failure: Survival,
    /// Masters whose VM failing alone stops part of the control plane.
    pub masters_single_points: Vec<String>,
    pub load_balancer_failure: Survival,
    /// The VIP lives on the masters (keepalived, kube-vip): no load balancer machine can fail,
    /// and the VIP takes this long to move when its holder does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip_on_masters: Option<VipOnMasters>,
    pub hypervisor_failure: Survival,
    pub hypervisors: Vec<HostFailure>,
}

/// The VIP's daemon on the masters, as the capacity report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipOnMasters {
    /// `keepalived` or `kube-vip`.
    pub kind: String,
    pub failover_s: u32,
}

/// Exposure along the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureReport {
    pub before: StateExposure,
    pub after: StateExposure,
    pub phases: Vec<PhaseExposure>,
    pub windows: Vec<ExposureWindow>,
    pub single_point_time: Vec<SinglePointTime>,
    /// Time the plan spends with an etcd that tolerates no failure.
    pub tolerance_zero_s: u32,
    pub resilience: Resilience,
}

fn resilience(c: &Cluster, t: &Topology) -> Resilience {
    let all = harms(c, t);
    let masters: Vec<NodeIx> = c.control_plane.and(c.up).iter().collect();
    let masters_single_points: Vec<String> =
        masters.iter().filter(|n| all.get(&Machine::Node(**n)).is_some_and(|h| !h.is_empty())).map(|n| t.name(*n).to_string()).collect();
    let lb_fails = all.get(&Machine::LoadBalancer).is_some_and(|h| !h.is_empty());
    let hypervisors: Vec<HostFailure> = all
        .iter()
        .filter_map(|(machine, harm)| match machine {
            Machine::Hypervisor(h) => {
                // Only hosts with a master or the load balancer say anything about control-plane
                // HA: a host of workers alone never counts towards "survivable".
                let on = t.on_hypervisor(*h as usize);
                let lb_here = t.scenario.load_balancer.hypervisor.as_deref() == Some(t.scenario.hypervisors[*h as usize].name.as_str());
                if c.control_plane.and(on).is_empty() && !lb_here {
                    return None;
                }
                Some(HostFailure {
                    hypervisor: t.scenario.hypervisors[*h as usize].name.clone(),
                    masters: c.control_plane.and(on).iter().map(|n| t.name(n).to_string()).collect(),
                    voters: c.voters.and(on).len(),
                    survivable: harm.is_empty(),
                    impact: harm.named(t),
                })
            }
            _ => None,
        })
        .collect();
    Resilience {
        master_vm_failure: Survival::of(masters_single_points.len(), masters.len()),
        masters_single_points,
        load_balancer_failure: Survival::of(lb_fails as usize, usize::from(!t.scenario.load_balancer.kind.on_masters())),
        vip_on_masters: {
            let lb = &t.scenario.load_balancer;
            lb.kind.on_masters().then(|| VipOnMasters { kind: lb.kind.as_str().to_string(), failover_s: lb.failover_s() })
        },
        hypervisor_failure: Survival::of(hypervisors.iter().filter(|h| !h.survivable).count(), hypervisors.len()),
        hypervisors,
    }
}

/// The exposure of every step of the walk, grouped by phase and by window.
pub fn exposure(t: &Topology, plan: &Plan, walked: &PlanWalk) -> ExposureReport {
    let per_step: Vec<(usize, Envelope)> = walked
        .steps
        .iter()
        .map(|s| {
            let mut states = s.states();
            let mut envelope = Envelope::of(states.next().expect("a step has its start state"), t);
            for c in states {
                envelope.widen(&Envelope::of(c, t));
            }
            (s.step, envelope)
        })
        .collect();
    let duration = |ix: usize| plan.steps[ix].duration_s;
    let id = |ix: usize| plan.steps[ix].id.clone();

    // Phases in the order the plan reaches them; windows as runs of equal exposure.
    let mut phases: Vec<(String, usize, usize, u32, Envelope)> = Vec::new();
    let mut windows: Vec<(usize, usize, u32, u32, Envelope)> = Vec::new();
    for (ix, envelope) in &per_step {
        let phase = &plan.steps[*ix].phase;
        match phases.last_mut() {
            Some((p, _, last, time, merged)) if p == phase => {
                *last = *ix;
                *time += duration(*ix);
                merged.widen(envelope);
            }
            _ => phases.push((phase.clone(), *ix, *ix, duration(*ix), envelope.clone())),
        }
        match windows.last_mut() {
            Some((_, last, count, time, merged)) if merged.key() == envelope.key() => {
                *last = *ix;
                *count += 1;
                *time += duration(*ix);
                merged.widen(envelope);
            }
            _ => windows.push((*ix, *ix, 1, duration(*ix), envelope.clone())),
        }
    }

    let mut time_by_machine: BTreeMap<Machine, u32> = BTreeMap::new();
    for (ix, envelope) in &per_step {
        for machine in envelope.points.keys() {
            *time_by_machine.entry(*machine).or_default() += duration(*ix);
        }
    }

    ExposureReport {
        before: exposure_at(&walked.initial, t),
        after: exposure_at(walked.end(), t),
        phases: phases
            .into_iter()
            .map(|(phase, first, last, duration_s, e)| PhaseExposure {
                title: plan.phases.iter().find(|p| p.id == phase).map(|p| p.title.clone()).unwrap_or_default(),
                phase,
                first_step: id(first),
                last_step: id(last),
                duration_s,
                voters_min: e.voters_min,
                voters_max: e.voters_max,
                tolerance: e.tolerance,
                single_points: e.single_points(t),
            })
            .collect(),
        windows: windows
            .into_iter()
            .map(|(first, last, steps, duration_s, e)| ExposureWindow {
                from_step: id(first),
                to_step: id(last),
                steps,
                duration_s,
                voters_min: e.voters_min,
                voters_max: e.voters_max,
                tolerance: e.tolerance,
                single_points: e.single_points(t),
            })
            .collect(),
        single_point_time: time_by_machine
            .into_iter()
            .map(|(machine, duration_s)| {
                let (name, kind) = describe(t, machine);
                SinglePointTime { machine: name, kind, duration_s }
            })
            .collect(),
        tolerance_zero_s: per_step.iter().filter(|(_, e)| e.tolerance == 0).map(|(ix, _)| duration(*ix)).sum(),
        resilience: resilience(walked.end(), t),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{homelab, homelab_with, report, topology};
    use super::*;

    fn names(points: &[SinglePoint]) -> Vec<&str> {
        points.iter().map(|p| p.machine.as_str()).collect()
    }

    #[test]
    fn before_the_migration_the_master_and_its_host_are_single_points() {
        let r = report(&homelab());
        let before = &r.exposure.before;
        assert_eq!((before.voters, before.tolerance), (1, 0));
        assert_eq!(names(&before.single_points), ["k8s-master", "pve"]);
        let master = &before.single_points[0];
        assert!(master.impact.quorum_lost);
        assert_eq!(master.impact.consumers_down.len(), 8);
        assert_eq!(master.impact.nodes_not_ready, ["k8s-node1", "k8s-node2", "k8s-node3", "k8s-node4"]);
        assert_eq!(master.kind, MachineKind::Master);
    }

    #[test]
    fn two_voters_tolerate_nothing_and_either_master_stops_the_cluster() {
        let r = report(&homelab());
        let window = r.exposure.windows.iter().find(|w| w.voters_min <= 2 && w.voters_max >= 2).expect("a window through 2 voters");
        assert_eq!(window.tolerance, 0);
        let points = names(&window.single_points);
        assert!(points.contains(&"k8s-master") && points.contains(&"k8s-master-2"), "{points:?}");
        let phase2 = r.exposure.phases.iter().find(|p| p.phase == "2").expect("phase 2");
        assert_eq!((phase2.voters_min, phase2.voters_max, phase2.tolerance), (1, 2, 0));
        let master2 = phase2.single_points.iter().find(|p| p.machine == "k8s-master-2").expect("master-2 a single point in phase 2");
        assert!(master2.impact.quorum_lost);
    }

    #[test]
    fn the_cut_over_moves_the_single_point_from_the_old_master_to_the_load_balancer() {
        let r = report(&homelab());
        let phase = |id: &str| r.exposure.phases.iter().find(|p| p.phase == id).expect("phase exists");
        // Phase 3 ends with three voters, but every client still talks to k8s-master directly; on
        // 1.34 the new masters' kubelets talk to their own apiservers (kubeadm's local mode), so
        // the load balancer carries nothing yet.
        assert!(names(&phase("3").single_points).contains(&"k8s-master"));
        assert!(!names(&phase("3").single_points).contains(&"pfsense"), "nothing uses the VIP before the cut-over");
        // Phase 4 flips clients and workers: the load balancer becomes one. k8s-master stays one
        // until kube-proxy leaves it (4.7); from phase 4.5 on it no longer is.
        assert!(names(&phase("4").single_points).contains(&"pfsense"));
        let master = phase("4").single_points.iter().find(|p| p.machine == "k8s-master").expect("k8s-master until 4.7");
        assert!(master.impact.kube_proxy_cut_off, "{:?}", master.impact);
        assert_eq!(names(&phase("4.5").single_points), ["pfsense", "pve"]);
        let after = &r.exposure.after;
        assert_eq!((after.voters, after.tolerance), (3, 1));
        assert_eq!(names(&after.single_points), ["pfsense", "pve"]);
        let lb = &after.single_points[0];
        assert_eq!(lb.kind, MachineKind::LoadBalancer);
        assert!(!lb.impact.quorum_lost && lb.impact.consumers_down.len() == 8);
    }

    #[test]
    fn the_failover_test_spends_the_tolerance() {
        let r = report(&homelab());
        let phase6 = r.exposure.phases.iter().find(|p| p.phase == "6").expect("phase 6");
        assert_eq!(phase6.tolerance, 0, "6.1 shuts k8s-master down: 2 of 3 voters left");
        assert!(names(&phase6.single_points).contains(&"k8s-master-3"));
    }

    #[test]
    fn windows_add_up_to_the_plan() {
        let r = report(&homelab());
        let total: u32 = r.exposure.windows.iter().map(|w| w.duration_s).sum();
        assert_eq!(total, r.plan_duration_s);
        let phases: u32 = r.exposure.phases.iter().map(|p| p.duration_s).sum();
        assert_eq!(phases, r.plan_duration_s);
        for pair in r.exposure.windows.windows(2) {
            assert_ne!((pair[0].tolerance, &pair[0].single_points), (pair[1].tolerance, &pair[1].single_points), "adjacent windows differ");
        }
        let master = r.exposure.single_point_time.iter().find(|s| s.machine == "k8s-master").expect("timed");
        let pve = r.exposure.single_point_time.iter().find(|s| s.machine == "pve").expect("timed");
        assert_eq!(pve.duration_s, r.plan_duration_s, "the only hypervisor is a single point throughout");
        assert!(master.duration_s < pve.duration_s);
        assert!(r.exposure.tolerance_zero_s > 0 && r.exposure.tolerance_zero_s < r.plan_duration_s);
    }

    #[test]
    fn one_hypervisor_is_ha_against_vm_failure_not_host_failure() {
        let res = report(&homelab()).exposure.resilience;
        assert_eq!(res.master_vm_failure, Survival::Survivable);
        assert_eq!(res.load_balancer_failure, Survival::NotSurvivable);
        assert_eq!(res.hypervisor_failure, Survival::NotSurvivable);
        assert_eq!(res.hypervisors.len(), 1);
        assert_eq!(res.hypervisors[0].voters, 3);
        assert!(res.hypervisors[0].impact.quorum_lost);
    }

    #[test]
    fn a_load_balancer_on_a_hypervisor_falls_with_it() {
        let t = homelab_with(&[(
            "  bootstrap_script: infra/scripts/pfsense-haproxy-bootstrap.php\n",
            "  bootstrap_script: infra/scripts/pfsense-haproxy-bootstrap.php\n  hypervisor: pve\n",
        )]);
        let r = report(&t);
        let pve = &r.exposure.resilience.hypervisors[0];
        assert!(pve.impact.quorum_lost && !pve.impact.consumers_down.is_empty());
    }

    #[test]
    fn five_voters_tolerate_two_and_split_hosts_are_partly_survivable() {
        let r = report(&topology(include_str!("../../../scenarios/five-masters.yaml")));
        assert_eq!((r.exposure.after.voters, r.exposure.after.tolerance), (5, 2));
        let res = &r.exposure.resilience;
        assert_eq!(res.master_vm_failure, Survival::Survivable);
        // pve-a holds 3 of the 5 voters, pve-b 2: only pve-b may fail.
        assert_eq!(res.hypervisor_failure, Survival::PartlySurvivable);
        let by_name = |n: &str| res.hypervisors.iter().find(|h| h.hypervisor == n).expect("listed");
        assert_eq!((by_name("pve-a").voters, by_name("pve-a").survivable), (3, false));
        assert_eq!((by_name("pve-b").voters, by_name("pve-b").survivable), (2, true));
    }

    #[test]
    fn impact_summaries_count_long_lists() {
        let impact = Impact {
            quorum_lost: true,
            consumers_down: vec!["a".into(), "b".into(), "c".into()],
            nodes_not_ready: vec!["n1".into()],
            kube_proxy_cut_off: false,
        };
        assert_eq!(impact.summary(), "etcd quorum lost; API down for 3 consumers; n1 NotReady");
        assert_eq!(Impact::default().summary(), "nothing stops");
    }
}
