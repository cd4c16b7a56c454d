//! Running the `plan` binary from tests, and what the lab's tests check before they start; the
//! executor's fixture hosts (`fixture`) and the reading of a rehearsal's report (`rehearsal`).

#![allow(dead_code)]

pub mod fixture;
pub mod rehearsal;

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

/// Asserts `out` is a refusal of bad input and returns its message (without the `plan: error: ` prefix).
#[track_caller]
pub fn refused(out: &Output) -> String {
    assert_eq!(out.code, 2, "exit code\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout for bad input: {}", out.stdout);
    let message = out.stderr.strip_prefix("plan: error: ").unwrap_or_else(|| panic!("one `plan: error:` line: {:?}", out.stderr));
    assert_eq!(message.trim_end().lines().count(), 1, "one line, one paragraph: {:?}", out.stderr);
    message.trim_end().to_string()
}

/// Replaces exactly one occurrence of `from` (so a mutation cannot silently miss).
#[track_caller]
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}

/// `line:column` of `key` on the `nth` line (0-based) that contains `needle`, found by plain
/// string search: an independent check of the located errors.
#[track_caller]
pub fn at(text: &str, needle: &str, nth: usize, key: &str) -> String {
    let (n, line) = text.lines().enumerate().filter(|(_, l)| l.contains(needle)).nth(nth).expect("needle present");
    let column = line.find(key).expect("key on the line") + 1;
    format!("{}:{column}", n + 1)
}

/// Whether the executor's lab can run here (root, sshd, unshare, etcd, haproxy…); under
/// `CI=true` a missing piece fails the test instead of skipping it.
pub fn fixture_hosts_run() -> bool {
    fixture::keep_range_zero_for_the_fixture();
    let missing =
        plan_lab::host::usable().err().map(|e| e.to_string()).or_else(|| plan_lab::host::check_binaries(true).err().map(|e| e.to_string()));
    match missing {
        None => true,
        Some(why) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but the executor's lab cannot run: {why}");
            eprintln!("skipping: {why} (not CI)");
            false
        }
    }
}

/// Whether etcd (and HAProxy when `haproxy`) are installed; under CI their absence fails.
pub fn lab_binaries(haproxy: bool) -> bool {
    fixture::keep_range_zero_for_the_fixture();
    match plan_lab::host::check_binaries(haproxy) {
        Ok(()) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("{e}: CI must install etcd-server, etcd-client and haproxy"),
        Err(e) => {
            eprintln!("skipping a lab test: {e}");
            false
        }
    }
}

/// The loopback range `127.N.0.0/16` an executor lab's report (`loopback_range`) says the lab held,
/// checked against every address it moved there: each `a.b.c.d -> 127.N.c.d`. A lab outside range
/// 0 moves every address (no scenario here is on 127.N for N > 0).
#[track_caller]
pub fn lab_range(report: &serde_json::Value) -> u8 {
    let range = report["loopback_range"].as_str().unwrap_or_default();
    let octet: u8 = range
        .strip_prefix("127.")
        .and_then(|r| r.strip_suffix(".0.0/16"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("loopback_range is 127.N.0.0/16: {range:?}"));
    let moved: Vec<&str> = report["moved_to_loopback"].as_array().expect("moved_to_loopback").iter().filter_map(|m| m.as_str()).collect();
    assert!(octet == 0 || !moved.is_empty(), "a lab in {range} moved its scenario there: {moved:?}");
    for m in &moved {
        let (from, to) = m.split_once(" -> ").expect("FROM -> TO");
        let from: std::net::Ipv4Addr = from.parse().expect("an address");
        assert_eq!(to, plan_lab::address::loopback_in(from, octet).to_string(), "{m} in {range}");
    }
    octet
}

/// Where the scenario's `address` is on a lab in the range `127.range.0.0/16`.
pub fn on_lab(range: u8, address: &str) -> String {
    plan_lab::address::loopback_in(address.parse().expect("an address"), range).to_string()
}

/// A self-signed apiserver certificate and key in `pki` (`apiserver.crt`, `apiserver.key`) for
/// `subject_alt_name` (openssl's `-addext` form: `DNS:lab-cp-1,IP:127.0.20.10`), as `kubeadm init
/// phase certs apiserver` leaves them; valid for a day.
pub fn apiserver_cert(pki: &Path, subject_alt_name: &str) {
    std::fs::create_dir_all(pki).expect("pki");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=kube-apiserver", "-addext", &format!("subjectAltName={subject_alt_name}")])
        .arg("-keyout")
        .arg(pki.join("apiserver.key"))
        .arg("-out")
        .arg(pki.join("apiserver.crt"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made the fixture cert");
}
