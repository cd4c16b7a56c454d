//! What the hosts show, in the model's terms, and where it differs from the twin (drift).
//!
//! Each observer reads one thing: the `server:` of a node's kubelet.conf, the SANs of a master's
//! apiserver certificate ([`subject_alt_names`]), etcd's member list and endpoint health on a
//! master ([`crate::etcd`]), the load balancer's pool ([`crate::haproxy`]), the Kubernetes API's
//! nodes and kubeadm ConfigMaps ([`crate::kubernetes`]). Its answer is a [`Fact`] about a field of
//! [`Cluster`]; [`drift`] compares facts with the twin's state. A step is observed by the
//! observers its [`Scope`] names, in one look ([`observe`]): what the hosts are asked goes out in
//! one round (`hosts`), the API is asked beside it.

use crate::etcd::EtcdProbe;
use crate::guard::Guard;
use crate::haproxy::LbProbe;
use crate::kubernetes::{KubeApi, KubeconfigSource};
use crate::transport::Transport;
use crate::ExecError;
use plan_model::action::{Action, Check};
use plan_model::cluster::Cluster;
use plan_model::observe as derive;
use plan_model::topology::{NodeIx, Topology};
use serde::{Deserialize, Serialize};

/// Where a node's kubelet reads its apiserver from.
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// The apiserver's serving certificate.
pub const APISERVER_CERT: &str = "/etc/kubernetes/pki/apiserver.crt";
/// Bound on one observation command.
pub const OBSERVE_TIMEOUT_S: u64 = 30;
/// The subject of facts about `kubeadm-config`.
pub const KUBEADM_CONFIG: &str = "kubeadm-config";
/// The subject of facts about `cluster-info`.
pub const CLUSTER_INFO: &str = "cluster-info";

/// The model field a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    /// `kubelet_vip`: the node's kubelet.conf server is the VIP.
    KubeletOnVip,
    /// `cert_present` and `cert_vip`: the apiserver cert is on disk and carries the VIP SAN.
    CertHasVip,
    /// `voters`: the node is a voting etcd member.
    EtcdVoter,
    /// `learners`: the node is an etcd learner.
    EtcdLearner,
    /// `etcd_started`: the member's etcd has started (it has a name in the member list).
    EtcdStarted,
    /// Derived: the member answers `endpoint health` (live, and its side has quorum).
    EtcdHealthy,
    /// `lb_running.frontend`: the LB config has a frontend at the VIP and port.
    LbFrontend,
    /// `lb_running.pool`: the node is a server of that frontend's backend in the config file.
    LbServerInConfig,
    /// `lb_running.pool`: HAProxy has the server loaded (stats socket).
    LbServerLoaded,
    /// Derived: the server passes its health check (stats socket).
    LbServerUp,
    /// `joined`: the API lists the node.
    NodeRegistered,
    /// Derived: the node's Ready condition is True.
    NodeReady,
    /// `kubeadm_endpoint`: kubeadm-config's controlPlaneEndpoint is the VIP, with the VIP/FQDN SANs.
    KubeadmEndpoint,
    /// Not in the model (shown, never compared): cluster-info's server is the VIP.
    ClusterInfoOnVip,
}

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Field::KubeletOnVip => "kubelet.conf server is the VIP",
            Field::CertHasVip => "apiserver cert carries the VIP SAN",
            Field::EtcdVoter => "etcd voter",
            Field::EtcdLearner => "etcd learner",
            Field::EtcdStarted => "etcd member started",
            Field::EtcdHealthy => "etcd endpoint healthy",
            Field::LbFrontend => "LB frontend at the VIP",
            Field::LbServerInConfig => "in the LB pool (config)",
            Field::LbServerLoaded => "in the LB pool (loaded)",
            Field::LbServerUp => "LB health check passes",
            Field::NodeRegistered => "registered node",
            Field::NodeReady => "node Ready",
            Field::KubeadmEndpoint => "controlPlaneEndpoint is the VIP with its SANs",
            Field::ClusterInfoOnVip => "cluster-info server is the VIP",
        }
    }

    /// Facts about the whole cluster (their `node` is the LB or the ConfigMap), not one node.
    fn cluster_wide(self) -> bool {
        matches!(self, Field::LbFrontend | Field::KubeadmEndpoint | Field::ClusterInfoOnVip)
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

fn seen(yes: bool) -> Seen {
    if yes {
        Seen::Yes
    } else {
        Seen::No
    }
}

/// One observed fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The node, or for a cluster-wide field the LB or ConfigMap.
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
    /// Hosts (or services: etcd, the LB stats socket, the Kubernetes API) the twin says are up
    /// that did not answer, with the reason.
    pub unreachable: Vec<(String, String)>,
    /// Nodes (and hypervisors) whose SSH connection could not be made: down as far as any
    /// recovery can tell (no command reaches them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_ssh: Vec<String>,
    /// Masters whose host answered but whose etcd refused `etcdctl member list`: etcd 3.5 and
    /// later list members linearizably, so the member there has no quorum, is a learner or is not
    /// running (docs/facts.md E9). A state where it serves with quorum does not explain that.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub etcd_refused: Vec<(String, String)>,
}

