//! The observers that ask the hosts, over the transport: every joined node's kubelet.conf and
//! every master's apiserver certificate (its SANs read here), etcd's member list and endpoint health on a live master, the
//! load balancer's config and `show stat`. Their questions go out at once
//! ([`Transport::read_and_run`]), `endpoint health` with them over the client URLs the last look's
//! member list named; only when this look's list names other URLs (a member added, removed or
//! moved, or the first look) is `endpoint health` asked again over those, in a second round. The
//! answers become facts in one order whatever the transport: the files', etcd's, the load
//! balancer's.

use super::{
    cert_has_vip, kubelet_on_vip, seen, subject_alt_names, Field, Observation, Probes, Scope, Seen, APISERVER_CERT, KUBELET_CONF,
    OBSERVE_TIMEOUT_S,
};
use crate::etcd::{self, EtcdMember, EtcdProbe};
use crate::guard::Guard;
use crate::haproxy::{self, LbProbe};
use crate::target::{HostTarget, Hosts, Place};
use crate::transport::{Completed, FileRead, ReadAndRun, Request, Transport};
use crate::ExecError;
use plan_model::cluster::Cluster;
use plan_model::observe as derive;
use plan_model::topology::{NodeIx, NodeSet, Topology};
use std::time::Duration;

fn request(shell: &str) -> Request<'_> {
    Request { step: "observe", shell, stdin: None, secret: false, timeout: Duration::from_secs(OBSERVE_TIMEOUT_S) }
}

