//! Bad input through the binary: every malformed, hostile or impossible file or argument ends in
//! exit 2 and one clear line on stderr (`plan: error: ...`), located at file:line:column where
//! the problem has a place in the file (a scenario with several problems: one line each, after
//! one that counts them). Never a panic (exit 101), never a hang.
//!
//! tests/cli.rs covers the good paths and the DAG-order refusal of an edited plan; this file
//! covers the rest of the negative space (docs/errors.md lists every message).

mod common;

use common::{at, edit, plan, refused, root, scenario, write};
use std::path::Path;

const HOMELAB: &str = include_str!("../scenarios/homelab.yaml");

/// Runs `plan show` on a scenario text and returns the refusal message, checked to start with the
/// file name and `location` (`line:column`) when given.
#[track_caller]
fn scenario_refused(text: &str, location: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "scenario.yaml", text);
    let message = refused(&plan(&["--scenario", &file, "show"]));
    let expected = match location {
        Some(l) => format!("{file}:{l}: "),
        None => format!("{file}: "),
    };
    assert!(message.starts_with(&expected), "expected {expected:?} first in {message:?}");
    message[expected.len()..].to_string()
}

// --- Files that cannot be read as a scenario or a plan ------------------------------------------

#[test]
fn a_truncated_scenario_is_a_located_yaml_error() {
    // Cut inside a flow mapping: the parser reaches the end of the file with it open.
    let cut = HOMELAB.find("address: 10.0.20.102").unwrap();
    let after_last_line = format!("{}:1", HOMELAB[..cut].lines().count() + 1);
    let message = scenario_refused(&HOMELAB[..cut], Some(&after_last_line));
    assert_eq!(message, "did not find expected node content (the text ends here: is the file cut short?)");
    // Cut between top-level keys: a field the scenario needs is missing.
    let cut = HOMELAB.find("target:").unwrap();
    let message = scenario_refused(&HOMELAB[..cut], Some(&at(HOMELAB, "name: homelab", 0, "name")));
    assert_eq!(message, "missing field `target`");
}

#[test]
fn binary_junk_is_refused_as_not_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.bin");
    std::fs::write(&path, [0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0x00, 0x01]).unwrap();
    let message = refused(&plan(&["--scenario", path.to_str().unwrap(), "show"]));
    assert_eq!(message, format!("scenario {} is not UTF-8 text (invalid byte at offset 4)", path.display()));
    let plan_message = refused(&plan(&["--plan", path.to_str().unwrap(), "show"]));
    assert_eq!(plan_message, format!("plan {} is not UTF-8 text (invalid byte at offset 4)", path.display()));
    // Valid UTF-8 that is not YAML text: control characters.
    let file = write(dir.path(), "control.yaml", "name: \u{1}\u{2}\u{3}\n");
    let message = refused(&plan(&["--scenario", &file, "show"]));
    assert_eq!(message, format!("{file}:1:7: control characters are not allowed"));
}

#[test]
fn a_10_mb_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "big.yaml", &"# padding\n".repeat(1 << 20));
    let message = refused(&plan(&["--scenario", &file, "show"]));
    assert_eq!(message, format!("scenario {file} is 10485760 bytes; the limit is 1048576 bytes"));
    let message = refused(&plan(&["--plan", &file, "show"]));
    assert_eq!(message, format!("plan {file} is 10485760 bytes; the limit is 1048576 bytes"));
}

#[test]
fn a_symlink_loop_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let message = refused(&plan(&["--scenario", a.to_str().unwrap(), "show"]));
    assert_eq!(message, format!("scenario {}: too many levels of symbolic links", a.display()));
}

#[test]
fn an_unreadable_file_is_refused_unless_the_reader_may_read_anything() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "locked.yaml", HOMELAB);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = plan(&["--scenario", &file, "show"]);
    if std::fs::read(&file).is_ok() {
        // Root (CAP_DAC_OVERRIDE) reads a mode-000 file: the tool must read it too, not invent an error.
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("Phase 0"), "{}", out.stdout);
    } else {
        assert_eq!(refused(&out), format!("scenario {file}: permission denied"));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_file_whose_read_fails_is_refused_even_for_root() {
    // /proc/self/mem is a regular file that nobody can read at offset 0 (EIO): an unreadable
    // file that root's privileges do not open up.
    let message = refused(&plan(&["--scenario", "/proc/self/mem", "show"]));
    assert!(message.starts_with("scenario /proc/self/mem: "), "{message}");
    assert!(message.contains("Input/output error"), "{message}");
}

#[test]
fn a_directory_a_device_and_a_missing_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().display().to_string();
    assert_eq!(refused(&plan(&["--scenario", &shown, "show"])), format!("scenario {shown} is a directory"));
    assert_eq!(refused(&plan(&["--plan", &shown, "show"])), format!("plan {shown} is a directory"));
    // A device would be read forever (/dev/zero) or not at all.
    assert_eq!(refused(&plan(&["--scenario", "/dev/zero", "show"])), "scenario /dev/zero is not a regular file");
    let missing = dir.path().join("absent.yaml").display().to_string();
    assert_eq!(refused(&plan(&["--scenario", &missing, "show"])), format!("scenario {missing}: no such file"));
}

