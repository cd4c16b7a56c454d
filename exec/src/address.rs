//! Finds the destinations a command's text names: IPv4 in every notation `inet_aton` (and so
//! ssh, ping, nc, curl) accepts, IPv6 literals, and `host:port`.
//!
//! A reading of text, for the loopback guard's courtesy check; see [`crate::guard`] for what it
//! cannot see.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bare integers up to this are read as ports or counts, not as addresses (`nc 127.0.0.1 22`).
pub const PORT_MAX: u32 = 65_535;

/// One part of a dotted address as `inet_aton` reads it: `0x` hex, a leading `0` octal, else
/// decimal.
fn inet_part(part: &str) -> Option<u32> {
    if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        return if hex.is_empty() { Some(0) } else { u32::from_str_radix(hex, 16).ok() };
    }
    if part.len() > 1 && part.starts_with('0') {
        return u32::from_str_radix(&part[1..], 8).ok();
    }
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// `text` as `inet_aton` reads it: one to four parts, the last filling the bytes left
/// (`10.1` is 10.0.0.1, `167772161` and `0x0a000001` are 10.0.0.1, `012.0.0.1` is 10.0.0.1).
///
/// ```
/// use std::net::Ipv4Addr;
/// use plan_exec::address::inet_aton;
/// assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
/// assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::LOCALHOST));
/// assert_eq!(inet_aton("v1.34"), None);
/// ```
pub fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let parts: Vec<u32> = text.split('.').map(inet_part).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if parts.len() > 4 || leading.iter().any(|p| *p > 255) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if last_bits < 32 && *last >= 1 << last_bits {
        return None;
    }
    let high = leading.iter().enumerate().fold(0u32, |acc, (i, p)| acc | (p << (24 - 8 * i as u32)));
    Some(Ipv4Addr::from(high | last))
}

/// Whether `address` stays on this machine: 127.0.0.0/8, `::1`, or a v4-mapped loopback.
pub fn is_loopback(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The words of a command: split at white space, quotes and shell punctuation; `=` splits too
/// (`--endpoints=…`, `-connect=…`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || "'\"|;&()`,=<>{}".contains(c)).filter(|w| !w.is_empty())
}

/// The host of `host:port` (`[v6]:port` too), or the word itself.
fn without_port(word: &str) -> &str {
    if let Some(rest) = word.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match word.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => word,
    }
}

/// An IPv6 literal: brackets and a `%zone` taken off.
fn ipv6(word: &str) -> Option<Ipv6Addr> {
    let host = without_port(word);
    let host = host.split('%').next().unwrap_or(host);
    (host.matches(':').count() >= 2).then(|| host.parse().ok()).flatten()
}

/// Every address the text names in a notation that is not mistaken for something else: four
/// dotted parts in any base (`012.0.0.1`, `0x0a.0.0.1`), one `0x` hex number, an IPv6 literal.
/// `10.1` and bare integers are left to [`dialled_address`], where a program is known to dial:
/// elsewhere they are versions and counts.
///
/// ```
/// use plan_exec::address::addresses;
/// assert_eq!(addresses("ping 012.0.0.1; curl -g http://[fe80::1]/").len(), 2);
/// assert!(addresses("kubeadm v1.34.0 sleep 0.5").is_empty());
/// ```
pub fn addresses(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for word in words(text) {
        // A URL's scheme and path are not hosts: read its authority only.
        let word = word.split_once("://").map_or(word, |(_, rest)| rest.split('/').next().unwrap_or(rest));
        let word = word.split('@').next_back().unwrap_or(word);
        if let Some(v6) = ipv6(word) {
            found.push(IpAddr::V6(v6));
            continue;
        }
        let host = without_port(word).trim_end_matches('.');
        let dotted_four = host.split('.').count() == 4 && host.starts_with(|c: char| c.is_ascii_digit());
        let hex = host.len() > 2 && (host.starts_with("0x") || host.starts_with("0X")) && !host.contains('.');
        if dotted_four || hex {
            if let Some(v4) = inet_aton(host) {
                found.push(IpAddr::V4(v4));
            }
        }
    }
    found
}

