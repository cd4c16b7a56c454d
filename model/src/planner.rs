//! Generates the migration plan from a topology: the source plan's phases, templated.
//!
//! The homelab scenario yields the operator's plan step for step (0 to 8 with its numbering).
//! Where the source plan is wrong in a way the twin proves, the step carries a `note` saying what
//! changed and why; the rest is the operator's own plan.

use crate::action::Check;
use crate::operation::{IacStack, Operation};
use crate::plan::{Dependency, Phase, Plan, RunsOn, Step, PLAN_FORMAT};
use crate::topology::{NodeIx, Topology};

mod closing;
mod kubelets;
mod load_balancer;
mod masters;
mod rollbacks;
use kubelets::{master_kubelet_step, new_masters_kubelet_step};
use load_balancer::load_balancer;
use masters::add_master;
use rollbacks::rollbacks;

/// The phase id of the `k`-th new master (0-based): `2`, `3`, then `3b`, `3c`, ...
pub fn master_phase(k: usize) -> String {
    match k {
        0 => "2".to_string(),
        1 => "3".to_string(),
        _ => format!("3{}", (b'a' + (k - 1) as u8) as char),
    }
}

struct Builder<'a> {
    t: &'a Topology,
    phases: Vec<Phase>,
    steps: Vec<Step>,
}

/// One step as the builder takes it.
struct StepSpec<'s> {
    id: String,
    title: String,
    runs_on: RunsOn,
    operations: Vec<Operation>,
    checks: Vec<String>,
    rollback: Vec<String>,
    after: Vec<(String, &'s str)>,
    /// Operator time beyond the actions' own (editing files, waiting).
    extra_s: u32,
    disruption: Option<String>,
    note: Option<String>,
}

/// A verification: the checks it confirms and the read-only commands that confirm them.
fn verify<const C: usize, const R: usize>(t: &Topology, checks: [Check; C], run: [String; R]) -> Operation {
    Operation::Verify { checks: checks.iter().map(|c| c.key(t)).collect(), run: run.to_vec(), at: None }
}

/// Whether a consumer names the first master by a stale DNS record: the record's deletion then
/// waits for the consumers' move to the VIP (4.1).
fn consumers_on_stale_records(t: &Topology) -> bool {
    t.consumers.iter().any(|c| c.stale_record.is_some())
}

