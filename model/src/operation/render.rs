//! Operations rendered to commands: each a list of typed parts (where each piece runs, named by
//! the scenario) and the text the operator would type on the workstation, derived from the
//! parts. The executor runs the parts (see `exec::invocation`); `show` prints the text.

use super::{IacStack, Operation};
use crate::hand::{Change, HandTask, RepoEdit};
use crate::plan::{Command, Part, RunsOn};
use crate::scenario::DnsVia;
use crate::topology::Topology;
use serde::Serialize;

mod profile;
pub use profile::{backends_state, haproxy_sections, vip_listening};

/// How to tell on the real hosts whether an operation took effect: its parts exit 0 when it
/// did. It runs after an interruption left the operation's outcome unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The parts as the operator would type them.
    pub run: String,
    #[serde(skip)]
    pub parts: Vec<Part>,
}

/// The root-only file that keeps the certificate key `upload-certs` prints.
pub const CERTIFICATE_KEY_FILE: &str = "/root/.plan-certificate-key";
/// The root-only file that keeps the join command `token create` prints.
pub const JOIN_COMMAND_FILE: &str = "/root/.plan-join-command";
const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// `etcdctl` against a master's own etcd member, with kubeadm's certificates.
pub const ETCDCTL_LOCAL: &str = "sudo etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key";
/// `kubeadm reset` without its question.
pub const KUBEADM_RESET: &str = "sudo kubeadm reset --force";
/// The description of the join tokens the plan makes, by which it finds them to revoke.
pub const JOIN_TOKEN_DESCRIPTION: &str = "plan-control-plane-join";

/// The scenario's names and addresses, as commands use them.
struct Words<'t> {
    t: &'t Topology,
}

impl Words<'_> {
    fn address(&self, name: &str) -> String {
        self.t.nodes.iter().find(|n| n.name == name).map(|n| n.address.to_string()).unwrap_or_else(|| name.to_string())
    }
    fn pool(&self, names: &[String]) -> String {
        names.iter().map(|n| format!("['{n}', '{}']", self.address(n))).collect::<Vec<_>>().join(", ")
    }
    fn m0_direct(&self) -> String {
        let t = self.t;
        format!("{}:{}", t.node(t.existing_master()).address, t.apiserver_port())
    }
    /// A command of `parts`, its text derived from them.
    fn command(&self, parts: Vec<Part>) -> Command {
        Command { run: command_text(self.t, &parts), parts, ..Command::default() }
    }
    fn probe(&self, parts: Vec<Part>) -> Probe {
        Probe { run: command_text(self.t, &parts), parts }
    }
}

/// `shell` where the step runs.
fn here(shell: impl Into<String>) -> Part {
    Part::Run { at: None, shell: shell.into() }
}

/// `shell` on the node `name`.
fn on_node(name: &str, shell: impl Into<String>) -> Part {
    Part::Run { at: Some(RunsOn::Node(name.to_string())), shell: shell.into() }
}

/// `shell` in the infra repo.
fn in_repo(shell: impl Into<String>) -> Part {
    Part::Run { at: Some(RunsOn::InfraRepo), shell: shell.into() }
}

/// `shell` on the operator's workstation.
fn on_workstation(shell: impl Into<String>) -> Part {
    Part::Run { at: Some(RunsOn::Workstation), shell: shell.into() }
}

/// The login `ssh` and `scp` are given for a machine: `USER@NODE.ZONE`, `USER@LB-ADDRESS`,
/// `root@HYPERVISOR-ADDRESS` (`qm` needs root).
fn login(t: &Topology, machine: &RunsOn) -> String {
    let s = &t.scenario;
    match machine {
        RunsOn::Node(name) => {
            let address = t.nodes.iter().find(|n| &n.name == name).map(|n| n.address);
            format!("{}@{}", s.ssh_user, address.map_or_else(|| name.clone(), |a| s.host_name(name, a)))
        }
        RunsOn::LoadBalancer(name) => {
            format!("{}@{}", s.load_balancer.ssh_user, s.load_balancer.machine_address().map_or_else(|| name.clone(), |a| a.to_string()))
        }
        RunsOn::Hypervisor(name) => {
            let h = s.hypervisors.iter().find(|h| &h.name == name);
            let address = h.and_then(|h| h.address).map_or_else(|| name.clone(), |a| a.to_string());
            format!("{}@{address}", h.map_or("root", |h| h.ssh_user.as_str()))
        }
        RunsOn::InfraRepo | RunsOn::Workstation => String::new(),
    }
}

