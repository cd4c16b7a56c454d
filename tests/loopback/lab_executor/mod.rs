//! The lab's rehearsals through the executor (`plan rehearse`, `--via-execute`): real sshd hosts,
//! etcd, HAProxy and HTTPS apiserver stand-ins on loopback, slices of the plan and the whole plan,
//! with faults and the executor's recoveries, each checked row by row against the twin.
//!
//! The tests run in parallel. An executor's lab claims a loopback range of its own,
//! `127.N.0.0/16`, on the scenario's own ports, and its tests read the range from the report
//! (`loopback_range`) and expect the scenario's addresses there. Without etcd or HAProxy the tests
//! that need them are skipped, except under `CI=true`, where a missing binary fails them.

use crate::common;

mod clearing;
mod five_masters;

use common::rehearsal::{assert_all_agree, row, rows, text};
use common::{lab_binaries, lab_range, on_lab, plan, remove_steps, scenario, write};
use plan_model::validate::parse_scenario;
use serde_json::Value;

/// `plan --scenario loopback [--plan FILE] rehearse --via-execute[=STEPS] --format json` with the
/// loopback guard on; `None` when fixture hosts cannot run here (not CI).
fn rehearse_via_execute(steps: Option<&str>) -> Option<(i32, Value)> {
    rehearse_plan_via_execute(None, steps)
}

fn rehearse_plan_via_execute(plan_file: Option<&str>, steps: Option<&str>) -> Option<(i32, Value)> {
    let loopback = scenario("loopback.yaml");
    rehearse_scenario_via_execute(&["--scenario", &loopback], plan_file, steps, &[])
}