#[cfg(target_os = "linux")] // O_NONBLOCK below is Linux's value
#[test]
fn a_pipe_that_never_ends_is_cut_at_the_limit() {
    // A fifo has no length to check up front: the read itself must stop at the limit.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("endless.yaml");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(status.success());
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut pipe = std::fs::OpenOptions::new().write(true).open(writer_path).expect("the fifo opens for writing");
        let chunk = "# more\n".repeat(1024);
        // Stops when the reader closes its end (EPIPE); bounded at 64 MB in any case.
        for _ in 0..(64 << 20) / chunk.len() {
            if pipe.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
    });
    let out = plan(&["--scenario", fifo.to_str().unwrap(), "show"]);
    // Should plan never have opened the fifo, the writer still waits for a reader: give it one
    // (O_NONBLOCK: opening does not wait) and close it, so the write fails and the thread ends.
    use std::os::unix::fs::OpenOptionsExt;
    drop(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(0o4000) /* O_NONBLOCK */
            .open(&fifo),
    );
    writer.join().unwrap();
    let message = refused(&out);
    assert_eq!(message, format!("scenario {} is more than 1048576 bytes, the limit", fifo.display()));
}

#[test]
fn deep_flow_nesting_is_refused_before_the_yaml_parser_spends_minutes_on_it() {
    // The YAML scanner's work grows with nesting times tokens: 100 000 levels took minutes.
    let deep = format!("name: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let started = std::time::Instant::now();
    let message = scenario_refused(&deep, Some("1:71"));
    assert_eq!(message, "flow collections ('[' or '{') nested deeper than 64 levels");
    assert!(started.elapsed().as_secs() < 10, "refused quickly, not after parsing");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plan.yaml", &deep);
    assert_eq!(
        refused(&plan(&["--plan", &file, "show"])),
        format!("{file}:1:71: flow collections ('[' or '{{') nested deeper than 64 levels")
    );
}

#[test]
fn an_empty_or_wrongly_shaped_scenario_names_what_is_missing() {
    assert_eq!(scenario_refused("", Some("1:1")), "missing field `name` (the text ends here: is the file cut short?)");
    assert_eq!(
        scenario_refused("[1, 2]\n", Some("1:1")),
        "got a list, expected a scenario (a mapping of fields: name, kubernetes, nodes, ...)"
    );
}

// --- Scenario syntax: YAML that is not the scenario's shape -------------------------------------

#[test]
fn an_unknown_field_is_located_and_lists_the_known_ones() {
    let text = edit(HOMELAB, "  control_plane_count: 3\n", "  control_plane_count: 3\n  masters_wanted: 5\n");
    let message = scenario_refused(&text, Some(&at(&text, "masters_wanted", 0, "masters_wanted")));
    assert_eq!(message, "target: unknown field `masters_wanted` (the fields here: `control_plane_count`)");
    // A near miss is named.
    let text = edit(HOMELAB, "  control_plane_count: 3\n", "  control_plane_cuont: 3\n");
    let message = scenario_refused(&text, Some(&at(&text, "control_plane_cuont", 0, "control_plane_cuont")));
    assert_eq!(
        message,
        "target: unknown field `control_plane_cuont`: did you mean `control_plane_count`? (the fields here: `control_plane_count`)"
    );
}

#[test]
fn a_wrong_type_and_a_bad_address_are_located_at_the_value() {
    let text = edit(HOMELAB, "control_plane_count: 3", "control_plane_count: three");
    let message = scenario_refused(&text, Some(&at(&text, "control_plane_count", 0, "three")));
    assert_eq!(message, "target.control_plane_count: got the text \"three\", expected a whole number (0 or more)");
    let text = edit(HOMELAB, "address: 10.0.20.104", "address: 10.0.20.304");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-node4", 0, "10.0.20.304")));
    assert_eq!(message, "nodes[4].address: invalid IPv4 address syntax");
}

#[test]
fn a_missing_field_is_named() {
    let text = edit(HOMELAB, "ssh_user: wizard\n", "");
    assert_eq!(scenario_refused(&text, Some(&at(&text, "name: homelab", 0, "name"))), "missing field `ssh_user`");
}

// --- Scenario validation: one test per ScenarioErrorKind ----------------------------------------

#[test]
fn duplicate_names_name_both_places() {
    let text = edit(HOMELAB, "name: k8s-node2", "name: k8s-node1");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-node1", 1, "name")));
    assert_eq!(message, "node name \"k8s-node1\" is used twice (also nodes[1]) (nodes[2].name)");
    // A new master may not reuse an existing node's name either.
    let text = edit(HOMELAB, "name: k8s-master-3", "name: k8s-node4");
    let message = scenario_refused(&text, Some(&at(&text, "vmid: 206", 0, "name")));
    assert_eq!(message, "node name \"k8s-node4\" is used twice (also nodes[4]) (new_masters[1].name)");
    let text = edit(HOMELAB, "{ name: backup-etcd,", "{ name: defrag-etcd,");
    let message = scenario_refused(&text, Some(&at(&text, "defrag-etcd", 1, "name")));
    assert_eq!(message, "CronJob name \"defrag-etcd\" is used twice (also cronjobs[0]) (cronjobs[1].name)");
    let text = edit(HOMELAB, "name: woodpecker-renew-tls", "name: woodpecker-default");
    let message = scenario_refused(&text, Some(&at(&text, "woodpecker-default", 1, "name")));
    assert_eq!(message, "consumer name \"woodpecker-default\" is used twice (also consumers[1]) (consumers[3].name)");
}

#[test]
fn a_duplicate_hypervisor_name_is_refused() {
    let five = std::fs::read_to_string(scenario("five-masters.yaml")).unwrap();
    let text = edit(&five, "{ name: pve-b,", "{ name: pve-a,");
    let message = scenario_refused(&text, Some(&at(&text, "192.0.2.11", 0, "name")));
    assert_eq!(message, "hypervisor name \"pve-a\" is used twice (also hypervisors[0]) (hypervisors[1].name)");
}

#[test]
fn a_duplicate_vmid_is_refused() {
    let text = edit(HOMELAB, "vmid: 206", "vmid: 205");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-master-3", 0, "vmid")));
    assert_eq!(message, "VMID 205 is used twice (also new_masters[0].vmid) (new_masters[1].vmid)");
    let text = edit(HOMELAB, "vmid: 205", "vmid: 200");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-master-2", 0, "vmid")));
    assert_eq!(message, "VMID 200 is used twice (also nodes[0]) (new_masters[0].vmid)");
}

#[test]
fn a_duplicate_address_names_the_first_user() {
    let text = edit(HOMELAB, "address: 10.0.20.110", "address: 10.0.20.104");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-master-2", 0, "address")));
    assert_eq!(message, "address 10.0.20.104 of new master k8s-master-2 is already used by nodes[4].address (new_masters[0].address)");
    let text = edit(HOMELAB, "address: 10.0.20.101", "address: 10.0.20.1");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-node1", 0, "address")));
    assert_eq!(message, "address 10.0.20.1 of node k8s-node1 is already used by load_balancer.address (nodes[1].address)");
}

#[test]
fn a_name_that_reads_as_an_address_is_refused_at_the_name() {
    // A worker named like the load balancer's address received every load-balancer command
    // (`Hosts::find` took the name first); named like the hypervisor's, it received `qm snapshot`.
    let text = edit(HOMELAB, "name: k8s-node1,", "name: 10.0.20.1,");
    let message = scenario_refused(&text, Some(&at(&text, "10.0.20.101", 0, "name")));
    assert_eq!(
        message,
        "node name \"10.0.20.1\" reads as an IP address (the address of the load balancer pfsense): commands for it could reach another machine; give it a host name (nodes[1].name)"
    );
    let text = edit(HOMELAB, "name: k8s-node1,", "name: 192.168.1.127,");
    let message = scenario_refused(&text, Some(&at(&text, "10.0.20.101", 0, "name")));
    assert!(message.contains("(the address of hypervisor pve)"), "{message}");
    // Forms ssh and the resolver read as addresses too (inet_aton): decimal, short, hex.
    for name in ["\"167772161\"", "\"10.1\"", "0x7f.1"] {
        let text = edit(HOMELAB, "name: k8s-node1,", &format!("name: {name},"));
        let message = scenario_refused(&text, Some(&at(&text, "10.0.20.101", 0, "name")));
        assert!(message.contains("reads as an IP address: commands") && message.ends_with("(nodes[1].name)"), "{name}: {message}");
    }
}

#[test]
fn a_name_two_machines_share_is_refused_across_kinds_and_zones() {
    let text = edit(HOMELAB, "name: k8s-node1,", "name: pfsense,");
    let message = scenario_refused(&text, Some(&at(&text, "name: pfsense", 1, "name")));
    assert_eq!(
        message,
        "the load balancer name \"pfsense\" is also the name of node \"pfsense\" (nodes[1]): each machine needs a name of its own (load_balancer.name)"
    );
    let text = edit(HOMELAB, "name: k8s-node1,", "name: pve.viktorbarzin.lan,");
    let message = scenario_refused(&text, Some(&at(&text, "name: pve", 0, "name")));
    assert!(message.starts_with("hypervisor name \"pve\" is also the name of node \"pve.viktorbarzin.lan\""), "{message}");
}

#[test]
fn an_address_no_host_can_have_is_refused() {
    let text = edit(HOMELAB, "address: 10.0.20.101", "address: 0.0.0.0");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-node1", 0, "address")));
    assert_eq!(
        message,
        "address 0.0.0.0 of node k8s-node1 is the unspecified address, not an address a host can be reached at (nodes[1].address)"
    );
    for (address, why) in [("255.255.255.255", "broadcast"), ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved")] {
        let text = edit(HOMELAB, "address: 10.0.20.1\n", &format!("address: {address}\n"));
        let message = scenario_refused(&text, Some(&at(&text, &format!("address: {address}"), 0, "address")));
        assert!(message.contains(why) && message.ends_with("(load_balancer.address)"), "{message}");
    }
    let text = edit(HOMELAB, "vip: 10.0.20.99", "vip: 0.0.0.0");
    let message = scenario_refused(&text, Some(&at(&text, "vip: 0.0.0.0", 0, "vip")));
    assert_eq!(message, "the VIP 0.0.0.0 is the unspecified address, not an address clients can reach (control_plane_endpoint.vip)");
}

#[test]
fn a_vip_that_is_not_free_is_refused() {
    let text = edit(HOMELAB, "vip: 10.0.20.99", "vip: 10.0.20.103");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-node3", 0, "address")));
    assert_eq!(message, "the VIP 10.0.20.103 cannot be the address of node k8s-node3: the VIP must be a free address (nodes[3].address)");
    let text = edit(HOMELAB, "vip: 10.0.20.99", "vip: 10.0.20.111");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-master-3", 0, "address")));
    assert_eq!(
        message,
        "the VIP 10.0.20.111 cannot be the address of new master k8s-master-3: the VIP must be a free address (new_masters[1].address)"
    );
    let text = edit(HOMELAB, "vip: 10.0.20.99", "vip: 10.0.20.1");
    let message = scenario_refused(&text, Some(&at(&text, "vip:", 0, "vip")));
    assert_eq!(message, "the VIP 10.0.20.1 is the load balancer's own address: reserve a separate virtual IP (control_plane_endpoint.vip)");
    let text = edit(HOMELAB, "vip: 10.0.20.99", "vip: 192.168.1.127");
    let message = scenario_refused(&text, Some(&at(&text, "vip:", 0, "vip")));
    assert_eq!(message, "the VIP 192.168.1.127 is a hypervisor's address (control_plane_endpoint.vip)");
}

#[test]
fn addresses_inside_the_metallb_pool_are_refused() {
    let text = edit(HOMELAB, "vip: 10.0.20.99", "vip: 10.0.20.210");
    let message = scenario_refused(&text, Some(&at(&text, "vip:", 0, "vip")));
    assert_eq!(
        message,
        "the VIP 10.0.20.210 is inside the MetalLB pool 10.0.20.200-10.0.20.220: MetalLB could hand it to a Service (control_plane_endpoint.vip)"
    );
    let text = edit(HOMELAB, "address: 10.0.20.111", "address: 10.0.20.205");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-master-3", 0, "address")));
    assert_eq!(message, "new master address 10.0.20.205 is inside the MetalLB pool 10.0.20.200-10.0.20.220 (new_masters[1].address)");
    let text = edit(HOMELAB, "{ first: 10.0.20.200, last: 10.0.20.220 }", "{ first: 10.0.20.220, last: 10.0.20.200 }");
    let message = scenario_refused(&text, Some(&at(&text, "metallb_pool", 0, "metallb_pool")));
    assert_eq!(message, "MetalLB pool 10.0.20.220-10.0.20.200 is empty (metallb_pool)");
}

#[test]
fn the_target_master_count_must_be_odd_from_3_to_7_and_match_the_new_masters() {
    let target = |count: &str| edit(HOMELAB, "control_plane_count: 3", &format!("control_plane_count: {count}"));
    let place = |text: &str| at(text, "control_plane_count", 0, "control_plane_count");
    let text = target("4");
    assert_eq!(
        scenario_refused(&text, Some(&place(&text))),
        "target of 4 masters is even: etcd tolerates no more failures with 4 than with 3, use an odd count (target.control_plane_count)"
    );
    for count in ["0", "1", "9"] {
        let text = target(count);
        assert_eq!(
            scenario_refused(&text, Some(&place(&text))),
            format!("target of {count} masters: use 3, 5 or 7 (target.control_plane_count)")
        );
    }
    let text = target("5");
    let message = scenario_refused(&text, Some(&at(&text, "new_masters:", 0, "new_masters")));
    assert_eq!(message, "2 new masters listed, but a target of 5 masters needs 4 (new_masters)");
    let text = target("-1");
    let message = scenario_refused(&text, Some(&at(&text, "control_plane_count", 0, "-1")));
    assert_eq!(message, "target.control_plane_count: got the number `-1`, expected a whole number (0 or more)");
}

#[test]
fn an_unknown_hypervisor_lists_the_known_ones() {
    let text = edit(
        HOMELAB,
        "{ name: k8s-node3, role: worker, address: 10.0.20.103, hypervisor: pve }",
        "{ name: k8s-node3, role: worker, address: 10.0.20.103, hypervisor: pve2 }",
    );
    let message = scenario_refused(&text, Some(&at(&text, "k8s-node3", 0, "hypervisor")));
    assert_eq!(message, "unknown hypervisor \"pve2\" (known: pve) (nodes[3].hypervisor)");
}

#[test]
fn an_unknown_node_reference_is_located() {
    let text = edit(
        HOMELAB,
        "pinned_to: k8s-master, path: stacks/infra-maintenance/modules/infra-maintenance/main.tf, line: 218",
        "pinned_to: k8s-master-9, path: stacks/infra-maintenance/modules/infra-maintenance/main.tf, line: 218",
    );
    let message = scenario_refused(&text, Some(&at(&text, "defrag-etcd", 0, "pinned_to")));
    assert_eq!(message, "unknown node \"k8s-master-9\" (cronjobs[1].pinned_to)");
    let text = edit(HOMELAB, "masters: [k8s-master]", "masters: [k8s-master, k8s-mastr]");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-mastr", 0, "k8s-mastr")));
    assert_eq!(message, "unknown node \"k8s-mastr\" (upgrade_chain.masters[1])");
}

#[test]
fn a_value_that_could_inject_a_shell_command_is_refused() {
    let text = edit(HOMELAB, "ssh_user: wizard", "ssh_user: \"wizard; reboot\"");
    let message = scenario_refused(&text, Some(&at(&text, "ssh_user: \"wizard", 0, "ssh_user")));
    assert_eq!(
        message,
        "SSH user \"wizard; reboot\" is not allowed: use lowercase letters, digits, '-' and '.' (it is used in shell commands) (ssh_user)"
    );
    let text = edit(HOMELAB, "name: k8s-node4", "name: \"$(reboot)\"");
    let message = scenario_refused(&text, Some(&at(&text, "$(reboot)", 0, "name")));
    assert!(message.starts_with("node name \"$(reboot)\" is not allowed") && message.ends_with("(nodes[4].name)"), "{message}");
    let text = edit(HOMELAB, "path: stacks/kured/main.tf", "path: ../../etc/shadow");
    let message = scenario_refused(&text, Some(&at(&text, "../../etc/shadow", 0, "path")));
    assert_eq!(
        message,
        "reboot gate path \"../../etc/shadow\" is not allowed: use letters, digits and '._/+@-', no '..' (it is used in shell commands) (reboot_gate.path)"
    );
    let text = edit(
        HOMELAB,
        "apiserver_flags: [oidc-issuer-url, audit-policy-file, etcd-tuning]",
        "apiserver_flags: [oidc-issuer-url, \"x' && curl evil\"]",
    );
    let message = scenario_refused(&text, Some(&at(&text, "apiserver_flags", 0, "\"x'")));
    assert!(message.starts_with("apiserver flag \"x' && curl evil\" is not allowed"), "{message}");
    let text = edit(HOMELAB, "tracking_issue: code-n0ow", "tracking_issue: \"OPS-1; reboot\"");
    let message = scenario_refused(&text, Some(&at(&text, "tracking_issue", 0, "tracking_issue")));
    assert_eq!(
        message,
        "tracking issue \"OPS-1; reboot\" is not allowed: use letters, digits, '-', '_' and '.' (it is used in shell commands) (tracking_issue)"
    );
}

#[test]
fn a_tracking_issue_of_any_tracker_is_taken_and_closed_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "scenario.yaml", &edit(HOMELAB, "tracking_issue: code-n0ow", "tracking_issue: OPS-1234"));
    let out = plan(&["--scenario", &file, "show"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("$ bd close OPS-1234"), "{}", out.stdout);
}

