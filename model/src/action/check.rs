//! The verifications a step makes: what each checks in the state, and why it fails.

use crate::action::{Words, BACKUP_AGE_MAX_S};
use crate::cluster::Cluster;
use crate::observe::{self, ClientNeeds, Endpoint};
use crate::scenario::LbKind;
use crate::topology::{NodeIx, Topology};
use serde::Serialize;

/// A verification: the step's checks, refused when they do not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "check", content = "node")]
pub enum Check {
    /// Every registered node Ready, etcd quorum, every apiserver ready.
    ClusterHealthy,
    /// An etcd snapshot no older than a day and a bit.
    BackupFresh,
    /// The VIP and the new masters' addresses answer nobody.
    AddressesFree,
    /// `kubeadm-config` has `controlPlaneEndpoint` and the VIP SANs.
    KubeadmEndpoint,
    /// The on-disk apiserver cert of the node carries the VIP SAN.
    CertHasVip(NodeIx),
    /// The node's running apiserver serves a cert with the VIP SAN (`openssl s_client`).
    ServedCertHasVip(NodeIx),
    ApiserverReady(NodeIx),
    /// HAProxy listens on the VIP.
    VipListening,
    /// Every backend in the running pool passes the health check.
    BackendsUp,
    /// A client of the VIP verifies TLS and gets `/readyz` ok.
    ViaVip,
    /// The node is ready to be joined: up, cluster's kubeadm version, not yet a node.
    ReadyToJoin(NodeIx),
    /// The config stack's flags are on the node's apiserver.
    FlagsOn(NodeIx),
    NodeReady(NodeIx),
    /// Every etcd member is a started voter (no learner left behind).
    EtcdMembersVoting,
    /// Every consumer's server is the VIP.
    ConsumersOnVip,
    /// No kubelet depends on the first master alone: workers on the VIP, masters on the VIP or
    /// on their own apiserver.
    KubeletsHighlyAvailable,
    /// The node's kubelet.conf names its own apiserver.
    KubeletLocal(NodeIx),
    /// kube-proxy's kubeconfig names the VIP.
    KubeProxyOnVip,
    /// The backup job may run on any master and can run now.
    BackupRunsAnywhere,
    GateQuorumAware,
    /// The upgrade chain discovers every master.
    ChainCoversMasters,
    /// Every master has the same apiserver flags.
    FlagParity,
    /// The source plan's acceptance criteria 3-6.
    Acceptance,
    /// No host holds the join command or the certificate key written for the joins.
    NoJoinSecrets,
}

impl Check {
    pub fn describe(self, t: &Topology) -> String {
        use Check::*;
        let n = |ix: NodeIx| t.name(ix).to_string();
        match self {
            ClusterHealthy => "cluster healthy".to_string(),
            BackupFresh => "recent etcd backup".to_string(),
            AddressesFree => "VIP and new master addresses free".to_string(),
            KubeadmEndpoint => "kubeadm-config has controlPlaneEndpoint".to_string(),
            CertHasVip(x) => format!("apiserver cert of {} has the VIP SAN", n(x)),
            ServedCertHasVip(x) => format!("kube-apiserver on {} serves the cert with the VIP SAN", n(x)),
            ApiserverReady(x) => format!("kube-apiserver on {} ready", n(x)),
            VipListening => "HAProxy listens on the VIP".to_string(),
            BackendsUp => "every pool backend UP".to_string(),
            ViaVip => "TLS and /readyz through the VIP".to_string(),
            ReadyToJoin(x) => format!("{} ready to join", n(x)),
            FlagsOn(x) => format!("apiserver flags on {}", n(x)),
            NodeReady(x) => format!("{} Ready", n(x)),
            EtcdMembersVoting => "every etcd member a started voter".to_string(),
            ConsumersOnVip => "every consumer on the VIP".to_string(),
            KubeletsHighlyAvailable => "no kubelet.conf names the first master alone".to_string(),
            KubeletLocal(x) => format!("kubelet.conf of {} names its own apiserver", n(x)),
            KubeProxyOnVip => "kube-proxy's kubeconfig names the VIP".to_string(),
            BackupRunsAnywhere => "etcd backup runs on any master".to_string(),
            GateQuorumAware => "reboot gate checks quorum".to_string(),
            ChainCoversMasters => "upgrade chain covers every master".to_string(),
            FlagParity => "identical flags on every master".to_string(),
            Acceptance => "acceptance criteria".to_string(),
            NoJoinSecrets => "no host holds a join secret and no join token is left valid".to_string(),
        }
    }

