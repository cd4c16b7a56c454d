//! etcd membership as `etcdctl` on a master reports it, in the model's terms (voters, learners,
//! members started).
//!
//! The commands run on a master through the transport (`sudo etcdctl …` with kubeadm's etcd
//! client certificates by default); this module builds them, parses their JSON and maps members to
//! inventory nodes by name (kubeadm names a member after its node) or, for a member added but never
//! started (no name yet), by the host of its peer URL.

use crate::transport::quote;
use plan_model::topology::{NodeIx, NodeSet, Topology};
use serde::{Deserialize, Serialize};

/// kubeadm's etcd client endpoint on a stacked master.
pub const KUBEADM_ETCD_ENDPOINT: &str = "https://127.0.0.1:2379";
/// kubeadm's etcd PKI directory (`ca.crt`, `healthcheck-client.crt`, `healthcheck-client.key`).
pub const KUBEADM_ETCD_PKI: &str = "/etc/kubernetes/pki/etcd";
/// etcdctl's own bounds: on connecting (`--dial-timeout`) and on one request
/// (`--command-timeout`). A member that lost quorum answers `endpoint health` only at the
/// request's bound, so every look at such a cluster takes that long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdctlTimeouts {
    pub dial: std::time::Duration,
    pub command: std::time::Duration,
}

impl Default for EtcdctlTimeouts {
    /// 2 s and 5 s (etcdctl's own defaults).
    fn default() -> Self {
        EtcdctlTimeouts { dial: std::time::Duration::from_secs(2), command: std::time::Duration::from_secs(5) }
    }
}

/// A duration in etcdctl's flag syntax: whole seconds as `5s`, else milliseconds (`500ms`).
fn flag_duration(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Why etcdctl's answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    #[error("etcdctl {command}: unreadable JSON: {reason}")]
    UnreadableJson { command: &'static str, reason: String },
    #[error("etcd endpoint {0:?} is not a plain http(s)://host:port URL")]
    BadEndpoint(String),
}

/// How to reach etcd from the master the commands run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdProbe {
    /// Client URL etcdctl dials, on the master.
    pub endpoint: String,
    /// Directory with `ca.crt`, `healthcheck-client.crt` and `.key`; `None` for plain http.
    pub pki: Option<String>,
    /// etcdctl's bounds (the lab scales them with its etcd's election timeout).
    pub timeouts: EtcdctlTimeouts,
}

impl Default for EtcdProbe {
    fn default() -> Self {
        EtcdProbe {
            endpoint: KUBEADM_ETCD_ENDPOINT.to_string(),
            pki: Some(KUBEADM_ETCD_PKI.to_string()),
            timeouts: EtcdctlTimeouts::default(),
        }
    }
}

impl EtcdProbe {
    /// etcdctl on plain http at `endpoint`, with etcdctl's default bounds.
    pub fn plain(endpoint: &str) -> EtcdProbe {
        EtcdProbe { endpoint: endpoint.to_string(), pki: None, timeouts: EtcdctlTimeouts::default() }
    }
}

impl EtcdProbe {
    /// Checks the endpoint is a bare URL (it ends up in a shell command).
    ///
    /// # Errors
    /// [`EtcdError::BadEndpoint`] for anything but `http(s)://host:port`.
    pub fn validate(&self) -> Result<(), EtcdError> {
        // Several endpoints, comma-separated, as etcdctl takes them: each must be a bare URL.
        self.endpoint.split(',').try_for_each(validate_url)
    }

    fn etcdctl(&self, endpoints: &str, args: &str) -> String {
        let mut command = format!(
            "sudo env ETCDCTL_API=3 etcdctl --endpoints={} --dial-timeout={} --command-timeout={}",
            quote(endpoints),
            flag_duration(self.timeouts.dial),
            flag_duration(self.timeouts.command)
        );
        if let Some(pki) = &self.pki {
            let file = |name: &str| quote(&format!("{}/{name}", pki.trim_end_matches('/')));
            command.push_str(&format!(
                " --cacert={} --cert={} --key={}",
                file("ca.crt"),
                file("healthcheck-client.crt"),
                file("healthcheck-client.key")
            ));
        }
        format!("{command} {args}")
    }

