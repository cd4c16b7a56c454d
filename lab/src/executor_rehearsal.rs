//! A rehearsal through the real executor: the plan, or a slice of it, run by `plan execute`'s
//! runner over SSH against fixture hosts on loopback, and its result set beside the twin's.
//!
//! Every machine of the scenario gets a real `sshd` ([`crate::host`]) on its own address, with its
//! own `/etc/kubernetes`, `/tmp`, `/root` and an `/etc/hosts` it resolves names from (nothing asks
//! a DNS server): every node, the load balancer, each hypervisor, and the operator's workstation
//! (where the plan's workstation and infra-repo commands run). Real on the lab:
//!
//! - etcd: one member per master the run starts with; a join adds a learner, starts it, promotes
//!   it ([`crate::executor_etcd`]); a reboot kills the member and starts it again on its data;
//! - HAProxy on the load balancer's host, rendered from the infra repo's bootstrap script by the
//!   deploy the plan runs ([`crate::executor_lab`]), health-checking each apiserver's `/readyz`;
//! - the serving certs (the lab CA, `openssl` in the `kubeadm` shim, SANs from the kubeadm config),
//!   TLS (rustls, curl), kubelet.conf and kubeconfig files, the git repository and its edits.
//!
//! Stand-ins: the apiservers ([`crate::apiserver`]: `/readyz` is the local etcd's health), the
//! kubelets (a thread of the lab: a node is Ready when its kubelet.conf's server answers `/readyz`
//! with verified TLS; a static pod is restarted when its manifest is moved away and back), and
//! `kubectl`, `kubeadm`, `terragrunt`, `php`, `qm` shims on the hosts' PATH. The lab is also the
//! operator: it confirms every phase and carries out the by-hand edits ([`crate::executor_lab::carry_out`]).
//!
//! The twin starts where the whole plan stands before the slice's first step ([`predict_slice`]),
//! and the lab sets that state up. The executor runs with the loopback guard on, and its file,
//! etcd, load balancer and Kubernetes API observers compare the lab with the twin before and after
//! every step. The API observer reads the operator's kubeconfig (the infra repo's, a real
//! kubeconfig on the lab) as it stands at each observation: on the existing master until 4.1 moves
//! it to the VIP.

use crate::address::{guard_loopback, LoopbackMap};
use crate::apiserver::{ApiObjects, ApiserverStandIn, VerifyingClient};
use crate::error::LabError;
use crate::executor_etcd::{join_notes, SliceEtcd, STRIKE_DIR};
use crate::executor_fault::{self, Blow, Strike, StrikeAt};
use crate::executor_lab::{self, ByHand, LabPaths, CLOCK_OFFSET, LB_CONFIG, LB_SOCKET};
use crate::fidelity::{node_names as names, Evidence, FidelityRow};
use crate::host::{self, FixtureHost, FixtureHosts, RootHome, TmpDir};
use crate::pki::{LabCa, ServingCertSans};
use crate::probe::{Probe, ProbeRecord};
use crate::process::Signal;
use crate::scratch::Scratch;
use plan_exec::etcd::EtcdProbe;
use plan_exec::guard::Guard;
use plan_exec::haproxy::LbProbe;
use plan_exec::invocation::{Invocation, Work};
use plan_exec::journal::Journal;
use plan_exec::kubernetes::KubeconfigSource;
use plan_exec::observe::{cert_has_vip, kubelet_on_vip, Probes, Seen};
use plan_exec::predict::Prediction;
use plan_exec::runner::{Operator, Outcome, Recovery, RunOptions, Runner};
use plan_exec::ssh::{OpensshTransport, SshOptions};
use plan_exec::target::{HostTarget, Place};
use plan_exec::transport::{quote, Completed, FileRead, Request, Transport};
use plan_exec::ExecError;
use plan_model::action::Action;
use plan_model::cluster::Cluster;
use plan_model::observe::{self as derive, ClientNeeds, Endpoint};
use plan_model::plan::{Phase, Plan, Step};
use plan_model::topology::{NodeIx, NodeSet, Topology};
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{Engine, Injection, Recording};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What `plan rehearse --via-execute` runs by default: every step of the plan.
pub const SLICE_DEFAULT: [&str; 1] = ["all"];
/// Deadline of each command the executor runs on the lab.
pub const COMMAND_TIMEOUT_S: u64 = 60;
pub use crate::scratch::SCRATCH_DIR;
/// How long the lab waits for a write to commit when it asks whether etcd has quorum.
pub const QUORUM_WRITE_TIMEOUT_MS: u64 = 2000;
/// The longest a host a reboot fault took down stays down when no halt lets the operator clear it.
pub const FAULT_DOWN_MAX_S: u64 = 20;
/// Bound on the wait for a host a reboot fault took down to come back.
pub const BOOT_WAIT_S: u64 = 30;
/// How long a rebooting lab host stays down (the model charges 90 s; the lab's etcd and
/// apiserver come back in about a second once started).
pub const LAB_REBOOT_MS: u64 = 1500;
/// How often the kubelet stand-in looks at the hosts.
pub const KUBELET_TICK_MS: u64 = 100;
/// The file the plan's step 0.2 edits by hand, in the host's `/tmp`.
const KUBEADM_NEW: &str = "kubeadm-new.yaml";
/// The pid file of the member a join started, in the host's directory, and the command (run in
/// the host) that starts it again on its data after a boot.
const JOINED_MEMBER_PID: &str = "etcd-member/pid";
const JOINED_MEMBER_START: &str =
    "m=$PLAN_FIXTURE_HOST_DIR/etcd-member; setsid /usr/bin/etcd $(cat $m/args) >> $m/etcd.log 2>&1 < /dev/null & echo $! > $m/pid";
fn clock_offset_s(root: &Path) -> u64 {
    std::fs::read_to_string(root.join(CLOCK_OFFSET)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// The steps of `plan` before step `halted` that last uploaded the control-plane certs and last
/// made a join token: what renews the credentials the halted step needs, in the plan's order.
fn renew_steps(plan: &Plan, halted: usize) -> Plan {
    let last = |wanted: Action| plan.steps[..halted].iter().rposition(|s| s.actions.contains(&wanted));
    let keep: Vec<usize> = [last(Action::UploadCerts), last(Action::CreateToken)].into_iter().flatten().collect();
    let mut renew = plan.clone();
    renew.steps = plan.steps.iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, s)| s.clone()).collect();
    renew.phases.retain(|p| renew.steps.iter().any(|s| s.phase == p.id));
    renew
}

/// kube-public/cluster-info's kubeconfig, under the lab's root (kubeadm wrote it at `init`).
const CLUSTER_INFO: &str = "cluster-info.yaml";
/// The apiserver's static pod manifest, under `/etc/kubernetes`.
const APISERVER_MANIFEST: &str = "manifests/kube-apiserver.yaml";
const ETCD_MANIFEST: &str = "manifests/etcd.yaml";
/// The name the workstation's fixture host goes by.
const WORKSTATION: &str = "workstation";

/// What a rehearsal through the executor found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExecutorRehearsal {
    pub scenario: String,
    /// The scenario's addresses as the lab moved them onto loopback (`10.0.20.100 -> 127.0.20.100`);
    /// empty for a scenario on loopback already.
    pub moved_to_loopback: Vec<String>,
    pub steps: Vec<String>,
    pub rows: Vec<FidelityRow>,
    pub twin_outcome: String,
    pub executor_outcome: String,
    /// What the lab did as operator and kubelet, in order.
    pub lab_actions: Vec<String>,
    /// By-hand instructions nothing on the lab stands for (acknowledged, not carried out).
    pub no_counterpart: Vec<String>,
    /// What the twin says that the lab cannot check: never a row, never counted as agreement.
    pub not_rehearsed: Vec<String>,
    /// What the client through the VIP saw during the run.
    pub probe: ProbeRecord,
    /// Start of the executor's run to its end.
    pub run_ms: u64,
    /// Kubernetes API object requests (nodes, kubeadm-config, cluster-info) the stand-ins answered:
    /// the executor's Kubernetes API observer at work.
    pub api_requests: u64,
}

impl ExecutorRehearsal {
    pub fn agrees(&self) -> bool {
        self.rows.iter().all(|r| r.agree)
    }

    /// The fidelity table for a person.
    pub fn render(&self) -> String {
        let mut out = format!(
            "plan rehearse --via-execute: scenario {}, {} step(s) run by the executor over SSH on fixture hosts\n",
            self.scenario,
            self.steps.len()
        );
        if !self.moved_to_loopback.is_empty() {
            out.push_str(&format!("addresses moved onto loopback: {}\n", self.moved_to_loopback.join(", ")));
        }
        out.push_str(&format!("{:<6} {:<60} {:<28} {:<28} {}\n", "step", "observation", "twin", "executor on the lab", ""));
        for row in &self.rows {
            let mark = match (row.agree, row.evidence) {
                (false, _) => "DISAGREE",
                (true, Evidence::StandIn) => "= ~",
                (true, Evidence::NotRehearsed) => "(not on the lab)",
                (true, _) => "=",
            };
            out.push_str(&format!("{:<6} {:<60} {:<28} {:<28} {mark}\n", row.step, row.observation, row.twin, row.lab));
        }
        for action in &self.lab_actions {
            out.push_str(&format!("  lab: {action}\n"));
        }
        for instruction in &self.no_counterpart {
            out.push_str(&format!("  by hand, nothing on the lab stands for it: {instruction}\n"));
        }
        for unchecked in &self.not_rehearsed {
            out.push_str(&format!("  not rehearsed (the twin's word only): {unchecked}\n"));
        }
        let p = &self.probe;
        out.push_str(&format!(
            "client through the VIP: {} requests, {} ready, {} TLS rejected; downtime after it first served: {} ms in {} outage(s){}\n",
            p.requests,
            p.ready,
            p.tls_rejected,
            p.downtime_ms,
            p.outages.len(),
            p.outages.iter().map(|o| format!(" [{} ms in {}]", o.lasted_ms, o.steps.join(","))).collect::<String>()
        ));
        let disagreements = self.rows.iter().filter(|r| !r.agree).count();
        out.push_str(&format!(
            "outcome: twin {}, executor {}; {} rows, {} disagree; executor run {} ms; {} Kubernetes API reads answered by the stand-ins\n",
            self.twin_outcome,
            self.executor_outcome,
            self.rows.len(),
            disagreements,
            self.run_ms,
            self.api_requests
        ));
        out
    }
}

