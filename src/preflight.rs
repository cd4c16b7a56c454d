//! `plan preflight`: before anything runs, can the executor reach and act on every machine, and
//! is the cluster what the twin starts from? Also run by `plan execute` before its first step.

use crate::execute::{exec_failure, guard_every_host, prepare_state_dir, state_dir, transport, ObserveArgs, SshArgs, StateArgs};
use crate::input::Loaded;
use crate::Failure;
use plan_exec::guard::Guard;
use plan_exec::observe::Observer;
use plan_exec::preflight::{self, Preflight, Reach};
use plan_exec::transport::Transport;
use plan_model::cluster::Cluster;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub observe: ObserveArgs,
}

pub fn run(loaded: &Loaded, scenario: Option<&Path>, options: &PreflightArgs) -> Result<(), Failure> {
    guard_every_host(loaded, &options.ssh)?;
    let dir = state_dir(scenario, &options.state);
    prepare_state_dir(&dir)?;
    let mut transport = transport(&options.ssh, &dir)?;
    let probes = options.observe.probes(Guard::from_env())?;
    crate::execute::guard_kube_api(&probes)?;
    let mut observer = Observer::new(probes);
    let report = check(loaded, &mut transport, &mut observer, Reach::Everything)?;
    crate::output::print(&text(&report))?;
    verdict(&report)
}

/// The preflight from the scenario's start, on what `reach` names.
pub(crate) fn check(loaded: &Loaded, transport: &mut dyn Transport, observer: &mut Observer, reach: Reach) -> Result<Preflight, Failure> {
    let t = &loaded.topology;
    let start = Cluster::initial(t);
    let hosts = preflight::hosts(t, &loaded.plan, &start, reach);
    let workstation = preflight::workstation_places(t, &loaded.plan, transport.workstation());
    preflight::preflight(t, &start, &hosts, &workstation, transport, observer, reach).map_err(exec_failure)
}

/// One line per check, each failure with what to fix.
pub(crate) fn text(report: &Preflight) -> String {
    let mut out = String::new();
    for item in &report.items {
        let mark = if item.passed { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "  {mark} {}: {}", item.check, item.detail);
        if let Some(fix) = &item.fix {
            let _ = writeln!(out, "         fix: {fix}");
        }
    }
    let failed = report.failed().count();
    if failed == 0 {
        let _ = writeln!(out, "preflight: all {} checks passed", report.items.len());
    } else {
        let _ = writeln!(out, "preflight: {failed} of {} checks failed; nothing was run, so there is nothing to undo", report.items.len());
    }
    out
}

pub(crate) fn verdict(report: &Preflight) -> Result<(), Failure> {
    match report.failed().count() {
        0 => Ok(()),
        n => Err(Failure::Violation(format!("preflight failed: {n} check(s); fix them and run again"))),
    }
}
