//! What follows from a state: quorum, apiserver readiness, VIP backends, TLS, who reaches the API.
//!
//! Nothing here is stored; every answer is computed from [`Cluster`] and [`Topology`], so a
//! fault that changes state changes every consequence with it.

use crate::cluster::Cluster;
use crate::scenario::{HealthCheck, LbKind};
use crate::topology::{NodeIx, NodeKind, NodeSet, Topology};
use serde::Serialize;

/// The etcd quorum as seen from one side of a possible partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuorumView {
    pub voters: u32,
    /// Voters that are up, started and on this side.
    pub voters_up: u32,
    pub needed: u32,
}

impl QuorumView {
    pub fn holds(&self) -> bool {
        self.voters > 0 && self.voters_up >= self.needed
    }
}

impl std::fmt::Display for QuorumView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.holds() {
            write!(f, "etcd {}/{} voters up: quorum", self.voters_up, self.voters)
        } else {
            write!(f, "etcd {}/{} voters up: no quorum (needs {})", self.voters_up, self.voters, self.needed)
        }
    }
}

/// Members that run: machine up and member started.
pub fn live_members(c: &Cluster) -> NodeSet {
    c.members().and(c.up).and(c.etcd_started)
}

/// The side of the partition `node` is on: the partitioned masters, or everyone else.
pub fn side(c: &Cluster, node: NodeIx) -> NodeSet {
    if c.partitioned.contains(node) {
        c.partitioned
    } else {
        NodeSet(!c.partitioned.0)
    }
}

/// Quorum as `node` sees it (partitions split the voters).
pub fn quorum_at(c: &Cluster, node: NodeIx) -> QuorumView {
    let voters = c.voters.len();
    QuorumView { voters, voters_up: c.voters.and(live_members(c)).and(side(c, node)).len(), needed: Topology::quorum(voters) }
}

/// Quorum of the majority side: the cluster's view when no single node is asked.
pub fn quorum(c: &Cluster) -> QuorumView {
    let voters = c.voters.len();
    let live = c.voters.and(live_members(c));
    let best = live.and(c.partitioned).len().max(live.minus(c.partitioned).len());
    QuorumView { voters, voters_up: best, needed: Topology::quorum(voters) }
}

/// The etcd leader: the lowest-indexed live voter on a side with quorum.
pub fn leader(c: &Cluster) -> Option<NodeIx> {
    c.voters.and(live_members(c)).iter().find(|n| quorum_at(c, *n).holds())
}

/// Why an apiserver is not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum NotReady {
    NodeDown,
    NotAControlPlane,
    /// The static pod does not start (cert missing or manifest broken).
    ApiserverNotRunning,
    /// The local etcd member is not running (stacked etcd: the apiserver talks to 127.0.0.1:2379).
    LocalEtcdDown,
    /// The local etcd member is a learner: it refuses the apiserver's reads and writes
    /// (etcd `server/etcdserver/api/v3rpc/interceptor.go`, `isRPCSupportedForLearner`).
    LocalEtcdLearner,
    NoQuorum {
        /// The quorum as the node sees it; its words are written only when shown.
        #[serde(serialize_with = "as_words")]
        quorum: QuorumView,
    },
}

/// A value in its words (for a field whose JSON has always been the sentence).
fn as_words<S: serde::Serializer, T: std::fmt::Display>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::NodeDown => write!(f, "node down"),
            NotReady::NotAControlPlane => write!(f, "no control-plane static pods"),
            NotReady::ApiserverNotRunning => {
                write!(f, "kube-apiserver not running (no serving cert)")
            }
            NotReady::LocalEtcdDown => write!(f, "local etcd member not running"),
            NotReady::LocalEtcdLearner => write!(f, "local etcd member is a learner (serves no client requests until promoted)"),
            NotReady::NoQuorum { quorum } => write!(f, "{quorum}"),
        }
    }
}

