//! The starter's sections, field by field, each with what it is in the words of docs/scenario.md,
//! and the placeholders (under `TODO:`) for what the operator did not say.

use super::profile;
use super::yaml::{number, text, Entry, Value};
use super::{Answers, Host, Machine, Shape};
use crate::scenario::HypervisorKind;

/// Placeholder sizes of a new master VM: kubeadm's minimum is 2 vCPUs and 2 GB; etcd and the
/// apiserver of a small cluster live well in 4 vCPUs and 8 GB.
const NEW_MASTER_VCPU: u32 = 4;
const NEW_MASTER_RAM_GB: u32 = 8;
const NEW_MASTER_DISK_GB: u32 = 64;
/// Placeholder VM ids: the first master's, then the new masters' from the next one on.
const FIRST_MASTER_VMID: u32 = 100;
/// Placeholder RAM of a hypervisor, physical and already allocated (GB).
const HYPERVISOR_RAM_PHYSICAL_GB: u32 = 128;
const HYPERVISOR_RAM_ALLOCATED_GB: u32 = 64;

/// The comment lines over the whole file.
pub(super) fn header(a: &Answers) -> Vec<String> {
    let mut lines = vec![
        format!("plan scenario '{}', written by plan init: every field is explained in docs/scenario.md.", a.name),
        "Lines marked TODO hold placeholders that make the file valid, not facts about your cluster: replace each \
         (grep TODO) before you trust plan check, plan capacity or plan execute."
            .to_string(),
    ];
    lines.extend(a.provenance.iter().cloned());
    lines
}

/// Every top-level section, in docs/scenario.md's order.
pub(super) fn document(a: &Answers, s: &Shape) -> Vec<Entry> {
    let version = text(a.kubernetes_version.as_deref().unwrap_or(super::DEFAULT_KUBERNETES));
    vec![
        Entry::scalar(
            "name",
            text(&a.name),
            "The scenario's name; it names the plan, and an exported plan file must carry the same name.",
        ),
        Entry::new("kubernetes", Value::Map(kubernetes(a, s, &version)), "The cluster's Kubernetes version and etcd learner mode."),
        Entry::scalar(
            "infra_repo",
            text("/home/TODO/infra"),
            "Where the infra repository (kubeconfigs, CI files, stacks) lives on the operator's machine; repo-side commands cd into it.",
        )
        .todo("the path of your infra repository"),
        Entry::scalar("ssh_user", text("root"), "The SSH user for cluster nodes.")
            .todo("the user plan execute logs in as on every node (sudo without a password)"),
        Entry::new(
            "hypervisors",
            Value::Items(s.hypervisors.iter().map(|h| hypervisor(a, h)).collect()),
            "The hosts the VMs run on (1 to 8).",
        ),
        Entry::new("nodes", Value::Items(nodes(a, s)), &with_observed(
            "The cluster's nodes today: exactly one control-plane node, any number of workers.",
            "Left out",
            &a.observed.skipped_nodes,
        )),
        Entry::new(
            "new_masters",
            Value::Items(new_masters(a, s)),
            "The master VMs to create, exactly target.control_plane_count - 1; the list's order is the order they join.",
        ),
        Entry::new(
            "target",
            Value::Map(vec![Entry::scalar(
                "control_plane_count",
                number(a.masters),
                "How many control-plane nodes the cluster ends with: 3, 5 or 7.",
            )]),
            "How many control-plane nodes the cluster ends with.",
        ),
        Entry::new("control_plane_endpoint", Value::Map(endpoint(s)), &with_observed(
            "The VIP, FQDN and port every client will use.",
            "kubeadm-config's apiServer.certSANs today",
            &a.observed.cert_sans,
        )),
        Entry::new("load_balancer", Value::Map(profile::load_balancer(a.profiles.lb, s.lb_host)), "What serves the VIP."),
        metallb_pool(),
        Entry::new("dns", Value::Map(profile::dns(a.profiles.dns, s.zone)), "The zone and the records the migration adds or deletes."),
        consumers(s),
        Entry::new("cronjobs", Value::Items(Vec::new()), "CronJobs to unpin from the old master: { name, namespace, pinned_to, path, line, backup } each.")
            .todo("list the CronJobs pinned to the first master (node_name), the etcd backup job with backup: true"),
        Entry::new(
            "operators",
            Value::Items(Vec::new()),
            "Operators whose pods step 0.6 looks at after the apiserver's brief outage: { namespace, selector } each. Empty: 0.6 lists every pod that is not Running.",
        ),
        Entry::new("etcd_backup", Value::Map(etcd_backup()), "Where etcd snapshots go and how old the newest is."),
        profile::iac(a.profiles.iac),
        reboot_gate(),
        upgrade_chain(&s.first_master.name),
        Entry::new(
            "config_stack",
            Value::Map(config_stack(a)),
            "The IaC stack that sets apiserver flags on the master(s) (optional). Absent: the flags live in kubeadm-config's apiServer.extraArgs and every join renders them.",
        )
        .commented_out(),
        Entry::new("kubeadm", Value::Map(kubeadm()), "Lifetimes of the uploaded certs and the join token."),
        profile::vm_template(a.profiles.hypervisor, &version),
        Entry::new("capacity", Value::Map(capacity()), "The capacity policy plan capacity and the hypervisor-ram invariant judge against."),
        Entry::scalar("tracking_issue", text("OPS-1234"), "The issue that tracks the migration, of any tracker; the last phase closes it.")
            .commented_out(),
    ]
}