/// A verification whose commands run on the machine `on`, wherever the step runs.
fn verify_on<const C: usize, const R: usize>(t: &Topology, on: &str, checks: [Check; C], run: [String; R]) -> Operation {
    Operation::Verify { checks: checks.iter().map(|c| c.key(t)).collect(), run: run.to_vec(), at: Some(on.to_string()) }
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl<'a> Builder<'a> {
    fn phase(&mut self, id: &str, title: String) {
        self.phases.push(Phase { id: id.to_string(), title });
    }

    fn add(&mut self, spec: StepSpec<'_>) {
        let phase = self.phases.last().map(|p| p.id.clone()).unwrap_or_default();
        let mut step = Step {
            id: spec.id,
            phase,
            title: spec.title,
            runs_on: spec.runs_on,
            operations: spec.operations,
            commands: Vec::new(),
            checks: spec.checks,
            rollback: spec.rollback,
            actions: Vec::new(),
            effects: Vec::new(),
            after: spec.after.into_iter().map(|(step, why)| Dependency { step, why: why.to_string() }).collect(),
            duration_s: 0,
            extra_s: spec.extra_s,
            disruption: spec.disruption,
            note: spec.note,
        };
        if let Err(e) = step.derive(self.t) {
            unreachable!("the planner's own operations fit the topology: step {}: {e}", step.id);
        }
        self.steps.push(step);
    }

    fn node(&self, ix: NodeIx) -> RunsOn {
        RunsOn::Node(self.t.name(ix).to_string())
    }
}

impl<'s> StepSpec<'s> {
    fn new(id: impl Into<String>, title: impl Into<String>, runs_on: RunsOn) -> Self {
        StepSpec {
            id: id.into(),
            title: title.into(),
            runs_on,
            operations: Vec::new(),
            checks: Vec::new(),
            rollback: Vec::new(),
            after: Vec::new(),
            extra_s: 0,
            disruption: None,
            note: None,
        }
    }
    fn ops(mut self, operations: Vec<Operation>) -> Self {
        self.operations = operations;
        self
    }
    fn checks(mut self, checks: Vec<String>) -> Self {
        self.checks = checks;
        self
    }
    fn rollback(mut self, rollback: Vec<String>) -> Self {
        self.rollback = rollback;
        self
    }
    fn after(mut self, step: impl Into<String>, why: &'s str) -> Self {
        self.after.push((step.into(), why));
        self
    }
    fn extra(mut self, seconds: u32) -> Self {
        self.extra_s = seconds;
        self
    }
    fn disruption(mut self, what: impl Into<String>) -> Self {
        self.disruption = Some(what.into());
        self
    }
    fn note(mut self, what: impl Into<String>) -> Self {
        self.note = Some(what.into());
        self
    }
}

const WHY_PREFLIGHT: &str = "nothing changes before the pre-flight has passed and the VM snapshot exists";
const WHY_CONFIG_BEFORE_CERT: &str = "kubeadm generates the cert from kubeadm-config: the SANs must be there first";
const WHY_CERT_BEFORE_RESTART: &str = "the restart loads the new cert";
const WHY_VIP_TLS: &str = "clients may only use the VIP once the served certificate carries the VIP SAN";
const WHY_LB_FIRST: &str = "the VIP must serve before anything uses it";
const WHY_ENDPOINT: &str = "kubeadm join --control-plane needs controlPlaneEndpoint in kubeadm-config";
const WHY_TEMPLATE: &str = "a master VM must come from a template with the cluster's kubeadm and no worker join";
const WHY_STACK: &str = "the config stack must loop over a list before it can reach a second master";
const WHY_SMOKE_BEFORE_POOL: &str = "a master joins the LB pool only after its smoke test";
const WHY_ONE_JOIN: &str = "etcd takes one learner at a time: joins run one after another";
/// Seconds between two looks at the served certificate while kube-apiserver reloads it (0.4).
const CERT_WATCH_INTERVAL_S: u32 = 5;
const WHY_JOINED: &str = "the step needs the master joined";
const WHY_SEQUENCE: &str = "the phase's order";
const WHY_ALL_MASTERS: &str = "needs every master in place";
const WHY_CUTOVER: &str = "needs every client and kubelet on the VIP";

/// Generates the plan for `t`.
///
/// ```
/// use plan_model::{planner, topology::Topology, validate::parse_scenario};
/// let t = Topology::new(&parse_scenario(include_str!("../../scenarios/homelab.yaml")).unwrap());
/// let plan = planner::generate(&t);
/// assert!(plan.step("2.5").is_some());
/// assert!(plan.check_order().is_ok());
/// ```
pub fn generate(t: &Topology) -> Plan {
    let mut b = Builder { t, phases: Vec::new(), steps: Vec::new() };
    let new_masters: Vec<NodeIx> = t.new_masters().collect();
    retrofit(&mut b);
    load_balancer(&mut b);
    config_stack(&mut b);
    for k in 0..new_masters.len() {
        add_master(&mut b, k, &new_masters);
    }
    let last = master_phase(new_masters.len().saturating_sub(1));
    cutover(&mut b, &new_masters);
    after_cutover(&mut b, &last);
    validation(&mut b, &new_masters);
    closing::upgrade_chain_and_close(&mut b, &last);
    let s = &t.scenario;
    Plan { plan_format: PLAN_FORMAT, scenario: s.name.clone(), phases: b.phases, steps: b.steps, rollbacks: rollbacks(t), only_phase: None }
}

/// The names and addresses the phases use.
struct Names<'t> {
    t: &'t Topology,
    m0: NodeIx,
    m0_name: String,
    vip: std::net::Ipv4Addr,
    port: u16,
    quorum: u32,
}

impl<'t> Names<'t> {
    fn new(t: &'t Topology) -> Self {
        let m0 = t.existing_master();
        let e = &t.scenario.control_plane_endpoint;
        Names { t, m0, m0_name: t.name(m0).to_string(), vip: e.vip, port: e.port, quorum: t.target_masters().len() / 2 + 1 }
    }
    fn vip_server(&self) -> String {
        self.t.scenario.control_plane_endpoint.vip_url()
    }
    fn names(&self, nodes: &[NodeIx]) -> Vec<String> {
        nodes.iter().map(|n| self.t.name(*n).to_string()).collect()
    }
}

