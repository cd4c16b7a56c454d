//! What the hosts show, in the model's terms, and where it differs from the twin (drift).
//!
//! Each observer is a small function reading one thing on one host: the `server:` of a node's
//! kubelet.conf, the SANs of a master's apiserver certificate. Its answer is a [`Fact`] about a
//! field of [`Cluster`]; [`drift`] compares facts with the twin's state.

use crate::target::Hosts;
use crate::transport::{FileRead, Request, Transport};
use crate::ExecError;
use plan_model::cluster::Cluster;
use plan_model::topology::{NodeIx, Topology};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a node's kubelet reads its apiserver from.
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// The apiserver's serving certificate.
pub const APISERVER_CERT: &str = "/etc/kubernetes/pki/apiserver.crt";
/// Bound on one observation command.
pub const OBSERVE_TIMEOUT_S: u64 = 30;

/// The model field a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    /// `kubelet_vip`: the node's kubelet.conf server is the VIP.
    KubeletOnVip,
    /// `cert_present` and `cert_vip`: the apiserver cert is on disk and carries the VIP SAN.
    CertHasVip,
}

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Field::KubeletOnVip => "kubelet.conf server is the VIP",
            Field::CertHasVip => "apiserver cert carries the VIP SAN",
        }
    }
}

/// What was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seen {
    Yes,
    No,
    /// The file is not there.
    Missing,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Seen::Yes => "yes",
            Seen::No => "no",
            Seen::Missing => "file missing",
        })
    }
}

/// One observed fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub node: String,
    pub field: Field,
    pub seen: Seen,
    /// The line that shows it (`server: https://…`).
    pub evidence: String,
}

/// Everything one observation found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub facts: Vec<Fact>,
    /// Hosts the twin says are up that did not answer, with the reason.
    pub unreachable: Vec<(String, String)>,
}

/// A difference between the hosts and the twin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub node: String,
    pub what: String,
    pub twin: String,
    pub observed: String,
    pub evidence: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: twin {}, observed {}", self.node, self.what, self.twin, self.observed)?;
        if !self.evidence.is_empty() {
            write!(f, " ({})", self.evidence)?;
        }
        Ok(())
    }
}

/// Reads a kubelet.conf's `server:` and says whether it is the VIP.
pub fn kubelet_on_vip(text: &str, t: &Topology) -> (Seen, String) {
    let endpoint = &t.scenario.control_plane_endpoint;
    let Some(line) = text.lines().map(str::trim).find(|l| l.starts_with("server:")) else {
        return (Seen::No, "no server: line".to_string());
    };
    let url = line.trim_start_matches("server:").trim();
    let host = url.trim_start_matches("https://").split(['/', ':']).next().unwrap_or_default();
    let on_vip = host == endpoint.vip.to_string() || host == endpoint.fqdn;
    (if on_vip { Seen::Yes } else { Seen::No }, line.to_string())
}

/// Reads `openssl x509 -noout -ext subjectAltName` output and says whether it has the VIP.
pub fn cert_has_vip(sans: &str, t: &Topology) -> (Seen, String) {
    let vip = format!("IP Address:{}", t.scenario.control_plane_endpoint.vip);
    let line = sans.lines().map(str::trim).find(|l| l.contains("IP Address:") || l.contains("DNS:")).unwrap_or_default().to_string();
    let has = line.split(", ").any(|san| san.trim() == vip);
    (if has { Seen::Yes } else { Seen::No }, line)
}

/// What the twin says a fact should be.
pub fn predicted(c: &Cluster, node: NodeIx, field: Field) -> Seen {
    match field {
        Field::KubeletOnVip if c.kubelet_vip.contains(node) => Seen::Yes,
        Field::KubeletOnVip => Seen::No,
        Field::CertHasVip if !c.cert_present.contains(node) => Seen::Missing,
        Field::CertHasVip if c.cert_vip.contains(node) => Seen::Yes,
        Field::CertHasVip => Seen::No,
    }
}

/// Observes every host the twin's state `c` says is up: each registered node's kubelet.conf,
/// each master's apiserver cert.
///
/// # Errors
/// Only what stops observing altogether (the loopback guard); an unreachable host is recorded.
pub fn observe(t: &Topology, c: &Cluster, transport: &mut dyn Transport) -> Result<Observation, ExecError> {
    let hosts = Hosts::new(t);
    let mut observation = Observation::default();
    for node in c.joined.and(c.up).iter() {
        let host = hosts.node(node);
        match transport.read_file(&host, KUBELET_CONF) {
            Ok(FileRead::Present(text)) => {
                let (seen, evidence) = kubelet_on_vip(&text, t);
                observation.facts.push(Fact { node: host.name.clone(), field: Field::KubeletOnVip, seen, evidence });
            }
            Ok(FileRead::Missing) => observation.facts.push(Fact {
                node: host.name.clone(),
                field: Field::KubeletOnVip,
                seen: Seen::Missing,
                evidence: format!("{KUBELET_CONF} missing"),
            }),
            Ok(FileRead::Unobserved) => {}
            Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
            Err(e) => {
                observation.unreachable.push((host.name.clone(), e.to_string()));
                continue;
            }
        }
        if c.control_plane.contains(node) {
            let shell = format!(
                "if sudo test -e {APISERVER_CERT}; then sudo openssl x509 -in {APISERVER_CERT} -noout -ext subjectAltName; else exit 3; fi"
            );
            let request =
                Request { step: "observe", shell: &shell, stdin: None, secret: false, timeout: Duration::from_secs(OBSERVE_TIMEOUT_S) };
            match transport.run(&crate::target::Place::Host(host.clone()), &request) {
                Ok(done) if done.exit == Some(3) => observation.facts.push(Fact {
                    node: host.name.clone(),
                    field: Field::CertHasVip,
                    seen: Seen::Missing,
                    evidence: format!("{APISERVER_CERT} missing"),
                }),
                Ok(done) if done.success() => {
                    let (seen, evidence) = cert_has_vip(&done.stdout, t);
                    observation.facts.push(Fact { node: host.name.clone(), field: Field::CertHasVip, seen, evidence });
                }
                Ok(done) => {
                    observation.unreachable.push((host.name.clone(), format!("openssl: {}", crate::redact::redact(done.stderr.trim()))))
                }
                Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                Err(e) => observation.unreachable.push((host.name.clone(), e.to_string())),
            }
        }
    }
    Ok(observation)
}

