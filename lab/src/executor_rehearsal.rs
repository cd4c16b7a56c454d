//! A rehearsal through the real executor: a slice of the plan run by `plan execute`'s runner over
//! SSH against fixture hosts on loopback, and its result set beside the twin's.
//!
//! Every node the scenario starts with gets a real `sshd` ([`crate::host`]) on its own address,
//! with its own `/etc/kubernetes` and `/tmp`: a real kubelet.conf, and on each master a real
//! `pki/apiserver.{crt,key}` from the lab CA and a `manifests/kube-apiserver.yaml`. Each master's
//! apiserver stand-in ([`crate::apiserver`]) serves the cert that is on disk when it (re)starts.
//! Shims on the hosts' PATH do the equivalent real actions:
//!
//! - `kubeadm init phase certs apiserver --config F` signs a serving cert with the lab CA
//!   (`openssl`) for the host's name and address plus F's `certSANs`, and keeps an existing pair
//!   as kubeadm does; `kubeadm config print init-defaults` prints the lab's kubeadm-config;
//!   `kubeadm init phase upload-config kubeadm --config F` replaces it with F;
//! - `kubectl -n kube-system get cm kubeadm-config` prints the lab's kubeadm-config; `kubectl
//!   wait` answers at once (there are no kubelets: a stand-in);
//! - `systemctl` and `sleep` log and return (model time is not waited out).
//!
//! The lab is also the operator ([`Operator`]): the by-hand edit of `/tmp/kubeadm-new.yaml` is
//! made on the host's real file, and the lab's kubelet stand-in restarts a master's apiserver
//! stand-in when its `kube-apiserver.yaml` was moved away and back (its inode's ctime changed),
//! as the kubelet restarts a static pod. Other by-hand work is not rehearsed: the run halts there.
//!
//! A slice that changes etcd's membership (a join, 2.5) runs against real etcd
//! ([`crate::executor_etcd`]): upload-certs and the join command are shims, the join's etcd work
//! (learner add, member start, promote) is real. The twin starts where the whole plan stands
//! before the slice's first step ([`predict_slice`]), and the lab sets that state up.
//!
//! The executor runs with the loopback guard on, whatever the environment says, and its
//! observers compare the files with the twin before and after every step; the etcd, LB and
//! Kubernetes API observers are off (the etcd observer's multi-member `endpoint health` is refused
//! by the guard; the etcd rows read `etcdctl member list` after the run).

use crate::address::guard_loopback;
use crate::apiserver::{ApiserverStandIn, VerifyingClient};
use crate::error::LabError;
use crate::executor_etcd::{join_notes, slice_touches_etcd, SliceEtcd};
use crate::fidelity::{Evidence, FidelityRow};
use crate::host::{self, FixtureHost, FixtureHosts, RootHome, TmpDir};
use crate::pki::{LabCa, ServingCertSans};
use plan_exec::guard::Guard;
use plan_exec::invocation::{Invocation, Work};
use plan_exec::journal::Journal;
use plan_exec::observe::{cert_has_vip, kubelet_on_vip, Probes, Seen};
use plan_exec::predict::Prediction;
use plan_exec::runner::{Operator, Outcome, Recovery, RunOptions, Runner};
use plan_exec::ssh::{OpensshTransport, SshOptions};
use plan_exec::target::{HostTarget, Place};
use plan_exec::transport::{quote, Completed, FileRead, LocalTransport, Request, Transport};
use plan_exec::ExecError;
use plan_model::cluster::Cluster;
use plan_model::plan::{Phase, Plan, Step};
use plan_model::topology::{NodeIx, Topology};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The slice `plan rehearse --via-execute` runs by default: the cert SAN retrofit (kubeadm-config,
/// the cert, the apiserver restart) and the kubelet.conf flips of the existing nodes.
pub const SLICE_DEFAULT: [&str; 5] = ["0.2", "0.3", "0.4", "4.2", "4.3"];
/// Deadline of each command the executor runs on the lab.
pub const COMMAND_TIMEOUT_S: u64 = 60;
/// Where the lab's scratch directories go: not under `/tmp`, which each host mounts over.
pub const SCRATCH_DIR: &str = "/dev/shm";
/// The file the plan's step 0.2 edits by hand, in the host's `/tmp`.
const KUBEADM_NEW: &str = "kubeadm-new.yaml";
/// The apiserver's static pod manifest, under `/etc/kubernetes`.
const APISERVER_MANIFEST: &str = "manifests/kube-apiserver.yaml";
/// An address where nothing listens: the stand-ins' `/readyz` reports etcd down (this slice runs
/// no etcd); their TLS is what the slice observes.
const NO_ETCD: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9));