/// `plan [SCENARIO ARGS] [--plan FILE] rehearse --via-execute[=STEPS] [EXTRA] --format json`;
/// nothing where the lab's servers are missing outside CI (`lab_binaries`).
fn rehearse_scenario_via_execute(
    scenario_args: &[&str],
    plan_file: Option<&str>,
    steps: Option<&str>,
    extra: &[&str],
) -> Option<(i32, Value)> {
    // Every rehearsal runs real etcd and HAProxy: without them it is skipped (CI fails instead).
    if !lab_binaries(true) {
        return None;
    }
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
/// the infra repo's bootstrap script as the plan edits it; the failover reboot of the first master
/// for real. The scenario is the embedded one (the homelab of the source plan): its
/// addresses moved onto loopback (10.0.20.100 -> 127.0.20.100, the hypervisor's 192.168.1.127 ->
/// 127.0.1.127, or 127.N.… in the range the lab held), its logins as the lab's root, nothing else changed. Its HTTPS `/readyz` health
/// check, four workers, eight kubeconfig consumers and pfSense bootstrap script all go through the
/// real executor, and the source plan's acceptance criteria hold on the lab as in the twin.
#[test]
fn the_embedded_scenario_through_the_executor_on_loopback_meets_the_source_plans_acceptance_criteria() {
    let Some((code, report)) = rehearse_scenario_via_execute(&[], None, None, &[]) else { return };
    assert_eq!(text(&report["scenario"]), "homelab");
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"), "{report:#}");
    assert_all_agree(&report);
    assert_eq!(code, 0, "every row agrees: {report:#}");
    // The executor's Kubernetes API observer read nodes and ConfigMaps from the stand-ins at every
    // step that concerns them (three reads per observation), through the VIP after 4.1.
    assert!(report["api_requests"].as_u64().expect("api_requests") >= 30, "{}", report["api_requests"]);
    let range = lab_range(&report);
    let homelab = parse_scenario(include_str!("../../../scenarios/homelab.yaml")).expect("homelab parses");
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
    assert_eq!(text(&row(&report, "etcd members started (etcdctl member list)")["lab"]), three);
    let up = text(&row(&report, "backends UP behind the VIP (HAProxy show stat)")["lab"]);
    assert!(up.starts_with(&format!("{} (HAProxy: ", three)), "{up}");
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
    // The failover reboot of 6.1 for real, and the third master's join promoting its learner.
    assert!(actions.contains(&"k8s-master: down for a reboot (etcd SIGKILLed, apiserver stand-in stopped)"), "{actions:?}");
    assert!(actions.contains(&"k8s-master: up again after the reboot, etcd started on its data"), "{actions:?}");
    assert!(actions.iter().any(|a| a.starts_with("kubeadm join on k8s-master-3: etcdctl member promote")), "{actions:?}");
    let consumers: Vec<&Value> =
        report["rows"].as_array().expect("rows").iter().filter(|r| text(&r["observation"]).starts_with("consumer ")).collect();
    assert_eq!(consumers.len(), 8, "every consumer of the inventory has a row");
    let on_vip = format!("yes (https://{vip}:6443)");
    assert!(consumers.iter().all(|r| text(&r["lab"]) == on_vip), "{on_vip}: {consumers:?}");
    let probe = &report["probe"];
    assert_eq!((probe["ever_ready"].clone(), probe["tls_rejected"].clone()), (Value::Bool(true), Value::from(0)), "{probe}");
    assert_outages_only_in(&report, &["6.1"]);
}

/// The Linux HAProxy profile (`scenarios/haproxy-libvirt.yaml`: HAProxy on a Linux box, libvirt,
/// no IaC tool), every step through the executor. The plan's own commands upload the infra repo's
/// `haproxy/haproxy.cfg`, check it with real `haproxy -c`, install it in the LB host's own
/// `/etc/haproxy` and reload HAProxy's unit (the `systemctl` shim: a graceful `-x … -sf OLD`
/// reload), then check with `ss` and `socat` on `/run/haproxy/admin.sock`; the lab as operator
/// makes the plan's typed edits of the file's frontend and backend. Every row agrees, all three
/// backends are UP, and the client through the VIP saw no outage in the pool steps.
#[test]
fn the_linux_haproxy_profile_through_the_executor_reloads_gracefully_and_agrees_with_the_twin() {
    let haproxy = scenario("haproxy-libvirt.yaml");
    let Some((code, report)) = rehearse_scenario_via_execute(&["--scenario", &haproxy], None, None, &[]) else { return };
    assert_eq!(text(&report["scenario"]), "haproxy-libvirt");
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"), "{report:#}");
    assert_all_agree(&report);
    assert_eq!(code, 0, "every row agrees: {report:#}");
    let up = text(&row(&report, "backends UP behind the VIP (HAProxy show stat)")["lab"]);
    assert!(up.starts_with("cp-1, cp-2, cp-3 (HAProxy: "), "{up}");
    assert_eq!(text(&row(&report, "/readyz through the VIP, TLS verified for the VIP")["lab"]), "yes");
    let range = lab_range(&report);
    let vip = on_lab(range, "127.0.113.5");
    let actions: Vec<&str> = report["lab_actions"].as_array().expect("lab actions").iter().filter_map(Value::as_str).collect();
    // The typed edits made for real: the frontend and backend at 1.2, the servers at 2.8 and 3.8.
    let made = |prefix: &str| actions.iter().any(|a| a.starts_with(prefix));
    assert!(made("1.2: by hand in the infra repo: haproxy/haproxy.cfg: frontend apiserver and backend apiserver"), "{actions:?}");
    for (step, last) in [("2.8", "cp-2"), ("3.8", "cp-3")] {
        let servers = format!("{step}: by hand in the infra repo: haproxy/haproxy.cfg: backend apiserver: server cp-1 ");
        assert!(actions.iter().any(|a| a.starts_with(&servers) && a.contains(&format!("server {last} "))), "{servers}: {actions:?}");
    }
    // HAProxy started once when the lab came up (the LB runs before the migration), then the
    // plan's three deploys (1.3, 2.8, 3.8), each a graceful reload taking the old listeners over.
    let unit: Vec<&&str> = actions.iter().filter(|a| a.starts_with("lb-1: systemctl reload-or-restart haproxy: ")).collect();
    assert_eq!(unit.len(), 4, "{actions:?}");
    assert!(!unit[0].contains("-sf"), "{}", unit[0]);
    assert!(unit[1..].iter().all(|a| a.contains(" -x /run/haproxy/admin.sock -sf ")), "{unit:?}");
    // The client through the VIP: served from 1.3 on; the graceful reloads of 2.8 and 3.8 cost it
    // nothing, and the only outage allowed is the failover reboot's (or a sub-second blip).
    let probe = &report["probe"];
    assert_eq!((probe["ever_ready"].clone(), probe["tls_rejected"].clone()), (Value::Bool(true), Value::from(0)), "{probe}");
    for outage in probe["outages"].as_array().expect("outages") {
        let steps: Vec<&str> = outage["steps"].as_array().expect("steps").iter().filter_map(Value::as_str).collect();
        assert!(!steps.iter().any(|s| ["2.8", "3.8"].contains(s)), "a reload cost the VIP an outage: {outage}");
    }
    assert_outages_only_in(&report, &["6.1"]);
    let consumer = row(&report, "consumer ops-kubeconfig points at the VIP");
    assert_eq!(text(&consumer["lab"]), format!("yes (https://{vip}:6443)"), "{consumer}");
}

/// `plan rehearse --via-execute=2.3,2.4,2.5 --fail NODE --at 2.5` on `scenario_args`: the first
/// join with its upload-certs and token steps through the executor, the host crashing for real
/// inside it, then the executor's recovery. (The slice starts from where the whole plan stands
/// there, its backup taken; what takes the time is the fault's handling, not phases 0 and 1.)
fn rehearse_join_crash_via_execute(scenario_args: &[&str], node: &str, extra: &[&str]) -> Option<(i32, Value)> {
    let args = [&["--fail", node, "--at", "2.5"], extra].concat();
    rehearse_scenario_via_execute(scenario_args, None, Some("2.3,2.4,2.5"), &args)
}

/// The embedded scenario's plan from step `from` on, as `--via-execute=STEPS` lists it.
fn embedded_steps_from(from: &str) -> String {
    let t = plan_model::topology::Topology::new(
        &parse_scenario(&std::fs::read_to_string(scenario("homelab.yaml")).expect("homelab")).expect("it parses"),
    );
    let ids: Vec<String> = plan_model::planner::generate(&t).steps.into_iter().map(|s| s.id).collect();
    let start = ids.iter().position(|id| id == from).unwrap_or_else(|| panic!("{from} in {ids:?}"));
    ids[start..].join(",")
}

/// Every outage the probe saw is in `expected` (a step the twin or the fault accounts for), or a
/// sub-second blip of HAProxy's checks on a loaded machine.
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

/// The executor waited before `step` for what did not answer (`naming` among it), it answered,
/// the step ran, and the run never halted.
fn assert_waited_before_without_a_halt(actions: &[&str], step: &str, naming: &str) {
    let waited = |a: &&&str| {
        a.starts_with("the executor waited ")
            && a.contains(&format!(" before {step} for what did not answer ("))
            && a.contains(naming)
            && a.ends_with("): it answered again, the step ran")
    };
    assert!(actions.iter().any(|a| waited(&a)), "{actions:?}");
    assert!(!actions.iter().any(|a| a.starts_with("the executor proposes at the halt")), "no halt: {actions:?}");
}

fn lab_actions(report: &Value) -> Vec<&str> {
    report["lab_actions"].as_array().expect("lab actions").iter().filter_map(Value::as_str).collect()
}

/// Learner mode off (Kubernetes 1.28), the load balancer's health check a plain TCP connect: cp-2
/// crashes inside `kubeadm join`, right after the voter add. Real etcd loses quorum (two voters, one
/// never started), the executor halts at 2.5; at the halt real HAProxy keeps cp-1 UP (its TCP check
/// passes though the apiserver is not ready) and `/readyz` through the VIP answers 503, as the twin
/// says of a TCP check. Real etcd refuses the phase rollback's `member remove` as the twin ranks it,
/// and the executor's quorum recovery (a real `etcd --force-new-cluster` on cp-1) brings writes
/// back: the twin's path and outcome. (This rehearsal found the pfSense profile declaring an HTTP
/// check whatever the scenario said.)
#[test]
fn learner_off_crash_after_the_voter_add_through_the_executor_loses_quorum_and_force_new_cluster_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tcp =
        std::fs::read_to_string(scenario("legacy-1.28.yaml")).expect("legacy").replace("health_check: https-readyz", "health_check: tcp");
    assert!(tcp.contains("health_check: tcp"), "the scenario names its health check");
    let legacy = write(dir.path(), "legacy-tcp.yaml", &tcp);
    let Some((code, report)) = rehearse_join_crash_via_execute(&["--scenario", &legacy], "cp-2", &[]) else { return };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    let quorum = row(&report, "quorum at the halt (a write commits)");
    assert!(text(&quorum["lab"]).starts_with("no (") && text(&quorum["twin"]).starts_with("no ("), "{quorum}");
    let backends = row(&report, "backends UP behind the VIP (HAProxy show stat) at the halt");
    assert_eq!(text(&backends["lab"]), "cp-1 (HAProxy: cp-1 UP L4OK)", "a TCP connect passes without quorum: {backends}");
    let via = row(&report, "/readyz through the VIP, TLS verified for the VIP at the halt");
    assert_eq!(text(&via["twin"]), "no (down: cp-1 passes the TCP check but is not ready)");
    assert!(text(&via["lab"]).contains("503"), "{via}");
    let remove = row(&report, "etcdctl member remove cp-2 after the fault");
    assert!(text(&remove["lab"]).starts_with("refused: ") && text(&remove["twin"]).starts_with("refused: "), "{remove}");
    // The twin ranks the phase rollback below the quorum recovery (its member remove needs
    // quorum) and takes the quorum recovery straight away.
    assert_eq!(text(&row(&report, "recovery path")["lab"]), "quorum recovery: etcd --force-new-cluster on a surviving voter (RQ)");
    assert_eq!(text(&report["executor_outcome"]), "quorum recovered (RQ), the other new masters undone");
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

/// The worst case, picked by the operator where the twin ranks the quorum recovery first
/// (`--choose worst-case`): voter mode, cp-2 crashed right after its member add, quorum lost. The
/// lab restores its backup for real (`etcdctl snapshot restore` on cp-1, a cluster of one from
/// it), the write the lab made after the backup is gone and the one before it is there, as the
/// twin's restore says; the twin, pinned to the same kind, ends restored too.
#[test]
fn the_worst_case_chosen_at_the_halt_restores_the_backup_for_real_and_loses_the_writes_after_it() {
    let legacy = scenario("legacy-1.28.yaml");
    let Some((code, report)) = rehearse_join_crash_via_execute(&["--scenario", &legacy], "cp-2", &["--choose", "worst-case"]) else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&row(&report, "recovery path")["lab"]), "worst case: etcd snapshot restore (RW)");
    // The HTTPS /readyz check takes the unready cp-1 out at the halt: nothing serves the VIP.
    let backends = row(&report, "backends UP behind the VIP (HAProxy show stat) at the halt");
    assert!(text(&backends["lab"]).starts_with("none (HAProxy: cp-1 DOWN"), "{backends}");
    assert!(text(&report["twin_outcome"]).starts_with("restored from snapshot, "), "{}", report["twin_outcome"]);
    assert_eq!(text(&report["executor_outcome"]), "restored from the backup");
    let after = row(&report, "a write from after the backup is there (etcdctl get)");
    assert!(text(&after["lab"]) == "no" && text(&after["twin"]).starts_with("no (restored from the backup, "), "{after}");
    assert_eq!(text(&row(&report, "a write from before the backup is there (etcdctl get)")["lab"]), "yes");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "cp-1");
    let actions = lab_actions(&report);
    assert!(actions.iter().any(|a| a.starts_with("the executor proposes at the halt: quorum recovery")), "{actions:?}");
    let picked = "recovery picked by the lab as operator (--choose worst-case): worst case: etcd snapshot restore (RW)";
    assert!(actions.iter().any(|a| a.starts_with(picked)), "{actions:?}");
    assert!(
        actions.contains(&"recovery: etcdctl snapshot restore on cp-1: a cluster of one from the backup, writes commit"),
        "{actions:?}"
    );
    assert_outages_only_in(&report, &["2.5"]);
}

