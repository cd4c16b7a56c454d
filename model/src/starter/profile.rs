//! The one place a profile value becomes the starter's fields: the load balancer's kind and what
//! it needs, the hypervisors' kind, the `iac` section, `dns.via` and whether a VM template is
//! written. The words are docs/scenario.md's ("Profiles" and the sections' tables).

use super::yaml::{number, text, Entry, Value};
use super::Machine;
use crate::scenario::{DnsVia, HypervisorKind, IacKind, LbKind};

/// The placeholder interface that carries the VIP (keepalived, kube-vip).
const VIP_INTERFACE: &str = "eth0";

/// `load_balancer`'s fields for `kind`; `machine` is the separate box (none on the masters).
pub(super) fn load_balancer(kind: LbKind, machine: Option<&Machine>) -> Vec<Entry> {
    let mut entries = vec![Entry::scalar(
        "kind",
        text(kind.as_str()),
        "What serves the VIP: pfsense-bootstrap (HAProxy on pfSense, a bootstrap script), haproxy (HAProxy on a Linux box), keepalived (keepalived + HAProxy on every master), kube-vip (static pods on the masters).",
    )];
    if let Some(machine) = machine {
        entries.push(Entry::scalar("name", text(&machine.name), "The box's name, as steps and faults name it."));
        entries.push(Entry::scalar(
            "address",
            number(machine.address),
            "Where it is reached over SSH; unique among all addresses; not the VIP.",
        ));
        let user = Entry::scalar("ssh_user", text("admin"), "The SSH user on the box.");
        entries.push(if kind == LbKind::Haproxy { user.todo("the user that may reload HAProxy on the box") } else { user });
    }
    if kind.on_masters() {
        entries.push(
            Entry::scalar("interface", text(VIP_INTERFACE), "The masters' network interface that carries the VIP.")
                .todo("the interface of your masters' network (ip -br addr)"),
        );
    }
    if kind.has_pool() {
        entries.push(Entry::scalar(
            "health_check",
            text("https-readyz"),
            "How HAProxy decides a backend is healthy: tcp (a TCP connect, so a listening but not-ready apiserver gets traffic) or https-readyz (HTTPS GET /readyz; only a ready apiserver is healthy).",
        ));
    }
    entries.extend(kind_fields(kind));
    if machine.is_some() {
        entries.push(
            Entry::scalar(
                "hypervisor",
                text("TODO"),
                "The hypervisor the load balancer runs on when it is a VM; absent for a separate box.",
            )
            .commented_out(),
        );
    }
    entries
}

/// The fields only one kind (or two) has.
fn kind_fields(kind: LbKind) -> Vec<Entry> {
    let haproxy_config = || {
        Entry::scalar(
            "config",
            text("haproxy/haproxy.cfg"),
            "The HAProxy config in the infra repo, copied to the machines (keepalived's keepalived.conf is read beside it).",
        )
        .todo("its path in your infra repo")
    };
    let failover = |seconds: u32| {
        Entry::scalar("failover_s", number(seconds), "How long the VIP goes unanswered when its holder dies (seconds).").commented_out()
    };
    let reboot = Entry::scalar("reboot_s", number(180), "How long the box takes to reboot (seconds).");
    match kind {
        LbKind::PfsenseBootstrap => vec![
            Entry::scalar(
                "reset_to_declared_state",
                number(true),
                "Each run of the bootstrap script tears every frontend down and rebuilds it, so each LB change bounces all frontends for reset_window_s.",
            ),
            Entry::scalar("reset_window_s", number(5), "How long frontends are down while the script rebuilds them (seconds)."),
            reboot,
            Entry::scalar(
                "bootstrap_script",
                text("scripts/haproxy-bootstrap.php"),
                "The script that declares the HAProxy frontends and pools, in the infra repo.",
            )
            .todo("its path in your infra repo"),
        ],
        LbKind::Haproxy => vec![reboot, haproxy_config()],
        LbKind::Keepalived => vec![haproxy_config(), failover(LbKind::Keepalived.default_failover_s())],
        LbKind::KubeVip => vec![
            failover(LbKind::KubeVip.default_failover_s()),
            Entry::scalar("kube_vip_version", text("v0.8.9"), "The image tag of ghcr.io/kube-vip/kube-vip.").commented_out(),
        ],
    }
}

