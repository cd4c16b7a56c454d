//! `plan execute`, `plan status`, `plan rollback` end to end: a dry run of the homelab (which never
//! connects), and whole runs over SSH against sshd servers this test starts on 127.0.20.x (the
//! fixture hosts of tests/common/fixture.rs): halts, rollbacks, resumes after a kill or Ctrl-C, the
//! workstation's commands, by-hand work, and what `plan status` tells of a run. The SSH transport
//! and what is refused before anything runs are in tests/loopback/execute_ssh.rs.

use crate::common;

use common::fixture::{plan, run, sshd_available, text, write, Lab, DIRECT, HOSTS, LOOPBACK, MASTER, OVERRIDE, VIP, WAIT_S};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn dry_run_of_the_homelab_prints_each_hosts_commands_and_never_connects() {
    let out = plan(&["execute", "--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("!! plan check REJECTS this plan") && shown.contains("hypervisor-ram"), "banner: {shown}");
    assert!(shown.contains("Phase 4 — Cut over clients and workers to the VIP"));
    assert!(shown.contains(
        "    k8s-node3      $ { sudo test -e /etc/kubernetes/kubelet.conf.bak || sudo cp -p /etc/kubernetes/kubelet.conf /etc/kubernetes/kubelet.conf.bak; } && sudo sed -i 's|server: .*|server: https://10.0.20.99:6443|' /etc/kubernetes/kubelet.conf && sudo systemctl restart kubelet"
    ), "the kubelet flip keeps the first backup: {shown}");
    assert!(shown.contains("    pve            $ qm snapshot 200 pre-ha-retrofit"), "the ssh wrapper comes off: {shown}");
    assert!(shown.contains("    k8s-master-2   copy /root/.plan-join-command from k8s-master (secret: content never shown)  [secret]"));
    assert!(shown.contains("none run."));
    // Order: node1's flip, its wait, then node2's flip.
    let a = shown.find("node/k8s-node1 --timeout").unwrap();
    let b = shown.find("k8s-node2      $ { sudo test -e").unwrap();
    assert!(a < b);
    let only = text(&plan(&["execute", "--dry-run", "--host", "node2"], &[]));
    assert!(only.contains("k8s-node2      $ { sudo test -e") && !only.contains("k8s-node1      $"), "{only}");
    let bad = plan(&["execute", "--dry-run", "--host", "node9"], &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn kubelet_flip_is_verified_then_rolled_back_on_real_files() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    // 4.4 reads the new masters' kubelet.conf: they have no sshd, so the run halts there, after
    // 4.2 flipped the workers to the VIP and 4.3 found lab-cp-1 on its own apiserver (Kubernetes
    // 1.34: kubeadm keeps a control-plane kubelet local, docs/facts.md).
    let file = lab.plan_file(&["4.2", "4.3", "4.4"]);
    let out = lab.plan(&file, &["execute", "--yes", OVERRIDE[0], OVERRIDE[1]]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}\n{}", lab.sshd_log("lab-wk-1"));
    assert!(shown.contains("HALTED at step 4.4") && shown.contains("lab-cp-2"), "{shown}");
    // lab-cp-2 did not answer the step's command: it was waited for (`--wait-for-host`), then
    // taken as dead.
    assert!(shown.contains("waiting up to 1 s (4.4) for what does not answer"), "{shown}");
    // Off a terminal (stderr is a pipe here) every step and command is logged line by line.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("== Phase 4") && log.contains("-- 4.2 ") && log.contains("-- 4.3 "), "{log}");
    assert!(log.contains("-> ok on lab-cp-1 in "), "the end of 4.3's command, with its host and time: {log}");
    assert!(shown.contains("The twin's recovery for this point: 1. phase 4 rollback"), "{shown}");
    for (name, _) in HOSTS {
        if name == MASTER {
            assert!(lab.kubelet_conf(name).contains(DIRECT), "{name} stays on its own apiserver: {}", lab.kubelet_conf(name));
            assert_eq!(lab.restarts(name), 0, "{name}: 4.3 only reads its kubelet.conf");
            continue;
        }
        assert!(lab.kubelet_conf(name).contains(VIP), "{name} flipped: {}", lab.kubelet_conf(name));
        let backup = std::fs::read_to_string(lab.path(&format!("hosts/{name}/etc-kubernetes/kubelet.conf.bak"))).unwrap();
        assert!(backup.contains(DIRECT), "{name} backup keeps the direct server");
        assert_eq!(lab.restarts(name), 1, "{name}: one kubelet restart");
    }
    let journal = lab.journal();
    assert!(journal.contains("\"override_check\":\"loopback fixture: a subset of the plan\""));
    assert!(journal.contains("{\"v\":1") && journal.contains("\"event\":\"step-finished\",\"step\":\"4.3\""));
    let status = lab.plan(&file, &["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(json["state"], "halted");
    assert_eq!(json["steps"][0], serde_json::json!({"id": "4.2", "state": "done"}));
    // The halt is no by-hand work: --by-hand-done is refused, naming what it halted at.
    let out = lab.plan(&file, &["execute", "--yes", "--resume", "--by-hand-done", OVERRIDE[0], OVERRIDE[1]]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("the run's last halt, at step 4.4, is not at by-hand work"), "{}", text(&out));

    let out = lab.plan(&file, &["rollback", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    for (name, _) in HOSTS {
        assert!(lab.kubelet_conf(name).contains(DIRECT), "{name} rolled back: {}", lab.kubelet_conf(name));
        let restarts = if name == MASTER { 0 } else { 2 };
        assert_eq!(lab.restarts(name), restarts, "{name}: restarted again by the rollback only if it was flipped");
    }
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("plan status: rolled-back"), "{status}");
    assert!(status.contains("4.2      pending") && status.contains("0/3 steps done"), "the undone steps are pending again: {status}");

    // A resume after the rollback runs the undone steps again (it used to skip them as done and
    // halt at 4.4 on the drift of three kubelets), and status tells what is true now.
    let out = lab.plan(&file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HALTED at step 4.4"), "{shown}");
    for (name, _) in HOSTS {
        let (server, restarts) = if name == MASTER { (DIRECT, 0) } else { (VIP, 3) };
        assert!(lab.kubelet_conf(name).contains(server), "{name}: {}", lab.kubelet_conf(name));
        assert_eq!(lab.restarts(name), restarts, "{name}: flipped again by the resumed 4.2");
    }
    let status = lab.plan(&file, &["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!((json["state"].as_str(), json["rolled_back"].as_str()), (Some("halted"), None), "{json}");
    assert_eq!(json["steps"][0], serde_json::json!({"id": "4.2", "state": "done"}));
}

#[test]
fn a_killed_executor_resumes_without_running_a_step_twice() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let file = lab.plan_file(&["4.2", "4.3"]);
    let (p, s, c) = (file.to_str().unwrap().to_string(), lab.state(), lab.path("ssh_config").display().to_string());
    let mut child = lab.executor_held_at_the_wait_for_lab_wk_2(&file, Stdio::null);
    // A second executor on the same state directory is refused while the first holds the lock.
    let second = lab.plan(&file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(text(&second).contains("another executor holds"), "{}", text(&second));
    // So is one with a state directory of its own: the lock is the cluster's too.
    let elsewhere = lab.path("elsewhere").display().to_string();
    let third = plan(
        &lab.args(&p, &elsewhere, &c, &["execute", "--yes", OVERRIDE[0], OVERRIDE[1]]),
        &[("PATH", &lab.path_env()), ("PLAN_LOCK_DIR", &lab.path("locks").display().to_string())],
    );
    assert_eq!(third.status.code(), Some(2), "{}", text(&third));
    assert!(text(&third).contains(&format!("state directory {s}): one executor per cluster")), "{}", text(&third));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::fs::remove_file(lab.path("slow")).unwrap();
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("4.2      interrupted"), "{status}");

    lab.resume_and_find_every_flip_done_once(&file);
    let waits = std::fs::read_to_string(lab.path("workstation.log")).unwrap();
    assert_eq!(waits.lines().filter(|l| l.contains("node/lab-wk-1")).count(), 1, "{waits}");
    let journal = lab.journal();
    for step in ["4.2", "4.3"] {
        assert_eq!(journal.matches(&format!("\"event\":\"step-finished\",\"step\":\"{step}\"")).count(), 1, "{step}");
    }
    assert!(text(&lab.plan(&file, &["status"])).contains("plan status: completed"));

    // Nothing of the killed executor outlives the test: its ControlMasters (ControlPersist=yes)
    // die with the fixture's sshd sessions.
    let root = lab.root.path().display().to_string();
    drop(lab);
    let deadline = Instant::now() + Duration::from_secs(WAIT_S);
    loop {
        let left = processes_mentioning(&root);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes of the test left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_lets_the_running_command_finish_halts_and_the_resume_completes() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let file = lab.plan_file(&["4.2", "4.3"]);
    let child = lab.executor_held_at_the_wait_for_lab_wk_2(&file, Stdio::piped);
    run("kill", &["-INT", &child.id().to_string()]);
    // The wait runs on: the stop comes after it, not inside it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!lab.journal().contains("\"event\":\"halted\""), "halted inside the running command: {}", lab.journal());
    std::fs::remove_file(lab.path("slow")).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("stopping after the command that runs now"), "{said}");
    assert!(said.contains("HALTED at step 4.2: stopped by the operator before command"), "{said}");
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("halted"), "{status}");

    lab.resume_and_find_every_flip_done_once(&file);
    let waits = std::fs::read_to_string(lab.path("workstation.log")).unwrap();
    assert_eq!(waits.lines().filter(|l| l.contains("node/lab-wk-2")).count(), 1, "the stopped wait was journalled done: {waits}");
}

/// Processes whose command line mentions `text` (pid and command line).
fn processes_mentioning(text: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (pid != std::process::id() && cmdline.contains(text)).then_some((pid, cmdline))
        })
        .collect()
}

#[test]
fn a_file_changed_between_steps_halts_with_a_diff() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let file = lab.plan_file(&["4.2", "4.3", "4.4"]);
    let out = lab.plan(&file, &["execute", "--yes", OVERRIDE[0], OVERRIDE[1]]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Behind the executor's back: lab-wk-1 is put back on the direct address.
    let conf = lab.path("hosts/lab-wk-1/etc-kubernetes/kubelet.conf");
    let flipped = std::fs::read_to_string(&conf).unwrap();
    std::fs::File::create(&conf).unwrap().write_all(flipped.replace(VIP, DIRECT).as_bytes()).unwrap();
    let out = lab.plan(&file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HALTED at step 4.4: reality differs from the twin before the step"), "{shown}");
    assert!(
        shown.contains("lab-wk-1: kubelet.conf server is the VIP: twin yes, observed no (server: https://127.0.20.10:6443)"),
        "{shown}"
    );
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("lab-wk-1: kubelet.conf server is the VIP: twin yes, observed no"), "{status}");
}

#[test]
fn plan_status_json_redacts_what_the_journal_holds() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    // A journal written by hand (or by an older plan): a halt whose reason holds a join token.
    let journal = concat!(
        r#"{"v":1,"at_ms":1,"event":"run-started","scenario":"loopback","plan_digest":"0","steps":["2.5"],"check":"pass","override_check":null,"resume":false,"pid":1}"#,
        "\n",
        r#"{"v":1,"at_ms":2,"event":"halted","step":"2.5","reason":"kubeadm join --token abcdef.0123456789abcdef failed","drift":[],"recovery":"hold","recovery_actions":["token: s3cr3t"]}"#,
        "\n"
    );
    write(&dir.path().join("journal.jsonl"), journal);
    let out = plan(&["--scenario", LOOPBACK, "status", "--format", "json", "--state-dir", dir.path().to_str().unwrap()], &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("abcdef.0123456789abcdef") && !shown.contains("s3cr3t"), "{shown}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("still JSON");
    assert_eq!(json["halted"]["reason"], "kubeadm join --token <redacted> failed");
}

/// A step begun and not ended reads "running" while an executor holds the state directory's lock
/// (it runs a command, or waits at a prompt), and "interrupted" once nothing holds it.
#[test]
fn status_tells_a_running_step_from_an_interrupted_one_by_the_lock() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    let journal = concat!(
        r#"{"v":1,"at_ms":1,"event":"run-started","scenario":"loopback","plan_digest":"0","steps":["4.2"],"check":"pass","override_check":null,"resume":false,"pid":1}"#,
        "\n",
        r#"{"v":1,"at_ms":2,"event":"step-started","step":"4.2"}"#,
        "\n"
    );
    write(&dir.path().join("journal.jsonl"), journal);
    let status = || {
        let out = plan(&["--scenario", LOOPBACK, "status", "--format", "json", "--state-dir", dir.path().to_str().unwrap()], &[]);
        assert!(out.status.success(), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        (json["state"].as_str().unwrap_or_default().to_string(), json["steps"][0]["state"].as_str().unwrap_or_default().to_string())
    };
    let held = plan_exec::lock::Lock::take(dir.path()).expect("the lock, as an executor holds it");
    assert_eq!(status(), ("running".to_string(), "running".to_string()));
    drop(held);
    assert_eq!(status(), ("interrupted".to_string(), "interrupted".to_string()));
}

/// The workstation's fixture host, which the ssh config knows by this name only.
const WORKSTATION: (&str, Ipv4Addr) = ("workstation", Ipv4Addr::new(127, 0, 20, 250));

/// `--workstation workstation`: the plan's workstation and infra-repo commands run over SSH on the
/// fixture host the ssh config names `workstation` (a `Host workstation` block with its HostName),
/// the infra repo's in its directory there; the preflight finds a missing infra repo there before
/// anything runs; and under the guard a workstation command is held to the rule for hosts' commands.
#[test]
fn the_workstations_commands_run_on_the_host_workstation_names() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start_with(&[WORKSTATION]);
    lab.name_in_ssh_config(WORKSTATION.0, WORKSTATION.1);
    let infra = lab.path("infra");
    let scenario = lab.path("scenario.yaml");
    let loopback = std::fs::read_to_string(LOOPBACK).unwrap();
    let with_repo = loopback.replace("infra_repo: /srv/plan-loopback/infra", &format!("infra_repo: {}", infra.display()));
    assert_ne!(with_repo, loopback, "the loopback scenario names its infra repo");
    write(&scenario, &with_repo);
    let scenario = scenario.to_str().unwrap().to_string();
    // 0.6 runs on the workstation, 1.2 in the infra repo: each writes where it ran. Unset, the
    // fixture's variable fails the command rather than write to /.
    let file = |name: &str, kubectl: bool| {
        let shown = plan(&["--scenario", &scenario, "show", "--format", "yaml"], &[]);
        let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&shown.stdout).expect("plan yaml");
        let shell = |run: &str| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&format!("- op: shell\n  run: '{run}'\n")).unwrap();
        let mut steps: Vec<serde_yaml_ng::Value> =
            value["steps"].as_sequence().unwrap().iter().filter(|s| matches!(s["id"].as_str(), Some("0.6" | "1.2"))).cloned().collect();
        if !kubectl {
            steps[0]["operations"] = shell("echo ran > ${PLAN_FIXTURE_HOST_DIR:?}/workstation-ran");
        }
        steps[1]["operations"] = shell("pwd > ${PLAN_FIXTURE_HOST_DIR:?}/infra-repo-pwd");
        value["steps"] = serde_yaml_ng::Value::Sequence(steps);
        let path = lab.path(name);
        write(&path, &serde_yaml_ng::to_string(&value).unwrap());
        path.to_str().unwrap().to_string()
    };
    let (plan_file, config, path, locks) = (file("plan.yaml", false), lab.path("ssh_config"), lab.path_env(), lab.path("locks"));
    let (config, locks) = (config.to_str().unwrap(), locks.to_str().unwrap());
    let execute = |plan_file: &str, state: &str| {
        let state = lab.path(state);
        let args = [
            "--scenario",
            &scenario,
            "--plan",
            plan_file,
            "execute",
            "--yes",
            OVERRIDE[0],
            OVERRIDE[1],
            "--state-dir",
            state.to_str().unwrap(),
            "--ssh-config",
            config,
            "--skip-observer",
            "kube",
            "--skip-observer",
            "etcd",
            "--workstation",
            "workstation",
        ];
        plan(&args, &[("PATH", &path), ("PLAN_LOCK_DIR", locks)])
    };
    let ran = |what: &str| std::fs::read_to_string(lab.hosts.host_dir(WORKSTATION.0).join(what)).ok();

    // No infra repo on the workstation yet: the preflight says so, and nothing runs.
    let out = execute(&plan_file, "state");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("ok   ssh on the workstation workstation: answers"), "{shown}");
    assert!(shown.contains(&format!("FAIL the infra repo {} on the workstation workstation", infra.display())), "{shown}");
    assert!(!lab.path("state/journal.jsonl").exists() && ran("workstation-ran").is_none(), "{shown}");

    std::fs::create_dir_all(&infra).unwrap();
    let out = execute(&plan_file, "state");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert_eq!(ran("workstation-ran").as_deref(), Some("ran\n"), "{shown}");
    assert_eq!(ran("infra-repo-pwd").map(|p| p.trim().to_string()), Some(infra.display().to_string()), "in the repo: {shown}");
    let journal = lab.journal();
    assert!(
        journal.contains("\"place\":\"workstation@workstation\"") && journal.contains("\"place\":\"infra-repo@workstation\""),
        "{journal}"
    );
    assert!(shown.contains("workstation@workstation $ echo ran"), "the log says where it ran: {shown}");

    // The plan's own 0.6 (kubectl with the workstation's kubeconfig): under the guard the
    // workstation is asked, as any host is, which server its kubectl would reach; it has no
    // kubeconfig, so the command is refused before it runs.
    let out = execute(&file("kubectl.yaml", true), "state-kubectl");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("refused workstation workstation: kubectl reaches no server"), "{shown}");
    // The shim logs every call: only the guard's question was put to it, never the command.
    let calls = std::fs::read_to_string(lab.path("workstation.log")).unwrap_or_default();
    assert!(
        calls.lines().all(|l| l.contains("config view --minify")) && !calls.contains("get pods"),
        "kubectl never ran: {calls}\n{shown}"
    );
}

