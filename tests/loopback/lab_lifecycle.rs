//! The executor's lab owns what it starts: a rehearsal that fails midway, and one whose process is
//! SIGKILLed, leave no process, thread, listening socket or scratch directory behind (a killed
//! one's directory goes at the next lab start, which sweeps the directories of dead owners).
//!
//! They run at once, beside any other lab on the machine: each lab claims a loopback range and a
//! scratch directory of its own, and each test looks only at its own lab's, found by the claims
//! its process holds (`plan_lab::scratch::claims_of`), never at whatever else is new.

use crate::common;

use common::{fixture_hosts_run, lab_range, scenario};
use plan_lab::executor_rehearsal::{rehearse_through_executor_checked, Checkpoint};
use plan_lab::scratch::{claim_held, claims_of, processes_naming, CLAIM_FILE, SCRATCH_DIR, SCRATCH_PREFIX};
use plan_lab::{process, LabError};
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bound on the wait for the lab's processes to die once their owner is gone.
const GONE_WAIT_S: u64 = 10;
/// Bound on the killed rehearsal reaching the point it is killed at.
const KILL_POINT_WAIT_S: u64 = 180;

fn loopback() -> Topology {
    let text = std::fs::read_to_string(scenario("loopback.yaml")).expect("the loopback scenario");
    Topology::new(&parse_scenario(&text).expect("it parses"))
}

/// A listening TCP socket: its address, port and inode (a socket made later on the same address
/// and port, by another lab, is another inode).
type Listener = (Ipv4Addr, u16, u64);

/// TCP sockets listening on a loopback address other than 127.0.0.1 (every lab address is one).
fn lab_listeners() -> BTreeSet<Listener> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else { continue };
        let Some((ip, port)) = local.split_once(':') else { continue };
        let (Ok(ip), Ok(port), Ok(inode)) = (u32::from_str_radix(ip, 16), u16::from_str_radix(port, 16), inode.parse()) else { continue };
        // /proc/net/tcp prints the address in the kernel's byte order (little-endian here).
        let ip = Ipv4Addr::from(ip.swap_bytes());
        if *state == "0A" && ip.is_loopback() && ip != Ipv4Addr::LOCALHOST {
            found.insert((ip, port, inode));
        }
    }
    found
}

/// This process's threads by name (at most 15 bytes each, as the kernel keeps them).
fn thread_names() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks.flatten().filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok()).map(|n| n.trim().to_string()).collect()
}

fn lab_threads() -> Vec<String> {
    thread_names()
        .into_iter()
        .filter(|n| n.starts_with("kubelet-stand") || n.starts_with("vip-probe") || n.starts_with("apiserver-"))
        .collect()
}

