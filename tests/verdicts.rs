//! The recorded verdict of `plan check` on every scenario in scenarios/ (scenarios/verdicts.txt).
//! A change that silently breaks a rollback proof, or hides a hazard the twin used to find,
//! changes a verdict and fails here.

mod common;
use common::{plan, root};
use std::collections::BTreeSet;

struct Recorded {
    file: String,
    passes: bool,
    broken: BTreeSet<String>,
}

fn recorded() -> Vec<Recorded> {
    let text = std::fs::read_to_string(root().join("scenarios/verdicts.txt")).expect("scenarios/verdicts.txt is readable");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let file = words.next().expect("a file name").to_string();
            let passes = match words.next() {
                Some("pass") => true,
                Some("fail") => false,
                other => panic!("verdicts.txt: {file}: verdict must be pass or fail, not {other:?}"),
            };
            let broken: BTreeSet<String> = words.map(str::to_string).collect();
            assert!(passes || !broken.is_empty(), "verdicts.txt: {file}: a failing verdict names the invariants it breaks");
            assert!(!passes || broken.is_empty(), "verdicts.txt: {file}: a passing verdict names no invariant");
            Recorded { file, passes, broken }
        })
        .collect()
}

#[test]
fn every_scenario_has_a_recorded_verdict() {
    let listed: BTreeSet<String> = recorded().into_iter().map(|r| r.file).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ is readable")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    assert_eq!(listed, on_disk, "scenarios/verdicts.txt must list exactly the scenarios in scenarios/");
}

#[test]
fn check_reaches_the_recorded_verdict_on_every_scenario() {
    let mut mismatches = Vec::new();
    for r in recorded() {
        let path = root().join("scenarios").join(&r.file).display().to_string();
        let out = plan(&["--scenario", &path, "check", "--format", "json"]);
        let doc: serde_json::Value = match serde_json::from_str(&out.stdout) {
            Ok(doc) => doc,
            Err(e) => {
                mismatches.push(format!("{}: no JSON report ({e}); exit {}; stderr: {}", r.file, out.code, out.stderr));
                continue;
            }
        };
        let passes = doc["verdict"] == "pass";
        let broken: BTreeSet<String> = doc["violations"]
            .as_array()
            .expect("violations is a list")
            .iter()
            .map(|v| v["invariant"].as_str().expect("a violation names its invariant").to_string())
            .collect();
        let expected_code = if r.passes { 0 } else { 1 };
        if passes != r.passes || broken != r.broken || out.code != expected_code {
            mismatches.push(format!(
                "{}: recorded {} {:?}, got {} {:?} (exit {})",
                r.file,
                if r.passes { "pass" } else { "fail" },
                r.broken,
                doc["verdict"],
                broken,
                out.code
            ));
        }
        // Every rollback path the check explored must be proven, whatever the verdict.
        assert_eq!(doc["figures"]["rollback_paths_failed"], 0, "{}: a rollback path failed", r.file);
        assert!(doc["figures"]["rollback_paths_proven"].as_u64().unwrap_or(0) > 0, "{}: no rollback path explored", r.file);
    }
    assert!(mismatches.is_empty(), "verdicts differ from scenarios/verdicts.txt:\n{}", mismatches.join("\n"));
}
