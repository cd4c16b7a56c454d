//! Where each master of a scenario lives on the lab: its loopback address and its ports.
//!
//! An inventory address `a.b.c.d` becomes `127.0.c.d` (10.0.20.100 -> 127.0.20.100): the last two
//! octets stay, so a lab reads like the scenario. Ports are the real ones (2379, 2380, the VIP
//! port) plus an offset, so several labs of one scenario can run side by side.

use crate::error::LabError;
use plan_model::plan::Plan;
use plan_model::scenario::Scenario;
use plan_model::topology::{NodeIx, Topology};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// etcd's client port before the offset.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port before the offset.
pub const ETCD_PEER_PORT: u16 = 2380;
/// HAProxy's stats port before the offset (bound on the VIP's loopback address).
pub const HAPROXY_STATS_PORT: u16 = 8404;

/// The loopback address that stands for `address` on the lab.
pub fn loopback_of(address: Ipv4Addr) -> Ipv4Addr {
    loopback_in(address, 0)
}

/// The loopback address that stands for `address` on a lab in the range `127.range.0.0/16`.
pub fn loopback_in(address: Ipv4Addr, range: u8) -> Ipv4Addr {
    let [_, _, c, d] = address.octets();
    Ipv4Addr::new(127, range, c, d)
}

/// Refuses anything outside 127.0.0.0/8: the lab never dials a real machine.
///
/// # Errors
/// [`LabError::NotLoopback`] for any other address.
pub fn guard_loopback(address: Ipv4Addr) -> Result<Ipv4Addr, LabError> {
    if address.is_loopback() {
        Ok(address)
    } else {
        Err(LabError::NotLoopback(address))
    }
}

/// A port plus the lab's offset, checked.
pub fn port(base: u16, offset: u16) -> Result<u16, LabError> {
    base.checked_add(offset).ok_or(LabError::PortRange { base, offset })
}

/// One master on the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    pub name: String,
    pub node: u8,
    /// The inventory address (never dialled).
    pub address: Ipv4Addr,
    pub loopback: Ipv4Addr,
    pub client_port: u16,
    pub peer_port: u16,
}

impl LabHost {
    pub fn ix(&self) -> NodeIx {
        NodeIx(self.node)
    }
    pub fn client_url(&self) -> String {
        format!("http://{}:{}", self.loopback, self.client_port)
    }
    pub fn peer_url(&self) -> String {
        format!("http://{}:{}", self.loopback, self.peer_port)
    }
}

/// Every master of a scenario and the VIP, mapped into loopback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabLayout {
    pub hosts: Vec<LabHost>,
    pub vip: Ipv4Addr,
    pub vip_port: u16,
    pub stats_port: u16,
    pub offset: u16,
}

impl LabLayout {
    /// Maps the scenario's masters (existing and new) and its VIP into loopback.
    ///
    /// # Errors
    /// Two addresses that map to one loopback address, an address that maps to `127.0.0.0` or
    /// `127.0.255.255`, or an offset that pushes a port past 65535.
    pub fn new(t: &Topology, offset: u16) -> Result<LabLayout, LabError> {
        let client_port = port(ETCD_CLIENT_PORT, offset)?;
        let peer_port = port(ETCD_PEER_PORT, offset)?;
        let mut hosts: Vec<LabHost> = Vec::new();
        let vip_address = t.scenario.control_plane_endpoint.vip;
        let vip = loopback_of(vip_address);
        for ix in t.target_masters().iter() {
            let node = t.node(ix);
            let loopback = usable(&node.name, node.address, 0)?;
            if let Some(other) = hosts.iter().find(|h| h.loopback == loopback) {
                return Err(LabError::AddressClash { node: node.name.clone(), other: other.name.clone(), address: node.address, loopback });
            }
            if loopback == vip {
                return Err(LabError::AddressClash {
                    node: node.name.clone(),
                    other: "the VIP".to_string(),
                    address: node.address,
                    loopback,
                });
            }
            hosts.push(LabHost { name: node.name.clone(), node: ix.0, address: node.address, loopback, client_port, peer_port });
        }
        usable("the VIP", vip_address, 0)?;
        Ok(LabLayout {
            hosts,
            vip,
            vip_port: port(t.scenario.control_plane_endpoint.port, offset)?,
            stats_port: port(HAPROXY_STATS_PORT, offset)?,
            offset,
        })
    }

