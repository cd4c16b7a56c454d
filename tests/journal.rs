//! A damaged or lost journal, and a planted lock, at the command line: `plan status`,
//! `plan status --repair`, `plan execute --resume` and `plan recover` on journals written by hand, damaged the
//! ways a full disk, a crash or a careless edit damage them. Nothing here connects to a host: every run stops before the first
//! step (the journal is of another plan).

use std::path::Path;
use std::process::{Command, Output, Stdio};

const PLAN: &str = env!("CARGO_BIN_EXE_plan");
const LOOPBACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/loopback.yaml");
const STARTED: &str = r#"{"v":1,"at_ms":1,"event":"run-started","scenario":"loopback","plan_digest":"0","steps":["4.2","4.3"],"check":"pass","override_check":null,"resume":false,"pid":1}"#;
const STEP_STARTED: &str = r#"{"v":1,"at_ms":2,"event":"step-started","step":"4.2"}"#;
const STEP_FINISHED: &str = r#"{"v":1,"at_ms":3,"event":"step-finished","step":"4.2","how":"ran"}"#;

fn plan(state: &Path, args: &[&str]) -> Output {
    Command::new(PLAN)
        .args(["--scenario", LOOPBACK])
        .args(args)
        .args(["--state-dir", state.to_str().expect("utf-8 path")])
        .env("PLAN_LOOPBACK_ONLY", "1")
        // The tests run at once against the one loopback cluster: a cluster lock of their own.
        .env("PLAN_LOCK_DIR", state.with_extension("locks"))
        .stdin(Stdio::null())
        .output()
        .expect("the plan binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn journal(state: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(state).unwrap();
    std::fs::write(state.join("journal.jsonl"), bytes).unwrap();
}

fn set_aside(state: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

#[test]
fn damage_in_the_middle_is_refused_with_its_line_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    journal(&state, format!("{STARTED}\n{STEP_STARTED}\n{{\"v\":1,\"at_ms\":\n{STEP_FINISHED}\n").as_bytes());
    let out = plan(&state, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("line 3 cannot be read") && shown.contains("plan status --repair"), "{shown}");

    let out = plan(&state, &["status", "--repair"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("kept the 2 record(s) before line 3"), "{shown}");
    assert!(shown.contains("dropped 1 readable record(s)") && shown.contains("step-finished 4.2"), "{shown}");
    assert!(shown.contains("4.2      interrupted"), "the status after the repair: {shown}");
    let aside = set_aside(&state, "journal.jsonl.damaged-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(std::fs::read_to_string(&aside[0]).unwrap().ends_with(&format!("{STEP_FINISHED}\n")));

    let out = plan(&state, &["status", "--repair", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout stays JSON");
    assert_eq!(json["state"], "interrupted");
    assert!(text(&out).contains("nothing to repair"));
}

#[test]
fn a_damaged_tail_is_shown_then_cut_by_the_next_run_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A garbage last line that ends in a newline, and a write torn inside "…" (three bytes).
    let mut bytes = format!("{STARTED}\n{STEP_STARTED}\nnot a record\n").into_bytes();
    bytes.extend_from_slice(&"{\"v\":1,\"output\":\"\u{2026}".as_bytes()[..18]);
    journal(&state, &bytes);
    let out = plan(&state, &["status", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["journal_damage"]["line"], 3, "{json}");
    assert_eq!(json["steps"][0]["state"], "interrupted");

    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "").unwrap();
    let args = ["execute", "--resume", "--yes", "--override-check", "test", "--ssh-config", ssh_config.to_str().unwrap()];
    let out = plan(&state, &args);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "the journal is of another plan: {shown}");
    assert!(shown.contains("damaged tail (line 3, 2 line(s)") && shown.contains("was cut and kept in"), "{shown}");
    let aside = set_aside(&state, "journal.jsonl.cut-");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bytes[STARTED.len() + STEP_STARTED.len() + 2..]);
    assert_eq!(std::fs::read_to_string(state.join("journal.jsonl")).unwrap(), format!("{STARTED}\n{STEP_STARTED}\n"));
    let out = plan(&state, &["status"]);
    assert!(out.status.success() && !text(&out).contains("unreadable"), "{}", text(&out));
}

#[test]
fn a_lost_journal_is_reported_not_read_as_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("run-started"), format!("{STARTED}\n")).unwrap();
    for journal_text in [None, Some("")] {
        if let Some(t) = journal_text {
            journal(&state, t.as_bytes());
        }
        for args in [&["status"][..], &["rollback", "--yes"]] {
            let out = plan(&state, args);
            let shown = text(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
            assert!(shown.contains("holds no record, but") && shown.contains("run-started"), "{args:?}: {shown}");
        }
    }
}

#[test]
fn a_symlinked_lock_is_refused_and_its_target_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    journal(&state, format!("{STARTED}\n").as_bytes());
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&precious, state.join("lock")).unwrap();
    let out = plan(&state, &["status", "--repair"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("lock: a symbolic link"), "{shown}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n", "the pid was not written through the link");
}

