//! What the executor finds on the lab besides etcd and the apiservers: the operator's workstation
//! and infra repo, the load balancer's host, the hypervisor, and the programs the plan calls there.
//!
//! - The **infra repo** ([`prepare_infra_repo`]): a real git repository in the lab's directory with
//!   a bare remote; the plan on the lab names it by the lab's paths ([`LabPaths`]).
//! - **By-hand edits** ([`carry_out`]) are made from the operation's typed edit ([`RepoEdit`]),
//!   never from the instruction's text; work with no file on the lab is acknowledged and listed.
//! - **Shims** on every lab host's PATH do the equivalent real action ([`write_host_shims`]), each
//!   described where it is written; a Linux load balancer's HAProxy: [`linux_lb`].

mod iac;
mod linux_lb;
pub use iac::{IacProgram, LAB_SHIM_PROGRAMS};

use crate::error::LabError;
use crate::host::{self, FixtureHost, FixtureHosts};
use plan_model::cluster::Cluster;
use plan_model::hand::{Change, RepoEdit};
use plan_model::plan::Plan;
use plan_model::scenario::{ConsumerKind, LbKind};
use plan_model::topology::{NodeIx, Topology};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The pfSense load balancer's HAProxy config and stats socket, in its host's `/tmp`.
pub const LB_CONFIG: &str = "/tmp/haproxy.cfg";
pub const LB_SOCKET: &str = "/tmp/haproxy.socket";
/// The load balancer's HAProxy config and stats socket as its host sees them: what the executor's
/// LB observer reads.
pub fn lb_files(t: &Topology) -> (&'static str, &'static str) {
    match t.scenario.load_balancer.kind {
        LbKind::Haproxy => (linux_lb::CONFIG, linux_lb::SOCKET),
        _ => (LB_CONFIG, LB_SOCKET),
    }
}

/// The servers of the load balancer's apiserver pool, from its stats socket where the lab reads it
/// (`show stat`); `None` when HAProxy never ran there (no socket).
pub fn lb_backends(t: &Topology, hosts: &FixtureHosts) -> Option<Result<Vec<crate::haproxy::Backend>, LabError>> {
    let lb = &t.scenario.load_balancer.name;
    let socket = hosts.private_path(lb, lb_files(t).1).unwrap_or_else(|| hosts.host_dir(lb).join("tmp/haproxy.socket"));
    let pool = match t.scenario.load_balancer.kind {
        LbKind::Haproxy => plan_model::operation::haproxy_sections(t, &[]).1.name,
        _ => crate::haproxy::POOL.to_string(),
    };
    socket.exists().then(|| crate::haproxy::backends_of(&socket, &pool))
}

/// What HAProxy's unit did on a Linux load balancer (each start and graceful reload the
/// `systemctl` shim ran), a note each; none for another profile.
pub fn lb_unit_notes(t: &Topology, hosts: &FixtureHosts) -> Vec<String> {
    let lb = &t.scenario.load_balancer;
    match lb.kind {
        LbKind::Haproxy => linux_lb::unit_notes(&lb.name, &hosts.host_dir(&lb.name)),
        _ => Vec::new(),
    }
}

/// The lab's clock: seconds added to the system clock where kubeadm checks a TTL (the `kubeadm`
/// shims read it), under the lab's root. A clock jump adds to it; the system clock is untouched.
pub const CLOCK_OFFSET: &str = "clock-offset-s";
/// The `kube-proxy` ConfigMap, a file in the lab's cluster state.
pub const KUBE_PROXY_CONFIGMAP: &str = "kube-proxy.yaml";
/// Where the lab's cluster state for the `kubectl` shim lives, under the lab's root.
pub const CLUSTER_DIR: &str = "cluster";
/// The mark `kubectl wait … node/NAME` leaves in [`CLUSTER_DIR`] (`waiting-for-NAME`): the
/// operator waits for the node, so a planned reboot under way ends (the kubelet stand-in's).
pub const WAITING_FOR: &str = "waiting-for-";
/// The mark the `reboot` shim leaves in its host's directory for the kubelet stand-in.
pub const REBOOT_REQUESTED: &str = "reboot-requested";
/// The flag value the config stack sets (the flag names come from the scenario).
const FLAG_VALUE: &str = "https://issuer.lab.test";

/// The scenario's paths on the workstation and where the lab keeps them.
#[derive(Debug, Clone)]
pub struct LabPaths {
    pub infra_repo: PathBuf,
    pub etcd_backup: PathBuf,
}

impl LabPaths {
    pub fn under(root: &Path) -> LabPaths {
        LabPaths { infra_repo: root.join("infra"), etcd_backup: root.join("etcd-backup") }
    }

    /// The backup the twin's starting state has (the pre-flight lists it), taken for real when
    /// the lab comes up: what the worst case restores.
    pub fn backup_before(&self) -> PathBuf {
        self.etcd_backup.join("etcd-snapshot-before.db")
    }

