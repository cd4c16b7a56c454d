//! `plan execute`: the executor at the command line, and what `plan status` and `plan recover` share with it.

use crate::input::{parse_duration, Loaded};
use crate::logging::JsonLog;
use crate::Failure;
use indicatif::{ProgressBar, ProgressStyle};
use plan_exec::etcd::{EtcdProbe, EtcdctlTimeouts};
use plan_exec::guard::Guard;
use plan_exec::haproxy::LbProbe;
use plan_exec::invocation::{Invocation, Work};
use plan_exec::journal::Journal;
use plan_exec::kubernetes::KubeconfigSource;
use plan_exec::lock::Lock;
use plan_exec::observe::Probes;
use plan_exec::runner::{BetweenSteps, Operator, Outcome, Recovery, RunOptions, Runner};
use plan_exec::ssh::{OpensshTransport, SshOptions};
use plan_exec::target::Place;
use plan_exec::transport::{Completed, Dispatch, LocalTransport, Recorder, Workstation};
use plan_exec::workstation::WorkstationHost;
use plan_exec::ExecError;
use plan_model::plan::{format_duration, Phase, Step};
use plan_sim::explore::{self, Verdict};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default wait for a host that does not answer: the twin's reboot time
/// (`plan_model::fault::NODE_REBOOT_S`, 90 s; a test pins the two together).
const HOST_WAIT_DEFAULT: &str = "90s";
/// Default deadline of one command (kubectl wait in the plan waits up to 180 s).
const COMMAND_TIMEOUT_DEFAULT: &str = "15m";

#[derive(Debug, clap::Args)]
pub struct ExecuteArgs {
    /// Print the exact commands per host, in order, secrets redacted; connect to nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: only the commands that run on this host (inventory name, short form,
    /// `workstation`, `infra-repo` or `operator`).
    #[arg(long, value_name = "HOST", requires = "dry_run")]
    pub host: Option<String>,
    /// Continue the run the journal holds, after a crash, Ctrl-C or a fixed halt.
    #[arg(long, conflicts_with = "dry_run")]
    pub resume: bool,
    /// With --resume: run every command of the interrupted step again, also those that succeeded
    /// (after renewing what they copy, such as an expired certificate key and join token).
    #[arg(long, requires = "resume")]
    pub rerun_step: bool,
    /// With --resume: the by-hand work the run halted at (`needs the operator: …`, under --yes) is
    /// done. That one command is journalled as done by hand; the next by-hand work is asked for
    /// (or halts the run under --yes) as ever.
    #[arg(long, requires = "resume")]
    pub by_hand_done: bool,
    /// Do not ask before each phase (commands that need a person then halt the run).
    #[arg(long)]
    pub yes: bool,
    /// How long what does not answer (a host, a service, an etcd member's health) is waited for,
    /// before a step and at a halt (it may be rebooting or cut off for a while), before it is
    /// taken as dead (0s: at once); default: the twin's reboot time.
    #[arg(long, value_name = "DURATION", default_value = HOST_WAIT_DEFAULT)]
    pub wait_for_host: String,
    /// Run a plan that `plan check` rejects; the reason is written to the journal.
    #[arg(long, value_name = "REASON")]
    pub override_check: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub observe: ObserveArgs,
}

