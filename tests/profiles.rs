//! Environment profiles (issue 17): the load balancer, hypervisor, IaC and DNS profiles each
//! render their own commands and nothing of another's or of the homelab; the twin's verdicts and
//! the capacity report follow from the profile.

mod common;

use common::{edit, plan, refused, scenario, write};
use serde_json::Value;

/// Words that belong to one profile (or to the homelab) and may not appear in another's plan.
const PFSENSE: &[&str] = &["php /tmp", "sockstat", "bootstrap", "/tmp/haproxy.socket", "pfSense"];
const PROXMOX: &[&str] = &["qm ", "VMID"];
const LIBVIRT: &[&str] = &["virsh"];
const HOMELAB: &[&str] =
    &["scripts/tg", "technitium", "k8s_template", "bd close", "gpu-operator", "k8s-portal", "k8s-master", "wizard", "backup-etcd"];
const KEEPALIVED: &[&str] = &["keepalived", "ip_nonlocal_bind"];
const KUBE_VIP: &[&str] = &["kube-vip"];
const TERRAGRUNT: &[&str] = &["terragrunt", "Terraform", "-target="];
const DNS_EDITS: &[&str] = &["getent hosts api", " IN A "];

fn shown(name: &str) -> String {
    let out = plan(&["--scenario", &scenario(name), "show"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let yaml = plan(&["--scenario", &scenario(name), "show", "--format", "yaml"]);
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    out.stdout + &yaml.stdout
}

#[track_caller]
fn none_of(text: &str, words: &[&str], why: &str) {
    for word in words {
        assert!(!text.contains(word), "{why}: {word:?} appears in the plan");
    }
}

#[test]
fn each_profile_renders_its_own_commands_and_nothing_of_another() {
    let haproxy = shown("haproxy-libvirt.yaml");
    for words in [PFSENSE, PROXMOX, HOMELAB, KEEPALIVED, KUBE_VIP, TERRAGRUNT] {
        none_of(&haproxy, words, "haproxy + libvirt + no IaC");
    }
    for own in ["sudo haproxy -c -f /tmp/haproxy.cfg.new", "systemctl reload-or-restart haproxy", "virsh snapshot-create-as cp-1"] {
        assert!(haproxy.contains(own), "{own:?} missing from the Linux HAProxy plan");
    }
    // No IaC: the VM and the DNS record are by-hand steps, each with what confirms it.
    assert!(haproxy.contains("by hand: in the DNS server of kvm.example: add 'api IN A 203.0.113.5'"), "{haproxy}");
    assert!(haproxy.contains("by hand: create VM cp-2 on kvm-2"), "{haproxy}");

    let keepalived = shown("keepalived-five.yaml");
    for words in [PFSENSE, LIBVIRT, HOMELAB, KUBE_VIP] {
        none_of(&keepalived, words, "keepalived + proxmox + terragrunt");
    }
    // Every new master runs keepalived and HAProxy, and each HAProxy learns the whole pool.
    for (node, priority) in [("m1", 150), ("m2", 140), ("m3", 130), ("m4", 120), ("m5", 110)] {
        assert!(keepalived.contains(&format!("priority {priority}")), "{node} priority {priority}");
    }
    assert!(keepalived.contains("bind 192.0.2.50:8443") && keepalived.contains("server m1 192.0.2.51:6443"), "{keepalived}");

    let kube_vip = shown("kube-vip-bare.yaml");
    for words in [PFSENSE, PROXMOX, LIBVIRT, HOMELAB, KEEPALIVED, TERRAGRUNT, DNS_EDITS] {
        none_of(&kube_vip, words, "kube-vip + provided machines + no IaC + no DNS");
    }
    assert!(kube_vip.contains("--address 198.51.100.70 --controlplane --arp --leaderElection"), "{kube_vip}");
    // Optional sections absent: no config stack phase, no CronJob phase, no template bump, no
    // gate, chain or tracker command; and no note quotes another operator's runbook.
    for absent in ["Phase 1.5", "Phase 4.5", "template bump", "Phase 5", "Phase 7", "the source", "k8s_master_host"] {
        assert!(!kube_vip.contains(absent), "{absent:?} in a plan whose scenario declares none of it");
    }
    for plan_text in [&haproxy, &keepalived] {
        assert!(!plan_text.contains("the source"), "a note quotes the homelab's runbook");
    }
    assert!(kube_vip.contains("take a restorable image of node-a's disk"), "{kube_vip}");
    // ssh by address: there is no DNS to name the machines.
    assert!(!kube_vip.contains("node-a.internal"), "{kube_vip}");
}

#[test]
fn every_profile_scenario_is_judged_not_refused() {
    for name in ["haproxy-libvirt.yaml", "keepalived-five.yaml", "kube-vip-bare.yaml"] {
        let out = plan(&["--scenario", &scenario(name), "check"]);
        assert!(out.code == 0 || out.code == 1, "{name}: exit {}\n{}{}", out.code, out.stdout, out.stderr);
        assert!(out.stdout.contains("Verdict: PASS"), "{name}:\n{}", out.stdout);
    }
}

fn simulate(scenario_path: &str, fail: &str, at: &str) -> Value {
    let out = plan(&["--scenario", scenario_path, "simulate", "--fail", fail, "--fault", "reboot", "--at", at, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("simulate JSON")
}

fn fault_transient(report: &Value) -> Option<(String, u64)> {
    let event = report["events"].as_array()?.iter().find(|e| e["what"].as_str().is_some_and(|w| w.starts_with("FAULT")))?;
    let pair = event["transient"].as_array()?;
    Some((pair[0].as_str()?.to_string(), pair[1].as_u64()?))
}

#[test]
fn the_vip_holder_failing_costs_the_failover_time_and_no_more() {
    // After the cut-over every client uses the VIP; m1 holds it (highest priority). Its reboot at
    // 4.5 moves the VIP once, and the plan's own failover test (6.1 shuts m1 down) once more.
    let report = simulate(&scenario("keepalived-five.yaml"), "m1", "4.5");
    assert_eq!(fault_transient(&report), Some(("the VIP moves to another master".to_string(), 4)));
    assert_eq!(report["downtime"]["consumers"]["kubeconfig"]["down_s"], 4 + 4);
    // A master that does not hold the VIP costs the clients nothing of its own: only 6.1's move.
    let report = simulate(&scenario("keepalived-five.yaml"), "m3", "4.5");
    assert_eq!(fault_transient(&report), None);
    assert_eq!(report["downtime"]["consumers"]["kubeconfig"]["down_s"], 4);
    // The figure follows the scenario's failover time, not a table.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(scenario("keepalived-five.yaml")).expect("scenario");
    let slower = write(dir.path(), "slow.yaml", &edit(&text, "  interface: ens18\n", "  interface: ens18\n  failover_s: 9\n"));
    let report = simulate(&slower, "m1", "4.5");
    assert_eq!(report["downtime"]["consumers"]["kubeconfig"]["down_s"], 9 + 9);
}

#[test]
fn with_the_vip_on_the_masters_no_load_balancer_machine_is_a_single_point() {
    let out = plan(&["--scenario", &scenario("keepalived-five.yaml"), "capacity", "--format", "json"]);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("capacity JSON");
    let text = out.stdout.clone();
    assert!(!text.contains("\"load-balancer\""), "no load balancer machine in the exposure report");
    let resilience = &report["exposure"]["resilience"];
    assert_eq!(resilience["vip_on_masters"]["kind"], "keepalived", "{resilience}");
    assert_eq!(resilience["vip_on_masters"]["failover_s"], 4);
    let plain = plan(&["--scenario", &scenario("keepalived-five.yaml"), "capacity"]);
    assert!(plain.stdout.contains("the load balancer fails:  no such machine: keepalived holds the VIP"), "{}", plain.stdout);
    // The pfSense homelab keeps its load balancer as a single point.
    let homelab = plan(&["capacity", "--format", "json"]);
    assert!(homelab.stdout.contains("\"load-balancer\""), "the homelab's LB is a machine of its own");
}

#[test]
fn kube_vip_before_its_masters_join_is_refused_by_the_twin() {
    let exported = plan(&["--scenario", &scenario("kube-vip-bare.yaml"), "show", "--format", "yaml"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let early = edit(
        &exported.stdout,
        "  operations:\n  - op: join\n    node: node-b\n",
        "  operations:\n  - op: start-vip-daemon\n    node: node-b\n  - op: join\n    node: node-b\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "early.yaml", &early);
    let out = plan(&["--scenario", &scenario("kube-vip-bare.yaml"), "--plan", &file, "check"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("kube-vip on node-b needs its control plane"), "{}", out.stdout);
}

#[test]
fn a_profile_refuses_the_fields_of_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keepalived = std::fs::read_to_string(scenario("keepalived-five.yaml")).expect("scenario");
    // HAProxy on a master cannot bind the VIP at the apiserver's own port.
    let same_port = write(dir.path(), "port.yaml", &edit(&keepalived, "  port: 8443\n", "  port: 6443\n"));
    let message = refused(&plan(&["--scenario", &same_port, "check"]));
    assert!(message.contains("kube-apiserver already holds port 6443"), "{message}");
    let with_address =
        write(dir.path(), "addr.yaml", &edit(&keepalived, "  interface: ens18\n", "  interface: ens18\n  address: 192.0.2.9\n"));
    let message = refused(&plan(&["--scenario", &with_address, "check"]));
    assert!(message.contains("no load balancer machine"), "{message}");

    let haproxy = std::fs::read_to_string(scenario("haproxy-libvirt.yaml")).expect("scenario");
    let script = write(dir.path(), "script.yaml", &edit(&haproxy, "  config: haproxy/haproxy.cfg\n", "  bootstrap_script: lb.php\n"));
    let message = refused(&plan(&["--scenario", &script, "check"]));
    assert!(message.contains("haproxy has no bootstrap script"), "{message}");
    let no_address = write(dir.path(), "hv.yaml", &edit(&haproxy, "kind: libvirt, address: 203.0.113.11, ", "kind: libvirt, "));
    let message = refused(&plan(&["--scenario", &no_address, "check"]));
    assert!(message.contains("needs its address"), "{message}");
}

#[test]
fn the_lab_refuses_a_vip_on_the_masters_as_model_only() {
    for name in ["keepalived-five.yaml", "kube-vip-bare.yaml"] {
        let message = refused(&plan(&["--scenario", &scenario(name), "rehearse"]));
        assert!(
            message.contains("cannot rehearse load balancer kind") && message.contains("pfsense-bootstrap and haproxy"),
            "{name}: {message}"
        );
    }
}

#[test]
fn a_vm_id_is_asked_for_only_where_proxmox_needs_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    // libvirt and provided machines: no vmid anywhere, and the plan names machines, not VM ids.
    for name in ["haproxy-libvirt.yaml", "kube-vip-bare.yaml"] {
        let text = std::fs::read_to_string(scenario(name)).expect("scenario");
        assert!(!text.contains("vmid"), "{name} declares no VM id");
        let out = plan(&["--scenario", &scenario(name), "show"]);
        assert!(out.stdout.contains("update the machine inventory:"), "{name}: {}", out.stdout);
    }
    // On Proxmox a new master without one is refused, naming it.
    let keepalived = std::fs::read_to_string(scenario("keepalived-five.yaml")).expect("scenario");
    let without = write(dir.path(), "novmid.yaml", &edit(&keepalived, "vmid: 502, ", ""));
    let message = refused(&plan(&["--scenario", &without, "check"]));
    assert!(message.contains("new master m2 needs a vmid: Proxmox creates its VM by it"), "{message}");
}

/// Seven masters on three libvirt hosts, keepalived, no IaC, DNS by hand, a consumer that names
/// the master by its DNS name, no optional section: written from docs/scenario.md alone.
const SEVEN: &str = r#"
name: seven-kvm
kubernetes: { version: "1.32", apiserver_port: 6443 }
infra_repo: /opt/platform
ssh_user: deploy
hypervisors:
  - { name: kvm-a, kind: libvirt, address: 192.0.2.201, ram_physical_gb: 512, ram_allocated_gb: 100 }
  - { name: kvm-b, kind: libvirt, address: 192.0.2.202, ram_physical_gb: 512, ram_allocated_gb: 100 }
  - { name: kvm-c, kind: libvirt, address: 192.0.2.203, ram_physical_gb: 512, ram_allocated_gb: 100 }
nodes:
  - { name: alpha, role: control-plane, address: 192.0.2.11, hypervisor: kvm-a, vcpu: 4, ram_gb: 16, disk_gb: 100 }
  - { name: w-1, role: worker, address: 192.0.2.21, hypervisor: kvm-b }
new_masters:
  - { name: beta, address: 192.0.2.12, hypervisor: kvm-b, vcpu: 4, ram_gb: 16, disk_gb: 100 }
  - { name: gamma, address: 192.0.2.13, hypervisor: kvm-c, vcpu: 4, ram_gb: 16, disk_gb: 100 }
  - { name: delta, address: 192.0.2.14, hypervisor: kvm-a, vcpu: 4, ram_gb: 16, disk_gb: 100 }
  - { name: epsilon, address: 192.0.2.15, hypervisor: kvm-b, vcpu: 4, ram_gb: 16, disk_gb: 100 }
  - { name: zeta, address: 192.0.2.16, hypervisor: kvm-c, vcpu: 4, ram_gb: 16, disk_gb: 100 }
  - { name: eta, address: 192.0.2.17, hypervisor: kvm-a, vcpu: 4, ram_gb: 16, disk_gb: 100 }
target: { control_plane_count: 7 }
control_plane_endpoint: { vip: 192.0.2.10, fqdn: k8s.corp.example, port: 8443 }
load_balancer: { kind: keepalived, interface: enp1s0 }
dns: { via: by-hand, zone: corp.example }
consumers:
  - { name: admin, kind: kubeconfig, path: kubeconfigs/admin.yaml, server: "https://alpha.corp.example:6443" }
etcd_backup: { path: /backup/etcd, age_h: 2 }
"#;

#[test]
fn seven_masters_of_another_shape_get_their_own_plan_and_verdicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "seven.yaml", SEVEN);
    let check = plan(&["--scenario", &path, "check"]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let shown = plan(&["--scenario", &path, "show"]).stdout + &plan(&["--scenario", &path, "show", "--format", "yaml"]).stdout;
    for words in [PFSENSE, PROXMOX, HOMELAB, KUBE_VIP, TERRAGRUNT] {
        none_of(&shown, words, "seven masters, keepalived, libvirt, no IaC");
    }
    for (n, priority) in [("alpha", 150), ("eta", 90)] {
        assert!(shown.contains(&format!("priority {priority}")), "{n}");
    }
    for absent in ["Phase 1.5", "Phase 4.5", "Phase 5", "Phase 7", "the source"] {
        assert!(!shown.contains(absent), "{absent:?}");
    }
    let capacity = plan(&["--scenario", &path, "capacity"]);
    assert!(capacity.stdout.contains("no such machine: keepalived holds the VIP"), "{}", capacity.stdout);
    assert!(capacity.stdout.contains("a hypervisor fails:       survivable"), "{}", capacity.stdout);
}

#[test]
fn the_complete_examples_in_the_docs_are_the_shipped_files() {
    let docs = std::fs::read_to_string(common::root().join("docs/scenario.md")).expect("docs/scenario.md");
    for name in ["haproxy-libvirt.yaml", "keepalived-five.yaml", "kube-vip-bare.yaml"] {
        let text = std::fs::read_to_string(scenario(name)).expect("scenario");
        assert!(docs.contains(&format!("```yaml\n{text}```")), "docs/scenario.md's copy of {name} differs from the file");
    }
}

#[test]
fn direct_commands_use_the_apiservers_port_where_the_vip_has_another() {
    let shown = plan(&["--scenario", &scenario("keepalived-five.yaml"), "show"]).stdout;
    assert!(shown.contains("openssl s_client -connect 192.0.2.51:6443"), "0.4 probes the apiserver's own port");
    assert!(shown.contains("kubectl --server=https://192.0.2.52:6443 get nodes"), "2.7 talks to m2's apiserver");
    assert!(shown.contains("kubectl --server=https://192.0.2.50:8443 get nodes"), "1.4 goes through the VIP's port");
    assert!(!shown.contains("192.0.2.51:8443") && !shown.contains("192.0.2.52:8443"), "no master is reached on the VIP's port");
    // keepalived before HAProxy, and a bind to the VIP that survives a reboot.
    let keepalived = shown.find("sudo systemctl enable --now keepalived").expect("keepalived starts");
    let haproxy = shown.find("sudo haproxy -c -f /tmp/haproxy.cfg.new").expect("HAProxy is installed");
    assert!(keepalived < haproxy, "keepalived (and ip_nonlocal_bind) come before HAProxy binds the VIP");
    assert!(shown.contains("/etc/sysctl.d/60-apiserver-vip.conf"), "the non-local bind is persistent");
}

#[test]
fn the_planned_reboot_of_the_vip_holder_costs_the_failover_time() {
    // A worker's reboot early on leaves the run to go on to 6.1, where the plan itself shuts the
    // first master, the VIP's holder, down.
    let report = simulate(&scenario("keepalived-five.yaml"), "w1", "0.2");
    let moved = report["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["step"] == "6.1" && e["transient"][0] == "the VIP moves to another master");
    assert!(moved.is_some(), "6.1 moves the VIP: {report}");
    assert_eq!(report["downtime"]["consumers"]["kubeconfig"]["down_s"], 4);
    // The pfSense homelab's 6.1 costs no client anything: its VIP lives on the load balancer.
    let homelab = plan(&["simulate", "--fail", "node1", "--fault", "reboot", "--at", "0.2", "--format", "json"]);
    let homelab: Value = serde_json::from_str(&homelab.stdout).expect("simulate JSON");
    assert_eq!(homelab["downtime"]["consumers"]["kubeconfig"]["down_s"], 0, "{}", homelab["downtime"]);
}

#[test]
fn kube_vip_refuses_a_vip_port_nothing_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(scenario("kube-vip-bare.yaml")).expect("scenario");
    let moved = edit(&text, "  port: 6443\n", "  port: 8443\n");
    let moved = edit(&moved, "  version: \"1.34\"\n", "  version: \"1.34\"\n  apiserver_port: 6443\n");
    let path = write(dir.path(), "port.yaml", &moved);
    let message = refused(&plan(&["--scenario", &path, "check"]));
    assert!(message.contains("with kube-vip the VIP reaches the leader's kube-apiserver on its own port 6443"), "{message}");
}
