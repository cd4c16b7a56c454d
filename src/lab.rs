//! `plan lab up|down|status` and `plan rehearse`: the loopback lab from the command line.

use crate::cli::ReportFormat;
use crate::input::{parse_duration, Loaded};
use crate::lab_standing::{self, Standing};
use crate::Failure;
use clap::Subcommand;
use plan_lab::executor_rehearsal::{self, Drill};
use plan_lab::lab::{Lab, LabOptions, LabStatus};
use plan_lab::process::Lifetime;
use plan_lab::rehearse::{self, FidelityReport};
use plan_lab::LabError;
use plan_model::fault::{Fault, FaultKind, NODE_REBOOT_S};
use plan_sim::run::Injection;
use std::path::PathBuf;

/// Keys the lab writes before the migration: the data every recovery must keep.
const SEED_KEYS: u32 = 10;

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
        /// The walk's lab instead: the existing master's etcd and HAProxy at the VIP, driven from
        /// the twin's actions (`plan lab status` reads it); default state directory:
        /// $TMPDIR/plan-lab/<scenario name>-walk.
        #[arg(long)]
        walk: bool,
        /// With --walk: added to every port (etcd 2379/2380, the VIP port), so labs can run side by side.
        #[arg(long, default_value_t = 20000, requires = "walk")]
        port_offset: u16,
        /// With --walk: do not start HAProxy.
        #[arg(long, requires = "walk")]
        no_haproxy: bool,
        /// What `plan lab up` does without --walk (kept for scripts written before it was the default).
        #[arg(long, hide = true, conflicts_with = "walk")]
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
    /// expire), lb-reload (the infra repo's bootstrap script re-run on the LB: reset to the declared
    /// pool, no --fail); with --walk: crash, reboot, partition (on the master's etcd) and lb-reload.
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
    /// whole plan, the fault struck for real at that point, then what the executor proposes at the
    /// halt carried out by the lab as operator (`plan recover`), and the run resumed where that
    /// goes on (`plan execute --resume` after a wait or a renewal).
    #[arg(long, value_name = "STEPS", num_args = 0..=1, require_equals = true, default_missing_value = "default")]
    pub via_execute: Option<String>,
    /// At the fault's halt, the lab as operator picks the best recovery of this kind
    /// (`plan recover --choose KIND`: rollback, hold, quorum-recovery, worst-case, ...) instead of
    /// the executor's best, and the twin takes the same kind: a recovery the ranking puts below
    /// another, rehearsed for real (the worst case's snapshot restore).
    #[arg(long, value_name = "KIND", value_parser = parse_kind, requires = "at", conflicts_with = "walk")]
    pub choose: Option<&'static str>,
    /// The walk instead: the twin's actions carried out on real etcd and HAProxy (no SSH, no
    /// kubeadm), for what the executor's lab cannot inject yet: a point inside a command other
    /// than kubeadm join (STEP@N), a partition inside kubeadm join, a reboot inside one where the
    /// member costs quorum or without kubelet local mode.
    #[arg(long, conflicts_with = "via_execute")]
    pub walk: bool,
    /// With --walk: added to every lab port; the rehearsal's own lab is separate from `plan lab up --walk`'s.
    #[arg(long, default_value_t = 21000, requires = "walk")]
    pub port_offset: u16,
    /// With --walk: leave the rehearsed lab running (its directory is printed) for `plan lab status --state-dir`.
    #[arg(long, requires = "walk")]
    pub keep: bool,
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

/// Where the walk's lab (`plan lab up --walk`) is kept by default.
fn walk_state_dir(loaded: &Loaded) -> PathBuf {
    let mut dir = default_state_dir(loaded).into_os_string();
    dir.push("-walk");
    PathBuf::from(dir)
}

pub fn run(loaded: &Loaded, args: &LabArgs) -> Result<(), Failure> {
    let walk_up = matches!(args.action, LabAction::Up { walk: true, .. });
    let down_or_status = matches!(args.action, LabAction::Down | LabAction::Status { .. });
    let dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None if walk_up => walk_state_dir(loaded),
        // down and status find the walk's lab of the scenario in its default directory too.
        None if down_or_status && !lab_standing::recorded(&default_state_dir(loaded)) && walk_state_dir(loaded).exists() => {
            walk_state_dir(loaded)
        }
        None => default_state_dir(loaded),
    };
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
        LabAction::Up { walk: false, .. } => lab_standing::up(loaded, &dir),
        LabAction::Serve => lab_standing::serve(loaded, &dir),
        LabAction::ByHand => match Standing::read(&dir)? {
            Some(standing) => lab_standing::by_hand(&dir, &standing),
            None => Err(Failure::Input(format!("lab: no lab up with `plan lab up` in {}", dir.display()))),
        },
        LabAction::Up { walk: true, port_offset, no_haproxy, .. } => {
            let options = LabOptions {
                state_dir: dir,
                offset: *port_offset,
                haproxy: !no_haproxy,
                lifetime: Lifetime::Detached,
                seed_keys: SEED_KEYS,
            };
            let lab = Lab::up(&loaded.topology, &options).map_err(lab_failure)?;
            let status = lab.status().map_err(lab_failure)?;
            let dir = lab.detach();
            crate::output::print(&format!("Lab up in {}\n", dir.display()))?;
            crate::output::print(&status_text(&status))?;
            crate::output::print(&format!("Stop it with: plan lab down --state-dir {}\n", dir.display()))?;
            Ok(())
        }
        LabAction::Down => {
            let lab = Lab::open(&dir).map_err(lab_failure)?;
            let stopped = lab.down().map_err(lab_failure)?;
            if stopped.is_empty() {
                crate::output::print(&format!("Lab in {} was not running; its state is removed\n", dir.display()))?;
            } else {
                crate::output::print(&format!("Lab in {} down: stopped {}\n", dir.display(), stopped.join(", ")))?;
            }
            Ok(())
        }
        LabAction::Status { format } => {
            let lab = Lab::open(&dir).map_err(lab_failure)?;
            let status = lab.status().map_err(lab_failure)?;
            match format {
                ReportFormat::Json => crate::output::print_json(&status)?,
                ReportFormat::Text => crate::output::print(&status_text(&status))?,
            }
            Ok(())
        }
    }
}