/// An observer the operator may turn off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObserverName {
    Etcd,
    Lb,
    Kube,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_host_wait_is_the_twins_reboot_time() {
        let wait = crate::input::parse_duration(super::HOST_WAIT_DEFAULT).expect("a duration");
        assert_eq!(wait, plan_model::fault::NODE_REBOOT_S);
    }

    /// A phase put to a person (no `--yes`) makes its first step look at the hosts afresh, once;
    /// under `--yes` nothing is asked and the look after the step before stands.
    #[test]
    fn a_phase_put_to_a_person_makes_its_first_step_look_afresh() {
        use plan_exec::runner::{BetweenSteps, Operator};
        let plan = plan_model::planner::generate(&plan_model::topology::Topology::new(
            &plan_model::validate::parse_scenario(include_str!("../scenarios/homelab.yaml")).expect("homelab"),
        ));
        let (phase, step) = (&plan.phases[1], &plan.steps[5]);
        for (yes, first) in [(false, BetweenSteps::Touched), (true, BetweenSteps::Untouched)] {
            let mut operator = super::TerminalOperator::new(yes, plan.steps.len());
            operator.bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            operator.confirm_phase(phase, &[step]);
            assert_eq!(operator.step_begins(step), first, "yes: {yes}");
            assert_eq!(operator.step_begins(step), BetweenSteps::Untouched, "the next step of the phase, yes: {yes}");
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// etcd client URL etcdctl dials on a master (steps that change etcd membership).
    #[arg(long, value_name = "URL", default_value = plan_exec::etcd::KUBEADM_ETCD_ENDPOINT)]
    pub etcd_endpoint: String,
    /// Directory on the master with etcd's ca.crt and healthcheck-client.{crt,key}; `none`: plain http.
    #[arg(long, value_name = "DIR", default_value = plan_exec::etcd::KUBEADM_ETCD_PKI)]
    pub etcd_pki: String,
    /// HAProxy's config file on the load balancer (steps that change the LB).
    #[arg(long, value_name = "PATH", default_value = plan_exec::haproxy::PFSENSE_HAPROXY_CONFIG)]
    pub haproxy_config: String,
    /// HAProxy's stats socket on the load balancer; `none`: the config file only.
    #[arg(long, value_name = "PATH", default_value = plan_exec::haproxy::PFSENSE_HAPROXY_SOCKET)]
    pub haproxy_socket: String,
    /// Kubeconfig for the Kubernetes API observer; default: $KUBECONFIG, else ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Turn an observer off (repeatable); its drift then goes unseen.
    #[arg(long, value_enum, value_name = "OBSERVER")]
    pub skip_observer: Vec<ObserverName>,
}

impl ObserveArgs {
    pub(crate) fn probes(&self, guard: Guard) -> Result<Probes, Failure> {
        let skip = |o: ObserverName| self.skip_observer.contains(&o);
        let none = |v: &str| v == "none";
        let etcd = EtcdProbe {
            endpoint: self.etcd_endpoint.clone(),
            pki: (!none(&self.etcd_pki)).then(|| self.etcd_pki.clone()),
            timeouts: EtcdctlTimeouts::default(),
        };
        etcd.validate().map_err(|e| Failure::Input(format!("--etcd-endpoint: {e}")))?;
        if !skip(ObserverName::Etcd) {
            // Refused before anything runs, not at the first step that observes etcd.
            // etcdctl takes a comma-separated list: each URL is judged.
            for url in etcd.endpoint.split(',') {
                guard.check_url("--etcd-endpoint", url.trim()).map_err(exec_failure)?;
            }
        }
        let lb = LbProbe {
            config: self.haproxy_config.clone(),
            stats_socket: (!none(&self.haproxy_socket)).then(|| self.haproxy_socket.clone()),
        };
        let kube = match &self.kubeconfig {
            Some(path) => KubeconfigSource::File(path.clone()),
            None => KubeconfigSource::Environment,
        };
        Ok(Probes {
            etcd: (!skip(ObserverName::Etcd)).then_some(etcd),
            lb: (!skip(ObserverName::Lb)).then_some(lb),
            kube: (!skip(ObserverName::Kube)).then_some(kube),
            guard,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// Where the journal, lock and JSON log live; default: .plan beside the scenario file
    /// (./.plan for the embedded scenario).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SshArgs {
    /// An ssh config file to use instead of ~/.ssh/config.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Run the plan's workstation and infra-repo commands on HOST over SSH instead of on this
    /// machine (HOST: a name the ssh config knows, or USER@NAME): the infra repo, kubectl and name
    /// resolution are HOST's; uploads read the infra repo's files there.
    #[arg(long, value_name = "HOST", value_parser = WorkstationHost::parse)]
    pub workstation: Option<WorkstationHost>,
    /// Deadline of each command (90s, 10m, 1h).
    #[arg(long, value_name = "DURATION", default_value = COMMAND_TIMEOUT_DEFAULT)]
    pub command_timeout: String,
}

/// The one message for an executor error, with the way on where the operator has one to take.
pub(crate) fn exec_failure(e: ExecError) -> Failure {
    match e {
        ExecError::JournalDamaged { .. } => Failure::Input(format!(
            "{e}: `plan status --repair` keeps the records before that line and moves the rest aside (docs/execute.md, \"Journal damage\")"
        )),
        ExecError::JournalLost { .. } => Failure::Input(format!(
            "{e}: the hosts may be part-way through the plan; put the journal back, or, once the hosts are known to be as the plan's first step expects, remove that marker file to start afresh"
        )),
        ExecError::SshConfigRefused { .. } => {
            Failure::Input(format!("{e}; pass --ssh-config FILE naming a configuration without it (docs/execute.md, \"The loopback guard\")"))
        }
        ExecError::Input(_)
        | ExecError::Locked { .. }
        | ExecError::UnsafePath { .. }
        | ExecError::NothingToUndo { .. }
        | ExecError::NoSuchRecovery { .. }
        | ExecError::RecoveryRefused { .. } => Failure::Input(e.to_string()),
        other => Failure::Violation(format!("halted: {other}")),
    }
}

/// Tells the operator what the journal cut off its damaged tail when it was opened.
pub(crate) fn report_cut(journal: &Journal) {
    let Some(cut) = &journal.cut else { return };
    let d = &cut.damage;
    match &cut.aside {
        None => crate::output::eprint(&format!("plan: note: the journal's last write was torn ({}); cut at line {}\n", d.reason, d.line)),
        Some(aside) => crate::output::eprint(&format!(
            "plan: note: the journal's damaged tail (line {}, {} line(s), {} bytes: {}) was cut and kept in {}\n",
            d.line,
            d.lines,
            d.bytes,
            d.reason,
            aside.display()
        )),
    }
}

pub(crate) fn state_dir(global_scenario: Option<&Path>, state: &StateArgs) -> PathBuf {
    if let Some(dir) = &state.state_dir {
        return dir.clone();
    }
    match global_scenario.and_then(Path::parent) {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(".plan"),
        _ => PathBuf::from(".plan"),
    }
}

pub(crate) fn prepare_state_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::Input(format!("state directory {}: {e}", dir.display())))
}

/// Sends tracing spans and events (INFO and above) as JSON lines to `execute.log.jsonl` in the
/// state directory.
pub(crate) fn start_json_log(log: &JsonLog, dir: &Path) -> Result<(), Failure> {
    log.open(&dir.join("execute.log.jsonl"))
}

struct CheckVerdict {
    passed: bool,
    summary: String,
}

fn run_check(loaded: &Loaded) -> CheckVerdict {
    let report = explore::check(&loaded.topology, &loaded.plan, explore::CheckOptions { depth: 1 });
    let mut invariants: Vec<&str> = report.violations.iter().map(|v| v.invariant.as_str()).collect();
    invariants.dedup();
    CheckVerdict {
        passed: report.verdict == Verdict::Pass,
        summary: format!("{} violation(s): {}", report.violations.len(), invariants.join(", ")),
    }
}

pub fn run(loaded: &Loaded, scenario: Option<&Path>, options: &ExecuteArgs, log: &JsonLog) -> Result<(), Failure> {
    let check = run_check(loaded);
    if options.dry_run {
        return dry_run(loaded, options, &check);
    }
    need_a_person_or_yes(options.yes)?;
    refuse_unchecked(options, &check)?;
    let timeout = Duration::from_secs(parse_duration(&options.ssh.command_timeout)? as u64);
    guard_every_host(loaded, &options.ssh)?;
    let dir = state_dir(scenario, &options.state);
    prepare_state_dir(&dir)?;
    let _lock = Lock::take(&dir).map_err(exec_failure)?;
    let _cluster_lock = Lock::take_cluster(&loaded.topology, &dir, &plan_exec::lock::cluster_lock_dir()).map_err(exec_failure)?;
    close_stale_masters(&dir)?;
    let mut transport = transport(&options.ssh, &dir)?;
    if !options.resume {
        preflight_hosts(loaded, options, &mut transport)?;
    }
    let mut journal = Journal::open(&dir).map_err(exec_failure)?;
    report_cut(&journal);
    start_json_log(log, &dir)?;
    let mut operator = TerminalOperator::new(options.yes, loaded.plan.steps.len());
    let run_options = RunOptions {
        resume: options.resume,
        rerun_step: options.rerun_step,
        check_passed: check.passed,
        override_check: options.override_check.clone(),
        host_wait: Duration::from_secs(parse_duration(&options.wait_for_host)? as u64),
        stop: Some(plan_exec::interrupt::install()),
        by_hand_done: options.by_hand_done,
        ..RunOptions::new(timeout, options.observe.probes(Guard::from_env())?)
    };
    if !check.passed {
        crate::output::eprint(&format!(
            "plan: {} plan check rejects this plan ({}); running it on --override-check\n",
            crate::output::warning(),
            check.summary
        ));
    }
    // A resume after a go-forward follows the plan without the machines written off; a fresh
    // run, the plan.
    let going_on = match options.resume {
        true => plan_exec::runner::plan_to_run(&loaded.topology, &loaded.plan, &journal).map_err(exec_failure)?,
        false => None,
    };
    let plan = going_on.as_ref().unwrap_or(&loaded.plan);
    let outcome = Runner::new(&loaded.topology, plan, &mut transport, &mut journal, &mut operator, run_options).run();
    operator.bar.finish_and_clear();
    report_outcome(outcome.map_err(exec_failure)?, loaded, &journal)
}

/// Refuses to run a plan the check rejects, unless the operator overrides the check with a reason.
fn refuse_unchecked(options: &ExecuteArgs, check: &CheckVerdict) -> Result<(), Failure> {
    if !check.passed && options.override_check.is_none() {
        return Err(Failure::Violation(format!(
            "plan check rejects this plan ({}): refusing to execute it; run `plan check` for the report, or pass --override-check REASON to run it anyway (the reason is journalled)",
            check.summary
        )));
    }
    if let Some(reason) = &options.override_check {
        if reason.trim().is_empty() {
            return Err(Failure::Input("--override-check needs a reason".to_string()));
        }
    }
    Ok(())
}

/// Before the first step: every host the plan's commands reach answers, with sudo. A failure is
/// no halt: nothing ran, no journal was begun, nothing is proposed to undo.
fn preflight_hosts(loaded: &Loaded, options: &ExecuteArgs, transport: &mut Dispatch<OpensshTransport>) -> Result<(), Failure> {
    let probes = options.observe.probes(Guard::from_env())?;
    guard_kube_api(&probes)?;
    let mut observer = plan_exec::observe::Observer::new(probes);
    let report = crate::preflight::check(loaded, transport, &mut observer, plan_exec::preflight::Reach::Hosts)?;
    if !report.passed() {
        crate::output::print(&crate::preflight::text(&report))?;
        return crate::preflight::verdict(&report);
    }
    Ok(())
}

/// What the run came to, told the operator: all done, declined, or halted with the way on.
fn report_outcome(outcome: Outcome, loaded: &Loaded, journal: &Journal) -> Result<(), Failure> {
    match outcome {
        Outcome::Completed => {
            crate::output::print(&format!(
                "plan execute: all {} steps done; journal {}\n",
                loaded.plan.steps.len(),
                journal.path().display()
            ))?;
            Ok(())
        }
        Outcome::Declined { phase } => Err(Failure::Violation(format!(
            "stopped before phase {phase} at the operator's request; nothing of it ran; `plan execute --resume` continues"
        ))),
        Outcome::Halted(halt) => {
            let mut out = format!("HALTED at step {}: {}\n", halt.step, halt.reason);
            if !halt.drift.is_empty() {
                let _ = writeln!(out, "Drift (the hosts against the twin):");
                for d in &halt.drift {
                    let _ = writeln!(out, "  {d}");
                }
            }
            write_recovery(&mut out, &halt.recovery);
            write_secrets_left(&mut out, &halt.secrets_left);
            if halt.by_hand.is_some() {
                let silent: Vec<&str> =
                    halt.drift.iter().filter(|d| plan_exec::observe::is_unreachable(d)).map(|d| d.node.as_str()).collect();
                if !silent.is_empty() {
                    // A halt at by-hand work does not wait for what is silent: nothing failed.
                    let _ = writeln!(
                        out,
                        "Not waited for, since nothing failed here: {} did not answer, and the recovery above takes it as down; see to it before you go on (`plan recover` looks again).",
                        silent.join(", ")
                    );
                }
                let _ = writeln!(
                    out,
                    "Do it by hand (every task named above), then `plan execute --resume --by-hand-done` (it goes on from there); or undo with `plan recover`."
                );
            } else if halt.recovery.none_applies() {
                // Nothing the twin weighed can be carried out: `plan recover` would refuse.
                let _ = writeln!(
                    out,
                    "No recovery can be carried out here: restore by hand (the worst case: the first master's VM from its snapshot, etcd from the backup), then start again with another --state-dir (this one keeps the halted run); or fix the cause and `plan execute --resume`."
                );
            } else {
                let _ = writeln!(out, "Undo with `plan recover` (`--list` shows every recovery, `--choose N` picks one), or fix the cause and `plan execute --resume`.");
            }
            crate::output::print(&out)?;
            Err(Failure::Violation(format!("the run halted at step {}", halt.step)))
        }
    }
}

/// Where the halt's sweep of the join secrets did not reach: the operator finishes it there.
fn write_secrets_left(out: &mut String, left: &[String]) {
    if left.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "The join secrets could not be swept on {}: there, delete {} and {} and `kubeadm token delete` the tokens described {} (a resume makes new ones).",
        left.join(", "),
        plan_model::operation::JOIN_COMMAND_FILE,
        plan_model::operation::CERTIFICATE_KEY_FILE,
        plan_model::operation::JOIN_TOKEN_DESCRIPTION
    );
}

fn write_recovery(out: &mut String, recovery: &Recovery) {
    let best = recovery.ranking.iter().find(|c| c.best).map(|c| c.number);
    match recovery.candidate {
        Some(n) if best != Some(n) => {
            let _ = writeln!(out, "The recovery chosen (--choose {n}): {n}. {}", recovery.describe());
        }
        Some(n) => {
            let _ = writeln!(out, "The twin's recovery for this point: {n}. {}", recovery.describe());
        }
        None => {
            let _ =
                writeln!(out, "The twin's recovery for this point: {} (none of its candidates can be carried out)", recovery.describe());
        }
    }
    if recovery.invocations.is_empty() {
        let _ = writeln!(out, "  (nothing to undo)");
    }
    for (description, invocation) in recovery.descriptions.iter().zip(&recovery.invocations) {
        let _ = writeln!(out, "  - {description}\n      {:<12} {}", invocation.place_label(), invocation.display());
    }
    let chosen = recovery.ranking.iter().find(|c| Some(c.number) == recovery.candidate);
    for skipped in chosen.map(|c| c.passed_over.as_slice()).unwrap_or_default() {
        let _ = writeln!(out, "  - passed over, its machine is down: {skipped}");
    }
    if recovery.ranking.len() > 1 {
        crate::recover::write_choices(out, &recovery.ranking, crate::recover::Detail::Summary);
    }
}

/// The Kubernetes API server the observer will ask, judged by the loopback guard before any
/// connection (the client is built, nothing is sent); a kubeconfig that cannot be read yet is
/// left to the observer, which reports it at the step that reads the API.
pub(crate) fn guard_kube_api(probes: &Probes) -> Result<(), Failure> {
    let Some(source) = &probes.kube else { return Ok(()) };
    match plan_exec::kubernetes::KubeApi::connect(source, probes.guard) {
        Err(e @ ExecError::NotLoopback { .. }) => Err(exec_failure(e)),
        _ => Ok(()),
    }
}

/// With the loopback guard on, checks every host the run may reach (address, and where `ssh -G`
/// says the ssh config sends it), the workstation's machine too (`--workstation`), before the
/// lock, the journal or the first connection.
pub(crate) fn guard_every_host(loaded: &Loaded, ssh: &SshArgs) -> Result<(), Failure> {
    let hosts = plan_exec::invocation::hosts_touched(&loaded.topology, &loaded.plan);
    let guard = Guard::from_env();
    guard.check_hosts(&hosts, ssh.ssh_config.as_deref()).map_err(exec_failure)?;
    match &ssh.workstation {
        Some(workstation) => workstation.check(guard, ssh.ssh_config.as_deref()).map_err(exec_failure),
        None => Ok(()),
    }
}

/// Longest control directory whose ControlMaster sockets (`<dir>/.ssh-connectionXXXXXX/master`)
/// still fit a Unix socket path (108 bytes).
const CONTROL_DIR_LEN_MAX: usize = 72;

/// Where the ControlMaster sockets live: `ssh/` in the state directory, so each run's masters are
/// found (and closed) beside its journal, not among every run's in one shared directory; a
/// per-user directory under the temp dir when the state directory's path is too long for a socket.
///
/// The per-user directory holds one directory per state directory (named by a hash of its path),
/// so that closing the masters a killed executor left (`close_stale_masters`) never reaches
/// those of an executor working on another state directory.
fn control_dir(state_dir: &Path) -> Result<PathBuf, Failure> {
    use std::hash::{Hash, Hasher};
    let absolute = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let inside = absolute.join("ssh");
    if inside.as_os_str().len() <= CONTROL_DIR_LEN_MAX {
        return Ok(inside);
    }
    // SAFETY: getuid reads this process's real uid; it cannot fail and touches no memory.
    let per_user = std::env::temp_dir().join(format!("plan-ssh-{}", unsafe { libc::getuid() }));
    // The parent must be private too: whoever owns it could swap the directory below.
    plan_exec::ssh::private_control_dir(&per_user).map_err(exec_failure)?;
    let mut hasher = std::hash::DefaultHasher::new();
    absolute.hash(&mut hasher);
    Ok(per_user.join(format!("{:016x}", hasher.finish())))
}

/// Closes the masters a killed executor left for this state directory; call it holding the lock.
pub(crate) fn close_stale_masters(state_dir: &Path) -> Result<(), Failure> {
    let closed = plan_exec::ssh::close_stale_masters(&control_dir(state_dir)?);
    if !closed.is_empty() {
        tracing::info!(count = closed.len(), "closed ssh masters an earlier executor left");
    }
    Ok(())
}

pub(crate) fn transport(ssh: &SshArgs, state_dir: &Path) -> Result<Dispatch<OpensshTransport>, Failure> {
    let guard = Guard::from_env();
    let control_dir = control_dir(state_dir)?;
    let remote = OpensshTransport::new(SshOptions { config: ssh.ssh_config.clone(), control_dir }, guard).map_err(exec_failure)?;
    let local = match &ssh.workstation {
        None => Workstation::Here(LocalTransport { guard }),
        Some(host) => Workstation::Host { host: host.clone(), guard },
    };
    Ok(Dispatch { remote, local })
}

/// Off a terminal nobody can answer a prompt: without `--yes` the run is refused before anything
/// starts, rather than stopping at the first prompt as if someone had declined.
pub(crate) fn need_a_person_or_yes(yes: bool) -> Result<(), Failure> {
    if yes || std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(Failure::Input("no terminal to confirm each phase and recovery on: pass --yes to run unattended".to_string()))
    }
}