/// What a rehearsal through the executor found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExecutorRehearsal {
    pub scenario: String,
    pub steps: Vec<String>,
    pub rows: Vec<FidelityRow>,
    pub twin_outcome: String,
    pub executor_outcome: String,
    /// What the lab did as operator and kubelet, in order.
    pub lab_actions: Vec<String>,
    /// Start of the executor's run to its end.
    pub run_ms: u64,
}

impl ExecutorRehearsal {
    pub fn agrees(&self) -> bool {
        self.rows.iter().all(|r| r.agree)
    }

    /// The fidelity table for a person.
    pub fn render(&self) -> String {
        let mut out = format!(
            "plan rehearse --via-execute: scenario {}, steps {} run by the executor over SSH on fixture hosts\n",
            self.scenario,
            self.steps.join(", ")
        );
        out.push_str(&format!("{:<6} {:<52} {:<28} {:<28} {}\n", "step", "observation", "twin", "executor on the lab", ""));
        for row in &self.rows {
            let mark = match (row.agree, row.evidence) {
                (false, _) => "DISAGREE",
                (true, Evidence::StandIn) => "= ~",
                (true, _) => "=",
            };
            out.push_str(&format!("{:<6} {:<52} {:<28} {:<28} {mark}\n", row.step, row.observation, row.twin, row.lab));
        }
        for action in &self.lab_actions {
            out.push_str(&format!("  lab: {action}\n"));
        }
        let disagreements = self.rows.iter().filter(|r| !r.agree).count();
        out.push_str(&format!(
            "outcome: twin {}, executor {}; {} rows, {} disagree; executor run {} ms\n",
            self.twin_outcome,
            self.executor_outcome,
            self.rows.len(),
            disagreements,
            self.run_ms
        ));
        out
    }
}

fn not_rehearsable(what: impl Into<String>, why: impl Into<String>) -> LabError {
    LabError::NotRehearsable { what: what.into(), why: why.into() }
}

/// The plan with only `steps` (in the plan's order) and their phases, every `kubectl` pinned to
/// `server` with `--server=` where it names none: a host's kubectl reads a kubeconfig the
/// loopback guard cannot read, so the guard refuses it unless the command names a loopback server
/// (the lab's kubectl shim answers the same either way).
///
/// # Errors
/// A step id the plan does not have.
pub fn slice(plan: &Plan, steps: &[String], server: &str) -> Result<Plan, LabError> {
    if let Some(missing) = steps.iter().find(|id| !plan.steps.iter().any(|s| &s.id == *id)) {
        return Err(not_rehearsable(format!("step {missing}"), "the plan has no such step"));
    }
    let mut sliced = plan.clone();
    sliced.steps.retain(|s| steps.contains(&s.id));
    sliced.phases.retain(|p| sliced.steps.iter().any(|s| s.phase == p.id));
    for command in sliced.steps.iter_mut().flat_map(|s| s.commands.iter_mut()) {
        if command.run.contains("kubectl ") && !command.run.contains("--server") {
            command.run = command.run.replace("kubectl ", &format!("kubectl --server={server} "));
        }
    }
    Ok(sliced)
}