    /// The operator's kubeconfig on the lab: the infra repo's first kubeconfig consumer, if any.
    pub fn kubeconfig(&self, t: &Topology) -> Option<PathBuf> {
        t.scenario.consumers.iter().find(|c| c.kind == ConsumerKind::Kubeconfig).map(|c| self.infra_repo.join(&c.path))
    }

    /// The scenario with its workstation paths moved into the lab, and every login as `root`
    /// (the one account a lab host has).
    pub fn topology(&self, t: &Topology) -> Topology {
        let mut scenario = t.scenario.clone();
        scenario.infra_repo = self.infra_repo.display().to_string();
        scenario.etcd_backup.path = self.etcd_backup.display().to_string();
        scenario.ssh_user = LAB_USER.to_string();
        scenario.load_balancer.ssh_user = LAB_USER.to_string();
        Topology::new(&scenario)
    }

    /// The plan on the lab: each step derived again on [`LabPaths::topology`] (its commands name
    /// the lab's repo, backup directory and logins), with the scenario's workstation paths in
    /// the operations' parameters replaced by the lab's.
    ///
    /// # Errors
    /// An operation does not fit the lab's topology (it always does: only paths and logins change).
    pub fn plan(&self, t: &Topology, plan: &Plan) -> Result<Plan, LabError> {
        let from = [t.scenario.infra_repo.trim_end_matches('/'), t.scenario.etcd_backup.path.trim_end_matches('/')];
        let to = [self.infra_repo.display().to_string(), self.etcd_backup.display().to_string()];
        let rewrite = |text: &str| from.iter().zip(&to).fold(text.to_string(), |text, (f, t)| text.replace(f, t));
        plan.on_topology(&self.topology(t), &rewrite)
            .map_err(|why| LabError::NotRehearsable { what: "the plan on the lab".to_string(), why })
    }
}

/// The account every lab host logs in as.
pub const LAB_USER: &str = "root";

/// An address in 127.0.20.250..=254 the scenario does not use: the operator's workstation.
///
/// # Errors
/// All five are taken.
pub fn workstation_address(t: &Topology) -> Result<Ipv4Addr, LabError> {
    let mut used: Vec<Ipv4Addr> = machines(t).iter().map(|m| m.address).collect();
    used.push(t.scenario.control_plane_endpoint.vip);
    // In the lab's own range: the one its VIP is in.
    let [_, range, _, _] = t.scenario.control_plane_endpoint.vip.octets();
    (250..=254).map(|d| Ipv4Addr::new(127, range, 20, d)).find(|a| !used.contains(a)).ok_or_else(|| LabError::NotRehearsable {
        what: "the workstation's address".to_string(),
        why: format!("127.{range}.20.250-254 are all used by the scenario"),
    })
}

/// Every machine of the scenario with an address: each node (a new master's VM too), the load
/// balancer, the hypervisors.
pub fn machines(t: &Topology) -> Vec<FixtureHost> {
    let mut machines: Vec<FixtureHost> = t.nodes.iter().map(|n| FixtureHost { name: n.name.clone(), address: n.address }).collect();
    let lb = &t.scenario.load_balancer;
    machines.extend(lb.machine_address().map(|address| FixtureHost { name: lb.name.clone(), address }));
    machines.extend(t.scenario.hypervisors.iter().filter_map(|h| Some(FixtureHost { name: h.name.clone(), address: h.address? })));
    machines
}

/// `/etc/hosts` of every lab host: each machine by name and `name.zone`, the API's name on the VIP.
pub fn hosts_file(t: &Topology, workstation: Ipv4Addr) -> String {
    let zone = &t.scenario.dns.zone;
    let mut text = "127.0.0.1 localhost\n".to_string();
    for FixtureHost { name, address } in machines(t) {
        text.push_str(&format!("{address} {name} {name}.{zone}\n"));
    }
    text.push_str(&format!("{} {}\n", t.scenario.control_plane_endpoint.vip, t.scenario.control_plane_endpoint.fqdn));
    text.push_str(&format!("{workstation} workstation\n"));
    text
}

