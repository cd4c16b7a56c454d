//! Host identity: each machine a scenario names (node, new master, load balancer, hypervisor) has
//! a name of its own and a host address, and no name can be taken for an address.
//!
//! The executor routes a command by the host it names. A worker named `127.0.20.1` (the load
//! balancer's address) would otherwise receive the load balancer's commands, and one named like
//! the hypervisor `qm snapshot`; ssh, curl and the resolver also read `10.1`, `167772161`,
//! `0x7f.1` and `0177.0.0.1` as addresses (inet_aton), so those forms are refused as names too.

use crate::locate::FieldPath;
use crate::scenario::Scenario;
use crate::validate::{Problem, ScenarioErrorKind};
use std::net::{IpAddr, Ipv4Addr};

/// One machine as the scenario names it.
struct Machine<'s> {
    /// `node`, `new master`, `the load balancer`, `hypervisor`.
    what: &'static str,
    name: &'s str,
    address: Ipv4Addr,
    /// The machine's entry (`nodes[2]`, `load_balancer`).
    at: FieldPath,
}

fn machines(s: &Scenario) -> Vec<Machine<'_>> {
    let root = FieldPath::default;
    let mut all = Vec::new();
    for (i, n) in s.nodes.iter().enumerate() {
        all.push(Machine { what: "node", name: &n.name, address: n.address, at: root().key("nodes").index(i) });
    }
    for (i, n) in s.new_masters.iter().enumerate() {
        all.push(Machine { what: "new master", name: &n.name, address: n.address, at: root().key("new_masters").index(i) });
    }
    let lb = &s.load_balancer;
    if let Some(address) = lb.machine_address() {
        all.push(Machine { what: "the load balancer", name: &lb.name, address, at: root().key("load_balancer") });
    }
    for (i, h) in s.hypervisors.iter().enumerate() {
        if let Some(address) = h.address {
            all.push(Machine { what: "hypervisor", name: &h.name, address, at: root().key("hypervisors").index(i) });
        }
    }
    all
}

/// Whether `text` reads as an IP address to ssh, curl or the C resolver: IPv6, or IPv4 in any
/// `inet_aton` notation (one to four dot-separated parts, each decimal, `0x` hex or `0` octal).
///
/// ```
/// use plan_model::identity::reads_as_address;
/// assert!(reads_as_address("127.0.20.1") && reads_as_address("167772161") && reads_as_address("0x7f.1"));
/// assert!(reads_as_address("::1") && reads_as_address("10.1."));
/// assert!(!reads_as_address("k8s-node1") && !reads_as_address("node-10.1") && !reads_as_address("1e3"));
/// ```
pub fn reads_as_address(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    // A trailing dot makes a name absolute; the resolver still tries it as a number first.
    let text = text.strip_suffix('.').unwrap_or(text);
    let number = |part: &str| {
        let (digits, radix) = match part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            Some(hex) => (hex, 16),
            None if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
            None => (part, 10),
        };
        !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
    };
    let parts: Vec<&str> = text.split('.').collect();
    (1..=4).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty() && number(p))
}

/// Why `address` is not one a host can be reached at, if it is not: the unspecified address and
/// "this network" (0.0.0.0/8), multicast (224.0.0.0/4), the reserved block (240.0.0.0/4) and
/// broadcast. Loopback is a host address here (the lab and the tests live on it).
pub fn not_a_host_address(address: Ipv4Addr) -> Option<&'static str> {
    if address.is_unspecified() {
        Some("the unspecified address")
    } else if address.octets()[0] == 0 {
        Some("in 0.0.0.0/8, \"this network\"")
    } else if address.is_broadcast() {
        Some("the broadcast address")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if address.octets()[0] >= 240 {
        Some("in the reserved block 240.0.0.0/4")
    } else {
        None
    }
}

/// A name with the scenario's DNS zone taken off (`k8s-node1.home.arpa` is `k8s-node1`): the
/// executor finds a host by either form, so two machines may not share either.
fn bare<'n>(name: &'n str, zone: &str) -> &'n str {
    name.strip_suffix(zone).and_then(|n| n.strip_suffix('.')).filter(|n| !n.is_empty()).unwrap_or(name)
}

/// Checks that every machine has a host address, a name that does not read as an address, and a
/// name (with or without the DNS zone) no other machine has.
///
/// # Errors
/// The first problem, at the machine's `address` or `name`.
pub fn check(s: &Scenario) -> Result<(), Problem> {
    let all = machines(s);
    for m in &all {
        if let Some(why) = not_a_host_address(m.address) {
            let name = m.name;
            return Err(Problem {
                kind: ScenarioErrorKind::BadValue,
                path: m.at.clone().key("address"),
                message: format!("address {} of {} {name} is {why}, not an address a host can be reached at", m.address, m.what),
            });
        }
    }
    let vip = s.control_plane_endpoint.vip;
    if let Some(why) = not_a_host_address(vip) {
        return Err(Problem {
            kind: ScenarioErrorKind::BadValue,
            path: FieldPath::default().key("control_plane_endpoint").key("vip"),
            message: format!("the VIP {vip} is {why}, not an address clients can reach"),
        });
    }
    for (i, m) in all.iter().enumerate() {
        if reads_as_address(m.name) {
            let owner = all.iter().find(|other| other.address.to_string() == m.name);
            let whose = match owner {
                Some(o) if std::ptr::eq(o, m) => " (its own address)".to_string(),
                Some(o) => format!(" (the address of {} {})", o.what, o.name),
                None if m.name == vip.to_string() => " (the VIP)".to_string(),
                None => String::new(),
            };
            return Err(Problem {
                kind: ScenarioErrorKind::UnsafeValue,
                path: m.at.clone().key("name"),
                message: format!(
                    "{} name {:?} reads as an IP address{whose}: commands for it could reach another machine; give it a host name",
                    m.what, m.name
                ),
            });
        }
        let zone = &s.dns.zone;
        if let Some(first) = all[..i].iter().find(|other| bare(other.name, zone) == bare(m.name, zone)) {
            return Err(Problem {
                kind: ScenarioErrorKind::DuplicateName,
                path: m.at.clone().key("name"),
                message: format!(
                    "{} name {:?} is also the name of {} {:?} ({}): each machine needs a name of its own",
                    m.what, m.name, first.what, first.name, first.at
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ipv4_notation_and_ipv6_reads_as_an_address() {
        for text in ["127.0.20.1", "10.1", "10.0.1", "167772161", "0x7f.1", "0177.0.0.1", "0x7f000001", "::1", "fe80::1", "1.2.3.4."] {
            assert!(reads_as_address(text), "{text}");
        }
        for text in ["k8s-node1", "node-10", "10.1.x", "1.2.3.4.5", "0x", "08", "lab-cp-1.home.arpa", "", "."] {
            assert!(!reads_as_address(text), "{text}");
        }
    }

    #[test]
    fn only_unicast_addresses_are_host_addresses() {
        for bad in ["0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "239.1.1.1", "240.0.0.1"] {
            assert!(not_a_host_address(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for good in ["127.0.20.1", "10.0.20.1", "169.254.1.1", "192.168.1.1", "223.255.255.254"] {
            assert_eq!(not_a_host_address(good.parse().unwrap()), None, "{good}");
        }
    }

    #[test]
    fn a_name_is_bare_without_its_zone() {
        assert_eq!(bare("pfsense.home.arpa", "home.arpa"), "pfsense");
        assert_eq!(bare("pfsense", "home.arpa"), "pfsense");
        assert_eq!(bare("xhome.arpa", "home.arpa"), "xhome.arpa");
    }
}
