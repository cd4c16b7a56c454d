//! Failures the twin injects: what each one does to the state, and what undoes it.

use crate::action::boot;
use crate::cluster::Cluster;
use crate::topology::{NodeIx, NodeSet, Topology};
use serde::Serialize;

/// Seconds a node takes to reboot (the source plan: 50-90 s).
pub const NODE_REBOOT_S: u32 = 90;

/// One failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Fault {
    /// A node stops; it comes back after `lasts_s`, or never (`None`).
    NodeDown { node: NodeIx, lasts_s: Option<u32> },
    /// A hypervisor and every VM on it stop.
    HypervisorDown { hypervisor: u8, lasts_s: Option<u32> },
    /// The LB bootstrap script runs again: reset to the declared state, frontends bounce.
    LbReload,
    /// The load balancer's host reboots.
    LbDown { lasts_s: u32 },
    /// A master is cut off from the other masters (the LB and workers still reach it).
    Partition { node: NodeIx, lasts_s: Option<u32> },
    /// The operator walks away; time passes and TTLs run out.
    OperatorAway { lasts_s: u32 },
    /// The step stops after some of its actions (its partial effect stays).
    StepFailsHalfway,
    /// The executor dies; it resumes by running the interrupted step again.
    ExecutorCrash,
}

/// The kinds of fault, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Crash,
    Reboot,
    HypervisorFailure,
    LbReload,
    LbReboot,
    Partition,
    OperatorAway,
    StepFailsHalfway,
    ExecutorCrash,
}

impl Fault {
    /// The nodes this fault stops (for a while or for good).
    pub fn nodes_down(self, t: &Topology) -> NodeSet {
        match self {
            Fault::NodeDown { node, .. } => NodeSet::of(node),
            Fault::HypervisorDown { hypervisor, .. } => {
                t.all_nodes().iter().filter(|x| t.node(*x).hypervisor == hypervisor as usize).fold(NodeSet::EMPTY, NodeSet::with)
            }
            _ => NodeSet::EMPTY,
        }
    }
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Crash,
        FaultKind::Reboot,
        FaultKind::HypervisorFailure,
        FaultKind::LbReload,
        FaultKind::LbReboot,
        FaultKind::Partition,
        FaultKind::OperatorAway,
        FaultKind::StepFailsHalfway,
        FaultKind::ExecutorCrash,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Reboot => "reboot",
            FaultKind::HypervisorFailure => "hypervisor-failure",
            FaultKind::LbReload => "lb-reload",
            FaultKind::LbReboot => "lb-reboot",
            FaultKind::Partition => "partition",
            FaultKind::OperatorAway => "operator-away",
            FaultKind::StepFailsHalfway => "step-fails-halfway",
            FaultKind::ExecutorCrash => "executor-crash",
        }
    }

    pub fn parse(text: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether the fault strikes a node (and so needs one).
    pub fn needs_node(self) -> bool {
        matches!(self, FaultKind::Crash | FaultKind::Reboot | FaultKind::Partition | FaultKind::HypervisorFailure)
    }
}

impl Fault {
    pub fn kind(self) -> FaultKind {
        match self {
            Fault::NodeDown { lasts_s: None, .. } => FaultKind::Crash,
            Fault::NodeDown { .. } => FaultKind::Reboot,
            Fault::HypervisorDown { .. } => FaultKind::HypervisorFailure,
            Fault::LbReload => FaultKind::LbReload,
            Fault::LbDown { .. } => FaultKind::LbReboot,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::OperatorAway { .. } => FaultKind::OperatorAway,
            Fault::StepFailsHalfway => FaultKind::StepFailsHalfway,
            Fault::ExecutorCrash => FaultKind::ExecutorCrash,
        }
    }

    /// How long it lasts; `None` for a permanent fault or one without duration.
    pub fn lasts_s(self) -> Option<u32> {
        match self {
            Fault::NodeDown { lasts_s, .. } | Fault::HypervisorDown { lasts_s, .. } | Fault::Partition { lasts_s, .. } => lasts_s,
            Fault::LbDown { lasts_s } | Fault::OperatorAway { lasts_s } => Some(lasts_s),
            Fault::LbReload | Fault::StepFailsHalfway | Fault::ExecutorCrash => None,
        }
    }