fn retrofit(b: &mut Builder<'_>) {
    let t = b.t;
    let s = &t.scenario;
    let n = Names::new(t);
    let api_port = t.apiserver_port();
    let (m0, vip) = (n.m0, n.vip);
    let m0_addr = t.node(m0).address;
    b.phase("0", "Retrofit existing cluster: controlPlaneEndpoint and cert SANs".to_string());
    let new_ips: Vec<String> = std::iter::once(vip).chain(t.new_masters().map(|x| t.node(x).address)).map(|a| a.to_string()).collect();
    b.add(
        StepSpec::new("0.1", "Pre-flight", RunsOn::Workstation)
            .ops(vec![
                verify(
                    t,
                    [Check::ClusterHealthy],
                    [
                        "kubectl get nodes".to_string(),
                        "kubectl get pods -A --field-selector=status.phase!=Running,status.phase!=Succeeded".to_string(),
                    ],
                ),
                verify(t, [Check::BackupFresh], [format!("ls -lh {}/ | tail -5", s.etcd_backup.path)]),
                Operation::VmSnapshot { node: n.m0_name.clone(), name: "pre-ha-retrofit".to_string() },
                verify(
                    t,
                    [Check::AddressesFree],
                    [format!("for ip in {}; do ping -c1 -W1 $ip && echo \"BUSY $ip\" || echo \"free $ip\"; done", new_ips.join(" "))],
                ),
            ])
            .checks(strings([
                "all nodes Ready, no pod outside Running/Succeeded",
                "newest etcd snapshot valid",
                "VIP and new master addresses free",
            ])),
    );
    b.add(
        StepSpec::new("0.2", "Patch kubeadm-config via kubeadm (not kubectl apply)", b.node(m0))
            .ops(vec![
                Operation::BackupKubeadmConfig { to: "/tmp/kubeadm-config.backup.yaml".to_string() },
                Operation::PrepareKubeadmConfig { file: "/tmp/kubeadm-new.yaml".to_string() },
                Operation::UploadKubeadmConfig { file: "/tmp/kubeadm-new.yaml".to_string() },
                verify(t, [Check::KubeadmEndpoint], []),
            ])
            .checks(strings(["kubectl -n kube-system get cm kubeadm-config -o yaml | grep -E 'controlPlaneEndpoint|certSANs'"]))
            .rollback(strings(["sudo kubeadm init phase upload-config kubeadm --config /tmp/kubeadm-config.backup.yaml"]))
            .after("0.1", WHY_PREFLIGHT)
            .note("added the kubeadm-config backup: the rollback restores kubeadm-config from it"),
    );
    b.add(
        StepSpec::new("0.3", "Regenerate the apiserver cert", b.node(m0))
            .ops(vec![
                Operation::MoveCertAside { node: n.m0_name.clone(), to: "/tmp/apiserver-backup".to_string() },
                Operation::GenerateCert { node: n.m0_name.clone(), config: "/tmp/kubeadm-new.yaml".to_string() },
                verify(t, [Check::CertHasVip(m0)], []),
            ])
            .checks(vec![format!("sudo openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -text | grep -A2 'Subject Alternative' (expect IP Address:{vip} plus the existing SANs)")])
            .rollback(strings(["sudo cp /tmp/apiserver-backup/apiserver.crt /tmp/apiserver-backup/apiserver.key /etc/kubernetes/pki/"]))
            .after("0.2", WHY_CONFIG_BEFORE_CERT),
    );
    let reload_tries = crate::facts::APISERVER_CERT_RELOAD_S * 3 / 2 / CERT_WATCH_INTERVAL_S;
    b.add(
        StepSpec::new("0.4", "Wait for kube-apiserver to serve the new cert (it reloads it; no restart)", b.node(m0))
            .ops(vec![verify(t, [Check::ServedCertHasVip(m0), Check::ApiserverReady(m0)], [format!(
                "for i in $(seq {reload_tries}); do echo | openssl s_client -connect {m0_addr}:{api_port} 2>/dev/null | openssl x509 -noout -ext subjectAltName | grep -q 'IP Address:{vip}' && exit 0; sleep {CERT_WATCH_INTERVAL_S}; done; exit 1"
            )])])
            .checks(strings(["the served certificate carries the VIP; kubectl get nodes answers on the direct address"]))
            .rollback(strings(["0.5: restore the cert backup (served again within a minute), revert kubeadm-config"]))
            .after("0.3", WHY_CERT_BEFORE_RESTART)
            .extra(crate::facts::APISERVER_CERT_RELOAD_S)
            .note("no restart (deleting the mirror pod would restart nothing, and a restart costs ~30 s of outage): kube-apiserver reloads its serving cert from disk within a minute (dynamiccertificates), so the step waits for the new cert to be served"),
    );
    // The declared operators' pods; without any, every pod that is not Running.
    let mut pods: Vec<String> = t
        .scenario
        .operators
        .iter()
        .map(|o| {
            format!("kubectl get pods -n {}{} -o wide", o.namespace, o.selector.as_ref().map(|l| format!(" -l {l}")).unwrap_or_default())
        })
        .collect();
    if pods.is_empty() {
        pods.push("kubectl get pods -A --field-selector=status.phase!=Running,status.phase!=Succeeded".to_string());
    }
    b.add(
        StepSpec::new("0.6", "Verify operators recovered from the brief outage", RunsOn::Workstation)
            .ops(vec![Operation::Verify { checks: vec![Check::ClusterHealthy.key(t)], run: pods, at: None }])
            .checks(strings(["Running, restart count incremented by 1 at most"]))
            .after("0.4", WHY_SEQUENCE),
    );
}