fn not_rehearsable(what: impl Into<String>, why: impl Into<String>) -> LabError {
    LabError::NotRehearsable { what: what.into(), why: why.into() }
}

/// The plan with only `steps` (in the plan's order) and their phases; `all` is every step.
///
/// # Errors
/// A step id the plan does not have.
/// The IaC command the lab's `scripts/tg` shim answers.
const LAB_IAC_APPLY: &str = "scripts/tg apply {stack}";

pub fn slice(plan: &Plan, steps: &[String]) -> Result<Plan, LabError> {
    if steps.iter().any(|s| s == "all") {
        return Ok(plan.clone());
    }
    if let Some(missing) = steps.iter().find(|id| !plan.steps.iter().any(|s| &s.id == *id)) {
        return Err(not_rehearsable(format!("step {missing}"), "the plan has no such step"));
    }
    let mut sliced = plan.clone();
    sliced.steps.retain(|s| steps.contains(&s.id));
    sliced.phases.retain(|p| sliced.steps.iter().any(|s| s.phase == p.id));
    Ok(sliced)
}

fn apiserver_manifest(t: &Topology, node: NodeIx, flags: bool) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver-{}\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n",
        t.name(node)
    );
    if flags {
        for line in executor_lab::flag_lines(t) {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text
}

/// Runs `steps` of `plan` (`all`: the whole plan) through the executor on a fresh lab of fixture
/// hosts and compares the result with the twin.
///
/// # Caveats
/// The executor connects to the inventory's addresses, so a scenario off loopback is moved onto
/// it first ([`LoopbackMap`]: `10.0.20.100` -> `127.0.20.100`), the plan's text with it; an address
/// a command names that is no address of the scenario stays, and the loopback guard refuses it.
/// The apiserver stand-ins and HAProxy bind the
/// scenario's port (6443) on those addresses, so one rehearsal runs at a time. Needs root, sshd,
/// unshare ([`host::usable`]), openssl, curl, python3, etcd and haproxy.
///
/// # Errors
/// The lab cannot start (no sshd, a port taken), an address off loopback, a step the plan lacks,
/// or the executor could not run at all (its journal). A halt is an outcome, not an error.
pub fn rehearse_through_executor(
    scenario_t: &Topology,
    scenario_plan: &Plan,
    steps: &[String],
    injection: Option<Injection>,
) -> Result<ExecutorRehearsal, LabError> {
    rehearse_through_executor_checked(scenario_t, scenario_plan, steps, injection, &mut |_, _| Ok(()))
}

/// Where a rehearsal through the executor stands: what [`rehearse_through_executor_checked`] tells
/// its checkpoint, with the lab's root directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// Everything of the lab runs (hosts, etcd, HAProxy, stand-ins, the kubelet thread, the probe);
    /// the executor has not started.
    LabUp,
    /// The executor's run (and its recovery) is over; the rows are not read yet.
    RunDone,
}