impl Observation {
    fn fact(&mut self, node: &str, field: Field, seen: Seen, evidence: impl Into<String>) {
        self.facts.push(Fact { node: node.to_string(), field, seen, evidence: evidence.into() });
    }
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

/// Which observers look: the files (kubelet.conf, apiserver cert), and etcd, the LB and the
/// Kubernetes API (the runner adds [`Scope::whole`] to what a step concerns); the hypervisors
/// answering SSH at a halt, where a recovery's VM commands would run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scope {
    pub files: bool,
    pub etcd: bool,
    pub lb: bool,
    pub kube: bool,
    pub hypervisors: bool,
}

impl Scope {
    pub const ALL: Scope = Scope { files: true, etcd: true, lb: true, kube: true, hypervisors: true };
    pub const FILES: Scope = Scope { files: true, etcd: false, lb: false, kube: false, hypervisors: false };

    /// What going from `a` to `b` concerns: the observers of the fields that differ.
    pub fn between(a: &Cluster, b: &Cluster) -> Scope {
        Scope {
            files: true,
            etcd: a.voters != b.voters || a.learners != b.learners || a.etcd_started != b.etcd_started,
            lb: a.lb_running != b.lb_running || a.lb_up != b.lb_up,
            kube: a.kubeadm_endpoint != b.kubeadm_endpoint || a.joined != b.joined,
            hypervisors: a.hypervisors_down != b.hypervisors_down,
        }
    }

    /// What a step concerns: the fields it changes in the twin, and what its checks verify.
    pub fn of_step(before: &Cluster, after: &Cluster, actions: &[Action]) -> Scope {
        let mut scope = Scope::between(before, after);
        for action in actions {
            if let Action::Verify(check) = action {
                match check {
                    Check::EtcdMembersVoting => scope.etcd = true,
                    Check::VipListening | Check::BackendsUp | Check::ViaVip => scope.lb = true,
                    Check::KubeadmEndpoint | Check::NodeReady(_) => scope.kube = true,
                    Check::ClusterHealthy => {
                        scope.etcd = true;
                        scope.kube = true;
                    }
                    _ => {}
                }
            }
        }
        scope
    }

    /// What is watched at every step whatever the step concerns: the files, etcd's membership
    /// once there is a member, the load balancer once its frontend runs, the API. A change made
    /// out of band anywhere (a member removed by hand, a backend dropped) halts the next step.
    pub fn whole(c: &Cluster) -> Scope {
        Scope { files: true, etcd: !c.members().is_empty(), lb: c.lb_running.frontend, kube: true, hypervisors: false }
    }

    /// This scope and the hypervisors: what is looked at around a halt.
    pub fn with_hypervisors(self) -> Scope {
        Scope { hypervisors: true, ..self }
    }

    /// Whether a look with this scope saw everything one with `other` would.
    pub fn covers(self, other: Scope) -> bool {
        (self.files || !other.files)
            && (self.etcd || !other.etcd)
            && (self.lb || !other.lb)
            && (self.kube || !other.kube)
            && (self.hypervisors || !other.hypervisors)
    }

    pub fn or(self, other: Scope) -> Scope {
        Scope {
            files: self.files || other.files,
            etcd: self.etcd || other.etcd,
            lb: self.lb || other.lb,
            kube: self.kube || other.kube,
            hypervisors: self.hypervisors || other.hypervisors,
        }
    }
}

/// How the observers reach etcd, the LB and the API; `None` turns one off (`--skip-observer`).
#[derive(Debug, Clone)]
pub struct Probes {
    pub etcd: Option<EtcdProbe>,
    pub lb: Option<LbProbe>,
    pub kube: Option<KubeconfigSource>,
    /// The guard the Kubernetes client is held to (SSH and local transports hold their own).
    pub guard: Guard,
}

