//! `plan lab up`: the executor's lab kept up by a process of its own, so that
//! `plan execute` runs against it from another shell, is killed, resumes, and `plan lab down`
//! stops it.
//!
//! The lab's state directory holds `standing.json` (the lab process's pid and how to reach the
//! lab), `scenario.yaml` (the scenario on the lab's loopback range, what `plan execute` reads),
//! `lab.log` (the lab process's output) and `executor/` (the journal `plan execute` keeps).

use crate::input::Loaded;
use crate::Failure;
use plan_lab::executor_rehearsal::{Connection, StandingLab};
use plan_lab::process::{self, Lifetime, Signal};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lab process's record in its state directory, written once the lab is up.
pub const STANDING_FILE: &str = "standing.json";
/// The scenario on the lab, in the state directory.
pub const SCENARIO_FILE: &str = "scenario.yaml";
const LOG_FILE: &str = "lab.log";
/// Where `plan execute` keeps its journal, in the state directory.
pub const EXECUTOR_DIR: &str = "executor";
/// Bound on the wait for the lab process to be up (fixture hosts, etcd, HAProxy, stand-ins).
const UP_TIMEOUT_S: u64 = 180;
/// Bound on the wait for the lab process to stop everything after SIGTERM.
const DOWN_TIMEOUT_S: u64 = 60;
/// How often the lab process looks whether it was asked to stop.
const SERVE_POLL_MS: u64 = 100;

/// `standing.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Standing {
    pub pid: u32,
    pub scenario: String,
    pub scenario_file: PathBuf,
    pub executor_state_dir: PathBuf,
    pub connection: Connection,
    /// `plan` arguments that run the whole plan against the lab, unattended
    /// (`PLAN_LOOPBACK_ONLY=1` in the environment).
    pub execute: Vec<String>,
}

impl Standing {
    /// Reads `dir`'s record; None when the lab in `dir` is not a standing one.
    pub fn read(dir: &Path) -> Result<Option<Standing>, Failure> {
        let path = dir.join(STANDING_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                Failure::Input(format!(
                    "lab: {} is damaged ({e}); plan lab down --state-dir {} stops what runs",
                    path.display(),
                    dir.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::Input(format!("lab: {}: {e}", path.display()))),
        }
    }

    /// Whether the lab process runs (its pid is a `plan lab --state-dir DIR serve` of this
    /// directory, read argument by argument: a pid reused by another program is not it).
    pub fn running(&self, dir: &Path) -> bool {
        serve_processes(dir).contains(&self.pid)
    }
}

/// Whether `dir` holds a standing lab's record (readable or not).
pub fn recorded(dir: &Path) -> bool {
    dir.join(STANDING_FILE).exists()
}

/// The `plan lab --state-dir DIR serve` processes of `dir` (`dir` in full, as `up` gives it).
fn serve_processes(dir: &Path) -> Vec<u32> {
    let wanted = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let names_dir = args.windows(2).any(|w| w[0] == b"--state-dir" && w[1] == wanted.as_bytes());
            names_dir && args.contains(&b"lab".as_slice()) && args.contains(&b"serve".as_slice()) && process::is_alive(*pid)
        })
        .collect()
}

/// Stops the lab processes `pids`: SIGTERM, then SIGKILL after [`DOWN_TIMEOUT_S`].
fn stop(pids: &[u32]) {
    for &pid in pids {
        process::signal(pid, Signal::Term);
    }
    for &pid in pids {
        if !process::wait_gone(pid, None, Duration::from_secs(DOWN_TIMEOUT_S)) {
            process::signal(pid, Signal::Kill);
            process::wait_gone(pid, None, Duration::from_secs(5));
        }
    }
}

fn lab_failure(e: plan_lab::LabError) -> Failure {
    Failure::Input(format!("lab: {e}"))
}