/// A hypervisor's `kind`.
pub(super) fn hypervisor_kind(kind: HypervisorKind) -> Entry {
    Entry::scalar(
        "kind",
        text(kind.as_str()),
        "The tool the plan drives there: proxmox (qm, VMs by vmid), libvirt (virsh, domains by node name), or none (you provide the machines; snapshots and creation are by-hand steps).",
    )
}

/// The `iac` section: written for terragrunt, shown commented out without IaC.
pub(super) fn iac(kind: IacKind) -> Entry {
    let about = "The infra repo's IaC tool: an edit declares and apply makes it live. Absent: none, and each change is a by-hand step with its check.";
    let section = |entries| Entry::new("iac", Value::Map(entries), about);
    let fields = vec![
        Entry::scalar("kind", text("terragrunt"), "terragrunt (or terraform)."),
        Entry::scalar(
            "apply",
            text("terragrunt apply -auto-approve"),
            "The command that applies a stack, run in the stack's directory (a wrapper takes {stack} where the stack goes); unattended runs need it to apply without asking.",
        )
        .todo("your apply command"),
        Entry::scalar("vms", text("main.tf"), "The file that declares the VMs, one module per VM named after the node.")
            .todo("its path in your infra repo"),
        Entry::scalar("dns_target", text("module.dns"), "The -target that applies the DNS records, if the DNS stack is shared.")
            .commented_out(),
        Entry::scalar("template_target", text("module.template"), "The -target that applies the VM template.").commented_out(),
    ];
    match kind {
        IacKind::Terragrunt => section(fields),
        IacKind::None => section(fields).commented_out(),
    }
}

/// `dns`'s fields for `via`.
pub(super) fn dns(via: DnsVia, zone: &str) -> Vec<Entry> {
    let mut entries = vec![
        Entry::scalar(
            "via",
            text(via_str(via)),
            "How the VIP's record is made: iac (edited in source and applied; by hand without IaC), by-hand (in the DNS server), none (no record; machines are reached by address).",
        ),
        Entry::scalar("zone", text(zone), "The DNS zone the FQDN lives in."),
    ];
    if via == DnsVia::Iac {
        entries.push(
            Entry::scalar("source", text("dns/records.tf"), "The file in the infra repo that holds the zone's records.")
                .todo("the file of your infra repo with the zone's records"),
        );
    }
    entries.push(Entry::new(
        "records",
        Value::Items(Vec::new()),
        "Existing records the migration must know about: { name, address, stale, line } each; stale: true for one the migration must delete (it names a single master by a generic name).",
    ));
    entries
}

fn via_str(via: DnsVia) -> &'static str {
    match via {
        DnsVia::Iac => "iac",
        DnsVia::ByHand => "by-hand",
        DnsVia::None => "none",
    }
}

/// `vm_template`: written where the plan creates VMs, shown commented out for machines provided.
pub(super) fn vm_template(hypervisor: HypervisorKind, version: &str) -> Entry {
    let entry = Entry::new(
        "vm_template",
        Value::Map(vec![
            Entry::scalar("name", text("k8s-node-template"), "The template (stack module) new VMs are cloned from.")
                .todo("your template's name"),
            Entry::scalar(
                "kubernetes_version",
                version.to_string(),
                "The Kubernetes packages the template installs; not newer than the cluster's. An older template is bumped in step 2.0.",
            )
            .todo("the version your template installs"),
            Entry::scalar(
                "join_command_for_masters",
                number(false),
                "The template's first boot runs the worker join command even on a master VM; the plan must keep a new master from joining as a worker.",
            )
            .todo("true if your template joins every VM it boots as a worker"),
        ]),
        "The cloud-init template new master VMs are built from (optional). Absent: the machines come without one.",
    );
    match hypervisor {
        HypervisorKind::None => entry.commented_out(),
        HypervisorKind::Proxmox | HypervisorKind::Libvirt => entry,
    }
}
