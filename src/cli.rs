//! The command line, as clap parses it.

use clap::{Args as ClapArgs, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "plan", version, about = "Moves a kubeadm cluster from one control-plane node to an HA control plane, simulation first")]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, ClapArgs)]
pub struct Global {
    /// Inventory file (YAML); default: the embedded homelab scenario.
    #[arg(long, global = true, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// A plan file exported with `plan show --format yaml`, reordered or with steps removed.
    #[arg(long, global = true, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Log to stderr: -v info, -vv debug, -vvv trace (RUST_LOG, when set, takes precedence).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the migration plan.
    Show(ShowOptions),
    /// Explore every fault at every step; prove every rollback path.
    Check(CheckOptions),
    /// Run one failure through the plan and print the timeline.
    Simulate(SimulateOptions),
    /// Will the migration fit the hypervisors? What are the single points of failure per phase?
    Capacity(crate::capacity::CapacityArgs),
    /// Write one self-contained HTML page: the step DAG, the exposure timeline, RAM per hypervisor, the check's findings.
    Report(crate::report::ReportArgs),
    /// Before anything runs: SSH and sudo on every machine, etcd, the LB, the API, free addresses.
    Preflight(crate::preflight::PreflightArgs),
    /// Run the verified plan on the real hosts, or print its commands with --dry-run.
    Execute(crate::execute::ExecuteArgs),
    /// Progress and drift of an execution, from its journal; --repair cuts a damaged journal.
    Status(crate::status::StatusArgs),
    /// The twin's ranked recoveries for the point where an execution halted: list them, or carry out the best or the one chosen.
    #[command(visible_alias = "rollback")]
    Recover(crate::recover::RecoverArgs),
    /// A loopback replica of the scenario kept up for `plan execute` (sshd hosts, real etcd and HAProxy, stand-ins): up, status, by-hand, down.
    Lab(crate::lab::LabArgs),
    /// Run the plan through the executor on a fresh lab, strike the fault for real, compare with the twin.
    Rehearse(crate::lab::RehearseArgs),
    /// Write a starter scenario from flags, or from a live cluster read read-only (--from-cluster).
    Init(crate::init::InitArgs),
    /// Print a shell completion script (e.g. plan completions bash > ~/.local/share/bash-completion/completions/plan).
    Completions(CompletionsArgs),
    /// Print the man page in roff (e.g. plan man > plan.1; man ./plan.1).
    Man,
}

#[derive(Debug, ClapArgs)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Markdown,
    Json,
    Yaml,
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum View {
    /// The steps and their dependencies.
    Steps,
    /// The control plane before and after.
    Topology,
}

#[derive(Debug, ClapArgs)]
pub struct ShowOptions {
    /// Only this phase (e.g. 0, 1.5, 3).
    #[arg(long)]
    pub phase: Option<String>,
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
    /// What to draw with text, markdown, dot or mermaid (default: steps).
    #[arg(long, value_enum)]
    pub view: Option<View>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, ClapArgs)]
pub struct CheckOptions {
    /// 1: every single fault; 2: every pair of faults; 3: every triple (a few seconds: the
    /// expected time is printed on stderr first).
    #[arg(long, default_value_t = 1, value_parser = parse_depth)]
    pub depth: u8,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// `--depth N`: how many faults a schedule of the check holds, 1 to `DEPTH_MAX`.
pub fn parse_depth(text: &str) -> Result<u8, String> {
    let max = plan_sim::explore::DEPTH_MAX;
    match text.parse::<u8>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("the faults a schedule holds: 1, 2 or {max} (`plan check` explores no deeper)")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, ClapArgs)]
pub struct SimulateOptions {
    /// The node that fails: inventory name or unique short form (master-2).
    #[arg(long, value_name = "NODE")]
    pub fail: Option<String>,
    /// Where: a step id (the fault strikes after its first action), STEP@N (after its N-th
    /// action), STEP@0 (at its start). Default: every point, showing the worst.
    #[arg(long, value_name = "STEP")]
    pub at: Option<String>,
    /// How long the node stays down (90s, 10m, 3h); default: it stays down.
    #[arg(long = "for", value_name = "DURATION")]
    pub lasts: Option<String>,
    /// crash, reboot, partition, hypervisor-failure, lb-reload, lb-reboot, operator-away,
    /// step-fails-halfway, executor-crash.
    #[arg(long, value_name = "KIND")]
    pub fault: Option<String>,
    /// Without --at: strike at one point chosen from this seed instead of at every point.
    #[arg(long, conflicts_with = "at")]
    pub seed: Option<u64>,
    /// Show every event, not just those from the fault's step on.
    #[arg(long)]
    pub full: bool,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// The completion script for `shell`, generated from the same definition clap parses with.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "plan", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// The man page (roff), generated from the same definition clap parses with.
///
/// # Errors
/// [`crate::Failure::Input`] if clap_mangen cannot render it (it writes to memory only).
pub fn man_page() -> Result<String, crate::Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .render(&mut page)
        .map_err(|e| crate::Failure::Input(format!("cannot render the man page: {e}")))?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}
