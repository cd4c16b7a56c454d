//! Where a command runs: a host over SSH (node, load balancer, hypervisor) or this machine, found by
//! its identity (a name or an address, never one taken for the other).

use crate::workstation::WorkstationHost;
use plan_model::topology::{NodeIx, Topology};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// A machine reached over SSH, by its inventory name and address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostTarget {
    pub name: String,
    pub address: Ipv4Addr,
    pub user: String,
}

impl HostTarget {
    /// `user@address`, what ssh is given.
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.address)
    }
}

/// Where one invocation runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Place {
    Host(HostTarget),
    /// The operator's workstation, in `dir` when given (the infra repo): this machine, or, `on`
    /// it, the machine `--workstation` names (reached over SSH).
    Local {
        dir: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on: Option<WorkstationHost>,
    },
}

impl Place {
    /// The workstation on this machine, in `dir` when given.
    pub fn here(dir: Option<String>) -> Place {
        Place::Local { dir, on: None }
    }

    /// The name shown in output and kept in the journal: a host's name; `workstation` or
    /// `infra-repo` on this machine, `workstation@HOST` or `infra-repo@HOST` on another.
    pub fn label(&self) -> String {
        match self {
            Place::Host(h) => h.name.clone(),
            Place::Local { on, .. } => {
                let role = self.workstation_role().unwrap_or("workstation");
                match on {
                    None => role.to_string(),
                    Some(host) => format!("{role}@{}", host.name()),
                }
            }
        }
    }

    /// For the workstation's places, `workstation` or `infra-repo` wherever the workstation is;
    /// none for a host.
    pub fn workstation_role(&self) -> Option<&'static str> {
        match self {
            Place::Host(_) => None,
            Place::Local { dir: Some(_), .. } => Some("infra-repo"),
            Place::Local { dir: None, .. } => Some("workstation"),
        }
    }
}

/// The inventory's machines, looked up by name, `name.zone`, or address.
pub struct Hosts<'t> {
    t: &'t Topology,
}

impl<'t> Hosts<'t> {
    pub fn new(t: &'t Topology) -> Self {
        Hosts { t }
    }

    pub fn node(&self, ix: NodeIx) -> HostTarget {
        let node = self.t.node(ix);
        HostTarget { name: node.name.clone(), address: node.address, user: self.t.scenario.ssh_user.clone() }
    }

    /// The load balancer machine; none when the VIP lives on the masters (keepalived, kube-vip).
    pub fn load_balancer(&self) -> Option<HostTarget> {
        let lb = &self.t.scenario.load_balancer;
        Some(HostTarget { name: lb.name.clone(), address: lb.machine_address()?, user: lb.ssh_user.clone() })
    }

    /// The hypervisor a node lives on; it is reached as root (`qm` needs it). None for a
    /// hypervisor the plan does not drive (`kind: none`, no address).
    pub fn hypervisor(&self, index: usize) -> Option<HostTarget> {
        let h = &self.t.scenario.hypervisors[index];
        Some(HostTarget { name: h.name.clone(), address: h.address?, user: h.ssh_user.clone() })
    }

    /// Every machine, as a command reaches it: the nodes, the load balancer, the hypervisors.
    fn machines(&self) -> Vec<HostTarget> {
        let nodes = (0..self.t.nodes.len()).map(|i| self.node(NodeIx(i as u8)));
        let hypervisors = (0..self.t.scenario.hypervisors.len()).filter_map(|i| self.hypervisor(i));
        nodes.chain(self.load_balancer()).chain(hypervisors).collect()
    }

    /// The one machine `matches` picks, or none when none or several do (never a guess).
    fn only(&self, matches: impl Fn(&HostTarget) -> bool) -> Option<HostTarget> {
        let mut found = self.machines().into_iter().filter(|m| matches(m));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// The machine named `name` in the inventory, by its exact name only.
    pub fn named(&self, name: &str) -> Option<HostTarget> {
        self.only(|m| m.name == name)
    }

    /// Every machine of the inventory, for `--host` and for error messages.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.t.nodes.iter().map(|n| n.name.clone()).collect();
        names.extend(self.load_balancer().map(|lb| lb.name));
        names.extend((0..self.t.scenario.hypervisors.len()).filter_map(|i| self.hypervisor(i)).map(|h| h.name));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;

    const LOOPBACK: &str = include_str!("../../scenarios/loopback.yaml");

    /// The loopback topology built without validation from `text` (validation refuses the
    /// colliding names these tests route).
    fn unvalidated(text: &str) -> Topology {
        let scenario: plan_model::scenario::Scenario = serde_yaml_ng::from_str(text).unwrap();
        Topology::new(&scenario)
    }

    #[test]
    fn a_machine_is_found_by_its_exact_name_only() {
        let t = Topology::new(&parse_scenario(LOOPBACK).unwrap());
        let hosts = Hosts::new(&t);
        assert_eq!(hosts.named("lab-wk-1").unwrap().name, "lab-wk-1");
        assert_eq!(hosts.named("lab-hv").unwrap(), hosts.hypervisor(0).unwrap());
        let zoned = format!("lab-hv.{}", t.scenario.dns.zone);
        assert_eq!(hosts.named(&zoned), None, "no guess from a zone");
        assert_eq!(hosts.named("127.0.20.1"), None, "an address is not a name");
    }

    #[test]
    fn a_worker_named_like_the_load_balancers_address_never_gets_its_commands() {
        let text = LOOPBACK.replace("name: lab-wk-2,", "name: 127.0.20.1,");
        assert!(parse_scenario(&text).is_err(), "validation refuses the name");
        // Built without validation, the load balancer's commands still go to the load balancer:
        // the operation names it by its role, not by text a machine's name could match.
        let t = unvalidated(&text);
        let plan = plan_model::planner::generate(&t);
        let step = plan.steps.iter().find(|s| s.operations.contains(&plan_model::operation::Operation::DeployLb)).expect("a deploy");
        let works: Vec<crate::invocation::Work> = crate::invocation::Compiler::new(&t).step(step).into_iter().map(|i| i.work).collect();
        assert!(!works.is_empty());
        for work in works {
            let host = match work {
                crate::invocation::Work::Shell { place: Place::Host(host), .. } | crate::invocation::Work::Upload { host, .. } => host,
                other => panic!("{other:?}"),
            };
            assert_eq!((host.name.as_str(), host.address), ("lab-lb", Ipv4Addr::new(127, 0, 20, 1)));
        }
    }

    #[test]
    fn a_name_two_machines_share_finds_neither() {
        let t = unvalidated(&LOOPBACK.replace("name: lab-wk-2,", "name: lab-lb,"));
        assert_eq!(Hosts::new(&t).named("lab-lb"), None);
    }
}
