//! `plan status`: where an execution stands, from its journal; `--repair` cuts a journal damaged
//! in its middle back to the records before the damage.

use crate::execute::{exec_failure, state_dir, StateArgs};
use crate::input::Loaded;
use crate::Failure;
use plan_exec::journal::{self, Damage, Progress, Repair};
use plan_exec::lock::Lock;
use plan_model::plan::format_duration;
use std::fmt::Write as _;
use std::path::Path;

/// Dropped records named one by one in a repair's report; the rest are counted.
const DROPPED_SHOWN_MAX: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// Cut a journal damaged in its middle back to the records before the damage; the rest is
    /// moved, byte for byte, to journal.jsonl.damaged-<ms> beside it. Takes the lock.
    #[arg(long)]
    pub repair: bool,
}

/// The state of the run as a whole, and of each step.
struct Standing<'p> {
    progress: &'p Progress,
    overall: &'static str,
}

impl Standing<'_> {
    /// `held`: an executor holds the state directory's lock now (it runs a command or waits at
    /// a prompt), so a step begun and not ended is running, not interrupted.
    fn of(progress: &Progress, records: usize, held: bool) -> Standing<'_> {
        let overall = if records == 0 {
            "not-started"
        } else if progress.rolled_back.is_some() {
            "rolled-back"
        } else if progress.finished {
            "completed"
        } else if progress.halted.is_some() {
            "halted"
        } else if held {
            "running"
        } else {
            "interrupted"
        };
        Standing { progress, overall }
    }

    fn step(&self, id: &str) -> &'static str {
        let p = self.progress;
        if p.completed.contains(id) {
            "done"
        } else if p.halted.as_ref().is_some_and(|h| h.step == id) {
            "halted"
        } else if p.interrupted.as_deref() == Some(id) {
            if self.overall == "running" {
                "running"
            } else {
                "interrupted"
            }
        } else {
            "pending"
        }
    }
}

pub fn status(loaded: &Loaded, scenario: Option<&Path>, options: &StatusArgs) -> Result<(), Failure> {
    let dir = state_dir(scenario, &options.state);
    if options.repair {
        let report = repair(&dir)?;
        match options.format {
            StatusFormat::Text => crate::output::print(&report)?,
            // stdout stays one JSON document.
            StatusFormat::Json => crate::output::eprint(&report),
        }
    }
    let path = journal::journal_path(&dir);
    let contents = journal::read(&dir).map_err(exec_failure)?;
    let progress = Progress::from_records(&contents.records);
    let standing = Standing::of(&progress, contents.records.len(), plan_exec::lock::holder(&dir).is_some());
    let steps: Vec<String> =
        if progress.steps.is_empty() { loaded.plan.steps.iter().map(|s| s.id.clone()).collect() } else { progress.steps.clone() };
    let done = steps.iter().filter(|s| progress.completed.contains(*s)).count();
    let remaining_s: u32 = loaded.plan.steps.iter().filter(|s| !progress.completed.contains(&s.id)).map(|s| s.duration_s).sum();
    match options.format {
        StatusFormat::Json => {
            let mut json = serde_json::json!({
                "status_format": 1,
                "journal": path.display().to_string(),
                "scenario": progress.scenario,
                "plan_digest": progress.plan_digest,
                "state": standing.overall,
                "steps_done": done,
                "steps_total": steps.len(),
                "remaining_s": remaining_s,
                "steps": steps.iter().map(|id| serde_json::json!({"id": id, "state": standing.step(id)})).collect::<Vec<_>>(),
                "halted": progress.halted,
                "rolled_back": progress.rolled_back,
                "join_secrets_left": progress.secrets_left,
                "written_off": progress.written_off(),
                "drift": progress.last_drift,
                "override_check": progress.override_check,
                "journal_damage": contents.damage.as_ref().map(|d| serde_json::json!({"line": d.line, "bytes": d.bytes, "reason": d.reason})),
            });
            // The journal is redacted when written; this holds for a journal written by an older
            // plan or edited by hand too.
            plan_exec::redact::redact_json(&mut json);
            crate::output::print_json(&json)?;
        }
        // Before any run there is nothing per step to say: one line, not every step "pending".
        StatusFormat::Text if contents.records.is_empty() && contents.damage.is_none() => {
            let shown = format!(
                "plan status: no run yet: no journal at {} ({} steps, about {} of plan time); `plan execute` starts one\n",
                path.display(),
                steps.len(),
                format_duration(remaining_s)
            );
            crate::output::print(&shown)?;
        }
        StatusFormat::Text => {
            let mut out = format!("plan status: {} ({})\n", standing.overall, path.display());
            let _ = writeln!(out, "  {done}/{} steps done, about {} of plan time left", steps.len(), format_duration(remaining_s));
            if let Some(reason) = &progress.override_check {
                let _ = writeln!(out, "  plan check overridden: {reason}");
            }
            for id in &steps {
                let state = standing.step(id);
                if state != "pending" || done == 0 {
                    let _ = writeln!(out, "  {:<8} {state}", id);
                }
            }
            write_halt_and_drift(&mut out, &progress);
            if let Some(d) = &contents.damage {
                let _ = writeln!(
                    out,
                    "  journal: unreadable from line {} ({} bytes: {}); cut off when the journal is next opened to append",
                    d.line, d.bytes, d.reason
                );
            }
            crate::output::print(&plan_exec::redact::redact(&out))?;
        }
    }
    Ok(())
}