    /// `etcdctl member list -w json`.
    pub fn member_list_command(&self) -> String {
        self.etcdctl(&self.endpoint, "member list -w json")
    }

    /// `etcdctl endpoint status -w json` of the probe's endpoint: the asked member's own view,
    /// which a learner and a member without quorum answer (`Status` is served locally and is one
    /// of the RPCs a learner serves: `isRPCSupportedForLearner`).
    pub fn endpoint_status_command(&self) -> String {
        self.etcdctl(&self.endpoint, "endpoint status -w json")
    }

    /// `etcdctl endpoint health -w json` of the client URLs given: the members' own, which the
    /// caller has read from the member list and checked. Not `--cluster`, which would dial
    /// whatever the members advertise, unchecked.
    ///
    /// # Errors
    /// [`EtcdError::BadEndpoint`] for a URL that is not a plain `http(s)://host:port`.
    pub fn endpoint_health_command(&self, client_urls: &[String]) -> Result<String, EtcdError> {
        client_urls.iter().try_for_each(|url| validate_url(url))?;
        Ok(self.etcdctl(&client_urls.join(","), "endpoint health -w json"))
    }
}

/// Checks a URL is a bare `http(s)://host:port` (it ends up in a shell command).
fn validate_url(url: &str) -> Result<(), EtcdError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c)));
    if ok {
        Ok(())
    } else {
        Err(EtcdError::BadEndpoint(url.to_string()))
    }
}

/// The client URLs of every member, in member order, each once.
pub fn client_urls(members: &[EtcdMember]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for url in members.iter().flat_map(|m| &m.client_urls) {
        if !urls.contains(url) {
            urls.push(url.clone());
        }
    }
    urls
}

/// Voting or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Membership {
    Voter,
    Learner,
}

/// One member as `etcdctl member list -w json` prints it. A member added but never started has
/// no name and no client URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdMember {
    #[serde(rename = "ID")]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

impl EtcdMember {
    /// The hex id `etcdctl member remove|promote` takes.
    pub fn hex_id(&self) -> String {
        format!("{:x}", self.id)
    }

    pub fn membership(&self) -> Membership {
        if self.is_learner {
            Membership::Learner
        } else {
            Membership::Voter
        }
    }

    /// A member gets its name when its etcd first starts and joins.
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }

    /// `name (voter, started)`, for evidence lines.
    pub fn describe(&self) -> String {
        let who = if self.name.is_empty() {
            self.peer_urls.first().cloned().unwrap_or_else(|| format!("{:x}", self.id))
        } else {
            self.name.clone()
        };
        let role = match self.membership() {
            Membership::Voter => "voter",
            Membership::Learner => "learner",
        };
        format!("{who} ({role}, {})", if self.started() { "started" } else { "never started" })
    }
}

#[derive(Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<EtcdMember>,
}

/// One line of `etcdctl endpoint health -w json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealth {
    pub endpoint: String,
    pub health: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// Parses `etcdctl member list -w json`.
///
/// # Errors
/// [`EtcdError::UnreadableJson`].
pub fn parse_member_list(json: &str) -> Result<Vec<EtcdMember>, EtcdError> {
    serde_json::from_str::<MemberList>(json)
        .map(|l| l.members)
        .map_err(|e| EtcdError::UnreadableJson { command: "member list", reason: e.to_string() })
}

/// Parses `etcdctl endpoint health -w json` (printed also when some endpoint is unhealthy).
///
/// # Errors
/// [`EtcdError::UnreadableJson`].
pub fn parse_endpoint_health(json: &str) -> Result<Vec<EndpointHealth>, EtcdError> {
    serde_json::from_str(json.trim()).map_err(|e| EtcdError::UnreadableJson { command: "endpoint health", reason: e.to_string() })
}

/// What a member says of itself in `etcdctl endpoint status -w json`: a learner, and how far it
/// applied the log (`raftAppliedIndex`: a member that applied nothing holds no data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalStatus {
    pub is_learner: bool,
    pub applied: u64,
}

#[derive(Deserialize)]
struct StatusLine {
    #[serde(rename = "Status")]
    status: StatusBody,
}

#[derive(Deserialize)]
struct StatusBody {
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
    #[serde(rename = "raftAppliedIndex", default)]
    applied: u64,
}