    /// Whether the check passes; the error says what is wrong in terms of state.
    pub fn evaluate(self, c: &Cluster, t: &Topology) -> Result<(), String> {
        self.evaluate_in(c, t, Words(true))
    }

    /// [`Check::evaluate`], the error worded only with `w` (empty without). Each family of checks
    /// is evaluated apart: the cluster's health, the certificates, the VIP, the joins, the
    /// kubeconfigs, the maintenance stacks, and the acceptance criteria that sum them up.
    pub(super) fn evaluate_in(self, c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
        use Check::*;
        match self {
            ClusterHealthy | ApiserverReady(_) | NodeReady(_) | EtcdMembersVoting => self.evaluate_health(c, t, w),
            KubeadmEndpoint | CertHasVip(_) | ServedCertHasVip(_) => self.evaluate_certs(c, t, w),
            AddressesFree | VipListening | BackendsUp | ViaVip => self.evaluate_vip(c, t, w),
            ReadyToJoin(_) | FlagsOn(_) | FlagParity | NoJoinSecrets => self.evaluate_join(c, t, w),
            ConsumersOnVip | KubeletsHighlyAvailable | KubeletLocal(_) | KubeProxyOnVip => self.evaluate_kubeconfigs(c, t, w),
            BackupFresh | BackupRunsAnywhere | GateQuorumAware | ChainCoversMasters => self.evaluate_maintenance(c, t, w),
            Acceptance => evaluate_acceptance(c, t, w),
        }
    }

    /// The cluster's health: etcd's quorum and members, the apiservers, the nodes.
    #[inline]
    fn evaluate_health(self, c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
        use Check::*;
        let name = |ix: NodeIx| t.name(ix).to_string();
        match self {
            ClusterHealthy => {
                let q = observe::quorum(c);
                if !q.holds() {
                    return Err(w.say(|| q.to_string()));
                }
                for node in c.joined.iter() {
                    if let Err(why) = node_ready_in(c, t, node, w) {
                        return Err(w.say(|| format!("{} NotReady: {why}", name(node))));
                    }
                }
                // A master written off has no Node object, so no mirror pods left to list: the pod
                // GC deletes pods bound to a node that no longer exists (`gcOrphaned`,
                // kubernetes pkg/controller/podgc/gc_controller.go).
                for node in c.control_plane.minus(c.written_off).iter() {
                    observe::apiserver_ready(c, node).map_err(|why| w.say(|| format!("kube-apiserver on {}: {why}", name(node))))?;
                }
                match c.stale_nodes.iter().next() {
                    Some(node) => Err(w.say(|| format!("{} NotReady: Node object left by kubeadm reset or a destroyed VM", name(node)))),
                    None => Ok(()),
                }
            }
            ApiserverReady(x) => observe::apiserver_ready(c, x).map_err(|why| w.say(|| format!("kube-apiserver on {}: {why}", name(x)))),
            NodeReady(x) => node_ready_in(c, t, x, w).map_err(|why| w.say(|| format!("{} NotReady: {why}", name(x)))),
            EtcdMembersVoting => {
                if let Some(n) = c.learners.iter().next() {
                    return Err(w.say(|| format!("{} is still a learner", name(n))));
                }
                match c.voters.minus(observe::live_members(c)).iter().next() {
                    Some(n) => Err(w.say(|| format!("etcd member {} not running", name(n)))),
                    None => Ok(()),
                }
            }
            _ => unreachable!("{self:?} is not a health check"),
        }
    }

    /// The apiserver's certificate and the endpoint kubeadm-config names.
    #[inline]
    fn evaluate_certs(self, c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
        use Check::*;
        let name = |ix: NodeIx| t.name(ix).to_string();
        match self {
            KubeadmEndpoint => c.kubeadm_endpoint.then_some(()).ok_or_else(|| w.say(|| "kubeadm-config has no controlPlaneEndpoint")),
            CertHasVip(x) => {
                if !c.cert_present.contains(x) {
                    Err(w.say(|| format!("no apiserver cert on {}", name(x))))
                } else if !c.cert_vip.contains(x) {
                    Err(w.say(|| format!("apiserver cert of {} lacks the VIP SAN", name(x))))
                } else {
                    Ok(())
                }
            }
            ServedCertHasVip(x) => {
                observe::apiserver_ready(c, x).map_err(|why| w.say(|| format!("kube-apiserver on {}: {why}", name(x))))?;
                c.served_vip
                    .contains(x)
                    .then_some(())
                    .ok_or_else(|| w.say(|| format!("kube-apiserver on {} still serves a cert without the VIP SAN", name(x))))
            }
            _ => unreachable!("{self:?} is not a certificate check"),
        }
    }