#[test]
fn the_scenario_needs_exactly_one_existing_master() {
    let text = edit(HOMELAB, "{ name: k8s-node1, role: worker,", "{ name: k8s-node1, role: control-plane,");
    let message = scenario_refused(&text, Some(&at(&text, "k8s-node1", 0, "role")));
    assert_eq!(message, "2 control-plane nodes: plan converts a cluster with exactly one master (nodes[1].role)");
    let text = edit(HOMELAB, "    role: control-plane\n", "    role: worker\n");
    let message = scenario_refused(&text, Some(&at(&text, "nodes:", 0, "nodes")));
    assert_eq!(message, "no control-plane node: the scenario needs the existing master (nodes)");
    let text = edit(HOMELAB, "    vmid: 200\n", "");
    let message = scenario_refused(&text, Some(&at(&text, "- name: k8s-master", 0, "-")));
    assert_eq!(message, "the existing master k8s-master needs a vmid (the plan snapshots it with qm) (nodes[0])");
}

#[test]
fn bad_values_are_located() {
    let cases: [(&str, &str, &str, &str, &str); 10] = [
        ("version: \"1.34\"", "version: \"1.x\"", "version: \"1.x\"", "version", "Kubernetes version \"1.x\" is not of the form 1.34 (kubernetes.version)"),
        (
            "kubernetes_version: \"1.32\"",
            "kubernetes_version: \"1.35\"",
            "kubernetes_version",
            "kubernetes_version",
            "the VM template's Kubernetes 1.35 is newer than the cluster's 1.34 (vm_template.kubernetes_version)",
        ),
        (
            "ram_headroom_percent: 5",
            "ram_headroom_percent: 150",
            "ram_headroom_percent",
            "ram_headroom_percent",
            "headroom must be a percentage from 0 to 100, not 150 (capacity.ram_headroom_percent)",
        ),
        ("certs_ttl_min: 120", "certs_ttl_min: 0", "kubeadm:", "kubeadm", "kubeadm TTLs must be positive (kubeadm)"),
        (
            "token_ttl_h: 24",
            "token_ttl_h: 1193047",
            "token_ttl_h: 1193047",
            "token_ttl_h",
            "token_ttl_h is at most 8760 (a year), not 1193047 (kubeadm.token_ttl_h)",
        ),
        ("ram_physical_gb: 267", "ram_physical_gb: 0", "ram_physical_gb", "ram_physical_gb", "physical RAM must be more than 0 GB (hypervisors[0].ram_physical_gb)"),
        (
            "ram_allocated_gb: 262",
            "ram_allocated_gb: .nan",
            "ram_allocated_gb",
            "ram_allocated_gb",
            "allocated RAM must be a non-negative number of GB, not NaN (hypervisors[0].ram_allocated_gb)",
        ),
        ("ram_used_gb: 4.6", "ram_used_gb: 40", "ram_used_gb", "ram_used_gb", "node k8s-master uses more RAM than it has (nodes[0].ram_used_gb)"),
        (
            "path: config, server: https://10.0.20.100:6443",
            "path: config, server: http://10.0.20.100",
            "root-kubeconfig",
            "server",
            "server \"http://10.0.20.100\" is not of the form https://HOST:PORT (consumers[0].server)",
        ),
        (
            "path: config, server: https://10.0.20.100:6443",
            "path: config, server: https://10.0.20.101:6443",
            "root-kubeconfig",
            "server",
            "consumer root-kubeconfig uses https://10.0.20.101:6443, but the cluster's API is at https://10.0.20.100:6443 (or the master's name, or a DNS record of dns.records that names its address) (consumers[0].server)",
        ),
    ];
    for (from, to, needle, key, expected) in cases {
        let text = edit(HOMELAB, from, to);
        assert_eq!(scenario_refused(&text, Some(&at(&text, needle, 0, key))), expected, "{from} -> {to}");
    }
    let text = edit(
        HOMELAB,
        "  - { name: k8s-master-3, address: 10.0.20.111, vmid: 206, hypervisor: pve, vcpu: 8, ram_gb: 32, disk_gb: 64 }",
        "  - { name: k8s-master-3, address: 10.0.20.111, vmid: 206, hypervisor: pve, vcpu: 0, ram_gb: 32, disk_gb: 64 }",
    );
    let message = scenario_refused(&text, Some(&at(&text, "k8s-master-3", 0, "ram_gb")));
    assert_eq!(message, "new master k8s-master-3 needs RAM and vCPUs (new_masters[1].ram_gb)");
}