/// Observes on the hosts what `scope` names (see the module's words): one round for everything,
/// a second for etcd's endpoint health when the member list names other client URLs than
/// `listed_urls`, which the last list named and this one's are left in.
///
/// # Errors
/// Only the loopback guard's refusal; a host or service that does not answer is recorded.
pub(super) fn observe_hosts(
    t: &Topology,
    c: &Cluster,
    transport: &mut dyn Transport,
    scope: Scope,
    probes: &Probes,
    listed_urls: &mut Vec<String>,
    observation: &mut Observation,
) -> Result<(), ExecError> {
    let files = if scope.files { FileAsks::of(t, c) } else { FileAsks::default() };
    let etcd = match (&probes.etcd, scope.etcd) {
        (Some(probe), true) => EtcdAsk::of(t, c, probe, probes.guard)?,
        _ => None,
    };
    let lb = match (&probes.lb, scope.lb && c.lb_up) {
        (Some(probe), true) => LbAsk::of(t, probe),
        _ => None,
    };
    let mut reads: Vec<(HostTarget, &str)> = files.nodes.iter().map(|(host, _)| (host.clone(), KUBELET_CONF)).collect();
    reads.extend(files.masters().map(|host| (host.clone(), APISERVER_CERT)));
    let mut runs: Vec<(Place, Request<'_>)> = Vec::new();
    if let Some(lb) = &lb {
        reads.push((lb.host.clone(), lb.config.as_str()));
        if let Some(stat) = &lb.stat {
            runs.push((Place::Host(lb.host.clone()), request(stat)));
        }
    }
    let mut health_early = None;
    if let Some(EtcdAsk::List { place, list, label, .. }) = &etcd {
        runs.push((place.clone(), request(list)));
        let probe = probes.etcd.as_ref().expect("an etcd ask has its probe");
        // A URL the guard refuses is not dialled here; the list decides whether it is asked.
        health_early = health_command(probe, probes.guard, label, listed_urls).ok().and_then(Result::ok);
        if let Some(health) = &health_early {
            runs.push((place.clone(), request(health)));
        }
    }
    // Last in the round: their answers are read after everything else's.
    let hypervisors = if scope.hypervisors { hypervisors_up(t, c) } else { Vec::new() };
    runs.extend(hypervisors.iter().map(|host| (Place::Host(host.clone()), request("true"))));
    let ReadAndRun { read, ran } = if reads.is_empty() && runs.is_empty() {
        ReadAndRun { read: Vec::new(), ran: Vec::new() }
    } else {
        transport.read_and_run(&reads, &runs)
    };
    let (mut read, mut ran) = (read.into_iter(), ran.into_iter());
    let kubelet: Vec<_> = read.by_ref().take(files.nodes.len()).collect();
    let certs: Vec<_> = read.by_ref().take(files.masters().count()).collect();
    files.facts(t, kubelet, certs, observation)?;
    let lb_answers = lb.as_ref().map(|lb| (read.next(), if lb.stat.is_some() { ran.next() } else { None }));
    match etcd {
        Some(EtcdAsk::Invalid { label, reason }) => observation.unreachable.push((label, reason)),
        Some(EtcdAsk::List { place, node, label, list, others }) => {
            let listed = ran.next().expect("the member list was asked");
            let mut early = health_early.map(|_| ran.next().expect("the health was asked"));
            let (mut place, mut label) = (place, label);
            let mut members = etcd_members(t, (&node, &label), listed, observation)?;
            if members.is_none() && !others.is_empty() {
                // The master asked did not list: the others the twin has serving are asked, in a
                // round of their own, and the first list that comes is read.
                early = None;
                let status = probes.etcd.as_ref().expect("an etcd ask has its probe").endpoint_status_command();
                if let Some((elsewhere, asked, listed)) = list_elsewhere(t, transport, &others, (&list, &status), observation)? {
                    (place, label, members) = (elsewhere, asked, Some(listed));
                }
            }
            if let Some(members) = members {
                let mut client_urls = etcd::client_urls(&members);
                client_urls.sort();
                let answered = match early {
                    Some(answered) if client_urls == *listed_urls => Some(answered),
                    _ => ask_health(transport, probes, &place, &label, &client_urls, observation)?,
                };
                if let Some(answered) = answered {
                    health_facts(t, &label, &members, answered, observation)?;
                }
                *listed_urls = client_urls;
            }
        }
        None => {}
    }
    if let (Some(lb), Some((Some(config), stat))) = (&lb, lb_answers) {
        lb_facts(t, lb, config, stat, observation)?;
    }
    for (host, answer) in hypervisors.iter().zip(ran) {
        match answer {
            Ok(_) => {}
            Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
            Err(e) => {
                if matches!(e, ExecError::Ssh { .. }) {
                    observation.no_ssh.push(host.name.clone());
                }
                observation.unreachable.push((host.name.clone(), e.to_string()));
            }
        }
    }
    Ok(())
}

/// The hypervisors the twin's state `c` has up that the plan drives (`proxmox`, `libvirt`: not
/// `kind: none`, whose machines the operator provides) and a command reaches (an address in the
/// inventory): asked whether SSH answers, as a recovery's VM commands would need.
fn hypervisors_up(t: &Topology, c: &Cluster) -> Vec<HostTarget> {
    let hosts = Hosts::new(t);
    let driven = |i: usize| t.scenario.hypervisors[i].kind != plan_model::scenario::HypervisorKind::None;
    (0..t.scenario.hypervisors.len())
        .filter(|&i| c.hypervisors_down & (1 << i) == 0 && driven(i))
        .filter_map(|i| hosts.hypervisor(i))
        .collect()
}

/// Every joined node that is up, each with whether it is a master (whose SANs are read too).
#[derive(Default)]
struct FileAsks {
    nodes: Vec<(HostTarget, bool)>,
}

impl FileAsks {
    fn of(t: &Topology, c: &Cluster) -> FileAsks {
        let hosts = Hosts::new(t);
        FileAsks { nodes: c.joined.and(c.up).iter().map(|node| (hosts.node(node), c.control_plane.contains(node))).collect() }
    }

    fn masters(&self) -> impl Iterator<Item = &HostTarget> {
        self.nodes.iter().filter(|(_, master)| *master).map(|(host, _)| host)
    }

    /// The kubelet.conf of each node, then the apiserver certificate's SANs of each master whose
    /// kubelet.conf read got an answer (a host that did not answer is recorded once).
    fn facts(
        &self,
        t: &Topology,
        kubelet: Vec<Result<FileRead, ExecError>>,
        certs: Vec<Result<FileRead, ExecError>>,
        observation: &mut Observation,
    ) -> Result<(), ExecError> {
        let mut answered = Vec::with_capacity(self.nodes.len());
        for ((host, _), read) in self.nodes.iter().zip(kubelet) {
            let answer = match read {
                Ok(FileRead::Present(text)) => {
                    let (seen, evidence) = kubelet_on_vip(&text, t);
                    observation.fact(&host.name, Field::KubeletOnVip, seen, evidence);
                    true
                }
                Ok(FileRead::Missing) => {
                    observation.fact(&host.name, Field::KubeletOnVip, Seen::Missing, format!("{KUBELET_CONF} missing"));
                    true
                }
                Ok(FileRead::Unobserved) => true,
                Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                Err(e) => {
                    if matches!(e, ExecError::Ssh { .. }) {
                        observation.no_ssh.push(host.name.clone());
                    }
                    observation.unreachable.push((host.name.clone(), e.to_string()));
                    false
                }
            };
            answered.push(answer);
        }
        let masters = self.nodes.iter().zip(&answered).filter(|((_, master), _)| *master);
        for (((host, _), answered), read) in masters.zip(certs) {
            if !answered {
                continue;
            }
            match read {
                Ok(FileRead::Present(pem)) => match subject_alt_names(&pem) {
                    Ok(sans) => {
                        let (seen, evidence) = cert_has_vip(&sans, t);
                        observation.fact(&host.name, Field::CertHasVip, seen, evidence);
                    }
                    Err(e) => observation.unreachable.push((host.name.clone(), format!("{APISERVER_CERT}: {e}"))),
                },
                Ok(FileRead::Missing) => {
                    observation.fact(&host.name, Field::CertHasVip, Seen::Missing, format!("{APISERVER_CERT} missing"))
                }
                Ok(FileRead::Unobserved) => {}
                Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                Err(e) => observation.unreachable.push((host.name.clone(), e.to_string())),
            }
        }
        Ok(())
    }
}

/// The last line of a failed command's error output, for a message.
fn failure_line(stdout: &str, stderr: &str, exit: Option<i32>) -> String {
    let line = stderr.lines().rev().chain(stdout.lines().rev()).find(|l| !l.trim().is_empty()).unwrap_or("no output");
    format!("{} ({})", crate::redact::redact(line.trim()), exit.map_or("killed".to_string(), |c| format!("exit {c}")))
}

/// What etcd's observer asks: `etcdctl member list` on a master the twin says runs a member with
/// quorum, or why it cannot ask (a probe that does not hold together).
enum EtcdAsk {
    /// `list` on `place`; `others`, the other masters the twin has serving with quorum, are asked
    /// when it does not answer.
    List {
        place: Place,
        node: String,
        label: String,
        list: String,
        others: Vec<HostTarget>,
    },
    Invalid {
        label: String,
        reason: String,
    },
}

impl EtcdAsk {
    /// Nothing when no live master has quorum (the twin then predicts etcd cannot answer).
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] when the guard refuses the endpoint, before anything runs.
    fn of(t: &Topology, c: &Cluster, probe: &EtcdProbe, guard: Guard) -> Result<Option<EtcdAsk>, ExecError> {
        let live = derive::live_members(c).and(c.control_plane).and(c.voters);
        let mut serving = live.iter().filter(|n| derive::quorum_at(c, *n).holds());
        let Some(master) = serving.next() else { return Ok(None) };
        let hosts = Hosts::new(t);
        let others = serving.map(|n| hosts.node(n)).collect();
        let host = hosts.node(master);
        let label = format!("etcd via {}", host.name);
        if let Err(e) = probe.validate() {
            return Ok(Some(EtcdAsk::Invalid { label, reason: e.to_string() }));
        }
        // `--etcd-endpoint` may list several endpoints, comma-separated, as etcdctl takes them.
        for endpoint in probe.endpoint.split(',') {
            guard.check_url("etcd endpoint", endpoint)?;
        }
        Ok(Some(EtcdAsk::List { node: host.name.clone(), place: Place::Host(host), label, list: probe.member_list_command(), others }))
    }
}

