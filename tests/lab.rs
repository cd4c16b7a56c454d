//! The lab: real etcd, HAProxy and HTTPS apiserver stand-ins on loopback, started and stopped by
//! the tests themselves.
//!
//! The tests run in parallel. A walk's lab (`plan rehearse`, `plan lab up`) is on the scenario's
//! addresses in 127.0.0.0/16 with a port offset of its test's own; an executor's lab
//! (`--via-execute`) claims a loopback range of its own, `127.N.0.0/16`, on the scenario's own
//! ports, and its tests read the range from the report (`loopback_range`) and expect the
//! scenario's addresses there. Without etcd or HAProxy the tests that need them are skipped,
//! except under `CI=true`, where a missing binary fails them.

mod common;

use common::{lab_range, on_lab, plan, remove_steps, scenario, write};
use plan_lab::etcd::Membership;
use plan_lab::lab::{check_binaries, CommittedData, Lab, BEFORE_RESTORE_DIR};
use plan_lab::process;
use plan_model::action::{self, Action};
use plan_model::cluster::{Cluster, EtcdData};
use plan_model::observe;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::recovery;
use serde_json::Value;

/// A port offset of this test process's own, `slot` apart per test: two runs of the suite at
/// once (two engineers, or CI beside a developer) must not share etcd's ports. Slots 0 to 10 take
/// offsets `+0` to `+21` (etcd's client and peer ports are one apart), so processes are 22 apart,
/// above the lab's own unit tests' offsets (10,000 to 10,998). Every port (2379 to 8404, plus at
/// most 24,198) stays below 32768, where the kernel's ephemeral ports begin: a port the kernel hands
/// an executor lab's sshd (`bind` to port 0) on the same address never takes a walk's.
fn offset(slot: u16) -> String {
    (11_000 + (std::process::id() % 600) as u16 * 22 + slot * 2).to_string()
}

/// Whether etcd (and HAProxy when `haproxy`) are installed; under CI their absence fails.
fn lab_binaries(haproxy: bool) -> bool {
    match check_binaries(haproxy) {
        Ok(()) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("{e}: CI must install etcd-server, etcd-client and haproxy"),
        Err(e) => {
            eprintln!("skipping a lab test: {e}");
            false
        }
    }
}

/// Every key committed before the migration still there: the 10 seed keys the backup holds and
/// the 3 written after it.
const ALL_KEYS: &str = "10 of 10 keys from before the backup, 3 of 3 written after it";

/// Runs `plan rehearse --walk --format json` and returns the exit code and the report.
fn rehearse(args: &[&str]) -> (i32, Value) {
    let mut all: Vec<&str> = args.to_vec();
    let at = all.iter().position(|a| *a == "rehearse").expect("a rehearse command") + 1;
    all.insert(at, "--walk");
    all.extend(["--format", "json"]);
    let out = plan(&all);
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("rehearse prints JSON ({e}); exit {} (-1: killed by a signal); stderr: {}", out.code, out.stderr));
    (out.code, report)
}

/// The rows whose observation is `observation`.
fn rows<'a>(report: &'a Value, observation: &str) -> Vec<&'a Value> {
    report["rows"].as_array().expect("rows").iter().filter(|r| r["observation"] == observation).collect()
}

fn row<'a>(report: &'a Value, observation: &str) -> &'a Value {
    let found = rows(report, observation);
    assert_eq!(found.len(), 1, "one row {observation:?} in {report:#}");
    found[0]
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// No row disagrees and none is unrehearsed (stand-in rows and the lab's events are not
/// agreement, and do not fail), and every row holds the fields docs/json.md documents for it.
fn assert_all_agree(report: &Value) {
    let rows = report["rows"].as_array().expect("rows");
    let failing: Vec<&Value> = rows.iter().filter(|r| r["verdict"] == "disagree" || r["verdict"] == "not-rehearsed").collect();
    assert!(failing.is_empty(), "rows that disagree or are not rehearsed: {failing:#?}");
    for r in rows {
        assert_eq!(r["agree"] == true, r["verdict"] == "agree", "agree is the verdict agree: {r}");
        for key in r.as_object().expect("a row is an object").keys() {
            assert!(JSON_DOC.contains(&format!("| `rows[].{key}` |")), "docs/json.md documents rows[].{key}: {r}");
        }
    }
}

const JSON_DOC: &str = include_str!("../docs/json.md");

#[test]
fn learner_off_crash_after_voter_add_loses_quorum_and_member_remove_is_refused() {
    if !lab_binaries(true) {
        return;
    }
    let legacy = scenario("legacy-1.28.yaml");
    let (code, report) = rehearse(&["--scenario", &legacy, "rehearse", "--fail", "cp-2", "--at", "2.5", "--port-offset", &offset(0)]);
    assert_eq!(code, 0, "the lab agrees with the twin: {report:#}");
    assert_eq!(report["learner_mode"], false);
    assert_eq!(text(&row(&report, "etcd member add cp-2 (voter)")["lab"]), "ok");
    // Real etcd: two voters, one never started: writes stop before any fault.
    let after_add = row(&report, "quorum after member add cp-2");
    assert!(text(&after_add["lab"]).starts_with("no"), "{after_add}");
    assert!(text(&row(&report, "quorum after the fault")["lab"]).starts_with("no"));
    let members = row(&report, "etcd members after the fault");
    assert_eq!(text(&members["lab"]), "voters cp-1, cp-2; learners none");
    let remove = row(&report, "etcdctl member remove cp-2");
    assert!(text(&remove["lab"]).starts_with("refused"), "real etcd refuses member remove without quorum: {remove}");
    assert!(text(&remove["twin"]).starts_with("refused"), "{remove}");
    assert_eq!(text(&row(&report, "etcd --force-new-cluster on cp-1")["lab"]), "ok");
    assert_eq!(text(&row(&report, "outcome")["lab"]), "quorum recovered (RQ), migration undone");
    assert_eq!(text(&row(&report, "etcd members at the end")["lab"]), "voters cp-1; learners none");
    assert_eq!(text(&row(&report, "committed data")["lab"]), ALL_KEYS);
    assert!(report["figures"]["quorum_loss_detected_ms"].as_u64().is_some());
    // Without quorum the stand-in's /readyz fails, HAProxy's https-readyz check takes it out,
    // and the VIP has no backend: clients see real downtime until quorum is recovered.
    let ready = row(&report, "apiserver cp-1 /readyz after the fault");
    assert!(text(&ready["lab"]).contains("503"), "{ready}");
    assert!(text(&row(&report, "VIP healthy backends after the fault")["lab"]).contains("cp-1 DOWN"));
    assert!(text(&row(&report, "/readyz through the VIP after the fault")["lab"]).starts_with("down"));
    let downtime = &report["figures"]["vip_downtime"];
    assert!(downtime["twin_down_s"].as_u64().unwrap_or(0) > 0, "{downtime}");
    assert!(downtime["measured_ms"].as_u64().unwrap_or(0) > 500, "the probe saw the outage: {downtime}");
    assert_all_agree(&report);
}