/// `shell` as one word of a workstation command line: single quotes, else double quotes when
/// that needs no escape, else single quotes with `'\''`.
fn quoted(shell: &str) -> String {
    if !shell.contains('\'') {
        format!("'{shell}'")
    } else if !shell.contains(['"', '$', '`', '\\']) {
        format!("\"{shell}\"")
    } else {
        format!("'{}'", shell.replace('\'', r"'\''"))
    }
}

/// The parts as the operator types them on the workstation, joined by `&&`: `ssh LOGIN '…'` for
/// a machine, `cd REPO && …` for the infra repo, `scp FILE LOGIN:PATH` for an upload; a part
/// where the step runs as it is.
pub fn command_text(t: &Topology, parts: &[Part]) -> String {
    let text = |part: &Part| match part {
        Part::Run { at: None | Some(RunsOn::Workstation), shell } => shell.clone(),
        Part::Run { at: Some(RunsOn::InfraRepo), shell } => format!("cd {} && {shell}", t.scenario.infra_repo),
        Part::Run { at: Some(machine), shell } => format!("ssh {} {}", login(t, machine), quoted(shell)),
        Part::Upload { local, to, remote } => format!("scp {local} {}:{remote}", login(t, to)),
    };
    parts.iter().map(text).collect::<Vec<_>>().join(" && ")
}

/// The shell text that sets kubelet.conf's server, keeping the first backup it ever took: a
/// second run never overwrites the pre-migration file.
pub fn kubelet_server_shell(server: &str) -> String {
    format!(
        "{{ sudo test -e {KUBELET_CONF}.bak || sudo cp -p {KUBELET_CONF} {KUBELET_CONF}.bak; }} && sudo sed -i 's|server: .*|server: {server}|' {KUBELET_CONF} && sudo systemctl restart kubelet"
    )
}

impl Operation {
    /// The commands the operation runs, in order.
    pub fn render(&self, t: &Topology) -> Vec<Command> {
        let w = Words { t };
        let s = &t.scenario;
        match self {
            Operation::Verify { run, at, .. } => run.iter().map(|r| w.command(vec![at_machine(t, at.as_deref(), r)])).collect(),
            Operation::VmSnapshot { node, name } => profile::vm_snapshot(&w, node, name),
            Operation::BackupKubeadmConfig { .. }
            | Operation::PrepareKubeadmConfig { .. }
            | Operation::UploadKubeadmConfig { .. }
            | Operation::MoveCertAside { .. }
            | Operation::GenerateCert { .. } => self.kubeadm_commands(t),
            Operation::ReserveVip => profile::reserve_vip(t),
            Operation::DeclareDnsRecords { vip, delete_stale } => dns_record_edits(t, *vip, *delete_stale),
            Operation::DeclareLbFrontend { pool } => profile::declare_frontend(&w, pool),
            Operation::DeclareLbPool { pool } => profile::declare_pool(&w, pool),
            Operation::DeployLb => profile::deploy_lb(&w),
            Operation::DeployLbOn { nodes } => profile::deploy_lb_on(&w, nodes),
            Operation::StartVipDaemon { node } => profile::start_vip_daemon(&w, node),
            Operation::ConfigStackToList | Operation::ConfigStackHosts { .. } | Operation::ConfigStackServer { .. } => {
                self.config_stack_edits(&w)
            }
            Operation::EditTemplate => template_edits(t),
            Operation::DeclareVm { node } => profile::declare_vm(&w, node),
            Operation::IacApply(stack) => profile::iac_apply(&w, stack),
            Operation::UploadCerts | Operation::CreateToken | Operation::Join { .. } | Operation::ForgetJoinSecrets { .. } => {
                self.join_commands(&w)
            }
            Operation::KubeconfigConsumers { .. } | Operation::KubeletServer { .. } | Operation::KubeProxyServer { .. } => {
                self.kubeconfig_commands(&w)
            }
            Operation::NoLeftoverAddress => leftover_search(&w),
            Operation::GitCommit { message } => vec![w.command(vec![in_repo(format!("git commit -am '{message}' && git push"))])],
            Operation::CronJobsOnControlPlane { .. }
            | Operation::RunJob { .. }
            | Operation::RebootGateRule { .. }
            | Operation::UpgradeChainLoop { .. }
            | Operation::UpgradeChainAnyMaster => self.maintenance_edits(t),
            Operation::Drain { .. } | Operation::Reboot { .. } | Operation::Uncordon { .. } => self.reboot_commands(&w),
            Operation::CloseIssue => vec![match (&s.tracking_issue, &s.close_issue_command) {
                (Some(issue), Some(close)) => shell(close.replace("{issue}", issue)),
                (Some(issue), None) => by_hand(format!("close {issue} in your tracker")),
                (None, _) => by_hand("close the tracking issue"),
            }],
            Operation::ByHand { instruction } => vec![by_hand(instruction.clone())],
            Operation::Shell { run, at } => vec![w.command(vec![at_machine(t, at.as_deref(), run)])],
        }
    }