impl Probes {
    /// Every observer with kubeadm's and pfSense's defaults, and the kubeconfig of the environment.
    pub fn standard(guard: Guard) -> Probes {
        Probes { etcd: Some(EtcdProbe::default()), lb: Some(LbProbe::default()), kube: Some(KubeconfigSource::Environment), guard }
    }

    /// The files only (kubelet.conf, apiserver cert).
    pub fn files_only() -> Probes {
        Probes { etcd: None, lb: None, kube: None, guard: Guard::from_env() }
    }
}

/// The observers with their connections (the Kubernetes client is made on first use, and made
/// again when the kubeconfig changes).
pub struct Observer {
    pub probes: Probes,
    /// The client, and the kubeconfig it was made from (as JSON, to notice a change).
    kube: Option<(KubeApi, String)>,
    /// The client URLs etcd's member list named at the last look: `endpoint health` is asked over
    /// them with the list, and again only when the list names others.
    etcd_client_urls: Vec<String>,
}

impl Observer {
    pub fn new(probes: Probes) -> Observer {
        Observer { probes, kube: None, etcd_client_urls: Vec::new() }
    }

    /// The Kubernetes client of the kubeconfig as it is now: the plan itself moves the operator's
    /// kubeconfig to the VIP (4.1), and a client kept on the old server loses the API when that
    /// master reboots (6.1).
    fn kube_api(&mut self) -> Result<Option<&KubeApi>, ExecError> {
        let Some(source) = &self.probes.kube else { return Ok(None) };
        let kubeconfig = crate::kubernetes::read_kubeconfig(source)?;
        let seen = serde_json::to_string(&kubeconfig).unwrap_or_default();
        if self.kube.as_ref().is_none_or(|(_, was)| *was != seen) {
            self.kube = Some((KubeApi::connect_with(kubeconfig, self.probes.guard)?, seen));
        }
        Ok(self.kube.as_ref().map(|(api, _)| api))
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

/// Of `states` (in the order a step passes through them), the one `observation` differs from
/// least; the last of those that differ equally little. A master whose etcd refused the member
/// list counts as one more difference in a state that, with what was observed written over it,
/// still has quorum there: which states a join passes through cannot be read from a member list
/// etcd refuses.
pub fn closest<'s>(t: &Topology, observation: &Observation, states: &'s [Cluster]) -> Option<&'s Cluster> {
    let mut best: Option<(&Cluster, usize)> = None;
    for state in states.iter().rev() {
        let differs = drift(t, observation, &[state]).len() + unexplained_refusals(t, observation, state);
        if best.is_none_or(|(_, fewest)| differs < fewest) {
            best = Some((state, differs));
        }
    }
    best.map(|(state, _)| state)
}

/// The members `observation` saw as voters: in a member list, or by their own status.
pub fn voters_seen(t: &Topology, observation: &Observation) -> plan_model::topology::NodeSet {
    let mut seen = plan_model::topology::NodeSet::EMPTY;
    for fact in observation.facts.iter().filter(|f| f.field == Field::EtcdVoter && f.seen == Seen::Yes) {
        if let Some(node) = node_ix(t, &fact.node) {
            seen = seen.with(node);
        }
    }
    seen
}

/// The masters whose etcd refused the member list (`observation.etcd_refused`) that `state`, with
/// the observation written over it, has serving with quorum.
pub fn unexplained_refusals(t: &Topology, observation: &Observation, state: &Cluster) -> usize {
    if observation.etcd_refused.is_empty() {
        return 0;
    }
    let believed = overlay(t, observation, state);
    let serving = derive::live_members(&believed).and(believed.voters);
    observation
        .etcd_refused
        .iter()
        .filter_map(|(name, _)| node_ix(t, name))
        .filter(|node| serving.contains(*node) && derive::quorum_at(&believed, *node).holds())
        .count()
}

/// Reads SANs as `openssl x509 -noout -ext subjectAltName` prints them (and
/// [`subject_alt_names`] writes them) and says whether they have the VIP.
pub fn cert_has_vip(sans: &str, t: &Topology) -> (Seen, String) {
    let vip = format!("IP Address:{}", t.scenario.control_plane_endpoint.vip);
    let line = sans.lines().map(str::trim).find(|l| l.contains("IP Address:") || l.contains("DNS:")).unwrap_or_default().to_string();
    let has = line.split(", ").any(|san| san.trim() == vip);
    (if has { Seen::Yes } else { Seen::No }, line)
}