/// [`rehearse_through_executor`], calling `checkpoint` at each [`Checkpoint`]: an error it returns
/// ends the rehearsal there with that error, and everything the lab started stops as on any
/// other error (a test makes a rehearsal fail midway with it).
///
/// # Errors
/// As [`rehearse_through_executor`], and the checkpoint's.
pub fn rehearse_through_executor_checked(
    scenario_t: &Topology,
    scenario_plan: &Plan,
    steps: &[String],
    injection: Option<Injection>,
    checkpoint: &mut dyn FnMut(Checkpoint, &Path) -> Result<(), LabError>,
) -> Result<ExecutorRehearsal, LabError> {
    // A fault the executor's lab cannot strike is refused before anything is looked for or started.
    // (Moving the scenario onto loopback keeps its steps and nodes: the strike holds for the move.)
    let strike = match injection {
        Some(injection) => {
            if slice(scenario_plan, steps)?.steps.len() != scenario_plan.steps.len() {
                return Err(not_rehearsable("a fault in a slice", "the executor's rehearsal strikes a fault during the whole plan"));
            }
            Some((injection, executor_fault::strike_point(scenario_t, scenario_plan, injection)?))
        }
        None => None,
    };
    host::usable()?;
    // The executor dials the inventory's addresses: a scenario off loopback is moved onto it
    // first (10.0.20.100 -> 127.0.20.100), its plan's text with it.
    let map = LoopbackMap::of(&scenario_t.scenario)?;
    let moved_t = Topology::new(&map.scenario(&scenario_t.scenario)?);
    let moved_plan = map.plan(scenario_plan, &moved_t)?;
    let (scenario_t, scenario_plan) = (&moved_t, &moved_plan);
    let endpoint = &scenario_t.scenario.control_plane_endpoint;
    let needs_loopback = |name: &str, address: Ipv4Addr| {
        guard_loopback(address).map(|_| ()).map_err(|_| not_rehearsable(format!("{name} ({address})"), "not on loopback once moved"))
    };
    for node in &scenario_t.nodes {
        needs_loopback(&node.name, node.address)?;
    }
    // The executor's lab replicates the pfSense bootstrap profile only (docs/lab.md).
    let lb = &scenario_t.scenario.load_balancer;
    let Some(lb_address) = lb.machine_address().filter(|_| lb.kind == plan_model::scenario::LbKind::PfsenseBootstrap) else {
        return Err(not_rehearsable(
            format!("load balancer kind {}", lb.kind.as_str()),
            "the executor's lab replicates pfsense-bootstrap only",
        ));
    };
    needs_loopback(&lb.name, lb_address)?;
    // Its shims: `qm` on the hypervisors and the repo's `scripts/tg` wrapper.
    let s = &scenario_t.scenario;
    if let Some(h) = s.hypervisors.iter().find(|h| h.kind != plan_model::scenario::HypervisorKind::Proxmox) {
        return Err(not_rehearsable(format!("hypervisor {} ({})", h.name, h.kind.as_str()), "the executor's lab shims Proxmox's qm only"));
    }
    if s.iac.as_ref().map(|i| i.apply.as_str()) != Some(LAB_IAC_APPLY) {
        return Err(not_rehearsable("the scenario's IaC command".to_string(), "the executor's lab shims `scripts/tg apply {stack}` only"));
    }
    for h in &scenario_t.scenario.hypervisors {
        needs_loopback(&h.name, h.address.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
    }
    needs_loopback("the VIP", endpoint.vip)?;
    // Dropped last of all: every process, thread and socket below stops before it goes.
    let scratch = Scratch::new_in(Path::new(SCRATCH_DIR))?;
    let root = scratch.path().to_path_buf();
    let paths = LabPaths::under(&root);
    let t = &paths.topology(scenario_t);
    let plan = paths.plan(scenario_t, scenario_plan)?;
    let sliced = slice(&plan, steps)?;
    // Under a fault: the whole plan, the twin's run of it with the fault (its policy recovers),
    // and where the executor's commands meet the twin's point.
    let fault = strike.map(|(injection, strike)| FaultRun {
        strike,
        twin: Engine::new(t, &plan, Recording::default()).run(&[injection]),
        at_strike: executor_fault::state_at_strike(t, &plan, injection),
    });
    let prediction = predict_slice(t, &plan, &sliced);
    let initial = *prediction.before(0);
    let workstation = executor_lab::workstation_address(t)?;
    // A host per machine: every node (a new master's VM is a host from the start; the twin has
    // it once Terraform made it), the load balancer, the hypervisors, the workstation.
    let mut fixture: Vec<FixtureHost> = t.nodes.iter().map(|n| FixtureHost { name: n.name.clone(), address: n.address }).collect();
    let lb = &t.scenario.load_balancer;
    fixture.extend(lb.machine_address().map(|address| FixtureHost { name: lb.name.clone(), address }));
    fixture.extend(t.scenario.hypervisors.iter().filter_map(|h| Some(FixtureHost { name: h.name.clone(), address: h.address? })));
    fixture.push(FixtureHost { name: WORKSTATION.to_string(), address: workstation });
    let mut hosts = FixtureHosts::prepare(&root, fixture, TmpDir::PerHost)?
        .with_root_home(RootHome::PerHost)
        .with_resolver(executor_lab::hosts_file(t, workstation));
    let ca = LabCa::new(&root)?;
    ca.write_key(&root.join("ca.key"))?;
    host::write_file(&root.join("kubeadm-config.yaml"), &cluster_configuration(t, initial.kubeadm_endpoint))?;
    let existing_api = format!("https://{}:{}", t.node(t.existing_master()).address, endpoint.port);
    host::write_file(
        &root.join(CLUSTER_INFO),
        &executor_lab::kubeconfig_file(&existing_api, &std::fs::read(root.join("ca.crt")).unwrap_or_default()),
    )?;
    if initial.kubeadm_endpoint {
        // The twin's kubeadm-config is on the VIP only after 0.2's by-hand edit, which leaves its
        // file on the existing master (0.3 reads it).
        let edited = hosts.host_dir(t.name(t.existing_master())).join("tmp").join(KUBEADM_NEW);
        host::write_file(&edited, &cluster_configuration(t, true))?;
    }
    let ca_pem = std::fs::read_to_string(root.join("ca.crt")).map_err(|e| LabError::io("ca.crt", e))?;
    host::write_file(&hosts.etc_kubernetes(WORKSTATION).join("pki/ca.crt"), &ca_pem)?;
    let existing = t.node(t.existing_master()).address;
    for node in initial.joined.iter() {
        let kube = hosts.etc_kubernetes(t.name(node));
        let server = if initial.kubelet_vip.contains(node) {
            endpoint.vip
        } else if initial.kubelet_local.contains(node) {
            t.node(node).address
        } else {
            existing
        };
        host::write_file(&kube.join("kubelet.conf"), &kubeconfig(server, endpoint.port))?;
        if initial.control_plane.contains(node) {
            let vip = initial.cert_vip.contains(node).then_some((endpoint.vip, endpoint.fqdn.as_str()));
            let sans = ServingCertSans::of(t.name(node), t.node(node).address, vip);
            if initial.cert_present.contains(node) {
                ca.issue(&sans, &kube.join("pki/apiserver.crt"), &kube.join("pki/apiserver.key"))?;
            }
            host::write_file(&kube.join(APISERVER_MANIFEST), &apiserver_manifest(t, node, initial.apiserver_flags.contains(node)))?;
            host::write_file(&kube.join(ETCD_MANIFEST), &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd-{}\n", t.name(node)))?;
            // kubeadm writes admin.conf on the endpoint it had: the first master's own address.
            let admin = if node == t.existing_master() { existing } else { endpoint.vip };
            host::write_file(&kube.join("admin.conf"), &kubeconfig(admin, endpoint.port))?;
        }
    }
    executor_lab::prepare_infra_repo(t, &initial, &paths, &root)?;
    executor_lab::write_host_shims(&hosts.shims(), &root, t)?;
    write_kubeadm_shim(&hosts.shims(), &root)?;
    std::fs::create_dir_all(root.join(executor_lab::CLUSTER_DIR)).map_err(|e| LabError::io("the cluster directory", e))?;
    let kube_proxy_server = if initial.kube_proxy_vip { endpoint.vip } else { existing };
    host::write_file(
        &root.join(executor_lab::CLUSTER_DIR).join(executor_lab::KUBE_PROXY_CONFIGMAP),
        &executor_lab::kube_proxy_configmap(&format!("https://{kube_proxy_server}:{}", endpoint.port)),
    )?;
    hosts.start()?;
    let etcd = SliceEtcd::start(t, &hosts, &initial)?;
    // The twin's starting state has a backup (the pre-flight lists it): a real snapshot.
    let backup = paths.etcd_backup.join("etcd-snapshot-before.db");
    etcd.etcdctl()
        .snapshot_save(&backup)?
        .map_err(|refused| LabError::Command { command: "etcdctl snapshot save".to_string(), message: refused.0 })?;
    if initial.lb_up {
        // The LB runs what was last deployed: the declared state of the twin's start.
        let script = std::fs::read(paths.infra_repo.join(lb.bootstrap_script())).map_err(|e| LabError::io("the bootstrap script", e))?;
        std::fs::write(hosts.host_dir(&lb.name).join("tmp/haproxy-bootstrap.php"), script).map_err(|e| LabError::io("deploy the LB", e))?;
        hosts.run(lb.machine_address().unwrap_or(Ipv4Addr::UNSPECIFIED), "php /tmp/haproxy-bootstrap.php")?;
    }
    let client = VerifyingClient::new(ca.cert_der())?;
    let kubelet = Arc::new(Mutex::new(KubeletStandIn {
        apiservers: BTreeMap::new(),
        etcd,
        rebooting: BTreeMap::new(),
        client: client.clone(),
        port: endpoint.port,
        actions: Vec::new(),
        t: t.clone(),
        root: root.clone(),
        crashed: NodeSet::EMPTY,
        down_until: BTreeMap::new(),
        api_requests: Arc::default(),
        registered: initial.joined.or(initial.stale_nodes),
    }));
    {
        let mut k = lock(&kubelet);
        for node in initial.apiserver_running.and(initial.control_plane).and(initial.up).iter() {
            k.start(&hosts, node)?;
        }
        k.sync(&hosts)?;
    }
    let hosts = Arc::new(hosts);
    // Declared after the hosts and the kubelet stand-in, so dropped before them, on every return.
    let ticker = KubeletTicker::start(&kubelet, &hosts)?;
    let probe = Probe::start(client.clone(), SocketAddr::from((endpoint.vip, endpoint.port)), endpoint.vip);
    let guard = Guard { confined_resolver: true, ..Guard::LOOPBACK_ONLY };
    let control_dir = root.join("state/ssh");
    let ssh = |guard: Guard, dir: &str| {
        OpensshTransport::new(SshOptions { config: Some(hosts.ssh_config()), control_dir: control_dir.join(dir) }, guard)
            .map_err(|e| exec_error("start the SSH transport", e))
    };
    let mut transport = LabTransport {
        remote: ssh(guard, "hosts")?,
        // The workstation's commands are held to the guard's rule for local commands (no address
        // off loopback, no ssh of their own), checked here; its host resolves from files only.
        workstation: ssh(Guard::OPEN, "workstation")?,
        workstation_host: HostTarget { name: WORKSTATION.to_string(), address: workstation, user: "root".to_string() },
        guard,
        hosts: Arc::clone(&hosts),
        t: t.clone(),
        paths: paths.clone(),
    };
    let mut journal = Journal::open(&root.join("state")).map_err(|e| exec_error("open the journal", e))?;
    let mut operator = LabOperator {
        t,
        hosts: &hosts,
        kubelet: &kubelet,
        repo: paths.infra_repo.clone(),
        probe: &probe,
        last_host: None,
        no_counterpart: Vec::new(),
        strike: fault.as_ref().map(|f| f.strike.clone()),
        struck: false,
        current: (String::new(), 0),
        recovery: None,
        removals: Vec::new(),
    };
    std::fs::create_dir_all(root.join(STRIKE_DIR)).map_err(|e| LabError::io("the strike directory", e))?;
    if let Some(FaultRun { strike: Strike { at: StrikeAt::InJoin { host, after }, blow: Blow::Crash { victim, .. }, .. }, .. }) = &fault {
        host::write_file(&root.join(STRIKE_DIR).join(format!("at-{}-{after}", t.name(*host))), t.name(*victim))?;
    }
    let options = RunOptions {
        resume: false,
        rerun_step: false,
        observe: true,
        command_timeout: Duration::from_secs(COMMAND_TIMEOUT_S),
        check_passed: true,
        override_check: None,
        probes: Probes {
            etcd: Some(EtcdProbe { endpoint: lock(&kubelet).etcd.all_client_urls().join(","), pki: None }),
            lb: Some(LbProbe { config: LB_CONFIG.to_string(), stats_socket: Some(LB_SOCKET.to_string()) }),
            // The operator's kubeconfig, the infra repo's: it moves to the VIP at 4.1.
            kube: t
                .scenario
                .consumers
                .iter()
                .find(|c| c.kind == plan_model::scenario::ConsumerKind::Kubeconfig)
                .map(|c| KubeconfigSource::File(paths.infra_repo.join(&c.path))),
            guard,
        },
        // The lab, as operator, waits for a rebooting host itself (and resumes the run).
        host_wait: Duration::ZERO,
        stop: None,
    };
    checkpoint(Checkpoint::LabUp, &root)?;
    let started = Instant::now();
    let mut runner = Runner::new(t, &sliced, &mut transport, &mut journal, &mut operator, options.clone());
    // The runner's twin starts where the whole plan stands before the slice, as the lab does.
    runner.prediction = prediction.clone();
    let mut outcome = runner.run();
    // Under a fault, a halt is followed by the executor's recovery (`plan rollback`), carried
    // out by the lab as operator. When the twin's policy first tries the phase's rollback and
    // the executor skips it (it saw quorum lost), the lab tries that rollback's `member remove`
    // for real: real etcd must refuse it as the twin does.
    let mut at_halt: Vec<FidelityRow> = Vec::new();
    let mut rollback = None;
    let mut tried: Vec<(NodeIx, Result<(), String>)> = Vec::new();
    let mut retry: Option<RecoveryKind> = None;
    if let (Some(FaultRun { strike, twin, at_strike }), Ok(Outcome::Halted(halt))) = (&fault, &outcome) {
        let quorum = lock(&kubelet).etcd.quorum(QUORUM_WRITE_TIMEOUT_MS)?;
        let twin_quorum = derive::quorum(at_strike);
        at_halt.push(FidelityRow {
            step: halt.step.clone(),
            observation: "quorum at the halt (a write commits)".to_string(),
            twin: format!("{} ({twin_quorum})", yes_no(twin_quorum.holds())),
            lab: match &quorum {
                Ok(()) => "yes".to_string(),
                Err(why) => format!("no ({why})"),
            },
            evidence: Evidence::Real,
            agree: twin_quorum.holds() == quorum.is_ok(),
        });
        // The twin ranks the phase's rollback below a quorum recovery when etcd would refuse its
        // `member remove`: the lab asks real etcd the same question before the recovery.
        let rollback_refused = matches!(halt.recovery.kind, RecoveryKind::QuorumRecovery);
        // What the executor proposes, beside what the twin (and so the lab, as operator) does.
        lock(&kubelet).actions.push(format!(
            "the executor proposes at the halt: {} ({})",
            halt.recovery.describe(),
            if halt.recovery.descriptions.is_empty() { "nothing to do".to_string() } else { halt.recovery.descriptions.join("; ") }
        ));
        let victim = strike.blow.victim().filter(|v| at_strike.members().contains(*v));
        match twin.recoveries.first() {
            // A host that boots again: the operator waits for it, then resumes the run
            // (`plan execute --resume`), as the twin waits and re-runs the step.
            Some(RecoveryKind::WaitAndRetry) if strike.blow.clears() => retry = Some(RecoveryKind::WaitAndRetry),
            // Expired credentials: the operator uploads the certs and makes a token again (the
            // plan's own commands for them), then resumes, as the twin renews and re-runs.
            Some(RecoveryKind::Renew) if matches!(strike.blow, Blow::ClockJump { .. }) => retry = Some(RecoveryKind::Renew),
            _ => {
                if let (true, Some(victim)) = (rollback_refused, victim) {
                    let answer = lock(&kubelet).etcd.member_remove(t, victim)?;
                    lock(&kubelet).actions.push(format!(
                        "the phase's rollback, ranked below a quorum recovery, tried by the lab: etcdctl member remove {}: {}",
                        t.name(victim),
                        answer.as_ref().map_or_else(|why| format!("etcd refused: {why}"), |()| "removed".to_string())
                    ));
                    tried.push((victim, answer));
                }
                rollback = Some(runner.rollback());
            }
        }
    }
    drop(runner);
    if retry == Some(RecoveryKind::Renew) {
        // The steps whose commands upload the certs and make the join token, run again by a runner
        // of their own (its own journal; nothing to observe), then the run resumes.
        let halted = match &outcome {
            Ok(Outcome::Halted(halt)) => sliced.steps.iter().position(|s| s.id == halt.step).unwrap_or(sliced.steps.len()),
            _ => sliced.steps.len(),
        };
        let renew = renew_steps(&sliced, halted);
        let ids: Vec<String> = renew.steps.iter().map(|s| s.id.clone()).collect();
        std::fs::create_dir_all(root.join("state-renew")).map_err(|e| LabError::io("the renewal's state directory", e))?;
        let mut renew_journal = Journal::open(&root.join("state-renew")).map_err(|e| exec_error("open the renewal's journal", e))?;
        let mut renewal =
            Runner::new(t, &renew, &mut transport, &mut renew_journal, &mut operator, RunOptions { observe: false, ..options.clone() });
        let renewed = renewal.run().map_err(|e| exec_error("renew the credentials", e))?;
        drop(renewal);
        lock(&kubelet).actions.push(format!(
            "the operator re-ran {} to upload the certs and make a token again: {}",
            ids.join(", "),
            match &renewed {
                Outcome::Completed => "done".to_string(),
                Outcome::Halted(h) => format!("halted at {}: {}", h.step, h.reason),
                Outcome::Declined { phase } => format!("declined phase {phase}"),
            }
        ));
    }
    if let (Some(RecoveryKind::WaitAndRetry), Some(FaultRun { strike: Strike { blow: Blow::Freeze { victim }, .. }, .. })) =
        (&retry, &fault)
    {
        // The partition heals now.
        lock(&kubelet).freeze(&hosts, *victim, Signal::Cont, "the partition heals");
    }
    if retry == Some(RecoveryKind::WaitAndRetry) {
        let waited = Instant::now();
        // The fault clears now: the host boots at the kubelet stand-in's next look.
        lock(&kubelet).down_until.values_mut().for_each(|until| *until = Instant::now());
        while !lock(&kubelet).down_until.is_empty() && waited.elapsed() < Duration::from_secs(BOOT_WAIT_S) {
            std::thread::sleep(Duration::from_millis(KUBELET_TICK_MS));
        }
        lock(&kubelet).settle(&hosts)?;
        lock(&kubelet)
            .actions
            .push(format!("the operator waited {} ms for the fault to clear, then resumed the run", waited.elapsed().as_millis()));
    }
    if retry.is_some() {
        // After a renewal the step's copies of the secrets are stale: it runs again whole.
        let rerun_step = retry == Some(RecoveryKind::Renew);
        let mut resumed =
            Runner::new(t, &sliced, &mut transport, &mut journal, &mut operator, RunOptions { resume: true, rerun_step, ..options });
        resumed.prediction = prediction.clone();
        outcome = resumed.run();
    }
    let run_ms = started.elapsed().as_millis() as u64;
    let no_counterpart = std::mem::take(&mut operator.no_counterpart);
    let removals = std::mem::take(&mut operator.removals);
    let recovery_done = operator.recovery.take();
    drop(transport);
    hosts.close_masters(&control_dir.join("hosts"));
    hosts.close_masters(&control_dir.join("workstation"));
    let outcome = outcome.map_err(|e| exec_error("run the slice", e))?;
    checkpoint(Checkpoint::RunDone, &root)?;
    let rollback = rollback.transpose().map_err(|e| exec_error("roll back", e))?;
    let probe = probe.finish();
    let final_twin = match &fault {
        Some(FaultRun { twin, .. }) => twin.final_state,
        None => prediction.states.last().copied().unwrap_or(initial),
    };
    // Where the twin's executor halts: at the fault's detection, or at its first refused command
    // (as a failed command halts the real one).
    let twin_halt: Option<(usize, String)> = match &fault {
        // A twin that halted and went on (waited, renewed) halts nowhere in the end.
        Some(FaultRun { twin, .. }) if twin.outcome == plan_sim::run::Outcome::Completed => None,
        Some(FaultRun { twin, .. }) => twin.halted_at.as_ref().and_then(|id| {
            sliced.steps.iter().position(|s| &s.id == id).map(|i| (i, twin.halt.as_ref().map(ToString::to_string).unwrap_or_default()))
        }),
        None => {
            prediction.refusals.first().and_then(|(id, reason)| sliced.steps.iter().position(|s| &s.id == id).map(|i| (i, reason.clone())))
        }
    };
    let mut rows = step_rows(&sliced, twin_halt.as_ref(), &outcome);
    let mut unchecked = Vec::new();
    rows.extend(at_halt);
    let (twin_outcome, executor_outcome) = match &fault {
        Some(FaultRun { strike, twin, at_strike }) => {
            for (node, answer) in tried.iter().chain(&removals) {
                let twin_says = executor_fault::twin_member_remove(t, at_strike, *node);
                let lab = match answer {
                    Ok(()) => "ok".to_string(),
                    Err(why) => format!("refused: {why}"),
                };
                rows.push(FidelityRow {
                    step: strike.step_id.clone(),
                    observation: format!("etcdctl member remove {} after the fault", t.name(*node)),
                    agree: twin_says.starts_with("refused") == answer.is_err(),
                    twin: twin_says,
                    lab,
                    evidence: Evidence::Real,
                });
            }
            let describe = |kinds: &[RecoveryKind]| {
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.iter().map(RecoveryKind::describe).collect::<Vec<_>>().join(" + ")
                }
            };
            // The lab's path: the recovery the executor carried out (after a wait or a renewal).
            let mut lab_path: Vec<RecoveryKind> = Vec::new();
            lab_path.extend(retry.clone());
            lab_path.extend(recovery_done.as_ref().map(|r| r.kind.clone()));
            let (twin_path, lab_path) = (describe(&twin.recoveries), describe(&lab_path));
            rows.push(row("recovery path".to_string(), twin_path.clone(), lab_path.clone(), twin_path == lab_path));
            (twin.outcome.label(), executor_fault::executor_outcome(&outcome, recovery_done.as_ref().map(|r| &r.kind), rollback.as_ref()))
        }
        None => {
            let twin = match &twin_halt {
                Some((i, _)) => format!("halted at {}", sliced.steps[*i].id),
                None => "completed".to_string(),
            };
            (twin, executor_fault::executor_outcome(&outcome, None, None))
        }
    };
    {
        let mut k = lock(&kubelet);
        // The last look: reboots finished, pods and nodes as they stand.
        k.settle(&hosts)?;
        let joined: Vec<NodeIx> = t.all_nodes().iter().filter(|&n| initial.joined.or(final_twin.joined).contains(n)).collect();
        let masters: Vec<NodeIx> =
            t.all_nodes().iter().filter(|&n| initial.control_plane.or(final_twin.control_plane).contains(n)).collect();
        rows.extend(file_rows(t, &hosts, &joined, &masters, &final_twin, &root)?);
        rows.extend(served_rows(t, &k, &client, &masters, &final_twin)?);
        rows.extend(k.etcd.rows(t, &final_twin)?);
        // How clients see the cluster once both ended in the same place, and the source plan's
        // acceptance criteria once both completed it: after a halt without a recovery the twin's
        // state is the one its executor believes, which does not model a running apiserver
        // keeping the cert it loaded (see the README).
        let same_end = twin_outcome == executor_outcome && (fault.is_some() || matches!(outcome, Outcome::Completed));
        if same_end {
            rows.extend(cluster_rows(t, &k, &hosts, &joined, &final_twin, &client)?);
        }
        if same_end && fault.is_none() {
            rows.extend(acceptance_rows(t, &k, &hosts, &paths, &masters, &final_twin)?);
            unchecked = not_rehearsed(t, &final_twin);
        }
    }
    drop(ticker);
    rows.push(FidelityRow {
        step: "end".to_string(),
        observation: "outcome".to_string(),
        twin: twin_outcome.clone(),
        lab: executor_outcome.clone(),
        evidence: Evidence::Real,
        agree: twin_outcome == executor_outcome,
    });
    let api_requests = lock(&kubelet).api_requests.load(Ordering::SeqCst) as u64;
    let all: Vec<NodeIx> = t.all_nodes().iter().collect();
    let mut lab_actions = join_notes(t, &hosts, &all);
    lab_actions.extend(std::mem::take(&mut lock(&kubelet).actions));
    if let Outcome::Halted(halt) = &outcome {
        lab_actions.push(format!("executor halted at {}: {}", halt.step, halt.reason));
        for drift in &halt.drift {
            lab_actions.push(format!("  drift: {drift:?}"));
        }
    }
    Ok(ExecutorRehearsal {
        scenario: t.scenario.name.clone(),
        moved_to_loopback: map.pairs.iter().filter(|(a, l)| a != l).map(|(a, l)| format!("{a} -> {l}")).collect(),
        steps: sliced.steps.iter().map(|s| s.id.clone()).collect(),
        rows,
        twin_outcome,
        executor_outcome,
        lab_actions,
        no_counterpart,
        not_rehearsed: unchecked,
        probe,
        run_ms,
        api_requests,
    })
}

/// A fault rehearsed through the executor: where the lab strikes, the twin's own run with the
/// fault (its policy recovers), and the twin's state the moment the fault struck.
struct FaultRun {
    strike: Strike,
    twin: plan_sim::run::RunResult,
    at_strike: Cluster,
}

/// The kubelet stand-in's own thread: one look at the hosts every [`KUBELET_TICK_MS`] until it is
/// dropped, which stops the thread and waits for it (it holds the hosts and the stand-in).
struct KubeletTicker {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeletTicker {
    fn start(kubelet: &Arc<Mutex<KubeletStandIn>>, hosts: &Arc<FixtureHosts>) -> Result<KubeletTicker, LabError> {
        let running = Arc::new(AtomicBool::new(true));
        let (kubelet, hosts, ticking) = (Arc::clone(kubelet), Arc::clone(hosts), Arc::clone(&running));
        let thread = std::thread::Builder::new()
            .name("kubelet-stand-in".to_string())
            .spawn(move || {
                while ticking.load(Ordering::SeqCst) {
                    if let Err(e) = lock(&kubelet).sync(&hosts) {
                        lock(&kubelet).actions.push(format!("kubelet stand-in: {e}"));
                    }
                    std::thread::sleep(Duration::from_millis(KUBELET_TICK_MS));
                }
            })
            .map_err(|e| LabError::io("start the kubelet stand-in", e))?;
        Ok(KubeletTicker { running, thread: Some(thread) })
    }
}

impl Drop for KubeletTicker {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The twin over the slice, from the state the whole plan reaches before the slice's first step:
/// the plan's earlier steps are taken as done (the lab sets up their files and etcd members), the
/// steps the slice leaves out after that are skipped. An edited plan (`--plan`) that lacks a step
/// starts without its effect.
pub fn predict_slice(t: &Topology, plan: &Plan, sliced: &Plan) -> Prediction {
    let whole = Prediction::new(t, plan);
    let first = sliced.steps.first().and_then(|s| plan.steps.iter().position(|p| p.id == s.id)).unwrap_or(0);
    Prediction::from(t, sliced, *whole.before(first))
}

fn exec_error(what: &str, e: ExecError) -> LabError {
    LabError::Command { command: format!("executor: {what}"), message: e.to_string() }
}

fn kubeconfig(server: Ipv4Addr, port: u16) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: TEFCLUNB\n    server: https://{server}:{port}\n  name: kubernetes\nkind: Config\n"
    )
}

fn cluster_configuration(t: &Topology, on_vip: bool) -> String {
    let endpoint = &t.scenario.control_plane_endpoint;
    let mut text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: kubernetes\n".to_string();
    if on_vip {
        text.push_str(&format!(
            "controlPlaneEndpoint: {vip}:{port}\napiServer:\n  certSANs:\n  - {vip}\n  - {fqdn}\n",
            vip = endpoint.vip,
            port = endpoint.port,
            fqdn = endpoint.fqdn
        ));
    }
    text
}

/// `kubeadm` on every lab host.
fn write_kubeadm_shim(shims: &Path, root: &Path) -> Result<(), LabError> {
    let root = root.display();
    host::write_executable(
        &shims.join("kubeadm"),
        &format!(
            r#"#!/bin/sh
# kubeadm on a lab host: the equivalent real action of each subcommand the plan runs.
# A join's arguments hold the token and the certificate key: not logged.
case "$1" in join) echo "join" ;; *) echo "$*" ;; esac >> "$PLAN_FIXTURE_HOST_DIR/kubeadm.log"
# The lab's clock: the system clock plus the offset a clock jump adds (the TTLs run on it).
now() {{ echo $(( $(date +%s) + $(cat {root}/{CLOCK_OFFSET} 2>/dev/null || echo 0) )); }}
config=""
prev=""
for arg in "$@"; do [ "$prev" = --config ] && config="$arg"; prev="$arg"; done
if [ -n "$config" ] && [ ! -r "$config" ]; then
  echo "unable to read config from \"$config\"" >&2; exit 1
fi
case "$*" in
  "version"*) echo "kubeadm version: &version.Info{{GitVersion:\"$(cat {root}/kubernetes-version)\"}}" ;;
  "config print init-defaults"*) cat {root}/kubeadm-config.yaml ;;
  "init phase upload-config kubeadm"*) cp "$config" {root}/kubeadm-config.yaml ;;
  "init phase certs apiserver"*)
    pki=/etc/kubernetes/pki
    if [ -e $pki/apiserver.crt ] && [ -e $pki/apiserver.key ]; then
      echo '[certs] Using the existing "apiserver" certificate and key'; exit 0
    fi
    sans="DNS:$PLAN_FIXTURE_HOST_NAME,DNS:kubernetes,IP:$PLAN_FIXTURE_HOST_ADDRESS"
    if [ -n "$config" ]; then
      for san in $(awk '/certSANs:/{{f=1;next}} f&&/^ *- /{{print $2;next}} {{f=0}}' "$config"); do
        case "$san" in *[!0-9.]*) sans="$sans,DNS:$san" ;; *) sans="$sans,IP:$san" ;; esac
      done
    fi
    work=$(mktemp -d) || exit 1
    mkdir -p $pki
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=kube-apiserver -keyout $pki/apiserver.key -out $work/csr 2>$work/err || {{ cat $work/err >&2; exit 1; }}
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$sans" > $work/ext
    serial=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    openssl x509 -req -in $work/csr -CA {root}/ca.crt -CAkey {root}/ca.key -set_serial 0x7$serial -days 2 -extfile $work/ext -out $pki/apiserver.crt 2>$work/err || {{ cat $work/err >&2; exit 1; }}
    chmod 600 $pki/apiserver.key
    rm -rf $work
    echo "[certs] apiserver serving cert is signed for $sans" ;;
  "init phase upload-certs"*)
    # The kubeadm-certs Secret is a lab file: the key that decrypts it, as kubeadm prints it last.
    key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$key" > {root}/kubeadm-certs.key
    now > {root}/kubeadm-certs.uploaded
    echo '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
    echo '[upload-certs] Using certificate key:'
    echo "$key" ;;
  "token create"*)
    # getJoinCommand prints the server of the kubeconfig kubeadm loads: $KUBECONFIG,
    # ~/.kube/config, then /etc/kubernetes/admin.conf (docs/facts.md).
    endpoint=""
    for file in "${{KUBECONFIG:-}}" "$HOME/.kube/config" /etc/kubernetes/admin.conf; do
      [ -n "$file" ] && [ -r "$file" ] || continue
      endpoint=$(sed -n 's|^ *server: https://||p' "$file" | head -1); break
    done
    [ -n "$endpoint" ] || {{ echo "kubeadm token create: no kubeconfig to print a join command from" >&2; exit 1; }}
    token="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n').$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    description="<none>"; prev=""
    for arg in "$@"; do [ "$prev" = --description ] && description="$arg"; prev="$arg"; done
    echo "$token" >> {root}/kubeadm-tokens
    echo "$token $(now)" >> {root}/kubeadm-token-times
    echo "$token $description" >> {root}/kubeadm-token-descriptions
    hash=$(openssl x509 -in {root}/ca.crt -noout -pubkey | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
    echo "kubeadm join $endpoint --token $token --discovery-token-ca-cert-hash sha256:$hash" ;;
  "token list"*)
    # kubeadm's columns (cmd/kubeadm/app/cmd/token.go): TOKEN TTL EXPIRES USAGES DESCRIPTION EXTRA GROUPS.
    echo "TOKEN                     TTL   EXPIRES   USAGES                   DESCRIPTION   EXTRA GROUPS"
    while read -r token description; do
      grep -qx -- "$token" {root}/kubeadm-tokens 2>/dev/null || continue
      echo "$token   23h   -   authentication,signing   $description   system:bootstrappers:kubeadm:default-node-token"
    done < {root}/kubeadm-token-descriptions 2>/dev/null ;;
  "token delete"*)
    shift 2
    for token in "$@"; do
      grep -vx -- "$token" {root}/kubeadm-tokens > {root}/kubeadm-tokens.next 2>/dev/null
      mv {root}/kubeadm-tokens.next {root}/kubeadm-tokens
      echo "bootstrap token \"${{token%%.*}}\" deleted"
    done ;;
  "join "*) exec {root}/kubeadm-join-control-plane "$@" ;;
  *) echo "kubeadm (lab shim): not rehearsed: $*" >&2; exit 64 ;;
