//! The environment's profiles rendered to commands: the load balancer (pfSense bootstrap
//! script, HAProxy on a Linux box, keepalived + HAProxy on the masters, kube-vip), the hypervisor
//! (Proxmox, libvirt, none) and the IaC tool (terragrunt, none). Each operation's text for a
//! profile lives here, and nothing of one profile appears in another's plan.

use super::{by_hand, in_repo, on_node, IacStack, Words};
use crate::hand::{Change, HaproxyBackend, HaproxyFrontend, HaproxyServer, RepoEdit};
use crate::plan::{Command, Part, RunsOn};
use crate::scenario::{HypervisorKind, IacKind, LbKind};
use crate::topology::Topology;

/// The HAProxy config file and stats socket on a Linux machine (Debian's package).
const HAPROXY_CFG: &str = "/etc/haproxy/haproxy.cfg";
const HAPROXY_SOCKET: &str = "/run/haproxy/admin.sock";
/// The stats socket the pfSense package opens.
const PFSENSE_SOCKET: &str = "/tmp/haproxy.socket";
const KUBE_VIP_MANIFEST: &str = "/etc/kubernetes/manifests/kube-vip.yaml";
const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";

/// The load balancer machine, for the profiles that have one.
fn lb_machine(t: &Topology) -> RunsOn {
    RunsOn::LoadBalancer(t.scenario.load_balancer.name.clone())
}

/// HAProxy's apiserver frontend at the VIP and its backend with `pool` (node names) as servers
/// and the scenario's health check: what the Linux HAProxy and keepalived profiles declare in the
/// config file, and what the lab renders a starting state's file from.
pub fn haproxy_sections(t: &Topology, pool: &[String]) -> (HaproxyFrontend, HaproxyBackend) {
    let endpoint = &t.scenario.control_plane_endpoint;
    let port = t.apiserver_port();
    let address = |name: &str| t.nodes.iter().find(|n| n.name == name).map_or_else(|| name.to_string(), |n| n.address.to_string());
    let name = "apiserver".to_string();
    let frontend = HaproxyFrontend { name: name.clone(), bind: format!("{}:{}", endpoint.vip, endpoint.port), backend: name.clone() };
    let servers = pool.iter().map(|n| HaproxyServer { name: n.clone(), address: format!("{}:{port}", address(n)) }).collect();
    (frontend, HaproxyBackend { name, check: t.health_check, servers })
}

/// Reserving the VIP: an alias on the load balancer, or an address only the masters' daemon holds.
pub(super) fn reserve_vip(t: &Topology) -> Vec<Command> {
    let lb = &t.scenario.load_balancer;
    let vip = t.scenario.control_plane_endpoint.vip;
    match lb.kind {
        LbKind::PfsenseBootstrap => vec![
            by_hand(format!("add Virtual IP {vip}/24 (IP alias) on {}", lb.name)),
            by_hand(format!("add host alias k8s-apiserver-vip -> {vip}")),
            by_hand(format!("register {vip} in IPAM")),
        ],
        LbKind::Haproxy => vec![
            by_hand(format!(
                "on {}: add {vip} to the interface that faces the masters, persistently (netplan or /etc/network/interfaces)",
                lb.name
            )),
            by_hand(format!("register {vip} in IPAM")),
        ],
        LbKind::Keepalived | LbKind::KubeVip => {
            vec![by_hand(format!(
                "register {vip} in IPAM as the masters' virtual IP ({} holds it; no machine may own it)",
                lb.kind.as_str()
            ))]
        }
    }
}

/// The VIP's frontend and its first pool, declared where the profile keeps its config.
pub(super) fn declare_frontend(w: &Words<'_>, pool: &[String]) -> Vec<Command> {
    let t = w.t;
    let s = &t.scenario;
    let (lb, vip, port) = (&s.load_balancer, s.control_plane_endpoint.vip, s.control_plane_endpoint.port);
    match lb.kind {
        LbKind::PfsenseBootstrap => {
            let script = lb.bootstrap_script();
            let edit = |change| Command::edits(vec![RepoEdit::new(script, change)]);
            vec![
                // The scenario's health check, as the twin judges the pool by it.
                edit(Change::Described(format!("build_pool_https() with {}", t.health_check.pfsense_pool_options()))),
                edit(Change::Append(vec![
                    "$POOL_NAMES[] = 'apiserver_nodes';".to_string(),
                    format!("$FRONTEND_NAMES[] = 'apiserver_proxy_{port}';"),
                ])),
                edit(Change::Append(vec![format!("build_pool_https('apiserver_nodes', '{port}', [{}]);", w.pool(pool))])),
                edit(Change::Append(vec![format!(
                    "build_frontend('apiserver_proxy_{port}', 'K8s apiserver VIP', '{vip}', '{port}', 'apiserver_nodes');"
                )])),
            ]
        }
        LbKind::Haproxy | LbKind::Keepalived => {
            let (frontend, backend) = haproxy_sections(t, pool);
            let sections = Change::HaproxySections { frontend, backend };
            let mut edits = vec![Command::edits(vec![RepoEdit::new(lb.config_file(), sections)])];
            if lb.kind == LbKind::Keepalived {
                edits.push(Command::edits(vec![RepoEdit::new(
                    keepalived_config(t),
                    Change::Described(format!(
                        "vrrp_instance apiserver {{ interface {}, virtual_router_id unique in the subnet, virtual_ipaddress {{ {vip} }}, track_script checking https://localhost:{}/healthz }}",
                        lb.interface(),
                        t.apiserver_port()
                    )),
                )]));
            }
            edits
        }
        LbKind::KubeVip => vec![],
    }
}