/// The pool the bootstrap script declares in state `c`, as the script's calls.
fn bootstrap_script(t: &Topology, c: &Cluster) -> String {
    let endpoint = &t.scenario.control_plane_endpoint;
    let mut text =
        "<?php\n// The LB's declared state: every deploy renders it and resets HAProxy to it.\n$POOL_NAMES = [];\n$FRONTEND_NAMES = [];\n"
            .to_string();
    if c.lb_declared.frontend || !c.lb_declared.pool.is_empty() {
        text.push_str(&format!("// build_pool_https() with {}\n", t.health_check.pfsense_pool_options()));
        text.push_str("$POOL_NAMES[] = 'apiserver_nodes';\n");
        let pool: Vec<String> = c.lb_declared.pool.iter().map(|n| format!("['{}', '{}']", t.name(n), t.node(n).address)).collect();
        text.push_str(&format!("build_pool_https('apiserver_nodes', '{}', [{}]);\n", endpoint.port, pool.join(", ")));
    }
    if c.lb_declared.frontend {
        text.push_str(&format!("$FRONTEND_NAMES[] = 'apiserver_proxy_{}';\n", endpoint.port));
        text.push_str(&format!(
            "build_frontend('apiserver_proxy_{port}', 'K8s apiserver VIP', '{}', '{port}', 'apiserver_nodes');\n",
            endpoint.vip,
            port = endpoint.port
        ));
    }
    text
}

/// A real git repository with the files the plan edits, as the twin's state `c` has them (the
/// kubeconfig consumers trusting the lab CA `ca`), and a bare remote for `git push`.
///
/// # Errors
/// A file cannot be written or git fails.
pub fn prepare_infra_repo(t: &Topology, c: &Cluster, paths: &LabPaths, root: &Path, ca: &[u8]) -> Result<(), LabError> {
    let repo = &paths.infra_repo;
    let s = &t.scenario;
    let existing = t.node(t.existing_master()).address;
    let direct = format!("https://{existing}:{}", s.control_plane_endpoint.port);
    let vip = format!("https://{}:{}", s.control_plane_endpoint.vip, s.control_plane_endpoint.port);
    match s.load_balancer.kind {
        LbKind::Haproxy => host::write_file(&repo.join(s.load_balancer.config_file()), &linux_lb::haproxy_config(t, c))?,
        _ => host::write_file(&repo.join(s.load_balancer.bootstrap_script()), &bootstrap_script(t, c))?,
    }
    // The executor's lab replicates the homelab's shape: a config stack is part of it.
    let stack = s.config_stack.as_ref().map_or("config-stack", |c| c.path.as_str());
    let hosts: Vec<String> = c.stack_hosts.iter().map(|n| format!("\"{}\"", t.node(n).address)).collect();
    let main_tf = if c.stack_list_declared {
        format!("k8s_master_hosts = [{}]\n", hosts.join(", "))
    } else {
        format!("k8s_master_host = \"{existing}\"\n")
    };
    host::write_file(&repo.join(stack).join("main.tf"), &main_tf)?;
    host::write_file(
        &repo.join(stack).join("modules").join("variables.tf"),
        &format!("variable \"k8s_master_host\" {{ default = \"{existing}\" }}\n"),
    )?;
    // The module that applies the flags over SSH names the host through the variable, as the
    // infra repo's does: 1.5.1's edit turns that reference into the list.
    let var = s.config_stack.as_ref().map_or("k8s_master_host", |c| c.host_variable.as_str());
    let connection = if c.stack_list_declared {
        format!("  for_each = toset(var.{var}s)\n  connection {{ host = each.value }}\n")
    } else {
        format!("  connection {{ host = var.{var} }}\n")
    };
    host::write_file(
        &repo.join(stack).join("modules").join("main.tf"),
        &format!("resource \"null_resource\" \"apiserver_flags\" {{\n{connection}}}\n"),
    )?;
    // The DNS records' file may hold a consumer too (the worker join command in config.tfvars).
    if !s.dns.source.is_empty() {
        host::write_file(&repo.join(&s.dns.source), "# DNS records\n")?;
    }
    for (i, consumer) in t.consumers.iter().enumerate() {
        let server = if c.consumer_on_vip(i) { &vip } else { &direct };
        let path = repo.join(&s.consumers[i].path);
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("# {}\n", consumer.name));
        if s.consumers[i].kind == ConsumerKind::Kubeconfig {
            // A real kubeconfig: the executor's Kubernetes API observer reads it.
            text.push_str(&kubeconfig_file(server, ca));
        } else {
            text.push_str(&format!("server: {server}\n"));
        }
        host::write_file(&path, &text)?;
    }
    for job in &s.cronjobs {
        let pin = match (&job.pinned_to, c.cronjobs_declared_any_master) {
            (Some(node), false) => format!("node_name = \"{node}\""),
            _ => "nodeSelector { \"node-role.kubernetes.io/control-plane\" = \"\" } + toleration".to_string(),
        };
        host::write_file(&repo.join(&job.path), &format!("{}: {pin}\n", job.name))?;
    }
    // The files the plan's IaC applies run beside (`cd stacks/infra && terragrunt apply`): the
    // VMs' declarations, the reboot gate's and the upgrade chain's stacks.
    let declared = [
        s.iac.as_ref().map(|i| i.vms.as_str()),
        s.reboot_gate.as_ref().map(|g| g.path.as_str()),
        s.upgrade_chain.as_ref().map(|c| c.path.as_str()),
    ];
    for path in declared.into_iter().flatten().filter(|p| !repo.join(p).exists()) {
        host::write_file(&repo.join(path), "# declared in the infra repo\n")?;
    }
    iac::write_iac_shim(repo, &root.join("shims"), root, t)?;
    std::fs::create_dir_all(&paths.etcd_backup).map_err(|e| LabError::io("the backup directory", e))?;
    let remote = root.join("infra-remote.git").display().to_string();
    let repo = repo.display().to_string();
    host::run_tool("git", &["init", "-q", "--bare", &remote])?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["config", "user.name", "plan lab"],
        &["config", "user.email", "lab@plan.invalid"],
        &["remote", "add", "origin", &remote],
        &["add", "-A"],
        &["commit", "-q", "-m", "the infra repo before the migration"],
        &["push", "-q", "-u", "origin", "main"],
    ] {
        host::run_tool("git", &[&["-C", repo.as_str()][..], args].concat())?;
    }
    Ok(())
}

