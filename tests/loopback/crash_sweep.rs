//! The standing lab (`plan lab up`) driven by `plan execute` from another process,
//! as against real hosts: the executor SIGKILLed at journal records (between commands and inside
//! them), resumed each time, its by-hand work done with `plan lab by-hand` and confirmed with
//! `--resume --by-hand-done`. The run must complete with no command that may not run twice run
//! twice on the hosts and every backup intact; `plan lab down` must leave nothing behind.
//!
//! The default run kills every [`SAMPLE_EVERY`] records of work of homelab-rightsized; the full
//! sweep (every record of work) is `PLAN_KILL_SWEEP=every CI=true cargo test --test loopback crash_sweep::the_executor
//! -- --nocapture` (docs/development.md, "Tests"), which prints its figures;
//! `PLAN_KILL_SWEEP=N` kills every N records, `PLAN_KILL_SWEEP_SCENARIO=five-masters.yaml` sweeps
//! another scenario.

use crate::common;

use common::{fixture_hosts_run, scenario};
use plan_exec::invocation::{by_hand_run, compile, Invocation};
use plan_exec::journal::{self, Event, Progress};
use plan_lab::process;
use plan_lab::scratch::processes_naming;
use plan_model::plan::Plan;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Journal records between two kills in the default run.
const SAMPLE_EVERY: usize = 90;
/// Bound on one executor process (it waits up to 180 s for a node in the plan's own commands).
const RUN_WAIT_S: u64 = 300;
/// Bound on the lab's processes dying after `plan lab down`.
const GONE_WAIT_S: u64 = 10;
/// Bound on executor processes in one sweep (kills, by-hand halts, the last run).
const RUNS_MAX: usize = 2000;

fn plan_bin() -> &'static str {
    env!("CARGO_BIN_EXE_plan")
}

fn run(args: &[&str]) -> Output {
    Command::new(plan_bin()).args(args).env("PLAN_LOOPBACK_ONLY", "1").output().expect("plan runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab up with `plan lab up`, brought down when dropped (also when a test fails).
struct StandingLab {
    dir: PathBuf,
    /// Removed when the lab is dropped (after its `down`), unless a later lab takes it over.
    keep: Option<tempfile::TempDir>,
    standing: Value,
    down: bool,
}

impl StandingLab {
    fn up(scenario_file: &str) -> StandingLab {
        let keep = tempfile::tempdir().expect("a state directory");
        let dir = keep.path().join("lab");
        StandingLab::start(scenario_file, dir, keep)
    }

    /// A lab up in the directory `earlier` used (which is down).
    fn up_in(scenario_file: &str, mut earlier: StandingLab) -> StandingLab {
        let keep = earlier.keep.take().expect("the directory");
        StandingLab::start(scenario_file, earlier.dir.clone(), keep)
    }

    fn start(scenario_file: &str, dir: PathBuf, keep: tempfile::TempDir) -> StandingLab {
        let dir_text = dir.display().to_string();
        let out = run(&["--scenario", scenario_file, "lab", "up", "--state-dir", &dir_text]);
        assert!(out.status.success(), "plan lab up: {}", text(&out));
        let standing: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("standing.json")).expect("standing.json")).expect("it is JSON");
        StandingLab { dir, keep: Some(keep), standing, down: false }
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(self.standing["connection"]["root"].as_str().expect("root"))
    }

    fn executor_dir(&self) -> PathBuf {
        PathBuf::from(self.standing["executor_state_dir"].as_str().expect("executor_state_dir"))
    }

    fn execute(&self, extra: &[&str]) -> Child {
        let args: Vec<&str> = self.standing["execute"].as_array().expect("execute").iter().map(|a| a.as_str().expect("a string")).collect();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("executor.log")).expect("the executor's log");
        Command::new(plan_bin())
            .args(&args)
            .args(extra)
            .env("PLAN_LOOPBACK_ONLY", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("plan execute starts")
    }

    /// The lab's plan, as `plan execute` derives it from the lab's scenario file, and its
    /// invocations.
    fn compiled(&self) -> (Plan, Vec<Vec<Invocation>>) {
        let file = self.standing["scenario_file"].as_str().expect("scenario_file");
        let text = std::fs::read_to_string(file).expect("the lab's scenario file");
        let t = Topology::new(&parse_scenario(&text).expect("it parses"));
        let plan = planner::generate(&t);
        let compiled = compile(&t, &plan);
        (plan, compiled)
    }

    fn down(&mut self) -> Output {
        self.down = true;
        run(&["lab", "down", "--state-dir", &self.dir.display().to_string()])
    }

    /// The executor's log's last lines, the journal's last records and each host's kubeadm logs.
    fn log_tail(&self) -> String {
        let tail = |text: &str, n: usize| text.lines().rev().take(n).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        let mut out = tail(&std::fs::read_to_string(self.dir.join("executor.log")).unwrap_or_default(), 30);
        let journal = std::fs::read_to_string(self.executor_dir().join("journal.jsonl")).unwrap_or_default();
        out.push_str(&format!("\n--- the journal's last records:\n{}", tail(&journal, 12)));
        for host in std::fs::read_dir(self.root().join("hosts")).into_iter().flatten().flatten() {
            for log in ["kubeadm.log", "kubeadm-join.log"] {
                if let Ok(text) = std::fs::read_to_string(host.path().join(log)) {
                    out.push_str(&format!("\n--- {} {log}:\n{}", host.file_name().to_string_lossy(), tail(&text, 15)));
                }
            }
        }
        out
    }
}