/// Parses `etcdctl endpoint status -w json` of one endpoint (protobuf's JSON leaves `isLearner`
/// out when false).
///
/// # Errors
/// Unreadable JSON, or no endpoint in it.
pub fn parse_endpoint_status(json: &str) -> Result<LocalStatus, EtcdError> {
    let unreadable = |reason: String| EtcdError::UnreadableJson { command: "endpoint status", reason };
    let lines: Vec<StatusLine> = serde_json::from_str(json.trim()).map_err(|e| unreadable(e.to_string()))?;
    let first = lines.into_iter().next().ok_or_else(|| unreadable("no endpoint".to_string()))?;
    Ok(LocalStatus { is_learner: first.status.is_learner, applied: first.status.applied })
}

/// The host of a URL (`http://127.0.20.11:2380` -> `127.0.20.11`).
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// The inventory node a member stands for: by name, else by its peer URL's host.
pub fn member_node(t: &Topology, member: &EtcdMember) -> Option<NodeIx> {
    let by_name = t.nodes.iter().position(|n| !member.name.is_empty() && n.name == member.name);
    let by_peer = || t.nodes.iter().position(|n| member.peer_urls.iter().any(|u| url_host(u) == n.address.to_string()));
    by_name.or_else(by_peer).map(|i| NodeIx(i as u8))
}

/// The membership in the model's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdMembership {
    pub voters: NodeSet,
    pub learners: NodeSet,
    /// Members whose etcd has started at least once (they have a name).
    pub started: NodeSet,
    /// Members that are no inventory node, described.
    pub strangers: Vec<String>,
    /// Each node's member, described, for evidence.
    pub described: Vec<(NodeIx, String)>,
}

impl EtcdMembership {
    pub fn of(t: &Topology, members: &[EtcdMember]) -> EtcdMembership {
        let mut out = EtcdMembership::default();
        for member in members {
            let Some(node) = member_node(t, member) else {
                out.strangers.push(member.describe());
                continue;
            };
            match member.membership() {
                Membership::Voter => out.voters.set(node, true),
                Membership::Learner => out.learners.set(node, true),
            }
            out.started.set(node, member.started());
            out.described.push((node, member.describe()));
        }
        out
    }

    pub fn evidence(&self, node: NodeIx) -> String {
        self.described.iter().find(|(n, _)| *n == node).map_or_else(|| "not in the member list".to_string(), |(_, d)| d.clone())
    }
}