/// Root's `~/.kube/config` on the hosts whose `kubectl` runs without `--server`, as an operator
/// sets them up: on each master a link to its `/etc/kubernetes/admin.conf` (kubeadm's advice; a
/// link, so a master that joins later reads the admin.conf its join writes), on the workstation
/// a link to the infra repo's first kubeconfig consumer (the plan's edit of it at 4.1 follows), or,
/// without one, a kubeconfig of the first master's own address. The `kubectl` shim reads it, and
/// so does the loopback guard's question to the host (`kubectl config view --minify`).
///
/// # Errors
/// A directory, link or file cannot be made.
pub fn write_root_kubeconfigs(
    t: &Topology,
    hosts: &FixtureHosts,
    paths: &LabPaths,
    workstation: &str,
    ca_pem: &[u8],
) -> Result<(), LabError> {
    let link = |host: &str, target: &Path| -> Result<(), LabError> {
        let config = hosts.host_dir(host).join("root/.kube/config");
        let dir = config.parent().expect("a path under the host's directory");
        std::fs::create_dir_all(dir).map_err(|e| LabError::io(format!("create {}", dir.display()), e))?;
        std::os::unix::fs::symlink(target, &config).map_err(|e| LabError::io(format!("link {}", config.display()), e))
    };
    for node in t.nodes.iter().filter(|n| n.kind != plan_model::topology::NodeKind::Worker) {
        link(&node.name, Path::new("/etc/kubernetes/admin.conf"))?;
    }
    match paths.kubeconfig(t) {
        Some(kubeconfig) => link(workstation, &kubeconfig),
        None => {
            let direct = format!("https://{}:{}", t.node(t.existing_master()).address, t.scenario.control_plane_endpoint.port);
            host::write_file(&hosts.host_dir(workstation).join("root/.kube/config"), &kubeconfig_file(&direct, ca_pem))
        }
    }
}

/// A kubeconfig for `server` that trusts the lab CA (`ca_pem`) and sends a token the stand-ins
/// take (they check no credentials).
pub fn kubeconfig_file(server: &str, ca_pem: &[u8]) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    certificate-authority-data: {ca}\n    server: {server}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: operator\ncurrent-context: lab\nusers:\n- name: operator\n  user:\n    token: lab-operator\n"
    )
}

/// What the lab did with one by-hand instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByHand {
    /// Made on a lab file.
    Edited(String),
    /// Nothing on the lab stands for it (IPAM, documentation): acknowledged.
    NoCounterpart,
    /// An edit the lab cannot read: the run stops there.
    Unreadable(String),
}

/// Carries out typed edits on the lab's infra repo, in order, as a person would: the lab reads
/// the edit's structured change, never the instruction's text. A file the lab's repo does not
/// hold has no counterpart; a change only described is kept in the file as a person's note.
pub fn carry_out(repo: &Path, edits: &[RepoEdit]) -> ByHand {
    let mut made = Vec::new();
    for edit in edits {
        let path = repo.join(&edit.file);
        if !path.exists() {
            return ByHand::NoCounterpart;
        }
        match change_file(&path, &edit.change) {
            Ok(what) => made.push(format!("{}: {what}", edit.file)),
            Err(why) => return ByHand::Unreadable(format!("{}: {why}", edit.file)),
        }
    }
    ByHand::Edited(made.join("; "))
}

