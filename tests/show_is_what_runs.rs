//! `plan show` prints what `plan execute` runs: the same lines, byte for byte, as
//! `plan execute --dry-run` prints, per step, on the embedded scenario and inventories unlike it.

use std::process::Command;

const PLAN: &str = env!("CARGO_BIN_EXE_plan");

fn output(scenario: Option<&str>, args: &[&str]) -> String {
    let mut command = Command::new(PLAN);
    if let Some(s) = scenario {
        command.args(["--scenario", s]);
    }
    let out = command.args(args).env("PLAN_LOOPBACK_ONLY", "1").output().expect("the plan binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The invocation lines of an output, each with its step: a line that names a place and then
/// a command (`$ …`), an instruction (`by hand: …`), an upload or a secret's copy.
fn invocations(text: &str) -> Vec<(String, String)> {
    let mut step = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            step = header.split_whitespace().next().unwrap_or_default().to_string();
            continue;
        }
        let trimmed = line.trim_start();
        let Some((place, rest)) = trimmed.split_once(' ') else { continue };
        let rest = rest.trim_start();
        let is_invocation = ["$ ", "by hand: ", "upload ", "copy "].iter().any(|p| rest.starts_with(p));
        if is_invocation && !place.ends_with(':') && place != "$" {
            out.push((step.clone(), trimmed.to_string()));
        }
    }
    out
}

#[test]
fn show_prints_exactly_the_dry_runs_lines_for_every_step() {
    let root = env!("CARGO_MANIFEST_DIR");
    let scenarios = [
        None,
        Some(format!("{root}/scenarios/homelab-rightsized.yaml")),
        Some(format!("{root}/scenarios/five-masters.yaml")),
        Some(format!("{root}/scenarios/loopback.yaml")),
    ];
    for scenario in &scenarios {
        let shown = invocations(&output(scenario.as_deref(), &["show"]));
        let dry = invocations(&output(scenario.as_deref(), &["execute", "--dry-run"]));
        assert!(shown.len() > 60, "{scenario:?}: {} lines", shown.len());
        assert_eq!(shown.len(), dry.len(), "{scenario:?}");
        for (a, b) in shown.iter().zip(&dry) {
            assert_eq!(a, b, "{scenario:?}");
        }
        // Both list relays and by-hand work: what runs, not what is typed.
        assert!(shown.iter().any(|(_, l)| l.contains("copy /root/.plan-join-command from")), "{scenario:?}");
        assert!(shown.iter().any(|(_, l)| l.contains("by hand: ")), "{scenario:?}");
    }
}

/// With `--workstation HOST` the dry run prints the same commands, byte for byte; only the place
/// of the workstation's commands says it is on HOST (`workstation@HOST`, `infra-repo@HOST`).
#[test]
fn with_a_workstation_elsewhere_only_its_place_label_changes() {
    let loopback = format!("{}/scenarios/loopback.yaml", env!("CARGO_MANIFEST_DIR"));
    for scenario in [None, Some(loopback.as_str())] {
        let shown = invocations(&output(scenario, &["show"]));
        let dry = invocations(&output(scenario, &["execute", "--dry-run", "--workstation", "ops@bastion"]));
        assert_eq!(shown.len(), dry.len(), "{scenario:?}");
        let mut moved = 0;
        for ((step_a, a), (step_b, b)) in shown.iter().zip(&dry) {
            assert_eq!(step_a, step_b);
            let ((place_a, command_a), (place_b, command_b)) = (a.split_once(' ').unwrap(), b.split_once(' ').unwrap());
            assert_eq!(command_a.trim_start(), command_b.trim_start(), "{scenario:?}: the command, byte for byte");
            if matches!(place_a, "workstation" | "infra-repo") {
                assert_eq!(place_b, format!("{place_a}@bastion"), "{scenario:?}");
                moved += 1;
            } else {
                assert_eq!(place_a, place_b, "{scenario:?}");
            }
        }
        assert!(moved > 10, "{scenario:?}: {moved}");
    }
}
