//! The fidelity rows read from the lab after the run, each beside the twin's value.

use super::kubelet::KubeletStandIn;
use super::{yes_no, APISERVER_MANIFEST};
use crate::apiserver::VerifyingClient;
use crate::error::LabError;
use crate::executor_lab::{self, LabPaths};
use crate::fidelity::{Cell, Evidence, FidelityRow, Observed, StepStatus};
use crate::host::FixtureHosts;
use plan_exec::observe::{cert_has_vip, kubelet_on_vip, Seen};
use plan_exec::runner::Outcome;
use plan_model::cluster::Cluster;
use plan_model::observe::{self as derive, ClientNeeds, Endpoint};
use plan_model::plan::Plan;
use plan_model::topology::{NodeIx, NodeSet, Topology};
use std::net::SocketAddr;
use std::path::Path;

/// What the lab saw in a file, as a value: a missing file is not a "no", it answers nothing.
fn seen(seen: Seen) -> Observed {
    match seen {
        Seen::Yes => Observed::Yes(true),
        Seen::No => Observed::Yes(false),
        Seen::Missing => Observed::Unanswered(seen.to_string()),
    }
}

pub(super) fn step_rows(t: &Topology, plan: &Plan, twin_halt: Option<&(usize, String)>, outcome: &Outcome) -> Vec<FidelityRow> {
    let halted = match outcome {
        Outcome::Halted(halt) => Some((halt.step.clone(), halt.reason.clone())),
        _ => None,
    };
    let predicted = halted_on_the_twins_word(outcome);
    let halted_at = halted.as_ref().and_then(|(id, _)| plan.steps.iter().position(|s| &s.id == id));
    // They agree when both run, halt at or skip the same step; the reasons are shown.
    let status = |i: usize, halt: Option<(usize, &String)>| match halt {
        Some((at, reason)) if at == i => StepStatus::Halted(reason.clone()),
        Some((at, _)) if at < i => StepStatus::NotRun,
        _ => StepStatus::Done,
    };
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let twin = status(i, twin_halt.map(|(at, reason)| (*at, reason)));
            let lab = status(i, halted_at.zip(halted.as_ref().map(|(_, reason)| reason)));
            let observation = "the executor runs the step, its files as the twin says";
            // A halt before the step on the twin's own refusal repeats the model: nothing ran.
            let evidence = if halted_at == Some(i) && predicted { Evidence::StandIn } else { Evidence::Real };
            FidelityRow::new(t, step.id.clone(), observation, Observed::Step(twin), Observed::Step(lab), evidence)
        })
        .collect()
}

/// The run ended halted before a step on the twin's own refusal ([`plan_exec::runner::Halt::predicted`]):
/// where it stopped repeats the model, it was not observed.
pub(super) fn halted_on_the_twins_word(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Halted(halt) if halt.predicted)
}

/// The real files after the run, read from the hosts' directories, against the twin's last state.
pub(super) fn file_rows(
    t: &Topology,
    hosts: &FixtureHosts,
    joined: &[NodeIx],
    masters: &[NodeIx],
    twin: &Cluster,
    root: &Path,
) -> Result<Vec<FidelityRow>, LabError> {
    let mut rows = Vec::new();
    for &node in joined {
        let name = t.name(node);
        let path = hosts.etc_kubernetes(name).join("kubelet.conf");
        let lab = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (found, evidence) = kubelet_on_vip(&text, t);
                seen(found).with(evidence.trim_start_matches("server: "))
            }
            // A join that did not happen leaves no kubelet.conf.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observed::Yes(false).with("no kubelet.conf"),
            Err(e) => return Err(LabError::io(format!("read {}", path.display()), e)),
        };
        let twin_says = Observed::Yes(twin.kubelet_vip.contains(node));
        rows.push(row(t, format!("kubelet.conf server is the VIP on {name}"), twin_says, lab));
    }
    for &node in masters {
        let name = t.name(node);
        let crt = hosts.etc_kubernetes(name).join("pki/apiserver.crt");
        let pem = std::fs::read_to_string(&crt).unwrap_or_default();
        let (found, _) = cert_has_vip(&plan_exec::observe::subject_alt_names(&pem).unwrap_or_default(), t);
        let observation = format!("apiserver cert on disk has the VIP SAN on {name}");
        rows.push(row(t, observation, Observed::Yes(twin.cert_vip.contains(node)), seen(found)));
    }
    let config = std::fs::read_to_string(root.join("kubeadm-config.yaml")).unwrap_or_default();
    let endpoint = &t.scenario.control_plane_endpoint;
    let on_vip = config.lines().any(|l| l.trim() == format!("controlPlaneEndpoint: {}:{}", endpoint.vip, endpoint.port));
    // The ConfigMap is a lab file the kubeadm shim writes: no API server holds it.
    let observation = "kubeadm-config controlPlaneEndpoint is the VIP";
    rows.push(FidelityRow::new(t, "end", observation, Observed::Yes(twin.kubeadm_endpoint), Observed::Yes(on_vip), Evidence::StandIn));
    let kube_proxy =
        std::fs::read_to_string(root.join(executor_lab::CLUSTER_DIR).join(executor_lab::KUBE_PROXY_CONFIGMAP)).unwrap_or_default();
    let on_vip = executor_lab::server_in(&kube_proxy).is_some_and(|s| s == format!("https://{}:{}", endpoint.vip, endpoint.port));
    // The ConfigMap is a lab file the kubectl shim reads and writes.
    let observation = "kube-proxy's kubeconfig names the VIP";
    rows.push(FidelityRow::new(t, "end", observation, Observed::Yes(twin.kube_proxy_vip), Observed::Yes(on_vip), Evidence::StandIn));
    rows.extend(consumer_rows(t, twin, &LabPaths::under(root).infra_repo));
    Ok(rows)
}