const HALTED: &str =
    r#"{"v":1,"at_ms":3,"event":"halted","step":"4.2","reason":"r","drift":[],"recovery":"phase 4 rollback","recovery_actions":[]}"#;

/// `plan rollback` is `plan recover` by another name: the same answers, word for word, to every
/// request on a state directory without a journal and on a halted run of another plan (both
/// refused before any host is connected to).
#[test]
fn rollback_is_recover_by_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    let other = dir.path().join("other");
    journal(&other, format!("{STARTED}\n{STEP_STARTED}\n{HALTED}\n").as_bytes());
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "").unwrap();
    let ssh = ["--ssh-config", ssh_config.to_str().unwrap()];
    for (state, expected) in [(&empty, "nothing to recover from"), (&other, "the journal holds no run of this plan")] {
        for request in [&["--yes"][..], &["--yes", "--choose", "2"], &["--list"], &["--list", "--format", "json"]] {
            let run = |command: &str| {
                let args: Vec<&str> = [command].into_iter().chain(request.iter().copied()).chain(ssh).collect();
                plan(state, &args)
            };
            let (recover, rollback) = (run("recover"), run("rollback"));
            assert_eq!(recover.status.code(), Some(2), "{request:?}: {}", text(&recover));
            assert!(text(&recover).contains(expected), "{request:?}: {}", text(&recover));
            assert!(recover.stdout.is_empty(), "{request:?}: nothing listed");
            assert_eq!(
                (recover.status, recover.stdout, recover.stderr),
                (rollback.status, rollback.stdout, rollback.stderr),
                "{request:?}"
            );
        }
    }
    assert!(!other.join("ssh").exists() || std::fs::read_dir(other.join("ssh")).unwrap().next().is_none(), "no ssh master was opened");
    let records = std::fs::read_to_string(other.join("journal.jsonl")).unwrap();
    assert!(!records.contains("rollback-started"), "nothing journalled: {records}");
    // A damaged tail is named and left in place: the listing takes no lock, so cuts nothing.
    let torn = format!("{records}not a record\n");
    journal(&other, torn.as_bytes());
    let listed = plan(&other, &["recover", "--list", "--ssh-config", ssh_config.to_str().unwrap()]);
    assert!(text(&listed).contains("the journal is unreadable from line 4"), "{}", text(&listed));
    assert_eq!(std::fs::read_to_string(other.join("journal.jsonl")).unwrap(), torn);
}

/// A journal whose run went on without a machine written off: `plan status` says so, in words
/// and in the JSON's `written_off` (the twin's state in the record is not shown).
#[test]
fn status_says_the_run_goes_on_without_the_machine_written_off() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let t = plan_model::topology::Topology::new(
        &plan_model::validate::parse_scenario(&std::fs::read_to_string(LOOPBACK).unwrap()).expect("the loopback scenario is valid"),
    );
    let m0 = t.name(t.existing_master()).to_string();
    let mut twin = plan_model::cluster::Cluster::initial(&t);
    twin.up = twin.up.without(t.existing_master());
    twin.written_off = twin.written_off.with(t.existing_master());
    let written_off = serde_json::json!({
        "v": 1, "at_ms": 4, "event": "written-off", "step": "4.2", "nodes": [m0.clone()], "state": twin, "plan_digest": "1",
    });
    journal(&state, format!("{STARTED}\n{STEP_STARTED}\n{written_off}\n").as_bytes());
    let out = plan(&state, &["status"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains(&format!("going on without {m0} (written off at 4.2)")), "{shown}");
    let out = plan(&state, &["status", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["written_off"], serde_json::json!({"step": "4.2", "nodes": [m0]}), "{doc}");
    assert_eq!(doc["plan_digest"], "1", "the run follows the plan going on from here: {doc}");
}