/// Waits until none of `pids` runs.
fn all_gone(pids: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(GONE_WAIT_S);
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| process::is_alive(p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scratch_dirs() -> BTreeSet<PathBuf> {
    let Ok(entries) = std::fs::read_dir(SCRATCH_DIR) else { return BTreeSet::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(SCRATCH_PREFIX)))
        .collect()
}

/// The scratch directory of the lab process `pid` owns, once it has made and claimed one.
fn scratch_dir_of(pid: u32) -> Option<PathBuf> {
    let dirs = claims_of(pid).dirs;
    assert!(dirs.len() <= 1, "one lab per rehearsal: {dirs:?}");
    dirs.first().map(|name| Path::new(SCRATCH_DIR).join(name))
}

/// The one loopback range the lab process `pid` holds, once it holds one.
fn range_of(pid: u32) -> Option<u8> {
    let mut ranges = claims_of(pid).ranges;
    // This test process keeps range 0 for the fixture (`keep_range_zero_for_the_fixture`): a lab
    // it runs in-process holds another.
    if pid == std::process::id() {
        ranges.retain(|&octet| octet != 0);
    }
    assert!(ranges.len() <= 1, "one range per lab: {ranges:?}");
    ranges.first().copied()
}

/// Directories made since `before` and left behind: claimed once (they carry the marker) and held
/// by no live process. Another lab's running directory is held; one being made has no marker yet.
fn left_behind(before: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    scratch_dirs().difference(before).filter(|d| d.join(CLAIM_FILE).exists() && !claim_held(d)).cloned().collect()
}

/// The lab directory of the rehearsal `child` once its journal records the first join (2.5)
/// finished; the rehearsal must still run then.
fn past_the_first_join(child: &mut std::process::Child) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(KILL_POINT_WAIT_S);
    loop {
        if let Some(root) = scratch_dir_of(child.id()) {
            if step_finished(&root, "2.5") {
                return root;
            }
        }
        assert!(Instant::now() < deadline, "the rehearsal got past 2.5 within {KILL_POINT_WAIT_S} s");
        assert!(child.try_wait().expect("wait").is_none(), "the rehearsal runs until it is stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the journal under the lab's `root` records step `id` finished (its run-started record
/// lists every step, so a step's id alone says nothing).
fn step_finished(root: &Path, id: &str) -> bool {
    let journal = std::fs::read_to_string(root.join("state/journal.jsonl")).unwrap_or_default();
    let step = format!("\"step\":\"{id}\"");
    journal.lines().any(|line| line.contains("\"step-finished\"") && line.contains(&step))
}

/// Everything the lab in `root` runs: no fewer than a host per machine (each an sshd's PID
/// namespace) and etcd.
fn running_lab(root: &Path) -> Vec<u32> {
    let pids = processes_naming(root);
    assert!(pids.len() >= 5, "the lab's processes name its directory: {pids:?}");
    pids
}

/// What ran of a lab at its checkpoint.
struct LabUp {
    root: PathBuf,
    pids: Vec<u32>,
    listeners: BTreeSet<Listener>,
    threads: Vec<String>,
}

#[test]
fn a_rehearsal_that_fails_midway_stops_every_process_thread_and_socket_and_removes_its_directory() {
    if !fixture_hosts_run() {
        return;
    }
    let t = loopback();
    let plan = planner::generate(&t);
    let before = lab_listeners();
    let mut seen: Option<LabUp> = None;
    // The join's etcd slice: a member started inside a host by the join shim, the lab's own
    // member, every host, the stand-ins, the probe and the kubelet thread are up when it fails.
    let steps = ["2.3", "2.4", "2.5"].map(String::from);
    let result = rehearse_through_executor_checked(&t, &plan, &steps, None, &mut |at, root| {
        if at != Checkpoint::RunDone {
            return Ok(());
        }
        // The lab runs in this process (the only test here that does): the range it holds is this
        // process's, and no other lab listens in it.
        let range = range_of(std::process::id()).expect("the lab holds a range");
        seen = Some(LabUp {
            root: root.to_path_buf(),
            pids: running_lab(root),
            listeners: lab_listeners().difference(&before).filter(|(ip, ..)| ip.octets()[1] == range).copied().collect(),
            threads: lab_threads(),
        });
        Err(LabError::NotRehearsable { what: "the rest of this rehearsal".to_string(), why: "the test fails it midway".to_string() })
    });
    assert!(
        matches!(&result, Err(LabError::NotRehearsable { why, .. }) if why == "the test fails it midway"),
        "{:?}",
        result.map(|r| r.executor_outcome)
    );
    let LabUp { root, pids, listeners, threads } = seen.expect("the run got to its end");
    assert!(!listeners.is_empty() && threads.iter().any(|n| n.starts_with("kubelet-stand")), "{listeners:?} {threads:?}");
    assert_eq!(all_gone(&pids), Vec::<u32>::new(), "no process of the lab is left");
    assert!(processes_naming(&root).is_empty(), "nothing else names {}", root.display());
    assert!(!root.exists(), "{} is removed", root.display());
    assert!(lab_threads().is_empty(), "no thread of the lab is left: {:?}", lab_threads());
    let left: Vec<_> = lab_listeners().intersection(&listeners).copied().collect();
    assert!(left.is_empty(), "no socket of the lab listens: {left:?}");
}

#[test]
fn a_sigkilled_rehearsal_leaves_no_process_and_the_next_lab_start_sweeps_its_directory() {
    if !fixture_hosts_run() {
        return;
    }
    let loopback = scenario("loopback.yaml");
    let rehearse = |flag: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_plan"));
        command
            .args(["--scenario", &loopback, "rehearse", flag, "--format", "json"])
            .env("PLAN_LOOPBACK_ONLY", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    let before = scratch_dirs();
    let mut child = rehearse("--via-execute").spawn().expect("plan starts");
    // Killed once the journal has passed the first join (2.5): a member the join shim started
    // runs inside that host, the executor holds its ControlMasters.
    let root = past_the_first_join(&mut child);
    let pids = running_lab(&root);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(all_gone(&pids), Vec::<u32>::new(), "the kernel ended every process of the killed lab");
    assert!(processes_naming(&root).is_empty(), "nothing names {}", root.display());
    // The next lab start sweeps the directory its dead owner left.
    let next = rehearse("--via-execute=0.2").status().expect("plan runs");
    assert!(next.code().is_some(), "the next rehearsal ends by itself: {next:?}");
    assert!(!root.exists(), "the next lab start removed {}", root.display());
    assert_eq!(left_behind(&before), Vec::<PathBuf>::new(), "nothing of either lab is left in {SCRATCH_DIR}");
}

/// SIGTERM (or Ctrl-C) to `plan rehearse`: as in `plan execute`, the executor stops after the
/// command that runs, then the lab stops everything it started and removes its directory at once
/// (a SIGKILL leaves that directory to the next lab start, above). Exit 1, the step named.
#[test]
fn a_rehearsal_stopped_by_sigterm_halts_its_executor_and_leaves_nothing_behind() {
    if !fixture_hosts_run() {
        return;
    }
    let loopback = scenario("loopback.yaml");
    let before = scratch_dirs();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plan"))
        .args(["--scenario", &loopback, "rehearse", "--via-execute", "--format", "json"])
        .env("PLAN_LOOPBACK_ONLY", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("plan starts");
    // Stopped once the executor is well into the plan (as above).
    let root = past_the_first_join(&mut child);
    let pids = running_lab(&root);
    assert!(process::signal(child.id(), process::Signal::Term), "SIGTERM sent");
    let out = child.wait_with_output().expect("plan ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a stop is a halt: {stderr}");
    assert!(stderr.contains("stopped by the operator at step") && stderr.contains("its directory removed"), "{stderr}");
    // The notice says what follows a rehearsal's stop: nothing to resume.
    assert!(stderr.contains("then the lab stops and removes its directory"), "{stderr}");
    assert!(!stderr.contains("--resume"), "{stderr}");
    assert_eq!(all_gone(&pids), Vec::<u32>::new(), "every process of the lab stopped");
    assert!(!root.exists(), "{} removed by the lab itself, not left to the next start", root.display());
    assert!(processes_naming(&root).is_empty(), "nothing names {}", root.display());
    assert_eq!(left_behind(&before), Vec::<PathBuf>::new(), "nothing of the lab is left in {SCRATCH_DIR}");
}

#[test]
fn two_labs_of_the_same_scenario_are_up_at_once_each_in_a_loopback_range_of_its_own() {
    if !fixture_hosts_run() {
        return;
    }
    let loopback = scenario("loopback.yaml");
    let before = scratch_dirs();
    let started = Instant::now();
    // The join's etcd slice, twice at once: hosts, etcd, HAProxy and stand-ins of each lab bind the
    // scenario's port (6443) on their own addresses.
    let rehearse = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_plan"))
            .args(["--scenario", &loopback, "rehearse", "--via-execute=2.3,2.4,2.5", "--format", "json"])
            .env("PLAN_LOOPBACK_ONLY", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("plan starts")
    };
    let (a, b) = (rehearse(), rehearse());
    // Both up at once: each lab's journal there at the same moment, each in the range it holds.
    let deadline = Instant::now() + Duration::from_secs(KILL_POINT_WAIT_S);
    let mut both_up: Option<[(PathBuf, u8); 2]> = None;
    while both_up.is_none() && Instant::now() < deadline {
        let up = |pid: u32| {
            let dir = scratch_dir_of(pid).filter(|d| d.join("state/journal.jsonl").exists())?;
            Some((dir, range_of(pid)?))
        };
        both_up = up(a.id()).zip(up(b.id())).map(|(x, y)| [x, y]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let reports: Vec<(i32, serde_json::Value)> = [a, b]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("plan ends");
            let report = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("rehearse prints JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)));
            (out.status.code().unwrap_or(-1), report)
        })
        .collect();
    eprintln!("two labs at once: {} ms", started.elapsed().as_millis());
    let both_up = both_up.expect("both labs were up at the same moment");
    for (code, report) in &reports {
        assert_eq!((*code, report["executor_outcome"].as_str()), (0, Some("completed")), "{report:#}");
        let disagree: Vec<&serde_json::Value> = report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["verdict"] == "disagree" || r["verdict"] == "not-rehearsed")
            .collect();
        assert!(disagree.is_empty(), "{disagree:#?}");
    }
    // Each report names the range its lab held while both were up, and they differ; the lab
    // outside range 0 moved the scenario there (`127.0.20.10 -> 127.N.20.10`).
    let ranges: Vec<u8> = reports.iter().map(|(_, r)| lab_range(r)).collect();
    assert_eq!(ranges, [both_up[0].1, both_up[1].1], "each report names the range its lab held");
    assert_ne!(ranges[0], ranges[1], "each lab in a range of its own");
    for ((_, report), range) in reports.iter().zip(&ranges) {
        let moved = report["moved_to_loopback"].as_array().expect("moved");
        let first = format!("127.0.20.10 -> 127.{range}.20.10");
        assert!(if *range == 0 { moved.is_empty() } else { moved.iter().any(|m| *m == first.as_str()) }, "{range}: {moved:?}");
    }
    for (dir, _) in &both_up {
        assert!(!dir.exists(), "{} is removed", dir.display());
    }
    assert_eq!(left_behind(&before), Vec::<PathBuf>::new(), "neither lab left a directory");
}