    /// Checks that every address and port of the lab can be bound now, so that a second lab on
    /// the same offset is refused before it talks to the first one's processes.
    ///
    /// # Errors
    /// [`LabError::PortBusy`] for the first one in use.
    pub fn check_ports_free(&self) -> Result<(), LabError> {
        let mut wanted: Vec<(Ipv4Addr, u16)> =
            self.hosts.iter().flat_map(|h| [(h.loopback, h.client_port), (h.loopback, h.peer_port)]).collect();
        wanted.push((self.vip, self.vip_port));
        for (address, port) in wanted {
            if std::net::TcpListener::bind((guard_loopback(address)?, port)).is_err() {
                return Err(LabError::PortBusy { address, port });
            }
        }
        Ok(())
    }

    pub fn host(&self, node: NodeIx) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.node == node.0)
    }

    /// The master whose etcd member has this peer URL.
    pub fn by_peer_url(&self, url: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.peer_url() == url)
    }
}

/// Every machine address of a scenario and where it lives on the lab, for a run of the executor:
/// the scenario and the plan's text are rewritten with it, so `plan execute` dials only loopback.
///
/// Only the scenario's own addresses move (its machines, the VIP, the LB pool and DNS records);
/// any other address a command names stays as written, and the executor's loopback guard refuses
/// it before anything is dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackMap {
    /// Inventory address to loopback address, one pair per address the scenario names.
    pub pairs: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl LoopbackMap {
    /// The map of `scenario`: identity for what is on loopback already.
    ///
    /// # Errors
    /// Two machines (nodes, the load balancer, hypervisors, the VIP) that map to one loopback
    /// address, or one that maps to a network or broadcast-like address (`127.0.0.0`, `127.0.255.255`).
    pub fn of(scenario: &Scenario) -> Result<LoopbackMap, LabError> {
        LoopbackMap::in_range(scenario, 0)
    }

    /// The map of `scenario` into `127.range.0.0/16`: every address keeps its last two octets, one
    /// on loopback already too (`127.0.20.10` -> `127.1.20.10` in range 1), so that two labs of one
    /// scenario, each in a range of its own, do not meet.
    ///
    /// # Errors
    /// As [`Self::of`].
    pub fn in_range(scenario: &Scenario, range: u8) -> Result<LoopbackMap, LabError> {
        let mut machines: Vec<(String, Ipv4Addr)> = Vec::new();
        machines.extend(scenario.nodes.iter().map(|n| (n.name.clone(), n.address)));
        machines.extend(scenario.new_masters.iter().map(|n| (n.name.clone(), n.address)));
        machines.extend(scenario.load_balancer.machine_address().map(|a| (scenario.load_balancer.name.clone(), a)));
        machines.extend(scenario.hypervisors.iter().filter_map(|h| Some((h.name.clone(), h.address?))));
        machines.push(("the VIP".to_string(), scenario.control_plane_endpoint.vip));
        let mut pairs: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
        let mut owners: Vec<(String, Ipv4Addr)> = Vec::new();
        for (name, address) in machines {
            let loopback = usable(&name, address, range)?;
            if let Some((other, _)) = owners.iter().find(|(_, l)| *l == loopback) {
                return Err(LabError::AddressClash { node: name, other: other.clone(), address, loopback });
            }
            owners.push((name, loopback));
            pairs.push((address, loopback));
        }
        // Addresses that are no machine: they move too, and may not land on a machine's.
        let mut others: Vec<Ipv4Addr> = scenario.dns.records.iter().map(|r| r.address).collect();
        if let Some(pool) = &scenario.metallb_pool {
            others.extend([pool.first, pool.last]);
        }
        for address in others {
            if pairs.iter().any(|(a, _)| *a == address) {
                continue;
            }
            let loopback = loopback_in(address, range);
            if let Some((other, _)) = owners.iter().find(|(_, l)| *l == loopback) {
                return Err(LabError::AddressClash { node: address.to_string(), other: other.clone(), address, loopback });
            }
            pairs.push((address, loopback));
        }
        Ok(LoopbackMap { pairs })
    }

    /// Whether nothing moves (the scenario is on loopback already).
    pub fn is_identity(&self) -> bool {
        self.pairs.iter().all(|(a, l)| a == l)
    }

    /// `text` with every address of the map replaced, as a whole address only: `10.0.20.10` in
    /// `10.0.20.100` or `110.0.20.10` is another address and stays.
    pub fn text(&self, text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        'scan: while i < text.len() {
            let at_boundary = i == 0 || !is_address_byte(bytes[i - 1]);
            if at_boundary && bytes[i].is_ascii_digit() {
                for (from, to) in &self.pairs {
                    let from = from.to_string();
                    let end = i + from.len();
                    if text[i..].starts_with(&from) && (end == text.len() || !is_address_byte(bytes[end]) || trailing_dot(bytes, end)) {
                        out.push_str(&to.to_string());
                        i = end;
                        continue 'scan;
                    }
                }
            }
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
        out
    }

    /// The scenario with every address moved (machines, VIP, pool, DNS, and addresses inside
    /// strings such as a consumer's server URL).
    ///
    /// # Errors
    /// The moved scenario does not read back (it always does: only addresses change).
    pub fn scenario(&self, scenario: &Scenario) -> Result<Scenario, LabError> {
        self.moved(scenario, "the scenario")
    }

    /// The plan on the moved topology `moved`: its operations' parameters with every address
    /// moved (a server URL, an address in a verification), each step derived again on `moved`
    /// (its commands are the moved scenario's rendering of the same operations); the text the
    /// operator reads (titles, checks, rollbacks, notes) moved too.
    ///
    /// # Errors
    /// An operation does not fit the moved topology (it always does: only addresses change).
    pub fn plan(&self, plan: &Plan, moved: &Topology) -> Result<Plan, LabError> {
        let words = self.moved(plan, "the plan")?;
        let mut derived = plan
            .on_topology(moved, &|text| self.text(text))
            .map_err(|why| LabError::NotRehearsable { what: "the plan on loopback".to_string(), why })?;
        for (step, read) in derived.steps.iter_mut().zip(words.steps) {
            (step.title, step.checks, step.rollback, step.note, step.disruption) =
                (read.title, read.checks, read.rollback, read.note, read.disruption);
        }
        derived.rollbacks = words.rollbacks;
        Ok(derived)
    }

    fn moved<T: serde::Serialize + serde::de::DeserializeOwned>(&self, v: &T, what: &str) -> Result<T, LabError> {
        let unreadable = |e: serde_json::Error| LabError::NotRehearsable { what: format!("{what} on loopback"), why: e.to_string() };
        let mut value = serde_json::to_value(v).map_err(unreadable)?;
        self.rewrite(&mut value);
        serde_json::from_value(value).map_err(unreadable)
    }

    fn rewrite(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.text(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.rewrite(v)),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| self.rewrite(v)),
            _ => {}
        }
    }
}