/// Whether `node`'s apiserver answers `/readyz` with ok.
pub fn apiserver_ready(c: &Cluster, node: NodeIx) -> Result<(), NotReady> {
    if !c.up.contains(node) {
        return Err(NotReady::NodeDown);
    }
    if !c.control_plane.contains(node) {
        return Err(NotReady::NotAControlPlane);
    }
    if !c.apiserver_running.contains(node) {
        return Err(NotReady::ApiserverNotRunning);
    }
    if !live_members(c).contains(node) {
        return Err(NotReady::LocalEtcdDown);
    }
    if c.learners.contains(node) {
        return Err(NotReady::LocalEtcdLearner);
    }
    let q = quorum_at(c, node);
    if !q.holds() {
        return Err(NotReady::NoQuorum { quorum: q });
    }
    Ok(())
}

/// The nodes whose apiserver is ready ([`apiserver_ready`] of every node at once, in set
/// operations: the exploration asks it of every backend behind the VIP at most transitions).
pub fn apiservers_ready(c: &Cluster) -> NodeSet {
    let live = live_members(c);
    let serving = c.up.and(c.control_plane).and(c.apiserver_running).and(live).minus(c.learners);
    let voters = c.voters.len();
    let live_voters = c.voters.and(live);
    // Quorum as a node on each side of the partition sees it ([`quorum_at`]).
    let quorate = |side: NodeSet| {
        let view = QuorumView { voters, voters_up: live_voters.and(side).len(), needed: Topology::quorum(voters) };
        if view.holds() {
            side
        } else {
            NodeSet::EMPTY
        }
    };
    serving.and(quorate(c.partitioned).or(quorate(NodeSet(!c.partitioned.0))))
}

/// Backends the load balancer's health check passes.
pub fn healthy_backends(c: &Cluster, t: &Topology) -> NodeSet {
    healthy_backends_with(c, t, || apiservers_ready(c))
}

/// [`healthy_backends`], with the apiservers ready asked of `ready` (where the answer needs them).
fn healthy_backends_with(c: &Cluster, t: &Topology, ready: impl Fn() -> NodeSet) -> NodeSet {
    if !c.lb_up {
        return NodeSet::EMPTY;
    }
    match t.scenario.load_balancer.kind {
        LbKind::KubeVip => return kube_vip_leader(c, ready()).map_or(NodeSet::EMPTY, NodeSet::of),
        LbKind::Keepalived if keepalived_holder(c).is_none() => return NodeSet::EMPTY,
        _ => {}
    }
    let pool = c.lb_running.pool;
    match t.health_check {
        HealthCheck::Tcp => pool.and(c.up).and(c.control_plane).and(c.apiserver_running),
        HealthCheck::HttpsReadyz => pool.and(ready()),
    }
}

/// The master holding the VIP when it lives on the masters: keepalived's highest-priority
/// master that is up (the first in the inventory), or kube-vip's leader.
pub fn vip_holder(c: &Cluster, t: &Topology) -> Option<NodeIx> {
    vip_holder_with(c, t, || apiservers_ready(c))
}

/// [`vip_holder`], with the apiservers ready asked of `ready` (kube-vip's leader needs them).
fn vip_holder_with(c: &Cluster, t: &Topology, ready: impl Fn() -> NodeSet) -> Option<NodeIx> {
    match t.scenario.load_balancer.kind {
        LbKind::Keepalived => keepalived_holder(c),
        LbKind::KubeVip => kube_vip_leader(c, ready()),
        LbKind::PfsenseBootstrap | LbKind::Haproxy => None,
    }
}

/// keepalived's highest-priority master that is up (the first in the inventory).
fn keepalived_holder(c: &Cluster) -> Option<NodeIx> {
    c.vip_daemons.and(c.up).iter().next()
}

/// kube-vip's leader: a master running kube-vip whose own apiserver is ready (among `ready`),
/// since kube-vip renews its leader lease through it (the manifest's kubeconfig names the
/// local apiserver).
fn kube_vip_leader(c: &Cluster, ready: NodeSet) -> Option<NodeIx> {
    c.vip_daemons.and(c.up).and(ready).iter().next()
}

/// Where a client points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Straight at one apiserver by its address.
    Direct(NodeIx),
    Vip,
}

/// Whether a client gets answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "why")]
pub enum Reach {
    Ok,
    /// Some requests fail: the LB spreads them over backends that differ.
    Intermittent(String),
    Down(String),
}