/// The person at the terminal: prompts (unless --yes), a progress bar, each command echoed.
pub(crate) struct TerminalOperator {
    yes: bool,
    pub(crate) bar: ProgressBar,
    current: Option<String>,
    /// A person was asked to confirm a phase since the last step began (not under `--yes`).
    asked: bool,
}

impl TerminalOperator {
    pub(crate) fn new(yes: bool, steps: usize) -> Self {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        TerminalOperator { yes, bar, current: None, asked: false }
    }

    fn ask(&self, question: &str) -> bool {
        if !std::io::stdin().is_terminal() {
            crate::output::eprint(&format!("{question} -- no terminal to ask: pass --yes\n"));
            return false;
        }
        self.bar.suspend(|| {
            crate::output::eprint(&format!("{question} [y/N] "));
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            matches!(answer.trim(), "y" | "Y" | "yes")
        })
    }
}

impl TerminalOperator {
    /// A line above the progress bar on a terminal; off a terminal (a log file, a pipe), where
    /// the bar draws nothing and drops its lines, straight to stderr.
    fn line(&self, text: String) {
        if self.bar.is_hidden() {
            crate::output::eprint(&format!("{text}\n"));
        } else {
            self.bar.println(text);
        }
    }
}

impl Operator for TerminalOperator {
    fn confirm_phase(&mut self, phase: &Phase, steps: &[&Step]) -> bool {
        let ids = steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ");
        self.line(format!("== Phase {}: {} (steps {ids})", phase.id, phase.title));
        self.asked |= !self.yes;
        self.yes || self.ask(&format!("Run phase {}?", phase.id))
    }