#[test]
fn hypervisor_node_and_consumer_counts_are_bounded() {
    let hypervisors_at = HOMELAB.find("hypervisors:\n").unwrap();
    let nodes_at = HOMELAB.find("\nnodes:\n").unwrap();
    let empty = format!("{}hypervisors: []{}", &HOMELAB[..hypervisors_at], &HOMELAB[nodes_at..]);
    assert_eq!(
        scenario_refused(&empty, Some(&at(&empty, "hypervisors: []", 0, "hypervisors"))),
        "at least one hypervisor is needed (hypervisors)"
    );
    let nine: String =
        (0..9).map(|i| format!("  - {{ name: h{i}, address: 192.168.2.{i}, ram_physical_gb: 64, ram_allocated_gb: 1 }}\n")).collect();
    let many = format!("{}hypervisors:\n{nine}{}", &HOMELAB[..hypervisors_at], &HOMELAB[nodes_at..]);
    let message = scenario_refused(&many, Some(&at(&many, "hypervisors:", 0, "hypervisors")));
    assert_eq!(message, "at most 8 hypervisors are supported (hypervisors)");
    // 60 more workers: 67 nodes with the existing ones and the new masters.
    let workers: String = (0..60).map(|i| format!("  - {{ name: w{i}, role: worker, address: 10.0.21.{i}, hypervisor: pve }}\n")).collect();
    let text = edit(HOMELAB, "\nnew_masters:", &format!("{workers}\nnew_masters:"));
    assert_eq!(scenario_refused(&text, Some(&at(&text, "nodes:", 0, "nodes"))), "67 nodes: at most 64 are supported (nodes)");
    let consumers: String =
        (0..60).map(|i| format!("  - {{ name: c{i}, kind: kubeconfig, path: c{i}, server: https://10.0.20.100:6443 }}\n")).collect();
    let text = edit(HOMELAB, "\ncronjobs:", &format!("{consumers}\ncronjobs:"));
    assert_eq!(scenario_refused(&text, Some(&at(&text, "consumers:", 0, "consumers"))), "at most 64 consumers are supported (consumers)");
}