impl Reach {
    pub fn is_ok(&self) -> bool {
        matches!(self, Reach::Ok)
    }
    pub fn is_down(&self) -> bool {
        matches!(self, Reach::Down(_))
    }
    pub fn label(&self) -> &'static str {
        match self {
            Reach::Ok => "ok",
            Reach::Intermittent(_) => "intermittent",
            Reach::Down(_) => "down",
        }
    }
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reach::Ok => write!(f, "ok"),
            Reach::Intermittent(why) => write!(f, "intermittent: {why}"),
            Reach::Down(why) => write!(f, "down: {why}"),
        }
    }
}

/// What a client needs from the apiserver behind an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNeeds {
    /// Authenticates with OIDC: the apiserver needs the config stack's flags.
    pub oidc: bool,
}

/// Whether a client gets answers, without the reasons: what [`Reach`] says, for the callers
/// that ask often (the exploration, the recovery search) and read no words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    Ok,
    Intermittent,
    Down,
}

impl Reachability {
    pub fn is_ok(self) -> bool {
        self == Reachability::Ok
    }
    pub fn is_down(self) -> bool {
        self == Reachability::Down
    }
}

impl Reach {
    /// The same answer without its reasons.
    pub fn reachability(&self) -> Reachability {
        match self {
            Reach::Ok => Reachability::Ok,
            Reach::Intermittent(_) => Reachability::Intermittent,
            Reach::Down(_) => Reachability::Down,
        }
    }
}

/// [`reach`] without the reasons (no words are built).
pub fn reachability(c: &Cluster, t: &Topology, endpoint: Endpoint, needs: ClientNeeds) -> Reachability {
    match endpoint {
        Endpoint::Direct(node) if apiserver_ready(c, node).is_ok() && (!needs.oidc || c.apiserver_flags.contains(node)) => Reachability::Ok,
        Endpoint::Direct(_) => Reachability::Down,
        Endpoint::Vip => vip_reachability(c, vip_backends(c, t), needs),
    }
}

/// What every client through the VIP meets, whatever it needs: the backends healthy and the
/// apiservers ready, or `None` where the VIP is unserved. The apiservers ready are asked by the
/// VIP's holder, the health check and the backends alike: worked out once (the recovery search
/// asks for the consumers' reachability before every action of every candidate).
fn vip_backends(c: &Cluster, t: &Topology) -> Option<(NodeSet, NodeSet)> {
    if !c.lb_up {
        return None;
    }
    let ready = apiservers_ready(c);
    if vip_unserved_with(c, t, || ready).is_some() {
        return None;
    }
    Some((healthy_backends_with(c, t, || ready), ready))
}

/// [`reachability`] through the VIP, for a client that `needs`, from what [`vip_backends`] says.
fn vip_reachability(c: &Cluster, backends: Option<(NodeSet, NodeSet)>, needs: ClientNeeds) -> Reachability {
    let Some((healthy, ready)) = backends else {
        return Reachability::Down;
    };
    let broken = vip_backends_broken(c, healthy, ready, needs);
    if healthy.is_empty() || broken == healthy {
        Reachability::Down
    } else if broken.is_empty() {
        Reachability::Ok
    } else {
        Reachability::Intermittent
    }
}

/// Why nothing answers at the VIP before any backend is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VipUnserved {
    LbDown,
    /// The VIP lives on the masters and none runs its daemon.
    NoDaemon(LbKind),
    /// The VIP lives on the masters and no master running its daemon can hold it.
    NoHolder(LbKind),
    /// No alias for the VIP, or no frontend at it.
    NoFrontend,
}

/// Whether the VIP is unserved before any backend is asked, and why: read by [`reach`] and
/// [`reachability`] alike.
fn vip_unserved(c: &Cluster, t: &Topology) -> Option<VipUnserved> {
    vip_unserved_with(c, t, || apiservers_ready(c))
}