/// Learner mode on (the embedded scenario, 1.34): k8s-master-2 crashes right after the learner add.
/// Quorum holds (a learner does not vote), the executor halts at 2.5 and rolls phase 2 back: a real
/// `member remove` of the learner, the VM left destroyed. No client through the VIP sees an outage
/// (beyond a sub-second blip of HAProxy's check under load).
#[test]
fn learner_on_crash_after_the_learner_add_through_the_executor_rolls_phase_2_back_cleanly() {
    let Some((code, report)) = rehearse_join_crash_via_execute(&[], "master-2", &[]) else { return };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert!(text(&row(&report, "quorum at the halt (a write commits)")["lab"]).starts_with("yes"));
    assert_eq!(text(&row(&report, "k8s-master-2 an etcd member when the recovery removes it")["lab"]), "yes");
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

/// After the three masters joined, the existing master crashes for good as phase 4 begins: the
/// executor sees it unreachable before the step and halts; quorum holds (two of three voters). The
/// twin's best there, and the executor's, is going on without it (`RF`): the lab as operator
/// carries out the write-off the executor proposes — the member removed for real (the executor's
/// recovery once skipped it and planned commands on the dead host: this rehearsal found both), the
/// pool and the config stack's hosts edited in the infra repo as the plan's own operations edit
/// them, the load balancer deployed by the plan's own commands, the Node deleted — then resumes on
/// the plan without it, which runs to the acceptance criteria of 8.1 and halts there, as the twin's.
/// (From 4.1 to the end: the lab starts where the whole plan stands at 4.1.)
#[test]
fn the_existing_master_lost_as_phase_4_begins_is_written_off_through_the_executor_and_the_run_goes_on_without_it() {
    let steps = embedded_steps_from("4.1");
    let Some((code, report)) = rehearse_scenario_via_execute(&[], None, Some(&steps), &["--fail", "master", "--at", "4.1@0"]) else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&row(&report, "k8s-master an etcd member when the recovery removes it")["lab"]), "yes");
    assert_eq!(text(&row(&report, "etcdctl member remove k8s-master after the fault")["lab"]), "ok");
    let went_on = "went on without k8s-master (written off), halted at 8.1: ";
    assert!(text(&report["executor_outcome"]).starts_with(went_on), "{}", report["executor_outcome"]);
    let steps = rows(&report, "the executor runs the step, its files as the twin says");
    let status = |id: &str| text(&steps.iter().find(|r| r["step"] == id).unwrap_or_else(|| panic!("{id}"))["lab"]).to_string();
    assert_eq!(status("4.1"), "done", "the cut-over runs on after the write-off");
    assert!(status("8.1").starts_with("halted: the twin refuses step 8.1"), "{}", status("8.1"));
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master-2, k8s-master-3");
    let up = text(&row(&report, "backends UP behind the VIP (HAProxy show stat)")["lab"]);
    assert!(up.starts_with(&format!("{} (HAProxy: ", "k8s-master-2, k8s-master-3")), "{up}");
    let actions = lab_actions(&report);
    // The write-off's edits, made at the halted step, name the masters left and not the dead one
    // (the lab's loopback range may be another than 127.0: addresses by their last octets).
    let edit = |prefix: &str| *actions.iter().find(|a| a.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} in {actions:#?}"));
    let pool = edit("4.1: by hand in the infra repo: infra/scripts/pfsense-haproxy-bootstrap.php: build_pool_https(");
    assert!(
        pool.contains("[['k8s-master-2', '127.") && pool.contains("['k8s-master-3', '127.") && !pool.contains("'k8s-master'"),
        "{pool}"
    );
    let stack = edit("4.1: by hand in the infra repo: stacks/rbac/main.tf: k8s_master_hosts = [");
    assert!(stack.contains(".20.110\", \"127.") && stack.ends_with(".20.111\"]") && !stack.contains(".20.100\""), "{stack}");
    let write_off = "recovery: write off k8s-master: kubectl delete node, the Node object is gone; its host stays down";
    assert!(actions.contains(&write_off), "{actions:#?}");
    // HAProxy takes the dead backend out; clients through the VIP see at most a short gap, in 4.1.
    assert_outages_only_in(&report, &["4.1"]);
}

