//! `plan report --html FILE`: the plan, its exposure, the hypervisors' RAM and the check's
//! findings on one self-contained HTML page, drawn from what `show`, `capacity` and `check` compute.

mod dag;
mod findings;
mod lanes;
mod markup;
mod page;
mod ram;
mod timeline;

use crate::input::{io_reason, Loaded};
use crate::{output, Failure};
use plan_model::capacity::{self, CapacityVerdict};
use plan_sim::explore::{self, Verdict};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Write the page to FILE: one HTML file, its style and drawings inline, no script, nothing
    /// fetched (it reads the same offline).
    #[arg(long, value_name = "FILE")]
    pub html: std::path::PathBuf,
    /// Depth of the check the page shows: 1 every single fault, 2 every pair of faults, 3 every
    /// triple (the expected time is printed on stderr first).
    #[arg(long, default_value_t = 1, value_parser = crate::cli::parse_depth)]
    pub depth: u8,
}

/// Refuses a path the page cannot be written to, before the check spends its time.
fn refuse_unwritable(path: &Path) -> Result<(), Failure> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err(Failure::Input("--html needs a file name to write the page to".to_string()));
    }
    if path.is_dir() {
        return Err(Failure::Input(format!(
            "report file {shown} is a directory: name a file in it, e.g. {}",
            path.join("report.html").display()
        )));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.is_dir() => {
            Err(Failure::Input(format!("report file {shown}: the directory {} does not exist", parent.display())))
        }
        _ => Ok(()),
    }
}

/// Writes the report page for the loaded scenario and plan to `options.html`, and says so in one
/// line. The exit code says the page was written (0), not what it shows: the verdicts are on it
/// and in that line, and `plan check` / `plan capacity` give them as exit codes.
pub fn run(loaded: &Loaded, options: &ReportArgs) -> Result<(), Failure> {
    refuse_unwritable(&options.html)?;
    let t = &loaded.topology;
    let capacity = capacity::analyse(t, &loaded.plan).map_err(|e| Failure::Input(e.to_string()))?;
    crate::check::announce(loaded, options.depth);
    let check = explore::check(t, &loaded.plan, explore::CheckOptions { depth: options.depth });
    let executions = dag::executions(t, &loaded.plan);
    let contents = page::Contents {
        topology: t,
        plan: &loaded.plan,
        edited: loaded.edited,
        executions: &executions,
        check: &check,
        capacity: &capacity,
    };
    let html = page::page(&contents);
    std::fs::write(&options.html, html)
        .map_err(|e| Failure::Input(format!("cannot write report file {}: {}", options.html.display(), io_reason(&e))))?;
    tracing::info!(file = %options.html.display(), steps = loaded.plan.steps.len(), "report written");
    let check = match check.verdict {
        Verdict::Pass => output::paint(output::GOOD, "PASS"),
        Verdict::Fail => format!("{} ({} violation(s))", output::paint(output::BAD, "FAIL"), check.violations.len()),
    };
    let capacity = match capacity.verdict {
        CapacityVerdict::Fits => output::paint(output::GOOD, "FITS"),
        CapacityVerdict::OverCommitted => output::paint(output::BAD, "OVER-COMMITTED"),
    };
    output::print(&format!("plan report: wrote {}: check {check}, capacity {capacity}\n", options.html.display()))
}