    /// kubeadm-config backed up, prepared with the VIP as endpoint and SAN, and uploaded; the
    /// apiserver's certificate moved aside and generated again from it.
    fn kubeadm_commands(&self, t: &Topology) -> Vec<Command> {
        let s = &t.scenario;
        let (vip, port, fqdn) = (s.control_plane_endpoint.vip, s.control_plane_endpoint.port, &s.control_plane_endpoint.fqdn);
        match self {
            Operation::BackupKubeadmConfig { to } => vec![shell(format!("kubectl -n kube-system get cm kubeadm-config -o yaml > {to}"))],
            Operation::PrepareKubeadmConfig { file } => vec![
                shell(format!("sudo kubeadm config print init-defaults --component-configs=KubeletConfiguration > {file}")),
                Command::hand(HandTask::KubeadmConfig {
                    file: file.clone(),
                    endpoint: format!("{vip}:{port}"),
                    cert_sans: vec![vip.to_string(), fqdn.clone()],
                }),
            ],
            Operation::UploadKubeadmConfig { file } => {
                vec![shell(format!("sudo kubeadm init phase upload-config kubeadm --config {file}"))]
            }
            Operation::MoveCertAside { to, .. } => vec![shell(format!(
                "sudo mkdir -p {to} && sudo mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key {to}/"
            ))],
            Operation::GenerateCert { config, .. } => vec![shell(format!("sudo kubeadm init phase certs apiserver --config {config}"))],
            _ => unreachable!("{self:?} is no kubeadm-config or certificate operation"),
        }
    }

    /// The config stack's edits: a single host variable made a list, the masters it lists, the
    /// server it names.
    fn config_stack_edits(&self, w: &Words<'_>) -> Vec<Command> {
        let t = w.t;
        let s = &t.scenario;
        match self {
            Operation::ConfigStackToList => {
                let Some(config) = &s.config_stack else { return vec![by_hand("no config stack is declared")] };
                let (stack, var) = (&config.path, &config.host_variable);
                let m0_addr = t.node(t.existing_master()).address;
                let modules = format!("{stack}/modules");
                vec![
                    Command::edits(vec![RepoEdit::new(
                        &modules,
                        Change::Replace { from: format!("var.{var}"), to: format!("var.{var}s = list(string) (default [\"{m0_addr}\"])") },
                    )]),
                    Command::edits(vec![RepoEdit::new(
                        modules,
                        Change::Described(format!("wrap each null_resource / remote-exec in for_each = toset(var.{var}s)")),
                    )]),
                    Command::edits(vec![RepoEdit::new(
                        format!("{stack}/main.tf"),
                        Change::Assign { key: format!("{var}s"), value: format!("[\"{m0_addr}\"]") },
                    )]),
                ]
            }
            Operation::ConfigStackHosts { hosts } => {
                let list = hosts.iter().map(|h| format!("\"{}\"", w.address(h))).collect::<Vec<_>>().join(", ");
                let var = s.config_stack.as_ref().map_or("master_host", |c| c.host_variable.as_str());
                let main = format!("{}/main.tf", config_stack_path(t));
                vec![Command::edits(vec![RepoEdit::new(main, Change::Assign { key: format!("{var}s"), value: format!("[{list}]") })])]
            }
            Operation::ConfigStackServer { address } => vec![Command::edits(vec![RepoEdit::new(
                config_stack_path(t),
                Change::Described(format!("variable default = \"{address}\"")),
            )])],
            _ => unreachable!("{self:?} is no config stack operation"),
        }
    }