// --- Command-line arguments -----------------------------------------------------------------------

#[test]
fn an_unknown_or_ambiguous_node_in_fail_lists_the_nodes() {
    let message = refused(&plan(&["simulate", "--fail", "master-9"]));
    assert_eq!(
        message,
        "unknown node \"master-9\" (nodes: k8s-master, k8s-master-2, k8s-master-3, k8s-node1, k8s-node2, k8s-node3, k8s-node4)"
    );
    let message = refused(&plan(&["simulate", "--fault", "hypervisor-failure", "--fail", "pve2"]));
    assert!(message.starts_with("unknown node \"pve2\""), "{message}");
    // Two workers whose names end in -edge: the short form names both.
    let text = edit(&edit(HOMELAB, "name: k8s-node1", "name: a-edge"), "name: k8s-node2", "name: b-edge");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "edges.yaml", &text);
    let message = refused(&plan(&["--scenario", &file, "simulate", "--fail", "edge"]));
    assert_eq!(message, "node \"edge\" is ambiguous: a-edge, b-edge");
}

#[test]
fn an_unknown_step_or_action_in_at_is_refused() {
    let message = refused(&plan(&["simulate", "--fail", "master-2", "--at", "9.9"]));
    assert!(message.starts_with("--at \"9.9\": no step 9.9 in the plan (steps: 0.1, 0.2, 0.3,"), "{message}");
    assert!(message.ends_with("7.5, 8.1)"), "{message}");
    let message = refused(&plan(&["simulate", "--fail", "master-2", "--at", "2.5@99"]));
    assert_eq!(message, "--at \"2.5@99\": step 2.5 has 4 action(s); use @0 to @3");
    let message = refused(&plan(&["simulate", "--fail", "master-2", "--at", "2.5@-1"]));
    assert_eq!(message, "--at \"2.5@-1\": the part after @ is an action number");
}