/// One change made on `path` (a file, or every file of a directory for a replacement).
fn change_file(path: &Path, change: &Change) -> Result<String, String> {
    let read = |file: &Path| std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()));
    let write = |file: &Path, text: String| std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()));
    let append = |file: &Path, lines: &[String]| -> Result<(), String> {
        let mut text = if file.exists() { read(file)? } else { String::new() };
        lines.iter().for_each(|l| text.push_str(&format!("{l}\n")));
        write(file, text)
    };
    match change {
        Change::Replace { from, to } => {
            let files: Vec<PathBuf> = if path.is_dir() {
                std::fs::read_dir(path).map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect()).unwrap_or_default()
            } else {
                vec![path.to_path_buf()]
            };
            let mut done_already = false;
            for file in &files {
                let text = read(file)?;
                if text.contains(from.as_str()) {
                    write(file, text.replacen(from.as_str(), to, 1))?;
                    return Ok(format!("{from} -> {to}"));
                }
                // Only a file named by the edit tells: in a directory the new text may be another
                // file's own.
                done_already |= !path.is_dir() && text.contains(to.as_str());
            }
            // An operator asked for an edit already made (a go-forward moved the consumers to
            // the VIP before the cut-over's step) finds it made, and goes on.
            if done_already {
                return Ok(format!("{to} already there"));
            }
            Err(format!("no {from} to replace"))
        }
        Change::Assign { key, value } => {
            let text = read(path)?;
            let kept: String = text.lines().filter(|l| !l.starts_with(&format!("{key} = "))).map(|l| format!("{l}\n")).collect();
            write(path, format!("{kept}{key} = {value}\n"))?;
            Ok(format!("{key} = {value}"))
        }
        Change::Append(lines) => {
            append(path, lines)?;
            Ok(lines.iter().map(|l| format!("+ {l}")).collect::<Vec<_>>().join(" "))
        }
        Change::PoolMembers(pool) => {
            let text = read(path)?;
            let Some(line) = text.lines().find(|l| l.starts_with("build_pool_https(")) else {
                return Err("no build_pool_https() call to change the pool of".to_string());
            };
            let updated = format!("{}, {pool});", line.split(", [").next().unwrap_or(line));
            write(path, text.replacen(line, &updated, 1))?;
            Ok(updated)
        }
        Change::HaproxySections { frontend, backend } => {
            let text = linux_lb::put_section(&read(path)?, &frontend.section());
            write(path, linux_lb::put_section(&text, &backend.section()))?;
            Ok(format!("frontend {} and backend {} ({} servers)", frontend.name, backend.name, backend.servers.len()))
        }
        Change::HaproxyServers(backend) => {
            let text = read(path)?;
            write(path, linux_lb::put_servers(&text, backend)?)?;
            Ok(format!("backend {}: {}", backend.name, backend.server_lines().join("; ")))
        }
        Change::Described(words) => {
            let target = if path.is_dir() { path.join("by-hand.txt") } else { path.to_path_buf() };
            append(&target, &[format!("# by hand: {words}")])?;
            Ok(format!("noted: {words}"))
        }
    }
}

