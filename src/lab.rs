//! `plan lab up|down|status` and `plan rehearse`: the loopback lab from the command line.

use crate::cli::ReportFormat;
use crate::input::{parse_duration, Loaded};
use crate::lab_standing::{self, Standing};
use crate::Failure;
use clap::Subcommand;
use plan_lab::executor_rehearsal::{self, Drill};
use plan_lab::LabError;
use plan_model::fault::{Fault, FaultKind, NODE_REBOOT_S};
use plan_sim::run::Injection;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub action: LabAction,
    /// Where the lab keeps its pids, data and logs; default: $TMPDIR/plan-lab/<scenario name>.
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Start the lab and keep it up for `plan execute` from another shell, exactly as against real
    /// hosts: an sshd host per machine, real etcd and HAProxy, apiserver and kubelet stand-ins,
    /// the kubeadm, kubectl and hypervisor shims; it prints the `plan execute` line.
    Up {
        /// The older walk's lab, removed: refused with what to use instead.
        #[arg(long, hide = true)]
        walk: bool,
        /// What `plan lab up` does (kept for scripts written before it was the default).
        #[arg(long, hide = true)]
        via_execute: bool,
    },
    /// Carry out, on a lab up with `plan lab up`, the by-hand work its executor's run waits for
    /// or halted at (an infra-repo edit, the kubeadm configuration), as a person would.
    ByHand,
    /// The standing lab's own process (started by `plan lab up`).
    #[command(hide = true)]
    Serve,
    /// Stop every process of the lab and remove its data.
    Down,
    /// The lab's hosts, etcd members, quorum and VIP backends.
    Status {
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

#[derive(Debug, clap::Args)]
pub struct RehearseArgs {
    /// The master that fails: inventory name or unique short form (master-2).
    #[arg(long, value_name = "NODE")]
    pub fail: Option<String>,
    /// Where: a step id (after its first action), STEP@N (after its N-th action), STEP@0 (its start).
    #[arg(long, value_name = "STEP")]
    pub at: Option<String>,
    /// crash (the host's sshd and every process on it SIGKILLed; default), reboot (the same, then
    /// the host boots again and the run resumes), partition (the host's processes SIGSTOPped until
    /// the fault is over), operator-away (the lab's clock jumps --for, default 3h: kubeadm's TTLs
    /// expire), lb-reload (the LB reset to its declared state, as when someone else re-runs its
    /// deploy: pfSense's bootstrap script, or the Linux box's config reloaded; no --fail),
    /// hypervisor-failure (--fail names the hypervisor or a node on it: its host and every VM on
    /// it crash, for good, or with --for until they boot again).
    #[arg(long, value_name = "KIND")]
    pub fault: Option<String>,
    /// How long the fault lasts in the twin's clock (90s, 10m).
    #[arg(long = "for", value_name = "DURATION")]
    pub lasts: Option<String>,
    /// The plan through the executor (the default): `plan execute`'s runner over SSH on a lab
    /// host for every machine, with real etcd and HAProxy, apiserver and kubelet stand-ins and
    /// kubeadm/kubectl/hypervisor shims; a scenario off loopback is moved onto it (10.0.20.100 ->
    /// 127.N.20.100). Without a list (or `all`): every step; with a list (`0.2,0.3,0.4`): those
    /// steps, from where the whole plan stands before the first. With `--fail NODE --at STEP`: the
    /// plan (or the slice, which must hold STEP), the fault struck for real at that point, then what
    /// the executor proposes at the halt carried out by the lab as operator (`plan recover`), and
    /// the run resumed where that goes on (`plan execute --resume` after a wait, a renewal or a
    /// go-forward's write-off).
    #[arg(long, value_name = "STEPS", num_args = 0..=1, require_equals = true, default_missing_value = "default")]
    pub via_execute: Option<String>,
    /// At the fault's halt, the lab as operator picks the best recovery of this kind
    /// (`plan recover --choose KIND`: rollback, hold, quorum-recovery, worst-case, ...) instead of
    /// the executor's best, and the twin takes the same kind: a recovery the ranking puts below
    /// another, rehearsed for real (the worst case's snapshot restore).
    #[arg(long, value_name = "KIND", value_parser = parse_kind, requires = "at")]
    pub choose: Option<&'static str>,
    /// The older walk (the twin's actions on real etcd and HAProxy, no SSH), removed: refused with
    /// what to use instead.
    #[arg(long, hide = true)]
    pub walk: bool,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// A lab error at the CLI: an operator's stop is a halt (exit 1); anything else is the input or the
/// lab that could not run (exit 2).
fn lab_failure(e: LabError) -> Failure {
    match e {
        // Stopped as `plan execute` stops: a halt (exit 1), not bad input.
        LabError::Interrupted { .. } => Failure::Violation(format!("lab: {e}")),
        e => Failure::Input(format!("lab: {e}")),
    }
}

fn default_state_dir(loaded: &Loaded) -> PathBuf {
    let name: String =
        loaded.topology.scenario.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    std::env::temp_dir().join("plan-lab").join(name)
}

pub fn run(loaded: &Loaded, args: &LabArgs) -> Result<(), Failure> {
    if matches!(args.action, LabAction::Up { walk: true, .. }) {
        return Err(Failure::Input(WALK_GONE.to_string()));
    }
    let down_or_status = matches!(args.action, LabAction::Down | LabAction::Status { .. });
    let dir = args.state_dir.clone().unwrap_or_else(|| default_state_dir(loaded));
    // In full and without a trailing `/` or `.`, as the lab process is given it: `./lab`,
    // `lab/` and `/tmp/lab` name the same lab.
    let dir: PathBuf = std::path::absolute(&dir)
        .map_err(|e| Failure::Input(format!("lab: state directory {}: {e}", dir.display())))?
        .components()
        .collect();
    if down_or_status && lab_standing::recorded(&dir) {
        return match (&args.action, Standing::read(&dir)) {
            (LabAction::Down, Ok(Some(standing))) => lab_standing::down(&dir, &standing),
            // A record that cannot be read: the lab process is found by its command line.
            (LabAction::Down, _) => lab_standing::down_unrecorded(&dir),
            (LabAction::Status { format: ReportFormat::Json }, Ok(Some(standing))) => crate::output::print_json(&standing),
            (_, Ok(Some(standing))) => lab_standing::status(&dir, &standing),
            (_, Err(e)) => Err(e),
            (_, Ok(None)) => Err(Failure::Input(format!("lab: the record in {} went away", dir.display()))),
        };
    }
    match &args.action {
        LabAction::Up { .. } => lab_standing::up(loaded, &dir),
        LabAction::Serve => lab_standing::serve(loaded, &dir),
        LabAction::ByHand => match Standing::read(&dir)? {
            Some(standing) => lab_standing::by_hand(&dir, &standing),
            None => Err(Failure::Input(format!("lab: no lab up with `plan lab up` in {}", dir.display()))),
        },
        LabAction::Down | LabAction::Status { .. } => {
            Err(Failure::Input(format!("lab: no lab in {}: start one with `plan lab up`", dir.display())))
        }
    }
}

/// What `--walk` gets: the walk is gone, and what replaced it.
const WALK_GONE: &str = "lab: the walk (--walk) is gone: `plan lab up` and `plan rehearse` run the plan through the executor on one lab (sshd hosts, real etcd and HAProxy); a fault inside a command other than kubeadm join is struck at the command's start (STEP@0) or after the step";

/// `--choose KIND`: one of the recovery kinds, by the name `plan recover --choose` takes.
fn parse_kind(text: &str) -> Result<&'static str, String> {
    plan_exec::runner::KIND_NAMES
        .iter()
        .find(|k| **k == text)
        .copied()
        .ok_or_else(|| format!("a recovery kind: {}", plan_exec::runner::KIND_NAMES.join(", ")))
}

/// The fault from the command line: only the kinds the lab injects for real.
fn injection(loaded: &Loaded, args: &RehearseArgs) -> Result<Option<Injection>, Failure> {
    let t = &loaded.topology;
    if args.fail.is_none() && args.at.is_none() && args.fault.is_none() {
        return Ok(None);
    }
    let kind = match args.fault.as_deref() {
        None => FaultKind::Crash,
        Some(text) => FaultKind::parse(text).ok_or_else(|| {
            Failure::Input(format!(
                "unknown fault kind {text:?} (the lab injects: crash, reboot, partition, operator-away, lb-reload, hypervisor-failure)"
            ))
        })?,
    };
    let Some(at) = &args.at else {
        return Err(Failure::Input("--fail and --fault need --at STEP: the lab rehearses one placement at a time".to_string()));
    };
    let lasts = args.lasts.as_deref().map(parse_duration).transpose()?;
    // A hypervisor's failure names the hypervisor (or a node on it); for good without --for, as
    // `plan simulate` takes it.
    if kind == FaultKind::HypervisorFailure {
        let hypervisor = crate::simulate::hypervisor(t, args.fail.as_deref())?;
        let at = crate::simulate::parse_point(&loaded.plan, at)?;
        return Ok(Some(Injection { at, fault: Fault::HypervisorDown { hypervisor, lasts_s: lasts } }));
    }
    let node = match (&args.fail, kind.needs_node()) {
        (Some(node), true) => Some(t.resolve(node).map_err(|e| Failure::Input(e.to_string()))?),
        (None, true) => return Err(Failure::Input(format!("--fault {} and --at need --fail NODE", kind.as_str()))),
        (Some(_), false) => return Err(Failure::Input(format!("--fault {} strikes no node: drop --fail", kind.as_str()))),
        (None, false) => None,
    };
    let fault = match (kind, node) {
        (FaultKind::Crash, Some(node)) => Fault::NodeDown { node, lasts_s: lasts },
        (FaultKind::Reboot, Some(node)) => Fault::NodeDown { node, lasts_s: Some(lasts.unwrap_or(NODE_REBOOT_S)) },
        (FaultKind::Partition, Some(node)) => Fault::Partition { node, lasts_s: Some(lasts.unwrap_or(300)) },
        (FaultKind::LbReload, None) => Fault::LbReload,
        (FaultKind::OperatorAway, None) => Fault::OperatorAway { lasts_s: lasts.unwrap_or(3 * 3600) },
        (other, _) => {
            return Err(Failure::Input(format!(
            "the lab cannot inject {} for real yet (it injects: crash, reboot, partition, operator-away, lb-reload, hypervisor-failure)",
            other.as_str()
        )))
        }
    };
    let at = crate::simulate::parse_point(&loaded.plan, at)?;
    Ok(Some(Injection { at, fault }))
}

/// `plan rehearse`: the plan (or a slice of it) through the executor, beside the twin.
fn rehearse_via_execute(loaded: &Loaded, steps: &str, drill: Option<Drill>, format: ReportFormat) -> Result<(), Failure> {
    let steps: Vec<String> = if steps == "default" {
        executor_rehearsal::SLICE_DEFAULT.iter().map(|s| s.to_string()).collect()
    } else {
        steps.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    // Ctrl-C or SIGTERM stops the executor after the command that runs, as in `plan execute`, and
    // the lab then stops and removes its directory; a second signal ends the process at once (the
    // next lab start sweeps what it left).
    plan_exec::interrupt::install_for(plan_exec::interrupt::AfterStop::LabRemoved);
    let report = executor_rehearsal::rehearse_through_executor(&loaded.topology, &loaded.plan, &steps, drill).map_err(lab_failure)?;
    match format {
        ReportFormat::Json => crate::output::print_json(&report)?,
        ReportFormat::Text => crate::output::print(&report.render())?,
    }
    if report.agrees() {
        Ok(())
    } else {
        let n = report.disagreements().count();
        Err(Failure::Violation(format!("the executor on the lab disagrees with the twin on {n} observation(s)")))
    }
}

pub fn rehearse(loaded: &Loaded, args: &RehearseArgs) -> Result<(), Failure> {
    if args.walk {
        return Err(Failure::Input(WALK_GONE.to_string()));
    }
    let injection = injection(loaded, args)?;
    let steps = args.via_execute.as_deref().unwrap_or("default");
    let drill = injection.map(|injection| Drill { injection, choose: args.choose });
    rehearse_via_execute(loaded, steps, drill, args.format)
}
