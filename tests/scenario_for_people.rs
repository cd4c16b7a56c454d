//! A scenario written for another cluster: homelab-only parts of the plan only where the scenario
//! declares them (without `reboot_gate` and `upgrade_chain` the plan has no phase, command or note
//! of them and still checks), and consumers that name the API by DNS.

use std::process::Command;

const PLAN: &str = env!("CARGO_BIN_EXE_plan");

fn plan(scenario: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(PLAN).arg("--scenario").arg(scenario).args(args).output().expect("the plan binary runs")
}

/// `scenarios/NAME` without the top-level sections `drop`, written into `dir`.
fn without(dir: &std::path::Path, name: &str, drop: &[&str]) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))).expect("the scenario");
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let map = value.as_mapping_mut().expect("a mapping");
    for key in drop {
        assert!(map.remove(*key).is_some(), "{name} declares {key}");
    }
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml_ng::to_string(&value).expect("yaml")).expect("written");
    path
}

#[test]
fn without_a_reboot_gate_or_an_upgrade_chain_the_plan_has_none_of_their_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["five-masters.yaml", "homelab-rightsized.yaml"] {
        let full = format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"));
        let scenario = without(dir.path(), name, &["reboot_gate", "upgrade_chain"]);
        let shown = plan(&scenario, &["show", "--format", "json"]);
        assert!(shown.status.success(), "{name}: {}", String::from_utf8_lossy(&shown.stderr));
        let json: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
        let phases: Vec<&str> = json["phases"].as_array().expect("phases").iter().map(|p| p["id"].as_str().unwrap_or_default()).collect();
        assert!(!phases.contains(&"5") && !phases.contains(&"7"), "{name}: {phases:?}");
        let full_json: serde_json::Value =
            serde_json::from_slice(&plan(std::path::Path::new(&full), &["show", "--format", "json"]).stdout).expect("json");
        let text = json.to_string();
        // What only the declared sections bring: their files, their stacks, their names.
        for (section, key) in [("reboot_gate", "path"), ("reboot_gate", "name"), ("upgrade_chain", "path")] {
            let full_text = std::fs::read_to_string(&full).expect("scenario");
            let full_value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&full_text).expect("yaml");
            let word = full_value[section][key].as_str().expect("declared in the full scenario").to_string();
            assert!(full_json.to_string().contains(&word), "{name}: the full plan names {word}");
            assert!(!text.contains(&word), "{name}: {word} is in the plan without {section}");
        }
        for word in ["kured", "k8s-version-upgrade", "reboot gate", "upgrade chain"] {
            assert!(!text.to_lowercase().contains(word), "{name}: {word:?} in the plan without the sections");
        }
        let checked = plan(&scenario, &["check"]);
        let full_checked = plan(std::path::Path::new(&full), &["check"]);
        assert_eq!(checked.status.code(), full_checked.status.code(), "{name}: {}", String::from_utf8_lossy(&checked.stdout));
    }
}

/// `scenarios/NAME` with `from` replaced by `to` (once), written into `dir`.
fn edited(dir: &std::path::Path, name: &str, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))).expect("the scenario");
    assert_eq!(text.matches(from).count(), 1, "{from} once in {name}");
    let path = dir.join(format!("edited-{name}"));
    std::fs::write(&path, text.replace(from, to)).expect("written");
    path
}

#[test]
fn a_consumer_may_name_the_api_by_dns_and_the_twin_follows_the_record_it_uses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = "{ name: root-kubeconfig, kind: kubeconfig, path: config, server: https://10.0.20.100:6443 }";
    let text = |out: &std::process::Output| format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // By the master's name: the same cluster as by its address.
    let by_name = edited(dir.path(), "homelab-rightsized.yaml", from, &from.replace("10.0.20.100", "k8s-master.viktorbarzin.lan"));
    let checked = plan(&by_name, &["check"]);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    // By the stale record 1.1 would delete, three phases before 4.1 moves the consumer to the
    // VIP: the planner defers the deletion to 4.1.1, and the plan checks.
    let by_record = edited(dir.path(), "homelab-rightsized.yaml", from, &from.replace("10.0.20.100", "kubernetes.viktorbarzin.lan"));
    let checked = plan(&by_record, &["check"]);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    let shown = text(&plan(&by_record, &["show"]));
    let deferred = shown.split("  4.1.1 ").nth(1).expect("a 4.1.1 step");
    assert!(deferred.trim_start().starts_with("Delete the stale DNS records"), "{deferred}");
    assert!(!deferred.split("  4.2 ").next().unwrap_or_default().contains("add '"), "4.1.1 only deletes: {deferred}");
    assert!(!shown.split("  1.2 ").next().unwrap_or_default().contains("delete stale"), "1.1 keeps the record");
    // The same plan with the deletion back in 1.1 (edited in the plan file): the twin finds the
    // consumer without an API from 1.1.
    let exported = plan(&by_record, &["show", "--format", "yaml"]);
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&exported.stdout).expect("yaml");
    for step in value["steps"].as_sequence_mut().expect("steps") {
        for op in step["operations"].as_sequence_mut().expect("operations") {
            if op["op"].as_str() == Some("declare-dns-records") {
                op["delete_stale"] = serde_yaml_ng::Value::Bool(true);
            }
        }
        if let Some(commands) = step.as_mapping_mut() {
            commands.remove("commands");
        }
    }
    let early = dir.path().join("early.yaml");
    std::fs::write(&early, serde_yaml_ng::to_string(&value).expect("yaml")).expect("written");
    let checked = Command::new(PLAN).arg("--scenario").arg(&by_record).arg("--plan").arg(&early).arg("check").output().expect("runs");
    let said = text(&checked);
    assert_eq!(checked.status.code(), Some(1), "{said}");
    assert!(said.contains("root-kubeconfig names the master by the DNS record kubernetes, which was deleted"), "{said}");
    // A name that is not the master's: refused, located.
    let elsewhere = edited(dir.path(), "homelab-rightsized.yaml", from, &from.replace("10.0.20.100", "api.elsewhere.example"));
    let refused = plan(&elsewhere, &["check"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("consumer root-kubeconfig uses https://api.elsewhere.example:6443"), "{}", text(&refused));
}
