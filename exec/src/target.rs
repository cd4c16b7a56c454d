//! Where a command runs: a host over SSH (node, load balancer, hypervisor) or this machine.

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
    /// This machine (the operator's workstation), in `dir` when given (the infra repo).
    Local {
        dir: Option<String>,
    },
}

impl Place {
    /// The name shown in output and kept in the journal.
    pub fn label(&self) -> String {
        match self {
            Place::Host(h) => h.name.clone(),
            Place::Local { dir: Some(_) } => "infra-repo".to_string(),
            Place::Local { dir: None } => "workstation".to_string(),
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

    pub fn load_balancer(&self) -> HostTarget {
        let lb = &self.t.scenario.load_balancer;
        HostTarget { name: lb.name.clone(), address: lb.address, user: lb.ssh_user.clone() }
    }

    /// The hypervisor a node lives on; it is reached as root (`qm` needs it).
    pub fn hypervisor(&self, index: usize) -> HostTarget {
        let h = &self.t.scenario.hypervisors[index];
        HostTarget { name: h.name.clone(), address: h.address, user: "root".to_string() }
    }

    /// Finds the machine a command names (`k8s-node1`, `k8s-node1.zone`, `10.0.20.1`), with the
    /// user the command gives, if any.
    pub fn find(&self, host: &str, user: Option<&str>) -> Option<HostTarget> {
        let zone = format!(".{}", self.t.scenario.dns.zone);
        let bare = host.strip_suffix(&zone).unwrap_or(host);
        let mut found = if let Some(i) = self.t.nodes.iter().position(|n| n.name == bare || n.address.to_string() == bare) {
            Some(self.node(NodeIx(i as u8)))
        } else if self.t.scenario.load_balancer.name == bare || self.t.scenario.load_balancer.address.to_string() == bare {
            Some(self.load_balancer())
        } else {
            self.t.scenario.hypervisors.iter().position(|h| h.name == bare || h.address.to_string() == bare).map(|i| self.hypervisor(i))
        }?;
        if let Some(user) = user {
            found.user = user.to_string();
        }
        Some(found)
    }

    /// Every machine of the inventory, for `--host` and for error messages.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.t.nodes.iter().map(|n| n.name.clone()).collect();
        names.push(self.t.scenario.load_balancer.name.clone());
        names.extend(self.t.scenario.hypervisors.iter().map(|h| h.name.clone()));
        names
    }
}
