//! The fidelity rows read from the lab after the run, each beside the twin's value.

use super::kubelet::KubeletStandIn;
use super::{yes_no, APISERVER_MANIFEST};
use crate::apiserver::VerifyingClient;
use crate::error::LabError;
use crate::executor_lab::{self, LabPaths};
use crate::fidelity::{node_names as names, Evidence, FidelityRow};
use crate::host::FixtureHosts;
use plan_exec::observe::{cert_has_vip, kubelet_on_vip, Seen};
use plan_exec::runner::Outcome;
use plan_model::cluster::Cluster;
use plan_model::observe::{self as derive, ClientNeeds, Endpoint};
use plan_model::plan::Plan;
use plan_model::topology::{NodeIx, Topology};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

pub(super) fn step_rows(plan: &Plan, twin_halt: Option<&(usize, String)>, outcome: &Outcome) -> Vec<FidelityRow> {
    let halted = match outcome {
        Outcome::Halted(halt) => Some((halt.step.clone(), halt.reason.clone())),
        _ => None,
    };
    let halted_at = halted.as_ref().and_then(|(id, _)| plan.steps.iter().position(|s| &s.id == id));
    // They agree when both run, halt at or skip the same step; the reasons are shown.
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let (twin_status, twin) = match twin_halt {
                Some((at, reason)) if *at == i => ("halted", format!("halted: {reason}")),
                Some((at, _)) if *at < i => ("not run", "not run".to_string()),
                _ => ("done", "done".to_string()),
            };
            let (lab_status, lab) = match (halted_at, &halted) {
                (Some(at), Some((_, reason))) if at == i => ("halted", format!("halted: {reason}")),
                (Some(at), _) if at < i => ("not run", "not run".to_string()),
                _ => ("done", "done".to_string()),
            };
            FidelityRow {
                step: step.id.clone(),
                observation: "the executor runs the step, its files as the twin says".to_string(),
                agree: twin_status == lab_status,
                twin,
                lab,
                evidence: Evidence::Real,
            }
        })
        .collect()
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
        let (seen, lab) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (seen, evidence) = kubelet_on_vip(&text, t);
                (seen, format!("{seen} ({})", evidence.trim_start_matches("server: ")))
            }
            // A join that did not happen leaves no kubelet.conf.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Seen::No, "no (no kubelet.conf)".to_string()),
            Err(e) => return Err(LabError::io(format!("read {}", path.display()), e)),
        };
        let twin_says = yes_no(twin.kubelet_vip.contains(node));
        rows.push(FidelityRow {
            step: "end".to_string(),
            observation: format!("kubelet.conf server is the VIP on {name}"),
            agree: seen.to_string() == twin_says,
            twin: twin_says,
            lab,
            evidence: Evidence::Real,
        });
    }
    for &node in masters {
        let name = t.name(node);
        let crt = hosts.etc_kubernetes(name).join("pki/apiserver.crt");
        let output = Command::new("openssl").arg("x509").arg("-in").arg(&crt).args(["-noout", "-ext", "subjectAltName"]).output();
        let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let (seen, _) = cert_has_vip(&text, t);
        let twin_says = yes_no(twin.cert_vip.contains(node));
        rows.push(FidelityRow {
            step: "end".to_string(),
            observation: format!("apiserver cert on disk has the VIP SAN on {name}"),
            agree: seen.to_string() == twin_says,
            twin: twin_says,
            lab: seen.to_string(),
            evidence: Evidence::Real,
        });
    }
    let config = std::fs::read_to_string(root.join("kubeadm-config.yaml")).unwrap_or_default();
    let endpoint = &t.scenario.control_plane_endpoint;
    let on_vip = config.lines().any(|l| l.trim() == format!("controlPlaneEndpoint: {}:{}", endpoint.vip, endpoint.port));
    rows.push(FidelityRow {
        step: "end".to_string(),
        observation: "kubeadm-config controlPlaneEndpoint is the VIP".to_string(),
        agree: on_vip == twin.kubeadm_endpoint,
        twin: yes_no(twin.kubeadm_endpoint),
        lab: yes_no(on_vip),
        // The ConfigMap is a lab file the kubeadm shim writes: no API server holds it.
        evidence: Evidence::StandIn,
    });
    let kube_proxy =
        std::fs::read_to_string(root.join(executor_lab::CLUSTER_DIR).join(executor_lab::KUBE_PROXY_CONFIGMAP)).unwrap_or_default();
    let on_vip = executor_lab::server_in(&kube_proxy).is_some_and(|s| s == format!("https://{}:{}", endpoint.vip, endpoint.port));
    rows.push(FidelityRow {
        step: "end".to_string(),
        observation: "kube-proxy's kubeconfig names the VIP".to_string(),
        agree: on_vip == twin.kube_proxy_vip,
        twin: yes_no(twin.kube_proxy_vip),
        lab: yes_no(on_vip),
        // The ConfigMap is a lab file the kubectl shim reads and writes.
        evidence: Evidence::StandIn,
    });
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
        let twin_says = yes_no(twin.consumer_on_vip(i));
        let on_vip = server == vip;
        rows.push(row(
            format!("consumer {} points at the VIP", consumer.name),
            twin_says.clone(),
            format!("{} ({server})", yes_no(on_vip)),
            twin_says == yes_no(on_vip),
        ));
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
        let verified = answer.tls_verified();
        let twin_says = twin.served_vip.contains(node);
        rows.push(FidelityRow {
            step: "end".to_string(),
            observation: format!("served cert verifies for the VIP on {}", t.name(node)),
            agree: verified == twin_says,
            twin: yes_no(twin_says),
            lab: if verified { "yes (rustls)".to_string() } else { format!("no ({answer})") },
            evidence: Evidence::Real,
        });
    }
    Ok(rows)
}