/// Each kubeconfig consumer's server in the infra repo as the plan's edits and commit left it, and
/// whether that commit reached the remote, against the twin's consumers.
pub(super) fn consumer_rows(t: &Topology, twin: &Cluster, repo: &Path) -> Vec<FidelityRow> {
    let endpoint = &t.scenario.control_plane_endpoint;
    let vip = format!("https://{}:{}", endpoint.vip, endpoint.port);
    let mut rows = Vec::new();
    for (i, consumer) in t.scenario.consumers.iter().enumerate() {
        let text = std::fs::read_to_string(repo.join(&consumer.path)).unwrap_or_default();
        // The consumer's block: its name line, then its server line.
        let server = text
            .lines()
            .skip_while(|l| *l != format!("# {}", consumer.name))
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap_or("no server line")
            .to_string();
        let on_vip = Observed::Yes(server == vip).with(server);
        rows.push(row(t, format!("consumer {} points at the VIP", consumer.name), Observed::Yes(twin.consumer_on_vip(i)), on_vip));
    }
    rows
}

/// TLS for the VIP's name straight at each master's stand-in: what a client through the VIP would
/// verify once HAProxy sends it there.
pub(super) fn served_rows(
    t: &Topology,
    kubelet: &KubeletStandIn,
    client: &VerifyingClient,
    masters: &[NodeIx],
    twin: &Cluster,
) -> Result<Vec<FidelityRow>, LabError> {
    let vip = t.scenario.control_plane_endpoint.vip;
    let mut rows = Vec::new();
    for &node in masters {
        let Some((standin, _)) = kubelet.apiservers.get(&node) else { continue };
        let answer = client.readyz(standin.address, vip)?;
        let lab = if answer.tls_verified() { Observed::Yes(true).with("rustls") } else { Observed::Yes(false).with(answer.to_string()) };
        let observation = format!("served cert verifies for the VIP on {}", t.name(node));
        rows.push(row(t, observation, Observed::Yes(twin.served_vip.contains(node)), lab));
    }
    Ok(rows)
}

/// A real observation at the end of the run.
pub(super) fn row(t: &Topology, observation: String, twin: impl Into<Cell>, lab: impl Into<Cell>) -> FidelityRow {
    FidelityRow::new(t, "end", observation, twin, lab, Evidence::Real)
}