esac
"#
        ),
    )
}

/// The executor's transport on the lab: hosts over SSH under the loopback guard, the
/// workstation's commands on the workstation's host; every `kubectl` pinned to the server its
/// kubeconfig names at the moment it runs.
struct LabTransport {
    remote: OpensshTransport,
    workstation: OpensshTransport,
    workstation_host: HostTarget,
    guard: Guard,
    hosts: Arc<FixtureHosts>,
    t: Topology,
    paths: LabPaths,
}

impl LabTransport {
    /// The server `kubectl` at `place` talks to: the workstation's kubeconfig is the infra repo's
    /// first kubeconfig consumer; a host's is its `/etc/kubernetes/admin.conf`.
    fn kubectl_server(&self, place: &Place) -> String {
        let endpoint = &self.t.scenario.control_plane_endpoint;
        let direct = format!("https://{}:{}", self.t.node(self.t.existing_master()).address, endpoint.port);
        let file = match place {
            Place::Local { .. } => self
                .t
                .scenario
                .consumers
                .iter()
                .find(|c| c.kind == plan_model::scenario::ConsumerKind::Kubeconfig)
                .map(|c| self.paths.infra_repo.join(&c.path)),
            Place::Host(h) => Some(self.hosts.etc_kubernetes(&h.name).join("admin.conf")),
        };
        file.and_then(|f| std::fs::read_to_string(f).ok()).and_then(|text| executor_lab::server_in(&text)).unwrap_or(direct)
    }
}