    pub fn describe(self, t: &Topology) -> String {
        let how_long = |l: Option<u32>| match l {
            Some(s) => format!(" for {}", crate::plan::format_duration(s)),
            None => " (stays down)".to_string(),
        };
        match self {
            Fault::NodeDown { node, lasts_s } => {
                format!("{} goes down{}", t.name(node), how_long(lasts_s))
            }
            Fault::HypervisorDown { hypervisor, lasts_s } => {
                format!("hypervisor {} fails{}", t.scenario.hypervisors[hypervisor as usize].name, how_long(lasts_s))
            }
            Fault::LbReload => match t.scenario.load_balancer.kind {
                crate::scenario::LbKind::PfsenseBootstrap => "LB bootstrap re-run (reset to declared state)".to_string(),
                _ => format!("{} reloads HAProxy from its config file", t.scenario.load_balancer.name),
            },
            Fault::LbDown { lasts_s } => format!("{} reboots ({})", t.scenario.load_balancer.name, crate::plan::format_duration(lasts_s)),
            Fault::Partition { node, lasts_s } => {
                format!("{} cut off from the other masters{}", t.name(node), how_long(lasts_s).replace(" (stays down)", ""))
            }
            Fault::OperatorAway { lasts_s } => format!("operator away for {}", crate::plan::format_duration(lasts_s)),
            Fault::StepFailsHalfway => "step fails half-way".to_string(),
            Fault::ExecutorCrash => "executor crashes".to_string(),
        }
    }

    /// The state right after the fault strikes. Step-level faults (half-way, executor crash)
    /// are played by the simulator and leave the state as it is here.
    pub fn strike(self, c: &Cluster, t: &Topology) -> Cluster {
        let mut n = *c;
        self.strike_in_place(&mut n, t);
        n
    }

    /// [`Fault::strike`] on `c` where it is: no copy of the state (the exploration strikes
    /// millions of faults).
    pub fn strike_in_place(self, c: &mut Cluster, t: &Topology) {
        match self {
            Fault::NodeDown { node, lasts_s } => {
                c.up = c.up.without(node);
                // A VM not made yet has nothing to break: the one made later is sound.
                if lasts_s.is_none() && c.vm_exists.contains(node) {
                    c.broken = c.broken.with(node);
                }
            }
            Fault::HypervisorDown { hypervisor, .. } => {
                c.hypervisors_down |= 1 << hypervisor;
                c.up = c.up.minus(t.on_hypervisor(hypervisor as usize));
                if t.scenario.load_balancer.hypervisor.as_deref() == Some(t.scenario.hypervisors[hypervisor as usize].name.as_str()) {
                    c.lb_up = false;
                }
            }
            Fault::LbReload => c.lb_running = c.lb_declared,
            Fault::LbDown { .. } => c.lb_up = false,
            Fault::Partition { node, .. } => c.partitioned = NodeSet::of(node),
            Fault::OperatorAway { lasts_s } => c.clock_s = c.clock_s.saturating_add(lasts_s),
            Fault::StepFailsHalfway | Fault::ExecutorCrash => {}
        }
    }

    /// The gap a fault opens while the VIP moves: when the VIP lives on the masters and the
    /// fault takes its holder away, clients get no answer until VRRP (keepalived) or the leader
    /// lease (kube-vip) hands it to another master, if one can hold it.
    pub fn transient(self, before: &Cluster, t: &Topology) -> Option<crate::action::Transient> {
        let holder = crate::observe::vip_holder(before, t)?;
        if !self.nodes_down(t).contains(holder) {
            return None;
        }
        let after = self.strike(before, t);
        crate::observe::vip_holder(&after, t)?;
        let mut during = after;
        during.lb_up = false;
        let lb = &t.scenario.load_balancer;
        Some(crate::action::Transient { during, seconds: lb.failover_s(), what: "the VIP moves to another master" })
    }

    /// The state once a temporary fault is over (the node is back, the partition healed).
    pub fn heal(self, c: &Cluster, t: &Topology) -> Cluster {
        let mut n = *c;
        self.heal_in_place(&mut n, t);
        n
    }