    /// The hosts are looked at afresh after a person confirmed the phase: they may have looked
    /// at them, or done something, while the question waited.
    fn step_begins(&mut self, _step: &Step) -> BetweenSteps {
        if std::mem::take(&mut self.asked) {
            BetweenSteps::Touched
        } else {
            BetweenSteps::Untouched
        }
    }

    fn confirm_recovery(&mut self, recovery: &Recovery) -> bool {
        let mut out = String::new();
        write_recovery(&mut out, recovery);
        // The journal keeps the recovery too: stdout failing is no reason to refuse it.
        let _ = crate::output::print(&out);
        self.yes || self.ask("Run this recovery?")
    }

    fn by_hand(&mut self, step: &Step, instruction: &str, _task: &plan_model::hand::HandTask) -> bool {
        self.line(format!("   by hand ({}): {}", step.id, plan_exec::redact::redact(instruction)));
        !self.yes && self.ask("Done?")
    }

    fn done_by_hand(&mut self, step: &Step, instruction: &str) {
        self.line(format!("   by hand ({}): {} -- done, as --by-hand-done says", step.id, plan_exec::redact::redact(instruction)));
    }

    fn waiting(&mut self, step: &Step, silent: &[String], up_to: std::time::Duration) {
        self.line(format!(
            "   waiting up to {} ({}) for what does not answer, then it is taken as dead (--wait-for-host; Ctrl-C stops):",
            format_duration(up_to.as_secs() as u32),
            step.id
        ));
        for what in silent {
            self.line(format!("     {}", plan_exec::redact::redact(what)));
        }
    }