/// The shims on every lab host's PATH (the kubeadm shim is written by the caller).
///
/// # Errors
/// A file cannot be written.
pub fn write_host_shims(shims: &Path, root: &Path, t: &Topology) -> Result<(), LabError> {
    let r = root.display();
    let version = &t.scenario.kubernetes.version;
    host::write_executable(&shims.join("sudo"), "#!/bin/sh\n# sudo as root on a fixture host: its options (-n, -E, -H) change nothing here.\nwhile [ $# -gt 0 ]; do case \"$1\" in -*) shift ;; *) break ;; esac; done\nexec \"$@\"\n")?;
    host::write_executable(
        &shims.join("sleep"),
        "#!/bin/sh\n# Model time is not waited out on the lab; a pause of a second or less is a retry against a real\n# process (etcd refusing a member's removal for its 5 s health interval) and is waited out.\ncase \"$1\" in 0|0.*|1) exec /bin/sleep \"$1\" ;; esac\nexit 0\n",
    )?;
    host::write_executable(&shims.join("systemctl"), &linux_lb::systemctl_shim())?;
    host::write_executable(
        &shims.join("virsh"),
        "#!/bin/sh\n# libvirt on the lab: a domain's snapshots are lines of a file in the hypervisor's directory.\nd=\"$PLAN_FIXTURE_HOST_DIR/virsh\"; mkdir -p \"$d\"; echo \"$*\" >> \"$d/log\"\ncase \"$1\" in\n  snapshot-create-as) grep -qx \"$3\" \"$d/$2.snapshots\" 2>/dev/null && { echo \"error: snapshot $3 already exists\" >&2; exit 1; }\n    echo \"$3\" >> \"$d/$2.snapshots\"; echo \"Domain snapshot $3 created\" ;;\n  snapshot-list) cat \"$d/$2.snapshots\" 2>/dev/null ;;\nesac\n",
    )?;
    host::write_executable(&shims.join("containerd"), "#!/bin/sh\necho 'containerd github.com/containerd/containerd v1.7.24 (lab)'\n")?;
    host::write_executable(&shims.join("bd"), &format!("#!/bin/sh\necho \"bd $*\" >> {r}/bd.log\necho \"closed: $*\"\n"))?;
    host::write_executable(
        &shims.join("qm"),
        "#!/bin/sh\n# Proxmox on the lab: a snapshot is a record in the hypervisor's directory.\nmkdir -p \"$PLAN_FIXTURE_HOST_DIR/qm\" && echo \"$*\" >> \"$PLAN_FIXTURE_HOST_DIR/qm/log\"\n",
    )?;
    host::write_executable(
        &shims.join("reboot"),
        &format!(
            "#!/bin/sh\n# The lab's kubelet stand-in takes the host down (its etcd and apiserver), and up again once the\n# operator waits for the node (kubectl wait). The command ends once the host is down (at most 5 s;\n# the executor's lab also takes it down before a fault strikes), as a real reboot ends the session.\nr=\"$PLAN_FIXTURE_HOST_DIR/{REBOOT_REQUESTED}\"\ntouch \"$r\"\necho \"lab: $PLAN_FIXTURE_HOST_NAME is going down for reboot\"\ni=0; while [ -e \"$r\" ] && [ $i -lt 50 ]; do /bin/sleep 0.1; i=$((i + 1)); done\n"
        ),
    )?;
    host::write_executable(
        &shims.join("ping"),
        "#!/bin/sh\n# Every 127/8 address answers a real ping; on the lab an address is taken when a lab process listens there.\nfor ip; do :; done\nss -Hltn | awk '{print $4}' | grep -q \"^$ip:\" && { echo \"64 bytes from $ip\"; exit 0; }\necho \"From $ip: Destination Host Unreachable\"; exit 1\n",
    )?;
    host::write_executable(
        &shims.join("sockstat"),
        "#!/bin/sh\n# FreeBSD's sockstat -l, from ss.\nss -Hltnp | awk '{print \"root haproxy - tcp4 \" $4 \" *:*\"}'\n",
    )?;
    host::write_executable(
        &shims.join("etcdctl"),
        &format!(
            r#"#!/bin/sh
# etcdctl on a lab master: kubeadm's local endpoint (TLS on 127.0.0.1:2379) is this host's member.
case " $* " in
  *"--endpoints=https://127.0.0.1:2379"*)
    url=$(cat "$PLAN_FIXTURE_HOST_DIR/{client}" 2>/dev/null) || {{ echo "etcdctl (lab): no etcd member on this host" >&2; exit 1; }}
    set -- $(for a; do case "$a" in --endpoints=*) echo "--endpoints=$url" ;; --cacert=*|--cert=*|--key=*) ;; *) echo "$a" ;; esac; done)
    ;;
esac
# etcd 3.5 and later list members linearizably (client/v3/cluster.go MemberList sends Linearizable,
# server/etcdserver/api/v3rpc/member.go waits for LinearizableReadNotify): without quorum, or on a
# learner, the list fails. The lab's etcd 3.4 answers from the member's own copy, so a list asks a
# linearizable read first, with the same endpoints and options, unless --consistency=s is given.
case " $* " in
  *" member list "*)
    case " $* " in *" --consistency=s "*) ;; *)
      options=$(for a; do case "$a" in --write-out=*|--consistency=*) ;; --*) echo "$a" ;; esac; done)
      ETCDCTL_API=3 /usr/bin/etcdctl $options get --consistency=l lab-linearizable-member-list >/dev/null || exit 1 ;;
    esac ;;
esac
ETCDCTL_API=3 exec /usr/bin/etcdctl "$@"
"#,
            client = crate::executor_etcd::CLIENT_URL_FILE
        ),
    )?;
    host::write_executable(&shims.join("php"), &php_shim(root))?;
    host::write_executable(&shims.join("kubectl"), &kubectl_shim(root))?;
    host::write_file(&root.join("kubernetes-version"), &format!("v{version}.0\n"))?;
    Ok(())
}