/// [`vip_unserved`], with the apiservers ready asked of `ready` (where the VIP's holder needs them).
fn vip_unserved_with(c: &Cluster, t: &Topology, ready: impl Fn() -> NodeSet) -> Option<VipUnserved> {
    if !c.lb_up {
        return Some(VipUnserved::LbDown);
    }
    let kind = t.scenario.load_balancer.kind;
    if kind.on_masters() && vip_holder_with(c, t, ready).is_none() {
        return Some(if c.vip_daemons.is_empty() { VipUnserved::NoDaemon(kind) } else { VipUnserved::NoHolder(kind) });
    }
    let frontend = kind == LbKind::KubeVip || c.lb_running.frontend;
    if !c.vip_alias || !frontend {
        return Some(VipUnserved::NoFrontend);
    }
    None
}

/// Whether the VIP answers with a healthy backend behind it (TLS and readiness aside).
pub fn vip_serves(c: &Cluster, t: &Topology) -> bool {
    vip_unserved(c, t).is_none() && !healthy_backends(c, t).is_empty()
}

/// Healthy backends a client through the VIP cannot use: their cert lacks the VIP SAN, their
/// apiserver is not ready (not in `ready`), or they lack the OIDC flags the client needs.
fn vip_backends_broken(c: &Cluster, healthy: NodeSet, ready: NodeSet, needs: ClientNeeds) -> NodeSet {
    let bad_tls = healthy.minus(c.served_vip);
    let not_ready = healthy.minus(ready);
    let no_flags = if needs.oidc { healthy.minus(c.apiserver_flags) } else { NodeSet::EMPTY };
    bad_tls.or(not_ready).or(no_flags)
}

/// Whether a client pointed at `endpoint` reaches a ready apiserver and verifies its TLS.
pub fn reach(c: &Cluster, t: &Topology, endpoint: Endpoint, needs: ClientNeeds) -> Reach {
    match endpoint {
        Endpoint::Direct(node) => match apiserver_ready(c, node) {
            // A cert always carries the node's own address: direct TLS verifies.
            Ok(()) if needs.oidc && !c.apiserver_flags.contains(node) => Reach::Down(format!("{} lacks the OIDC flags", t.name(node))),
            Ok(()) => Reach::Ok,
            Err(why) => Reach::Down(format!("{}: {why}", t.name(node))),
        },
        Endpoint::Vip => {
            if let Some(unserved) = vip_unserved(c, t) {
                return Reach::Down(match unserved {
                    VipUnserved::LbDown => "load balancer down".to_string(),
                    VipUnserved::NoDaemon(kind) => format!("no master runs {}", kind.as_str()),
                    VipUnserved::NoHolder(kind) => format!("no master can hold the VIP ({})", kind.as_str()),
                    VipUnserved::NoFrontend => "nothing serves the VIP".to_string(),
                });
            }
            let healthy = healthy_backends(c, t);
            if healthy.is_empty() {
                return Reach::Down(if c.lb_running.pool.is_empty() {
                    "VIP pool empty".to_string()
                } else {
                    "no healthy backend behind the VIP".to_string()
                });
            }
            let bad_tls = healthy.minus(c.served_vip);
            let not_ready = healthy.minus(apiservers_ready(c));
            let no_flags = if needs.oidc { healthy.minus(c.apiserver_flags) } else { NodeSet::EMPTY };
            let broken = bad_tls.or(not_ready).or(no_flags);
            let names = |set: NodeSet| set.iter().map(|n| t.name(n).to_string()).collect::<Vec<_>>().join(", ");
            let mut why = Vec::new();
            if !bad_tls.is_empty() {
                why.push(format!("cert of {} lacks the VIP SAN", names(bad_tls)));
            }
            if !not_ready.is_empty() {
                why.push(format!("{} passes the TCP check but is not ready", names(not_ready)));
            }
            if !no_flags.is_empty() {
                why.push(format!("{} lacks the OIDC flags", names(no_flags)));
            }
            if broken == healthy {
                Reach::Down(why.join("; "))
            } else if broken.is_empty() {
                Reach::Ok
            } else {
                Reach::Intermittent(why.join("; "))
            }
        }
    }
}

/// The endpoint a consumer uses.
pub fn consumer_endpoint(c: &Cluster, t: &Topology, consumer: usize) -> Endpoint {
    if c.consumer_on_vip(consumer) {
        Endpoint::Vip
    } else {
        Endpoint::Direct(t.existing_master())
    }
}