impl Transport for LabTransport {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let pinned = if request.shell.contains("kubectl ") {
            executor_lab::pin_kubectl(request.shell, &self.kubectl_server(place))
        } else {
            request.shell.to_string()
        };
        match place {
            Place::Local { dir } => {
                self.guard.check_local_command(&pinned)?;
                let shell = match dir {
                    Some(dir) => format!("cd {} && {pinned}", quote(dir)),
                    None => pinned,
                };
                self.workstation.run(&Place::Host(self.workstation_host.clone()), &Request { shell: &shell, ..*request })
            }
            Place::Host(_) => self.remote.run(place, &Request { shell: &pinned, ..*request }),
        }
    }

    fn read_file(&mut self, host: &HostTarget, path: &str) -> Result<FileRead, ExecError> {
        self.remote.read_file(host, path)
    }

    fn read_files(&mut self, reads: &[(HostTarget, &str)]) -> Vec<Result<FileRead, ExecError>> {
        self.remote.read_files(reads)
    }
}

/// The kubelets of the lab's nodes: each master's apiserver stand-in (stopped while its manifest
/// is away, restarted when it comes back or changed), reboots, and each node's Ready state.
struct KubeletStandIn {
    /// Per master: the running stand-in and the manifest's inode ctime when it started.
    apiservers: BTreeMap<NodeIx, (ApiserverStandIn, Option<i64>)>,
    etcd: SliceEtcd,
    /// Hosts that are down for a reboot, until when.
    rebooting: BTreeMap<NodeIx, Instant>,
    client: VerifyingClient,
    port: u16,
    actions: Vec<String>,
    t: Topology,
    root: PathBuf,
    /// Hosts a fault crashed (or a recovery destroyed): down, for good unless in `down_until`.
    crashed: NodeSet,
    /// Crashed hosts that boot again (a reboot fault), and when.
    down_until: BTreeMap<NodeIx, Instant>,
    /// Kubernetes API object requests the stand-ins answered (the executor's observer asks).
    api_requests: Arc<std::sync::atomic::AtomicUsize>,
    /// Node objects the API holds: registered by a kubelet, gone only with `kubectl delete node`
    /// (`kubeadm reset` and a destroyed VM leave them, NotReady: docs/facts.md K10).
    registered: NodeSet,
}