/// The cluster as clients see it after the run: each node's Ready state (its kubelet through its
/// kubelet.conf's server), the VIP's rows ([`vip_rows`], read beside the others), the config
/// stack's flags in each master's manifest.
pub(super) fn cluster_rows(
    t: &Topology,
    kubelet: &KubeletStandIn,
    hosts: &FixtureHosts,
    joined: &[NodeIx],
    twin: &Cluster,
    vip: Vec<FidelityRow>,
) -> Vec<FidelityRow> {
    // Each node's grace at once: a kubelet whose apiserver is down fails every try, and one at a
    // time the nodes of a cluster without its first master took the grace each (20 s).
    let ready = crate::at_once(joined.iter().copied(), |node| kubelet.node_ready_within_grace(hosts, node));
    let mut rows = Vec::new();
    for (&node, ready) in joined.iter().zip(ready) {
        let twin_ready = derive::node_ready(twin, t, node);
        let twin_cell = if twin_ready.is_ok() { Observed::Yes(true).into() } else { Observed::Yes(false).with(twin_ready.to_string()) };
        let lab_cell = match ready {
            Some(ready) => Observed::Yes(ready).into(),
            None => Observed::Yes(false).with("no kubelet.conf"),
        };
        rows.push(row(t, format!("node {} Ready (its kubelet reaches an apiserver)", t.name(node)), twin_cell, lab_cell));
    }
    rows.extend(vip);
    let flags = executor_lab::flag_lines(t);
    for &node in joined.iter().filter(|&&n| twin.control_plane.contains(n)) {
        let manifest = std::fs::read_to_string(executor_lab::manifest(hosts, t, node)).unwrap_or_default();
        let has = flags.iter().all(|f| manifest.contains(f.as_str()));
        let observation = format!("config stack's apiserver flags in {}'s manifest", t.name(node));
        rows.push(row(t, observation, Observed::Yes(twin.apiserver_flags.contains(node)), Observed::Yes(has)));
    }
    rows
}

/// How long the backends HAProxy reports UP are read again, at most, for them to hold still.
const BACKENDS_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long they must not change to be taken as settled: HAProxy's checks run every 100 ms and
/// take a server out after two failures, each up to 500 ms (the lab's `inter 100ms fall 2`,
/// `timeout check 500ms`).
const BACKENDS_STABLE: std::time::Duration = std::time::Duration::from_millis(700);

/// The VIP as clients see it at `step`, against the twin's state `twin`: the backends HAProxy
/// reports UP (its stats socket, read again until they hold still for [`BACKENDS_STABLE`], for
/// up to [`BACKENDS_SETTLE`]) and `/readyz` through the VIP with TLS verified for it; `when` follows each
/// observation's name (` at the halt`; nothing at the end).
pub(super) fn vip_rows(
    t: &Topology,
    hosts: &FixtureHosts,
    client: &VerifyingClient,
    twin: &Cluster,
    step: &str,
    when: &str,
) -> Result<Vec<FidelityRow>, LabError> {
    let twin_healthy = derive::healthy_backends(twin, t);
    // The backends UP, and every server with its status and last check (`cp-1 UP L4OK`).
    let read_up = || -> (Observed, String) {
        match executor_lab::lb_backends(t, hosts) {
            Some(Ok(backends)) => {
                let all: Vec<String> =
                    backends.iter().map(|b| format!("{} {} {}", b.name, b.status, b.check).trim_end().to_string()).collect();
                (Observed::named_nodes(t, backends.iter().filter(|b| b.is_up()).map(|b| b.name.as_str())), all.join(", "))
            }
            Some(Err(e)) => (Observed::Unanswered(format!("no answer: {e}")), String::new()),
            // No HAProxy on the load balancer: nothing is UP.
            None => (Observed::nodes(NodeSet::EMPTY), "no HAProxy".to_string()),
        }
    };
    let twin_up = Observed::nodes(twin_healthy);
    // HAProxy's view once it holds still (the same servers UP for BACKENDS_STABLE), whatever the
    // twin says: its checks take a server out or in over a few hundred ms.
    let since = std::time::Instant::now();
    let (mut lab_up, mut servers) = read_up();
    let mut unchanged_since = std::time::Instant::now();
    while since.elapsed() < BACKENDS_SETTLE && unchanged_since.elapsed() < BACKENDS_STABLE {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (now_up, now_servers) = read_up();
        if now_up != lab_up {
            unchanged_since = std::time::Instant::now();
        }
        (lab_up, servers) = (now_up, now_servers);
    }
    let lab_up = lab_up.with(format!("HAProxy: {servers}"));
    let endpoint = &t.scenario.control_plane_endpoint;
    let twin_vip = derive::reach(twin, t, Endpoint::Vip, ClientNeeds { oidc: false });
    let lab_vip = client.readyz(SocketAddr::from((endpoint.vip, endpoint.port)), endpoint.vip)?;
    let twin_cell = if twin_vip.is_ok() { Observed::Yes(true).into() } else { Observed::Yes(false).with(twin_vip.to_string()) };
    let lab_cell = if lab_vip.is_ready() { Observed::Yes(true).into() } else { Observed::Yes(false).with(lab_vip.to_string()) };
    Ok(vec![
        FidelityRow::new(t, step, format!("backends UP behind the VIP (HAProxy show stat){when}"), twin_up, lab_up, Evidence::Real),
        FidelityRow::new(t, step, format!("/readyz through the VIP, TLS verified for the VIP{when}"), twin_cell, lab_cell, Evidence::Real),
    ])
}