fn first_flag(t: &Topology) -> String {
    t.scenario.apiserver_flags().first().cloned().unwrap_or_else(|| "oidc-issuer-url".to_string())
}

/// Phase 1.5, where a config stack sets the apiserver flags on a single host.
fn config_stack(b: &mut Builder<'_>) {
    let t = b.t;
    let n = Names::new(t);
    let Some(stack) = &t.scenario.config_stack else { return };
    b.phase("1.5", format!("Refactor the {} stack for multi-master", stack.name));
    b.add(
        StepSpec::new("1.5.1", "Refactor the stack to loop over a list of masters", RunsOn::InfraRepo)
            .ops(vec![Operation::ConfigStackToList])
            .after("0.1", WHY_PREFLIGHT),
    );
    b.add(
        StepSpec::new("1.5.2", format!("Apply the {} stack (expect zero diff)", stack.name), RunsOn::InfraRepo)
            .ops(vec![Operation::IacApply(IacStack::ConfigStack)])
            .checks(strings(["zero diff against today"]))
            .after("1.5.1", WHY_SEQUENCE),
    );
    let grep = format!("sudo grep {} /etc/kubernetes/manifests/kube-apiserver.yaml | wc -l", first_flag(t));
    b.add(
        StepSpec::new("1.5.3", "Verify the flags are unchanged", b.node(n.m0))
            .ops(vec![verify_on(t, &n.m0_name, [Check::FlagsOn(n.m0), Check::ClusterHealthy], [grep])])
            .checks(strings(["expect 1; cluster healthy"]))
            .after("1.5.2", WHY_SEQUENCE),
    );
}

/// Phase 4: the clients and kubelets moved to the VIP, the join secrets cleared away,
/// kube-proxy pointed at the VIP.
fn cutover(b: &mut Builder<'_>, new_masters: &[NodeIx]) {
    let t = b.t;
    let n = Names::new(t);
    let workers: Vec<NodeIx> = t.workers().collect();
    b.phase("4", "Cut over clients and workers to the VIP".to_string());
    consumer_steps(b);
    b.add(
        StepSpec::new("4.2", "Flip worker kubelet.conf, one at a time", RunsOn::Workstation)
            .ops(vec![Operation::KubeletServer { nodes: n.names(&workers), server: n.vip_server(), wait_ready: true }])
            .rollback(strings(["reverse the sed (VIP -> direct address) and restart kubelet"]))
            .extra(15 * workers.len() as u32)
            .after("1.4", WHY_LB_FIRST)
            .after("0.4", WHY_VIP_TLS)
            .disruption(format!("5-10 s NotReady per node ({} nodes)", workers.len())),
    );
    b.add(master_kubelet_step(t, n.m0));
    b.add(new_masters_kubelet_step(t, new_masters));
    b.add(verify_everything_step(t, &n));
    b.add(forget_join_secrets_step(t, &n, new_masters));
    b.add(kube_proxy_step(t, &n));
}