    fn settling(&mut self, step: &Step, silent: &[String], up_to: std::time::Duration) {
        self.line(format!(
            "   looking again for up to {} ({}) before halting; what does not answer (Ctrl-C stops):",
            format_duration(up_to.as_secs() as u32),
            step.id
        ));
        for what in silent {
            self.line(format!("     {}", plan_exec::redact::redact(what)));
        }
    }

    fn starting(&mut self, step: &Step, _index: usize, invocation: &Invocation, eta_s: u32) {
        if self.current.as_deref() != Some(step.id.as_str()) {
            self.line(format!("-- {} {} (about {} of the plan left)", step.id, step.title, format_duration(eta_s)));
            self.current = Some(step.id.clone());
            self.bar.inc(1);
        }
        self.bar.set_message(format!("step {} on {}, about {} left", step.id, invocation.place_label(), format_duration(eta_s)));
        self.line(format!("   {:<12} {}", invocation.place_label(), invocation.display()));
    }

    fn finished(&mut self, _step: &Step, invocation: &Invocation, done: &Result<Completed, String>) {
        match done {
            Ok(done) if done.success() => {
                if self.bar.is_hidden() {
                    self.line(format!("   -> ok on {} in {:.1} s", invocation.place_label(), done.duration.as_secs_f64()));
                }
            }
            Ok(done) => self.line(format!("   -> exit {}", done.exit.map_or("by signal".to_string(), |c| c.to_string()))),
            Err(e) => self.line(format!("   -> {e}")),
        }
    }
}

