//! The fixed facts of a validated scenario, indexed for the model: nodes, hypervisors, consumers.

use crate::scenario::{ConsumerKind, HealthCheck, NodeRole, Scenario, StackHosts};
use crate::validate::{parse_version, CONSUMERS_MAX, NODES_MAX};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Why a node argument (`--fail cp`) names no single node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    /// No node has that name or short form.
    #[error("unknown node {wanted:?} (nodes: {})", .nodes.join(", "))]
    Unknown { wanted: String, nodes: Vec<String> },
    /// Several nodes could be meant.
    #[error("node {wanted:?} is ambiguous: {}", .candidates.join(", "))]
    Ambiguous { wanted: String, candidates: Vec<String> },
}

/// Index of a node in [`Topology::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeIx(pub u8);

impl NodeIx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of nodes as a 64-bit mask ([`NODES_MAX`] is 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct NodeSet(pub u64);

impl NodeSet {
    pub const EMPTY: NodeSet = NodeSet(0);
    pub fn of(node: NodeIx) -> Self {
        NodeSet(1 << node.0)
    }
    pub fn contains(self, node: NodeIx) -> bool {
        self.0 & (1 << node.0) != 0
    }
    pub fn with(self, node: NodeIx) -> Self {
        NodeSet(self.0 | (1 << node.0))
    }
    pub fn without(self, node: NodeIx) -> Self {
        NodeSet(self.0 & !(1 << node.0))
    }
    pub fn set(&mut self, node: NodeIx, on: bool) {
        *self = if on { self.with(node) } else { self.without(node) };
    }
    pub fn and(self, other: NodeSet) -> Self {
        NodeSet(self.0 & other.0)
    }
    pub fn or(self, other: NodeSet) -> Self {
        NodeSet(self.0 | other.0)
    }
    pub fn minus(self, other: NodeSet) -> Self {
        NodeSet(self.0 & !other.0)
    }
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The members, lowest index first; visits set bits only (the observations walk node
    /// sets on every transition, so this is on the model checker's hot path).
    pub fn iter(self) -> impl Iterator<Item = NodeIx> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let i = rest.trailing_zeros() as u8;
            rest &= rest - 1;
            Some(NodeIx(i))
        })
    }
}

/// What part a node plays in the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// The single control-plane node the cluster has today.
    ExistingMaster,
    /// A control-plane node the migration creates and joins.
    NewMaster,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    pub address: Ipv4Addr,
    pub kind: NodeKind,
    pub hypervisor: usize,
    pub vmid: Option<u32>,
    pub vcpu: Option<u32>,
    pub ram_gb: Option<f64>,
    pub disk_gb: Option<u32>,
    pub ram_used_gb: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consumer {
    pub name: String,
    pub kind: ConsumerKind,
    pub path: String,
    pub line: Option<u32>,
    pub oidc: bool,
    /// The stale DNS record its server names (`https://kubernetes.zone:6443`): deleting the
    /// record before the consumer moves to the VIP leaves it without an API.
    pub stale_record: Option<String>,
}

/// The scenario, indexed. Node order: the existing master, the new masters in join order, the workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub scenario: Scenario,
    pub nodes: Vec<Node>,
    pub consumers: Vec<Consumer>,
    pub version: (u32, u32),
    pub template_version: (u32, u32),
    /// Whether `kubeadm join --control-plane` adds etcd members as learners first.
    pub learner_mode: bool,
    /// Whether a joining control-plane node's kubelet.conf names its own apiserver
    /// ([`crate::facts::kubelet_local_mode`]).
    pub kubelet_local_mode: bool,
    pub health_check: HealthCheck,
    /// The new masters each hypervisor hosts, by index in the scenario's hypervisors: the RAM
    /// check reads them on every state the checker reaches.
    pub new_masters_by_hypervisor: Vec<NodeSet>,
    /// The new masters on hypervisors whose RAM they can over-commit
    /// ([`crate::capacity::may_over_commit`]): where none of them exists, no hypervisor is
    /// over-committed, and the RAM check after every transition sums nothing.
    pub ram_at_risk: NodeSet,
}

pub use crate::facts::learner_mode;