/// The subject alternative names of the PEM certificate `pem`, as `openssl x509 -ext
/// subjectAltName` prints them (`DNS:k8s-master, IP Address:10.0.20.100`), in the certificate's
/// order: read here, so a host needs no openssl to be observed.
///
/// # Errors
/// Not a PEM certificate, or its extension does not parse.
pub fn subject_alt_names(pem: &str) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let Some(extension) = cert.subject_alternative_name().map_err(|e| format!("subjectAltName: {e}"))? else {
        return Ok(String::new());
    };
    let names: Vec<String> = extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(format!("IP Address:{}", std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).ok()?))),
                16 => Some(format!("IP Address:{}", std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).ok()?))),
                _ => None,
            },
            _ => None,
        })
        .collect();
    Ok(names.join(", "))
}

/// What the twin says a fact should be; `None` when the twin does not say (a field the model does
/// not hold, a readiness the twin calls intermittent, the health of a learner).
pub fn expected(t: &Topology, c: &Cluster, node: Option<NodeIx>, field: Field) -> Option<Seen> {
    if field.cluster_wide() {
        return match field {
            Field::LbFrontend => Some(seen(c.lb_running.frontend)),
            Field::KubeadmEndpoint => Some(seen(c.kubeadm_endpoint)),
            _ => None,
        };
    }
    let Some(node) = node else {
        // A member, server or node of no inventory node: the twin has none.
        return matches!(
            field,
            Field::EtcdVoter | Field::EtcdLearner | Field::LbServerInConfig | Field::LbServerLoaded | Field::NodeRegistered
        )
        .then_some(Seen::No);
    };
    Some(match field {
        Field::KubeletOnVip => seen(c.kubelet_vip.contains(node)),
        Field::CertHasVip if !c.cert_present.contains(node) => Seen::Missing,
        Field::CertHasVip => seen(c.cert_vip.contains(node)),
        Field::EtcdVoter => seen(c.voters.contains(node)),
        Field::EtcdLearner => seen(c.learners.contains(node)),
        Field::EtcdStarted if c.members().contains(node) => seen(c.etcd_started.contains(node)),
        Field::EtcdHealthy if c.voters.contains(node) => seen(derive::live_members(c).contains(node) && derive::quorum_at(c, node).holds()),
        Field::LbServerInConfig | Field::LbServerLoaded => seen(c.lb_running.pool.contains(node)),
        Field::LbServerUp if c.lb_running.pool.contains(node) => seen(derive::healthy_backends(c, t).contains(node)),
        Field::NodeRegistered => seen(c.joined.contains(node)),
        Field::NodeReady if c.joined.contains(node) => match derive::node_ready(c, t, node) {
            derive::Reach::Ok => Seen::Yes,
            derive::Reach::Down(_) => Seen::No,
            derive::Reach::Intermittent(_) => return None,
        },
        _ => return None,
    })
}