    /// The VIP: free before it is reserved, then served and passing clients through to
    /// healthy backends.
    #[inline]
    fn evaluate_vip(self, c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
        use Check::*;
        let name = |ix: NodeIx| t.name(ix).to_string();
        match self {
            AddressesFree => {
                if c.vip_alias {
                    return Err(w.say(|| "the VIP already answers"));
                }
                match t.new_masters().find(|n| c.vm_exists.contains(*n)) {
                    Some(n) => Err(w.say(|| format!("{} already answers", t.node(n).address))),
                    None => Ok(()),
                }
            }
            VipListening => {
                let kind = t.scenario.load_balancer.kind;
                let served = match kind {
                    LbKind::KubeVip => observe::vip_holder(c, t).is_some(),
                    LbKind::Keepalived => observe::vip_holder(c, t).is_some() && c.lb_running.frontend,
                    LbKind::PfsenseBootstrap | LbKind::Haproxy => c.lb_running.frontend,
                };
                if c.lb_up && c.vip_alias && served {
                    Ok(())
                } else {
                    Err(w.say(|| "nothing listens on the VIP"))
                }
            }
            BackendsUp => {
                let down = c.lb_running.pool.minus(observe::healthy_backends(c, t));
                match down.iter().next() {
                    Some(n) => Err(w.say(|| format!("backend {} is DOWN", name(n)))),
                    None => Ok(()),
                }
            }
            ViaVip => reach_in(c, t, Endpoint::Vip, ClientNeeds { oidc: false }, w),
            _ => unreachable!("{self:?} is not a VIP check"),
        }
    }

    /// The joins: a node ready for one, the masters' flags after, and no join secret left.
    #[inline]
    fn evaluate_join(self, c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
        use Check::*;
        let name = |ix: NodeIx| t.name(ix).to_string();
        match self {
            ReadyToJoin(x) => {
                if !c.up.contains(x) {
                    Err(w.say(|| format!("{} is down", name(x))))
                } else if c.old_kubeadm.contains(x) {
                    Err(w.say(|| {
                        format!(
                            "{} has kubeadm {}.{}, the cluster runs {}.{}",
                            name(x),
                            t.template_version.0,
                            t.template_version.1,
                            t.version.0,
                            t.version.1
                        )
                    }))
                } else if c.joined.contains(x) {
                    Err(w.say(|| format!("{} is already a node (joined as a worker at first boot)", name(x))))
                } else {
                    Ok(())
                }
            }
            FlagsOn(x) => {
                c.apiserver_flags.contains(x).then_some(()).ok_or_else(|| w.say(|| format!("{} lacks the apiserver flags", name(x))))
            }
            NoJoinSecrets => {
                // A machine written off keeps its files until its disk is wiped, which writing
                // it off asks for; the check asks the machines the cluster still has.
                if let Some(x) = c.join_secrets_on.minus(c.written_off).iter().next() {
                    return Err(w.say(|| format!("{} still holds the join command or the certificate key", name(x))));
                }
                let ttl_s = t.scenario.kubeadm.token_ttl_h * 3600;
                match c.token_s.map(|at| c.clock_s.saturating_sub(at)) {
                    Some(age) if age < ttl_s => Err(w.say(|| {
                        format!(
                            "a join token the plan made is valid for {} more (kubeadm token delete it)",
                            crate::plan::format_duration(ttl_s - age)
                        )
                    })),
                    _ => Ok(()),
                }
            }
            FlagParity => match c.control_plane.minus(c.apiserver_flags).iter().next() {
                Some(n) => Err(w.say(|| format!("{} lacks the apiserver flags", name(n)))),
                None => Ok(()),
            },
            _ => unreachable!("{self:?} is not a join check"),
        }
    }