#[test]
fn learner_on_crash_after_learner_add_keeps_quorum_and_rolls_back_cleanly() {
    if !lab_binaries(true) {
        return;
    }
    let (code, report) = rehearse(&["rehearse", "--fail", "master-2", "--at", "2.5", "--port-offset", &offset(1)]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["learner_mode"], true);
    assert_eq!(text(&row(&report, "etcd member add k8s-master-2 (learner)")["lab"]), "ok");
    assert_eq!(text(&row(&report, "etcd members after the fault")["lab"]), "voters k8s-master; learners k8s-master-2");
    assert!(text(&row(&report, "quorum after the fault")["lab"]).starts_with("yes"));
    let remove = row(&report, "etcdctl member remove k8s-master-2");
    assert_eq!((text(&remove["twin"]), text(&remove["lab"])), ("ok", "ok"), "a learner goes without quorum arithmetic");
    assert_eq!(text(&row(&report, "outcome")["lab"]), "rolled back phase 2");
    assert_eq!(text(&row(&report, "etcd members at the end")["lab"]), "voters k8s-master; learners none");
    assert!(report["figures"]["quorum_loss_detected_ms"].is_null(), "quorum never lapsed");
    assert_all_agree(&report);
}

#[test]
fn full_walk_to_three_voters_then_the_leader_crashes_and_quorum_holds() {
    if !lab_binaries(true) {
        return;
    }
    let (code, report) = rehearse(&["rehearse", "--fail", "master", "--at", "4.1@0", "--port-offset", &offset(2)]);
    assert_eq!(code, 0, "{report:#}");
    for observation in ["etcd promote k8s-master-2", "etcd promote k8s-master-3"] {
        assert_eq!(text(&row(&report, observation)["lab"]), "ok");
    }
    assert_eq!(text(&row(&report, "etcd members after the fault")["lab"]), "voters k8s-master, k8s-master-2, k8s-master-3; learners none");
    let quorum = row(&report, "quorum after the fault");
    assert!(text(&quorum["lab"]).starts_with("yes"), "2 of 3 voters keep quorum: {quorum}");
    assert!(text(&row(&report, "fault injected")["lab"]).starts_with("SIGKILL to etcd of k8s-master"));
    // The VIP absorbs the loss: held (R4's `when`), the dead member removed for real with 2/3 up.
    assert_eq!(text(&row(&report, "etcdctl member remove k8s-master")["lab"]), "ok");
    assert_eq!(text(&row(&report, "outcome")["lab"]), "halted at 4.1, the cluster runs on");
    assert_eq!(text(&row(&report, "etcd members at the end")["lab"]), "voters k8s-master-2, k8s-master-3; learners none");
    assert_eq!(text(&row(&report, "committed data")["lab"]), ALL_KEYS);
    // The control plane beside etcd: real TLS, real HAProxy checks, the twin's pool.
    let tls = row(&report, "TLS through the VIP (check)");
    assert!(text(&tls["lab"]).starts_with("verified for the VIP"), "phase 0 put the VIP in the cert: {tls}");
    let backends = rows(&report, "VIP healthy backends (check)");
    assert_eq!(text(&backends[0]["lab"]), "k8s-master (HAProxy: k8s-master UP L7OK)", "1.3: the https-readyz check passes");
    assert!(backends.iter().any(|r| text(&r["lab"]).starts_with("k8s-master, k8s-master-2, k8s-master-3 (")), "3.8: all three in the pool");
    let dead = row(&report, "apiserver k8s-master /readyz after the fault");
    assert!(text(&dead["twin"]).contains("node down") && text(&dead["lab"]).starts_with("not ready (unreachable"), "{dead}");
    let after = row(&report, "VIP healthy backends after the fault");
    assert!(text(&after["lab"]).starts_with("k8s-master-2, k8s-master-3 (") && text(&after["lab"]).contains("k8s-master DOWN"), "{after}");
    assert!(text(&row(&report, "/readyz through the VIP after the fault")["lab"]).starts_with("ok"), "two backends carry the VIP");
    assert_eq!(report["figures"]["lb_rewrites"], 2, "the pool is rewritten at 2.8 and 3.8");
    assert!(report["figures"]["probe"]["requests"].as_u64().unwrap_or(0) > 10, "the probe asked all along");
    assert_all_agree(&report);
}