/// Runs `steps` of `plan` through the executor on a fresh lab of fixture hosts and compares the
/// result with the twin.
///
/// # Caveats
/// The scenario's addresses must be on loopback already (`scenarios/loopback.yaml`): the executor
/// connects to the inventory's addresses, and this slice does not rewrite the inventory. Needs
/// root, sshd and unshare ([`host::usable`]) and openssl.
///
/// # Errors
/// The lab cannot start (no sshd, a port taken), an address off loopback, a step the plan lacks,
/// or the executor could not run at all (its journal). A halt is an outcome, not an error.
pub fn rehearse_through_executor(t: &Topology, plan: &Plan, steps: &[String]) -> Result<ExecutorRehearsal, LabError> {
    host::usable()?;
    let endpoint = &t.scenario.control_plane_endpoint;
    for node in t.all_nodes().iter() {
        let n = t.node(node);
        guard_loopback(n.address).map_err(|_| {
            not_rehearsable(
                format!("{} ({})", n.name, n.address),
                "the executor slice needs a scenario on loopback (scenarios/loopback.yaml)",
            )
        })?;
    }
    guard_loopback(endpoint.vip)?;
    let existing = t.node(t.existing_master()).address;
    let sliced = slice(plan, steps, &format!("https://{existing}:{}", endpoint.port))?;
    let prediction = predict_slice(t, plan, &sliced);
    let initial = *prediction.before(0);
    let scratch = tempfile::Builder::new()
        .prefix("plan-exec-lab-")
        .tempdir_in(SCRATCH_DIR)
        .map_err(|e| LabError::io(format!("a scratch directory in {SCRATCH_DIR}"), e))?;
    let root = scratch.path().to_path_buf();
    // A host per node whose machine is up when the slice starts (a new master's VM too, once the
    // plan's earlier steps made it).
    let up: Vec<NodeIx> = initial.up.and(t.all_nodes()).iter().collect();
    let joined: Vec<NodeIx> = initial.joined.iter().collect();
    let fixture: Vec<FixtureHost> = up.iter().map(|&n| FixtureHost { name: t.name(n).to_string(), address: t.node(n).address }).collect();
    let mut hosts = FixtureHosts::prepare(&root, fixture, TmpDir::PerHost)?.with_root_home(RootHome::PerHost);
    let ca = LabCa::new(&root)?;
    ca.write_key(&root.join("ca.key"))?;
    write_kubeadm_config(&root.join("kubeadm-config.yaml"), t, initial.kubeadm_endpoint)?;
    if initial.kubeadm_endpoint {
        // The twin's kubeadm-config is on the VIP only after 0.2's by-hand edit, which leaves its
        // file on the existing master (0.3 reads it).
        let edited = hosts.host_dir(t.name(t.existing_master())).join("tmp").join(KUBEADM_NEW);
        host::write_file(&edited, &cluster_configuration(t, true))?;
    }
    let masters: Vec<NodeIx> = joined.iter().copied().filter(|&n| initial.control_plane.contains(n)).collect();
    for &node in &joined {
        let kube = hosts.etc_kubernetes(t.name(node));
        let server = if initial.kubelet_vip.contains(node) { endpoint.vip } else { t.node(t.existing_master()).address };
        host::write_file(&kube.join("kubelet.conf"), &kubelet_conf(server, endpoint.port))?;
        if masters.contains(&node) {
            let vip = initial.cert_vip.contains(node).then_some((endpoint.vip, endpoint.fqdn.as_str()));
            let sans = ServingCertSans::of(t.name(node), t.node(node).address, vip);
            if initial.cert_present.contains(node) {
                ca.issue(&sans, &kube.join("pki/apiserver.crt"), &kube.join("pki/apiserver.key"))?;
            }
            host::write_file(
                &kube.join(APISERVER_MANIFEST),
                &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver-{}\n", t.name(node)),
            )?;
        }
    }
    write_shims(&hosts.shims(), &root)?;
    hosts.start()?;
    let etcd = if slice_touches_etcd(&sliced) { Some(SliceEtcd::start(t, &hosts, &initial)?) } else { None };
    let client = VerifyingClient::new(ca.cert_der())?;
    let mut kubelet = KubeletStandIn { apiservers: BTreeMap::new(), joining: up.clone(), actions: Vec::new() };
    for &node in &masters {
        kubelet.start(t, &hosts, node)?;
    }
    let guard = Guard { loopback_only: true };
    let control_dir = root.join("state/ssh");
    let remote = OpensshTransport::new(SshOptions { config: Some(hosts.ssh_config()), control_dir: control_dir.clone() }, guard)
        .map_err(|e| exec_error("start the SSH transport", e))?;
    let mut transport = LabTransport { remote, local: LocalTransport { guard }, shims: hosts.shims() };
    let mut journal = Journal::open(&root.join("state")).map_err(|e| exec_error("open the journal", e))?;
    let mut operator = LabOperator { t, hosts: &hosts, kubelet: &mut kubelet, last_host: None };
    let options = RunOptions {
        resume: false,
        observe: true,
        command_timeout: Duration::from_secs(COMMAND_TIMEOUT_S),
        check_passed: true,
        override_check: None,
        // The etcd observer stays off: with two members its `endpoint health` names both client
        // URLs comma-joined, which the loopback guard reads as one URL and refuses. The rows
        // after the run read `etcdctl member list` instead.
        probes: Probes { etcd: None, lb: None, kube: None, guard },
    };
    let started = Instant::now();
    let mut runner = Runner::new(t, &sliced, &mut transport, &mut journal, &mut operator, options);
    // The runner's twin starts where the whole plan stands before the slice, as the lab does.
    runner.prediction = prediction.clone();
    let outcome = runner.run();
    let run_ms = started.elapsed().as_millis() as u64;
    drop(transport);
    hosts.close_masters(&control_dir);
    let outcome = outcome.map_err(|e| exec_error("run the slice", e))?;
    let final_twin = prediction.states.last().copied().unwrap_or(initial);
    let mut rows = step_rows(&sliced, &prediction, &outcome);
    // The nodes joined and the masters when the slice starts or ends (a join adds some).
    let joined: Vec<NodeIx> = up.iter().copied().filter(|&n| initial.joined.or(final_twin.joined).contains(n)).collect();
    let masters: Vec<NodeIx> = up.iter().copied().filter(|&n| initial.control_plane.or(final_twin.control_plane).contains(n)).collect();
    rows.extend(file_rows(t, &hosts, &joined, &masters, &final_twin, &root)?);
    rows.extend(served_rows(t, &kubelet, &client, &masters, &final_twin)?);
    if let Some(etcd) = &etcd {
        rows.extend(etcd.rows(t, &final_twin)?);
    }
    // A command the twin refuses halts the twin's executor there, as a failed command halts the real one.
    let twin_outcome =
        if prediction.refusals.is_empty() { "completed".to_string() } else { format!("halted at {}", prediction.refusals[0].0) };
    let executor_outcome = match &outcome {
        Outcome::Completed => "completed".to_string(),
        Outcome::Declined { phase } => format!("declined phase {phase}"),
        Outcome::Halted(halt) => format!("halted at {}", halt.step),
    };
    rows.push(FidelityRow {
        step: "end".to_string(),
        observation: "outcome".to_string(),
        twin: twin_outcome.clone(),
        lab: executor_outcome.clone(),
        evidence: Evidence::Real,
        agree: twin_outcome == executor_outcome,
    });
    let mut lab_actions = join_notes(t, &hosts, &up);
    lab_actions.append(&mut kubelet.actions);
    drop(kubelet);
    drop(etcd);
    hosts.stop();
    Ok(ExecutorRehearsal {
        scenario: t.scenario.name.clone(),
        steps: sliced.steps.iter().map(|s| s.id.clone()).collect(),
        rows,
        twin_outcome,
        executor_outcome,
        lab_actions,
        run_ms,
    })
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

fn kubelet_conf(server: Ipv4Addr, port: u16) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: TEFCLUNB\n    server: https://{server}:{port}\n  name: kubernetes\nkind: Config\n"
    )
}