#[test]
fn a_bad_duration_in_for_shows_the_accepted_forms() {
    for duration in ["soon", "0s", "5x", "10m5", "99999999999h", "", "3x5m"] {
        let message = refused(&plan(&["simulate", "--fail", "master-2", "--for", duration]));
        assert_eq!(message, format!("duration {duration:?}: use a number with a unit, s, m, h or d (90s, 10m, 2h30m)"));
    }
}

#[test]
fn a_duration_without_a_unit_is_refused_not_read_as_seconds() {
    let message = refused(&plan(&["simulate", "--fail", "master-2", "--for", "3"]));
    assert_eq!(message, "duration \"3\" has no unit: write 3s, 3m or 3h (units: s, m, h or d)");
    // The executor's deadline too: refused before anything is read or connected to.
    let state = tempfile::tempdir().unwrap();
    let message = refused(&plan(&["rollback", "--state-dir", state.path().to_str().unwrap(), "--command-timeout", "90"]));
    assert_eq!(message, "duration \"90\" has no unit: write 90s, 90m or 90h (units: s, m, h or d)");
}

#[test]
fn a_part_of_several_node_names_lists_the_candidates() {
    let message = refused(&plan(&["--scenario", &scenario("legacy-1.28.yaml"), "simulate", "--fail", "cp"]));
    assert_eq!(message, "node \"cp\" is ambiguous: cp-1, cp-2, cp-3");
    let message = refused(&plan(&["simulate", "--fail", "node"]));
    assert_eq!(message, "node \"node\" is ambiguous: k8s-node1, k8s-node2, k8s-node3, k8s-node4");
    let message = refused(&plan(&["execute", "--dry-run", "--host", "node"]));
    assert_eq!(message, "node \"node\" is ambiguous: k8s-node1, k8s-node2, k8s-node3, k8s-node4");
}

