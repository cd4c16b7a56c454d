//! Pins the human and machine output of `plan show` and `plan check`: a change to the plan,
//! its commands or the JSON interface shows up as a snapshot diff to review, never silently.

mod common;
use common::{plan, scenario};

fn stdout_of(args: &[&str], expected_code: i32) -> String {
    let out = plan(args);
    assert_eq!(out.code, expected_code, "plan {args:?}\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    out.stdout
}

#[test]
fn homelab_plan_text() {
    insta::assert_snapshot!(stdout_of(&["show"], 0));
}

#[test]
fn homelab_plan_json() {
    let doc: serde_json::Value = serde_json::from_str(&stdout_of(&["show", "--format", "json"], 0)).expect("show emits JSON");
    insta::assert_json_snapshot!(doc);
}

#[test]
fn homelab_topology_text() {
    insta::assert_snapshot!(stdout_of(&["show", "--view", "topology"], 0));
}

#[test]
fn five_masters_plan_text() {
    insta::assert_snapshot!(stdout_of(&["--scenario", &scenario("five-masters.yaml"), "show"], 0));
}

#[test]
fn five_masters_plan_json() {
    let text = stdout_of(&["--scenario", &scenario("five-masters.yaml"), "show", "--format", "json"], 0);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("show emits JSON");
    insta::assert_json_snapshot!(doc);
}

#[test]
fn homelab_check_text() {
    insta::assert_snapshot!(stdout_of(&["check"], 1));
}

#[test]
fn homelab_check_json() {
    let doc: serde_json::Value = serde_json::from_str(&stdout_of(&["check", "--format", "json"], 1)).expect("check emits JSON");
    insta::assert_json_snapshot!(doc);
}

#[test]
fn legacy_learner_off_simulate_json() {
    let args = ["--scenario", &scenario("legacy-1.28.yaml"), "simulate", "--fail", "cp-2", "--at", "2.5", "--format", "json"];
    let doc: serde_json::Value = serde_json::from_str(&stdout_of(&args, 1)).expect("simulate emits JSON");
    insta::assert_json_snapshot!(doc);
}