/// The lab's kubeadm-config ConfigMap: a ClusterConfiguration, with the VIP endpoint and SANs when
/// the twin's state has them.
fn write_kubeadm_config(path: &Path, t: &Topology, on_vip: bool) -> Result<(), LabError> {
    host::write_file(path, &cluster_configuration(t, on_vip))
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

/// The shims on every host's PATH (and the workstation's, through [`LabTransport`]).
fn write_shims(shims: &Path, root: &Path) -> Result<(), LabError> {
    let root = root.display();
    host::write_executable(&shims.join("sudo"), "#!/bin/sh\nexec \"$@\"\n")?;
    host::write_executable(&shims.join("sleep"), "#!/bin/sh\n# Model time is not waited out on the lab.\nexit 0\n")?;
    host::write_executable(&shims.join("systemctl"), "#!/bin/sh\necho \"$*\" >> \"$PLAN_FIXTURE_HOST_DIR/systemctl.log\"\n")?;
    host::write_executable(
        &shims.join("kubectl"),
        &format!(
            "#!/bin/sh\n# kubectl on the lab: the kubeadm-config ConfigMap is the lab's file; waits answer at once (no kubelets).\necho \"$*\" >> {root}/kubectl.log\ncase \"$*\" in\n  *\"get cm kubeadm-config\"*) cat {root}/kubeadm-config.yaml ;;\nesac\nexit 0\n"
        ),
    )?;
    host::write_executable(
        &shims.join("kubeadm"),
        &format!(
            r#"#!/bin/sh
# kubeadm on a lab host: the equivalent real action of each subcommand the plan runs.
# A join's arguments hold the token and the certificate key: not logged.
case "$1" in join) echo "join" ;; *) echo "$*" ;; esac >> "$PLAN_FIXTURE_HOST_DIR/kubeadm.log"
config=""
prev=""
for arg in "$@"; do [ "$prev" = --config ] && config="$arg"; prev="$arg"; done
if [ -n "$config" ] && [ ! -r "$config" ]; then
  echo "unable to read config from \"$config\"" >&2; exit 1
fi
case "$*" in
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
    echo '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
    echo '[upload-certs] Using certificate key:'
    echo "$key" ;;
  "token create"*)
    endpoint=$(sed -n 's/^controlPlaneEndpoint: //p' {root}/kubeadm-config.yaml)
    [ -n "$endpoint" ] || endpoint="$PLAN_FIXTURE_HOST_ADDRESS:6443"
    token="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n').$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    echo "$token" >> {root}/kubeadm-tokens
    hash=$(openssl x509 -in {root}/ca.crt -noout -pubkey | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
    echo "kubeadm join $endpoint --token $token --discovery-token-ca-cert-hash sha256:$hash" ;;
  "join "*) exec {root}/kubeadm-join-control-plane "$@" ;;
  *) echo "kubeadm (lab shim): not rehearsed: $*" >&2; exit 64 ;;