    /// The join credentials made (the certs uploaded, a token), used by the join, then revoked
    /// and deleted.
    fn join_commands(&self, w: &Words<'_>) -> Vec<Command> {
        let t = w.t;
        match self {
            Operation::UploadCerts => vec![Command {
                writes: Some(CERTIFICATE_KEY_FILE.to_string()),
                secret: true,
                ..shell(format!("sudo kubeadm init phase upload-certs --upload-certs | tail -1 | sudo install -m 600 /dev/stdin {CERTIFICATE_KEY_FILE}"))
            }],
            Operation::CreateToken => vec![Command {
                writes: Some(JOIN_COMMAND_FILE.to_string()),
                secret: true,
                ..shell(format!(
                    "sudo kubeadm token create --description {JOIN_TOKEN_DESCRIPTION} --print-join-command | sudo install -m 600 /dev/stdin {JOIN_COMMAND_FILE}  # kubeadm join {} --token <T> --discovery-token-ca-cert-hash sha256:<H>",
                    w.m0_direct()
                ))
            }],
            Operation::Join { node } => vec![Command {
                reads: vec![JOIN_COMMAND_FILE.to_string(), CERTIFICATE_KEY_FILE.to_string()],
                secret: true,
                ..shell(format!(
                    "sudo $(sudo cat {JOIN_COMMAND_FILE}) --control-plane --certificate-key $(sudo cat {CERTIFICATE_KEY_FILE})  # on {node}, secrets copied over ssh"
                ))
            }],
            // Every token the plan made carries its description (a rerun of `token create`
            // makes another); `kubeadm token list` prints it in its DESCRIPTION column.
            // The tokens are listed and deleted on the first of the masters (the existing one,
            // unless it was written off).
            Operation::ForgetJoinSecrets { nodes } => std::iter::once(w.command(vec![on_node(
                nodes.first().map_or_else(|| t.name(t.existing_master()), String::as_str),
                format!("sudo kubeadm token list | awk \"/{JOIN_TOKEN_DESCRIPTION}/ {{print \\$1}}\" | xargs -r -n1 sudo kubeadm token delete"),
            )]))
            .chain(nodes.iter().map(|n| w.command(vec![on_node(n, format!("sudo rm -f {JOIN_COMMAND_FILE} {CERTIFICATE_KEY_FILE}"))])))
            .collect(),
            _ => unreachable!("{self:?} is no join operation"),
        }
    }

    /// The kubeconfigs' servers: the consumers' in the infra repo, each node's kubelet.conf,
    /// kube-proxy's.
    fn kubeconfig_commands(&self, w: &Words<'_>) -> Vec<Command> {
        let s = &w.t.scenario;
        match self {
            Operation::KubeconfigConsumers { consumers, server } => s
                .consumers
                .iter()
                .filter(|c| consumers.contains(&c.name))
                .map(|c| {
                    let change = Change::Replace { from: c.server.clone(), to: server.clone() };
                    Command::edits(vec![RepoEdit { line: c.line, ..RepoEdit::new(&c.path, change) }])
                })
                .collect(),
            // One node at a time: flipped, Ready again, then a pause before the next.
            Operation::KubeletServer { nodes, server, wait_ready: true } => nodes
                .iter()
                .map(|n| {
                    w.command(vec![
                        on_node(n, kubelet_server_shell(server)),
                        on_workstation(format!("kubectl wait --for=condition=Ready node/{n} --timeout=180s")),
                        on_workstation("sleep 15"),
                    ])
                })
                .collect(),
            Operation::KubeletServer { nodes, server, wait_ready: false } => {
                nodes.iter().map(|n| w.command(vec![on_node(n, kubelet_server_shell(server))])).collect()
            }
            Operation::KubeProxyServer { server } => vec![
                shell(format!(
                    "kubectl -n kube-system get configmap kube-proxy -o yaml | sed 's|server: .*|server: {server}|' | kubectl apply -f -"
                )),
                shell("kubectl -n kube-system rollout restart daemonset/kube-proxy && kubectl -n kube-system rollout status daemonset/kube-proxy --timeout=300s"),
            ],
            _ => unreachable!("{self:?} is no kubeconfig operation"),
        }
    }