/// The member list's facts (voter, learner, started; members of no inventory node), and the
/// members for `endpoint health`; nothing when the list did not come. Asked on `node` (shown as
/// `label`): a list its etcd refused is recorded as that master refusing, besides unanswered.
fn etcd_members(
    t: &Topology,
    (node, label): (&str, &str),
    listed: Result<Completed, ExecError>,
    observation: &mut Observation,
) -> Result<Option<Vec<EtcdMember>>, ExecError> {
    let listed = match listed {
        Ok(done) if done.success() => etcd::parse_member_list(&done.stdout),
        Ok(done) => {
            let why = refused(node, &done, observation);
            observation.unreachable.push((label.to_string(), why));
            return Ok(None);
        }
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => {
            observation.unreachable.push((label.to_string(), e.to_string()));
            return Ok(None);
        }
    };
    let members = match listed {
        Ok(members) => members,
        Err(e) => {
            observation.unreachable.push((label.to_string(), e.to_string()));
            return Ok(None);
        }
    };
    let membership = etcd::EtcdMembership::of(t, &members);
    for (i, node) in t.nodes.iter().enumerate() {
        let ix = NodeIx(i as u8);
        let evidence = membership.evidence(ix);
        observation.fact(&node.name, Field::EtcdVoter, seen(membership.voters.contains(ix)), evidence.clone());
        observation.fact(&node.name, Field::EtcdLearner, seen(membership.learners.contains(ix)), evidence.clone());
        if membership.voters.or(membership.learners).contains(ix) {
            observation.fact(&node.name, Field::EtcdStarted, seen(membership.started.contains(ix)), evidence);
        }
    }
    for (member, stranger) in members.iter().filter(|m| etcd::member_node(t, m).is_none()).zip(&membership.strangers) {
        let field = if member.is_learner { Field::EtcdLearner } else { Field::EtcdVoter };
        let name = if member.name.is_empty() { format!("{:x}", member.id) } else { member.name.clone() };
        observation.fact(&name, field, Seen::Yes, format!("{stranger}: no inventory node"));
    }
    Ok(Some(members))
}