/// The address an argument of a dialling program (nc, ping, curl…) names in any notation,
/// `10.1` and `167772161` included; bare integers up to [`PORT_MAX`] are ports and counts.
pub fn dialled_address(argument: &str) -> Option<IpAddr> {
    if argument.starts_with('-') {
        return None;
    }
    if let Some(v6) = ipv6(argument) {
        return Some(IpAddr::V6(v6));
    }
    // `TCP:host:port` (socat) names the host in the middle.
    let fields: Vec<&str> = argument.split(':').collect();
    let host = match fields.as_slice() {
        [_, host, _port] => host,
        _ => without_port(argument),
    };
    let address = inet_aton(host)?;
    let bare = host.bytes().all(|b| b.is_ascii_digit());
    (!bare || u32::from(address) > PORT_MAX).then_some(IpAddr::V4(address))
}

/// Every `name:port` whose name is not `localhost` and not an address (addresses are judged by
/// [`addresses`]): `openssl s_client -connect api:6443`, `socat - TCP:lb:9000`.
pub fn named_host_ports(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for word in words(text) {
        if word.contains("://") || word.contains('/') {
            continue;
        }
        // `TCP:name:port`, `TCP4:…` (socat): the last two fields.
        let mut fields = word.rsplitn(3, ':');
        let (Some(port), Some(host)) = (fields.next(), fields.next()) else { continue };
        let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        let name = host.starts_with(|c: char| c.is_ascii_alphabetic())
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && inet_aton(host).is_none();
        if port_ok && name && !host.eq_ignore_ascii_case("localhost") {
            found.push(host);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn every_inet_aton_notation_reads_as_the_address() {
        for text in ["10.0.0.1", "10.1", "10.0.1", "167772161", "0x0a000001", "0xA000001", "012.0.0.1", "0xa.0.0.01", "012.0x0.1"] {
            assert_eq!(inet_aton(text), Some(Ipv4Addr::new(10, 0, 0, 1)), "{text}");
        }
        for text in ["256.1", "1.2.3.4.5", "08.1.1.1", "0x", "abc", "10.70000.1", ""] {
            assert!(text == "0x" || inet_aton(text).is_none(), "{text}");
        }
        assert_eq!(inet_aton("127.1"), Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn addresses_in_text_include_octal_hex_and_ipv6() {
        assert_eq!(addresses("nc 012.0.0.1 22"), vec![TEN]);
        assert_eq!(addresses("ping 0x0a000001"), vec![TEN]);
        assert_eq!(addresses("curl https://0xa.0.0.1:6443/x"), vec![TEN]);
        let v6 = addresses("ping -6 fe80::1%eth0; curl -g https://[2001:db8::1]:6443; nc ::ffff:10.0.0.1 22");
        assert_eq!(v6.len(), 3, "{v6:?}");
        assert!(v6.iter().all(|a| !is_loopback(*a)), "{v6:?}");
        assert!(addresses("curl https://[::1]:6443 ::ffff:127.0.0.1").iter().all(|a| is_loopback(*a)));
        // Versions, durations, counts, modes and hashes are not addresses.
        assert!(addresses(
            "kubeadm upgrade apply v1.34.2 --kubernetes-version 1.34.2; sleep 0.5; install -m 600; timeout -k 5 90; chown 1000:1000"
        )
        .is_empty());
    }

    #[test]
    fn dialling_programs_arguments_read_in_every_notation() {
        for argument in ["10.1", "167772161", "0x0a000001", "012.0.0.1", "10.1:22", "TCP:10.1:22", "[::ffff:10.0.0.1]:22"] {
            let found = dialled_address(argument).unwrap_or_else(|| panic!("{argument}"));
            assert!(!is_loopback(found), "{argument}");
        }
        for argument in ["22", "6443", "-z", "127.1", "2130706433"] {
            assert!(dialled_address(argument).is_none_or(is_loopback), "{argument}");
        }
    }

    #[test]
    fn names_with_a_port_are_found_except_localhost() {
        assert_eq!(named_host_ports("echo | openssl s_client -connect k8s-master:6443"), vec!["k8s-master"]);
        assert_eq!(named_host_ports("socat - TCP:lb.lan:9000"), vec!["lb.lan"]);
        assert!(named_host_ports("nc localhost:22 127.0.0.1:22 https://name:6443/x sha256:abc chown root:root x:y").is_empty());
    }
}