    /// The maintenance stacks' edits (the etcd CronJobs, the reboot gate, the upgrade chain) and
    /// a run of a CronJob.
    fn maintenance_edits(&self, t: &Topology) -> Vec<Command> {
        let s = &t.scenario;
        match self {
            // One edit per file, in the file's own syntax: HCL in a stack, YAML in a manifest.
            Operation::CronJobsOnControlPlane { jobs } => {
                let m0 = t.name(t.existing_master());
                let mut files: Vec<(&str, Vec<String>)> = Vec::new();
                for j in s.cronjobs.iter().filter(|j| jobs.contains(&j.name)) {
                    let named = format!("{}{}", j.name, j.line.map(|l| format!(" (line {l})")).unwrap_or_default());
                    match files.iter_mut().find(|(path, _)| *path == j.path) {
                        Some((_, names)) => names.push(named),
                        None => files.push((&j.path, vec![named])),
                    }
                }
                if files.is_empty() {
                    return vec![by_hand("no pinned CronJob is declared: nothing to edit")];
                }
                files
                    .into_iter()
                    .map(|(path, names)| {
                        let change = if path.ends_with(".yaml") || path.ends_with(".yml") {
                            format!("nodeName: {m0} -> nodeSelector: {{node-role.kubernetes.io/control-plane: \"\"}} + a toleration of node-role.kubernetes.io/control-plane:NoSchedule")
                        } else {
                            format!("node_name = \"{m0}\" -> nodeSelector {{ \"node-role.kubernetes.io/control-plane\" = \"\" }} + toleration")
                        };
                        Command::edits(vec![RepoEdit::new(path, Change::Described(format!("{}: {change}", names.join(", "))))])
                    })
                    .collect()
            }
            Operation::RunJob { namespace, cronjob, job } => vec![shell(format!("kubectl{} create job --from=cronjob/{cronjob} {job}", in_namespace(namespace)))],
            Operation::RebootGateRule { block_at_or_below: n } => vec![Command::edits(vec![RepoEdit::new(
                s.reboot_gate.as_ref().map_or("the reboot gate", |g| g.path.as_str()),
                Change::Described(format!("CP_READY=$(kubectl get nodes -l node-role.kubernetes.io/control-plane= --no-headers | grep ' Ready ' | wc -l); [ \"$CP_READY\" -le {n} ] && block reboot  # the reboot must leave {n} Ready")),
            )])],
            Operation::UpgradeChainLoop { require_ready_above: n } => vec![Command::edits(vec![RepoEdit::new(
                s.upgrade_chain.as_ref().map_or("the upgrade chain", |c| c.path.as_str()),
                Change::Described(format!("MASTERS=$(kubectl get nodes -l node-role.kubernetes.io/control-plane= -o name | sed 's|node/||'); for m in $MASTERS: require more than {n} Ready (draining m must leave quorum), drain, update, uncordon, wait Ready")),
            )])],
            Operation::UpgradeChainAnyMaster => vec![Command::edits(vec![RepoEdit::new(
                s.upgrade_chain.as_ref().map_or("the upgrade chain", |c| c.path.as_str()),
                Change::Described("scheduling_block allows any control-plane node; kubeadm upgrade plan runs on the first listed master".to_string()),
            )])],
            _ => unreachable!("{self:?} is no maintenance operation"),
        }
    }