/// etcd's words for a member that is a learner: `ErrGPRCNotSupportedForLearner`
/// (`api/v3rpc/rpctypes/error.go`, 3.4 to 3.6), its answer to any RPC but `Status` and a
/// serializable `Range` (`isRPCSupportedForLearner`), the member list among them. The client
/// retries it (`codes.Unavailable`) until its deadline, logging each attempt's error.
const LEARNER_REFUSAL: &str = "rpc not supported for learner";

/// A member list `node`'s etcd refused (its host answered): recorded as the master refusing
/// (`Observation::etcd_refused`), and, where etcd said the member is a learner, as that member
/// running as a learner. Returns why, for people.
fn refused(node: &str, done: &Completed, observation: &mut Observation) -> String {
    let why = format!("member list: {}", failure_line(&done.stdout, &done.stderr, done.exit));
    if done.stderr.contains(LEARNER_REFUSAL) || done.stdout.contains(LEARNER_REFUSAL) {
        let evidence = format!("etcd on {node}: {LEARNER_REFUSAL}");
        observation.fact(node, Field::EtcdLearner, Seen::Yes, evidence.clone());
        observation.fact(node, Field::EtcdVoter, Seen::No, evidence.clone());
        observation.fact(node, Field::EtcdStarted, Seen::Yes, evidence);
    }
    observation.etcd_refused.push((node.to_string(), why.clone()));
    why
}