    /// The kubeconfigs: the consumers', kube-proxy's and the kubelets' servers.
    #[inline]
    fn evaluate_kubeconfigs(self, c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
        use Check::*;
        let name = |ix: NodeIx| t.name(ix).to_string();
        match self {
            ConsumersOnVip => {
                (c.consumers_vip == t.consumers_mask()).then_some(()).ok_or_else(|| w.say(|| "a consumer still uses the direct address"))
            }
            KubeletsHighlyAvailable => {
                let first = t.existing_master();
                let on_first = c.joined.minus(c.kubelet_vip).minus(c.kubelet_local.and(c.control_plane)).without(first);
                match on_first.iter().next() {
                    Some(n) => Err(w.say(|| format!("kubelet.conf of {} still names {} alone", name(n), name(first)))),
                    None => Ok(()),
                }
            }
            KubeletLocal(x) => (c.kubelet_local.contains(x) && !c.kubelet_vip.contains(x))
                .then_some(())
                .ok_or_else(|| w.say(|| format!("kubelet.conf of {} does not name its own apiserver", name(x)))),
            KubeProxyOnVip => {
                c.kube_proxy_vip.then_some(()).ok_or_else(|| w.say(|| "kube-proxy's kubeconfig still names the first master"))
            }
            _ => unreachable!("{self:?} is not a kubeconfig check"),
        }
    }

    /// The maintenance the cluster depends on: the etcd backup, the reboot gate, the upgrade chain.
    #[inline]
    fn evaluate_maintenance(self, c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
        use Check::*;
        match self {
            BackupFresh => {
                let age = c.clock_s as i64 - c.last_backup_s;
                if age <= BACKUP_AGE_MAX_S {
                    Ok(())
                } else {
                    Err(w.say(|| format!("newest etcd snapshot is {} h old", age / 3600)))
                }
            }
            BackupRunsAnywhere => {
                if !c.cronjobs_any_master {
                    return Err(w.say(|| "etcd CronJobs are pinned to one node"));
                }
                observe::backup_runs(c, t).map(|_| ())
            }
            GateQuorumAware => c.gate_quorum.then_some(()).ok_or_else(|| w.say(|| "the reboot gate does not check quorum")),
            ChainCoversMasters => {
                c.chain_all_masters.then_some(()).ok_or_else(|| w.say(|| "the upgrade chain only knows the first master"))
            }
            _ => unreachable!("{self:?} is not a maintenance check"),
        }
    }
}

/// The source plan's acceptance criteria 3-6: every master in place, behind the VIP, healthy and
/// voting, named by DNS, and the maintenance covering them all.
fn evaluate_acceptance(c: &Cluster, t: &Topology, w: Words) -> Result<(), String> {
    use Check::*;
    let name = |ix: NodeIx| t.name(ix).to_string();
    let masters = t.target_masters();
    if c.control_plane != masters {
        return Err(w.say(|| format!("{} of {} masters online", c.control_plane.len(), masters.len())));
    }
    // "apiserver LB working": every master behind the VIP, not just enough of them.
    let kind = t.scenario.load_balancer.kind;
    if let Some(x) = masters.minus(c.lb_running.pool).iter().next().filter(|_| kind.has_pool()) {
        return Err(w.say(|| format!("{} is not in the load balancer's pool", name(x))));
    }
    if let Some(x) = masters.minus(c.vip_daemons).iter().next().filter(|_| kind.on_masters()) {
        return Err(w.say(|| format!("{} does not run {}: it can never hold the VIP", name(x), kind.as_str())));
    }
    ClusterHealthy.evaluate_in(c, t, w)?;
    if let Some(x) = c.old_kubeadm.and(c.control_plane).iter().next() {
        return Err(w.say(|| {
            format!(
                "{} runs kubeadm and kubelet {}.{} in a {}.{} control plane",
                name(x),
                t.template_version.0,
                t.template_version.1,
                t.version.0,
                t.version.1
            )
        }));
    }
    EtcdMembersVoting.evaluate_in(c, t, w)?;
    if c.voters != masters {
        return Err(w.say(|| format!("etcd has {} voters, want {}", c.voters.len(), masters.len())));
    }
    // The API's name is what clients and the served cert's SAN use.
    if !c.dns_vip && t.scenario.dns.via != crate::scenario::DnsVia::None {
        return Err(w.say(|| format!("{} has no DNS record for the VIP", t.scenario.control_plane_endpoint.fqdn)));
    }
    if c.dns_stale {
        return Err(w.say(|| "a stale DNS record still names the first master"));
    }
    ViaVip.evaluate_in(c, t, w)?;
    ChainCoversMasters.evaluate_in(c, t, w)?;
    GateQuorumAware.evaluate_in(c, t, w)?;
    BackupRunsAnywhere.evaluate_in(c, t, w)
}