/// The first master lost as the third master's join is verified (three hypervisors, 3.6 at its
/// start), the phase 3 rollback picked: after it removes the dead member, the rollback's
/// `kubeadm reset` on cp-gamma removes cp-gamma's own member, as the twin says (docs/facts.md
/// K10): kubeadm's etcd client syncs its endpoints with the membership, so a first master that
/// no longer answers does not stop it. The lab's reset once asked only the members running when
/// the lab started, left the member, and the rollback's `member remove` then found no quorum.
#[test]
#[ignore = "long: scripts/long.sh runs it (docs/development.md#tests)"]
fn the_rollbacks_kubeadm_reset_removes_the_third_masters_member_with_the_first_master_lost() {
    let three = scenario("three-hypervisors.yaml");
    let fault = ["--fail", "cp-alpha", "--at", "3.6@0", "--choose", "rollback"];
    let Some((code, report)) = rehearse_scenario_via_execute(&["--scenario", &three], None, None, &fault) else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&report["executor_outcome"]), "rolled back phase 3", "{report:#}");
    assert_eq!(text(&row(&report, "cp-gamma an etcd member when the recovery removes it")["lab"]), "no");
    let actions = lab_actions(&report);
    assert!(actions.contains(&"recovery: etcdctl member remove cp-alpha: removed"), "{actions:#?}");
    assert!(actions.contains(&"recovery: etcdctl member remove cp-gamma: no member left, nothing to remove"), "{actions:#?}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "cp-beta");
}