esac
"#
        ),
    )
}

/// The executor's transport on the lab: hosts over SSH, the workstation's commands with the shims
/// first on PATH.
struct LabTransport {
    remote: OpensshTransport,
    local: LocalTransport,
    shims: PathBuf,
}

impl Transport for LabTransport {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        match place {
            Place::Local { dir } => {
                let shell = format!("export PATH={}:\"$PATH\"; {}", quote(&self.shims.display().to_string()), request.shell);
                self.local.run_local(dir.as_deref(), &Request { shell: &shell, ..*request })
            }
            Place::Host(_) => self.remote.run(place, request),
        }
    }

    fn read_file(&mut self, host: &HostTarget, path: &str) -> Result<FileRead, ExecError> {
        self.remote.read_file(host, path)
    }
}

/// The kubelets of the masters, as far as the slice needs them: each master's apiserver stand-in,
/// restarted when its static pod manifest was moved away and back.
struct KubeletStandIn {
    /// Per master: the running stand-in and the manifest's inode ctime when it started.
    apiservers: BTreeMap<NodeIx, (ApiserverStandIn, Option<i64>)>,
    /// The hosts where a join may write a manifest: their stand-in starts when one appears.
    joining: Vec<NodeIx>,
    actions: Vec<String>,
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

impl KubeletStandIn {
    /// Starts `node`'s apiserver stand-in on a free port of its address, reading the cert on disk.
    fn start(&mut self, t: &Topology, hosts: &FixtureHosts, node: NodeIx) -> Result<(), LabError> {
        let name = t.name(node);
        let address = t.node(node).address;
        let port = TcpListener::bind(SocketAddrV4::new(address, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| LabError::io(format!("a free port on {address}"), e))?
            .port();
        let kube = hosts.etc_kubernetes(name);
        let (crt, key) = (kube.join("pki/apiserver.crt"), kube.join("pki/apiserver.key"));
        let standin = ApiserverStandIn::start(name, SocketAddr::from((address, port)), &crt, &key, sans_on_disk(&crt), NO_ETCD)?;
        self.apiservers.insert(node, (standin, manifest_ctime(&kube.join(APISERVER_MANIFEST))));
        Ok(())
    }

    /// After each command: a master whose manifest changed (moved away and back) gets its stand-in
    /// restarted, as the kubelet restarts the static pod.
    fn sync(&mut self, t: &Topology, hosts: &FixtureHosts) -> Result<(), LabError> {
        let changed: Vec<NodeIx> = self
            .apiservers
            .iter()
            .filter(|(&node, (_, ctime))| {
                let now = manifest_ctime(&hosts.etc_kubernetes(t.name(node)).join(APISERVER_MANIFEST));
                now.is_some() && now != *ctime
            })
            .map(|(&node, _)| node)
            .collect();
        for node in changed {
            if let Some((standin, _)) = self.apiservers.remove(&node) {
                standin.stop();
            }
            self.start(t, hosts, node)?;
            self.actions.push(format!(
                "kubelet on {}: kube-apiserver.yaml moved back, apiserver stand-in restarted with the cert on disk",
                t.name(node)
            ));
        }
        let appeared: Vec<NodeIx> = self
            .joining
            .iter()
            .copied()
            .filter(|n| !self.apiservers.contains_key(n) && hosts.etc_kubernetes(t.name(*n)).join(APISERVER_MANIFEST).exists())
            .collect();
        for node in appeared {
            self.start(t, hosts, node)?;
            self.actions.push(format!(
                "kubelet on {}: kube-apiserver.yaml written, apiserver stand-in started with the cert on disk",
                t.name(node)
            ));
        }
        Ok(())
    }
}

/// The person at the lab's terminal: confirms every phase, makes the by-hand edits the lab knows,
/// and runs the kubelet stand-in after every command.
struct LabOperator<'a> {
    t: &'a Topology,
    hosts: &'a FixtureHosts,
    kubelet: &'a mut KubeletStandIn,
    /// The host of the last shell command: where a by-hand edit of a host's file is made.
    last_host: Option<String>,
}

impl Operator for LabOperator<'_> {
    fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
        true
    }

    fn confirm_recovery(&mut self, _recovery: &Recovery) -> bool {
        // The slice reports a halt; it does not roll back.
        false
    }

    fn by_hand(&mut self, step: &Step, instruction: &str) -> bool {
        let edit = format!("edit /tmp/{KUBEADM_NEW}");
        let Some(host) = self.last_host.clone().filter(|_| instruction.starts_with(&edit)) else {
            self.kubelet.actions.push(format!("{}: by hand, not rehearsed: {instruction}", step.id));
            return false;
        };
        let path = self.hosts.host_dir(&host).join("tmp").join(KUBEADM_NEW);
        match host::write_file(&path, &cluster_configuration(self.t, true)) {
            Ok(()) => {
                self.kubelet
                    .actions
                    .push(format!("{}: by hand on {host}: /tmp/{KUBEADM_NEW} gets controlPlaneEndpoint and certSANs", step.id));
                true
            }
            Err(e) => {
                self.kubelet.actions.push(format!("{}: by hand on {host} failed: {e}", step.id));
                false
            }
        }
    }

    fn starting(&mut self, _step: &Step, _index: usize, invocation: &Invocation, _eta_s: u32) {
        if let Work::Shell { place: Place::Host(host), .. } = &invocation.work {
            self.last_host = Some(host.name.clone());
        }
    }

    fn finished(&mut self, step: &Step, _invocation: &Invocation, _done: &Result<Completed, String>) {
        if let Err(e) = self.kubelet.sync(self.t, self.hosts) {
            self.kubelet.actions.push(format!("{}: kubelet stand-in failed: {e}", step.id));
        }
    }
}