trait ReachExt {
    fn ok_or_reason(self, w: Words) -> Result<(), String>;
}

/// Whether `node` is Ready, with why not worded only with `w`: without words, asked of
/// [`observe::node_reachability`], which builds none (the exploration's runs check the
/// cluster's health at many steps, every node of it).
fn node_ready_in(c: &Cluster, t: &Topology, node: NodeIx, w: Words) -> Result<(), String> {
    if w.0 {
        observe::node_ready(c, t, node).ok_or_reason(w)
    } else {
        observe::node_reachability(c, t, node).is_ok().then_some(()).ok_or_else(String::new)
    }
}

/// Whether a client pointed at `endpoint` gets answers, with why not worded only with `w`
/// (without words, asked of [`observe::reachability`]).
fn reach_in(c: &Cluster, t: &Topology, endpoint: Endpoint, needs: ClientNeeds, w: Words) -> Result<(), String> {
    if w.0 {
        observe::reach(c, t, endpoint, needs).ok_or_reason(w)
    } else {
        observe::reachability(c, t, endpoint, needs).is_ok().then_some(()).ok_or_else(String::new)
    }
}

impl ReachExt for observe::Reach {
    fn ok_or_reason(self, w: Words) -> Result<(), String> {
        match self {
            observe::Reach::Ok => Ok(()),
            other => Err(w.say(|| other.to_string())),
        }
    }
}

/// The checks that name no node, and those that name one: every check there is.
const CHECKS_OF_THE_CLUSTER: [Check; 17] = [
    Check::ClusterHealthy,
    Check::BackupFresh,
    Check::AddressesFree,
    Check::KubeadmEndpoint,
    Check::VipListening,
    Check::BackendsUp,
    Check::ViaVip,
    Check::EtcdMembersVoting,
    Check::ConsumersOnVip,
    Check::KubeletsHighlyAvailable,
    Check::KubeProxyOnVip,
    Check::BackupRunsAnywhere,
    Check::GateQuorumAware,
    Check::ChainCoversMasters,
    Check::FlagParity,
    Check::Acceptance,
    Check::NoJoinSecrets,
];
const CHECKS_OF_A_NODE: [fn(NodeIx) -> Check; 7] = [
    Check::CertHasVip,
    Check::ServedCertHasVip,
    Check::ApiserverReady,
    Check::ReadyToJoin,
    Check::FlagsOn,
    Check::NodeReady,
    Check::KubeletLocal,
];

impl Check {
    /// The node a check's key ([`Check::key`]) names, without parsing the check: the words
    /// after its kind (`node-ready k8s-master-2` names `k8s-master-2`); `None` for a check of
    /// the cluster.
    pub fn node_in_key(key: &str) -> Option<&str> {
        key.trim().split_once(char::is_whitespace).map(|(_, node)| node.trim())
    }

    /// How a plan file names the check: `cluster-healthy`, `node-ready k8s-master-2`.
    pub fn key(self, t: &Topology) -> String {
        let debug = format!("{self:?}");
        let variant = debug.split('(').next().unwrap_or_default();
        let mut key = String::new();
        for (i, c) in variant.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                key.push('-');
            }
            key.push(c.to_ascii_lowercase());
        }
        match crate::action::Action::Verify(self).node() {
            Some(node) => format!("{key} {}", t.name(node)),
            None => key,
        }
    }

    /// The check a plan file names (see [`Check::key`]).
    ///
    /// # Errors
    /// The key names no check of this cluster; the message lists the check names.
    pub fn parse(t: &Topology, key: &str) -> Result<Check, String> {
        let every = CHECKS_OF_THE_CLUSTER
            .iter()
            .copied()
            .chain(CHECKS_OF_A_NODE.iter().flat_map(|check| (0..t.nodes.len()).map(move |i| check(NodeIx(i as u8)))));
        let key = key.split_whitespace().collect::<Vec<_>>().join(" ");
        every.into_iter().find(|check| check.key(t) == key).ok_or_else(|| {
            let mut names: Vec<String> = CHECKS_OF_THE_CLUSTER.iter().map(|c| c.key(t)).collect();
            names.extend(CHECKS_OF_A_NODE.iter().map(|c| format!("{} NODE", c(NodeIx(0)).key(t).split(' ').next().unwrap_or_default())));
            names.dedup();
            format!("no check {key:?}: the checks are {}", names.join(", "))
        })
    }
}