    /// A master drained, rebooted while the API is watched through the VIP, and uncordoned.
    fn reboot_commands(&self, w: &Words<'_>) -> Vec<Command> {
        match self {
            Operation::Drain { node } => vec![shell(format!("kubectl drain {node} --delete-emptydir-data --ignore-daemonsets"))],
            Operation::Reboot { node } => {
                let watches = crate::fault::NODE_REBOOT_S / REBOOT_WATCH_INTERVAL_S;
                vec![
                    w.command(vec![on_node(node, "sudo reboot")]),
                    shell(format!(
                        "for i in $(seq {watches}); do [ \"$(kubectl get nodes -o name | wc -l)\" -gt 0 ] || {{ echo 'the API did not answer through the VIP'; exit 1; }}; sleep {REBOOT_WATCH_INTERVAL_S}; done  # never 0"
                    )),
                    shell(format!("kubectl wait --for=condition=Ready node/{node} --timeout=300s")),
                ]
            }
            Operation::Uncordon { node } => vec![shell(format!("kubectl uncordon {node}"))],
            _ => unreachable!("{self:?} is no reboot operation"),
        }
    }

    /// How to tell whether the operation already took effect, for those that must not run twice.
    pub fn probe(&self, t: &Topology) -> Option<Probe> {
        let w = Words { t };
        let part = match self {
            Operation::VmSnapshot { node, name } => profile::vm_snapshot_probe(t, node, name)?,
            Operation::StartVipDaemon { node } => profile::vip_daemon_probe(t, node)?,
            Operation::BackupKubeadmConfig { to } => here(format!("test -s {to}")),
            Operation::MoveCertAside { to, .. } => here(format!("sudo test -e {to}/apiserver.crt")),
            // A join took effect when the node has kubelet.conf and its etcd member is a started
            // voter (asked of the first master: a learner answers few requests). kubelet.conf
            // alone is not enough: kubeadm writes it in `kubelet-start`, before `etcd-join`,
            // unless `ControlPlaneKubeletLocalMode` moves it after (docs/facts.md).
            Operation::Join { node } => {
                let m0 = t.name(t.existing_master());
                let voter = format!("{ETCDCTL_LOCAL} member list | grep -F ', started, {node}, ' | grep -q ', false$'");
                return Some(w.probe(vec![here(format!("sudo test -e {KUBELET_CONF}")), on_node(m0, voter)]));
            }
            // Committed and pushed: the last commit is this one and nothing is left to push.
            Operation::GitCommit { message } => {
                in_repo(format!("git log -1 --format=%s | grep -qxF '{message}' && test -z \"$(git log @{{u}}..)\""))
            }
            Operation::RunJob { namespace, job, .. } => here(format!("kubectl{} get job {job}", in_namespace(namespace))),
            _ => return None,
        };
        Some(w.probe(vec![part]))
    }
}

/// The DNS records declared: the VIP's added, the stale ones deleted; in the infra repo, or by
/// hand in the DNS server.
fn dns_record_edits(t: &Topology, add: bool, delete_stale: bool) -> Vec<Command> {
    let s = &t.scenario;
    let (vip, fqdn, zone) = (s.control_plane_endpoint.vip, &s.control_plane_endpoint.fqdn, &s.dns.zone);
    let mut edits: Vec<String> = Vec::new();
    if add {
        edits.push(format!("add '{} IN A {vip}'", fqdn.trim_end_matches(&format!(".{zone}"))));
    }
    if delete_stale {
        edits.extend(s.dns.records.iter().filter(|r| r.stale).map(|r| format!("delete stale '{} IN A {}'", r.name, r.address)));
    }
    if edits.is_empty() {
        edits.push("nothing to change".to_string());
    }
    match s.dns_via() {
        DnsVia::Iac => vec![Command::edits(vec![RepoEdit::new(&s.dns.source, Change::Described(edits.join(", ")))])],
        DnsVia::ByHand | DnsVia::None => vec![by_hand(format!("in the DNS server of {zone}: {}", edits.join(", ")))],
    }
}

/// The VM template's edits: only what the template needs, the cluster's package version and no
/// worker join.
fn template_edits(t: &Topology) -> Vec<Command> {
    let s = &t.scenario;
    let Some(template) = &s.vm_template else { return vec![by_hand("no VM template is declared: nothing to edit")] };
    let name = &template.name;
    let mut edits = Vec::new();
    if t.template_version != t.version {
        let source = |(major, minor): (u32, u32)| format!("pkgs.k8s.io/core:/stable:/v{major}.{minor}/deb/");
        edits.push(Command::edits(vec![RepoEdit::new(
            format!("modules/{name}/cloud_init.yaml"),
            Change::Replace { from: source(t.template_version), to: source(t.version) },
        )]));
    }
    if template.join_command_for_masters {
        edits.push(Command::edits(vec![RepoEdit::new(
            format!("modules/{name}"),
            Change::Described("variable \"k8s_join_command\" { default = \"\" }, skip the runcmd join when empty".to_string()),
        )]));
    }
    edits
}