fn manifest_ctime(path: &Path) -> Option<i64> {
    std::fs::metadata(path).ok().map(|m| m.ctime() * 1_000_000_000 + m.ctime_nsec())
}

/// The SANs of the cert on disk (`openssl x509 -ext subjectAltName`).
fn sans_on_disk(crt: &Path) -> ServingCertSans {
    let output = Command::new("openssl").arg("x509").arg("-in").arg(crt).args(["-noout", "-ext", "subjectAltName"]).output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let mut sans = ServingCertSans { ips: Vec::new(), dns: Vec::new() };
    for san in text.lines().skip(1).flat_map(|l| l.split(',')).map(str::trim) {
        if let Some(ip) = san.strip_prefix("IP Address:").and_then(|a| a.parse().ok()) {
            sans.ips.push(ip);
        } else if let Some(name) = san.strip_prefix("DNS:") {
            sans.dns.push(name.to_string());
        }
    }
    sans
}

/// `https://a.b.c.d:port` as an address.
fn server_address(server: &str) -> Option<SocketAddr> {
    server.strip_prefix("https://")?.trim_end_matches('/').parse().ok()
}

impl KubeletStandIn {
    /// Starts `node`'s apiserver stand-in on the scenario's port of its address, reading the cert
    /// on disk, its `/readyz` on the node's etcd member.
    fn start(&mut self, hosts: &FixtureHosts, node: NodeIx) -> Result<(), LabError> {
        let name = self.t.name(node).to_string();
        let address = self.t.node(node).address;
        let kube = hosts.etc_kubernetes(&name);
        let (crt, key) = (kube.join("pki/apiserver.crt"), kube.join("pki/apiserver.key"));
        let etcd = self.etcd.client_address(node).unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 9)));
        let objects = ApiObjects {
            nodes: self.root.join(executor_lab::CLUSTER_DIR).join("nodes"),
            cluster_configuration: self.root.join("kubeadm-config.yaml"),
            cluster_info: self.root.join(CLUSTER_INFO),
            served: Arc::clone(&self.api_requests),
        };
        let standin =
            ApiserverStandIn::start(&name, SocketAddr::from((address, self.port)), &crt, &key, sans_on_disk(&crt), etcd, Some(objects))?;
        self.apiservers.insert(node, (standin, manifest_ctime(&kube.join(APISERVER_MANIFEST))));
        Ok(())
    }

    fn stop(&mut self, node: NodeIx) {
        if let Some((standin, _)) = self.apiservers.remove(&node) {
            standin.stop();
        }
    }

    /// The fault: `node`'s host crashes and stays down. Its sshd's PID namespace is killed (every
    /// session and every process it started, a joining etcd included), the member the lab runs
    /// for it is SIGKILLed, its apiserver stand-in stops; its kubelet reaches nothing.
    fn crash(&mut self, hosts: &FixtureHosts, node: NodeIx, why: &str) {
        self.crash_for(hosts, node, why, None);
    }

    /// [`Self::crash`], and the host boots again after `lasts` when given (a reboot fault).
    fn crash_for(&mut self, hosts: &FixtureHosts, node: NodeIx, why: &str, lasts: Option<Duration>) {
        if self.crashed.contains(node) {
            return;
        }
        if let Some(lasts) = lasts {
            self.down_until.insert(node, Instant::now() + lasts);
        }
        let name = self.t.name(node).to_string();
        let sshd = hosts.crash(&name);
        let etcd = self.etcd.kill(node);
        self.stop(node);
        self.rebooting.remove(&node);
        self.crashed = self.crashed.with(node);
        self.actions.push(format!(
            "{name}: {why}: host crashed ({}{}apiserver stand-in stopped)",
            if sshd { "sshd and every process of the host SIGKILLed, " } else { "" },
            if etcd { "etcd SIGKILLed, " } else { "" }
        ));
        let _ = std::fs::write(self.root.join(STRIKE_DIR).join(format!("done-{name}")), "");
    }

    /// The partition: `node`'s etcd is frozen (`Signal::Stop`) or thawed (`Signal::Cont`), the lab's
    /// own member by its pid, a member the join started by `kill` inside the host. The host
    /// answers SSH, and its apiserver stand-in runs, unready while its etcd is frozen.
    fn freeze(&mut self, hosts: &FixtureHosts, node: NodeIx, signal: Signal, why: &str) {
        let name = self.t.name(node).to_string();
        let sent = if self.etcd.signal(node, signal) {
            Ok(())
        } else {
            let flag = if signal == Signal::Stop { "STOP" } else { "CONT" };
            hosts.run(self.t.node(node).address, &format!("kill -{flag} $(cat $PLAN_FIXTURE_HOST_DIR/{JOINED_MEMBER_PID})")).map(|_| ())
        };
        self.actions.push(match sent {
            Ok(()) => format!("{name}: {why}: {} to its etcd", signal.name()),
            Err(e) => format!("{name}: {why}: {} to its etcd failed: {e}", signal.name()),
        });
    }

    /// A host a reboot fault took down boots: its sshd starts again, then etcd on its data, as
    /// the kubelet starts the static pod (the lab's own member, or the one the join started,
    /// started again inside the host); its apiserver stand-in follows from its manifest.
    fn boot(&mut self, hosts: &FixtureHosts, node: NodeIx) -> Result<(), LabError> {
        let name = self.t.name(node).to_string();
        hosts.boot(&name)?;
        self.crashed = self.crashed.without(node);
        let etcd = if self.etcd.restart(node)? {
            true
        } else if hosts.host_dir(&name).join(JOINED_MEMBER_PID).exists() {
            hosts.run(self.t.node(node).address, JOINED_MEMBER_START)?;
            true
        } else {
            false
        };
        self.actions.push(format!("{name}: booted after the fault{}", if etcd { ", etcd started on its data" } else { "" }));
        Ok(())
    }

    /// One look at every host: faults the join shim asked for, hosts a fault took down that boot,
    /// reboots asked for or over, manifests away, back or new, then the node and pod states the
    /// `kubectl` shim answers from.
    fn sync(&mut self, hosts: &FixtureHosts) -> Result<(), LabError> {
        let t = self.t.clone();
        let booting: Vec<NodeIx> = self.down_until.iter().filter(|(_, until)| Instant::now() >= **until).map(|(&n, _)| n).collect();
        for node in booting {
            self.down_until.remove(&node);
            self.boot(hosts, node)?;
        }
        for node in t.all_nodes().iter() {
            if self.root.join(STRIKE_DIR).join(format!("struck-{}", t.name(node))).exists() {
                self.crash(hosts, node, "the fault (struck inside kubeadm join)");
            }
        }
        for node in t.all_nodes().iter() {
            if self.crashed.contains(node) {
                continue;
            }
            let requested = hosts.host_dir(t.name(node)).join("reboot-requested");
            if requested.exists() && !self.rebooting.contains_key(&node) {
                let _ = std::fs::remove_file(&requested);
                let etcd = self.etcd.kill(node);
                self.stop(node);
                self.rebooting.insert(node, Instant::now() + Duration::from_millis(LAB_REBOOT_MS));
                self.actions.push(format!(
                    "{}: down for a reboot ({}apiserver stand-in stopped)",
                    t.name(node),
                    if etcd { "etcd SIGKILLed, " } else { "" }
                ));
            }
        }
        let back: Vec<NodeIx> = self.rebooting.iter().filter(|(_, until)| Instant::now() >= **until).map(|(&n, _)| n).collect();
        for node in back {
            self.rebooting.remove(&node);
            let etcd = self.etcd.restart(node)?;
            self.actions.push(format!(
                "{}: up again after the reboot{}",
                t.name(node),
                if etcd { ", etcd started on its data" } else { "" }
            ));
        }
        for node in t.all_nodes().iter() {
            if self.rebooting.contains_key(&node) || self.crashed.contains(node) {
                continue;
            }
            let manifest = hosts.etc_kubernetes(t.name(node)).join(APISERVER_MANIFEST);
            let now = manifest_ctime(&manifest);
            match (self.apiservers.get(&node).map(|(_, ctime)| *ctime), now) {
                (Some(_), None) => {
                    self.stop(node);
                    self.actions.push(format!("kubelet on {}: kube-apiserver.yaml gone, apiserver stand-in stopped", t.name(node)));
                }
                (Some(then), Some(_)) if then != now => {
                    self.stop(node);
                    self.start(hosts, node)?;
                    self.actions.push(format!(
                        "kubelet on {}: kube-apiserver.yaml changed, apiserver stand-in restarted with the cert on disk",
                        t.name(node)
                    ));
                }
                (None, Some(_)) => {
                    self.start(hosts, node)?;
                    self.actions.push(format!(
                        "kubelet on {}: kube-apiserver.yaml present, apiserver stand-in started with the cert on disk",
                        t.name(node)
                    ));
                }
                _ => {}
            }
        }
        self.write_states(hosts)
    }

    /// Waits out reboots in progress and looks once more.
    fn settle(&mut self, hosts: &FixtureHosts) -> Result<(), LabError> {
        if let Some(until) = self.rebooting.values().max().copied() {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        self.sync(hosts)?;
        // Give a restarted etcd and HAProxy's checks a moment, then look again.
        std::thread::sleep(Duration::from_millis(1000));
        self.sync(hosts)
    }

    /// Whether `node`'s kubelet reaches an apiserver: its kubelet.conf's server answers `/readyz`
    /// with TLS verified for the address it dials.
    fn node_ready(&self, hosts: &FixtureHosts, node: NodeIx) -> Option<bool> {
        let text = std::fs::read_to_string(hosts.etc_kubernetes(self.t.name(node)).join("kubelet.conf")).ok()?;
        if self.rebooting.contains_key(&node) || self.crashed.contains(node) {
            return Some(false);
        }
        let server = executor_lab::server_in(&text).and_then(|s| server_address(&s))?;
        let SocketAddr::V4(v4) = server else { return Some(false) };
        Some(self.client.readyz(server, *v4.ip()).is_ok_and(|a| a.is_ready()))
    }

    fn apiserver_ready(&self, node: NodeIx) -> bool {
        self.apiservers
            .get(&node)
            .is_some_and(|(s, _)| self.client.readyz(s.address, self.t.node(node).address).is_ok_and(|a| a.is_ready()))
    }

    fn write_states(&mut self, hosts: &FixtureHosts) -> Result<(), LabError> {
        let mut nodes = String::new();
        let mut pods = String::new();
        for node in self.t.all_nodes().iter() {
            let name = self.t.name(node);
            let master = hosts.etc_kubernetes(name).join(APISERVER_MANIFEST).exists();
            let ready = match self.node_ready(hosts, node) {
                // A kubelet that runs (or reboots) registers its Node.
                Some(ready) if !self.crashed.contains(node) => {
                    self.registered = self.registered.with(node);
                    Some(ready)
                }
                // No kubelet: a Node object registered before stays, NotReady.
                _ => self.registered.contains(node).then_some(false),
            };
            if let Some(ready) = ready {
                nodes.push_str(&format!(
                    "{name} {} {}\n",
                    if ready { "Ready" } else { "NotReady" },
                    if master { "control-plane" } else { "<none>" }
                ));
            }
            if self.apiservers.contains_key(&node) {
                pods.push_str(&format!(
                    "kube-system kube-apiserver-{name} {}\n",
                    if self.apiserver_ready(node) { "Running" } else { "NotReady" }
                ));
            }
        }
        let dir = self.root.join(executor_lab::CLUSTER_DIR);
        for (file, text) in [("nodes", nodes), ("pods", pods)] {
            let tmp = dir.join(format!("{file}.new"));
            std::fs::write(&tmp, text).map_err(|e| LabError::io(format!("write {}", tmp.display()), e))?;
            std::fs::rename(&tmp, dir.join(file)).map_err(|e| LabError::io(format!("rename {}", tmp.display()), e))?;
        }
        Ok(())
    }
}