/// `about`, and what the cluster said about the field when it said anything.
fn with_observed(about: &str, what: &str, seen: &[String]) -> String {
    if seen.is_empty() {
        about.to_string()
    } else {
        format!("{about} {what} (read from the cluster): {}.", seen.join("; "))
    }
}

fn kubernetes(a: &Answers, s: &Shape, version: &str) -> Vec<Entry> {
    let about = with_observed(
        "The cluster's Kubernetes version, major.minor (a leading v and a patch part are accepted and ignored).",
        "The kubelets differ",
        &a.observed.kubelet_versions,
    );
    let written = Entry::scalar("version", version.to_string(), &about);
    vec![
        match a.kubernetes_version {
            Some(_) => written,
            None => written.todo("your cluster's version (kubectl version), or plan init --kubernetes"),
        },
        apiserver_port(s.apiserver_port),
        Entry::scalar(
            "etcd_learner_mode",
            text("auto"),
            "Whether kubeadm join --control-plane adds the new etcd member as a non-voting learner first: auto follows the version (on from 1.29), on, off.",
        ),
    ]
}

fn apiserver_port(port: Option<u16>) -> Entry {
    let about = "The port kube-apiserver listens on, on every master; absent: the endpoint's port. With keepalived it must differ from the endpoint's: HAProxy on each master holds the VIP's port.";
    match port {
        Some(port) => Entry::scalar("apiserver_port", number(port), about),
        None => Entry::scalar("apiserver_port", number(super::DEFAULT_PORT), about).commented_out(),
    }
}

fn hypervisor(a: &Answers, h: &Host) -> Vec<Entry> {
    let mut entries = vec![
        Entry::scalar("name", text(h.name), "Unique among hypervisors; nodes, new masters and the load balancer refer to it."),
        profile::hypervisor_kind(a.profiles.hypervisor),
    ];
    if let Some(address) = h.address {
        entries.push(Entry::scalar(
            "address",
            number(address),
            "Where the hypervisor is reached (VM snapshots, qm/virsh commands); required for proxmox and libvirt.",
        ));
    }
    entries.extend(hypervisor_ram());
    entries
}

/// A hypervisor's RAM and CPU figures: placeholders, the operator's to measure.
fn hypervisor_ram() -> Vec<Entry> {
    vec![
        Entry::scalar("ram_physical_gb", number(HYPERVISOR_RAM_PHYSICAL_GB), "Physical RAM in GB; more than 0.")
            .todo("the host's physical RAM"),
        Entry::scalar(
            "ram_allocated_gb",
            number(HYPERVISOR_RAM_ALLOCATED_GB),
            "RAM already allocated to VMs on this host, the inventory's own nodes included; the new masters are added on top of it.",
        )
        .todo("the RAM the host's VMs have today"),
        Entry::scalar("swap_used_gb", number(0), "Swap in use, reported by plan capacity as a sign of memory pressure."),
        Entry::scalar("cpus_physical", number(16), "Physical cores, when known; vCPU commitment is reported against it.").commented_out(),
        Entry::scalar("vcpu_allocated", number(32), "vCPUs already allocated to VMs on this host, when known.").commented_out(),
    ]
}