/// `plan lab up`: starts the lab process and waits until the lab is up. `dir` is
/// in full, as `plan lab` makes it.
pub fn up(loaded: &Loaded, dir: &Path) -> Result<(), Failure> {
    let dir = dir.to_path_buf();
    if let Some(pid) = serve_processes(&dir).first() {
        return Err(Failure::Input(format!(
            "lab: a lab is up in {} (pid {pid}): plan lab down --state-dir {0}, or pass another --state-dir",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Failure::Input(format!("lab: state directory {}: {e}", dir.display())))?;
    for stale in [STANDING_FILE, SCENARIO_FILE, LOG_FILE] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    // An earlier lab's run names that lab's directory: kept, out of the new run's way.
    let executor = dir.join(EXECUTOR_DIR);
    if executor.exists() {
        let aside = dir.join(format!("{EXECUTOR_DIR}.before-{}", std::process::id()));
        std::fs::rename(&executor, &aside).map_err(|e| Failure::Input(format!("lab: move {} aside: {e}", executor.display())))?;
        crate::output::eprint(&format!("plan: the earlier lab's journal is kept in {}\n", aside.display()));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::Input(format!("lab: this program's path: {e}")))?;
    let mut args = Vec::new();
    if let Some(scenario) = &loaded.scenario_path {
        let scenario = std::path::absolute(scenario).unwrap_or_else(|_| scenario.clone());
        args.extend(["--scenario".to_string(), scenario.display().to_string()]);
    }
    args.extend(["lab".to_string(), "--state-dir".to_string(), dir.display().to_string(), "serve".to_string()]);
    let log = dir.join(LOG_FILE);
    let mut child = process::spawn(&exe, &args, &log, Lifetime::Detached).map_err(lab_failure)?;
    let deadline = Instant::now() + Duration::from_secs(UP_TIMEOUT_S);
    let standing = loop {
        if let Some(standing) = Standing::read(&dir)? {
            break standing;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Failure::Input(format!("lab: the lab did not come up ({status}): {}", process::log_tail(&log, 12).trim())));
        }
        if Instant::now() > deadline {
            stop(&[child.id()]);
            let _ = child.try_wait();
            return Err(Failure::Input(format!("lab: the lab was not up within {UP_TIMEOUT_S} s: {}", process::log_tail(&log, 12).trim())));
        }
        std::thread::sleep(Duration::from_millis(SERVE_POLL_MS));
    };
    crate::output::print(&up_text(&dir, &standing))
}

fn up_text(dir: &Path, standing: &Standing) -> String {
    let c = &standing.connection;
    let mut out =
        format!("Lab of {} up in {} (lab process {}; hosts in {}", standing.scenario, dir.display(), standing.pid, c.root.display());
    if !c.loopback_range.is_empty() {
        out.push_str(&format!(" on {}", c.loopback_range));
    }
    out.push_str(")\n");
    for moved in &c.moved_to_loopback {
        out.push_str(&format!("  {moved}\n"));
    }
    out.push_str(&format!(
        "Run the plan against it:\n  PLAN_LOOPBACK_ONLY=1 plan {}\nStop it with: plan lab down --state-dir {}\n",
        standing.execute.join(" "),
        dir.display()
    ));
    out
}

/// The lab process (`plan lab serve`, hidden): starts the lab, writes its record, and holds it
/// up until SIGTERM or SIGINT, then stops every process of it and removes its directory.
pub fn serve(loaded: &Loaded, dir: &Path) -> Result<(), Failure> {
    let stop = plan_exec::interrupt::install_for(plan_exec::interrupt::AfterStop::LabDown);
    let lab = StandingLab::up(&loaded.topology, &loaded.plan).map_err(lab_failure)?;
    let scenario =
        serde_yaml_ng::to_string(&lab.topology().scenario).map_err(|e| Failure::Input(format!("lab: the lab's scenario: {e}")))?;
    same_plan_from_the_file(&lab, &scenario)?;
    let scenario_file = dir.join(SCENARIO_FILE);
    write(&scenario_file, &scenario)?;
    let executor_state_dir = dir.join(EXECUTOR_DIR);
    let connection = lab.connection();
    let mut execute = vec!["--scenario".to_string(), scenario_file.display().to_string(), "execute".to_string()];
    execute.extend(connection.execute_args(&executor_state_dir));
    execute.push("--yes".to_string());
    let standing = Standing {
        pid: std::process::id(),
        scenario: loaded.topology.scenario.name.clone(),
        scenario_file,
        executor_state_dir,
        connection,
        execute,
    };
    let text = serde_json::to_string_pretty(&standing).map_err(|e| Failure::Input(format!("lab: {e}")))?;
    // Written whole, then renamed: `plan lab up` never reads half a record.
    let partial = dir.join(format!("{STANDING_FILE}.partial"));
    write(&partial, &text)?;
    std::fs::rename(&partial, dir.join(STANDING_FILE)).map_err(|e| Failure::Input(format!("lab: {}: {e}", dir.display())))?;
    tracing::info!(pid = standing.pid, root = %lab.root().display(), "the lab is up");
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(SERVE_POLL_MS));
    }
    let _ = std::fs::remove_file(dir.join(STANDING_FILE));
    // Stops the kubelet thread, the stand-ins, etcd, HAProxy and every host; removes the lab's directory.
    drop(lab);
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::Input(format!("lab: {}: {e}", path.display())))
}