fn node_ix(t: &Topology, name: &str) -> Option<NodeIx> {
    t.nodes.iter().position(|n| n.name == name).map(|i| NodeIx(i as u8))
}

/// Facts that match none of the twin's `allowed` states (one state between steps; the states
/// before and after a step for a step that was interrupted), and hosts that did not answer.
pub fn drift(t: &Topology, observation: &Observation, allowed: &[&Cluster]) -> Vec<Drift> {
    let mut out = Vec::new();
    for (host, why) in &observation.unreachable {
        out.push(Drift {
            node: host.clone(),
            what: "reachable".to_string(),
            twin: "up".to_string(),
            observed: "no answer".to_string(),
            evidence: why.clone(),
        });
    }
    for fact in &observation.facts {
        let Some(node) = node_ix(t, &fact.node) else { continue };
        let expected: Vec<Seen> = allowed.iter().map(|c| predicted(c, node, fact.field)).collect();
        if !expected.contains(&fact.seen) {
            let mut shown: Vec<String> = expected.iter().map(Seen::to_string).collect();
            shown.dedup();
            let twin = shown.join(" or ");
            out.push(Drift {
                node: fact.node.clone(),
                what: fact.field.describe().to_string(),
                twin,
                observed: fact.seen.to_string(),
                evidence: fact.evidence.clone(),
            });
        }
    }
    out
}

/// The twin's state with what was observed written over it: the state recoveries are chosen from.
pub fn overlay(t: &Topology, observation: &Observation, c: &Cluster) -> Cluster {
    let mut out = *c;
    for fact in &observation.facts {
        let Some(node) = node_ix(t, &fact.node) else { continue };
        match fact.field {
            Field::KubeletOnVip => out.kubelet_vip.set(node, fact.seen == Seen::Yes),
            Field::CertHasVip => {
                out.cert_present.set(node, fact.seen != Seen::Missing);
                out.cert_vip.set(node, fact.seen == Seen::Yes);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;

    fn homelab() -> Topology {
        Topology::new(&parse_scenario(include_str!("../../scenarios/homelab.yaml")).unwrap())
    }

    #[test]
    fn kubelet_server_is_read_for_true_false_and_missing_line() {
        let t = homelab();
        assert_eq!(kubelet_on_vip("clusters:\n- cluster:\n    server: https://10.0.20.99:6443\n", &t).0, Seen::Yes);
        assert_eq!(kubelet_on_vip("    server: https://10.0.20.100:6443\n", &t).0, Seen::No);
        assert_eq!(kubelet_on_vip("    server: https://k8s-apiserver.viktorbarzin.lan:6443\n", &t).0, Seen::Yes);
        assert_eq!(kubelet_on_vip("apiVersion: v1\n", &t).0, Seen::No);
    }

    #[test]
    fn cert_sans_are_read_for_true_false_and_missing() {
        let t = homelab();
        let with =
            "X509v3 Subject Alternative Name: \n    DNS:k8s-master, IP Address:10.96.0.1, IP Address:10.0.20.100, IP Address:10.0.20.99\n";
        assert_eq!(cert_has_vip(with, &t).0, Seen::Yes);
        assert_eq!(cert_has_vip("    DNS:k8s-master, IP Address:10.0.20.100, IP Address:10.0.20.990\n", &t).0, Seen::No);
        assert_eq!(cert_has_vip("", &t).0, Seen::No);
    }

    #[test]
    fn drift_names_node_field_and_evidence() {
        let t = homelab();
        let c = Cluster::initial(&t);
        let observation = Observation {
            facts: vec![Fact {
                node: "k8s-node1".into(),
                field: Field::KubeletOnVip,
                seen: Seen::Yes,
                evidence: "server: https://10.0.20.99:6443".into(),
            }],
            unreachable: vec![],
        };
        let found = drift(&t, &observation, &[&c]);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "k8s-node1: kubelet.conf server is the VIP: twin no, observed yes (server: https://10.0.20.99:6443)"
        );
        let mut flipped = c;
        flipped.kubelet_vip.set(NodeIx(3), true);
        assert!(drift(&t, &observation, &[&c, &flipped]).is_empty(), "mid-step: either side is fine");
        assert!(overlay(&t, &observation, &c).kubelet_vip.contains(NodeIx(3)));
    }
}
