//! Generates the migration plan from a topology: the source plan's phases, templated.
//!
//! The homelab scenario yields the operator's plan step for step (0 to 8 with its numbering).
//! Where the source plan is wrong in a way the twin proves, the step carries a `note` saying what
//! changed and why; the rest is the operator's own plan.

use crate::action::{Action, Check};
use crate::plan::{Command, Dependency, Phase, Plan, RunsOn, Step, PLAN_FORMAT};
use crate::topology::{NodeIx, Topology};

mod kubelets;
mod rollbacks;
use kubelets::{master_kubelet_step, new_masters_kubelet_step};
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
    commands: Vec<Command>,
    checks: Vec<String>,
    rollback: Vec<String>,
    actions: Vec<Action>,
    after: Vec<(String, &'s str)>,
    /// Operator time beyond the actions' own (editing files, waiting).
    extra_s: u32,
    disruption: Option<String>,
    note: Option<String>,
}

fn cmd(run: impl Into<String>) -> Command {
    Command { run: run.into(), secret: false }
}

fn secret(run: impl Into<String>) -> Command {
    Command { run: run.into(), secret: true }
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
        let duration_s = spec.actions.iter().map(|a| a.duration_s()).sum::<u32>() + spec.extra_s;
        self.steps.push(Step {
            id: spec.id,
            phase,
            title: spec.title,
            runs_on: spec.runs_on,
            commands: spec.commands,
            checks: spec.checks,
            rollback: spec.rollback,
            effects: spec.actions.iter().map(|a| a.describe(self.t)).collect(),
            actions: spec.actions,
            after: spec.after.into_iter().map(|(step, why)| Dependency { step, why: why.to_string() }).collect(),
            duration_s,
            disruption: spec.disruption,
            note: spec.note,
        });
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
            commands: Vec::new(),
            checks: Vec::new(),
            rollback: Vec::new(),
            actions: Vec::new(),
            after: Vec::new(),
            extra_s: 0,
            disruption: None,
            note: None,
        }
    }
    fn commands(mut self, commands: Vec<Command>) -> Self {
        self.commands = commands;
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
    fn actions(mut self, actions: Vec<Action>) -> Self {
        self.actions = actions;
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
/// Seconds between two looks at the API while a master reboots (6.1).
const REBOOT_WATCH_INTERVAL_S: u32 = 2;
/// Seconds between two looks at the served certificate while kube-apiserver reloads it (0.4).
const CERT_WATCH_INTERVAL_S: u32 = 5;
const WHY_JOINED: &str = "the step needs the master joined";
const WHY_SEQUENCE: &str = "the source plan's order within the phase";
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
    let s = &t.scenario;
    let mut b = Builder { t, phases: Vec::new(), steps: Vec::new() };
    let m0 = t.existing_master();
    let m0_name = t.name(m0).to_string();
    let m0_addr = t.node(m0).address;
    let vmid = t.node(m0).vmid.unwrap_or_default();
    let hyp = &s.hypervisors[t.node(m0).hypervisor];
    let vip = s.control_plane_endpoint.vip;
    let fqdn = &s.control_plane_endpoint.fqdn;
    let port = s.control_plane_endpoint.port;
    let lb = &s.load_balancer;
    let lb_ssh = format!("{}@{}", lb.ssh_user, lb.address);
    let user = &s.ssh_user;
    let repo = &s.infra_repo;
    let zone = &s.dns.zone;
    let stack = &s.config_stack;
    let masters_target = t.target_masters().len();
    let quorum = masters_target / 2 + 1;
    let new_masters: Vec<NodeIx> = t.new_masters().collect();
    let workers: Vec<NodeIx> = t.workers().collect();
    let ssh = |node: NodeIx, command: &str| format!("ssh {user}@{}.{zone} '{command}'", t.name(node));
    let first_flag = stack.apiserver_flags.first().cloned().unwrap_or_else(|| "oidc-issuer-url".to_string());
    let pool_list =
        |nodes: &[NodeIx]| nodes.iter().map(|n| format!("['{}', '{}']", t.name(*n), t.node(*n).address)).collect::<Vec<_>>().join(", ");

    // Phase 0 ------------------------------------------------------------------------------
    b.phase("0", "Retrofit existing cluster: controlPlaneEndpoint and cert SANs".to_string());
    let new_ips: Vec<String> = std::iter::once(vip).chain(new_masters.iter().map(|n| t.node(*n).address)).map(|a| a.to_string()).collect();
    b.add(
        StepSpec::new("0.1", "Pre-flight", RunsOn::Workstation)
            .commands(vec![
                cmd("kubectl get nodes"),
                cmd("kubectl get pods -A --field-selector=status.phase!=Running,status.phase!=Succeeded"),
                cmd(format!("ls -lh {}/ | tail -5", s.etcd_backup.path)),
                cmd(format!("ssh root@{} qm snapshot {vmid} pre-ha-retrofit", hyp.address)),
                cmd(format!("for ip in {}; do ping -c1 -W1 $ip && echo \"BUSY $ip\" || echo \"free $ip\"; done", new_ips.join(" "))),
            ])
            .checks(strings([
                "all nodes Ready, no pod outside Running/Succeeded",
                "newest etcd snapshot valid",
                "VIP and new master addresses free",
            ]))
            .actions(vec![
                Action::Verify(Check::ClusterHealthy),
                Action::Verify(Check::BackupFresh),
                Action::TakeVmSnapshot,
                Action::Verify(Check::AddressesFree),
            ]),
    );
    b.add(
        StepSpec::new("0.2", "Patch kubeadm-config via kubeadm (not kubectl apply)", b.node(m0))
            .commands(vec![
                cmd("kubectl -n kube-system get cm kubeadm-config -o yaml > /tmp/kubeadm-config.backup.yaml"),
                cmd("sudo kubeadm config print init-defaults --component-configs=KubeletConfiguration > /tmp/kubeadm-new.yaml"),
                cmd(format!("edit /tmp/kubeadm-new.yaml: existing ClusterConfiguration + controlPlaneEndpoint: {vip}:{port} + apiServer.certSANs: [{vip}, {fqdn}]")),
                cmd("sudo kubeadm init phase upload-config kubeadm --config /tmp/kubeadm-new.yaml"),
            ])
            .checks(strings(["kubectl -n kube-system get cm kubeadm-config -o yaml | grep -E 'controlPlaneEndpoint|certSANs'"]))
            .rollback(strings(["sudo kubeadm init phase upload-config kubeadm --config /tmp/kubeadm-config.backup.yaml"]))
            .actions(vec![Action::PatchKubeadmConfig, Action::Verify(Check::KubeadmEndpoint)])
            .after("0.1", WHY_PREFLIGHT)
            .note("added the kubeadm-config backup: the source's rollback reverts 'via the file backup' but never takes one"),
    );
    b.add(
        StepSpec::new("0.3", "Regenerate the apiserver cert", b.node(m0))
            .commands(vec![
                cmd("sudo mkdir -p /tmp/apiserver-backup && sudo mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key /tmp/apiserver-backup/"),
                cmd("sudo kubeadm init phase certs apiserver --config /tmp/kubeadm-new.yaml"),
            ])
            .checks(vec![format!("sudo openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -text | grep -A2 'Subject Alternative' (expect IP Address:{vip} plus the existing SANs)")])
            .rollback(strings(["sudo cp /tmp/apiserver-backup/apiserver.crt /tmp/apiserver-backup/apiserver.key /etc/kubernetes/pki/"]))
            .actions(vec![Action::MoveCertAside(m0), Action::GenerateCert(m0), Action::Verify(Check::CertHasVip(m0))])
            .after("0.2", WHY_CONFIG_BEFORE_CERT),
    );
    let reload_tries = crate::facts::APISERVER_CERT_RELOAD_S * 3 / 2 / CERT_WATCH_INTERVAL_S;
    b.add(
        StepSpec::new("0.4", "Wait for kube-apiserver to serve the new cert (it reloads it; no restart)", b.node(m0))
            .commands(vec![cmd(format!(
                "for i in $(seq {reload_tries}); do echo | openssl s_client -connect {m0_addr}:{port} 2>/dev/null | openssl x509 -noout -ext subjectAltName | grep -q 'IP Address:{vip}' && exit 0; sleep {CERT_WATCH_INTERVAL_S}; done; exit 1"
            ))])
            .checks(strings(["the served certificate carries the VIP; kubectl get nodes answers on the direct address"]))
            .rollback(strings(["0.5: restore the cert backup (served again within a minute), revert kubeadm-config"]))
            .actions(vec![Action::Verify(Check::ServedCertHasVip(m0)), Action::Verify(Check::ApiserverReady(m0))])
            .after("0.3", WHY_CERT_BEFORE_RESTART)
            .extra(crate::facts::APISERVER_CERT_RELOAD_S)
            .note("the source restarts the apiserver (~30 s outage) by deleting its mirror pod, which restarts nothing; neither is needed: kube-apiserver reloads its serving cert from disk within a minute (dynamiccertificates), so the step waits for the new cert to be served"),
    );
    b.add(
        StepSpec::new("0.6", "Verify operators recovered from the brief outage", RunsOn::Workstation)
            .commands(vec![
                cmd("kubectl get pods -n calico-system -l app=tigera-operator -o wide"),
                cmd("kubectl get pods -n gpu-operator -o wide"),
                cmd("kubectl get pods -n cnpg-system -o wide"),
            ])
            .checks(strings(["Running, restart count incremented by 1 at most"]))
            .actions(vec![Action::Verify(Check::ClusterHealthy)])
            .after("0.4", WHY_SEQUENCE),
    );

    // Phase 1 ------------------------------------------------------------------------------
    b.phase("1", format!("{} HAProxy + DNS", lb.name));
    b.add(
        StepSpec::new("1.1", format!("Reserve VIP {vip} + DNS"), RunsOn::LoadBalancer(lb.name.clone()))
            .commands(vec![
                cmd(format!("add Virtual IP {vip}/24 (IP alias) on {}", lb.name)),
                cmd(format!("add host alias k8s-apiserver-vip -> {vip}")),
                cmd(format!("register {vip} in IPAM")),
                cmd(format!(
                    "edit {}: add '{} IN A {vip}'{}",
                    s.dns.source,
                    fqdn.trim_end_matches(&format!(".{zone}")),
                    s.dns
                        .records
                        .iter()
                        .filter(|r| r.stale)
                        .map(|r| format!(", delete stale '{} IN A {}'", r.name, r.address))
                        .collect::<String>()
                )),
                cmd(format!("cd {repo} && scripts/tg apply -target=module.technitium")),
            ])
            .checks(vec![format!("getent hosts {fqdn} -> {vip}")])
            .rollback(strings(["release the VIP alias; revert the DNS records"]))
            .actions(vec![Action::ReserveVip, Action::AddVipDnsRecord, Action::DeleteStaleDnsRecord])
            .after("0.1", WHY_PREFLIGHT),
    );
    b.add(
        StepSpec::new("1.2", "Declare the apiserver pool with an HTTPS /readyz health check", RunsOn::InfraRepo)
            .commands(vec![
                cmd(format!(
                    "edit {}: build_pool_https() with check_type='HTTP', monitor_uri='/readyz', ssl='yes', sslverify='no'",
                    lb.bootstrap_script
                )),
                cmd("add 'apiserver_nodes' to $POOL_NAMES and 'apiserver_proxy_6443' to $FRONTEND_NAMES"),
                cmd(format!("build_pool_https('apiserver_nodes', '{port}', [{}])", pool_list(&[m0]))),
                cmd(format!("build_frontend('apiserver_proxy_{port}', 'K8s apiserver VIP', '{vip}', '{port}', 'apiserver_nodes')")),
            ])
            .actions(vec![Action::DeclareLbFrontend])
            .after("1.1", "the frontend binds the reserved VIP"),
    );
    b.add(
        StepSpec::new("1.3", "Deploy + validate the LB", RunsOn::LoadBalancer(lb.name.clone()))
            .commands(vec![
                cmd(format!("scp {} {lb_ssh}:/tmp/ && ssh {lb_ssh} 'php /tmp/{}'", lb.bootstrap_script, file_name(&lb.bootstrap_script))),
                cmd(format!("ssh {lb_ssh} 'sockstat -l | grep {vip}:{port}'")),
                cmd(format!("ssh {lb_ssh} \"echo 'show servers state' | socat /tmp/haproxy.socket stdio\" | grep apiserver")),
            ])
            .checks(strings(["haproxy listens on the VIP", "backend UP (op_state=2)"]))
            .rollback(strings(["remove apiserver_proxy_6443 + apiserver_nodes from the bootstrap script and re-run it"]))
            .actions(vec![Action::DeployLb, Action::Verify(Check::VipListening), Action::Verify(Check::BackendsUp)])
            .after("1.2", WHY_SEQUENCE)
            .disruption(if lb.reset_to_declared_state {
                format!("every {} frontend bounces (reset to declared state, ~{} s)", lb.name, lb.reset_window_s)
            } else {
                "none".to_string()
            }),
    );
    b.add(
        StepSpec::new("1.4", "Smoke through the VIP", RunsOn::Workstation)
            .commands(vec![
                cmd(format!("curl --cacert /etc/kubernetes/pki/ca.crt https://{vip}:{port}/readyz")),
                cmd(format!("kubectl --server=https://{vip}:{port} get nodes")),
            ])
            .checks(strings([
                "readyz answers ok; if TLS fails: STOP, phase 0 did not put the VIP in the cert: roll back phase 1, redo phase 0",
            ]))
            .actions(vec![Action::Verify(Check::ViaVip)])
            .after("1.3", WHY_SEQUENCE)
            .after("0.4", WHY_VIP_TLS),
    );

    // Phase 1.5 ----------------------------------------------------------------------------
    b.phase("1.5", format!("Refactor the {} stack for multi-master", stack.name));
    b.add(
        StepSpec::new("1.5.1", "Refactor the stack to loop over a list of masters", RunsOn::InfraRepo)
            .commands(vec![
                cmd(format!(
                    "edit {}/modules: var.k8s_master_host -> var.k8s_master_hosts = list(string) (default [\"{m0_addr}\"])",
                    stack.path
                )),
                cmd("wrap each null_resource / remote-exec in for_each = toset(var.k8s_master_hosts)"),
                cmd(format!("edit {}/main.tf: k8s_master_hosts = [\"{m0_addr}\"]", stack.path)),
            ])
            .actions(vec![Action::RefactorConfigStack])
            .after("0.1", WHY_PREFLIGHT),
    );
    b.add(
        StepSpec::new("1.5.2", format!("Apply the {} stack (expect zero diff)", stack.name), RunsOn::InfraRepo)
            .commands(vec![cmd(format!("cd {repo} && scripts/tg apply {}", stack.path))])
            .checks(strings(["zero diff against today"]))
            .actions(vec![Action::ApplyConfigStack])
            .after("1.5.1", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("1.5.3", "Verify the flags are unchanged", b.node(m0))
            .commands(vec![cmd(ssh(m0, &format!("sudo grep {first_flag} /etc/kubernetes/manifests/kube-apiserver.yaml | wc -l")))])
            .checks(strings(["expect 1; cluster healthy"]))
            .actions(vec![Action::Verify(Check::FlagsOn(m0)), Action::Verify(Check::ClusterHealthy)])
            .after("1.5.2", WHY_SEQUENCE),
    );

    // Phases 2, 3, 3b... -------------------------------------------------------------------
    let k8s = format!("{}.{}", t.version.0, t.version.1);
    let mut hosts = vec![m0];
    for (k, &m) in new_masters.iter().enumerate() {
        let p = master_phase(k);
        let name = t.name(m).to_string();
        let node = t.node(m);
        let prev = (k > 0).then(|| master_phase(k - 1));
        b.phase(&p, if k == 0 { format!("Cloud-init template bump + {name}") } else { format!("{name}, same pattern as phase 2") });
        if k == 0 {
            b.add(
                StepSpec::new("2.0", "Bump the cloud-init template (one-time)", RunsOn::InfraRepo)
                    .commands(vec![
                        cmd(format!(
                            "edit modules/{}/cloud_init.yaml: apt source pkgs.k8s.io/core:/stable:/v{}.{}/deb/ -> v{k8s}",
                            s.vm_template.name, t.template_version.0, t.template_version.1
                        )),
                        cmd(format!(
                            "edit modules/{}: variable \"k8s_join_command\" {{ default = \"\" }}, skip the runcmd join when empty",
                            s.vm_template.name
                        )),
                        cmd(format!("cd {repo} && scripts/tg apply -target=module.k8s_template")),
                    ])
                    .checks(strings(["the template is registered at the same template_id"]))
                    .actions(vec![Action::BumpTemplate])
                    .after("0.1", WHY_PREFLIGHT),
            );
        }
        b.add(
            StepSpec::new(format!("{p}.1"), format!("Add {name} VM to Terraform"), RunsOn::InfraRepo)
                .commands(vec![
                    cmd(format!(
                        "edit stacks/infra/main.tf: module \"{name}\" from the k8s template, {} vCPU / {} GB / {} GB, VMID {}, IP {}, k8s_join_command = \"\"",
                        node.vcpu.unwrap_or_default(),
                        crate::capacity::gb(node.ram_gb.unwrap_or_default()),
                        node.disk_gb.unwrap_or_default(),
                        node.vmid.unwrap_or_default(),
                        node.address
                    )),
                    cmd(format!("cd {repo} && scripts/tg apply -target=module.{name}")),
                ])
                .checks(vec![format!("ssh {user}@{name}.{zone} uname -a")])
                .rollback(vec![format!("cd {repo} && scripts/tg destroy -target=module.{name}")])
                .actions(vec![Action::CreateVm(m)])
                .after("2.0", WHY_TEMPLATE),
        );
        b.add(
            StepSpec::new(format!("{p}.2"), format!("Prep {name} for kubeadm join"), b.node(m))
                .commands(vec![cmd(ssh(m, "kubeadm version; containerd --version")), cmd(format!("getent hosts {name}.{zone}"))])
                .checks(vec![format!("kubeadm v{k8s}.x, not yet a node")])
                .actions(vec![Action::Verify(Check::ReadyToJoin(m))])
                .after(format!("{p}.1"), WHY_SEQUENCE),
        );
        let mut upload = StepSpec::new(
            format!("{p}.3"),
            if k == 0 {
                "Upload control-plane certs".to_string()
            } else {
                "Re-upload certs (kubeadm-certs expires 2 h after upload)".to_string()
            },
            b.node(m0),
        )
        .commands(vec![secret(
            "sudo kubeadm init phase upload-certs --upload-certs | tail -1 | sudo install -m 600 /dev/stdin /root/.plan-certificate-key",
        )])
        .checks(vec![format!("TTL {} min: the join must follow within it or re-upload", s.kubeadm.certs_ttl_min)])
        .actions(vec![Action::UploadCerts])
        .after(format!("{p}.2"), WHY_SEQUENCE)
        .after("0.2", "uploads the certs of the patched ClusterConfiguration");
        if k > 0 {
            upload =
                upload.note("the source re-uploads only 'if >2h since 2.3'; the upload is unconditional so the TTL restarts at every join");
        }
        b.add(upload);
        b.add(
            StepSpec::new(format!("{p}.4"), "Generate the join command", b.node(m0))
                .commands(vec![secret(format!(
                    "sudo kubeadm token create --print-join-command | sudo install -m 600 /dev/stdin /root/.plan-join-command  # kubeadm join {m0_addr}:{port} --token <T> --discovery-token-ca-cert-hash sha256:<H>"
                ))])
                .actions(vec![Action::CreateToken])
                .note(format!("the source expects 'kubeadm join {vip}:{port}': --print-join-command prints the server of admin.conf on {m0_name}, its own address; discovery goes there, the rest of the join through controlPlaneEndpoint"))
                .after(format!("{p}.3"), WHY_SEQUENCE),
        );
        let mut join = StepSpec::new(format!("{p}.5"), format!("Join {name} as a control-plane node"), b.node(m))
            .commands(vec![secret(format!(
                "sudo $(sudo cat /root/.plan-join-command) --control-plane --certificate-key $(sudo cat /root/.plan-certificate-key)  # on {name}, secrets copied over ssh"
            ))])
            .checks(strings(["This node has joined the cluster"]))
            .rollback(vec![format!("on {name}: sudo kubeadm reset --force; from a surviving master: etcdctl member remove <id>")])
            .actions(vec![Action::EtcdMemberAdd(m), Action::EtcdStart(m), Action::EtcdPromote(m), Action::ControlPlaneUp(m)])
            .after(format!("{p}.4"), WHY_SEQUENCE)
            .after("0.2", WHY_ENDPOINT)
            .after("1.3", "the join talks to controlPlaneEndpoint, the VIP")
            .disruption(if t.learner_mode { "none: the member joins as a learner".to_string() } else { "etcd without quorum from member add until the new member starts".to_string() });
        if let Some(prev) = &prev {
            join = join.after(format!("{prev}.5"), WHY_ONE_JOIN);
        }
        b.add(join);
        hosts.push(m);
        let host_list = hosts.iter().map(|h| format!("\"{}\"", t.node(*h).address)).collect::<Vec<_>>().join(", ");
        b.add(
            StepSpec::new(format!("{p}.6"), format!("Update the {} stack to include {name}", stack.name), RunsOn::InfraRepo)
                .commands(vec![
                    cmd(format!("edit {}/main.tf: k8s_master_hosts = [{host_list}]", stack.path)),
                    cmd(format!("cd {repo} && scripts/tg apply {}", stack.path)),
                    cmd(ssh(m, &format!("sudo grep -c {first_flag} /etc/kubernetes/manifests/kube-apiserver.yaml"))),
                ])
                .checks(strings(["expect 1"]))
                .actions(vec![Action::ConfigStackAddHost(m), Action::Verify(Check::FlagsOn(m))])
                .after(format!("{p}.5"), WHY_JOINED)
                .after("1.5.2", WHY_STACK)
                .disruption(format!("kube-apiserver on {name} restarts with the new flags")),
        );
        b.add(
            StepSpec::new(format!("{p}.7"), "Smoke", RunsOn::Workstation)
                .commands(vec![
                    cmd("kubectl get nodes"),
                    cmd(format!("kubectl -n kube-system get pods -o wide | grep {name}")),
                    cmd(format!("ssh {user}@{m0_name}.{zone} 'sudo etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key member list'")),
                    cmd(format!("kubectl --server=https://{}:{port} get nodes", node.address)),
                ])
                .checks(vec![format!("{name} Ready control-plane, 4 static pods Running, {} etcd members, direct probe works", hosts.len())])
                .actions(vec![Action::Verify(Check::NodeReady(m)), Action::Verify(Check::EtcdMembersVoting), Action::Verify(Check::ApiserverReady(m))])
                .after(format!("{p}.5"), WHY_JOINED),
        );
        b.add(
            StepSpec::new(format!("{p}.8"), format!("Add {name} to the LB pool"), RunsOn::LoadBalancer(lb.name.clone()))
                .commands(vec![
                    cmd(format!("edit {}: pool [{}]", lb.bootstrap_script, pool_list(&hosts))),
                    cmd(format!(
                        "scp {} {lb_ssh}:/tmp/ && ssh {lb_ssh} 'php /tmp/{}'",
                        lb.bootstrap_script,
                        file_name(&lb.bootstrap_script)
                    )),
                ])
                .checks(vec![format!("all {} backends UP", hosts.len())])
                .rollback(vec![format!("remove {name} from the pool and re-run the bootstrap script")])
                .actions(vec![Action::DeclareLbBackend(m), Action::DeployLb, Action::Verify(Check::BackendsUp)])
                .after(format!("{p}.7"), WHY_SMOKE_BEFORE_POOL)
                .after("1.3", "the pool exists")
                .disruption(if lb.reset_to_declared_state {
                    format!("every {} frontend bounces (reset to declared state, ~{} s)", lb.name, lb.reset_window_s)
                } else {
                    "none".to_string()
                }),
        );
    }
    let last = master_phase(new_masters.len().saturating_sub(1));

    // Phase 4 ------------------------------------------------------------------------------
    b.phase("4", "Cut over clients and workers to the VIP".to_string());
    let mut flips: Vec<Command> = s
        .consumers
        .iter()
        .map(|c| {
            cmd(format!("edit {}{}: {} -> https://{vip}:{port}", c.path, c.line.map(|l| format!(":{l}")).unwrap_or_default(), c.server))
        })
        .collect();
    flips.push(cmd(format!("edit {}: variable default = \"{vip}\"", stack.path)));
    // The search for leftovers succeeds when it finds none: grep alone exits 1 then, which would
    // halt an unattended run on success and let it go on when leftovers remain.
    flips.push(cmd(format!(
        "cd {repo} && ! grep -rn '{m0_addr}:{port}' --include='*.tf' --include='*.yml' --include='*.yaml' --include='*.ts' --include='*.php' --include='*.sh'"
    )));
    flips.push(cmd(format!("cd {repo} && scripts/tg apply {} && scripts/tg apply stacks/k8s-portal", stack.path)));
    flips.push(cmd(format!("cd {repo} && git commit -am 'control plane: clients to the VIP' && git push")));
    b.add(
        StepSpec::new("4.1", "Update in-repo kubeconfig consumers (single commit)", RunsOn::InfraRepo)
            .commands(flips)
            .rollback(strings(["revert the commit (single revert commit)"]))
            .actions(vec![Action::FlipConsumers])
            .after("0.3", WHY_VIP_TLS)
            .after("0.4", WHY_VIP_TLS)
            .after("1.4", WHY_LB_FIRST),
    );
    let mut kubelet_actions = Vec::new();
    for &w in &workers {
        kubelet_actions.push(Action::FlipKubelet(w));
        kubelet_actions.push(Action::Verify(Check::NodeReady(w)));
    }
    let worker_names = workers.iter().map(|w| t.name(*w)).collect::<Vec<_>>().join(" ");
    b.add(
        StepSpec::new("4.2", "Flip worker kubelet.conf, one at a time", RunsOn::Workstation)
            .commands(vec![cmd(format!(
                "for n in {worker_names}; do ssh {user}@$n.{zone} \"sudo sed -i.bak 's|server: https://{m0_addr}:{port}|server: https://{vip}:{port}|' /etc/kubernetes/kubelet.conf && sudo systemctl restart kubelet\" && kubectl wait --for=condition=Ready node/$n --timeout=180s && sleep 15; done"
            ))])
            .rollback(strings(["reverse the sed (VIP -> direct address) and restart kubelet"]))
            .actions(kubelet_actions)
            .extra(15 * workers.len() as u32)
            .after("1.4", WHY_LB_FIRST)
            .after("0.4", WHY_VIP_TLS)
            .disruption(format!("5-10 s NotReady per node ({} nodes)", workers.len())),
    );
    b.add(master_kubelet_step(t, m0));
    b.add(new_masters_kubelet_step(t, &new_masters));
    let every_node = t.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(",");
    b.add(
        StepSpec::new("4.5", "Verify everything", RunsOn::Workstation)
            .commands(vec![
                cmd("kubectl get nodes"),
                cmd("kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'"),
                cmd(format!("for n in {{{every_node}}}; do ssh {user}@$n.{zone} \"sudo grep server: /etc/kubernetes/kubelet.conf\"; done")),
                cmd("trigger a no-op CI pipeline through the VIP"),
            ])
            .checks(vec![format!("all {} nodes Ready, every server https://{vip}:{port}", t.nodes.len())])
            .actions(vec![
                Action::Verify(Check::ClusterHealthy),
                Action::Verify(Check::ConsumersOnVip),
                Action::Verify(Check::KubeletsHighlyAvailable),
            ])
            .after("4.1", WHY_SEQUENCE)
            .after("4.4", WHY_SEQUENCE),
    );
    // The join command (a 24 h token) and the certificate key stay readable on the masters
    // after the joins unless someone deletes them; the source plan never does.
    let every_master = std::iter::once(m0).chain(new_masters.iter().copied()).map(|m| t.name(m)).collect::<Vec<_>>().join(" ");
    let mut forget = StepSpec::new("4.6", "Delete the join secrets from the masters", RunsOn::Workstation)
        .commands(vec![cmd(format!(
            "for n in {every_master}; do ssh {user}@$n.{zone} 'sudo rm -f /root/.plan-join-command /root/.plan-certificate-key'; done"
        ))])
        .checks(strings(["no master holds /root/.plan-join-command or /root/.plan-certificate-key"]))
        .actions(vec![Action::ForgetJoinSecrets, Action::Verify(Check::NoJoinSecrets)])
        .note("added: the join command and certificate key written for the joins are deleted once every master has joined")
        .after("4.5", WHY_SEQUENCE);
    for k in 0..new_masters.len() {
        forget = forget.after(format!("{}.5", master_phase(k)), WHY_ALL_MASTERS);
    }
    b.add(forget);
    b.add(
        StepSpec::new("4.7", "Point kube-proxy at the VIP", RunsOn::Workstation)
            .commands(vec![
                cmd(format!(
                    "kubectl -n kube-system get configmap kube-proxy -o yaml | sed 's|server: https://{m0_addr}:{port}|server: https://{vip}:{port}|' | kubectl apply -f -"
                )),
                cmd("kubectl -n kube-system rollout restart daemonset/kube-proxy && kubectl -n kube-system rollout status daemonset/kube-proxy --timeout=300s"),
                cmd("kubectl -n kube-system get configmap kube-proxy -o jsonpath='{.data.kubeconfig\\.conf}' | grep server:"),
            ])
            .checks(vec![format!("server: https://{vip}:{port}; every kube-proxy pod restarted")])
            .actions(vec![Action::PointKubeProxyAtVip, Action::Verify(Check::KubeProxyOnVip)])
            .after("4.5", WHY_CUTOVER)
            .note(format!("added: kubeadm rendered kube-proxy's kubeconfig once, at init, with {m0_addr}:{port}; the source never changes it, so losing {m0_name} would stop Service updates on every node"))
            .extra(120),
    );

    // Phase 4.5 ----------------------------------------------------------------------------
    b.phase("4.5", "etcd-backup CronJob node pinning".to_string());
    let jobs = s
        .cronjobs
        .iter()
        .filter(|j| j.pinned_to.is_some())
        .map(|j| format!("{}{}", j.name, j.line.map(|l| format!(" (line {l})")).unwrap_or_default()))
        .collect::<Vec<_>>();
    let jobs_path = s.cronjobs.first().map(|j| j.path.clone()).unwrap_or_else(|| "the CronJob stack".to_string());
    b.add(
        StepSpec::new("4.5.1", "Replace the node pin with a control-plane selector", RunsOn::InfraRepo)
            .commands(vec![cmd(format!(
                "edit {jobs_path}: {}: node_name = \"{m0_name}\" -> nodeSelector {{ \"node-role.kubernetes.io/control-plane\" = \"\" }} + toleration",
                if jobs.is_empty() { "every etcd CronJob".to_string() } else { jobs.join(", ") }
            ))])
            .actions(vec![Action::DeclareCronJobsOnControlPlane])
            .after(format!("{last}.7"), WHY_ALL_MASTERS),
    );
    b.add(
        StepSpec::new("4.5.2", "Apply infra-maintenance", RunsOn::InfraRepo)
            .commands(vec![cmd(format!("cd {repo} && scripts/tg apply stacks/infra-maintenance"))])
            .actions(vec![Action::ApplyCronJobs])
            .after("4.5.1", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("4.5.3", "Verify the backup runs", RunsOn::Workstation)
            .commands(vec![cmd("kubectl -n infra-maintenance create job --from=cronjob/backup-etcd backup-etcd-ha-check")])
            .checks(strings(["lands on a master, produces a valid snapshot"]))
            .actions(vec![Action::Verify(Check::BackupRunsAnywhere)])
            .after("4.5.2", WHY_SEQUENCE),
    );

    // Phase 5 ------------------------------------------------------------------------------
    b.phase("5", format!("{} quorum check", s.reboot_gate.name));
    b.add(
        StepSpec::new("5.1", "Add the control-plane quorum check to the reboot gate", RunsOn::InfraRepo)
            .commands(vec![cmd(format!(
                "edit {}: CP_READY=$(kubectl get nodes -l node-role.kubernetes.io/control-plane= --no-headers | grep ' Ready ' | wc -l); [ \"$CP_READY\" -le {quorum} ] && block reboot  # the reboot must leave {quorum} Ready",
                s.reboot_gate.path
            ))])
            .actions(vec![Action::DeclareGateQuorumCheck])
            .after(format!("{last}.7"), WHY_ALL_MASTERS)
            .note(format!(
                "a master's reboot must leave etcd quorum ({quorum} of {masters_target}) Ready, so the gate blocks at {quorum} Ready or fewer; the source's '-lt 2' lets a second master reboot while one is down"
            )),
    );
    b.add(
        StepSpec::new("5.2", "Apply kured", RunsOn::InfraRepo)
            .commands(vec![cmd(format!("cd {repo} && scripts/tg apply stacks/kured"))])
            .actions(vec![Action::ApplyRebootGate])
            .after("5.1", WHY_SEQUENCE),
    );
    let cordoned = new_masters.first().map(|m| t.name(*m).to_string()).unwrap_or_else(|| m0_name.clone());
    b.add(
        StepSpec::new("5.3", "Verify the gate", RunsOn::Workstation)
            .commands(vec![
                cmd(format!("kubectl -n kured logs ds/{} | tail -50", s.reboot_gate.name)),
                cmd(format!("kubectl cordon {cordoned} && sleep 300 && kubectl uncordon {cordoned}")),
            ])
            .checks(vec![format!("'Control-plane quorum safe ({masters_target} Ready)'; blocked while {cordoned} is cordoned")])
            .actions(vec![Action::Verify(Check::GateQuorumAware)])
            .after("5.2", WHY_SEQUENCE),
    );

    // Phase 6 ------------------------------------------------------------------------------
    b.phase("6", "End-to-end validation".to_string());
    // From the workstation: the watch cannot run on the master that reboots, and it ends on its
    // own (the source's `while true` never does, so an unattended run would hang there).
    let watches = crate::fault::NODE_REBOOT_S / REBOOT_WATCH_INTERVAL_S;
    let mut failover = StepSpec::new("6.1", format!("Failover test: reboot {m0_name}"), RunsOn::Workstation)
        .commands(vec![
            cmd(format!("kubectl drain {m0_name} --delete-emptydir-data --ignore-daemonsets")),
            cmd(ssh(m0, "sudo reboot")),
            cmd(format!(
                "for i in $(seq {watches}); do [ \"$(kubectl get nodes -o name | wc -l)\" -gt 0 ] || {{ echo 'the API did not answer through the VIP'; exit 1; }}; sleep {REBOOT_WATCH_INTERVAL_S}; done  # never 0"
            )),
            cmd(format!("kubectl wait --for=condition=Ready node/{m0_name} --timeout=300s")),
            cmd(format!("kubectl uncordon {m0_name}")),
        ])
        .note("the source watches with 'while true', which never ends, from the master that reboots; the watch is bounded to the reboot and runs from the workstation")
        .checks(strings(["the API answers through the VIP during the reboot; the backend re-registers (op_state=2)"]))
        .actions(vec![
            Action::Shutdown(m0),
            Action::Verify(Check::ViaVip),
            Action::Boot(m0),
            Action::Verify(Check::ApiserverReady(m0)),
            Action::Verify(Check::BackendsUp),
        ])
        .after("4.5", WHY_CUTOVER)
        .disruption(format!("{m0_name} down 50-90 s; the VIP should hide it"));
    for k in 0..new_masters.len() {
        failover = failover.after(format!("{}.8", master_phase(k)), WHY_ALL_MASTERS);
    }
    b.add(failover);
    let mut parity = StepSpec::new("6.2", "All-masters apiserver flag parity", RunsOn::Workstation)
        .commands(vec![cmd(format!(
            "for h in {}; do ssh {user}@$h.{zone} 'sudo grep -E \"{}\" /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/manifests/etcd.yaml | sort'; done",
            t.nodes.iter().filter(|n| n.kind != crate::topology::NodeKind::Worker).map(|n| n.name.as_str()).collect::<Vec<_>>().join(" "),
            stack.apiserver_flags.join("|")
        ))])
        .checks(strings(["identical flag set on every master"]))
        .actions(vec![Action::Verify(Check::FlagParity)]);
    for k in 0..new_masters.len() {
        parity = parity.after(format!("{}.6", master_phase(k)), WHY_ALL_MASTERS);
    }
    b.add(parity);
    b.add(
        StepSpec::new("6.3", "Update documentation", RunsOn::InfraRepo)
            .commands(vec![
                cmd("add docs/architecture/control-plane.md (HA topology, etcd members, LB config)"),
                cmd(format!(
                    "update the hypervisor inventory: VMIDs {}",
                    new_masters.iter().map(|m| t.node(*m).vmid.unwrap_or_default().to_string()).collect::<Vec<_>>().join(", ")
                )),
                cmd("add docs/runbooks/control-plane-add-remove-master.md; update restore-etcd.md for a multi-member quorum"),
            ])
            .after("6.1", WHY_SEQUENCE)
            .extra(1800),
    );

    // Phase 7 ------------------------------------------------------------------------------
    b.phase("7", "Extend the k8s-version-upgrade chain to multi-master".to_string());
    b.add(
        StepSpec::new("7.1", "Discover masters and loop with a quorum check", RunsOn::InfraRepo)
            .commands(vec![cmd(format!(
                "edit {}: MASTERS=$(kubectl get nodes -l node-role.kubernetes.io/control-plane= -o name | sed 's|node/||'); for m in $MASTERS: require more than {quorum} Ready (draining m must leave quorum), drain, update, uncordon, wait Ready",
                s.upgrade_chain.path
            ))])
            .actions(vec![Action::DeclareChainMasterLoop])
            .after(format!("{last}.7"), WHY_ALL_MASTERS),
    );
    b.add(
        StepSpec::new("7.2", "Un-pin preflight and the master phase", RunsOn::InfraRepo)
            .commands(vec![cmd(format!(
                "edit {}: scheduling_block allows any control-plane node; kubeadm upgrade plan runs on the first listed master",
                s.upgrade_chain.path
            ))])
            .actions(vec![Action::DeclareChainAnyMaster])
            .after("7.1", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("7.3", "Apply k8s-version-upgrade", RunsOn::InfraRepo)
            .commands(vec![cmd(format!("cd {repo} && scripts/tg apply stacks/k8s-version-upgrade"))])
            .actions(vec![Action::ApplyUpgradeChain])
            .after("7.2", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("7.4", "Dry-run the chain", RunsOn::Workstation)
            .commands(vec![cmd("kubectl -n k8s-upgrade create job --from=cronjob/k8s-version-check ha-validation-$(date +%s)")])
            .checks(vec![format!("logs show {masters_target} masters discovered in order")])
            .actions(vec![Action::Verify(Check::ChainCoversMasters)])
            .after("7.3", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("7.5", "Real test on the next patch release", RunsOn::Workstation)
            .checks(vec![format!("drain -> upgrade -> uncordon across all {masters_target} masters without manual intervention")])
            .after("7.4", WHY_SEQUENCE)
            .note("not run by plan: it waits for the next patch release"),
    );

    // Phase 8 ------------------------------------------------------------------------------
    b.phase("8", "Close out".to_string());
    let close = match &s.tracking_issue {
        Some(issue) => format!("bd close {issue}"),
        None => "close the tracking issue".to_string(),
    };
    let mut close_out = StepSpec::new("8.1", "Close out once every acceptance criterion is met", RunsOn::InfraRepo)
        .commands(vec![cmd(close)])
        .checks(vec![format!(
            "{masters_target} masters online, etcd quorum healthy, LB working; upgrade chain across all masters; reboot gate respects quorum; etcd backup from any master"
        )])
        .actions(vec![Action::Verify(Check::Acceptance)]);
    for id in ["4.5.3", "5.3", "6.1", "6.2", "7.4"] {
        close_out = close_out.after(id, "an acceptance criterion");
    }
    b.add(close_out);

    Plan { plan_format: PLAN_FORMAT, scenario: s.name.clone(), phases: b.phases, steps: b.steps, rollbacks: rollbacks(t), only_phase: None }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests;
