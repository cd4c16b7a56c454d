//! The CLI on the embedded scenario and on inventories that differ from it.

mod common;

use common::{move_step, plan, remove_steps, scenario, write};

#[test]
fn show_lists_every_source_step_in_dag_order() {
    let out = plan(&["show", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("show prints JSON");
    let ids: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    // Every step of the source plan in its order, and 4.6 (deleting the join secrets) and 4.7
    // (kube-proxy to the VIP) that the planner adds.
    let expected = [
        "0.1", "0.2", "0.3", "0.4", "0.6", "1.1", "1.2", "1.3", "1.4", "1.5.1", "1.5.2", "1.5.3", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5",
        "2.6", "2.7", "2.8", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7",
        "4.5.1", "4.5.2", "4.5.3", "5.1", "5.2", "5.3", "6.1", "6.2", "6.3", "7.1", "7.2", "7.3", "7.4", "7.5", "8.1",
    ];
    assert_eq!(ids, expected);
    // Every dependency comes earlier.
    for (i, step) in doc["steps"].as_array().unwrap().iter().enumerate() {
        for dep in step["after"].as_array().unwrap() {
            let at = ids.iter().position(|id| *id == dep["step"].as_str().unwrap()).expect("dependency is a step");
            assert!(at < i, "{} depends on later {}", ids[i], ids[at]);
        }
    }
    let rollbacks: Vec<&str> = doc["rollbacks"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(
        rollbacks.contains(&"0.5") && rollbacks.contains(&"R2") && rollbacks.contains(&"R3") && rollbacks.contains(&"RW"),
        "{rollbacks:?}"
    );
    assert_eq!(doc["learner_mode"], true);
    assert_eq!(doc["plan_format"], 2);
}

#[test]
fn show_templates_commands_from_the_inventory() {
    let out = plan(&["show", "--phase", "2"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("VMID 205, IP 10.0.20.110"), "{}", out.stdout);
    assert!(out.stdout.contains("the join command names the first master, not 10.0.20.99:6443"), "{}", out.stdout);
    let other = plan(&["--scenario", &scenario("five-masters.yaml"), "show", "--phase", "3c"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert!(other.stdout.contains("Phase 3c - ctl-e"), "{}", other.stdout);
    assert!(other.stdout.contains("VMID 304, IP 198.51.100.14"));
    assert!(!other.stdout.contains("10.0.20."), "nothing of the homelab leaks into another inventory");
}

#[test]
fn five_masters_repeat_the_per_master_phases() {
    let out = plan(&["--scenario", &scenario("five-masters.yaml"), "show", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let phases: Vec<&str> = doc["phases"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(phases, ["0", "1", "1.5", "2", "3", "3b", "3c", "4", "4.5", "5", "6", "7", "8"]);
    let ids: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in ["3b.5", "3c.5", "3c.8"] {
        assert!(ids.contains(&id), "{id} missing");
    }
    // The reboot gate keeps the quorum of 5 (3) after the reboot: it blocks at 3 Ready or fewer,
    // not at the source's fixed 2.
    assert!(out.stdout.contains("-le 3 ] && block reboot"), "quorum threshold for 5 masters");
}

#[test]
fn the_yaml_export_loads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let exported = plan(&["show", "--format", "yaml"]);
    assert_eq!(exported.code, 0);
    let file = write(dir.path(), "plan.yaml", &exported.stdout);
    let direct = plan(&["show", "--format", "json"]);
    let loaded = plan(&["--plan", &file, "show", "--format", "json"]);
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    assert_eq!(direct.stdout, loaded.stdout);
}

#[test]
fn a_cutover_before_the_retrofit_is_refused_naming_both_steps() {
    let dir = tempfile::tempdir().unwrap();
    let exported = plan(&["show", "--format", "yaml"]).stdout;
    let file = write(dir.path(), "plan.yaml", &move_step(&exported, "4.1", None));
    let out = plan(&["--plan", &file, "check"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("step 4.1") && out.stderr.contains("step 0.3"), "{}", out.stderr);
    assert!(out.stderr.contains("certificate carries the VIP SAN"), "{}", out.stderr);
}

#[test]
fn dot_and_mermaid_draw_the_step_graph() {
    let dot = plan(&["show", "--format", "dot"]);
    assert!(dot.stdout.starts_with("digraph plan {") && dot.stdout.contains("s0_3 -> s0_4;"), "{}", dot.stdout);
    let mermaid = plan(&["show", "--format", "mermaid"]);
    assert!(mermaid.stdout.starts_with("flowchart LR") && mermaid.stdout.contains("s2_7 --> s2_8"));
    let topology = plan(&["show", "--format", "mermaid", "--view", "topology"]);
    assert!(topology.stdout.contains("10.0.20.99:6443") && topology.stdout.contains("k8s-master-3"));
}

#[test]
fn the_embedded_check_fails_for_the_deferral_reason() {
    let out = plan(&["check", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["verdict"], "fail");
    let names: Vec<&str> = doc["violations"].as_array().unwrap().iter().map(|v| v["invariant"].as_str().unwrap()).collect();
    assert_eq!(names, ["hypervisor-ram"]);
    assert!(doc["figures"]["fault_placements"].as_u64().unwrap() > 1000);
    assert!(doc["figures"]["rollback_paths_proven"].as_u64().unwrap() > 10);
    assert_eq!(doc["figures"]["rollback_paths_failed"], 0);
}

#[test]
fn a_fitting_homelab_passes_the_check() {
    let out = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "check"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("Verdict: PASS"));
    // The 2-voter window is reported even though the check passes.
    assert!(out.stdout.contains("k8s-master-2 goes down (stays down) (between 2.5"), "{}", out.stdout);
}

#[test]
fn simulate_fail_master_2_works_as_typed() {
    let out = plan(&["simulate", "--fail", "master-2"]);
    // The worst placement needs quorum recovery, which the source plan lacks: an unsafe halt.
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Every placement of this fault:"));
    assert!(out.stdout.contains("etcd 1/2 voters up: no quorum"), "{}", out.stdout);
    assert!(out.stdout.contains("quorum recovered (RQ)"));
}

#[test]
fn learner_mode_on_rolls_a_half_joined_master_back_cleanly() {
    let out = plan(&["simulate", "--fail", "master-2", "--at", "2.5"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("etcd member add k8s-master-2 (learner)"));
    assert!(out.stdout.contains("etcdctl member remove k8s-master-2"));
    assert!(out.stdout.contains("Outcome: rolled back phase 2"), "{}", out.stdout);
    assert!(out.stdout.contains("Safety invariants: none broken by this fault"));
}

/// The downtime line counts the run only: where the run ends with the API still down (the
/// single master lost before any other could serve), it says that goes on; where it ends with
/// the API up, it says nothing more.
#[test]
fn the_downtime_line_says_when_the_api_stays_down_after_the_run() {
    const GOES_ON: &str = "(while the run lasted; the breaks above go on after it)";
    let five = scenario("five-masters.yaml");
    let lost = plan(&["--scenario", &five, "simulate", "--fail", "ctl-a", "--at", "2.5"]);
    assert!(lost.stdout.contains("Afterwards: api-reachable broken"), "{}", lost.stdout);
    let line = lost.stdout.lines().find(|l| l.starts_with("Client-visible downtime:")).expect("the downtime line");
    assert!(line.ends_with(GOES_ON), "{line}");
    let rolled_back = plan(&["--scenario", &five, "simulate", "--fail", "ctl-b", "--at", "2.5"]);
    assert!(rolled_back.stdout.contains("Afterwards: the API is available to every consumer"), "{}", rolled_back.stdout);
    assert!(!rolled_back.stdout.contains(GOES_ON), "{}", rolled_back.stdout);
}

#[test]
fn learner_mode_off_loses_quorum_and_cannot_remove_the_member() {
    let out = plan(&["--scenario", &scenario("legacy-1.28.yaml"), "simulate", "--fail", "cp-2", "--at", "2.5"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("etcd member add cp-2 (voter)"), "{}", out.stdout);
    assert!(out.stdout.contains("etcd 1/2 voters up: no quorum (needs 2)"));
    // The phase rollback is ranked below the quorum recovery: its member remove needs quorum.
    assert!(
        out.stdout.contains("phase 2 rollback: cannot be carried out (etcdctl member remove cp-2: etcdserver: request timed out"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("membership-reversible"));
    let json = plan(&["--scenario", &scenario("legacy-1.28.yaml"), "simulate", "--fail", "cp-2", "--at", "2.5", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["outcome"]["kind"], "quorum-recovered");
    assert_eq!(doc["broken"][0]["invariant"], "membership-reversible");
}

#[test]
fn a_pause_past_the_certs_ttl_is_caught_and_re_uploaded() {
    let out = plan(&["simulate", "--fault", "operator-away", "--for", "3h", "--at", "3.4@0", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["outcome"]["kind"], "completed");
    assert_eq!(doc["recoveries"][0]["kind"], "renew");
    assert!(
        doc["halt"]["why"]["reason"].as_str().unwrap().contains("kubeadm-certs not found: uploaded 181 min ago, TTL 120 min"),
        "{}",
        doc["halt"]
    );
}

#[test]
fn the_lb_pool_before_the_oidc_flags_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let exported = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "show", "--format", "yaml"]).stdout;
    let file = write(dir.path(), "plan.yaml", &move_step(&exported, "2.6", Some("2.8")));
    let out = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "--plan", &file, "check", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let oidc = doc["violations"].as_array().unwrap().iter().find(|v| v["invariant"] == "lb-backends-uniform").expect("reported");
    assert_eq!(oidc["step"], "2.8");
    assert!(oidc["why"].as_str().unwrap().contains("k8s-portal-download, k8s-portal-setup-script fail intermittently"));
}

#[test]
fn the_failover_test_with_two_masters_left_is_caught() {
    // Remove master-3's join: the failover test (6.1) then reboots one of two voters.
    let dir = tempfile::tempdir().unwrap();
    let exported = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "show", "--format", "yaml"]).stdout;
    let without = remove_steps(&exported, &["3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "4.4", "8.1"]);
    let file = write(dir.path(), "plan.yaml", &without);
    let out = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "--plan", &file, "check", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let steps: Vec<String> = doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("{} {}", v["invariant"].as_str().unwrap(), v["step"].as_str().unwrap()))
        .collect();
    assert!(steps.iter().any(|s| s.ends_with(" 6.1")), "{steps:?}");
    assert!(out.stdout.contains("etcd 1/2 voters up: no quorum"), "{}", out.stdout);
}

#[test]
fn a_plan_that_never_reaches_ha_fails_even_without_faults() {
    // Without the new masters' LB pool steps, only k8s-master stays behind the VIP: the plan
    // runs to its end, but losing that one master still takes the API down.
    let dir = tempfile::tempdir().unwrap();
    let exported = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "show", "--format", "yaml"]).stdout;
    let file = write(dir.path(), "plan.yaml", &remove_steps(&exported, &["2.8", "3.8", "6.1", "8.1"]));
    let out = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "--plan", &file, "check", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let violation = doc["violations"].as_array().unwrap().iter().find(|v| v["invariant"] == "ha-reached").expect("ha-reached is reported");
    assert!(violation["why"].as_str().unwrap().contains("losing k8s-master breaks api-reachable"), "{}", violation["why"]);
    // The unedited plan reaches HA.
    assert_eq!(plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "check"]).code, 0);
}

#[test]
fn without_the_cert_re_upload_a_renewal_is_a_recovery_the_plan_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let exported = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "show", "--format", "yaml"]).stdout;
    let findings = |yaml: &str| -> Vec<String> {
        let file = write(dir.path(), "plan.yaml", yaml);
        let out = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "--plan", &file, "check", "--format", "json"]);
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        doc["findings"].as_array().unwrap().iter().map(|f| format!("{}: {}", f["fault"], f["recovery"])).collect()
    };
    let renewals = |list: &[String]| list.iter().filter(|f| f.contains("operator away") && f.contains("re-upload certs")).count();
    assert_eq!(renewals(&findings(&exported)), 0, "the full plan re-uploads at 3.3 itself");
    let without = findings(&remove_steps(&exported, &["3.3"]));
    assert_eq!(renewals(&without), 1, "{without:?}");
}

#[test]
fn a_reader_that_stops_early_ends_plan_quietly() {
    // `plan show --format json | head -1`: the JSON is larger than a pipe's buffer, so plan is
    // still writing when the reader goes away; it must end as a filter does, not panic.
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_plan"))
        .args(["--scenario", &scenario("five-masters.yaml"), "show", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("plan starts");
    let mut first = [0u8; 16];
    child.stdout.take().expect("stdout is piped").read_exact(&mut first).expect("plan prints");
    let out = child.wait_with_output().expect("plan ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(&first[..1], b"{");
}

#[test]
fn the_exported_plan_names_the_scenario_it_needs() {
    let legacy = scenario("legacy-1.28.yaml");
    let out = plan(&["--scenario", &legacy, "show", "--format", "yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let header = out.stdout.lines().next().unwrap();
    assert_eq!(
        header,
        format!("# plan for scenario legacy-128: reorder, delete or add steps, change operations (docs/operations.md), then: plan --scenario {legacy} --plan FILE check")
    );
    // The hint works as printed: the file checks against the scenario it names.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "legacy-plan.yaml", &out.stdout);
    let checked = plan(&["--scenario", &legacy, "--plan", &file, "check", "--format", "json"]);
    assert!(checked.code == 0 || checked.code == 1, "{}", checked.stderr);
    // The embedded homelab needs no --scenario.
    let homelab = plan(&["show", "--format", "yaml"]);
    assert_eq!(
        homelab.stdout.lines().next().unwrap(),
        "# plan for scenario homelab: reorder, delete or add steps, change operations (docs/operations.md), then: plan --plan FILE check"
    );
}

#[test]
fn status_before_any_run_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = plan(&["status", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(!out.stdout.contains("pending"), "{}", out.stdout);
    let journal = state.join("journal.jsonl");
    // The plan's own figures, as `plan show` gives them.
    let shown = plan(&["show", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).expect("show prints JSON");
    let steps = doc["steps"].as_array().expect("steps");
    let seconds: u64 = steps.iter().map(|s| s["duration_s"].as_u64().expect("a duration")).sum();
    assert_eq!(
        out.stdout,
        format!(
            "plan status: no run yet: no journal at {} ({} steps, about {} of plan time); `plan execute` starts one\n",
            journal.display(),
            steps.len(),
            plan_model::plan::format_duration(seconds as u32)
        )
    );
    // The JSON document keeps every step, as before: a script reads the states.
    let json = plan(&["status", "--state-dir", state.to_str().unwrap(), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["state"], "not-started");
    assert_eq!(doc["steps"].as_array().unwrap().len(), 51);
}

const SUBCOMMANDS: [&str; 12] =
    ["show", "check", "simulate", "capacity", "report", "execute", "status", "recover", "lab", "rehearse", "completions", "man"];

#[test]
fn completions_name_every_subcommand_and_parse_in_their_shell() {
    let bash = plan(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(bash.stdout.contains("_plan()") && bash.stdout.contains("complete -F _plan"), "{}", bash.stdout);
    // `rollback`, the alias of `recover`, completes too.
    for sub in SUBCOMMANDS.iter().chain(&["rollback"]) {
        assert!(bash.stdout.contains(&format!("plan,{sub})")), "bash completion lacks {sub}");
    }
    assert!(bash.stdout.contains("--scenario") && bash.stdout.contains("--format"), "options complete too");
    // The script parses as bash (bash -n reads without running).
    let dir = tempfile::tempdir().unwrap();
    let script = write(dir.path(), "plan.bash", &bash.stdout);
    let parsed = std::process::Command::new("bash").args(["-n", &script]).output().expect("bash runs");
    assert!(parsed.status.success(), "{}", String::from_utf8_lossy(&parsed.stderr));

    let zsh = plan(&["completions", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef plan"), "{}", zsh.stdout);
    let fish = plan(&["completions", "fish"]);
    for sub in SUBCOMMANDS.iter().chain(&["rollback"]) {
        assert!(fish.stdout.contains(&format!("-a \"{sub}\"")), "fish completion lacks {sub}");
    }
    // An unknown shell is a usage error that names the shells.
    let out = plan(&["completions", "tcsh"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid value 'tcsh'") && out.stderr.contains("bash"), "{}", out.stderr);
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let out = plan(&["man"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // clap_mangen opens with two string definitions (.ie/.el), then the title.
    let first_macro = out.stdout.lines().find(|l| !l.starts_with(".ie") && !l.starts_with(".el")).unwrap();
    assert!(first_macro.starts_with(".TH plan 1"), "{first_macro}");
    assert!(out.stdout.contains(".SH NAME\nplan \\- Moves a kubeadm cluster"), "{}", out.stdout);
    let subcommands = out.stdout.split(".SH SUBCOMMANDS").nth(1).expect("a SUBCOMMANDS section");
    for sub in SUBCOMMANDS {
        assert!(subcommands.contains(&format!("plan\\-{sub}(1)")), "man page lacks {sub}");
    }
    // Needs no scenario: a broken --scenario is not read for it.
    assert_eq!(plan(&["--scenario", "/nonexistent.yaml", "man"]).code, 0);
}

/// `--depth 3` runs (on a plan cut to its first two steps, to stay quick) and says first on
/// stderr how long it is expected to take; `--depth 4` is refused before anything runs.
#[test]
fn depth_three_is_accepted_with_its_expected_time_and_depth_four_refused() {
    let exported = plan(&["show", "--format", "yaml"]).stdout;
    let (head, rest) = exported.split_once("\n- id: '0.3'\n").expect("the plan has step 0.3");
    let (_, rollbacks) = rest.split_once("\nrollbacks:\n").expect("the plan file has rollbacks");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "first-two.yaml", &format!("{head}\nrollbacks:\n{rollbacks}"));
    let out = plan(&["--plan", &file, "check", "--depth", "3", "--format", "json"]);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("check prints JSON");
    assert_eq!(doc["depth"], 3);
    assert!(doc["figures"]["fault_placements"].as_u64().unwrap() > 50_000, "{}", doc["figures"]);
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("plan: depth 3 makes about ")
            && first.contains(" fault placements: expect about ")
            && first.contains("depth-1 check"),
        "{}",
        out.stderr
    );
    for command in [&["check", "--depth", "4"][..], &["report", "--html", "x.html", "--depth", "4"]] {
        let out = plan(command);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert_eq!(
            out.stderr.trim_end(),
            "plan: error: invalid value '4' for '--depth <DEPTH>': the faults a schedule holds: 1, 2 or 3 (`plan check` explores no deeper); see plan --help"
        );
    }
}

/// `plan rehearse --choose KIND` takes the kinds `plan recover --choose` takes and needs a fault's
/// point, and a hypervisor failure a hypervisor or a node: each refused as bad input before any
/// lab starts.
#[test]
fn rehearse_choose_takes_a_recovery_kind_and_a_fault_point() {
    let out = plan(&["rehearse", "--fail", "master-2", "--at", "2.5", "--choose", "restore"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("a recovery kind: wait-and-retry, renew, resume, rollback, hold, go-forward, quorum-recovery, worst-case"),
        "{}",
        out.stderr
    );
    let out = plan(&["rehearse", "--choose", "worst-case"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--at"), "{}", out.stderr);
    // A hypervisor failure's --fail that is neither a node nor a hypervisor says both lists.
    let three = scenario("three-hypervisors.yaml");
    let hypervisor = ["--scenario", &three, "rehearse", "--fault", "hypervisor-failure", "--at", "3.6@0"];
    let out = plan(&[&hypervisor[..], &["--fail", "hv-west"]].concat());
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("or a hypervisor: hv-north, hv-south, hv-east"), "{}", out.stderr);
    // The walk is gone: asked for, it is refused with what replaced it, before any lab starts.
    for args in [&["rehearse", "--walk", "--fail", "master-2", "--at", "2.5"][..], &["lab", "up", "--walk"][..]] {
        let out = plan(args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("the walk (--walk) is gone") && out.stderr.contains("through the executor"), "{}", out.stderr);
    }
}

/// The first master lost for good after the cut-over began: `plan simulate` writes it off and
/// goes on (`went-on` in the JSON), on the homelab and on an inventory with other names and five
/// masters, and stops where the acceptance criteria want it back; `--choose go-forward` is a
/// kind `plan recover` takes.
#[test]
fn simulate_goes_on_without_the_first_master_lost_after_the_cut_over() {
    for (args, m0) in [(vec![], "k8s-master"), (vec!["--scenario".to_string(), scenario("five-masters.yaml")], "ctl-a")] {
        let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
        argv.extend(["simulate", "--fail", m0, "--at", "4.4", "--format", "json"]);
        let out = plan(&argv);
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr));
        let outcome = &doc["outcome"];
        assert_eq!(outcome["kind"], "went-on", "{m0}: {outcome}");
        assert_eq!(outcome["without"], serde_json::json!([m0]), "{m0}: {outcome}");
        let stopped = outcome["stopped_at"].as_str().expect("it stops where the acceptance criteria want the master");
        assert!(stopped.contains("acceptance criteria"), "{m0}: {stopped}");
        let kinds: Vec<&str> = doc["recoveries"].as_array().expect("recoveries").iter().filter_map(|r| r["kind"].as_str()).collect();
        assert_eq!(kinds, ["go-forward"], "{m0}");
        assert!(doc["final_unavailable"].as_array().expect("final_unavailable").is_empty(), "{m0}: {}", doc["final_unavailable"]);
    }
    let bad = plan(&["recover", "--choose", "go-backward"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("go-forward"), "{}", bad.stderr);
}

/// Before `ControlPlaneKubeletLocalMode` (Kubernetes 1.33) a joined master's kubelet names the
/// first master until the cut-over. The first master lost for good as phase 3 verifies the third
/// master: the twin writes it off, moves what still names it (consumers, kubelets, kube-proxy) to
/// the VIP its pool serves without it, and goes on with the API up for everyone; the phase 3
/// rollback, which left the API down, no longer ranks first. On every scenario before 1.33, as
/// 3.6 begins, inside it, and as 3.7 begins (where the plan has them).
#[test]
fn before_kubelet_local_mode_the_first_master_lost_in_phase_3_is_gone_on_from_with_its_clients_moved() {
    let both = ["3.6@0", "3.6", "3.7@0"];
    let cases = [
        ("three-hypervisors.yaml", "cp-alpha", &both[..]),
        ("two-hypervisors.yaml", "cp-alpha", &both),
        ("legacy-1.28.yaml", "cp-1", &both),
    ];
    // The Linux HAProxy profile's plan has no config-stack step 3.6.
    for (file, m0, points) in cases.into_iter().chain([("haproxy-libvirt.yaml", "cp-1", &["3.7@0"][..])]) {
        let scenario = scenario(file);
        for &at in points {
            let out = plan(&["--scenario", &scenario, "simulate", "--fail", m0, "--at", at, "--format", "json"]);
            let doc: serde_json::Value =
                serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{file} {at}: {e}: {}{}", out.stdout, out.stderr));
            let kinds: Vec<&str> = doc["recoveries"].as_array().expect("recoveries").iter().filter_map(|r| r["kind"].as_str()).collect();
            assert_eq!(kinds, ["go-forward"], "{file} {at}");
            assert!(doc["dominated"].as_array().is_none_or(Vec::is_empty), "{file} {at}: {}", doc["dominated"]);
            let after: Vec<&str> =
                doc["final_unavailable"].as_array().expect("final_unavailable").iter().filter_map(|b| b["invariant"].as_str()).collect();
            assert!(!after.contains(&"api-reachable") && !after.contains(&"nodes-ready"), "{file} {at}: {after:?}");
        }
    }
}

/// `plan` turns transparent huge pages off for itself first thing (`prctl(PR_SET_THP_DISABLE)`,
/// `THP_enabled: 0` in its /proc status) unless `MIMALLOC_ALLOW_THP` is set: read from a running
/// `plan check --depth 3`, which is stopped once read.
#[cfg(target_os = "linux")]
#[test]
fn plan_takes_small_pages_unless_the_variable_asks_for_huge_ones() {
    use std::time::{Duration, Instant};
    let own = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    assert!(own.contains("THP_enabled:"), "this kernel shows THP_enabled in /proc/PID/status (Linux 5.0 on)");
    let thp_of = |allow: Option<&str>| -> String {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_plan"));
        command.args(["check", "--depth", "3"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        match allow {
            Some(value) => command.env("MIMALLOC_ALLOW_THP", value),
            None => command.env_remove("MIMALLOC_ALLOW_THP"),
        };
        let mut child = command.spawn().expect("plan starts");
        // Read once the check is under way (it prints its expected time on stderr first, after
        // main's first line has run): a second in, and up to 10 s for the status to be there.
        std::thread::sleep(Duration::from_secs(1));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = None;
        while seen.is_none() && Instant::now() < deadline {
            seen = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                .ok()
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(|v| v.trim().to_string()));
            if seen.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        seen.expect("plan check --depth 3 was still running a second in")
    };
    assert_eq!(thp_of(None), "0", "small pages by default");
    assert_eq!(thp_of(Some("1")), "1", "MIMALLOC_ALLOW_THP set: mimalloc's huge pages kept");
}