/// The keepalived config in the infra repo, beside HAProxy's.
fn keepalived_config(t: &Topology) -> String {
    let cfg = t.scenario.load_balancer.config_file();
    match cfg.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/keepalived.conf"),
        None => "keepalived.conf".to_string(),
    }
}

/// The apiserver pool as declared.
pub(super) fn declare_pool(w: &Words<'_>, pool: &[String]) -> Vec<Command> {
    let lb = &w.t.scenario.load_balancer;
    match lb.kind {
        LbKind::PfsenseBootstrap => {
            vec![Command::edits(vec![RepoEdit::new(lb.bootstrap_script(), Change::PoolMembers(format!("[{}]", w.pool(pool))))])]
        }
        LbKind::Haproxy | LbKind::Keepalived => {
            vec![Command::edits(vec![RepoEdit::new(lb.config_file(), Change::HaproxyServers(haproxy_sections(w.t, pool).1))])]
        }
        LbKind::KubeVip => vec![],
    }
}

/// HAProxy's config installed after `haproxy -c` accepts it, then a graceful reload (a start
/// where it does not run yet): the old process finishes its connections, no frontend bounces.
fn install_haproxy_config(t: &Topology, at: RunsOn) -> Vec<Part> {
    let local = format!("{}/{}", t.scenario.infra_repo, t.scenario.load_balancer.config_file());
    vec![
        Part::Upload { local, to: at.clone(), remote: "/tmp/haproxy.cfg.new".to_string() },
        Part::Run {
            at: Some(at),
            shell: format!(
                "sudo haproxy -c -f /tmp/haproxy.cfg.new && sudo install -m 644 /tmp/haproxy.cfg.new {HAPROXY_CFG} && sudo systemctl reload-or-restart haproxy"
            ),
        },
    ]
}

/// Making the load balancer serve what is declared.
pub(super) fn deploy_lb(w: &Words<'_>) -> Vec<Command> {
    let t = w.t;
    let lb = &t.scenario.load_balancer;
    match lb.kind {
        LbKind::PfsenseBootstrap => {
            let script = lb.bootstrap_script();
            let file = script.rsplit('/').next().unwrap_or(script);
            vec![w.command(vec![
                Part::Upload { local: script.to_string(), to: lb_machine(t), remote: format!("/tmp/{file}") },
                Part::Run { at: Some(lb_machine(t)), shell: format!("php /tmp/{file}") },
            ])]
        }
        LbKind::Haproxy => vec![w.command(install_haproxy_config(t, lb_machine(t)))],
        // The masters' HAProxy: see `deploy_lb_on`.
        LbKind::Keepalived | LbKind::KubeVip => vec![],
    }
}

/// The masters' HAProxy config, installed and reloaded on each (keepalived's profile).
pub(super) fn deploy_lb_on(w: &Words<'_>, nodes: &[String]) -> Vec<Command> {
    nodes.iter().map(|n| w.command(install_haproxy_config(w.t, RunsOn::Node(n.clone())))).collect()
}