/// The first master lost for good as 3.6 begins on Kubernetes 1.31 (three hypervisors), where
/// the joined masters' kubelets still name it: the executor's best, as the twin's, is going on
/// without it, its write-off moving the consumers, every kubelet and kube-proxy to the VIP that
/// cp-beta serves. The run goes on through 3.7's checks (the operator's kubeconfig and cp-gamma's
/// kubelet on the VIP), finds 4.1's consumer edits made already, and halts at 8.1 as the twin.
#[test]
#[ignore = "long: scripts/long.sh runs it (docs/development.md#tests)"]
fn the_first_master_lost_before_kubelet_local_mode_is_gone_on_from_with_its_clients_on_the_vip() {
    let three = scenario("three-hypervisors.yaml");
    let Some((code, report)) = rehearse_scenario_via_execute(&["--scenario", &three], None, None, &["--fail", "cp-alpha", "--at", "3.6@0"])
    else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    let went_on = "went on without cp-alpha (written off), halted at 8.1: ";
    assert!(text(&report["executor_outcome"]).starts_with(went_on), "{}", report["executor_outcome"]);
    for node in ["cp-beta", "cp-gamma", "wk-north", "wk-south"] {
        let row = row(&report, &format!("kubelet.conf server is the VIP on {node}"));
        assert!(text(&row["lab"]).starts_with("yes"), "{node}: {row}");
    }
    let actions = lab_actions(&report);
    assert!(
        actions.iter().any(|a| a.starts_with("4.1: by hand in the infra repo: kube/admin.conf: ") && a.ends_with(" already there")),
        "{actions:#?}"
    );
}