fn nodes(a: &Answers, s: &Shape) -> Vec<Vec<Entry>> {
    let on = s.hypervisors[0].name;
    let mut nodes = vec![first_master(s.first_master, on, a.profiles.hypervisor)];
    nodes.extend(a.workers.iter().map(|w| node(w, "worker", on)));
    nodes
}

fn node(m: &Machine, role: &str, hypervisor: &str) -> Vec<Entry> {
    vec![
        Entry::scalar("name", text(&m.name), "Unique across nodes and new_masters."),
        Entry::scalar("role", text(role), "control-plane (exactly one node) or worker."),
        Entry::scalar("address", number(m.address), "Unique among all addresses; not the VIP."),
        Entry::scalar("hypervisor", text(hypervisor), "The name of a listed hypervisor."),
    ]
}

/// The control-plane node: its VM id where the plan snapshots it with `qm`, its sizes shown.
fn first_master(m: &Machine, hypervisor: &str, kind: HypervisorKind) -> Vec<Entry> {
    let mut entries = node(m, "control-plane", hypervisor);
    let placed = entries.pop().expect("node() ends with the hypervisor").todo("the hypervisor this VM runs on");
    let vmid =
        Entry::scalar("vmid", number(FIRST_MASTER_VMID), "The VM id on the hypervisor; the plan snapshots the master VM by it (proxmox).");
    entries.push(match kind {
        HypervisorKind::Proxmox => vmid.todo("the first master's VM id on its hypervisor"),
        HypervisorKind::Libvirt | HypervisorKind::None => vmid.commented_out(),
    });
    entries.push(placed);
    entries.push(Entry::scalar("ram_gb", number(16), "RAM of the VM in GB.").commented_out());
    entries.push(Entry::scalar("ram_used_gb", number(4), "Measured memory use, for sizing advice (plan capacity).").commented_out());
    entries
}

fn new_masters(a: &Answers, s: &Shape) -> Vec<Vec<Entry>> {
    (0..a.new_masters.len())
        .map(|n| {
            let m = &a.new_masters[n];
            let on = s.hypervisors[n % s.hypervisors.len()].name;
            let vmid = Entry::scalar(
                "vmid",
                number(FIRST_MASTER_VMID + 1 + n as u32),
                "The VM id Proxmox creates it with (qm's; needed on proxmox only); unique among all VM ids.",
            );
            let vmid = match a.profiles.hypervisor {
                HypervisorKind::Proxmox => vmid.todo("a VM id free on its hypervisor"),
                HypervisorKind::Libvirt | HypervisorKind::None => vmid.commented_out(),
            };
            vec![
                Entry::scalar("name", text(&m.name), "Unique across nodes and new_masters."),
                Entry::scalar("address", number(m.address), "Unique among all addresses; not the VIP; not inside metallb_pool."),
                vmid,
                Entry::scalar("hypervisor", text(on), "The name of a listed hypervisor the VM is created on."),
                Entry::scalar("vcpu", number(NEW_MASTER_VCPU), "vCPUs; more than 0.").todo("the size you want"),
                Entry::scalar(
                    "ram_gb",
                    number(NEW_MASTER_RAM_GB),
                    "RAM in GB; more than 0. Counted against the hypervisor's RAM from the step that creates the VM.",
                )
                .todo("the size you want (plan capacity suggests one)"),
                Entry::scalar("disk_gb", number(NEW_MASTER_DISK_GB), "Disk in GB.").todo("the size you want"),
            ]
        })
        .collect()
}

fn endpoint(s: &Shape) -> Vec<Entry> {
    vec![
        Entry::scalar(
            "vip",
            number(s.vip),
            "The virtual IP the load balancer serves the API on; it becomes controlPlaneEndpoint and a certificate SAN. A free address.",
        ),
        Entry::scalar("fqdn", text(s.fqdn), "The DNS name for the VIP; added to the cert SANs and to the zone."),
        Entry::scalar(
            "port",
            number(s.port),
            "The API port on the VIP, and on the masters unless kubernetes.apiserver_port says otherwise; every consumer's server uses the masters' port today.",
        ),
    ]
}

fn metallb_pool() -> Entry {
    Entry::new(
        "metallb_pool",
        Value::Map(vec![
            Entry::scalar("first", text("FIRST"), "First address of the pool."),
            Entry::scalar("last", text("LAST"), "Last address, inclusive."),
        ]),
        "The MetalLB address pool, so the VIP and new masters can be checked against it (optional).",
    )
    .commented_out()
}