/// Unattended, by-hand work halts the run, naming the step's by-hand commands in a row, and a
/// plain resume halts there again: `--resume --by-hand-done` says they are done, journals each as
/// done by hand and goes on; given when the last halt is not at by-hand work, it is refused
/// (exit 2).
#[test]
fn by_hand_done_moves_an_unattended_run_past_the_by_hand_work_it_halted_at() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    // 1.2: four edits of the LB's bootstrap script, by hand.
    let file = lab.plan_file(&["1.2"]);
    let yes = ["execute", "--yes", OVERRIDE[0], OVERRIDE[1]];
    let out = lab.plan(&file, &yes);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HALTED at step 1.2: needs the operator: edit lb/haproxy-bootstrap.php: build_pool_https()"), "{shown}");
    // One halt for the step's four edits in a row, each named.
    assert!(shown.contains("; then edit lb/haproxy-bootstrap.php: + $POOL_NAMES[]"), "{shown}");
    assert!(shown.contains("then `plan execute --resume --by-hand-done`"), "{shown}");
    // The hypervisor has no sshd here: silent at the halt, named, and not waited for.
    assert!(shown.contains("Not waited for, since nothing failed here: lab-hv did not answer"), "{shown}");
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("by hand: once it is done, `plan execute --resume --by-hand-done` goes on"), "{status}");
    let json: serde_json::Value = serde_json::from_slice(&lab.plan(&file, &["status", "--format", "json"]).stdout).expect("status json");
    assert_eq!(json["halted"]["by_hand"], 0, "{json}");

    let resume = [&yes[..], &["--resume"]].concat();
    let out = lab.plan(&file, &resume);
    assert!(text(&out).contains("HALTED at step 1.2: needs the operator: edit lb/haproxy-bootstrap.php: build_pool_https()"), "again");
    let out = lab.plan(&file, &[&resume[..], &["--by-hand-done"]].concat());
    let shown = text(&out);
    // The four edits, named by the one halt, confirmed by the one resume: the step ends.
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains(
            "build_pool_https() with check_type='HTTP', monitor_uri='/readyz', ssl='yes', sslverify='no' -- done, as --by-hand-done says"
        ),
        "{shown}"
    );
    assert_eq!(shown.matches("-- done, as --by-hand-done says").count(), 4, "{shown}");
    assert!(!shown.contains("HALTED"), "{shown}");
    let journal = lab.journal();
    for index in 0..4 {
        assert!(
            journal.contains(&format!("\"event\":\"command-started\",\"step\":\"1.2\",\"index\":{index},\"place\":\"operator\""))
                && journal.contains(&format!(
                    "\"event\":\"command-finished\",\"step\":\"1.2\",\"index\":{index},\"exit\":0,\"duration_ms\":0,\"output\":\"done by hand\""
                )),
            "{index}: {journal}"
        );
    }

    let out = lab.plan(&file, &["execute", "--by-hand-done"]);
    assert_eq!(out.status.code(), Some(2), "clap: it needs --resume: {}", text(&out));
}