fn status_text(status: &LabStatus) -> String {
    let mut out = format!("Lab of {} in {}\n", status.scenario, status.dir);
    let width = status.hosts.iter().map(|h| h.name.len()).max().unwrap_or(4);
    for h in &status.hosts {
        let membership = match h.membership {
            Some(m) => format!("{m:?}").to_lowercase(),
            None => "not a member".to_string(),
        };
        out.push_str(&format!(
            "  {:width$}  {:>15} -> {:<15}  etcd {:<20} {:<12} {}\n",
            h.name, h.address, h.loopback, h.etcd, membership, h.client_url
        ));
    }
    if let Err(why) = &status.members {
        out.push_str(&format!("  member list: no member answers: {why}\n"));
    }
    match &status.quorum.refused {
        None => out.push_str(&format!("Quorum: yes (a write committed in {} ms)\n", status.quorum.elapsed_ms)),
        Some(why) => out.push_str(&format!("Quorum: no (write refused after {} ms: {why})\n", status.quorum.elapsed_ms)),
    }
    match &status.backends {
        None => out.push_str(&format!("VIP {}: no HAProxy\n", status.vip)),
        Some(Err(why)) => out.push_str(&format!("VIP {} (HAProxy): {why}\n", status.vip)),
        Some(Ok(backends)) => {
            let list: Vec<String> = backends.iter().map(|b| format!("{} {}", b.name, b.status)).collect();
            out.push_str(&format!("VIP {} (HAProxy, backends = each master's etcd /health): {}\n", status.vip, list.join(", ")));
        }
    }
    match &status.vip_healthy {
        None => {}
        Some(Ok(true)) => out.push_str("Through the VIP: GET /health answers healthy\n"),
        Some(Ok(false)) => out.push_str("Through the VIP: GET /health answers unhealthy\n"),
        Some(Err(why)) => out.push_str(&format!("Through the VIP: {why}\n")),
    }
    out
}

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
        Some(text) => FaultKind::parse(text)
            .ok_or_else(|| Failure::Input(format!("unknown fault kind {text:?} (the lab injects: crash, reboot, partition, lb-reload)")))?,
    };
    let Some(at) = &args.at else {
        return Err(Failure::Input("--fail and --fault need --at STEP: the lab rehearses one placement at a time".to_string()));
    };
    let lasts = args.lasts.as_deref().map(parse_duration).transpose()?;
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
                "the lab cannot inject {} for real yet (it injects: crash, reboot, partition, lb-reload; through the executor operator-away too)",
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
    let injection = injection(loaded, args)?;
    if !args.walk {
        let steps = args.via_execute.as_deref().unwrap_or("default");
        let drill = injection.map(|injection| Drill { injection, choose: args.choose });
        return rehearse_via_execute(loaded, steps, drill, args.format);
    }
    // What the walk cannot rehearse is refused before its lab starts.
    rehearse::check_rehearsable(&loaded.topology, injection).map_err(lab_failure)?;
    let mut lab = Lab::private(&loaded.topology, args.port_offset, false, SEED_KEYS).map_err(lab_failure)?;
    let report = rehearse::rehearse(&loaded.topology, &loaded.plan, &mut lab, injection).map_err(lab_failure)?;
    print_report(&report, args.format)?;
    if args.keep {
        let dir = lab.detach();
        crate::output::eprint(&format!(
            "plan: the rehearsed lab is still up: plan lab status --state-dir {0}; plan lab down --state-dir {0}\n",
            dir.display()
        ));
    } else {
        // Stops every process and removes the scratch directory.
        drop(lab);
    }
    if report.agrees() {
        Ok(())
    } else {
        let n = report.disagreements().count();
        Err(Failure::Violation(format!("the lab disagrees with the twin on {n} observation(s)")))
    }
}

fn print_report(report: &FidelityReport, format: ReportFormat) -> Result<(), Failure> {
    match format {
        ReportFormat::Json => crate::output::print_json(report)?,
        ReportFormat::Text => crate::output::print(&rehearse::render(report))?,
    }
    Ok(())
}