pub fn consumer_reach(c: &Cluster, t: &Topology, consumer: usize) -> Reach {
    let spec = &t.consumers[consumer];
    if let Some(record) = spec.stale_record.as_ref().filter(|_| !c.consumer_on_vip(consumer) && !c.dns_stale) {
        return Reach::Down(format!("{} names the master by the DNS record {record}, which was deleted", spec.name));
    }
    reach(c, t, consumer_endpoint(c, t, consumer), ClientNeeds { oidc: spec.oidc })
}

/// Every consumer's [`consumer_reachability`], in order; each endpoint and need is asked once,
/// as consumers mostly share them, and the VIP's backends once for every need.
pub fn consumers_reachability<'c>(c: &'c Cluster, t: &'c Topology) -> impl Iterator<Item = Reachability> + 'c {
    // By (through the VIP, needs OIDC).
    let mut asked: [Option<Reachability>; 4] = [None; 4];
    let mut vip: Option<Option<(NodeSet, NodeSet)>> = None;
    t.consumers.iter().enumerate().map(move |(i, spec)| {
        let on_vip = c.consumer_on_vip(i);
        if spec.stale_record.is_some() && !on_vip && !c.dns_stale {
            return Reachability::Down;
        }
        let needs = ClientNeeds { oidc: spec.oidc };
        *asked[usize::from(on_vip) << 1 | usize::from(spec.oidc)].get_or_insert_with(|| match consumer_endpoint(c, t, i) {
            Endpoint::Vip => vip_reachability(c, *vip.get_or_insert_with(|| vip_backends(c, t)), needs),
            direct => reachability(c, t, direct, needs),
        })
    })
}

/// [`consumer_reach`] without the reasons.
pub fn consumer_reachability(c: &Cluster, t: &Topology, consumer: usize) -> Reachability {
    let spec = &t.consumers[consumer];
    if spec.stale_record.is_some() && !c.consumer_on_vip(consumer) && !c.dns_stale {
        return Reachability::Down;
    }
    reachability(c, t, consumer_endpoint(c, t, consumer), ClientNeeds { oidc: spec.oidc })
}

/// The endpoint a node's kubelet uses: the VIP, its own apiserver, or the existing master.
pub fn kubelet_endpoint(c: &Cluster, t: &Topology, node: NodeIx) -> Endpoint {
    if c.kubelet_vip.contains(node) {
        Endpoint::Vip
    } else if c.kubelet_local.contains(node) {
        Endpoint::Direct(node)
    } else {
        Endpoint::Direct(t.existing_master())
    }
}

/// The endpoint kube-proxy uses on every node: the server of the kubeconfig in the
/// `kube-proxy` ConfigMap, rendered by kubeadm from the control-plane endpoint it had then.
pub fn kube_proxy_endpoint(c: &Cluster, t: &Topology) -> Endpoint {
    if c.kube_proxy_vip {
        Endpoint::Vip
    } else {
        Endpoint::Direct(t.existing_master())
    }
}

/// Whether kube-proxy gets Service and EndpointSlice updates from a ready apiserver.
pub fn kube_proxy_reach(c: &Cluster, t: &Topology) -> Reach {
    reach(c, t, kube_proxy_endpoint(c, t), ClientNeeds { oidc: false })
}

/// [`kube_proxy_reach`] without the reasons.
pub fn kube_proxy_reachability(c: &Cluster, t: &Topology) -> Reachability {
    reachability(c, t, kube_proxy_endpoint(c, t), ClientNeeds { oidc: false })
}

/// Whether `node` is Ready: up, registered, and its kubelet reaches an apiserver.
pub fn node_ready(c: &Cluster, t: &Topology, node: NodeIx) -> Reach {
    if !c.up.contains(node) {
        return Reach::Down("node down".to_string());
    }
    if !c.joined.contains(node) {
        return Reach::Down("not registered".to_string());
    }
    reach(c, t, kubelet_endpoint(c, t, node), ClientNeeds { oidc: false })
}

/// [`node_ready`] without the reasons.
pub fn node_reachability(c: &Cluster, t: &Topology, node: NodeIx) -> Reachability {
    if !c.up.contains(node) || !c.joined.contains(node) {
        return Reachability::Down;
    }
    reachability(c, t, kubelet_endpoint(c, t, node), ClientNeeds { oidc: false })
}