/// The source plan's acceptance criteria (its close-out check) the lab can check for real: the
/// etcd backup job lands where its stack lets it and saves a valid snapshot; the upgrade chain and
/// the reboot gate are edits of infra-repo scripts the lab does not run.
pub(super) fn acceptance_rows(
    t: &Topology,
    kubelet: &KubeletStandIn,
    hosts: &FixtureHosts,
    paths: &LabPaths,
    masters: &[NodeIx],
    twin: &Cluster,
) -> Result<Vec<FidelityRow>, LabError> {
    let mut rows = Vec::new();
    if let Some(job) = t.scenario.cronjobs.iter().find(|j| j.backup) {
        let stack = std::fs::read_to_string(paths.infra_repo.join(&job.path)).unwrap_or_default();
        let pinned = stack.lines().find_map(|l| l.split("node_name = \"").nth(1)).and_then(|n| n.split('"').next()).map(str::to_string);
        let candidates: Vec<NodeIx> = masters
            .iter()
            .copied()
            .filter(|&n| {
                pinned.as_deref().is_none_or(|p| p == t.name(n)) && hosts.etc_kubernetes(t.name(n)).join(APISERVER_MANIFEST).exists()
            })
            .collect();
        let lands = candidates.into_iter().find(|&n| kubelet.node_ready(hosts, n) == Some(true) && kubelet.apiserver_ready(n));
        let lab: Cell = match lands {
            Some(node) => {
                let url =
                    std::fs::read_to_string(hosts.host_dir(t.name(node)).join(crate::executor_etcd::CLIENT_URL_FILE)).unwrap_or_default();
                let ctl = crate::etcd::Etcdctl::new(vec![url.trim().to_string()]);
                let file = paths.etcd_backup.join(format!("etcd-snapshot-{}.db", t.name(node)));
                let saved = match ctl.snapshot_save(&file)? {
                    Ok(()) => ctl.snapshot_status(&file)?,
                    Err(refused) => Err(refused),
                };
                match saved {
                    Ok(status) => Observed::Yes(true).with(format!("on {}, {} keys", t.name(node), status.total_keys)),
                    Err(refused) => Observed::Yes(false).with(format!("snapshot on {}: {}", t.name(node), refused.0)),
                }
            }
            None => Observed::Yes(false)
                .with(format!("the job may run on {}; none is Ready", pinned.unwrap_or_else(|| "any master".to_string()))),
        };
        let twin_cell = match derive::backup_runs(twin, t) {
            Ok(node) => Observed::Yes(true).with(format!("on {}", t.name(node))),
            Err(why) => Observed::Yes(false).with(why.to_string()),
        };
        rows.push(row(t, format!("acceptance: the etcd backup job ({}) saves a valid snapshot", job.name), twin_cell, lab));
    }
    Ok(rows)
}

/// The acceptance criteria the lab cannot check (edits of files nothing on the lab runs): the
/// twin's word, listed apart so that they are never counted as agreement.
pub(super) fn not_rehearsed(t: &Topology, twin: &Cluster) -> Vec<String> {
    let chain = t
        .scenario
        .upgrade_chain
        .as_ref()
        .map(|c| ("acceptance: the upgrade chain loops over every master", twin.chain_all_masters, &c.path));
    let gate = t.scenario.reboot_gate.as_ref().map(|g| ("acceptance: the reboot gate keeps quorum", twin.gate_quorum, &g.path));
    [chain, gate]
        .into_iter()
        .flatten()
        .map(|(criterion, twin_says, file)| format!("end: {criterion}: twin {}; nothing on the lab runs {file}", yes_no(twin_says)))
        .collect()
}