/// The infra repo searched for the first master's address left behind. The search succeeds when
/// it finds none: grep alone exits 1 then, which would halt an unattended run on success and let
/// it go on when leftovers remain.
fn leftover_search(w: &Words<'_>) -> Vec<Command> {
    let s = &w.t.scenario;
    // The master's address, and every name a consumer gave it (its DNS name, a
    // record), each with the apiserver's port.
    let mut needles = vec![w.m0_direct()];
    for c in &s.consumers {
        if let Some((host, port)) = crate::validate::server_host(&c.server) {
            let needle = format!("{host}:{port}");
            if !needles.contains(&needle) {
                needles.push(needle);
            }
        }
    }
    let php = if s.load_balancer.kind == crate::scenario::LbKind::PfsenseBootstrap { " --include='*.php'" } else { "" };
    let files = format!("--include='*.tf' --include='*.yml' --include='*.yaml' --include='*.ts'{php} --include='*.sh'");
    let text = match needles.as_slice() {
        [one] => format!("! grep -rn '{one}' {files}"),
        many => format!("! grep -rnF {} {files}", many.iter().map(|n| format!("-e '{n}'")).collect::<Vec<_>>().join(" ")),
    };
    vec![w.command(vec![in_repo(text)])]
}

impl Operation {
    /// What a resume runs before running the operation again when its probe says it did not
    /// take effect, the commands of [`crate::action::cut_cleanup`]'s actions: a cut join's
    /// leftovers cleaned up, its etcd member removed from the first master (found by its peer
    /// address: a member never started has no name; retried while etcd answers `unhealthy
    /// cluster`, as it does for a voter connected less than 5 s), then `kubeadm reset` on the
    /// node. Both are no-ops where nothing is left; a member list that fails (etcd 3.5's is
    /// linearizable: refused without quorum) fails the cleanup, it does not mean nothing is
    /// left. Empty for every other operation.
    pub fn cut_cleanup(&self, t: &Topology) -> Vec<Command> {
        let w = Words { t };
        let Operation::Join { node } = self else { return Vec::new() };
        let m0 = t.name(t.existing_master());
        let peer = format!("//{}:", w.address(node));
        let tries = MEMBER_REMOVE_WAIT_S / MEMBER_REMOVE_RETRY_S;
        let remove = format!(
            "for i in $(seq {tries}); do list=$({ETCDCTL_LOCAL} member list) || exit 1; \
             id=$(printf '%s\\n' \"$list\" | awk -F', ' -v peer='{peer}' 'index($4, peer) {{ print $1 }}'); \
             [ -n \"$id\" ] || exit 0; out=$({ETCDCTL_LOCAL} member remove \"$id\" 2>&1) && exit 0; \
             case \"$out\" in *'unhealthy cluster'*) sleep {MEMBER_REMOVE_RETRY_S} ;; *) break ;; esac; done; echo \"$out\" >&2; exit 1"
        );
        vec![w.command(vec![on_node(m0, remove)]), w.command(vec![on_node(node, KUBEADM_RESET)])]
    }
}

/// How long a cut join's cleanup waits for etcd to take the member's removal (it refuses a voter
/// connected less than its 5 s health interval), and how often it asks (the lab waits out pauses
/// of a second or less: they are retries against its real etcd, not model time).
const MEMBER_REMOVE_WAIT_S: u32 = 30;
const MEMBER_REMOVE_RETRY_S: u32 = 1;

fn shell(run: impl Into<String>) -> Command {
    Command::shell(run)
}

fn by_hand(run: impl Into<String>) -> Command {
    Command::by_hand(run)
}

/// ` -n NAMESPACE`, or nothing for the kubeconfig's own namespace.
fn in_namespace(namespace: &str) -> String {
    if namespace.is_empty() {
        String::new()
    } else {
        format!(" -n {namespace}")
    }
}