#[test]
fn a_plan_without_the_cert_regeneration_fails_tls_through_the_vip_on_the_lab_as_in_the_twin() {
    if !lab_binaries(true) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exported = plan(&["show", "--format", "yaml"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let edited = write(dir.path(), "no-0.3.yaml", &remove_steps(&exported.stdout, &["0.3", "0.4"]));
    let (code, report) = rehearse(&["--plan", &edited, "rehearse", "--port-offset", &offset(6)]);
    assert_eq!(code, 0, "the lab agrees that the plan fails: {report:#}");
    let tls = row(&report, "TLS through the VIP (check)");
    assert_eq!(text(&tls["twin"]), "rejected: cert of k8s-master lacks the VIP SAN");
    assert!(text(&tls["lab"]).contains("not valid for name \"127.0.20.99\""), "rustls rejects the served cert: {tls}");
    assert!(text(&row(&report, "/readyz through the VIP (check)")["lab"]).starts_with("down: TLS rejected"));
    assert_eq!(text(&row(&report, "outcome")["lab"]), "rolled back phase 1");
    let downtime = row(&report, "client downtime through the VIP");
    assert!(text(&downtime["lab"]).starts_with("the VIP never served"), "{downtime}");
    assert!(report["figures"]["probe"]["tls_rejected"].as_u64().unwrap_or(0) > 0);
    assert_all_agree(&report);
}

#[test]
fn a_tcp_health_check_keeps_an_unready_backend_and_clients_of_the_vip_see_it() {
    if !lab_binaries(true) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tcp = include_str!("../scenarios/legacy-1.28.yaml").replace("health_check: https-readyz", "health_check: tcp");
    let path = write(dir.path(), "legacy-tcp.yaml", &tcp);
    let (code, report) = rehearse(&["--scenario", &path, "rehearse", "--fail", "cp-2", "--at", "2.5", "--port-offset", &offset(7)]);
    assert_eq!(code, 0, "{report:#}");
    let backends = row(&report, "VIP healthy backends after the fault");
    assert_eq!(text(&backends["lab"]), "cp-1 (HAProxy: cp-1 UP L4OK)", "a TCP connect passes without quorum: {backends}");
    let via = row(&report, "/readyz through the VIP after the fault");
    assert_eq!(text(&via["twin"]), "down: cp-1 passes the TCP check but is not ready");
    assert!(text(&via["lab"]).contains("503"), "{via}");
    assert_all_agree(&report);
}

#[test]
fn lab_up_status_down_across_invocations_with_haproxy_at_the_vip() {
    if !lab_binaries(true) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().display().to_string();
    let up = plan(&["lab", "up", "--walk", "--state-dir", &state, "--port-offset", &offset(3)]);
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("10.0.20.100 -> 127.0.20.100"), "{}", up.stdout);
    let again = plan(&["lab", "up", "--walk", "--state-dir", &state, "--port-offset", &offset(3)]);
    assert_eq!(again.code, 2, "a second lab in the same directory is refused: {}", again.stderr);
    assert!(again.stderr.contains("already up"), "{}", again.stderr);
    let elsewhere = dir.path().join("second").display().to_string();
    let clash = plan(&["lab", "up", "--walk", "--state-dir", &elsewhere, "--port-offset", &offset(3)]);
    assert_eq!(clash.code, 2, "a second lab on the same ports is refused: {}", clash.stderr);
    assert!(clash.stderr.contains("in use"), "{}", clash.stderr);

    let status = plan(&["lab", "status", "--state-dir", &state, "--format", "json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let doc: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(doc["hosts"][0]["membership"], "voter");
    assert_eq!(doc["quorum"]["holds"], true);
    let pids: Vec<u32> = doc["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| text(&h["etcd"]).strip_prefix("running (pid ").and_then(|p| p.trim_end_matches(')').parse().ok()))
        .collect();
    assert_eq!(pids.len(), 1, "only the existing master's etcd runs before the migration");
    // HAProxy's check of the existing master turns UP within a few check intervals.
    let mut up_backend = false;
    for _ in 0..50 {
        let status = plan(&["lab", "status", "--state-dir", &state, "--format", "json"]);
        let doc: Value = serde_json::from_str(&status.stdout).expect("status JSON");
        if doc["backends"]["Ok"][0]["status"] == "UP" && doc["vip_healthy"]["Ok"] == true {
            up_backend = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up_backend, "the VIP serves the existing master's health");

    let down = plan(&["lab", "down", "--state-dir", &state]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(!process::is_alive(pids[0]), "lab down kills etcd by pid");
    let gone = plan(&["lab", "status", "--state-dir", &state]);
    assert_eq!(gone.code, 2);
    assert!(gone.stderr.contains("no lab"), "{}", gone.stderr);
}

#[test]
fn a_private_lab_is_killed_when_dropped_even_on_panic() {
    if !lab_binaries(true) {
        return;
    }
    let t = Topology::new(&parse_scenario(include_str!("../scenarios/homelab.yaml")).expect("homelab parses"));
    let lab = Lab::private(&t, offset(4).parse().expect("a number"), true, 1).expect("lab starts");
    let pids: Vec<u32> = lab.state().etcd.values().copied().chain(lab.state().haproxy).collect();
    let dir = lab.dir().to_path_buf();
    assert_eq!(pids.len(), 2, "etcd and haproxy");
    assert!(pids.iter().all(|p| process::is_alive(*p)));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = lab;
        panic!("a test fails half-way");
    }));
    assert!(panicked.is_err());
    assert!(pids.iter().all(|p| !process::is_alive(*p)), "the drop guard killed {pids:?}");
    assert!(!dir.exists(), "the private lab's directory is gone");
}

/// An LB reload (the pfSense bootstrap re-run on its own, reset to the declared state) after 2.8
/// declared k8s-master-2 and before 2.8 deploys it: real HAProxy is restarted with the declared
/// pool, both masters UP and `/readyz` through the VIP verified, as the twin says; the run completes.
#[test]
fn an_lb_reload_before_the_deploy_resets_haproxy_to_the_declared_pool_as_the_twin_says() {
    if !lab_binaries(true) {
        return;
    }
    let (code, report) = rehearse(&["rehearse", "--fault", "lb-reload", "--at", "2.8", "--port-offset", &offset(9)]);
    assert_eq!(code, 0, "{report:#}");
    assert_all_agree(&report);
    let struck = row(&report, "fault injected");
    assert!(text(&struck["lab"]).starts_with("HAProxy reset to the declared pool (k8s-master, k8s-master-2)"), "{struck}");
    assert_eq!(struck["verdict"], "event", "what the lab did is compared with nothing: {struck}");
    let backends = row(&report, "VIP healthy backends after the fault");
    assert!(text(&backends["lab"]).starts_with("k8s-master, k8s-master-2 ("), "{backends}");
    assert_eq!(text(&row(&report, "outcome")["lab"]), "completed");
}

/// The Linux HAProxy profile (issue 17): every pool change is a graceful reload (`-sf`), and so
/// is a reload from the config file as a fault; the probe through the VIP sees no gap, as the
/// twin predicts (it charges no bounce to a profile that does not reset).
#[test]
fn the_linux_haproxy_profile_reloads_gracefully_and_the_probe_sees_no_gap() {
    if !lab_binaries(true) {
        return;
    }
    let scenario = common::scenario("haproxy-libvirt.yaml");
    let (code, report) =
        rehearse(&["--scenario", &scenario, "rehearse", "--fault", "lb-reload", "--at", "2.8", "--port-offset", &offset(10)]);
    assert_eq!(code, 0, "{report:#}");
    assert_all_agree(&report);
    let struck = row(&report, "fault injected");
    assert_eq!(text(&struck["twin"]), "lb-1 reloads HAProxy from its config file", "{struck}");
    assert!(text(&struck["lab"]).starts_with("HAProxy reset to the declared pool (cp-1, cp-2)"), "{struck}");
    let figures = &report["figures"];
    assert!(figures["lb_rewrites"].as_u64().unwrap_or_default() >= 2, "the pool changed by reloads: {figures}");
    assert_eq!(figures["vip_downtime"]["twin_down_s"], 0, "{figures}");
    assert_eq!(figures["probe"]["outages"].as_array().map(Vec::len), Some(0), "a graceful reload drops nothing: {figures}");
    assert_eq!(text(&row(&report, "outcome")["lab"]), "completed");
}

#[test]
fn faults_and_nodes_the_lab_cannot_inject_are_input_errors() {
    // Refused before any process starts, so no etcd is needed. The walk:
    let out = plan(&["rehearse", "--walk", "--fault", "lb-reboot", "--at", "2.5"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot inject lb-reboot"), "{}", out.stderr);
    let out = plan(&["rehearse", "--walk", "--fault", "lb-reload", "--fail", "master-2", "--at", "2.5"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("strikes no node"), "{}", out.stderr);
    let out = plan(&["rehearse", "--walk", "--fail", "node1", "--at", "2.5"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not a master"), "{}", out.stderr);
    let out = plan(&["rehearse", "--walk", "--fail", "master-2"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--at"), "{}", out.stderr);
    let out = plan(&["rehearse", "--walk", "--fail", "master-9", "--at", "2.5"]);
    assert_eq!(out.code, 2);
    let out = plan(&["rehearse", "--walk", "--fault", "operator-away", "--at", "2.5@0"]);
    assert_eq!(out.code, 2, "the walk has no clock to jump: {}", out.stderr);
    assert!(out.stderr.contains("without --walk"), "{}", out.stderr);
    let out = plan(&["lab", "status", "--state-dir", "/nonexistent/plan-lab"]);
    assert_eq!(out.code, 2);
    // Through the executor (the default): crash, reboot, partition and a clock jump, at a point
    // its commands have; `--via-execute` says the same.
    for through in [None, Some("--via-execute")] {
        let mut args: Vec<&str> = vec!["rehearse"];
        args.extend(through);
        let out = plan(&[&args[..], &["--fault", "lb-reload", "--at", "2.5"]].concat());
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains("injects crash, reboot") && out.stderr.contains("--walk"), "{}", out.stderr);
    }
    let out = plan(&["rehearse", "--fault", "reboot", "--fail", "master-2", "--at", "2.5"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not inside kubeadm join"), "{}", out.stderr);
    let out = plan(&["rehearse", "--fail", "master", "--at", "0.2@1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no command ends right after"), "{}", out.stderr);
    // The walk's own options are refused without it.
    let out = plan(&["rehearse", "--keep"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--walk"), "{}", out.stderr);
    let out = plan(&["rehearse", "--via-execute=2.3,2.4,2.5", "--fail", "master-2", "--at", "2.5"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("during the whole plan"), "{}", out.stderr);
}

#[test]
fn scenarios_whose_addresses_clash_on_loopback_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = include_str!("../scenarios/homelab.yaml").replace("address: 10.0.20.110", "address: 10.9.20.100");
    let path = common::write(dir.path(), "clash.yaml", &text);
    let state = dir.path().join("lab").display().to_string();
    let out = plan(&["--scenario", &path, "lab", "up", "--walk", "--state-dir", &state, "--port-offset", &offset(5)]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("127.0.20.100"), "{}", out.stderr);
}

#[test]
fn the_worst_case_restores_the_backup_for_real_and_loses_the_writes_after_it_as_the_twin_says() {
    // No single fault reaches the worst case on any scenario (`plan check`: restored_from_snapshot
    // 0 everywhere), so the lab is driven to it directly: voter mode, cp-2 added as a voter and
    // never started, quorum lost with no member to force a new cluster from but cp-1 itself.
    if !lab_binaries(false) {
        return;
    }
    let t = Topology::new(&parse_scenario(include_str!("../scenarios/legacy-1.28.yaml")).expect("legacy parses"));
    let plan = planner::generate(&t);
    let (cp1, cp2) = (t.existing_master(), t.new_masters().next().expect("legacy has new masters"));
    let mut twin = Cluster::initial(&t);
    'walk: for step in &plan.steps {
        for &a in &step.actions {
            twin = action::apply(&twin, &t, a).unwrap_or_else(|r| panic!("the plan applies up to the member add: {r}"));
            if a == Action::EtcdMemberAdd(cp2) {
                break 'walk;
            }
        }
    }
    assert!(!observe::quorum(&twin).holds(), "the twin: 1 of 2 voters started");

    let mut lab = Lab::private(&t, offset(8).parse().expect("a number"), false, 10).expect("lab starts");
    let backup = lab.backup().expect("lab up takes the backup").clone();
    assert!(backup.file.is_file() && backup.status.revision > 0, "{backup:?}");
    assert_eq!(lab.committed_data().expect("etcdctl runs"), Ok(CommittedData { before_backup: 10, after_backup: 3 }));
    assert_eq!(lab.member_add(cp2, Membership::Voter).expect("etcdctl runs"), Ok(()));
    assert!(!lab.quorum_probe().expect("etcdctl runs").holds, "real etcd lost quorum as the twin says");

    // The twin's worst case begins with the restore on the existing master.
    let worst = recovery::worst_case_actions(&twin, &t).expect("a master is up to restore on");
    assert_eq!(worst[0], Action::RestoreSnapshot(cp1), "{worst:?}");
    let restored_twin = action::apply(&twin, &t, worst[0]).expect("the twin restores");
    let EtcdData::RestoredFromSnapshot { lost_s } = restored_twin.etcd_data else { panic!("the twin restored: {restored_twin:?}") };
    assert!(lost_s > twin.clock_s, "the backup predates the migration: {lost_s} s of writes lost");

    // A corrupt backup is refused before the member is touched.
    let saved = std::fs::read(&backup.file).expect("read the backup");
    std::fs::write(&backup.file, b"not a snapshot").expect("corrupt the backup");
    let refused = lab.snapshot_restore(cp1).expect("etcdctl runs");
    assert!(matches!(&refused, Err(r) if r.0.contains("unusable")), "{refused:?}");
    assert!(lab.etcd_pid(lab.host(cp1).expect("cp-1")).is_some(), "cp-1's etcd untouched by a refused restore");
    std::fs::write(&backup.file, saved).expect("put the backup back");

    assert_eq!(lab.snapshot_restore(cp1).expect("etcdctl runs"), Ok(backup.status));
    let held = lab.committed_data_on(cp1).expect("etcdctl runs").expect("the restored member answers");
    assert_eq!(held, CommittedData { before_backup: 10, after_backup: 0 }, "keys from before the backup are there, keys after it are gone");
    assert!(held.agrees_with(restored_twin.etcd_data, 10, backup.keys_after));
    let members = lab.members().expect("etcdctl runs").expect("the restored member answers");
    assert_eq!(members.len(), 1, "a new one-member cluster: {members:?}");
    assert_eq!(restored_twin.voters.len(), 1);
    assert!(lab.quorum_probe().expect("etcdctl runs").holds, "writes commit again, as the twin says: {}", observe::quorum(&restored_twin));
    let host = lab.host(cp1).expect("cp-1").name.clone();
    assert!(lab.dir().join(host).join(BEFORE_RESTORE_DIR).join("member").is_dir(), "the old data is kept aside");
}

/// `plan --scenario loopback [--plan FILE] rehearse --via-execute[=STEPS] --format json` with the
/// loopback guard on; `None` when fixture hosts cannot run here (not CI).
fn rehearse_via_execute(steps: Option<&str>) -> Option<(i32, Value)> {
    rehearse_plan_via_execute(None, steps)
}

fn rehearse_plan_via_execute(plan_file: Option<&str>, steps: Option<&str>) -> Option<(i32, Value)> {
    let loopback = scenario("loopback.yaml");
    rehearse_scenario_via_execute(&["--scenario", &loopback], plan_file, steps, &[])
}

/// `plan [SCENARIO ARGS] [--plan FILE] rehearse --via-execute[=STEPS] [EXTRA] --format json`.
fn rehearse_scenario_via_execute(
    scenario_args: &[&str],
    plan_file: Option<&str>,
    steps: Option<&str>,
    extra: &[&str],
) -> Option<(i32, Value)> {
    if let Err(e) = plan_lab::host::usable() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but fixture hosts cannot run: {e}: install openssh-server");
        eprintln!("skipping: {e} (not CI)");
        return None;
    }
    // The whole plan is what `plan rehearse` does by default; a slice is `--via-execute=STEPS`.
    let flag = steps.map(|s| format!("--via-execute={s}"));
    let plan_args = plan_file.map_or(Vec::new(), |file| vec!["--plan", file]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_plan"))
        .args(scenario_args)
        .args(plan_args)
        .arg("rehearse")
        .args(flag)
        .args(extra)
        .args(["--format", "json"])
        .env("PLAN_LOOPBACK_ONLY", "1")
        .output()
        .expect("the plan binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("rehearse prints JSON ({e}): {stdout}; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    Some((out.status.code().unwrap_or(-1), report))
}

#[test]
fn the_cert_san_retrofit_and_the_kubelet_flips_through_the_executor_agree_with_the_twin() {
    if !lab_binaries(true) {
        return;
    }
    let slice = "0.2,0.3,0.4,1.1,1.2,1.3,1.4,4.2,4.3";
    let Some((code, report)) = rehearse_via_execute(Some(slice)) else { return };
    assert_eq!(code, 0, "{report:#}");
    assert_all_agree(&report);
    let steps: Vec<&str> = report["steps"].as_array().expect("steps").iter().filter_map(Value::as_str).collect();
    assert_eq!(steps.join(","), slice);
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"));
    // Real files edited over SSH; the workers on the VIP, lab-cp-1 on its own apiserver
    // (Kubernetes 1.34), and the stand-in serving the regenerated cert without a restart. The
    // addresses are the scenario's, in the range this lab held.
    let range = lab_range(&report);
    let (vip, cp1) = (on_lab(range, "127.0.20.99"), on_lab(range, "127.0.20.10"));
    for node in ["lab-wk-1", "lab-wk-2"] {
        let server = row(&report, &format!("kubelet.conf server is the VIP on {node}"));
        assert!(text(&server["lab"]).starts_with(&format!("yes (https://{vip}:6443)")), "{server}");
    }
    let server = row(&report, "kubelet.conf server is the VIP on lab-cp-1");
    assert!(text(&server["lab"]).starts_with(&format!("no (https://{cp1}:6443)")), "{server}");
    assert_eq!(text(&row(&report, "apiserver cert on disk has the VIP SAN on lab-cp-1")["lab"]), "yes");
    assert_eq!(text(&row(&report, "served cert verifies for the VIP on lab-cp-1")["lab"]), "yes (rustls)");
    // The kubeadm-config ConfigMap is a lab file the shim writes: equal to the twin, yet a
    // stand-in, never counted as agreement.
    let config = row(&report, "kubeadm-config controlPlaneEndpoint is the VIP");
    assert_eq!((text(&config["lab"]), text(&config["verdict"]), config["agree"].as_bool()), ("yes", "stand-in", Some(false)), "{config}");
    let actions: Vec<&str> = report["lab_actions"].as_array().expect("lab actions").iter().filter_map(Value::as_str).collect();
    assert!(
        !actions.iter().any(|a| a.starts_with("kubelet on lab-cp-1: kube-apiserver.yaml")),
        "0.4 restarts nothing: the stand-in reloads the pair itself: {actions:?}"
    );
}

/// The whole plan, every step, through the executor on the lab: real sshd hosts for every node,
/// the load balancer, the hypervisor and the workstation; real etcd joins; HAProxy deployed from
/// the infra repo's bootstrap script as the plan edits it; the failover reboot of lab-cp-1 for
/// real. The run completes as the twin says, every observation agrees, and the source plan's
/// acceptance criteria that can be checked on the lab hold: three masters, quorum, the LB serving
/// verified TLS with every backend UP, every node Ready on the VIP, an etcd backup from a master.
#[test]
fn the_whole_plan_through_the_executor_meets_the_source_plans_acceptance_criteria_on_the_lab() {
    if !lab_binaries(true) {
        return;
    }
    let Some((code, report)) = rehearse_via_execute(Some("all")) else { return };
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"), "{report:#}");
    assert_all_agree(&report);
    assert_eq!(code, 0, "every row agrees: {report:#}");
    // 50: the loopback template already installs 1.34 without a worker join, so no 2.0 bump.
    assert_eq!(report["steps"].as_array().expect("steps").len(), 50, "every step of the loopback plan ran");
    let three = "lab-cp-1, lab-cp-2, lab-cp-3";
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), three);
    assert_eq!(text(&row(&report, "etcd members started (etcdctl member list)")["lab"]), three);
    assert_eq!(text(&row(&report, "backends UP behind the VIP (HAProxy show stat)")["lab"]), three);
    assert_eq!(text(&row(&report, "/readyz through the VIP, TLS verified for the VIP")["lab"]), "yes");
    for node in ["lab-cp-1", "lab-cp-2", "lab-cp-3", "lab-wk-1", "lab-wk-2"] {
        assert_eq!(text(&row(&report, &format!("node {node} Ready (its kubelet reaches an apiserver)"))["lab"]), "yes");
        // Workers on the VIP; masters on their own apiserver (kubeadm's local mode on 1.34).
        let on_vip = if node.starts_with("lab-wk") { "yes" } else { "no" };
        assert!(text(&row(&report, &format!("kubelet.conf server is the VIP on {node}"))["lab"]).starts_with(on_vip), "{node}");
    }
    assert_eq!(text(&row(&report, "kube-proxy's kubeconfig names the VIP")["lab"]), "yes");
    let backup = row(&report, "acceptance: the etcd backup job (lab-etcd-backup) saves a valid snapshot");
    assert!(text(&backup["lab"]).starts_with("yes (on lab-cp-"), "{backup}");
    let actions: Vec<&str> = report["lab_actions"].as_array().expect("lab actions").iter().filter_map(Value::as_str).collect();
    assert!(actions.contains(&"lab-cp-1: down for a reboot (etcd SIGKILLed, apiserver stand-in stopped)"), "{actions:?}");
    assert!(actions.contains(&"lab-cp-1: up again after the reboot, etcd started on its data"), "{actions:?}");
    assert!(actions.iter().any(|a| a.starts_with("kubeadm join on lab-cp-3: etcdctl member promote")), "{actions:?}");
    // The client through the VIP: served from 1.3 on, and the only step it saw fail is the reboot
    // (beyond sub-second blips of HAProxy's checks on a loaded machine).
    let probe = &report["probe"];
    assert_eq!(probe["ever_ready"], Value::Bool(true), "{probe}");
    assert_eq!(probe["tls_rejected"], 0, "{probe}");
    assert_outages_only_in(&report, &["6.1"]);
}

/// The embedded scenario (the homelab of the source plan), every step through the executor: its
/// addresses moved onto loopback (10.0.20.100 -> 127.0.20.100, the hypervisor's 192.168.1.127 ->
/// 127.0.1.127, or 127.N.… in the range the lab held), its logins as the lab's root, nothing else changed. Its HTTPS `/readyz` health
/// check, four workers, eight kubeconfig consumers and pfSense bootstrap script all go through the
/// real executor, and the source plan's acceptance criteria hold on the lab as in the twin.
#[test]
fn the_embedded_scenario_through_the_executor_on_loopback_meets_the_source_plans_acceptance_criteria() {
    if !lab_binaries(true) {
        return;
    }
    let Some((code, report)) = rehearse_scenario_via_execute(&[], None, None, &[]) else { return };
    assert_eq!(text(&report["scenario"]), "homelab");
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"), "{report:#}");
    assert_all_agree(&report);
    assert_eq!(code, 0, "every row agrees: {report:#}");
    // The executor's Kubernetes API observer read nodes and ConfigMaps from the stand-ins at every
    // step that concerns them (three reads per observation), through the VIP after 4.1.
    assert!(report["api_requests"].as_u64().expect("api_requests") >= 30, "{}", report["api_requests"]);
    let range = lab_range(&report);
    let homelab = parse_scenario(include_str!("../scenarios/homelab.yaml")).expect("homelab parses");
    // Where a machine of the homelab is on this lab: its address, in the lab's range.
    let at = |name: &str| {
        let nodes = homelab.nodes.iter().map(|n| (&n.name, n.address));
        let (_, address) =
            nodes.chain(homelab.new_masters.iter().map(|n| (&n.name, n.address))).find(|(n, _)| *n == name).expect("a machine");
        on_lab(range, &address.to_string())
    };
    let (vip, first) = (on_lab(range, "10.0.20.99"), at("k8s-master"));
    let moved: Vec<&str> = report["moved_to_loopback"].as_array().expect("moved").iter().filter_map(Value::as_str).collect();
    let (master, hypervisor) = (format!("10.0.20.100 -> {first}"), format!("192.168.1.127 -> {}", on_lab(range, "192.168.1.127")));
    assert!(moved.contains(&master.as_str()) && moved.contains(&hypervisor.as_str()), "{moved:?}");
    let three = "k8s-master, k8s-master-2, k8s-master-3";
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), three);
    assert_eq!(text(&row(&report, "backends UP behind the VIP (HAProxy show stat)")["lab"]), three);
    assert_eq!(text(&row(&report, "/readyz through the VIP, TLS verified for the VIP")["lab"]), "yes");
    for node in ["k8s-master", "k8s-master-2", "k8s-master-3", "k8s-node1", "k8s-node2", "k8s-node3", "k8s-node4"] {
        assert_eq!(text(&row(&report, &format!("node {node} Ready (its kubelet reaches an apiserver)"))["lab"]), "yes");
        // Workers on the VIP; masters on their own apiserver (kubeadm's local mode on 1.34).
        let on_vip =
            if node.starts_with("k8s-node") { format!("yes (https://{vip}:6443)") } else { format!("no (https://{}:6443)", at(node)) };
        let server = row(&report, &format!("kubelet.conf server is the VIP on {node}"));
        assert!(text(&server["lab"]).starts_with(&on_vip), "{node}: {server}");
    }
    assert_eq!(text(&row(&report, "kube-proxy's kubeconfig names the VIP")["lab"]), "yes");
    let backup = row(&report, "acceptance: the etcd backup job (backup-etcd) saves a valid snapshot");
    assert!(text(&backup["lab"]).starts_with("yes (on k8s-master"), "{backup}");
    // Every consumer file the plan flips is a real file of the lab's repo, the join command's too.
    let actions: Vec<&str> = report["lab_actions"].as_array().expect("lab actions").iter().filter_map(Value::as_str).collect();
    let flip = format!("4.1: by hand in the infra repo: config.tfvars: https://{first}:6443 -> https://{vip}:6443");
    assert!(actions.iter().any(|a| a.starts_with(&flip)), "{flip}: {actions:?}");
    let consumers: Vec<&Value> =
        report["rows"].as_array().expect("rows").iter().filter(|r| text(&r["observation"]).starts_with("consumer ")).collect();
    assert_eq!(consumers.len(), 8, "every consumer of the inventory has a row");
    let on_vip = format!("yes (https://{vip}:6443)");
    assert!(consumers.iter().all(|r| text(&r["lab"]) == on_vip), "{on_vip}: {consumers:?}");
    let probe = &report["probe"];
    assert_eq!((probe["ever_ready"].clone(), probe["tls_rejected"].clone()), (Value::Bool(true), Value::from(0)), "{probe}");
    assert_outages_only_in(&report, &["6.1"]);
}

/// `plan rehearse --via-execute --fail NODE --at STEP` on `scenario_args`: the whole plan through the
/// executor with the host crashing for real, then the executor's recovery.
fn rehearse_fault_via_execute(scenario_args: &[&str], node: &str, at: &str) -> Option<(i32, Value)> {
    rehearse_scenario_via_execute(scenario_args, None, None, &["--fail", node, "--at", at])
}

/// Every outage the probe saw is in `expected` (a step the twin or the fault accounts for), or a
/// sub-second blip of HAProxy's checks on a loaded machine (the walk allows the same 1 s).
fn assert_outages_only_in(report: &Value, expected: &[&str]) {
    for outage in report["probe"]["outages"].as_array().expect("outages") {
        let steps: Vec<&str> = outage["steps"].as_array().expect("steps").iter().filter_map(Value::as_str).collect();
        let accounted = steps.iter().all(|s| expected.contains(s));
        assert!(accounted || outage["lasted_ms"].as_u64().expect("lasted_ms") < 1000, "{outage}");
    }
}

/// A fault rehearsal through the executor that halted, recovered as `path` says and went on to
/// complete, agreeing with the twin on every row.
#[track_caller]
fn assert_recovered_and_completed(code: i32, report: &Value, path: &str) {
    assert_all_agree(report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&row(report, "recovery path")["lab"]), path);
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"));
}

fn lab_actions(report: &Value) -> Vec<&str> {
    report["lab_actions"].as_array().expect("lab actions").iter().filter_map(Value::as_str).collect()
}

/// Learner mode off (Kubernetes 1.28): cp-2 crashes inside `kubeadm join`, right after the voter
/// add. Real etcd loses quorum (two voters, one never started), the executor halts at 2.5, real etcd
/// refuses the phase rollback's `member remove` as the twin ranks it, and the executor's quorum recovery
/// (a real `etcd --force-new-cluster` on cp-1) brings writes back: the twin's path and outcome.
#[test]
fn learner_off_crash_after_the_voter_add_through_the_executor_loses_quorum_and_force_new_cluster_recovers() {
    if !lab_binaries(true) {
        return;
    }
    let legacy = scenario("legacy-1.28.yaml");
    let Some((code, report)) = rehearse_fault_via_execute(&["--scenario", &legacy], "cp-2", "2.5") else { return };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    let quorum = row(&report, "quorum at the halt (a write commits)");
    assert!(text(&quorum["lab"]).starts_with("no (") && text(&quorum["twin"]).starts_with("no ("), "{quorum}");
    let remove = row(&report, "etcdctl member remove cp-2 after the fault");
    assert!(text(&remove["lab"]).starts_with("refused: ") && text(&remove["twin"]).starts_with("refused: "), "{remove}");
    // The twin ranks the phase rollback below the quorum recovery (its member remove needs
    // quorum) and takes the quorum recovery straight away.
    assert_eq!(text(&row(&report, "recovery path")["lab"]), "quorum recovery: etcd --force-new-cluster on a surviving voter (RQ)");
    assert_eq!(text(&report["executor_outcome"]), "quorum recovered (RQ), migration undone");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "cp-1");
    let actions = lab_actions(&report);
    assert!(actions.iter().any(|a| a.starts_with("kubeadm join on cp-2: etcdctl member add (voter)")), "{actions:?}");
    assert!(actions.iter().any(|a| a.starts_with("cp-2: the fault (struck inside kubeadm join): host crashed")), "{actions:?}");
    assert!(actions.contains(&"recovery: etcd --force-new-cluster on cp-1: a cluster of one, writes commit"), "{actions:?}");
    // Clients through the VIP lose the API from the lost quorum until the recovery, in 2.5 only.
    let outages = report["probe"]["outages"].as_array().expect("outages");
    assert!(!outages.is_empty(), "{:#}", report["probe"]);
    assert!(outages.iter().any(|o| o["steps"] == serde_json::json!(["2.5"])), "{outages:?}");
    assert_outages_only_in(&report, &["2.5"]);
}

/// Learner mode on (the embedded scenario, 1.34): k8s-master-2 crashes right after the learner add.
/// Quorum holds (a learner does not vote), the executor halts at 2.5 and rolls phase 2 back: a real
/// `member remove` of the learner, the VM left destroyed. No client through the VIP sees an outage
/// (beyond a sub-second blip of HAProxy's check under load).
#[test]
fn learner_on_crash_after_the_learner_add_through_the_executor_rolls_phase_2_back_cleanly() {
    if !lab_binaries(true) {
        return;
    }
    let Some((code, report)) = rehearse_fault_via_execute(&[], "master-2", "2.5") else { return };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert!(text(&row(&report, "quorum at the halt (a write commits)")["lab"]).starts_with("yes"));
    assert_eq!(text(&row(&report, "etcdctl member remove k8s-master-2 after the fault")["lab"]), "ok");
    assert_eq!(text(&row(&report, "recovery path")["lab"]), "phase 2 rollback");
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("rolled back phase 2", "rolled back phase 2"));
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master");
    assert_eq!(text(&row(&report, "etcd learners (etcdctl member list)")["lab"]), "none");
    assert_eq!(text(&row(&report, "/readyz through the VIP, TLS verified for the VIP")["lab"]), "yes");
    // The twin predicts no outage: the probe may see a blip under load (HAProxy's check of the
    // existing master's /readyz has 400 ms for etcd's health), never a real one.
    assert_outages_only_in(&report, &[]);
}

/// After the three masters joined, the existing master crashes as phase 4 begins: the executor sees
/// it unreachable before the step and halts; quorum holds (two of three voters), and the recovery
/// removes the dead member for real, as the twin's policy does (the executor's recovery used to
/// skip it, and planned commands on the dead host: this rehearsal found both).
#[test]
fn the_existing_master_crashing_as_phase_4_begins_through_the_executor_keeps_quorum_and_its_member_is_removed() {
    if !lab_binaries(true) {
        return;
    }
    let Some((code, report)) = rehearse_fault_via_execute(&[], "master", "4.1@0") else { return };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    let step =
        rows(&report, "the executor runs the step, its files as the twin says").into_iter().find(|r| r["step"] == "4.1").expect("4.1");
    assert!(text(&step["lab"]).contains("reality differs from the twin before the step"), "{step}");
    assert_eq!(text(&row(&report, "etcdctl member remove k8s-master after the fault")["lab"]), "ok");
    assert_eq!(text(&report["executor_outcome"]), "halted at 4.1, the cluster runs on");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master-2, k8s-master-3");
    // HAProxy takes the dead backend out; clients through the VIP see at most a short gap, in 4.1.
    assert_outages_only_in(&report, &["4.1"]);
}

/// k8s-master-2 reboots as phase 3's join begins: with two voters, real etcd loses quorum while it
/// is down; the executor finds the host unreachable before 3.5 and halts. The lab, as operator,
/// waits for the host to boot (sshd, then etcd started again on its data inside the host) and
/// resumes the run (`plan execute --resume`): the run completes, as the twin's wait-and-retry does.
#[test]
fn a_master_rebooting_as_the_next_join_begins_through_the_executor_halts_then_resumes_and_completes() {
    if !lab_binaries(true) {
        return;
    }
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, None, &["--fail", "master-2", "--at", "3.5@0", "--fault", "reboot"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    assert!(text(&row(&report, "quorum at the halt (a write commits)")["lab"]).starts_with("no ("), "{report:#}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master, k8s-master-2, k8s-master-3");
    let actions = lab_actions(&report);
    assert!(actions.contains(&"k8s-master-2: booted after the fault, etcd started on its data"), "{actions:?}");
    assert!(actions.iter().any(|a| a.ends_with("then resumed the run")), "{actions:?}");
}

/// k8s-master-3 is cut off as 4.2 begins: its etcd frozen for real (SIGSTOP, in its host). Quorum
/// holds (two of three); the executor's etcd observer finds the member unhealthy before 4.2 and
/// halts; the partition heals (SIGCONT) and the run resumes and completes, as the twin waits.
#[test]
fn a_partitioned_master_through_the_executor_halts_the_run_until_it_heals_then_completes() {
    if !lab_binaries(true) {
        return;
    }
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, None, &["--fail", "master-3", "--at", "4.2@0", "--fault", "partition"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    assert!(text(&row(&report, "quorum at the halt (a write commits)")["lab"]).starts_with("yes"));
    let actions = lab_actions(&report);
    assert!(actions.contains(&"k8s-master-3: the fault at 4.2: SIGSTOP to its etcd"), "{actions:?}");
    assert!(actions.contains(&"k8s-master-3: the partition heals: SIGCONT to its etcd"), "{actions:?}");
}

/// The operator is away for 3 h as 2.5 begins: the lab's clock jumps 3 h (the system clock is
/// untouched), so the certificate key uploaded at 2.3 is past its 2 h TTL when the real join (the
/// shim, as kubeadm) asks for it, and the executor halts at 2.5. The lab, as operator, does what
/// the twin's recovery does: it runs 2.3 and 2.4 again (new key, new token) and resumes, running
/// 2.5 again whole (`plan execute --resume --rerun-step`): the run completes, as in the twin.
#[test]
fn an_operator_away_for_three_hours_expires_the_certificate_key_and_a_renewal_completes_the_run() {
    if !lab_binaries(true) {
        return;
    }
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, None, &["--fault", "operator-away", "--for", "3h", "--at", "2.5@0"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "re-upload certs and create a new token, re-run the step");
    let actions = lab_actions(&report);
    assert!(actions.contains(&"the fault at 2.5: the lab's clock jumps 3 h (the operator away)"), "{actions:?}");
    assert!(actions.iter().any(|a| a.starts_with("kubeadm join on k8s-master-2: failed: error downloading certs")), "{actions:?}");
    assert!(actions.contains(&"the operator re-ran 2.3, 2.4 to upload the certs and make a token again: done"), "{actions:?}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master, k8s-master-2, k8s-master-3");
}

/// 0.3 reads the file 0.2 writes: in a plan edited to drop 0.2, real kubeadm (the shim, as
/// kubeadm does) cannot read `/tmp/kubeadm-new.yaml` and the executor halts at 0.3 — and so does
/// the twin, whose cert generation needs the patched kubeadm-config (this rehearsal found the
/// gap). The served cert still lacks the VIP SAN on both sides. (A slice of the whole plan that
/// starts at 0.3 takes 0.2 as done, its file included, and completes.)
#[test]
fn a_plan_without_the_kubeadm_config_edit_halts_at_0_3_on_the_lab_and_in_the_twin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exported = plan(&["--scenario", &scenario("loopback.yaml"), "show", "--format", "yaml"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let edited = write(dir.path(), "no-0.2.yaml", &remove_steps(&exported.stdout, &["0.2"]));
    let Some((code, report)) = rehearse_plan_via_execute(Some(&edited), Some("0.3,0.4")) else { return };
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("halted at 0.3", "halted at 0.3"), "{report:#}");
    let halted = rows(&report, "the executor runs the step, its files as the twin says");
    assert!(text(&halted[0]["lab"]).contains("unable to read config from \"/tmp/kubeadm-new.yaml\""), "{halted:?}");
    let served = row(&report, "served cert verifies for the VIP on lab-cp-1");
    assert_eq!((text(&served["twin"]), served["agree"].as_bool()), ("no", Some(true)));
    assert_all_agree(&report);
    assert_eq!(code, 0, "every row agrees: {report:#}");
}

/// The etcd part of joining a master, through the executor: 2.3 (upload-certs), 2.4 (the join
/// command) and 2.5 (`kubeadm join --control-plane` on lab-cp-2) from where the plan stands before
/// 2.3. The join shim adds a real learner to lab-cp-1's real etcd, starts its member and promotes
/// it once etcd takes it; `etcdctl member list` afterwards agrees with the twin: two voters, no
/// learner, both started.
#[test]
fn the_etcd_part_of_a_master_join_through_the_executor_agrees_with_the_twin() {
    if !lab_binaries(false) {
        return;
    }
    let Some((code, report)) = rehearse_via_execute(Some("2.3,2.4,2.5")) else { return };
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"), "{report:#}");
    for (observation, members) in [
        ("etcd voters (etcdctl member list)", "lab-cp-1, lab-cp-2"),
        ("etcd learners (etcdctl member list)", "none"),
        ("etcd members started (etcdctl member list)", "lab-cp-1, lab-cp-2"),
    ] {
        let r = row(&report, observation);
        assert_eq!((text(&r["twin"]), text(&r["lab"])), (members, members), "{r}");
    }
    let actions: Vec<&str> = report["lab_actions"].as_array().expect("lab actions").iter().filter_map(Value::as_str).collect();
    assert!(actions.iter().any(|a| a.starts_with("kubeadm join on lab-cp-2: etcdctl member add (learner)")), "{actions:?}");
    assert!(actions.iter().any(|a| a.starts_with("kubeadm join on lab-cp-2: etcdctl member promote")), "{actions:?}");
    assert_eq!(text(&row(&report, "served cert verifies for the VIP on lab-cp-2")["lab"]), "yes (rustls)");
    assert_all_agree(&report);
    assert_eq!(code, 0, "every row agrees: {report:#}");
}