pub(super) fn row(observation: String, twin: String, lab: String, agree: bool) -> FidelityRow {
    FidelityRow { step: "end".to_string(), observation, twin, lab, evidence: Evidence::Real, agree }
}

/// The cluster as clients see it after the run: each node's Ready state (its kubelet through its
/// kubelet.conf's server), HAProxy's backends from its stats socket, `/readyz` through the VIP,
/// the config stack's flags in each master's manifest.
pub(super) fn cluster_rows(
    t: &Topology,
    kubelet: &KubeletStandIn,
    hosts: &FixtureHosts,
    joined: &[NodeIx],
    twin: &Cluster,
    client: &VerifyingClient,
) -> Result<Vec<FidelityRow>, LabError> {
    let mut rows = Vec::new();
    for &node in joined {
        let twin_ready = derive::node_ready(twin, t, node);
        let lab_ready = kubelet.node_ready(hosts, node);
        rows.push(row(
            format!("node {} Ready (its kubelet reaches an apiserver)", t.name(node)),
            if twin_ready.is_ok() { "yes".to_string() } else { format!("no ({twin_ready})") },
            match lab_ready {
                Some(true) => "yes".to_string(),
                Some(false) => "no".to_string(),
                None => "no (no kubelet.conf)".to_string(),
            },
            twin_ready.is_ok() == (lab_ready == Some(true)),
        ));
    }
    let lb = &t.scenario.load_balancer;
    let socket = hosts.host_dir(&lb.name).join("tmp/haproxy.socket");
    let twin_up = names(t, derive::healthy_backends(twin, t));
    let lab_up = if socket.exists() {
        match crate::haproxy::backends(&socket) {
            Ok(backends) => {
                let up: Vec<String> = backends.iter().filter(|b| b.is_up()).map(|b| b.name.clone()).collect();
                if up.is_empty() {
                    "none".to_string()
                } else {
                    up.join(", ")
                }
            }
            Err(e) => format!("no answer: {e}"),
        }
    } else {
        "none".to_string()
    };
    rows.push(row("backends UP behind the VIP (HAProxy show stat)".to_string(), twin_up.clone(), lab_up.clone(), twin_up == lab_up));
    let endpoint = &t.scenario.control_plane_endpoint;
    let twin_vip = derive::reach(twin, t, Endpoint::Vip, ClientNeeds { oidc: false });
    let lab_vip = client.readyz(SocketAddr::from((endpoint.vip, endpoint.port)), endpoint.vip)?;
    rows.push(row(
        "/readyz through the VIP, TLS verified for the VIP".to_string(),
        if twin_vip.is_ok() { "yes".to_string() } else { format!("no ({twin_vip})") },
        if lab_vip.is_ready() { "yes".to_string() } else { format!("no ({lab_vip})") },
        twin_vip.is_ok() == lab_vip.is_ready(),
    ));
    let flags = executor_lab::flag_lines(t);
    for &node in joined.iter().filter(|&&n| twin.control_plane.contains(n)) {
        let manifest = std::fs::read_to_string(executor_lab::manifest(hosts, t, node)).unwrap_or_default();
        let has = flags.iter().all(|f| manifest.contains(f.as_str()));
        let twin_has = twin.apiserver_flags.contains(node);
        rows.push(row(
            format!("config stack's apiserver flags in {}'s manifest", t.name(node)),
            yes_no(twin_has),
            yes_no(has),
            has == twin_has,
        ));
    }
    Ok(rows)
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
        let lab = match lands {
            Some(node) => {
                let url =
                    std::fs::read_to_string(hosts.host_dir(t.name(node)).join(crate::executor_etcd::CLIENT_URL_FILE)).unwrap_or_default();
                let ctl = crate::etcd::Etcdctl::new(Path::new(crate::etcd::ETCDCTL_BIN), vec![url.trim().to_string()]);
                let file = paths.etcd_backup.join(format!("etcd-snapshot-{}.db", t.name(node)));
                let saved = match ctl.snapshot_save(&file)? {
                    Ok(()) => ctl.snapshot_status(&file)?,
                    Err(refused) => Err(refused),
                };
                match saved {
                    Ok(status) => format!("yes (on {}, {} keys)", t.name(node), status.total_keys),
                    Err(refused) => format!("no (snapshot on {}: {})", t.name(node), refused.0),
                }
            }
            None => format!("no (the job may run on {}; none is Ready)", pinned.unwrap_or_else(|| "any master".to_string())),
        };
        let twin_runs = derive::backup_runs(twin, t);
        let twin_text = match &twin_runs {
            Ok(node) => format!("yes (on {})", t.name(*node)),
            Err(why) => format!("no ({why})"),
        };
        let agree = twin_runs.is_ok() == lab.starts_with("yes");
        rows.push(row(format!("acceptance: the etcd backup job ({}) saves a valid snapshot", job.name), twin_text, lab, agree));
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