/// Collects what a dry run would do, per step.
#[derive(Default)]
struct DryRunOperator {
    listed: Vec<(String, Invocation)>,
}

impl Operator for DryRunOperator {
    fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
        true
    }
    fn confirm_recovery(&mut self, _recovery: &Recovery) -> bool {
        false
    }
    fn by_hand(&mut self, _step: &Step, _instruction: &str, _task: &plan_model::hand::HandTask) -> bool {
        true
    }
    fn starting(&mut self, step: &Step, _index: usize, invocation: &Invocation, _eta_s: u32) {
        self.listed.push((step.id.clone(), invocation.clone()));
    }
    fn finished(&mut self, _step: &Step, _invocation: &Invocation, _done: &Result<Completed, String>) {}
}

/// What `--host` names: a machine of the inventory (by a unique short form too), `workstation`,
/// `infra-repo` or `operator`, or with `--workstation` that machine's name or a place on it as
/// labelled (`infra-repo@HOST`).
fn resolve_place(loaded: &Loaded, wanted: &str, workstation: Option<&WorkstationHost>) -> Result<String, Failure> {
    if matches!(wanted, "workstation" | "infra-repo" | "operator") {
        return Ok(wanted.to_string());
    }
    if let Some(host) = workstation {
        let on_it = ["workstation", "infra-repo"].map(|role| format!("{role}@{}", host.name()));
        if wanted == host.name() || on_it.iter().any(|label| label == wanted) {
            return Ok(wanted.to_string());
        }
    }
    let s = &loaded.topology.scenario;
    if s.load_balancer.name == wanted || s.hypervisors.iter().any(|h| h.name == wanted) {
        return Ok(wanted.to_string());
    }
    loaded.topology.resolve(wanted).map(|n| loaded.topology.name(n).to_string()).map_err(|e| Failure::Input(e.to_string()))
}