/// The plan `plan execute` will derive from the lab's scenario file must be the plan the lab was
/// set up for; a scenario field lost in writing the file would otherwise surface as drift halfway.
fn same_plan_from_the_file(lab: &StandingLab, scenario: &str) -> Result<(), Failure> {
    let reread =
        plan_model::validate::parse_scenario(scenario).map_err(|e| Failure::Input(format!("lab: the lab's scenario file: {e}")))?;
    let from_file = plan_model::planner::generate(&plan_model::topology::Topology::new(&reread));
    let rendered = |plan: &plan_model::plan::Plan| -> Vec<String> {
        plan.steps.iter().flat_map(|s| s.commands.iter().map(move |c| format!("{} {}", s.id, c.run))).collect()
    };
    let (file, lab_plan) = (rendered(&from_file), rendered(lab.plan()));
    if let Some((a, b)) = file.iter().zip(&lab_plan).find(|(a, b)| a != b) {
        return Err(Failure::Input(format!(
            "lab: the lab's scenario file gives another plan than the lab's: `{a}` where the lab has `{b}`"
        )));
    }
    if file.len() != lab_plan.len() {
        return Err(Failure::Input(format!(
            "lab: the lab's scenario file gives {} commands, the lab's plan {}",
            file.len(),
            lab_plan.len()
        )));
    }
    Ok(())
}