/// 4.1: the consumers in the infra repo moved to the VIP in one commit; 4.1.1, where a consumer
/// named the master by a stale DNS record, the record deleted after.
fn consumer_steps(b: &mut Builder<'_>) {
    let t = b.t;
    let s = &t.scenario;
    let n = Names::new(t);
    // A portal that hands out kubeconfigs is redeployed with them, where the scenario has one.
    let portal = s.consumers.iter().any(|c| c.kind == crate::scenario::ConsumerKind::UserPortal);
    let consumer_ops = [
        Some(Operation::KubeconfigConsumers { consumers: s.consumers.iter().map(|c| c.name.clone()).collect(), server: n.vip_server() }),
        s.config_stack.as_ref().map(|_| Operation::ConfigStackServer { address: n.vip.to_string() }),
        Some(Operation::NoLeftoverAddress),
        s.config_stack.as_ref().map(|_| Operation::IacApply(IacStack::ConfigStack)),
        portal.then_some(Operation::IacApply(IacStack::Portal)),
        // A commit only where an edit above changed a file (an empty one fails).
        (!s.consumers.is_empty() || s.config_stack.is_some())
            .then(|| Operation::GitCommit { message: "control plane: clients to the VIP".to_string() }),
    ];
    let consumer_ops = consumer_ops.into_iter().flatten().collect();
    b.add(
        StepSpec::new("4.1", "Update in-repo kubeconfig consumers (single commit)", RunsOn::InfraRepo)
            .ops(consumer_ops)
            .rollback(strings(["revert the commit (single revert commit)"]))
            .after("0.3", WHY_VIP_TLS)
            .after("0.4", WHY_VIP_TLS)
            .after("1.4", WHY_LB_FIRST),
    );
    if consumers_on_stale_records(t) {
        let why = "no consumer names the master by the stale record once 4.1 moved them to the VIP";
        b.add(
            StepSpec::new("4.1.1", "Delete the stale DNS records", RunsOn::InfraRepo)
                .ops(vec![Operation::DeclareDnsRecords { vip: false, delete_stale: true }, Operation::IacApply(IacStack::Dns)])
                .after("4.1", why)
                .note("deferred from 1.1: a consumer names the first master by a stale record, and deleting it earlier leaves that consumer without an API until 4.1"),
        );
    }
}