/// The VIP's daemon started on a master. For keepalived: the packages where missing, a
/// persistent `ip_nonlocal_bind` (HAProxy on a master that does not hold the VIP still binds it,
/// after a reboot too), the config with this master's priority, then keepalived.
pub(super) fn start_vip_daemon(w: &Words<'_>, node: &str) -> Vec<Command> {
    let t = w.t;
    let s = &t.scenario;
    let (lb, vip) = (&s.load_balancer, s.control_plane_endpoint.vip);
    match lb.kind {
        LbKind::Keepalived => {
            // The first master has the highest priority; every later one a step lower.
            let rank = t.target_masters().iter().position(|x| t.name(x) == node).unwrap_or_default();
            let priority = 150 - 10 * rank.min(10);
            let at = RunsOn::Node(node.to_string());
            vec![w.command(vec![
                Part::Upload { local: format!("{}/{}", s.infra_repo, keepalived_config(t)), to: at.clone(), remote: "/tmp/keepalived.conf".to_string() },
                Part::Run {
                    at: Some(at),
                    shell: format!(
                        "{{ command -v keepalived && command -v haproxy; }} >/dev/null || sudo apt-get install -y keepalived haproxy; echo net.ipv4.ip_nonlocal_bind=1 | sudo tee /etc/sysctl.d/60-apiserver-vip.conf >/dev/null && sudo sysctl -q -p /etc/sysctl.d/60-apiserver-vip.conf && sudo sed 's/priority .*/priority {priority}/' /tmp/keepalived.conf | sudo install -m 644 /dev/stdin {KEEPALIVED_CONF} && sudo systemctl enable --now keepalived && sudo systemctl reload keepalived"
                    ),
                },
            ])]
        }
        LbKind::KubeVip => {
            let image = format!("ghcr.io/kube-vip/kube-vip:{}", lb.kube_vip_version.as_deref().unwrap_or("v0.8.9"));
            vec![w.command(vec![on_node(
                node,
                format!(
                    "sudo ctr image pull {image} && sudo ctr run --rm --net-host {image} vip /kube-vip manifest pod --interface {} --address {vip} --controlplane --arp --leaderElection | sudo install -m 600 /dev/stdin {KUBE_VIP_MANIFEST}",
                    lb.interface()
                ),
            )])]
        }
        LbKind::PfsenseBootstrap | LbKind::Haproxy => vec![],
    }
}

/// How to tell the VIP's daemon runs on `node`.
pub(super) fn vip_daemon_probe(t: &Topology, node: &str) -> Option<Part> {
    match t.scenario.load_balancer.kind {
        LbKind::Keepalived => Some(on_node(node, "systemctl is-active --quiet keepalived")),
        LbKind::KubeVip => Some(on_node(node, format!("sudo test -s {KUBE_VIP_MANIFEST}"))),
        LbKind::PfsenseBootstrap | LbKind::Haproxy => None,
    }
}

/// The read-only command that shows something listens on the VIP, and the machine it runs on.
pub fn vip_listening(t: &Topology) -> (String, String) {
    let s = &t.scenario;
    let (lb, vip, port) = (&s.load_balancer, s.control_plane_endpoint.vip, s.control_plane_endpoint.port);
    let m0 = t.name(t.existing_master()).to_string();
    match lb.kind {
        LbKind::PfsenseBootstrap => (lb.name.clone(), format!("sockstat -l | grep {vip}:{port}")),
        LbKind::Haproxy => (lb.name.clone(), format!("ss -ltnH | grep -F '{vip}:{port}'")),
        LbKind::Keepalived => {
            (m0, format!("ip -4 -o addr show {} | grep -F ' {vip}/' && ss -ltnH | grep -F '{vip}:{port}'", lb.interface()))
        }
        LbKind::KubeVip => (m0, format!("ip -4 -o addr show {} | grep -F ' {vip}/'", lb.interface())),
    }
}

/// The read-only command that lists the pool's servers and their state, where there is a pool.
pub fn backends_state(t: &Topology) -> Option<(String, String)> {
    let lb = &t.scenario.load_balancer;
    let m0 = t.name(t.existing_master()).to_string();
    match lb.kind {
        LbKind::PfsenseBootstrap => {
            Some((lb.name.clone(), format!("echo 'show servers state' | socat {PFSENSE_SOCKET} stdio | grep apiserver")))
        }
        LbKind::Haproxy => {
            Some((lb.name.clone(), format!("echo 'show servers state' | sudo socat {HAPROXY_SOCKET} stdio | grep apiserver")))
        }
        LbKind::Keepalived => Some((m0, format!("echo 'show servers state' | sudo socat {HAPROXY_SOCKET} stdio | grep apiserver"))),
        LbKind::KubeVip => None,
    }
}

/// A snapshot of a node's VM, by the hypervisor's tool or by hand.
pub(super) fn vm_snapshot(w: &Words<'_>, node: &str, name: &str) -> Vec<Command> {
    match vm_of(w.t, node) {
        Vm::Proxmox { host, vmid } => vec![w.command(vec![Part::Run { at: Some(host), shell: format!("qm snapshot {vmid} {name}") }])],
        Vm::Libvirt { host } => {
            vec![w.command(vec![Part::Run { at: Some(host), shell: format!("virsh snapshot-create-as {node} {name}") }])]
        }
        Vm::Provided => vec![by_hand(format!(
            "take a restorable image of {node}'s disk named {name} with your platform's tool; confirm it is listed before going on"
        ))],
    }
}