impl Topology {
    /// Indexes a scenario that [`crate::validate::validate`] accepted.
    ///
    /// # Panics
    /// On a scenario that did not pass validation (versions unparsable, more than 64 nodes).
    pub fn new(scenario: &Scenario) -> Topology {
        let hypervisor_of = |name: &str| scenario.hypervisors.iter().position(|h| h.name == name).expect("validated: hypervisor exists");
        let mut nodes = Vec::new();
        for n in scenario.nodes.iter().filter(|n| n.role == NodeRole::ControlPlane) {
            nodes.push(Node {
                name: n.name.clone(),
                address: n.address,
                kind: NodeKind::ExistingMaster,
                hypervisor: hypervisor_of(&n.hypervisor),
                vmid: n.vmid,
                vcpu: n.vcpu,
                ram_gb: n.ram_gb,
                disk_gb: n.disk_gb,
                ram_used_gb: n.ram_used_gb,
            });
        }
        for n in &scenario.new_masters {
            nodes.push(Node {
                name: n.name.clone(),
                address: n.address,
                kind: NodeKind::NewMaster,
                hypervisor: hypervisor_of(&n.hypervisor),
                vmid: n.vmid,
                vcpu: Some(n.vcpu),
                ram_gb: Some(n.ram_gb),
                disk_gb: Some(n.disk_gb),
                ram_used_gb: None,
            });
        }
        for n in scenario.nodes.iter().filter(|n| n.role == NodeRole::Worker) {
            nodes.push(Node {
                name: n.name.clone(),
                address: n.address,
                kind: NodeKind::Worker,
                hypervisor: hypervisor_of(&n.hypervisor),
                vmid: n.vmid,
                vcpu: n.vcpu,
                ram_gb: n.ram_gb,
                disk_gb: n.disk_gb,
                ram_used_gb: n.ram_used_gb,
            });
        }
        assert!(nodes.len() <= NODES_MAX && scenario.consumers.len() <= CONSUMERS_MAX, "validated: sizes fit the masks");
        let consumers = scenario
            .consumers
            .iter()
            .map(|c| Consumer {
                name: c.name.clone(),
                kind: c.kind,
                path: c.path.clone(),
                line: c.line,
                oidc: c.oidc,
                stale_record: crate::validate::stale_record_named(scenario, &c.server),
            })
            .collect();
        let version = parse_version(&scenario.kubernetes.version).expect("validated: version parses");
        let template_version = match &scenario.vm_template {
            Some(v) => parse_version(&v.kubernetes_version).expect("validated: version parses"),
            None => version,
        };
        let new_masters_by_hypervisor = (0..scenario.hypervisors.len())
            .map(|h| {
                nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.kind == NodeKind::NewMaster && n.hypervisor == h)
                    .fold(NodeSet::EMPTY, |set, (i, _)| set.with(NodeIx(i as u8)))
            })
            .collect();
        let mut t = Topology {
            scenario: scenario.clone(),
            new_masters_by_hypervisor,
            ram_at_risk: NodeSet::EMPTY,
            nodes,
            consumers,
            version,
            template_version,
            learner_mode: learner_mode(version, scenario.kubernetes.etcd_learner_mode),
            kubelet_local_mode: crate::facts::kubelet_local_mode(version),
            health_check: scenario.load_balancer.health_check,
        };
        t.ram_at_risk = (0..t.scenario.hypervisors.len())
            .filter(|h| crate::capacity::may_over_commit(&t, *h))
            .fold(NodeSet::EMPTY, |set, h| set.or(t.new_masters_by_hypervisor[h]));
        t
    }

    pub fn node(&self, ix: NodeIx) -> &Node {
        &self.nodes[ix.index()]
    }

    pub fn name(&self, ix: NodeIx) -> &str {
        &self.nodes[ix.index()].name
    }

    /// The port kube-apiserver listens on, on every master.
    pub fn apiserver_port(&self) -> u16 {
        self.scenario.kubernetes.apiserver_port.unwrap_or(self.scenario.control_plane_endpoint.port)
    }

    pub fn existing_master(&self) -> NodeIx {
        NodeIx(0)
    }

    pub fn new_masters(&self) -> impl Iterator<Item = NodeIx> + '_ {
        self.nodes.iter().enumerate().filter(|(_, n)| n.kind == NodeKind::NewMaster).map(|(i, _)| NodeIx(i as u8))
    }

    pub fn workers(&self) -> impl Iterator<Item = NodeIx> + '_ {
        self.nodes.iter().enumerate().filter(|(_, n)| n.kind == NodeKind::Worker).map(|(i, _)| NodeIx(i as u8))
    }

    pub fn all_nodes(&self) -> NodeSet {
        NodeSet(if self.nodes.len() == 64 { u64::MAX } else { (1u64 << self.nodes.len()) - 1 })
    }

    /// The masters once the migration is done.
    pub fn target_masters(&self) -> NodeSet {
        self.nodes.iter().enumerate().filter(|(_, n)| n.kind != NodeKind::Worker).fold(NodeSet::EMPTY, |s, (i, _)| s.with(NodeIx(i as u8)))
    }

    pub fn workers_set(&self) -> NodeSet {
        self.workers().fold(NodeSet::EMPTY, NodeSet::with)
    }

    /// Every consumer, as the mask of `Cluster::consumers_vip`.
    pub fn consumers_mask(&self) -> u64 {
        match self.consumers.len() {
            64 => u64::MAX,
            n => (1u64 << n) - 1,
        }
    }

    pub fn on_hypervisor(&self, hypervisor: usize) -> NodeSet {
        self.nodes.iter().enumerate().filter(|(_, n)| n.hypervisor == hypervisor).fold(NodeSet::EMPTY, |s, (i, _)| s.with(NodeIx(i as u8)))
    }

    /// Resolves an inventory name or a unique short form (`master-2` for `k8s-master-2`).
    ///
    /// # Errors
    /// The name is unknown, or the short form matches several nodes.
    /// The node `wanted` names: its inventory name, or a unique short form (a suffix after `-` or
    /// `.`: `master-2` for `k8s-master-2`).
    ///
    /// # Errors
    /// [`NodeNameError::Ambiguous`] when several names end in the short form, or, with none
    /// ending in it, several contain it (`cp` for `cp-1`, `cp-2`): the error lists them.
    /// [`NodeNameError::Unknown`] otherwise, with every node's name.
    ///
    /// ```
    /// # let text = include_str!("../../scenarios/homelab.yaml");
    /// # let t = plan_model::topology::Topology::new(&plan_model::validate::parse_scenario(text).unwrap());
    /// assert_eq!(t.name(t.resolve("master-2").unwrap()), "k8s-master-2");
    /// assert!(t.resolve("node").unwrap_err().to_string().contains("k8s-node1, k8s-node2"));
    /// ```
    pub fn resolve(&self, wanted: &str) -> Result<NodeIx, NodeNameError> {
        if let Some(i) = self.nodes.iter().position(|n| n.name == wanted) {
            return Ok(NodeIx(i as u8));
        }
        let names = |keep: &dyn Fn(&str) -> bool| -> Vec<usize> {
            self.nodes.iter().enumerate().filter(|(_, n)| keep(&n.name)).map(|(i, _)| i).collect()
        };
        let ends_in_short_form = |name: &str| {
            name.len() > wanted.len() && name.ends_with(wanted) && matches!(name.as_bytes()[name.len() - wanted.len() - 1], b'-' | b'.')
        };
        let mut matches = names(&ends_in_short_form);
        if matches.is_empty() && !wanted.is_empty() {
            // Not a short form of any name: only worth naming candidates when it cannot be read
            // as one node (a unique part of a name is not a form we resolve).
            matches = names(&|name: &str| name.contains(wanted));
            if matches.len() < 2 {
                matches.clear();
            }
        }
        let named = |ixs: &[usize]| ixs.iter().map(|i| self.nodes[*i].name.clone()).collect::<Vec<_>>();
        match matches.as_slice() {
            [one] => Ok(NodeIx(*one as u8)),
            [] => Err(NodeNameError::Unknown { wanted: wanted.to_string(), nodes: named(&(0..self.nodes.len()).collect::<Vec<_>>()) }),
            many => Err(NodeNameError::Ambiguous { wanted: wanted.to_string(), candidates: named(many) }),
        }
    }

    pub fn stack_starts_as_list(&self) -> bool {
        self.scenario.config_stack.as_ref().is_some_and(|c| c.hosts == StackHosts::List)
    }

    /// etcd quorum for `voters` voting members.
    pub fn quorum(voters: u32) -> u32 {
        voters / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_scenario;

    fn homelab() -> Topology {
        Topology::new(&parse_scenario(include_str!("../../scenarios/homelab.yaml")).unwrap())
    }

    #[test]
    fn nodes_are_ordered_master_new_masters_workers() {
        let t = homelab();
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["k8s-master", "k8s-master-2", "k8s-master-3", "k8s-node1", "k8s-node2", "k8s-node3", "k8s-node4"]);
        assert_eq!(t.target_masters().len(), 3);
    }

    #[test]
    fn short_names_resolve_when_unique() {
        let t = homelab();
        assert_eq!(t.resolve("master-2"), Ok(NodeIx(1)));
        assert_eq!(t.resolve("k8s-node4"), Ok(NodeIx(6)));
        assert!(t.resolve("node9").unwrap_err().to_string().contains("unknown node"));
        assert!(t.resolve("master").is_ok(), "k8s-master is the only name ending in -master");
    }

    #[test]
    fn a_part_of_several_names_lists_them_as_candidates() {
        let t = homelab();
        let candidates = |wanted: &str| match t.resolve(wanted) {
            Err(NodeNameError::Ambiguous { candidates, .. }) => candidates,
            other => panic!("{wanted}: {other:?}"),
        };
        assert_eq!(candidates("node"), ["k8s-node1", "k8s-node2", "k8s-node3", "k8s-node4"]);
        assert_eq!(candidates("k8s"), ["k8s-master", "k8s-master-2", "k8s-master-3", "k8s-node1", "k8s-node2", "k8s-node3", "k8s-node4"]);
        // A part of one name only is not resolved: a short form is a suffix after `-` or `.`.
        assert!(matches!(t.resolve("node4x"), Err(NodeNameError::Unknown { .. })));
        assert!(matches!(t.resolve("ster-2"), Err(NodeNameError::Unknown { .. })));
        assert!(matches!(t.resolve(""), Err(NodeNameError::Unknown { .. })));
    }
}