/// hv-east, the hypervisor of the master 3.5 joined (cp-gamma), fails for good as 3.6 begins
/// (three hypervisors): the lab crashes the hypervisor's host and cp-gamma's. At the halt the
/// executor finds hv-east silent, waits for it, and takes it as down, as the twin's state has it:
/// its phase 3 rollback removes cp-gamma's member and deletes its Node, and passes over the VM's
/// destruction that cannot run on a hypervisor that is down, as the twin's rollback passes over
/// it. Before the executor looked at hypervisors, it asked for that destruction.
#[test]
#[ignore = "long: scripts/long.sh runs it (docs/development.md#tests)"]
fn a_hypervisor_lost_for_good_is_seen_down_at_the_halt_and_the_rollback_passes_over_its_vm() {
    let three = scenario("three-hypervisors.yaml");
    let fault = ["--fault", "hypervisor-failure", "--fail", "hv-east", "--at", "3.6@0"];
    let Some((code, report)) = rehearse_scenario_via_execute(&["--scenario", &three], None, None, &fault) else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&report["executor_outcome"]), "rolled back phase 3", "{report:#}");
    let actions = lab_actions(&report);
    let proposed = actions.iter().find(|a| a.starts_with("the executor proposes at the halt: ")).expect("a proposal");
    assert_eq!(
        *proposed,
        "the executor proposes at the halt: phase 3 rollback (etcdctl member remove cp-gamma; kubectl delete node cp-gamma)"
    );
    assert!(!actions.iter().any(|a| a.starts_with("recovery: destroy VM")), "{actions:#?}");
    assert!(actions.iter().any(|a| a.starts_with("hv-east: the fault at 3.6: the hypervisor fails for good")), "{actions:#?}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "cp-alpha, cp-beta");
}