/// Whether `--host wanted` lists `invocation`: its place's label, or for the workstation's commands
/// their role (`workstation`, `infra-repo`) or the name of the machine they run on.
fn listed_on(invocation: &Invocation, wanted: &str) -> bool {
    if invocation.place_label() == wanted {
        return true;
    }
    match &invocation.work {
        Work::Shell { place: place @ Place::Local { on, .. }, .. } => {
            place.workstation_role() == Some(wanted) || on.as_ref().is_some_and(|host| host.name() == wanted)
        }
        _ => false,
    }
}

fn dry_run(loaded: &Loaded, options: &ExecuteArgs, check: &CheckVerdict) -> Result<(), Failure> {
    let workstation = options.ssh.workstation.clone();
    let only = options.host.as_deref().map(|h| resolve_place(loaded, h, workstation.as_ref())).transpose()?;
    let mut recorder = Recorder { workstation: workstation.clone(), ..Recorder::default() };
    let mut journal = Journal::in_memory();
    let mut operator = DryRunOperator::default();
    let run_options =
        RunOptions { observe: false, check_passed: check.passed, ..RunOptions::new(Duration::from_secs(1), Probes::files_only()) };
    let outcome =
        Runner::new(&loaded.topology, &loaded.plan, &mut recorder, &mut journal, &mut operator, run_options).run().map_err(exec_failure)?;
    debug_assert!(matches!(outcome, Outcome::Completed), "the recorder succeeds every command");
    let plan = &loaded.plan;
    let mut out = format!(
        "plan execute --dry-run: scenario {}{}, {} steps in {} phases; nothing is connected to, nothing runs\n",
        plan.scenario,
        if loaded.edited { " (edited plan)" } else { "" },
        plan.steps.len(),
        plan.phases.iter().filter(|p| plan.steps.iter().any(|s| s.phase == p.id)).count()
    );
    if let Some(host) = &only {
        let _ = writeln!(out, "only the commands on {host}");
    }
    if let Some(host) = &workstation {
        let _ = writeln!(
            out,
            "the workstation's commands run on {host} over SSH (--workstation): shown as workstation@{name} and infra-repo@{name}",
            name = host.name()
        );
    }
    if check.passed {
        let _ = writeln!(out, "plan check: PASS");
    } else {
        let _ = writeln!(
            out,
            "\n!! plan check REJECTS this plan: {}.\n!! A real run refuses it unless given --override-check REASON.\n",
            check.summary
        );
    }
    let _ = writeln!(out, "Secrets: the output of [secret] commands is never shown or kept; tokens and keys print as <redacted>.");
    for phase in &plan.phases {
        let mut phase_text = String::new();
        for step in plan.steps.iter().filter(|s| s.phase == phase.id) {
            let lines: Vec<String> = operator
                .listed
                .iter()
                .filter(|(id, inv)| *id == step.id && only.as_ref().is_none_or(|h| listed_on(inv, h)))
                .map(|(_, inv)| format!("    {}", inv.line()))
                .collect();
            if lines.is_empty() && only.is_some() {
                continue;
            }
            let _ = writeln!(phase_text, "  {} {} ({})", step.id, step.title, format_duration(step.duration_s));
            if lines.is_empty() {
                let _ = writeln!(phase_text, "    (no command: {})", step.checks.first().map(String::as_str).unwrap_or("nothing to run"));
            }
            for line in lines {
                let _ = writeln!(phase_text, "{line}");
            }
        }
        if !phase_text.is_empty() {
            let _ = writeln!(out, "\nPhase {} — {}", phase.id, phase.title);
            out.push_str(&phase_text);
        }
    }
    let hosts: std::collections::BTreeSet<&str> = recorder.commands.iter().map(|c| c.place.as_str()).collect();
    let _ = writeln!(
        out,
        "\n{} commands recorded for {} places ({}), none run.",
        recorder.commands.len(),
        hosts.len(),
        hosts.into_iter().collect::<Vec<_>>().join(", ")
    );
    crate::output::print(&plan_exec::redact::redact(&out))?;
    Ok(())
}