/// How to tell the snapshot exists, where a tool can tell.
pub(super) fn vm_snapshot_probe(t: &Topology, node: &str, name: &str) -> Option<Part> {
    match vm_of(t, node) {
        Vm::Proxmox { host, vmid } => Some(Part::Run { at: Some(host), shell: format!("qm listsnapshot {vmid} | grep -qw {name}") }),
        Vm::Libvirt { host } => Some(Part::Run { at: Some(host), shell: format!("virsh snapshot-list {node} --name | grep -qx {name}") }),
        Vm::Provided => None,
    }
}

/// Where a node's VM lives, as its hypervisor's tool names it.
enum Vm {
    Proxmox {
        host: RunsOn,
        vmid: u32,
    },
    Libvirt {
        host: RunsOn,
    },
    /// The operator provides the machine.
    Provided,
}

fn vm_of(t: &Topology, node: &str) -> Vm {
    let n = t.nodes.iter().find(|n| n.name == node);
    let Some(h) = n.and_then(|n| t.scenario.hypervisors.get(n.hypervisor)) else { return Vm::Provided };
    let host = RunsOn::Hypervisor(h.name.clone());
    match h.kind {
        HypervisorKind::Proxmox => Vm::Proxmox { host, vmid: n.and_then(|n| n.vmid).unwrap_or_default() },
        HypervisorKind::Libvirt => Vm::Libvirt { host },
        HypervisorKind::None => Vm::Provided,
    }
}

/// A new master's VM declared in the IaC repo, or made by hand where there is none.
pub(super) fn declare_vm(w: &Words<'_>, node: &str) -> Vec<Command> {
    let t = w.t;
    let s = &t.scenario;
    let n = t.nodes.iter().find(|n| n.name == node);
    let (vcpu, ram, disk) =
        n.map_or((0, 0.0, 0), |n| (n.vcpu.unwrap_or_default(), n.ram_gb.unwrap_or_default(), n.disk_gb.unwrap_or_default()));
    let size = format!("{vcpu} vCPU / {} GB RAM / {disk} GB disk", crate::capacity::gb(ram));
    let id = match vm_of(t, node) {
        Vm::Proxmox { vmid, .. } => format!(", VMID {vmid}"),
        _ => String::new(),
    };
    let hypervisor = n.and_then(|n| s.hypervisors.get(n.hypervisor)).map_or("", |h| h.name.as_str());
    match (s.iac.as_ref().filter(|i| i.kind == IacKind::Terragrunt), vm_of(t, node)) {
        (Some(iac), Vm::Proxmox { .. } | Vm::Libvirt { .. }) => {
            let template = s.vm_template.as_ref().map(|v| format!(" from the {} template", v.name)).unwrap_or_default();
            let join = if s.vm_template.as_ref().is_some_and(|v| v.join_command_for_masters) { ", k8s_join_command = \"\"" } else { "" };
            vec![Command::edits(vec![RepoEdit::new(
                &iac.vms,
                Change::Described(format!("module \"{node}\"{template} on {hypervisor}, {size}{id}, IP {}{join}", w.address(node))),
            )])]
        }
        (_, Vm::Provided) => vec![by_hand(format!(
            "provide {node} at {} ({size}) with the cluster's containerd, kubeadm and kubelet, reachable over SSH as {}",
            w.address(node),
            s.ssh_user
        ))],
        (None, _) => vec![by_hand(format!(
            "create VM {node} on {hypervisor} ({size}{id}, IP {}) with the cluster's containerd, kubeadm and kubelet",
            w.address(node)
        ))],
    }
}

/// What applies a stack of the infra repo: the IaC tool, or by hand where there is none.
pub(super) fn iac_apply(w: &Words<'_>, stack: &IacStack) -> Vec<Command> {
    match super::iac_command(w.t, "apply", stack) {
        Some(shell) => vec![w.command(vec![in_repo(shell)])],
        None => match stack {
            IacStack::Vm { node } => vec![by_hand(format!("power {node} on and confirm it answers over SSH"))],
            IacStack::Dns => vec![by_hand("make the DNS server serve the records as edited; confirm with getent hosts")],
            _ => {
                let (dir, _) = super::stack_target(w.t, stack);
                vec![by_hand(format!("apply {dir} the way this repo is applied; confirm it changed what the edit declares"))]
            }
        },
    }
}
