//! Where each master of a scenario lives on the lab: its loopback address and its ports.
//!
//! An inventory address `a.b.c.d` becomes `127.0.c.d` (10.0.20.100 -> 127.0.20.100): the last two
//! octets stay, so a lab reads like the scenario. Ports are the real ones (2379, 2380, the VIP
//! port) plus an offset, so several labs of one scenario can run side by side.

use crate::error::LabError;
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
    let [_, _, c, d] = address.octets();
    Ipv4Addr::new(127, 0, c, d)
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
            let loopback = usable(&node.name, node.address)?;
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
        usable("the VIP", vip_address)?;
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

fn usable(name: &str, address: Ipv4Addr) -> Result<Ipv4Addr, LabError> {
    let loopback = loopback_of(address);
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
    fn only_loopback_passes_the_guard() {
        assert!(guard_loopback(Ipv4Addr::new(127, 0, 20, 100)).is_ok());
        assert!(matches!(guard_loopback(Ipv4Addr::new(10, 0, 20, 100)), Err(LabError::NotLoopback(_))));
    }
}