/// Whether the etcd backup job can run now, and where.
pub fn backup_runs(c: &Cluster, t: &Topology) -> Result<NodeIx, String> {
    let candidates = backup_candidates(c, t);
    backup_node(c, t).ok_or_else(|| {
        let names: Vec<&str> = candidates.iter().map(|n| t.name(n)).collect();
        format!("backup job can only run on {} and none is ready", if names.is_empty() { "no node".to_string() } else { names.join(", ") })
    })
}

/// Where the etcd backup job can run now, if anywhere ([`backup_runs`] without the reason).
pub fn backup_node(c: &Cluster, t: &Topology) -> Option<NodeIx> {
    backup_candidates(c, t).iter().find(|n| apiserver_ready(c, *n).is_ok() && node_reachability(c, t, *n).is_ok())
}

/// The nodes the etcd backup job may be scheduled on.
fn backup_candidates(c: &Cluster, t: &Topology) -> NodeSet {
    if c.cronjobs_any_master {
        c.control_plane
    } else {
        match t.scenario.cronjobs.iter().find(|j| j.backup).and_then(|j| j.pinned_to.as_ref()) {
            Some(name) => match t.resolve(name) {
                Ok(n) => NodeSet::of(n),
                Err(_) => NodeSet::EMPTY,
            },
            None => c.control_plane,
        }
    }
}

/// Masters that count as control-plane and Ready (what the reboot gate and upgrade chain count).
pub fn ready_masters(c: &Cluster, t: &Topology) -> NodeSet {
    c.control_plane
        .iter()
        .filter(|n| node_reachability(c, t, *n).is_ok() && apiserver_ready(c, *n).is_ok())
        .fold(NodeSet::EMPTY, NodeSet::with)
}

/// Whether the node is one the migration treats as a master.
pub fn is_master(t: &Topology, node: NodeIx) -> bool {
    t.node(node).kind != NodeKind::Worker
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers without words agree with the answers with them, for every consumer, node,
    /// kube-proxy and the backup job: the exploration asks one, the report the other. Every
    /// load balancer profile is among the scenarios (the VIP on a host, on the masters by
    /// keepalived, by kube-vip).
    #[test]
    fn reachability_without_words_agrees_with_the_reasons() {
        let mut seen = [0usize; 3];
        for text in [
            include_str!("../../scenarios/homelab.yaml"),
            include_str!("../../scenarios/five-masters.yaml"),
            include_str!("../../scenarios/legacy-1.28.yaml"),
            include_str!("../../scenarios/two-hypervisors.yaml"),
            include_str!("../../scenarios/haproxy-libvirt.yaml"),
            include_str!("../../scenarios/keepalived-five.yaml"),
            include_str!("../../scenarios/kube-vip-bare.yaml"),
        ] {
            let (t, states) = crate::test_states::states_struck(text);
            for c in &states {
                for i in 0..t.consumers.len() {
                    let level = consumer_reachability(c, &t, i);
                    assert_eq!(level, consumer_reach(c, &t, i).reachability(), "consumer {i}");
                    seen[level as usize] += 1;
                }
                for n in c.joined.iter() {
                    assert_eq!(node_reachability(c, &t, n), node_ready(c, &t, n).reachability(), "node {}", t.name(n));
                }
                let each: Vec<Reachability> = (0..t.consumers.len()).map(|i| consumer_reachability(c, &t, i)).collect();
                assert_eq!(consumers_reachability(c, &t).collect::<Vec<_>>(), each);
                assert_eq!(kube_proxy_reachability(c, &t), kube_proxy_reach(c, &t).reachability());
                assert_eq!(backup_node(c, &t), backup_runs(c, &t).ok());
                let ready: Vec<NodeIx> = (0..t.nodes.len() as u8).map(NodeIx).filter(|n| apiserver_ready(c, *n).is_ok()).collect();
                assert_eq!(apiservers_ready(c).iter().collect::<Vec<_>>(), ready, "apiservers ready at once");
            }
        }
        assert!(seen.iter().all(|n| *n > 0), "ok, intermittent and down all met: {seen:?}");
    }
}