/// `list` and `status` on each of `others` at once, after the master first asked did not list:
/// the first (in their order) that lists, its place, label and members. Those that do not are
/// recorded as refusing where their host answered (not as unreachable: the first ask's failure
/// is that), and, where no list came, what their member says of itself is read
/// ([`status_facts`]).
///
/// # Errors
/// [`ExecError::NotLoopback`] when the transport refused the command.
fn list_elsewhere(
    t: &Topology,
    transport: &mut dyn Transport,
    others: &[HostTarget],
    (list, status): (&str, &str),
    observation: &mut Observation,
) -> Result<Option<(Place, String, Vec<EtcdMember>)>, ExecError> {
    let runs: Vec<(Place, Request<'_>)> =
        others.iter().flat_map(|host| [(Place::Host(host.clone()), request(list)), (Place::Host(host.clone()), request(status))]).collect();
    let ReadAndRun { ran, .. } = transport.read_and_run(&[], &runs);
    let mut ran = ran.into_iter();
    let mut found = None;
    let mut statuses = Vec::new();
    for host in others {
        let (listed, said) = (ran.next().expect("the list was asked"), ran.next().expect("the status was asked"));
        let label = format!("etcd via {}", host.name);
        match listed {
            Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
            Ok(done) if found.is_none() && done.success() => {
                if let Some(members) = etcd_members(t, (&host.name, &label), Ok(done), observation)? {
                    found = Some((Place::Host(host.clone()), label, members));
                }
            }
            Ok(done) if !done.success() => {
                refused(&host.name, &done, observation);
                match said {
                    Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                    Err(_) => {}
                    Ok(said) => statuses.push((&host.name, said)),
                }
            }
            _ => {}
        }
    }
    // A list that came says it all; without one, each member's own word.
    if found.is_none() {
        for (node, said) in statuses {
            status_facts(node, &said, observation);
        }
    }
    Ok(found)
}

/// What a member whose list was refused says of itself (`endpoint status`, served without
/// quorum): a learner; or a member that is no learner and applied the log, so a voter holding
/// the data (a learner that never synced applied nothing, and may not know it is one). Nothing
/// for any other answer.
fn status_facts(node: &str, said: &Completed, observation: &mut Observation) {
    let known = observation.facts.iter().any(|f| f.node == node && f.field == Field::EtcdLearner);
    let Some(status) = said.success().then(|| etcd::parse_endpoint_status(&said.stdout).ok()).flatten() else { return };
    if known {
        return;
    }
    let evidence = format!("etcd on {node}: endpoint status: learner {}, applied index {}", status.is_learner, status.applied);
    let voter = match (status.is_learner, status.applied) {
        (true, _) => false,
        (false, applied) if applied > 0 => true,
        _ => return,
    };
    observation.fact(node, Field::EtcdVoter, seen(voter), evidence.clone());
    observation.fact(node, Field::EtcdLearner, seen(!voter), evidence.clone());
    observation.fact(node, Field::EtcdStarted, Seen::Yes, evidence);
}

/// `etcdctl endpoint health` over `client_urls`, or why it cannot be asked: its command, each URL
/// checked by the guard.
///
/// # Errors
/// [`ExecError::NotLoopback`] when the guard refuses a client URL (`endpoint health` dials each of
/// them), before it runs.
fn health_command(probe: &EtcdProbe, guard: Guard, label: &str, client_urls: &[String]) -> Result<Result<String, String>, ExecError> {
    for url in client_urls {
        guard.check_url(&format!("etcd member client URL (from {label})"), url)?;
    }
    if client_urls.is_empty() {
        return Ok(Err("no client URL".to_string()));
    }
    Ok(probe.endpoint_health_command(client_urls).map_err(|e| e.to_string()))
}

/// `etcdctl endpoint health` over every member's client URL, on the master that listed them, in
/// a round of its own; nothing when it cannot be asked (recorded).
///
/// # Errors
/// [`ExecError::NotLoopback`] as [`health_command`].
fn ask_health(
    transport: &mut dyn Transport,
    probes: &Probes,
    place: &Place,
    label: &str,
    client_urls: &[String],
    observation: &mut Observation,
) -> Result<Option<Result<Completed, ExecError>>, ExecError> {
    if client_urls.is_empty() {
        return Ok(Some(Ok(Completed { exit: Some(0), stdout: "[]".to_string(), stderr: String::new(), duration: Duration::ZERO })));
    }
    let probe = probes.etcd.as_ref().expect("an etcd ask has its probe");
    match health_command(probe, probes.guard, label, client_urls)? {
        Ok(command) => Ok(Some(transport.run(place, &request(&command)))),
        Err(reason) => {
            observation.unreachable.push((label.to_string(), reason));
            Ok(None)
        }
    }
}

/// What `endpoint health` answered: each voter healthy or not.
///
/// # Errors
/// [`ExecError::NotLoopback`] when the transport refused the command.
fn health_facts(
    t: &Topology,
    label: &str,
    members: &[EtcdMember],
    answered: Result<Completed, ExecError>,
    observation: &mut Observation,
) -> Result<(), ExecError> {
    // `endpoint health` prints its JSON also when an endpoint is unhealthy (and exits 1).
    let membership = etcd::EtcdMembership::of(t, members);
    match answered {
        Ok(done) => match etcd::parse_endpoint_health(&done.stdout) {
            Ok(health) => {
                let healthy = etcd::healthy_nodes(t, members, &health);
                for ix in membership.voters.iter() {
                    let answer = members
                        .iter()
                        .find(|m| etcd::member_node(t, m) == Some(ix))
                        .and_then(|m| health.iter().find(|h| m.client_urls.contains(&h.endpoint)))
                        .map_or("no client URL answered".to_string(), |h| match &h.error {
                            Some(error) => format!("{}: {}", h.endpoint, crate::redact::redact(error)),
                            None => format!("{}: health {}", h.endpoint, h.health),
                        });
                    observation.fact(t.name(ix), Field::EtcdHealthy, seen(healthy.contains(ix)), answer);
                }
            }
            Err(e) => {
                observation.unreachable.push((label.to_string(), format!("{e}: {}", failure_line(&done.stdout, &done.stderr, done.exit))))
            }
        },
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => observation.unreachable.push((label.to_string(), e.to_string())),
    }
    Ok(())
}

/// What the load balancer's observer asks: its config file and, with a stats socket, `show
/// stat`. The VIP on the masters has no load balancer machine to read: nothing then.
struct LbAsk {
    host: HostTarget,
    config: String,
    stat: Option<String>,
}

impl LbAsk {
    fn of(t: &Topology, probe: &LbProbe) -> Option<LbAsk> {
        let host = Hosts::new(t).load_balancer()?;
        Some(LbAsk { host, config: probe.config.clone(), stat: probe.show_stat_command() })
    }
}

/// The LB's config file (frontend at the VIP, its backend's servers) and `show stat` (servers
/// loaded, health); `show stat` counts only where the config file was read.
fn lb_facts(
    t: &Topology,
    lb: &LbAsk,
    config: Result<FileRead, ExecError>,
    stat: Option<Result<Completed, ExecError>>,
    observation: &mut Observation,
) -> Result<(), ExecError> {
    let host = &lb.host;
    let config_path = &lb.config;
    let config = match config {
        Ok(FileRead::Present(text)) => haproxy::parse_config(&text, t),
        Ok(FileRead::Missing) => haproxy::DeclaredPool::default(),
        Ok(FileRead::Unobserved) => return Ok(()),
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => {
            observation.unreachable.push((host.name.clone(), e.to_string()));
            return Ok(());
        }
    };
    let frontend_evidence = match &config.frontend {
        Some(name) => format!("{config_path}: frontend {name} -> backend {}", config.backend.as_deref().unwrap_or("(none)")),
        None => format!("{config_path}: no frontend binds {}", t.scenario.control_plane_endpoint.vip),
    };
    observation.fact(&host.name, Field::LbFrontend, seen(config.frontend.is_some()), frontend_evidence);
    let mut in_config = NodeSet::EMPTY;
    for server in &config.servers {
        match haproxy::server_node(t, &server.name, Some(&server.host)) {
            Some(ix) => in_config.set(ix, true),
            None => observation.fact(
                &server.name,
                Field::LbServerInConfig,
                Seen::Yes,
                format!("server {} {}: no inventory node", server.name, server.host),
            ),
        }
    }
    for (i, node) in t.nodes.iter().enumerate() {
        let evidence = format!("{config_path} backend {}", config.backend.as_deref().unwrap_or("(none)"));
        observation.fact(&node.name, Field::LbServerInConfig, seen(in_config.contains(NodeIx(i as u8))), evidence);
    }
    let Some(stat) = stat else { return Ok(()) };
    let label = format!("{} stats socket", host.name);
    let csv = match stat {
        Ok(done) if done.success() => done.stdout,
        Ok(done) => {
            observation.unreachable.push((label, format!("show stat: {}", failure_line(&done.stdout, &done.stderr, done.exit))));
            return Ok(());
        }
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => {
            observation.unreachable.push((label, e.to_string()));
            return Ok(());
        }
    };
    let loaded = haproxy::parse_show_stat(&csv);
    if let Some(frontend) = &config.frontend {
        if !loaded.open_frontends.contains(frontend) {
            observation.fact(
                &host.name,
                Field::LbFrontend,
                Seen::No,
                format!("show stat: frontend {frontend} not open (config not loaded)"),
            );
        }
    }
    let Some(backend) = &config.backend else { return Ok(()) };
    let mut loaded_nodes = NodeSet::EMPTY;
    for server in loaded.servers.iter().filter(|s| s.proxy == *backend) {
        let address = server.address.as_deref().map(haproxy::address_host);
        let evidence = format!("show stat {backend}/{}: {}", server.name, server.status);
        match haproxy::server_node(t, &server.name, address) {
            Some(ix) => {
                loaded_nodes.set(ix, true);
                observation.fact(t.name(ix), Field::LbServerUp, seen(server.is_up()), evidence);
            }
            None => observation.fact(&server.name, Field::LbServerLoaded, Seen::Yes, format!("{evidence}: no inventory node")),
        }
    }
    for (i, node) in t.nodes.iter().enumerate() {
        observation.fact(&node.name, Field::LbServerLoaded, seen(loaded_nodes.contains(NodeIx(i as u8))), format!("show stat {backend}"));
    }
    Ok(())
}