/// Observes what `scope` names on every host the twin's state `c` says is up: each registered
/// node's kubelet.conf and each master's apiserver cert; etcd's membership and health on a live
/// master; the LB's config and stats; the Kubernetes API's nodes and ConfigMaps.
///
/// # Errors
/// Only what stops observing altogether (the loopback guard); an unreachable host or service is
/// recorded in [`Observation::unreachable`] (and so is drift).
pub fn observe(
    t: &Topology,
    c: &Cluster,
    transport: &mut dyn Transport,
    scope: Scope,
    observer: &mut Observer,
) -> Result<Observation, ExecError> {
    // The API is asked on a thread of its own while the hosts are asked over the transport: the
    // observation takes as long as the slower of the two, not their sum.
    let probes = observer.probes.clone();
    let mut etcd_client_urls = std::mem::take(&mut observer.etcd_client_urls);
    let span = tracing::Span::current();
    let kube_observer = &mut *observer;
    let observed = std::thread::scope(|threads| {
        let kube = scope.kube.then(|| {
            threads.spawn(move || {
                span.in_scope(|| {
                    let started = std::time::Instant::now();
                    let mut observation = Observation::default();
                    let observed = observe_kube(t, c, kube_observer, &mut observation).map(|()| observation);
                    tracing::debug!(observer = "kube", ms = started.elapsed().as_millis() as u64, "observer done");
                    observed
                })
            })
        });
        let started = std::time::Instant::now();
        let mut observation = Observation::default();
        let on_hosts = hosts::observe_hosts(t, c, transport, scope, &probes, &mut etcd_client_urls, &mut observation);
        tracing::debug!(observer = "hosts", ms = started.elapsed().as_millis() as u64, "observer done");
        let from_api = kube.map(|thread| thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        on_hosts?;
        if let Some(from_api) = from_api {
            let from_api = from_api?;
            observation.facts.extend(from_api.facts);
            observation.unreachable.extend(from_api.unreachable);
            observation.no_ssh.extend(from_api.no_ssh);
        }
        Ok(observation)
    });
    observer.etcd_client_urls = etcd_client_urls;
    observed
}

/// Whether the twin says the apiserver `server` names cannot answer in `c`: a master's address
/// whose apiserver is not ready, or the VIP with the load balancer down. Then there is nothing
/// to compare: a silent API is what the twin expects, not drift.
fn api_silent_in_twin(t: &Topology, c: &Cluster, server: &str) -> bool {
    let host = server.trim_start_matches("https://").split([':', '/']).next().unwrap_or_default();
    let Ok(address) = host.parse::<std::net::Ipv4Addr>() else { return false };
    if address == t.scenario.control_plane_endpoint.vip {
        return !c.lb_up;
    }
    match t.nodes.iter().position(|n| n.address == address) {
        Some(i) => plan_model::observe::apiserver_ready(c, NodeIx(i as u8)).is_err(),
        None => false,
    }
}

/// The API's nodes (registered, Ready), kubeadm-config's endpoint and cluster-info's server.
fn observe_kube(t: &Topology, c: &Cluster, observer: &mut Observer, observation: &mut Observation) -> Result<(), ExecError> {
    let api = match observer.kube_api() {
        Ok(Some(api)) => api,
        Ok(None) => return Ok(()),
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => {
            observation.unreachable.push(("kubernetes API".to_string(), e.to_string()));
            return Ok(());
        }
    };
    if api_silent_in_twin(t, c, &api.server) {
        return Ok(());
    }
    let label = format!("kubernetes API {}", api.server);
    match api.nodes() {
        Ok(nodes) => observe_nodes(t, &nodes, observation),
        Err(e) => observation.unreachable.push((label.clone(), e.to_string())),
    }
    match api.kubeadm_endpoint() {
        Ok(Some(endpoint)) => observation.fact(KUBEADM_CONFIG, Field::KubeadmEndpoint, seen(endpoint.on_vip(t)), endpoint.evidence()),
        Ok(None) => observation.fact(KUBEADM_CONFIG, Field::KubeadmEndpoint, Seen::Missing, "kube-system/kubeadm-config missing"),
        Err(e) => observation.unreachable.push((label.clone(), e.to_string())),
    }
    match api.cluster_info_server() {
        Ok(Some(server)) => {
            let (on_vip, _) = kubelet_on_vip(&format!("server: {server}"), t);
            observation.fact(CLUSTER_INFO, Field::ClusterInfoOnVip, on_vip, format!("server: {server}"));
        }
        Ok(None) => observation.fact(CLUSTER_INFO, Field::ClusterInfoOnVip, Seen::Missing, "kube-public/cluster-info has no server"),
        Err(e) => observation.unreachable.push((label, e.to_string())),
    }
    Ok(())
}

/// Facts from a node list: every inventory node registered or not, Ready or not; strangers.
pub fn observe_nodes(t: &Topology, nodes: &[crate::kubernetes::NodeCondition], observation: &mut Observation) {
    for node in &t.nodes {
        match nodes.iter().find(|n| n.name == node.name) {
            Some(listed) => {
                observation.fact(&node.name, Field::NodeRegistered, Seen::Yes, "listed by the API");
                let ready = listed.ready.as_deref().unwrap_or("no Ready condition");
                observation.fact(&node.name, Field::NodeReady, seen(listed.is_ready()), format!("Ready: {ready}"));
            }
            None => observation.fact(&node.name, Field::NodeRegistered, Seen::No, "not listed by the API"),
        }
    }
    for stranger in nodes.iter().filter(|n| !t.nodes.iter().any(|i| i.name == n.name)) {
        observation.fact(&stranger.name, Field::NodeRegistered, Seen::Yes, "listed by the API: no inventory node");
    }
}

fn node_ix(t: &Topology, name: &str) -> Option<NodeIx> {
    t.nodes.iter().position(|n| n.name == name).map(|i| NodeIx(i as u8))
}

/// The `what` of a drift entry for a host or service that did not answer.
const UNREACHABLE_WHAT: &str = "reachable";

/// The drift of the hosts and services in `observation` that did not answer.
pub fn drift_of_unreachable(observation: &Observation) -> Vec<Drift> {
    observation.unreachable.iter().map(|(host, why)| unreachable(host, why)).collect()
}

/// `host` (or a service) did not answer, as a drift entry; `why` what the attempt said.
pub fn unreachable(host: &str, why: &str) -> Drift {
    Drift {
        node: host.to_string(),
        what: UNREACHABLE_WHAT.to_string(),
        twin: "up".to_string(),
        observed: "no answer".to_string(),
        evidence: why.to_string(),
    }
}

/// Whether `drift` is a host or service that did not answer ([`drift_of_unreachable`]).
pub fn is_unreachable(drift: &Drift) -> bool {
    drift.what == UNREACHABLE_WHAT
}

/// Whether `drift` is something that does not answer and may answer again: a host or service
/// that did not answer, or an etcd member that does not answer `endpoint health` where the twin
/// has it healthy (a partition, an etcd frozen or restarting). The executor waits for these
/// before it takes them as dead.
pub fn is_silent(drift: &Drift) -> bool {
    is_unreachable(drift) || (drift.what == Field::EtcdHealthy.describe() && drift.observed == Seen::No.to_string())
}

/// Whether `drift` is in a fact a checker reports some time after its cause, on an interval of
/// its own: a load balancer's health check (HAProxy marks a server DOWN after `fall` failed
/// checks and UP after `rise` good ones) and a node's Ready (the kubelet's heartbeat, the node
/// controller's grace). Such a fact may differ for a moment on a loaded host with nothing
/// wrong; the runner looks at it again before it halts on it.
pub fn lags(drift: &Drift) -> bool {
    [Field::LbServerUp, Field::NodeReady].iter().any(|f| drift.what == f.describe())
}

/// Facts that match none of the twin's `allowed` states (one state between steps; the states
/// before and after a step for a step that was interrupted), and hosts that did not answer.
pub fn drift(t: &Topology, observation: &Observation, allowed: &[&Cluster]) -> Vec<Drift> {
    let mut out = drift_of_unreachable(observation);
    for fact in &observation.facts {
        let node = node_ix(t, &fact.node);
        let expected: Option<Vec<Seen>> = allowed.iter().map(|c| expected(t, c, node, fact.field)).collect();
        // A state where the twin does not say allows anything.
        let Some(expected) = expected else { continue };
        if !expected.is_empty() && !expected.contains(&fact.seen) {
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
    // A node no SSH connection reaches is down: a recovery must not plan commands on it.
    for node in observation.no_ssh.iter().filter_map(|name| node_ix(t, name)) {
        out.up.set(node, false);
    }
    // A hypervisor no SSH connection reaches is down: no VM command runs there.
    for (i, hypervisor) in t.scenario.hypervisors.iter().enumerate() {
        if observation.no_ssh.contains(&hypervisor.name) {
            out.hypervisors_down |= 1 << i;
        }
    }
    for fact in &observation.facts {
        let yes = fact.seen == Seen::Yes;
        match fact.field {
            Field::LbFrontend => out.lb_running.frontend = yes,
            Field::KubeadmEndpoint => out.kubeadm_endpoint = yes,
            _ => {}
        }
        let Some(node) = node_ix(t, &fact.node) else { continue };
        match fact.field {
            Field::KubeletOnVip => out.kubelet_vip.set(node, yes),
            Field::CertHasVip => {
                out.cert_present.set(node, fact.seen != Seen::Missing);
                out.cert_vip.set(node, yes);
            }
            Field::EtcdVoter => out.voters.set(node, yes),
            Field::EtcdLearner => out.learners.set(node, yes),
            Field::EtcdStarted => out.etcd_started.set(node, yes),
            Field::LbServerInConfig | Field::LbServerLoaded => out.lb_running.pool.set(node, yes),
            Field::NodeRegistered => out.joined.set(node, yes),
            _ => {}
        }
    }
    out
}

mod hosts;
#[cfg(test)]
pub(crate) mod tests;