    /// [`Fault::heal`] on `c` where it is.
    pub fn heal_in_place(self, c: &mut Cluster, t: &Topology) {
        match self {
            // A machine that failed for good meanwhile does not come back with the reboot.
            Fault::NodeDown { node, .. } => {
                if c.vm_exists.contains(node) && !c.broken.contains(node) {
                    *c = boot(c, node);
                }
            }
            Fault::HypervisorDown { hypervisor, .. } => {
                c.hypervisors_down &= !(1 << hypervisor);
                for node in t.on_hypervisor(hypervisor as usize).and(c.vm_exists).minus(c.broken).iter() {
                    *c = boot(c, node);
                }
                if t.scenario.load_balancer.hypervisor.as_deref() == Some(t.scenario.hypervisors[hypervisor as usize].name.as_str()) {
                    c.lb_up = true;
                    c.lb_running = c.lb_declared;
                }
            }
            // A reboot runs the bootstrap again: the LB comes back with its declared state.
            Fault::LbDown { .. } => {
                c.lb_up = true;
                c.lb_running = c.lb_declared;
            }
            Fault::Partition { .. } => c.partitioned = NodeSet::EMPTY,
            Fault::LbReload | Fault::OperatorAway { .. } | Fault::StepFailsHalfway | Fault::ExecutorCrash => {}
        }
    }

    /// Every fault of every kind that can strike this topology, with the standard durations.
    pub fn all(t: &Topology) -> Vec<Fault> {
        let mut faults = Vec::new();
        let masters = t.target_masters();
        for (i, _) in t.nodes.iter().enumerate() {
            let node = NodeIx(i as u8);
            faults.push(Fault::NodeDown { node, lasts_s: None });
            faults.push(Fault::NodeDown { node, lasts_s: Some(NODE_REBOOT_S) });
            if masters.contains(node) {
                faults.push(Fault::Partition { node, lasts_s: Some(300) });
            }
        }
        for h in 0..t.scenario.hypervisors.len() {
            faults.push(Fault::HypervisorDown { hypervisor: h as u8, lasts_s: Some(600) });
        }
        // A load balancer of its own can be re-run or rebooted; one on the masters falls with them.
        if !t.scenario.load_balancer.kind.on_masters() {
            faults.push(Fault::LbReload);
            faults.push(Fault::LbDown { lasts_s: t.scenario.load_balancer.reboot_s });
        }
        faults.push(Fault::OperatorAway { lasts_s: 3 * 3600 });
        faults.push(Fault::StepFailsHalfway);
        faults.push(Fault::ExecutorCrash);
        faults
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{apply, Action};
    use crate::validate::parse_scenario;

    fn five_masters() -> Topology {
        Topology::new(&parse_scenario(include_str!("../../scenarios/five-masters.yaml")).expect("a valid scenario"))
    }

    /// A machine that fails for good stays down: neither a boot nor the end of a reboot that
    /// was under way brings it back, nor does a hypervisor coming back.
    #[test]
    fn a_machine_failed_for_good_comes_back_with_nothing() {
        let t = five_masters();
        let start = Cluster::initial(&t);
        let m0 = t.existing_master();
        let reboot = Fault::NodeDown { node: m0, lasts_s: Some(NODE_REBOOT_S) };
        let lost = Fault::NodeDown { node: m0, lasts_s: None };
        let rebooting = reboot.strike(&start, &t);
        assert!(reboot.heal(&rebooting, &t).up.contains(m0), "a reboot alone ends with the machine up");
        let failed = lost.strike(&rebooting, &t);
        assert!(failed.broken.contains(m0));
        assert!(!reboot.heal(&failed, &t).up.contains(m0), "the reboot under way does not bring it back");
        assert!(apply(&failed, &t, Action::Boot(m0)).is_err(), "qm start does not");
        let h = t.node(m0).hypervisor;
        let outage = Fault::HypervisorDown { hypervisor: h as u8, lasts_s: Some(600) };
        let back = outage.heal(&outage.strike(&failed, &t), &t);
        assert!(!back.up.contains(m0), "its hypervisor coming back does not");
    }

    /// A new master's VM that does not exist yet has nothing to fail: the VM made later is sound.
    #[test]
    fn a_vm_not_made_yet_is_not_failed_for_good() {
        let t = five_masters();
        let start = Cluster::initial(&t);
        let x = t.new_masters().next().expect("a new master");
        assert!(!start.vm_exists.contains(x));
        let struck = Fault::NodeDown { node: x, lasts_s: None }.strike(&start, &t);
        assert_eq!(struck, start, "nothing changes");
    }
}
