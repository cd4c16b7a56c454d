//! Running the `plan` binary from tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn scenario(name: &str) -> String {
    root().join("scenarios").join(name).display().to_string()
}

/// Runs `plan` with `args`; never touches the network (show/check/simulate are pure).
pub fn plan(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_plan")).args(args).current_dir(root()).output().expect("the plan binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file writes");
    path.display().to_string()
}

/// Moves the step `id` of an exported plan file so it comes right after `after` (or first).
pub fn move_step(plan_yaml: &str, id: &str, after: Option<&str>) -> String {
    let (head, rest) = plan_yaml.split_once("\nsteps:\n").expect("plan file has steps");
    let (steps, tail) = rest.split_once("\nrollbacks:\n").expect("plan file has rollbacks");
    let mut items: Vec<String> = Vec::new();
    for line in steps.split_inclusive('\n') {
        if line.starts_with("- id: ") || items.is_empty() {
            items.push(String::new());
        }
        items.last_mut().expect("an item").push_str(line);
    }
    let id_of = |item: &str| item.lines().next().unwrap_or("").trim_start_matches("- id: ").trim_matches('\'').to_string();
    let at = items.iter().position(|i| id_of(i) == id).expect("step exists");
    let moved = items.remove(at);
    let to = match after {
        Some(a) => items.iter().position(|i| id_of(i) == a).expect("anchor exists") + 1,
        None => 0,
    };
    items.insert(to, moved);
    let mut joined = items.concat();
    if !joined.ends_with('\n') {
        joined.push('\n');
    }
    format!("{head}\nsteps:\n{joined}\nrollbacks:\n{tail}")
}

/// Removes the steps `ids` from an exported plan file.
pub fn remove_steps(plan_yaml: &str, ids: &[&str]) -> String {
    let (head, rest) = plan_yaml.split_once("\nsteps:\n").expect("plan file has steps");
    let (steps, tail) = rest.split_once("\nrollbacks:\n").expect("plan file has rollbacks");
    let mut kept = String::new();
    let mut keep = true;
    for line in steps.split_inclusive('\n') {
        if let Some(id) = line.strip_prefix("- id: ") {
            keep = !ids.contains(&id.trim().trim_matches('\''));
        }
        if keep {
            kept.push_str(line);
        }
    }
    format!("{head}\nsteps:\n{kept}\nrollbacks:\n{tail}")
}