/// `php /tmp/haproxy-bootstrap.php` on the load balancer: the declared pools and frontends in the
/// script become HAProxy's whole config, and HAProxy is started or reloaded on it.
fn php_shim(root: &Path) -> String {
    format!(
        r#"#!/usr/bin/python3
# The bootstrap script on the lab: its declared state rendered into haproxy.cfg, HAProxy reloaded.
import re, subprocess, sys, os
script = open(sys.argv[1]).read()
pools = re.findall(r"^\$POOL_NAMES\[\] = '([^']+)';", script, re.M)
fronts = re.findall(r"^\$FRONTEND_NAMES\[\] = '([^']+)';", script, re.M)
https = "check_type='HTTP'" in script and "monitor_uri='/readyz'" in script
cfg = ["global", "    maxconn 256", "    stats socket {socket} mode 600 level admin", "",
       "defaults", "    mode tcp", "    timeout connect 1s", "    timeout client 30s", "    timeout server 30s", "    timeout check 500ms", "",
       # The LB's own stats page: HAProxy runs (and its socket answers) before the apiserver pool exists.
       "listen stats", "    mode http", "    bind %s:8404" % os.environ["PLAN_FIXTURE_HOST_ADDRESS"], "    stats enable", ""]
for m in re.finditer(r"^build_frontend\('([^']+)', '[^']*', '([^']+)', '([^']+)', '([^']+)'\);", script, re.M):
    name, vip, port, pool = m.groups()
    if name in fronts and pool in pools:
        cfg += ["frontend " + name, "    bind %s:%s" % (vip, port), "    default_backend " + pool, ""]
for m in re.finditer(r"^build_pool_https\('([^']+)', '([^']+)', \[(.*)\]\);", script, re.M):
    name, port, members = m.groups()
    if name not in pools:
        continue
    cfg += ["backend " + name, "    balance roundrobin"]
    check = "check"
    if https:
        cfg += ["    option httpchk GET /readyz", "    http-check expect status 200"]
        check = "check check-ssl verify none"
    cfg += ["    default-server inter 100ms fall 2 rise 1"]
    for server, address in re.findall(r"\['([^']+)', '([^']+)'\]", members):
        cfg.append("    server %s %s:%s %s" % (server, address, port, check))
    cfg.append("")
open("{config}", "w").write("\n".join(cfg) + "\n")
subprocess.run(["/usr/sbin/haproxy", "-c", "-q", "-f", "{config}"], check=True)
pid = None
try:
    pid = int(open("/tmp/haproxy.pid").read().split()[0])
    os.kill(pid, 0)
except Exception:
    pid = None
args = ["/usr/sbin/haproxy", "-D", "-f", "{config}", "-p", "/tmp/haproxy.pid"]
if pid:
    args += ["-sf", str(pid)]
subprocess.run(args, check=True)
open("{root}/lb-deploys", "a").write("deployed\n")
print("haproxy: %d frontend(s), reset to the declared state" % len(fronts))
"#,
        socket = LB_SOCKET,
        config = LB_CONFIG,
        root = root.display()
    )
}

/// The `kubectl` shim's text: `@ROOT@` the lab's root, `@CLUSTER_DIR@` its cluster state under it.
const KUBECTL_SHIM: &str = include_str!("executor_rehearsal/kubectl-shim.sh");

/// `kubectl` on the lab. Its server is `--server`, else the one of the kubeconfig kubectl would
/// read (`$KUBECONFIG`'s first file, else `~/.kube/config`: [`write_root_kubeconfigs`] links it),
/// and `config view --minify -o jsonpath='{.clusters[0].cluster.server}'` prints that server from
/// the file alone, as kubectl does (the loopback guard asks it). Any other command needs the
/// server to answer `/readyz` with TLS verified against the cluster's CA (real curl); the answer
/// then comes from the lab's node and pod states.
fn kubectl_shim(root: &Path) -> String {
    KUBECTL_SHIM
        .replace("@ROOT@", &root.display().to_string())
        .replace("@CLUSTER_DIR@", CLUSTER_DIR)
        .replace("@WAITING_FOR@", WAITING_FOR)
        .replace("@KUBE_PROXY_CONFIGMAP@", KUBE_PROXY_CONFIGMAP)
}

/// The `kube-proxy` ConfigMap as kubeadm renders it, with the server it names.
pub fn kube_proxy_configmap(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-proxy\n  namespace: kube-system\ndata:\n  kubeconfig.conf: |-\n    apiVersion: v1\n    kind: Config\n    clusters:\n    - cluster:\n        certificate-authority: /var/lib/kube-proxy/ca.crt\n        server: {server}\n      name: default\n"
    )
}

/// The server a kubeconfig-like file names (`server: https://…`).
pub fn server_in(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix("server: ")).map(|s| s.trim().to_string())
}

/// The flags the config stack sets, as they appear in a manifest.
pub fn flag_lines(t: &Topology) -> Vec<String> {
    t.scenario.apiserver_flags().iter().map(|f| format!("- --{f}={FLAG_VALUE}")).collect()
}