/// k8s-master-3 lost for good inside 4.7, after kube-proxy's ConfigMap names the VIP (4.7@1):
/// nothing in the rest of the step meets it, and the executor's look after the step halts the run
/// in 4.7, in phase 4, whose rollback it proposes and the lab carries out (the member removed, the
/// consumers' files edited back by hand, the kubelets and kube-proxy pointed back at the first
/// master). The twin halts there too since it looks after every step as well as before it: it
/// used to halt at the next step, 4.5.1, in phase 4.5, and hold (4 rows disagreed). (The whole
/// plan: in a slice of 4.7 and 4.5.1, phase 4 is that one step, and both sides hold.)
#[test]
#[ignore = "long: scripts/long.sh runs it (docs/development.md#tests)"]
fn a_master_lost_inside_the_last_step_of_phase_4_is_found_after_that_step_and_phase_4_rolled_back() {
    let Some((code, report)) = rehearse_scenario_via_execute(&[], None, None, &["--fail", "master-3", "--at", "4.7@1"]) else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&row(&report, "recovery path")["lab"]), "phase 4 rollback");
    assert_eq!(text(&report["twin_outcome"]), "rolled back phase 4", "{report:#}");
    let actions = lab_actions(&report);
    assert!(
        actions.iter().any(|a| a.starts_with("recovery: revert every kubeconfig consumer to the direct address: Edited(")),
        "{actions:?}"
    );
}

/// The first master lost for good right after 2.8's LB deploy (2.8@2): two voters, one down,
/// quorum lost. The executor, as the twin, forces a new cluster from k8s-master-2, whose member
/// its own `kubeadm join` started inside its host: the lab stops that member and starts it again
/// on its data with `--force-new-cluster`, and it takes writes as a cluster of one. Before, the
/// lab forced only the members it started itself, and the run ended stuck (3 rows disagreed).
/// (The whole plan: a slice starts every member as the lab's own.)
#[test]
fn a_quorum_recovery_forces_a_new_cluster_from_the_member_a_join_started() {
    let Some((code, report)) = rehearse_scenario_via_execute(&[], None, None, &["--fail", "master", "--at", "2.8@2"]) else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&report["executor_outcome"]), "quorum recovered (RQ), the other new masters undone");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master-2");
    let actions = lab_actions(&report);
    let forced = "recovery: etcd --force-new-cluster on k8s-master-2: a cluster of one, writes commit";
    assert!(actions.contains(&forced), "{actions:?}");
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

/// Without the cert regeneration (0.3, 0.4: an edited plan), the served cert lacks the VIP SAN:
/// the smoke test through the VIP (1.4, `curl --cacert`) fails for real on the lab, TLS rejected
/// by name, and the executor halts there; the twin's verification of 1.4 fails in the state it
/// predicts, so its executor halts there too (before, the rehearsal counted only refused commands
/// as the twin's halt, said "completed" and disagreed). The probe through the VIP sees TLS
/// rejected.
#[test]
fn a_plan_without_the_cert_regeneration_halts_at_the_smoke_test_through_the_vip_on_the_lab_and_in_the_twin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exported = plan(&["--scenario", &scenario("loopback.yaml"), "show", "--format", "yaml"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let edited = write(dir.path(), "no-0.3.yaml", &remove_steps(&exported.stdout, &["0.3", "0.4"]));
    let Some((code, report)) = rehearse_plan_via_execute(Some(&edited), Some("0.2,1.1,1.2,1.3,1.4")) else { return };
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("halted at 1.4", "halted at 1.4"), "{report:#}");
    let smoke =
        rows(&report, "the executor runs the step, its files as the twin says").into_iter().find(|r| r["step"] == "1.4").expect("1.4");
    assert!(text(&smoke["twin"]).contains("lacks the VIP SAN"), "{smoke}");
    assert!(text(&smoke["lab"]).contains("no alternative certificate subject name matches"), "curl rejects the served cert: {smoke}");
    let served = row(&report, "served cert verifies for the VIP on lab-cp-1");
    assert_eq!(text(&served["twin"]), "no");
    assert!(text(&served["lab"]).contains("certificate not valid for name"), "rustls rejects it too: {served}");
    assert!(report["probe"]["tls_rejected"].as_u64().unwrap_or(0) > 0, "{}", report["probe"]);
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