/// Nodes whose endpoint answered healthy, mapped by the members' client URLs.
pub fn healthy_nodes(t: &Topology, members: &[EtcdMember], health: &[EndpointHealth]) -> NodeSet {
    let mut out = NodeSet::EMPTY;
    for h in health.iter().filter(|h| h.health) {
        let member = members.iter().find(|m| m.client_urls.iter().any(|u| u.trim_end_matches('/') == h.endpoint.trim_end_matches('/')));
        if let Some(node) = member.and_then(|m| member_node(t, m)) {
            out.set(node, true);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;
    use std::time::Duration;

    fn loopback() -> Topology {
        Topology::new(&parse_scenario(include_str!("../../scenarios/loopback.yaml")).unwrap())
    }

    // As etcd 3.4.23 prints it after `member add lab-cp-2 --learner` (the learner never started).
    const LIST: &str = r#"{"header":{"cluster_id":1381359334032565821,"member_id":14060546753326657817,"raft_term":2},"members":[{"ID":10566824916820017496,"peerURLs":["http://127.0.20.11:23800"],"isLearner":true},{"ID":14060546753326657817,"name":"lab-cp-1","peerURLs":["http://127.0.20.10:23800"],"clientURLs":["http://127.0.20.10:23790"]}]}"#;

    #[test]
    fn several_endpoints_pass_when_each_is_a_bare_url() {
        let probe = |endpoint: &str| EtcdProbe::plain(endpoint);
        assert!(probe("http://127.0.20.10:2379,http://127.0.20.11:2379").validate().is_ok());
        assert!(probe("http://127.0.20.10:2379,http://x/;rm").validate().is_err());
        assert!(probe("http://127.0.20.10:2379,").validate().is_err());
    }

    #[test]
    fn a_member_list_maps_to_voters_learners_and_started() {
        let t = loopback();
        let members = parse_member_list(LIST).unwrap();
        assert_eq!(members[0].id, 10566824916820017496, "ids past 2^53 stay exact");
        let m = EtcdMembership::of(&t, &members);
        let cp1 = t.resolve("lab-cp-1").unwrap();
        let cp2 = t.resolve("lab-cp-2").unwrap();
        assert_eq!(m.voters, NodeSet::of(cp1));
        assert_eq!(m.learners, NodeSet::of(cp2), "the nameless learner is found by its peer URL");
        assert_eq!(m.started, NodeSet::of(cp1));
        assert!(m.strangers.is_empty());
        assert_eq!(m.evidence(cp2), "http://127.0.20.11:23800 (learner, never started)");
    }

    #[test]
    fn a_member_of_no_inventory_node_is_a_stranger_and_bad_json_an_error() {
        let t = loopback();
        let text = r#"{"members":[{"ID":1,"name":"intruder","peerURLs":["http://127.0.99.1:2380"]}]}"#;
        let m = EtcdMembership::of(&t, &parse_member_list(text).unwrap());
        assert_eq!(m.strangers, vec!["intruder (voter, started)".to_string()]);
        assert!(m.voters.is_empty());
        assert!(matches!(parse_member_list("Error: context deadline exceeded"), Err(EtcdError::UnreadableJson { .. })));
        assert!(parse_member_list("{}").unwrap().is_empty(), "no members key: an empty list");
    }

    #[test]
    fn health_is_mapped_through_client_urls() {
        let t = loopback();
        let members = parse_member_list(LIST).unwrap();
        let health = parse_endpoint_health(r#"[{"endpoint":"http://127.0.20.10:23790","health":true,"took":"2ms"}]"#).unwrap();
        assert_eq!(healthy_nodes(&t, &members, &health), NodeSet::of(t.resolve("lab-cp-1").unwrap()));
        let sick = parse_endpoint_health(r#"[{"endpoint":"http://127.0.20.10:23790","health":false,"error":"timeout"}]"#).unwrap();
        assert!(healthy_nodes(&t, &members, &sick).is_empty());
    }

    #[test]
    fn commands_carry_kubeadm_certs_by_default_and_endpoints_are_validated() {
        let probe = EtcdProbe::default();
        assert!(probe.member_list_command().contains("--cacert=/etc/kubernetes/pki/etcd/ca.crt"));
        assert!(probe.member_list_command().ends_with("member list -w json"));
        // etcdctl's own bounds by default; the lab's, scaled, in milliseconds.
        assert!(probe.member_list_command().contains("--dial-timeout=2s --command-timeout=5s"), "{}", probe.member_list_command());
        let lab = EtcdProbe {
            timeouts: EtcdctlTimeouts { dial: Duration::from_millis(500), command: Duration::from_secs(2) },
            ..EtcdProbe::plain("http://127.0.20.10:2379")
        };
        assert!(lab.member_list_command().contains("--dial-timeout=500ms --command-timeout=2s"), "{}", lab.member_list_command());
        let plain = EtcdProbe::plain("http://127.0.20.10:23790");
        let urls = vec!["http://127.0.20.10:23790".to_string(), "http://127.0.20.11:23790".to_string()];
        let health = plain.endpoint_health_command(&urls).unwrap();
        assert!(!health.contains("--cacert"));
        assert!(health.contains("--endpoints=http://127.0.20.10:23790,http://127.0.20.11:23790"), "{health}");
        assert!(!health.contains("--cluster"), "only the URLs given are dialled: {health}");
        assert!(plain.endpoint_health_command(&["http://x;reboot".to_string()]).is_err());
        assert_eq!(client_urls(&parse_member_list(LIST).unwrap()), vec!["http://127.0.20.10:23790".to_string()]);
        assert!(plain.validate().is_ok());
        assert!(EtcdProbe::plain("http://x;reboot").validate().is_err());
        assert!(EtcdProbe::plain("127.0.0.1:2379").validate().is_err());
        assert_eq!(url_host("http://[::1]:2379"), "::1");
        assert_eq!(url_host("https://127.0.0.1:2379/"), "127.0.0.1");
    }
}