/// The person at the lab's terminal: confirms every phase, makes the by-hand edits, and lets the
/// kubelet stand-in look after every command.
struct LabOperator<'a> {
    t: &'a Topology,
    hosts: &'a FixtureHosts,
    kubelet: &'a Mutex<KubeletStandIn>,
    repo: PathBuf,
    probe: &'a Probe,
    /// The host of the last shell command: where a by-hand edit of a host's file is made.
    last_host: Option<String>,
    no_counterpart: Vec<String>,
    /// The fault to strike during the run, if any, and whether it struck.
    strike: Option<Strike>,
    struck: bool,
    /// The step and index of the invocation running.
    current: (String, usize),
    /// The recovery the runner asked to carry out (after a halt under a fault).
    recovery: Option<Recovery>,
    /// `etcdctl member remove` the lab ran for real, and etcd's answer.
    removals: Vec<(NodeIx, Result<(), String>)>,
}

impl LabOperator<'_> {
    fn note(&self, what: String) {
        lock(self.kubelet).actions.push(what);
    }

    fn strike_now(&mut self, step: &Step, at: &StrikeAt) {
        let Some(strike) = self.strike.clone() else { return };
        if self.struck || strike.step_id != step.id || strike.at != *at {
            return;
        }
        self.struck = true;
        // The host stays down until the lab, as operator, has seen the halt and waits for it
        // (at most FAULT_DOWN_MAX_S): the twin's reboot lasts far longer than the executor takes
        // to notice it.
        let why = format!("the fault at {}", step.id);
        match strike.blow {
            Blow::Crash { victim, boots_again } => {
                let lasts = boots_again.then_some(Duration::from_secs(FAULT_DOWN_MAX_S));
                lock(self.kubelet).crash_for(self.hosts, victim, &why, lasts);
            }
            Blow::Freeze { victim } => lock(self.kubelet).freeze(self.hosts, victim, Signal::Stop, &why),
            Blow::ClockJump { seconds } => {
                let offset = clock_offset_s(self.hosts.root()) + u64::from(seconds);
                let written = host::write_file(&self.hosts.root().join(CLOCK_OFFSET), &format!("{offset}\n"));
                self.note(format!(
                    "{why}: the lab's clock jumps {} (the operator away){}",
                    plan_model::plan::format_duration(seconds),
                    written.err().map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
        }
    }

    /// A recovery action the runner leaves to the operator, done for real where the lab can.
    fn recover(&mut self, action: Action) -> bool {
        let t = self.t;
        let mut k = lock(self.kubelet);
        match action {
            Action::EtcdMemberRemove(node) => {
                let answer = k.etcd.member_remove(t, node).unwrap_or_else(|e| Err(e.to_string()));
                k.actions.push(match &answer {
                    Ok(()) => format!("recovery: etcdctl member remove {}: removed", t.name(node)),
                    Err(why) => format!("recovery: etcdctl member remove {}: etcd refused: {why}", t.name(node)),
                });
                self.removals.push((node, answer.clone()));
                answer.is_ok()
            }
            Action::DestroyVm(node) => {
                if k.crashed.contains(node) {
                    k.actions.push(format!("recovery: destroy VM {}: its host is down already and stays down", t.name(node)));
                } else {
                    k.crash(self.hosts, node, "recovery: destroy VM");
                }
                true
            }
            Action::DeleteNode(node) => {
                k.registered = k.registered.without(node);
                k.actions.push(format!("recovery: kubectl delete node {}: the Node object is gone", t.name(node)));
                true
            }
            Action::ForceNewCluster(node) => match k.etcd.force_new_cluster(node) {
                Ok(true) => {
                    k.actions.push(format!("recovery: etcd --force-new-cluster on {}: a cluster of one, writes commit", t.name(node)));
                    true
                }
                Ok(false) => {
                    k.actions.push(format!("recovery: etcd --force-new-cluster on {}: the lab runs no member there", t.name(node)));
                    false
                }
                Err(e) => {
                    k.actions.push(format!("recovery: etcd --force-new-cluster on {}: {e}", t.name(node)));
                    false
                }
            },
            other => {
                k.actions.push(format!("recovery: {} is not rehearsed on the lab", other.describe(t)));
                false
            }
        }
    }
}

impl Operator for LabOperator<'_> {
    fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
        true
    }

    fn confirm_recovery(&mut self, recovery: &Recovery) -> bool {
        // Without a fault the rehearsal reports a halt and does not roll back; under a fault it
        // carries out the twin's recovery, as an operator would.
        if self.strike.is_none() {
            return false;
        }
        self.note(format!("recovery chosen by the executor: {} ({})", recovery.describe(), recovery.descriptions.join("; ")));
        self.recovery = Some(recovery.clone());
        true
    }

    fn step_begins(&mut self, step: &Step) {
        self.probe.on_step(&step.id);
        self.strike_now(step, &StrikeAt::StepBegins);
    }

    fn by_hand(&mut self, step: &Step, instruction: &str) -> bool {
        let recovery_action = self.recovery.as_ref().and_then(|r| r.actions.iter().copied().find(|a| a.describe(self.t) == instruction));
        if let Some(action) = recovery_action {
            return self.recover(action);
        }
        let edit = format!("edit /tmp/{KUBEADM_NEW}");
        if instruction.starts_with(&edit) {
            let Some(host) = self.last_host.clone() else {
                self.note(format!("{}: by hand, but no host ran a command before it: {instruction}", step.id));
                return false;
            };
            let path = self.hosts.host_dir(&host).join("tmp").join(KUBEADM_NEW);
            return match host::write_file(&path, &cluster_configuration(self.t, true)) {
                Ok(()) => {
                    self.note(format!("{}: by hand on {host}: /tmp/{KUBEADM_NEW} gets controlPlaneEndpoint and certSANs", step.id));
                    true
                }
                Err(e) => {
                    self.note(format!("{}: by hand on {host} failed: {e}", step.id));
                    false
                }
            };
        }
        match executor_lab::carry_out(&self.repo, self.t.scenario.load_balancer.bootstrap_script(), instruction) {
            ByHand::Edited(what) => {
                self.note(format!("{}: by hand in the infra repo: {what}", step.id));
                true
            }
            ByHand::NoCounterpart => {
                self.no_counterpart.push(format!("{}: {instruction}", step.id));
                true
            }
            ByHand::Unreadable(why) => {
                self.note(format!("{}: by hand, the lab cannot make this edit: {why}", step.id));
                false
            }
        }
    }

    fn starting(&mut self, step: &Step, index: usize, invocation: &Invocation, _eta_s: u32) {
        self.probe.on_step(&step.id);
        self.current = (step.id.clone(), index);
        if let Work::Shell { place: Place::Host(host), .. } = &invocation.work {
            self.last_host = Some(host.name.clone());
        }
    }

    fn finished(&mut self, step: &Step, _invocation: &Invocation, _done: &Result<Completed, String>) {
        if self.current.0 == step.id {
            self.strike_now(step, &StrikeAt::AfterInvocation(self.current.1));
        }
        let result = lock(self.kubelet).sync(self.hosts);
        if let Err(e) = result {
            self.note(format!("{}: kubelet stand-in failed: {e}", step.id));
        }
    }
}