fn is_address_byte(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

/// A dot that ends a sentence (`... 10.0.20.1.`), not one that continues an address.
fn trailing_dot(bytes: &[u8], end: usize) -> bool {
    bytes[end] == b'.' && bytes.get(end + 1).is_none_or(|b| !b.is_ascii_digit())
}

fn usable(name: &str, address: Ipv4Addr, range: u8) -> Result<Ipv4Addr, LabError> {
    let loopback = loopback_in(address, range);
    let [_, _, c, d] = loopback.octets();
    if (c, d) == (0, 0) || (c, d) == (255, 255) {
        return Err(LabError::UnusableAddress { node: name.to_string(), address, loopback });
    }
    guard_loopback(loopback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;

    fn topology(text: &str) -> Topology {
        Topology::new(&parse_scenario(text).expect("scenario parses"))
    }

    const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");

    #[test]
    fn homelab_masters_keep_their_last_two_octets() {
        let layout = LabLayout::new(&topology(HOMELAB), 100).expect("homelab maps");
        let pairs: Vec<(String, String)> = layout.hosts.iter().map(|h| (h.name.clone(), h.loopback.to_string())).collect();
        assert_eq!(
            pairs,
            [
                ("k8s-master".to_string(), "127.0.20.100".to_string()),
                ("k8s-master-2".to_string(), "127.0.20.110".to_string()),
                ("k8s-master-3".to_string(), "127.0.20.111".to_string()),
            ]
        );
        assert_eq!(layout.vip.to_string(), "127.0.20.99");
        assert_eq!(layout.hosts[0].client_url(), "http://127.0.20.100:2479");
        assert_eq!(layout.vip_port, 6543);
        assert!(layout.hosts.iter().all(|h| h.loopback.is_loopback()));
    }

    #[test]
    fn clashing_last_octets_are_refused() {
        let text = HOMELAB.replace("address: 10.0.20.110", "address: 10.9.20.100");
        match LabLayout::new(&topology(&text), 0) {
            Err(LabError::AddressClash { node, other, .. }) => {
                assert_eq!((node.as_str(), other.as_str()), ("k8s-master-2", "k8s-master"));
            }
            other => panic!("expected a clash, got {other:?}"),
        }
    }

    #[test]
    fn offsets_past_the_port_range_are_refused() {
        assert!(matches!(LabLayout::new(&topology(HOMELAB), 65000), Err(LabError::PortRange { .. })));
    }

    #[test]
    fn the_homelab_moves_whole_addresses_into_loopback_and_nothing_else() {
        let scenario = parse_scenario(HOMELAB).expect("homelab parses");
        let map = LoopbackMap::of(&scenario).expect("homelab maps");
        assert!(!map.is_identity());
        // 10.0.20.10 is no address of the scenario; 10.0.20.100 is, and a prefix must not match.
        assert_eq!(
            map.text("curl https://10.0.20.100:6443 10.0.20.1000 110.0.20.100 10.0.20.10 ssh root@192.168.1.127."),
            "curl https://127.0.20.100:6443 10.0.20.1000 110.0.20.100 10.0.20.10 ssh root@127.0.1.127."
        );
        let moved = map.scenario(&scenario).expect("the moved scenario reads back");
        assert_eq!(moved.control_plane_endpoint.vip, Ipv4Addr::new(127, 0, 20, 99));
        assert_eq!(moved.load_balancer.address, Some(Ipv4Addr::new(127, 0, 20, 1)));
        assert_eq!(moved.hypervisors[0].address, Some(Ipv4Addr::new(127, 0, 1, 127)));
        assert!(moved.consumers.iter().all(|c| c.server == "https://127.0.20.100:6443"), "{:?}", moved.consumers);
        let yaml = serde_json::to_string(&moved).expect("serialises");
        assert!(!yaml.contains("10.0.20.") && !yaml.contains("192.168."), "{yaml}");
        let plan = plan_model::planner::generate(&Topology::new(&scenario));
        let moved_t = Topology::new(&moved);
        let moved_plan = map.plan(&plan, &moved_t).expect("the moved plan reads back");
        assert!(moved_plan.steps.iter().zip(&plan.steps).all(|(m, s)| m.actions == s.actions && m.id == s.id), "the twin's actions stay");
        let text = serde_json::to_string(&moved_plan).expect("serialises");
        assert!(!text.contains("10.0.20.") && !text.contains("192.168."), "{text}");
        assert!(text.contains("ssh root@127.0.1.127 'qm snapshot 200"), "the hypervisor's address moves in the commands");
        // What runs moves too: the commands' parts are the moved scenario's.
        let parts = format!("{:?}", moved_plan.steps.iter().flat_map(|s| &s.commands).map(|c| &c.parts).collect::<Vec<_>>());
        assert!(!parts.contains("10.0.20.") && parts.contains("127.0.20.100:6443"), "{parts}");
        // The names, paths and sizes stay.
        assert_eq!(
            (moved.name.as_str(), moved.nodes.len(), moved.infra_repo.as_str()),
            ("homelab", scenario.nodes.len(), scenario.infra_repo.as_str())
        );
    }

    #[test]
    fn a_scenario_on_loopback_maps_to_itself_and_clashes_are_refused() {
        let loopback = parse_scenario(include_str!("../../scenarios/loopback.yaml")).expect("loopback parses");
        assert!(LoopbackMap::of(&loopback).expect("maps").is_identity());
        // The LB at 10.1.20.100 lands where the existing master does.
        let clash = parse_scenario(&HOMELAB.replace("address: 10.0.20.1\n", "address: 10.1.20.100\n")).expect("parses");
        match LoopbackMap::of(&clash) {
            Err(LabError::AddressClash { node, other, .. }) => assert_eq!((node.as_str(), other.as_str()), ("pfsense", "k8s-master")),
            other => panic!("expected a clash, got {other:?}"),
        }
    }

    #[test]
    fn only_loopback_passes_the_guard() {
        assert!(guard_loopback(Ipv4Addr::new(127, 0, 20, 100)).is_ok());
        assert!(matches!(guard_loopback(Ipv4Addr::new(10, 0, 20, 100)), Err(LabError::NotLoopback(_))));
    }
}