/// The hosts' lab directories, by inventory node.
pub fn manifest(hosts: &FixtureHosts, t: &Topology, node: NodeIx) -> PathBuf {
    hosts.etc_kubernetes(t.name(node)).join("manifests/kube-apiserver.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read is retried on a reset connection as client-go retries a GET, whatever global flags
    /// come before its verb (`kubectl -n kube-system get cm kubeadm-config`); a write is not.
    #[test]
    fn the_kubectl_shim_retries_a_read_after_its_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, bin) = (dir.path().join("root"), dir.path().join("bin"));
        host::write_file(&root.join("kubeadm-config.yaml"), "controlPlaneEndpoint: k8s-api.lan:6443\n").unwrap();
        host::write_file(&root.join(CLUSTER_DIR).join("nodes"), "k8s-master Ready control-plane\n").unwrap();
        host::write_executable(&bin.join("kubectl"), &kubectl_shim(&root)).unwrap();
        // curl: the first request reset by the peer (56), the others answered.
        let calls = dir.path().join("calls");
        let curl = format!(
            "#!/bin/sh\necho x >> {calls}\n[ $(wc -l < {calls}) -gt 1 ] && exit 0\necho 'curl: (56) Recv failure: Connection reset by peer' >&2\nexit 56\n",
            calls = calls.display()
        );
        host::write_executable(&bin.join("curl"), &curl).unwrap();
        let kubectl = |args: &[&str]| {
            std::fs::remove_file(&calls).ok();
            let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
            let out = std::process::Command::new(bin.join("kubectl")).args(args).env("PATH", path).output().expect("the shim runs");
            (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
        };
        let server = "--server=https://127.0.0.1:1";
        let (code, stdout, stderr) = kubectl(&[server, "-n", "kube-system", "get", "cm", "kubeadm-config", "-o", "yaml"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("controlPlaneEndpoint"), "{stdout}");
        let (code, _, stderr) = kubectl(&[server, "get", "nodes"]);
        assert_eq!(code, Some(0), "{stderr}");
        let (code, _, stderr) = kubectl(&[server, "-n", "kube-system", "rollout", "restart", "daemonset/kube-proxy"]);
        assert_eq!(code, Some(1), "a write is not retried: {stderr}");
        assert!(stderr.contains("Connection reset by peer"), "{stderr}");
    }

    #[test]
    fn by_hand_edits_change_the_files_they_name_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path();
        let php = "lb/haproxy-bootstrap.php";
        host::write_file(&repo.join(php), "<?php\n").unwrap();
        host::write_file(&repo.join("kube/config"), "server: https://127.0.20.10:6443\n").unwrap();
        host::write_file(&repo.join("stacks/flags/main.tf"), "k8s_master_host = \"127.0.20.10\"\n").unwrap();
        let edit = |file: &str, change| carry_out(repo, &[RepoEdit::new(file, change)]);
        let names = edit(
            php,
            Change::Append(vec!["$POOL_NAMES[] = 'apiserver_nodes';".into(), "$FRONTEND_NAMES[] = 'apiserver_proxy_6443';".into()]),
        );
        assert!(matches!(names, ByHand::Edited(_)), "{names:?}");
        let call = edit(php, Change::Append(vec!["build_pool_https('apiserver_nodes', '6443', [['a', '127.0.20.10']]);".into()]));
        assert!(matches!(call, ByHand::Edited(_)), "{call:?}");
        let pool = edit(php, Change::PoolMembers("[['a', '127.0.20.10'], ['b', '127.0.20.11']]".into()));
        assert!(matches!(pool, ByHand::Edited(_)), "{pool:?}");
        let script = std::fs::read_to_string(repo.join(php)).unwrap();
        assert!(script.contains("$POOL_NAMES[] = 'apiserver_nodes';\n$FRONTEND_NAMES[] = 'apiserver_proxy_6443';"), "{script}");
        assert!(script.contains("build_pool_https('apiserver_nodes', '6443', [['a', '127.0.20.10'], ['b', '127.0.20.11']]);"), "{script}");
        edit("kube/config", Change::Replace { from: "https://127.0.20.10:6443".into(), to: "https://127.0.20.99:6443".into() });
        assert_eq!(std::fs::read_to_string(repo.join("kube/config")).unwrap(), "server: https://127.0.20.99:6443\n");
        let hosts = |value: &str| Change::Assign { key: "k8s_master_hosts".into(), value: value.into() };
        edit("stacks/flags/main.tf", hosts("[\"127.0.20.10\", \"127.0.20.11\"]"));
        edit("stacks/flags/main.tf", hosts("[\"127.0.20.10\"]"));
        let main = std::fs::read_to_string(repo.join("stacks/flags/main.tf")).unwrap();
        assert_eq!(main, "k8s_master_host = \"127.0.20.10\"\nk8s_master_hosts = [\"127.0.20.10\"]\n");
        // A replacement whose text is not in the file cannot be made: the run stops there.
        let missing = edit("kube/config", Change::Replace { from: "https://127.0.20.10:6443".into(), to: "x".into() });
        assert!(matches!(missing, ByHand::Unreadable(_)), "{missing:?}");
        let noted = edit("stacks/flags/main.tf", Change::Described("wrap each resource in for_each".into()));
        assert!(matches!(noted, ByHand::Edited(_)), "{noted:?}");
        assert!(std::fs::read_to_string(repo.join("stacks/flags/main.tf"))
            .unwrap()
            .ends_with("# by hand: wrap each resource in for_each\n"));
        assert_eq!(edit("docs/none.md", Change::Replace { from: "x".into(), to: "y".into() }), ByHand::NoCounterpart);
    }
}