impl Drop for StandingLab {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.down();
        }
    }
}

/// The journal's distinct records of work (a step or a command started or finished, told apart by
/// step and command), counted as the journal grows: read every few ms, only its new complete
/// lines parsed. A resume's own records (its start, the phase confirmed, what it observed) are not
/// work, and neither is a step or command started again after a kill: a sweep that counted them
/// would kill every resume before it got further, for ever (the first full sweep did, 1,900 times).
#[derive(Default)]
struct WorkRecords {
    read: usize,
    seen: BTreeSet<(String, String, Option<u64>)>,
}

impl WorkRecords {
    fn now(&mut self, dir: &Path) -> usize {
        let text = std::fs::read(journal::journal_path(dir)).unwrap_or_default();
        if text.len() < self.read {
            // A resume moved a cut tail aside: read the journal again from its start.
            self.read = 0;
        }
        let complete = text[self.read..].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in String::from_utf8_lossy(&text[self.read..self.read + complete]).lines() {
            let Ok(record) = serde_json::from_str::<Value>(line) else { continue };
            let event = record["event"].as_str().unwrap_or_default();
            if event.starts_with("command-") || event.starts_with("step-") {
                let step = record["step"].as_str().unwrap_or_default().to_string();
                self.seen.insert((event.to_string(), step, record["index"].as_u64()));
            }
        }
        self.read += complete;
        self.seen.len()
    }
}

fn records(dir: &Path) -> Vec<journal::Record> {
    match journal::read(dir) {
        Ok(contents) => contents.records,
        Err(e) => panic!("the journal in {} reads: {e}", dir.display()),
    }
}

/// What a sweep did.
#[derive(Debug, Default)]
struct Sweep {
    /// The kill right after the first join's member add: the journal's length then, and the
    /// step the executor was in.
    join_cut: Option<(usize, String)>,
    kills: usize,
    /// Kills that landed while a command ran (its start journalled, not its end).
    inside_commands: usize,
    by_hand_halts: usize,
    runs: usize,
    elapsed: Duration,
}

/// Runs the lab's whole plan through `plan execute`, SIGKILLing it each time the journal has
/// grown by `every` records (never when `every` is 0), and once right after the first new
/// master's `kubeadm join` added its etcd member (the lab's join shim logs it), resuming after
/// each kill, and doing the by-hand work each `--yes` halt asks for.
fn sweep(lab: &StandingLab, every: usize) -> Sweep {
    let mut next_kill = every;
    let executor_dir = lab.executor_dir();
    let hosts = lab.root().join("hosts");
    let mut work = WorkRecords::default();
    // Asked for, then (once killed) where the journal stood.
    let mut join_cut: (bool, Option<(usize, String)>) = (false, None);
    let mut figures = sweep_killing(lab, &mut |killed| {
        if let Some(records_then) = killed {
            if join_cut.0 && join_cut.1.is_none() {
                let step = records(&executor_dir).iter().rev().find_map(|r| match &r.event {
                    Event::CommandStarted { step, .. } | Event::StepStarted { step } => Some(step.clone()),
                    _ => None,
                });
                join_cut.1 = Some((records_then, step.unwrap_or_default()));
            }
            next_kill = work.now(&executor_dir) + every;
            return false;
        }
        if !join_cut.0 && member_added(&hosts) {
            join_cut.0 = true;
            return true;
        }
        every > 0 && work.now(&executor_dir) >= next_kill
    });
    figures.join_cut = join_cut.1;
    figures
}