/// `plan lab down` of a standing lab: SIGTERM to the lab process, then the wait for it to stop
/// everything. A lab process already gone (killed) leaves its scratch directory to the next
/// lab's sweep, which runs here too.
pub fn down(dir: &Path, standing: &Standing) -> Result<(), Failure> {
    let was_running = standing.running(dir);
    stop(&serve_processes(dir));
    let _ = std::fs::remove_file(dir.join(STANDING_FILE));
    // A lab killed a moment ago may still be going (its claim released, its last processes gone,
    // a little after its own process died): the sweep is tried again for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(plan_lab::scratch::SWEEP_KILL_WAIT_MS);
    loop {
        plan_lab::scratch::sweep_stale(Path::new(plan_lab::scratch::SCRATCH_DIR));
        if !standing.connection.root.exists() || std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left = standing.connection.root.exists();
    crate::output::print(&format!(
        "Lab in {} down: lab process {} {}{}\n",
        dir.display(),
        standing.pid,
        if was_running { "stopped" } else { "was gone already (its processes died with it); its directory swept" },
        if left { format!("; {} is still there", standing.connection.root.display()) } else { String::new() }
    ))?;
    if left {
        return Err(Failure::Violation(format!("the lab's directory {} was left behind", standing.connection.root.display())));
    }
    Ok(())
}

/// `plan lab down` where the record cannot be read: the lab processes of `dir` are found by
/// their command line, stopped, and the record and leftovers removed.
pub fn down_unrecorded(dir: &Path) -> Result<(), Failure> {
    let pids = serve_processes(dir);
    stop(&pids);
    let _ = std::fs::remove_file(dir.join(STANDING_FILE));
    plan_lab::scratch::sweep_stale(Path::new(plan_lab::scratch::SCRATCH_DIR));
    crate::output::print(&format!(
        "Lab in {} down: its record could not be read; {} lab process(es) found by their command line stopped, leftovers swept\n",
        dir.display(),
        pids.len()
    ))
}

/// `plan lab status` of a standing lab: exit 1 when its process is gone.
pub fn status(dir: &Path, standing: &Standing) -> Result<(), Failure> {
    crate::output::print(&status_text(dir, standing))?;
    if standing.running(dir) {
        Ok(())
    } else {
        Err(Failure::Violation(format!("the lab in {} is not running: plan lab down --state-dir {0} clears it", dir.display())))
    }
}

fn status_text(dir: &Path, standing: &Standing) -> String {
    let state = if standing.running(dir) { "up" } else { "not running (its process is gone)" };
    let mut out = format!("Lab of {} in {}: {state} (lab process {})\n", standing.scenario, dir.display(), standing.pid);
    let c = &standing.connection;
    out.push_str(&format!("  hosts in {}, ssh config {}\n  workstation {}\n", c.root.display(), c.ssh_config.display(), c.workstation));
    out.push_str(&format!("  etcd {}\n  journal {}\n", c.etcd_endpoints, standing.executor_state_dir.display()));
    out
}

/// `plan lab by-hand`: the by-hand work the executor's run on the standing lab waits for (at a
/// prompt) or halted at (`--yes`), carried out on the lab as the rehearsal's operator carries it
/// out. The run must be the planner's plan of the lab's scenario file.
pub fn by_hand(dir: &Path, standing: &Standing) -> Result<(), Failure> {
    use plan_exec::invocation::Work;
    use plan_exec::target::Place;
    let text = std::fs::read_to_string(&standing.scenario_file)
        .map_err(|e| Failure::Input(format!("lab: {}: {e}", standing.scenario_file.display())))?;
    let scenario = plan_model::validate::parse_scenario(&text).map_err(|e| Failure::Input(format!("lab: the lab's scenario file: {e}")))?;
    let t = plan_model::topology::Topology::new(&scenario);
    let contents = plan_exec::journal::read(&standing.executor_state_dir).map_err(crate::execute::exec_failure)?;
    let progress = plan_exec::journal::Progress::from_records(&contents.records);
    // After a go-forward the run follows the plan without the machines written off.
    let mut journal = plan_exec::journal::Journal::in_memory();
    journal.records = contents.records;
    let planned = plan_model::planner::generate(&t);
    let plan = plan_exec::runner::plan_to_run(&t, &planned, &journal).map_err(crate::execute::exec_failure)?.unwrap_or(planned);
    if progress.plan_digest.as_deref() != Some(plan_exec::runner::plan_digest(&plan).as_str()) {
        return Err(Failure::Input(format!(
            "lab: the run journalled in {} is not the planner's plan of the lab's scenario (or none began): do its by-hand work yourself, in {}",
            standing.executor_state_dir.display(),
            standing.connection.root.display()
        )));
    }
    let not_waiting = |why: String| Failure::Input(format!("lab: the run in {} waits for no by-hand work: {why}", dir.display()));
    // Halted at by-hand work: the commands the halt names (the one it journalled and the by-hand
    // commands right after it). Under way (at a prompt): the first command not done, when it is
    // by-hand work.
    let (step_id, j) = match (&progress.halted, &progress.interrupted) {
        (Some(halt), _) => match halt.by_hand {
            Some(j) => (halt.step.clone(), j),
            None => return Err(not_waiting(format!("it halted at {}: {}", halt.step, halt.reason))),
        },
        (None, Some(step)) => (step.clone(), (0..).find(|j| !progress.command_done(step, *j)).unwrap_or(0)),
        (None, None) => return Err(not_waiting("no halt, no step under way".to_string())),
    };
    let index =
        plan.steps.iter().position(|s| s.id == step_id).ok_or_else(|| Failure::Input(format!("lab: the plan has no step {step_id}")))?;
    let invocations = &plan_exec::invocation::compile(&t, &plan)[index];
    if !invocations.get(j).is_some_and(|i| i.is_manual()) {
        return Err(not_waiting(format!("command {} of step {step_id} is not by-hand work", j + 1)));
    }
    let run = if progress.halted.is_some() { plan_exec::invocation::by_hand_run(invocations, j) } else { j..j + 1 };
    // The host the step's shell commands ran on before it (0.2's kubeadm configuration is edited
    // where 0.2 exported it), else the first after it.
    let host_of = |i: &plan_exec::invocation::Invocation| match &i.work {
        Work::Shell { place: Place::Host(h), .. } => Some(h.name.clone()),
        _ => None,
    };
    let host = invocations[..j].iter().rev().find_map(host_of).or_else(|| invocations[j..].iter().find_map(host_of));
    let mut out = String::new();
    for k in run {
        let Work::Manual { task, .. } = &invocations[k].work else { unreachable!("by_hand_run holds by-hand work only") };
        let done =
            plan_lab::executor_rehearsal::carry_out_by_hand(&standing.connection.root, host.as_deref(), &t, task).map_err(lab_failure)?;
        out.push_str(&format!("by hand ({step_id}, command {}): {done}\n", k + 1));
    }
    out.push_str("Answer the prompt, or after a halt: plan … execute --resume --by-hand-done\n");
    crate::output::print(&out)
}