#[test]
fn an_option_the_format_ignores_is_refused() {
    for format in ["json", "yaml"] {
        let message = refused(&plan(&["show", "--view", "topology", "--format", format]));
        assert_eq!(
            message,
            format!("--view topology has no {format} form (it is drawn as text, markdown, dot or mermaid); drop --view for the plan as {format}")
        );
    }
    let message = refused(&plan(&["show", "--view", "topology", "--phase", "2"]));
    assert_eq!(message, "--phase selects steps, and --view topology draws no steps: drop one of them");
    let message = refused(&plan(&["simulate", "--fail", "master-2", "--at", "2.5", "--full", "--format", "json"]));
    assert_eq!(message, "--full widens the text timeline; the JSON document holds every event: drop --full");
    // --seed picks a point only where --at does not: clap refuses the pair.
    let out = plan(&["simulate", "--fail", "master-2", "--at", "2.5", "--seed", "1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with") && out.stderr.contains("--seed") && out.stderr.contains("--at"), "{}", out.stderr);
    // What the format does use stays accepted.
    assert_eq!(plan(&["show", "--view", "steps", "--format", "json"]).code, 0);
    assert_eq!(plan(&["show", "--view", "topology", "--format", "mermaid"]).code, 0);
}

#[test]
fn a_phase_export_says_it_is_partial_and_check_refuses_it() {
    let out = plan(&["show", "--phase", "2", "--format", "yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let header = out.stdout.lines().next().unwrap();
    assert!(header.contains("phase 2 only") && header.contains("partial") && header.contains("refuses it"), "{header}");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "phase2.yaml", &out.stdout);
    let message = refused(&plan(&["--plan", &file, "check"]));
    assert_eq!(
        message,
        format!(
            "{file}: the plan file holds phase 2 only (exported with --phase 2): a plan to check or run needs every phase; export it without --phase and delete steps instead"
        )
    );
    // The refusal comes from the file's content, not its comment: without the header, still refused.
    let body: String = out.stdout.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let file = write(dir.path(), "bare.yaml", &body);
    assert!(refused(&plan(&["--plan", &file, "check"])).contains("holds phase 2 only"));
}

#[test]
fn an_unknown_fault_kind_lists_the_kinds() {
    let message = refused(&plan(&["simulate", "--fail", "master-2", "--fault", "meteor"]));
    assert_eq!(
        message,
        "unknown fault kind \"meteor\" (kinds: crash, reboot, hypervisor-failure, lb-reload, lb-reboot, partition, operator-away, \
         step-fails-halfway, executor-crash)"
    );
    assert_eq!(refused(&plan(&["simulate", "--fault", "partition"])), "fault partition needs --fail NODE");
    assert_eq!(refused(&plan(&["simulate"])), "nothing fails: give --fail NODE or --fault KIND");
    assert_eq!(refused(&plan(&["simulate", "--fault", "lb-reload", "--fail", "master-2"])), "fault lb-reload strikes no node: drop --fail");
    assert_eq!(
        refused(&plan(&["simulate", "--fault", "executor-crash", "--for", "5m"])),
        "fault executor-crash has no duration: drop --for"
    );
}

#[test]
fn clap_usage_errors_are_one_plan_error_line_with_the_valid_choices() {
    let cases: [(&[&str], &str); 8] = [
        (&["check", "--depth", "x"], "invalid value 'x' for '--depth <DEPTH>': invalid digit found in string; see plan --help"),
        (
            &["show", "--format", "pdf"],
            "invalid value 'pdf' for '--format <FORMAT>' (possible values: text, markdown, json, yaml, dot, mermaid); see plan --help",
        ),
        (
            &["simulate", "--fail", "master-2", "--seed", "x"],
            "invalid value 'x' for '--seed <SEED>': invalid digit found in string; see plan --help",
        ),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'; see plan --help"),
        (&["chek"], "unrecognized subcommand 'chek' (a similar subcommand exists: 'check'); see plan --help"),
        (&["execute", "--rerun-step"], "the following required arguments were not provided: --resume; see plan --help"),
        (&["execute", "--by-hand-done"], "the following required arguments were not provided: --resume; see plan --help"),
        (
            &["execute", "--dry-run", "--workstation=-oProxyCommand=sh"],
            "invalid value '-oProxyCommand=sh' for '--workstation <HOST>': the host `-oProxyCommand=sh` is not one: letters, digits, `.`, `_` and `-`, not starting with `-` or `.` (the name the ssh config knows, or USER@NAME); see plan --help",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(refused(&plan(args)), expected, "{args:?}");
    }
    // `plan recover` and its alias `plan rollback` refuse the same usage alike, before any journal
    // is read.
    let choice = "a recovery's number as `plan recover --list` shows it (1, 2, ...) or its kind (wait-and-retry, renew, resume, rollback, hold, go-forward, quorum-recovery, worst-case)";
    let recover_cases: [(&[&str], String); 4] = [
        (&["--choose", "0"], format!("invalid value '0' for '--choose <N|KIND>': {choice}; see plan --help")),
        (&["--choose", "two"], format!("invalid value 'two' for '--choose <N|KIND>': {choice}; see plan --help")),
        (&["--list", "--choose", "1"], "the argument '--list' cannot be used with '--choose <N|KIND>'; see plan --help".to_string()),
        (&["--format", "json"], "the following required arguments were not provided: --list; see plan --help".to_string()),
    ];
    for (args, expected) in recover_cases {
        for command in ["recover", "rollback"] {
            let args: Vec<&str> = [command].into_iter().chain(args.iter().copied()).collect();
            assert_eq!(refused(&plan(&args)), expected, "{args:?}");
        }
    }
    let help = plan(&["--help"]);
    assert_eq!(help.code, 0, "help is not an error: {}", help.stderr);
    assert!(help.stdout.contains("Usage: plan"), "{}", help.stdout);
}

// --- Inputs the fuzzer found (fuzz/, scripts/fuzz.sh) ----------------------------------------------

/// Every file in tests/fuzz_regressions/: `scenario-*` through `--scenario`, `plan_file-*`
/// through `--plan`. Each once crashed or hung a fuzz target; all must now be refused cleanly.
#[test]
fn fuzz_regressions_are_refused_without_a_panic() {
    let dir = root().join("tests/fuzz_regressions");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz_regressions exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let flag = if name.starts_with("scenario-") {
            "--scenario"
        } else if name.starts_with("plan_file-") {
            "--plan"
        } else {
            continue;
        };
        let out = plan(&[flag, path.to_str().unwrap(), "show"]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(out.stderr.starts_with("plan: error: ") && !out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        ran += 1;
    }
    assert!(ran > 0, "no regression inputs in {}", dir.display());
    assert!(Path::new(&dir).join("README.md").exists());
}

#[test]
fn rerun_step_without_resume_is_a_usage_error() {
    // It re-runs a step of the journalled run: without --resume there is none.
    let out = plan(&["execute", "--rerun-step"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--resume"), "{}", out.stderr);
}

/// A file with several problems is refused once with all of them, one line each in the file's
/// order (the checks find the headroom before the nodes), each located as a problem alone is;
/// the structure's first problem only (the consumer that names the right address is not
/// reported for the node whose address is mistyped).
#[test]
fn every_problem_of_a_scenario_is_named_at_once_in_the_files_order() {
    let text = edit(HOMELAB, "version: \"1.34\"", "version: \"1.x\"");
    let text = edit(&text, "\nssh_user: wizard\n", "\nssh_user: Wizard\n");
    let text = edit(&text, "address: 10.0.20.102", "address: 10.0.20.101");
    let text = edit(
        &text,
        "path: .woodpecker/default.yml, server: https://10.0.20.100:6443",
        "path: .woodpecker/default.yml, server: https://10.0.20.99:6443",
    );
    let text = edit(&text, "ram_headroom_percent: 5", "ram_headroom_percent: 150");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "scenario.yaml", &text);
    let out = plan(&["--scenario", &file, "check"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty() && !out.stderr.contains("panicked"), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.trim_end().lines().collect();
    assert_eq!(lines[0], format!("plan: error: {file}: 4 problems:"), "{}", out.stderr);
    let expected = [
        (at(&text, "version: \"1.x\"", 0, "version"), "Kubernetes version \"1.x\" is not of the form 1.34 (kubernetes.version)"),
        (at(&text, "ssh_user: Wizard", 0, "ssh_user"), "SSH user \"Wizard\" is not allowed"),
        (
            at(&text, "k8s-node2", 0, "address"),
            "address 10.0.20.101 of node k8s-node2 is already used by nodes[1].address (nodes[2].address)",
        ),
        (
            at(&text, "ram_headroom_percent", 0, "ram_headroom_percent"),
            "headroom must be a percentage from 0 to 100, not 150 (capacity.ram_headroom_percent)",
        ),
    ];
    assert_eq!(lines.len(), 1 + expected.len(), "{}", out.stderr);
    for (line, (place, words)) in lines[1..].iter().zip(&expected) {
        let start = format!("  {file}:{place}: ");
        assert!(line.starts_with(&start), "{line:?} should start with {start:?}");
        assert!(line[start.len()..].starts_with(words), "{line:?} should say {words:?}");
    }
    // The node's address put right, the consumer is the structure's first problem.
    let fixed = edit(&text, "k8s-node2, role: worker, address: 10.0.20.101", "k8s-node2, role: worker, address: 10.0.20.102");
    let file = write(dir.path(), "fixed.yaml", &fixed);
    let out = plan(&["--scenario", &file, "check"]);
    assert!(out.stderr.contains("consumer woodpecker-default uses https://10.0.20.99:6443"), "{}", out.stderr);
    // Each alone is refused on one line, as before.
    let alone = edit(HOMELAB, "ram_headroom_percent: 5", "ram_headroom_percent: 150");
    let message = scenario_refused(&alone, Some(&at(&alone, "ram_headroom_percent", 0, "ram_headroom_percent")));
    assert_eq!(message, expected[3].1);
}