fn step_rows(plan: &Plan, twin_halt: Option<&(usize, String)>, outcome: &Outcome) -> Vec<FidelityRow> {
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

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_string()
}

/// The real files after the run, read from the hosts' directories, against the twin's last state.
fn file_rows(
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
fn consumer_rows(t: &Topology, twin: &Cluster, repo: &Path) -> Vec<FidelityRow> {
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
fn served_rows(
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

fn row(observation: String, twin: String, lab: String, agree: bool) -> FidelityRow {
    FidelityRow { step: "end".to_string(), observation, twin, lab, evidence: Evidence::Real, agree }
}

/// The cluster as clients see it after the run: each node's Ready state (its kubelet through its
/// kubelet.conf's server), HAProxy's backends from its stats socket, `/readyz` through the VIP,
/// the config stack's flags in each master's manifest.
fn cluster_rows(
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
fn acceptance_rows(
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
fn not_rehearsed(t: &Topology, twin: &Cluster) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn homelab() -> Topology {
        let text = include_str!("../../scenarios/homelab.yaml");
        Topology::new(&plan_model::validate::parse_scenario(text).expect("the homelab parses"))
    }

    #[test]
    fn a_slice_keeps_the_plans_order_and_refuses_an_unknown_step() {
        let t = homelab();
        let plan = plan_model::planner::generate(&t);
        let sliced = slice(&plan, &["4.3".to_string(), "0.2".to_string()]).expect("both exist");
        assert_eq!(sliced.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["0.2", "4.3"]);
        assert_eq!(sliced.phases.len(), 2);
        assert_eq!(slice(&plan, &["all".to_string()]).expect("all").steps.len(), plan.steps.len());
        assert!(matches!(slice(&plan, &["9.9".to_string()]), Err(LabError::NotRehearsable { .. })));
    }

    #[test]
    fn the_lab_moves_the_workstation_paths_into_its_scratch_directory() {
        let t = homelab();
        let plan = plan_model::planner::generate(&t);
        let paths = LabPaths::under(Path::new("/dev/shm/lab-x"));
        let moved = paths.plan(&t, &plan).expect("the plan fits the lab");
        let text: String = moved.steps.iter().flat_map(|s| &s.commands).map(|c| c.run.clone()).collect();
        assert!(!text.contains(&t.scenario.infra_repo) && !text.contains(&t.scenario.etcd_backup.path), "no scenario path is left");
        assert!(text.contains("cd /dev/shm/lab-x/infra && scripts/tg apply"), "{text}");
        assert_eq!(paths.topology(&t).scenario.infra_repo, "/dev/shm/lab-x/infra");
        // Every login is the lab's root; a path with the user's name in it is not a login.
        assert!(!text.contains("wizard@") && !text.contains("admin@"), "{text}");
        assert!(text.contains("ssh root@k8s-master-2.viktorbarzin.lan"), "{text}");
        let moved_t = paths.topology(&t);
        assert_eq!((moved_t.scenario.ssh_user.as_str(), moved_t.scenario.load_balancer.ssh_user.as_str()), ("root", "root"));
    }

    #[test]
    fn the_shims_configuration_has_the_vip_sans_only_when_asked() {
        let t = homelab();
        assert!(!cluster_configuration(&t, false).contains("certSANs"));
        let on = cluster_configuration(&t, true);
        assert!(on.contains("controlPlaneEndpoint: 10.0.20.99:6443") && on.contains("  - 10.0.20.99\n"), "{on}");
    }

    #[test]
    fn a_homelab_whose_addresses_clash_on_loopback_is_refused_before_anything_starts() {
        if let Err(e) = host::usable() {
            host::skip_test(&format!("fixture hosts cannot run: {e}"));
            return;
        }
        // k8s-master-2 at 10.9.20.100 would land on k8s-master's 127.0.20.100.
        let text = include_str!("../../scenarios/homelab.yaml").replace("address: 10.0.20.110", "address: 10.9.20.100");
        let t = Topology::new(&plan_model::validate::parse_scenario(&text).expect("parses"));
        let plan = plan_model::planner::generate(&t);
        match rehearse_through_executor(&t, &plan, &["4.3".to_string()], None) {
            Err(LabError::AddressClash { node, other, .. }) => assert_eq!((node.as_str(), other.as_str()), ("k8s-master-2", "k8s-master")),
            other => panic!("refused: {:?}", other.map(|r| r.executor_outcome)),
        }
    }
}
