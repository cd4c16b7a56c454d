//! Where each machine of a scenario lives on the lab: its loopback address.
//!
//! An inventory address `a.b.c.d` becomes `127.N.c.d` in the lab's range `127.N.0.0/16`
//! (10.0.20.100 -> 127.0.20.100 in range 0): the last two octets stay, so a lab reads like the
//! scenario. Ports are the real ones (etcd's 2379 and 2380, the VIP's port).

use crate::error::LabError;
use plan_model::plan::Plan;
use plan_model::scenario::Scenario;
use plan_model::topology::Topology;
use std::net::Ipv4Addr;

/// etcd's client port.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port.
pub const ETCD_PEER_PORT: u16 = 2380;
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
    /// The map of `scenario` into `127.range.0.0/16`: every address keeps its last two octets, one
    /// on loopback already too (`127.0.20.10` -> `127.1.20.10` in range 1), so that two labs of one
    /// scenario, each in a range of its own, do not meet. In range 0 it is the identity for what is
    /// on loopback already.
    ///
    /// # Errors
    /// Two machines (nodes, the load balancer, hypervisors, the VIP) that map to one loopback
    /// address, or one that maps to a network or broadcast-like address (`127.0.0.0`, `127.0.255.255`).
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

    const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");

    #[test]
    fn the_homelab_moves_whole_addresses_into_loopback_and_nothing_else() {
        let scenario = parse_scenario(HOMELAB).expect("homelab parses");
        let map = LoopbackMap::in_range(&scenario, 0).expect("homelab maps");
        assert!(!map.pairs.iter().all(|(a, l)| a == l), "addresses move");
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
        assert!(LoopbackMap::in_range(&loopback, 0).expect("maps").pairs.iter().all(|(a, l)| a == l), "nothing moves");
        // The LB at 10.1.20.100 lands where the existing master does.
        let clash = parse_scenario(&HOMELAB.replace("address: 10.0.20.1\n", "address: 10.1.20.100\n")).expect("parses");
        match LoopbackMap::in_range(&clash, 0) {
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