/// Seconds between two looks at the API while a master reboots.
pub const REBOOT_WATCH_INTERVAL_S: u32 = 2;

/// `shell` on the machine named `at` (checked by `effect`), or where the step runs.
fn at_machine(t: &Topology, on: Option<&str>, shell: &str) -> Part {
    Part::Run { at: on.and_then(|name| super::machine(t, name)), shell: shell.to_string() }
}

/// Where the IaC tool runs for a stack, and what it is given there: the stack's directory, and
/// a `-target` where one module of a shared stack is meant (empty otherwise).
pub(crate) fn stack_target(t: &Topology, stack: &IacStack) -> (String, String) {
    let s = &t.scenario;
    let iac = s.iac.as_ref();
    let vm_dir = iac.and_then(|i| i.vms.rsplit_once('/').map(|(dir, _)| dir.to_string())).unwrap_or_else(|| ".".to_string());
    match stack {
        IacStack::Dns => {
            let dir = stack_of(&s.dns.source);
            match iac.and_then(|i| i.dns_target.as_ref()) {
                Some(target) => (dir, format!("-target={target}")),
                None => (dir, String::new()),
            }
        }
        IacStack::Template => {
            let template = s.vm_template.as_ref().map_or("template", |v| v.name.as_str());
            let target = iac.and_then(|i| i.template_target.clone()).unwrap_or_else(|| format!("module.{template}"));
            (vm_dir, format!("-target={target}"))
        }
        IacStack::Vm { node } => (vm_dir, format!("-target=module.{node}")),
        IacStack::ConfigStack => (config_stack_path(t).to_string(), String::new()),
        IacStack::Portal => {
            let portal = s.consumers.iter().find(|c| c.kind == crate::scenario::ConsumerKind::UserPortal);
            (portal.map_or_else(|| "the portal's stack".to_string(), |c| stack_of(&c.path)), String::new())
        }
        IacStack::CronJobs => (cronjob_stack(t), String::new()),
        IacStack::RebootGate => {
            (s.reboot_gate.as_ref().map_or_else(|| "the reboot gate's stack".to_string(), |g| stack_of(&g.path)), String::new())
        }
        IacStack::UpgradeChain => {
            (s.upgrade_chain.as_ref().map_or_else(|| "the upgrade chain's stack".to_string(), |c| stack_of(&c.path)), String::new())
        }
    }
}

/// The IaC command for `stack` with `verb` (`apply`, `destroy`), run at the repo's top. A
/// command with `{stack}` (a wrapper like `scripts/tg apply {stack}`) is given the target, else
/// the stack's directory; a plain one (`terragrunt apply`) runs in the stack's directory.
pub fn iac_command(t: &Topology, verb: &str, stack: &IacStack) -> Option<String> {
    let iac = t.scenario.iac.as_ref().filter(|i| i.kind == crate::scenario::IacKind::Terragrunt)?;
    let command = iac.apply.replace("apply", verb);
    let (dir, target) = stack_target(t, stack);
    Some(if command.contains("{stack}") {
        command.replace("{stack}", if target.is_empty() { &dir } else { &target })
    } else if target.is_empty() {
        format!("cd {dir} && {command}")
    } else {
        format!("cd {dir} && {command} {target}")
    })
}

/// The config stack's directory in the infra repo.
fn config_stack_path(t: &Topology) -> &str {
    t.scenario.config_stack.as_ref().map_or("the config stack", |c| c.path.as_str())
}

/// The stack of the etcd CronJobs: the backup job's (else the first job's) file's stack.
pub fn cronjob_stack(t: &Topology) -> String {
    let s = &t.scenario;
    let job = s.cronjobs.iter().find(|j| j.backup).or(s.cronjobs.first());
    job.map_or_else(|| "the CronJobs' stack".to_string(), |j| stack_of(&j.path))
}

/// The terragrunt stack a file of the infra repo belongs to: `stacks/NAME` for a file under
/// `stacks/`, else the file's first directory (the file itself at the top).
fn stack_of(path: &str) -> String {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["stacks", name, _, ..] => format!("stacks/{name}"),
        [first, _, ..] => (*first).to_string(),
        _ => path.to_string(),
    }
}