/// 4.5: every node Ready, every client and kubelet on the VIP (or, in local mode, each
/// master's kubelet on its own apiserver).
fn verify_everything_step(t: &Topology, n: &Names<'_>) -> StepSpec<'static> {
    // Every node's kubelet.conf server, read on the node.
    let kubelet_servers =
        t.nodes.iter().map(|node| verify_on(t, &node.name, [], ["sudo grep server: /etc/kubernetes/kubelet.conf".to_string()]));
    let verify_all = std::iter::once(verify(
        t,
        [Check::ClusterHealthy, Check::ConsumersOnVip, Check::KubeletsHighlyAvailable],
        ["kubectl get nodes".to_string(), "kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'".to_string()],
    ))
    .chain(kubelet_servers)
    .chain(
        t.scenario
            .consumers
            .iter()
            .any(|c| c.kind == crate::scenario::ConsumerKind::CiPipeline)
            .then(|| Operation::ByHand { instruction: "trigger a no-op CI pipeline through the VIP".to_string() }),
    );
    StepSpec::new("4.5", "Verify everything", RunsOn::Workstation)
        .ops(verify_all.collect())
        .checks(vec![if t.kubelet_local_mode {
            format!(
                "all {} nodes Ready; clients and workers on https://{}:{}, each master's kubelet on its own apiserver (4.3, 4.4)",
                t.nodes.len(),
                n.vip,
                n.port
            )
        } else {
            format!("all {} nodes Ready, every server https://{}:{}", t.nodes.len(), n.vip, n.port)
        }])
        .after("4.1", WHY_SEQUENCE)
        .after("4.4", WHY_SEQUENCE)
}

/// 4.6: the join tokens revoked and the join secrets deleted from the masters, once every
/// master has joined.
fn forget_join_secrets_step(t: &Topology, n: &Names<'_>, new_masters: &[NodeIx]) -> StepSpec<'static> {
    // The join command (a 24 h token) and the certificate key stay readable on the masters
    // after the joins unless someone deletes them; the source plan never does.
    let every_master: Vec<NodeIx> = std::iter::once(n.m0).chain(new_masters.iter().copied()).collect();
    let mut forget = StepSpec::new("4.6", "Revoke the join tokens and delete the join secrets from the masters", RunsOn::Workstation)
        .ops(vec![Operation::ForgetJoinSecrets { nodes: n.names(&every_master) }, verify(t, [Check::NoJoinSecrets], [])])
        .checks(strings([
            "no master holds /root/.plan-join-command or /root/.plan-certificate-key; kubeadm token list shows no plan-control-plane-join token",
        ]))
        .note("added: once every master has joined, the join tokens (valid 24 h) are revoked and the join command and certificate key written for the joins are deleted")
        .after("4.5", WHY_SEQUENCE);
    for k in 0..new_masters.len() {
        forget = forget.after(format!("{}.5", master_phase(k)), WHY_ALL_MASTERS);
    }
    forget
}

/// 4.7: kube-proxy's kubeconfig pointed at the VIP.
fn kube_proxy_step(t: &Topology, n: &Names<'_>) -> StepSpec<'static> {
    let m0_addr = t.node(n.m0).address;
    StepSpec::new("4.7", "Point kube-proxy at the VIP", RunsOn::Workstation)
        .ops(vec![
            Operation::KubeProxyServer { server: n.vip_server() },
            verify(
                t,
                [Check::KubeProxyOnVip],
                ["kubectl -n kube-system get configmap kube-proxy -o jsonpath='{.data.kubeconfig\\.conf}' | grep server:".to_string()],
            ),
        ])
        .checks(vec![format!("server: https://{}:{}; every kube-proxy pod restarted", n.vip, n.port)])
        .after("4.5", WHY_CUTOVER)
        .note(format!("added: kubeadm rendered kube-proxy's kubeconfig once, at init, with {m0_addr}:{}; nothing changes it afterwards, so losing {} would stop Service updates on every node", t.apiserver_port(), n.m0_name))
        .extra(120)
}

fn after_cutover(b: &mut Builder<'_>, last: &str) {
    let t = b.t;
    let s = &t.scenario;
    // The etcd CronJobs the scenario declares: pinned ones move to any master, and the backup
    // is run once to see it land. Without any, the phase has nothing to do.
    if s.cronjobs.is_empty() {
        if let Some(gate) = &s.reboot_gate {
            closing::reboot_gate(b, gate, last);
        }
        return;
    }
    let pinned: Vec<String> = s.cronjobs.iter().filter(|j| j.pinned_to.is_some()).map(|j| j.name.clone()).collect();
    let names = s.cronjobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>().join(", ");
    b.phase("4.5", format!("etcd CronJobs on any master ({names})"));
    if !pinned.is_empty() {
        b.add(
            StepSpec::new("4.5.1", "Replace the node pin with a control-plane selector", RunsOn::InfraRepo)
                .ops(vec![Operation::CronJobsOnControlPlane { jobs: pinned }])
                .after(format!("{last}.7"), WHY_ALL_MASTERS),
        );
        b.add(
            StepSpec::new("4.5.2", format!("Apply {}", crate::operation::cronjob_stack(t)), RunsOn::InfraRepo)
                .ops(vec![Operation::IacApply(IacStack::CronJobs)])
                .after("4.5.1", WHY_SEQUENCE),
        );
    }
    // A run of the declared backup CronJob, where the scenario declares one.
    let backup_job = s.cronjobs.iter().find(|j| j.backup).map(|j| Operation::RunJob {
        namespace: j.namespace.clone().unwrap_or_default(),
        cronjob: j.name.clone(),
        job: format!("{}-ha-check", j.name),
    });
    b.add(
        StepSpec::new("4.5.3", "Verify the backup runs", RunsOn::Workstation)
            .ops(backup_job.into_iter().chain([verify(t, [Check::BackupRunsAnywhere], [])]).collect())
            .checks(strings(["lands on a master, produces a valid snapshot"]))
            .after(if b.steps.iter().any(|x| x.id == "4.5.2") { "4.5.2".to_string() } else { format!("{last}.7") }, WHY_SEQUENCE),
    );
    if let Some(gate) = &s.reboot_gate {
        closing::reboot_gate(b, gate, last);
    }
}

fn validation(b: &mut Builder<'_>, new_masters: &[NodeIx]) {
    let t = b.t;
    let s = &t.scenario;
    let n = Names::new(t);
    b.phase("6", "End-to-end validation".to_string());
    // From the workstation: the watch cannot run on the master that reboots, and it ends on its
    // own (the source's `while true` never does, so an unattended run would hang there).
    let mut failover = StepSpec::new("6.1", format!("Failover test: reboot {}", n.m0_name), RunsOn::Workstation)
        .ops(vec![
            Operation::Drain { node: n.m0_name.clone() },
            Operation::Reboot { node: n.m0_name.clone() },
            Operation::Uncordon { node: n.m0_name.clone() },
            verify(t, [Check::BackendsUp], []),
        ])
        .note("the watch is bounded to the reboot and runs from the workstation: a 'while true' on the master that reboots never ends")
        .checks(vec![if s.load_balancer.kind.has_pool() {
            "the API answers through the VIP during the reboot; the backend re-registers (op_state=2)".to_string()
        } else {
            format!("the API answers through the VIP during the reboot, after kube-vip's ~{} s handover", s.load_balancer.failover_s())
        }])
        .after("4.5", WHY_CUTOVER)
        .disruption(format!("{} down 50-90 s; the VIP should hide it", n.m0_name));
    for k in 0..new_masters.len() {
        failover = failover.after(format!("{}.8", master_phase(k)), WHY_ALL_MASTERS);
    }
    b.add(failover);
    let masters = t.nodes.iter().filter(|x| x.kind != crate::topology::NodeKind::Worker).map(|x| x.name.as_str()).collect::<Vec<_>>();
    let grep = if s.apiserver_flags().is_empty() {
        // Every flag but the node's own addresses, to compare across masters.
        "sudo grep -E '^ *- --' /etc/kubernetes/manifests/kube-apiserver.yaml | grep -v -E 'advertise-address|etcd-servers' | sort"
            .to_string()
    } else {
        format!(
            "sudo grep -E \"{}\" /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/manifests/etcd.yaml | sort",
            s.apiserver_flags().join("|")
        )
    };
    // The first master's flags carry the check; every other master's are printed beside them.
    let per_master = masters.iter().enumerate().map(|(i, m)| {
        let checks: Vec<String> = if i == 0 { vec![Check::FlagParity.key(t)] } else { Vec::new() };
        Operation::Verify { checks, run: vec![grep.clone()], at: Some(m.to_string()) }
    });
    let mut parity = StepSpec::new("6.2", "All-masters apiserver flag parity", RunsOn::Workstation)
        .ops(per_master.collect())
        .checks(strings(["identical flag set on every master"]));
    for k in 0..new_masters.len() {
        let flagged = if s.config_stack.is_some() { 6 } else { 5 };
        parity = parity.after(format!("{}.{flagged}", master_phase(k)), WHY_ALL_MASTERS);
    }
    b.add(parity);
    let all_proxmox = new_masters
        .iter()
        .all(|m| t.scenario.hypervisors.get(t.node(*m).hypervisor).is_some_and(|h| h.kind == crate::scenario::HypervisorKind::Proxmox));
    let machines = new_masters
        .iter()
        .map(|m| {
            let node = t.node(*m);
            match t.scenario.hypervisors.get(node.hypervisor).map(|h| h.kind) {
                Some(crate::scenario::HypervisorKind::Proxmox) => node.vmid.unwrap_or_default().to_string(),
                _ => node.name.clone(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let lb_doc = if t.scenario.load_balancer.kind.has_pool() { "LB config" } else { "kube-vip" };
    b.add(
        StepSpec::new("6.3", "Update documentation", RunsOn::InfraRepo)
            .ops(vec![
                Operation::ByHand { instruction: format!("add docs/architecture/control-plane.md (HA topology, etcd members, {lb_doc})") },
                Operation::ByHand {
                    instruction: if all_proxmox {
                        format!("update the hypervisor inventory: VMIDs {machines}")
                    } else {
                        format!("update the machine inventory: {machines}")
                    },
                },
                Operation::ByHand {
                    instruction: "add docs/runbooks/control-plane-add-remove-master.md; update restore-etcd.md for a multi-member quorum"
                        .to_string(),
                },
            ])
            .after("6.1", WHY_SEQUENCE)
            .extra(1800),
    );
}

#[cfg(test)]
mod tests;