/// Per step: the twin applies it, the executor ran it (observed, compared, done) or halted.
fn step_rows(plan: &Plan, prediction: &Prediction, outcome: &Outcome) -> Vec<FidelityRow> {
    let halted = match outcome {
        Outcome::Halted(halt) => Some((halt.step.clone(), halt.reason.clone())),
        _ => None,
    };
    let halted_at = halted.as_ref().and_then(|(id, _)| plan.steps.iter().position(|s| &s.id == id));
    // The twin's executor halts at its first refused command, as the real one does at a failed
    // command: they agree when both run, halt at or skip the same step; the reasons are shown.
    let twin_halt = prediction.refusals.first().and_then(|(id, reason)| plan.steps.iter().position(|s| &s.id == id).map(|i| (i, reason)));
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let (twin_status, twin) = match twin_halt {
                Some((at, reason)) if at == i => ("halted", format!("halted: {reason}")),
                Some((at, _)) if at < i => ("not run", "not run".to_string()),
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
    Ok(rows)
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
        let server = "https://127.0.20.100:6443";
        let sliced = slice(&plan, &["4.3".to_string(), "0.2".to_string()], server).expect("both exist");
        assert_eq!(sliced.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["0.2", "4.3"]);
        assert_eq!(sliced.phases.len(), 2);
        assert!(sliced.steps[0].commands[0].run.starts_with("kubectl --server=https://127.0.20.100:6443 -n kube-system get cm"));
        assert!(matches!(slice(&plan, &["9.9".to_string()], server), Err(LabError::NotRehearsable { .. })));
    }

    #[test]
    fn the_shims_configuration_has_the_vip_sans_only_when_asked() {
        let t = homelab();
        assert!(!cluster_configuration(&t, false).contains("certSANs"));
        let on = cluster_configuration(&t, true);
        assert!(on.contains("controlPlaneEndpoint: 10.0.20.99:6443") && on.contains("  - 10.0.20.99\n"), "{on}");
    }

    #[test]
    fn a_homelab_off_loopback_is_refused_before_anything_starts() {
        if host::usable().is_err() {
            return;
        }
        let t = homelab();
        let plan = plan_model::planner::generate(&t);
        match rehearse_through_executor(&t, &plan, &["4.3".to_string()]) {
            Err(LabError::NotRehearsable { why, .. }) => assert!(why.contains("loopback"), "{why}"),
            other => panic!("refused: {:?}", other.map(|r| r.executor_outcome)),
        }
    }
}