/// Whether a host's `kubeadm join` (the lab's shim) logged its etcd member add.
fn member_added(hosts: &Path) -> bool {
    let added =
        |host: std::fs::DirEntry| std::fs::read_to_string(host.path().join("kubeadm-join.log")).is_ok_and(|log| log.contains(" added;"));
    std::fs::read_dir(hosts).is_ok_and(|mut hosts| hosts.any(|h| h.is_ok_and(added)))
}

/// [`sweep`], the executor SIGKILLed whenever `kill_now(None)` says so (asked every 5 ms while it
/// runs); after each kill, `kill_now(Some(records))` is told how many records the journal holds.
/// With `every` at 1 a kill lands after each record of work, so the run makes progress between
/// kills.
fn sweep_killing(lab: &StandingLab, kill_now: &mut dyn FnMut(Option<usize>) -> bool) -> Sweep {
    let started = Instant::now();
    let mut figures = Sweep::default();
    let mut extra: Vec<&str> = Vec::new();
    // The by-hand work done on the lab, by (step, command): never done twice, as a person knows.
    let mut done_by_hand: BTreeSet<(String, usize)> = BTreeSet::new();
    let executor_dir = lab.executor_dir();
    let compiled = lab.compiled();
    loop {
        figures.runs += 1;
        assert!(figures.runs < RUNS_MAX, "the sweep ends");
        let mut child = lab.execute(&extra);
        let deadline = Instant::now() + Duration::from_secs(RUN_WAIT_S);
        let killed = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Err(status);
            }
            if kill_now(None) {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                break Ok(());
            }
            assert!(Instant::now() < deadline, "plan execute ends within {RUN_WAIT_S} s: {}", lab.log_tail());
            std::thread::sleep(Duration::from_millis(5));
        };
        let journalled = records(&executor_dir);
        match killed {
            Ok(()) => {
                figures.kills += 1;
                if let Some(Event::CommandStarted { .. }) = journalled.last().map(|r| &r.event) {
                    figures.inside_commands += 1;
                }
                kill_now(Some(journalled.len()));
                extra = vec!["--resume"];
            }
            Err(status) if status.success() => break,
            Err(status) => {
                let progress = Progress::from_records(&journalled);
                let halt = progress.halted.as_ref().unwrap_or_else(|| panic!("exit {status}: not a halt: {}", lab.log_tail()));
                let this_run = journalled.iter().rposition(|r| matches!(r.event, Event::RunStarted { .. })).unwrap_or(0);
                assert!(
                    journalled[this_run..].iter().any(|r| matches!(r.event, Event::Halted { .. })),
                    "exit {status}: this run journalled no halt of its own: {}",
                    lab.log_tail()
                );
                let pending = halt.by_hand.unwrap_or_else(|| panic!("halted at {}: {}\n{}", halt.step, halt.reason, lab.log_tail()));
                let step = compiled.0.steps.iter().position(|s| s.id == halt.step).expect("a step of the plan");
                assert!(
                    compiled.1[step].get(pending).is_some_and(|i| i.is_manual()),
                    "halted at {} command {} for another reason than by-hand work: {}\n{}",
                    halt.step,
                    pending + 1,
                    halt.reason,
                    lab.log_tail()
                );
                figures.by_hand_halts += 1;
                // A halt names the step's by-hand commands in a row from `pending`; one after a
                // kill inside their confirmation names those the journal does not show done yet,
                // which the lab did already (as a person knows).
                if !done_by_hand.contains(&(halt.step.clone(), pending)) {
                    let out = run(&["lab", "by-hand", "--state-dir", &lab.dir.display().to_string()]);
                    assert!(out.status.success(), "plan lab by-hand at {}: {}", halt.step, text(&out));
                    let said = String::from_utf8_lossy(&out.stdout);
                    let did = format!("by hand ({}, command {})", halt.step, pending + 1);
                    assert!(said.contains(&did), "the lab did the halt's command: {said}");
                    for j in by_hand_run(&compiled.1[step], pending) {
                        done_by_hand.insert((halt.step.clone(), j));
                    }
                }
                extra = vec!["--resume", "--by-hand-done"];
            }
        }
    }
    figures.elapsed = started.elapsed();
    figures
}