fn consumers(s: &Shape) -> Entry {
    let server = format!("https://{}:{}", s.first_master.address, s.apiserver_port.unwrap_or(s.port));
    Entry::new(
        "consumers",
        Value::Items(Vec::new()),
        &format!(
            "Everything that reaches the API server by the old master's address ({server}); phase 4 points each at the VIP. \
             {{ name, kind: kubeconfig | ci-pipeline | user-portal | join-command, path, line, server, oidc }} each, e.g. \
             {{ name: admin-kubeconfig, kind: kubeconfig, path: kubeconfig, server: {server} }}."
        ),
    )
    .todo("list every file of your infra repo that names the first master's address as the API server")
}

fn etcd_backup() -> Vec<Entry> {
    vec![
        Entry::scalar("path", text("/var/backups/etcd"), "Where the etcd snapshots are written; the pre-flight lists it.")
            .todo("where your etcd snapshots go"),
        Entry::scalar(
            "age_h",
            number(24),
            "Age in hours of the newest snapshot when the migration starts; a snapshot restore loses the writes since then.",
        )
        .todo("how old your newest snapshot will be"),
    ]
}

fn reboot_gate() -> Entry {
    Entry::new(
        "reboot_gate",
        Value::Map(vec![
            Entry::scalar("name", text("kured"), "The gate's name (its DaemonSet)."),
            Entry::scalar("namespace", text("kube-system"), "The namespace its DaemonSet runs in."),
            Entry::scalar("path", text("stacks/kured/main.tf"), "The file in the infra repo that defines it."),
            Entry::scalar(
                "control_plane_quorum_check",
                number(false),
                "The gate already refuses a reboot that would cost etcd quorum.",
            ),
        ]),
        "The reboot gate (kured sentinel) that must learn about control-plane quorum (optional). Absent: nothing reboots masters on its own, and the plan has no phase 5.",
    )
    .commented_out()
}

fn upgrade_chain(first_master: &str) -> Entry {
    Entry::new(
        "upgrade_chain",
        Value::Map(vec![
            Entry::scalar("path", text("scripts/upgrade-step.sh"), "The version-upgrade script in the infra repo."),
            Entry::new("masters", Value::Flow(vec![text(first_master)]), "The masters it upgrades today."),
        ]),
        "The version-upgrade script that lists the masters (optional). Absent: the plan has no phase 7.",
    )
    .commented_out()
}

fn config_stack(a: &Answers) -> Vec<Entry> {
    let mut about = "The apiserver flags the stack sets; every master behind the VIP needs them.".to_string();
    if !a.observed.apiserver_extra_args.is_empty() {
        about.push_str(&format!(
            " kubeadm-config's apiServer.extraArgs (read from the cluster) sets {}: a join copies those, list here only flags set outside kubeadm-config.",
            a.observed.apiserver_extra_args.join(", ")
        ));
    }
    vec![
        Entry::scalar("name", text("apiserver-flags"), "The stack's name.").todo("the stack of your infra repo that sets apiserver flags"),
        Entry::scalar("path", text("stacks/apiserver-flags"), "Its directory in the infra repo.").todo("its directory"),
        Entry::new("apiserver_flags", Value::Flow(Vec::new()), &about),
        Entry::scalar(
            "hosts",
            text("list"),
            "single: one host variable, the stack reaches only one master (phase 1.5 refactors it); list: a list of hosts looped over with for_each.",
        )
        .todo("single if your stack names one master host"),
        Entry::scalar("host_variable", text("master_host"), "The stack's variable that names the master host; its list form adds an s.")
            .todo("your stack's variable"),
    ]
}

fn kubeadm() -> Vec<Entry> {
    vec![
        Entry::scalar(
            "certs_ttl_min",
            number(120),
            "Lifetime in minutes of the kubeadm-certs Secret from upload-certs; a join after it is refused.",
        ),
        Entry::scalar("token_ttl_h", number(24), "Lifetime in hours of the bootstrap token."),
    ]
}

fn capacity() -> Vec<Entry> {
    vec![Entry::scalar("ram_headroom_percent", number(5), "RAM to keep free on every hypervisor, as a percentage of physical RAM.")]
}