fn write_halt_and_drift(out: &mut String, progress: &Progress) {
    if let Some(h) = &progress.halted {
        let _ = writeln!(out, "  halted at {}: {}", h.step, h.reason);
        if h.by_hand.is_some() {
            let _ = writeln!(out, "  by hand: once it is done, `plan execute --resume --by-hand-done` goes on");
        }
        let _ = writeln!(out, "  recovery: {}", h.recovery);
        for a in &h.recovery_actions {
            let _ = writeln!(out, "    - {a}");
        }
    }
    if let Some(w) = progress.written_off() {
        let _ = writeln!(out, "  going on without {} (written off at {}): the rest of the plan leaves it out", w.nodes.join(", "), w.step);
    }
    if !progress.secrets_left.is_empty() {
        let _ = writeln!(out, "  join secrets not swept at the halt on: {} (delete them there by hand)", progress.secrets_left.join(", "));
    }
    if progress.last_drift.is_empty() {
        let _ = writeln!(out, "  drift: none at the last observation");
    } else {
        let _ = writeln!(out, "  drift at the last observation:");
        for d in &progress.last_drift {
            let _ = writeln!(out, "    {d}");
        }
    }
}

/// Runs the repair under the lock and words what it kept and what it dropped.
fn repair(dir: &Path) -> Result<String, Failure> {
    if !dir.is_dir() {
        return Err(Failure::Input(format!("state directory {}: no such directory, nothing to repair", dir.display())));
    }
    let _lock = Lock::take(dir).map_err(exec_failure)?;
    let path = journal::journal_path(dir);
    match journal::repair(dir).map_err(exec_failure)? {
        Repair::Nothing { records } => {
            Ok(format!("plan status --repair: nothing to repair: all {records} record(s) of {} read\n", path.display()))
        }
        Repair::Cut { kept, damage, aside } => Ok(repair_report(&path, kept, &damage, &aside)),
    }
}

fn repair_report(path: &Path, kept: usize, damage: &Damage, aside: &Path) -> String {
    let last = damage.line + damage.lines.saturating_sub(1);
    let mut out = format!(
        "plan status --repair: kept the {kept} record(s) before line {} of {}; moved lines {}-{last} ({} bytes) to {}\n",
        damage.line,
        path.display(),
        damage.line,
        damage.bytes,
        aside.display()
    );
    let _ = writeln!(out, "  line {} could not be read: {}", damage.line, damage.reason);
    if damage.records_after.is_empty() {
        let _ = writeln!(out, "  no readable record was dropped");
    } else {
        let _ = writeln!(out, "  dropped {} readable record(s) that came after it:", damage.records_after.len());
        for record in damage.records_after.iter().take(DROPPED_SHOWN_MAX) {
            let _ = writeln!(out, "    {}", record.summary());
        }
        if damage.records_after.len() > DROPPED_SHOWN_MAX {
            let _ = writeln!(out, "    and {} more", damage.records_after.len() - DROPPED_SHOWN_MAX);
        }
        let _ = writeln!(
            out,
            "  a resume observes the hosts before the first step the kept records do not show done, and halts on drift if it ran"
        );
    }
    plan_exec::redact::redact(&out)
}