/// The commands of the lab's plan that contain `needle`.
fn plan_commands(plan: &Plan, needle: &str) -> usize {
    plan.steps.iter().flat_map(|s| &s.commands).filter(|c| c.run.contains(needle)).count()
}

/// The arguments the plan's commands give `program` (the text after it, up to a quote or the
/// end), for those whose arguments start with `first`.
fn plan_arguments(plan: &Plan, program: &str, first: &str) -> Vec<String> {
    plan.steps
        .iter()
        .flat_map(|s| &s.commands)
        .filter_map(|c| c.run.find(program).map(|at| c.run[at + program.len()..].to_string()))
        .map(|rest| rest.split(['\'', '"', '#']).next().unwrap_or_default().trim().to_string())
        .filter(|args| args.starts_with(first))
        .collect()
}

fn lines_containing(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
}

/// What ran on the hosts, read from the lab's own records: nothing that may not run twice ran
/// twice, every backup holds what it backed up.
fn assert_nothing_twice_and_backups_intact(lab: &StandingLab) {
    let root = lab.root();
    let (plan, _) = lab.compiled();
    let hosts = root.join("hosts");
    // Each snapshot the plan takes, by VM and name, taken exactly once (compared line by line).
    let mut taken: Vec<String> = std::fs::read_dir(&hosts)
        .expect("hosts")
        .flatten()
        .flat_map(|h| std::fs::read_to_string(h.path().join("qm/log")).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.starts_with("snapshot "))
        .collect();
    let mut planned = plan_arguments(&plan, "qm ", "snapshot");
    assert_eq!(planned.len(), plan_commands(&plan, "qm snapshot"), "every snapshot command read: {planned:?}");
    taken.sort();
    planned.sort();
    assert_eq!(taken, planned, "each VM snapshot taken once");
    // Each Job created once, by the CronJob it is made from.
    let kubectl_log = root.join("kubectl.log");
    let mut created: Vec<String> = std::fs::read_to_string(&kubectl_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("create job"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--from=")).map(str::to_string))
        .collect();
    let mut jobs: Vec<String> = plan_arguments(&plan, "kubectl ", "")
        .into_iter()
        .filter(|a| a.contains("create job"))
        .filter_map(|a| a.split_whitespace().find(|w| w.starts_with("--from=")).map(str::to_string))
        .collect();
    assert_eq!(jobs.len(), plan_commands(&plan, "create job"), "every Job command read: {jobs:?}");
    created.sort();
    jobs.sort();
    assert_eq!(created, jobs, "each Job created once");
    assert_eq!(lines_containing(&root.join("bd.log"), "bd close"), plan_commands(&plan, "bd close"), "the tracking issue closed once");
    let commits =
        Command::new("git").args(["-C", &root.join("infra").display().to_string(), "log", "--format=%s"]).output().expect("git log");
    let subjects: Vec<String> = String::from_utf8_lossy(&commits.stdout).lines().map(str::to_string).collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &subjects {
        *seen.entry(s.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "no commit made twice: {twice:?}");
    // Every kubelet.conf backup names the first master, as the kubelet.conf it backed up did.
    let file = lab.standing["scenario_file"].as_str().expect("scenario_file");
    let t = Topology::new(&parse_scenario(&std::fs::read_to_string(file).expect("the lab's scenario")).expect("it parses"));
    let first_master = t.node(t.existing_master()).address.to_string();
    let mut backups = 0;
    for host in std::fs::read_dir(&hosts).expect("hosts").flatten() {
        let backup = host.path().join("etc-kubernetes/kubelet.conf.bak");
        if let Ok(text) = std::fs::read_to_string(&backup) {
            backups += 1;
            assert!(text.contains(&format!("https://{first_master}:")), "{} names the first master: {text}", backup.display());
        }
    }
    assert!(backups > 0, "the plan backs kubelet.conf up");
}

fn assert_nothing_left(root: &Path, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(GONE_WAIT_S);
    while pids.iter().any(|p| process::is_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive: Vec<u32> = pids.iter().copied().filter(|p| process::is_alive(*p)).collect();
    assert!(alive.is_empty(), "no process of the lab is left: {alive:?}");
    assert!(processes_naming(root).is_empty(), "nothing names {}", root.display());
    assert!(!root.exists(), "{} is removed", root.display());
}

fn kill_sweep(scenario_name: &str, every: usize) {
    if !fixture_hosts_run() {
        return;
    }
    let mut lab = StandingLab::up(&scenario(scenario_name));
    let root = lab.root();
    let pids = processes_naming(&root);
    assert!(pids.len() >= 5, "the lab runs a host per machine: {pids:?}");
    let figures = sweep(&lab, every);
    eprintln!("{scenario_name}, a kill every {every} records: {figures:?}");
    let progress = Progress::from_records(&records(&lab.executor_dir()));
    assert!(progress.finished, "the run completed: {}", lab.log_tail());
    if every > 0 {
        assert!(figures.kills >= 3, "the sweep killed the executor: {figures:?}");
        assert!(figures.inside_commands >= 1, "some kills landed inside a command: {figures:?}");
    }
    assert!(figures.by_hand_halts > 0, "the plan has by-hand work: {figures:?}");
    // The join cut right after its member add: the resume probes it and, as it did not finish,
    // cleans it up (the member removed, `kubeadm reset`) before it runs it again. On 1.34
    // kubelet.conf comes last (local mode), and the join's first output after the kill ends it
    // (its ssh session is gone): the probe cannot find it done, so the cleanup must run.
    // Only the records after that kill, and only the cut step's: the sweep's other kills inside
    // commands may find theirs done ("took effect") or clean up other steps.
    let (at, cut) = figures.join_cut.clone().unwrap_or_else(|| panic!("the sweep cut a join after its member add: {figures:?}"));
    let journalled = records(&lab.executor_dir());
    let after = &journalled[at.min(journalled.len())..];
    let cleanup = format!("cleanup:{cut}");
    let cleaned = after.iter().any(|r| matches!(&r.event, Event::CommandStarted { step, .. } if *step == cleanup));
    let skipped = after
        .iter()
        .any(|r| matches!(&r.event, Event::CommandFinished { step, output, .. } if *step == cut && output.starts_with("took effect")));
    assert!(cleaned && !skipped, "the resume cleaned the join cut in {cut} up (found done: {skipped}): {}", lab.log_tail());
    assert_nothing_twice_and_backups_intact(&lab);
    // Every master a started voter, as in a run never killed.
    let file = lab.standing["scenario_file"].as_str().expect("scenario_file");
    let t = Topology::new(&parse_scenario(&std::fs::read_to_string(file).expect("the lab's scenario")).expect("it parses"));
    let masters = t.target_masters().len() as usize;
    let members = std::process::Command::new("etcdctl")
        .args(["--endpoints", std::fs::read_to_string(root.join("etcd-endpoints")).expect("endpoints").trim(), "member", "list"])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl runs");
    let list = String::from_utf8_lossy(&members.stdout);
    let voters = list.lines().filter(|l| l.contains(", started, ") && l.ends_with(", false")).count();
    assert_eq!(voters, masters, "every master a started voter: {list}");
    let down = lab.down();
    assert!(down.status.success(), "plan lab down: {}", text(&down));
    assert_nothing_left(&root, &pids);
}

fn every() -> usize {
    match std::env::var("PLAN_KILL_SWEEP").as_deref() {
        Ok("every") => 1,
        Ok(n) => n.parse().unwrap_or(SAMPLE_EVERY),
        Err(_) => SAMPLE_EVERY,
    }
}

/// The scenario swept: `PLAN_KILL_SWEEP_SCENARIO` (a file in `scenarios/`), else homelab-rightsized.
fn swept_scenario() -> String {
    std::env::var("PLAN_KILL_SWEEP_SCENARIO").unwrap_or_else(|_| "homelab-rightsized.yaml".to_string())
}

#[test]
fn the_executor_killed_and_resumed_against_a_standing_lab_completes_with_nothing_run_twice() {
    kill_sweep(&swept_scenario(), every());
}

#[test]
fn two_standing_labs_of_one_scenario_run_at_once_and_go_down_clean() {
    if !fixture_hosts_run() {
        return;
    }
    let mut first = StandingLab::up(&scenario("loopback.yaml"));
    let mut second = StandingLab::up(&scenario("loopback.yaml"));
    let (a, b) = (first.root(), second.root());
    assert_ne!(a, b);
    let ssh = |lab: &StandingLab| lab.standing["connection"]["workstation"].as_str().expect("workstation").to_string();
    let range = |lab: &StandingLab| lab.standing["connection"]["loopback_range"].as_str().expect("loopback_range").to_string();
    assert_ne!(range(&first), range(&second), "each lab on a loopback range of its own");
    for lab in [&first, &second] {
        // 127.N.0.0/16: the workstation, and every address the lab moved, in its own range.
        let prefix = range(lab).strip_suffix("0.0/16").expect("127.N.0.0/16").to_string();
        assert!(ssh(lab).starts_with(&format!("root@{prefix}")), "{} in {}", ssh(lab), range(lab));
        let moved = lab.standing["connection"]["moved_to_loopback"].as_array().expect("moved").clone();
        assert!(
            moved.iter().all(|m| m.as_str().and_then(|m| m.split_once(" -> ")).is_some_and(|(_, to)| to.starts_with(&prefix))),
            "{moved:?}"
        );
    }
    assert_documented(&first.standing);
    let (pa, pb) = (processes_naming(&a), processes_naming(&b));
    let status = run(&["lab", "status", "--state-dir", &first.dir.display().to_string()]);
    assert!(String::from_utf8_lossy(&status.stdout).contains(": up"), "{}", text(&status));
    assert!(first.down().status.success());
    assert_nothing_left(&a, &pa);
    assert!(processes_naming(&b).len() >= 5, "the other lab runs on");
    assert!(second.down().status.success());
    assert_nothing_left(&b, &pb);
}

/// Every field docs/lab.md documents for `standing.json` is in it, and every field in it is
/// documented.
fn assert_documented(standing: &Value) {
    let doc = include_str!("../../docs/lab.md");
    let section = doc.split("`standing.json` (also").nth(1).expect("docs/lab.md documents standing.json");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut documented = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split('|').nth(1).unwrap_or_default();
        for path in cell.split('`').skip(1).step_by(2) {
            documented.insert(path.trim_end_matches("[]").to_string());
        }
    }
    let mut printed = BTreeSet::new();
    for (key, value) in standing.as_object().expect("an object") {
        match value.as_object() {
            Some(inner) => printed.extend(inner.keys().map(|k| format!("{key}.{k}"))),
            None => {
                printed.insert(key.clone());
            }
        }
    }
    assert_eq!(documented, printed, "docs/lab.md's standing.json table and the file");
}

#[test]
fn a_killed_standing_lab_is_cleared_by_down_and_comes_up_again_in_its_directory() {
    if !fixture_hosts_run() {
        return;
    }
    let mut lab = StandingLab::up(&scenario("loopback.yaml"));
    let root = lab.root();
    let pids = processes_naming(&root);
    // The directory as another spelling names it: the same lab.
    let spelled = format!("{}/", lab.dir.display());
    // `--via-execute`, the flag written before the executor's lab was the default, says the same.
    let again = run(&["--scenario", &scenario("loopback.yaml"), "lab", "up", "--via-execute", "--state-dir", &spelled]);
    assert_eq!(again.status.code(), Some(2), "a second up in the same directory is refused: {}", text(&again));
    let pid = lab.standing["pid"].as_u64().expect("pid") as u32;
    assert!(process::signal(pid, process::Signal::Kill), "the lab process is SIGKILLed");
    assert_nothing_left_running(&pids);
    let status = run(&["lab", "status", "--state-dir", &spelled]);
    assert_eq!(status.status.code(), Some(1), "a lab whose process is gone: {}", text(&status));
    let down = run(&["lab", "down", "--state-dir", &spelled]);
    assert!(down.status.success() && String::from_utf8_lossy(&down.stdout).contains("was gone already"), "{}", text(&down));
    assert!(!root.exists(), "down swept {}", root.display());
    lab.down = true;
    let mut second = StandingLab::up_in(&scenario("loopback.yaml"), lab);
    assert!(processes_naming(&second.root()).len() >= 5, "up again in the same directory");
    assert!(second.down().status.success());
}

fn assert_nothing_left_running(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(GONE_WAIT_S);
    while pids.iter().any(|p| process::is_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive: Vec<u32> = pids.iter().copied().filter(|p| process::is_alive(*p)).collect();
    assert!(alive.is_empty(), "the kernel ended every process of the killed lab: {alive:?}");
}
