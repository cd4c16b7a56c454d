//! `plan check`: the exhaustive exploration, reported as text or JSON.

use crate::cli::{CheckOptions, ReportFormat};
use crate::input::Loaded;
use crate::{output, Failure};
use plan_model::plan::format_duration;
use plan_sim::explore::{self, CheckReport, Verdict};
use std::fmt::Write;

/// The JSON document of `plan check --format json`.
#[derive(serde::Serialize)]
struct CheckDocument<'a> {
    /// Version of this document; bumped only for a breaking change (docs/json.md).
    check_format: u32,
    #[serde(flatten)]
    report: &'a CheckReport,
    /// The operations the twin does not model (`shell`, `by-hand`): it assumes they change nothing.
    unverified: Vec<Unverified>,
}

/// An operation the twin cannot verify.
#[derive(serde::Serialize)]
struct Unverified {
    step: String,
    op: &'static str,
    /// The command or the instruction.
    what: String,
}

fn unverified(plan: &plan_model::plan::Plan) -> Vec<Unverified> {
    let mut out = Vec::new();
    for step in &plan.steps {
        for (op, what) in step.opaque() {
            out.push(Unverified { step: step.id.clone(), op: op.name(), what: what.to_string() });
        }
    }
    out
}

/// Says on stderr, before a check deeper than 2 starts, how long it is expected to take: the
/// placements it will make and the time, both worked out from the depth-1 check of the same plan
/// timed on this machine now (`plan_sim::expect`).
pub fn announce(loaded: &Loaded, depth: u8) {
    if depth < 3 {
        return;
    }
    let e = plan_sim::expect::expect(&loaded.topology, &loaded.plan, depth);
    eprintln!(
        "plan: depth {depth} makes about {} fault placements: expect about {} \
         (worked out from the depth-1 check just made: {} placements in {:.0} ms)",
        round_count(e.placements),
        seconds(e.wall_s),
        e.depth_one_placements,
        e.depth_one_s * 1000.0
    );
}

/// A count to two significant figures, in words for people ("5.4 million").
fn round_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e6 {
        format!("{:.1} million", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} thousand", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn seconds(s: f64) -> String {
    if s >= 120.0 {
        format!("{:.0} min", s / 60.0)
    } else if s >= 10.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

pub fn run(loaded: &Loaded, options: &CheckOptions) -> Result<(), Failure> {
    announce(loaded, options.depth);
    // The exploration's tables (millions of entries at depth 3) are left to the system when the
    // process exits, not freed one by one before it does: `plan check` checks once.
    let report = explore::check_leaking_tables(&loaded.topology, &loaded.plan, explore::CheckOptions { depth: options.depth });
    tracing::info!(
        states = report.figures.states,
        placements = report.figures.fault_placements,
        violations = report.violations.len(),
        "exploration done"
    );
    match options.format {
        ReportFormat::Json => {
            let doc = CheckDocument { check_format: 1, report: &report, unverified: unverified(&loaded.plan) };
            crate::output::print_json(&doc)?
        }
        ReportFormat::Text => crate::output::print(&text(&report, loaded.edited, &unverified(&loaded.plan)))?,
    }
    match report.verdict {
        Verdict::Pass => Ok(()),
        Verdict::Fail => Err(Failure::Violation(format!("check failed: {} violation(s)", report.violations.len()))),
    }
}

/// A phase's row of the table: its id, then its counts in the columns' order (placements,
/// completed, recovered, rolled back, went on, quorum, restored, stuck, violations).
pub fn phase_cells(p: &plan_sim::explore::PhaseSummary) -> [String; 10] {
    [
        p.phase.clone(),
        p.placements.to_string(),
        p.completed.to_string(),
        p.completed_after_recovery.to_string(),
        p.rolled_back.to_string(),
        p.went_on.to_string(),
        p.quorum_recovered.to_string(),
        p.restored_from_snapshot.to_string(),
        p.stuck.to_string(),
        p.violations.to_string(),
    ]
}

pub fn downtime_line(downtime: &plan_sim::run::Downtime) -> String {
    let mut parts: Vec<String> = downtime
        .consumers
        .iter()
        .map(|(kind, d)| {
            if d.degraded_s > 0 {
                format!("{kind} {} (+{} degraded)", format_duration(d.down_s), format_duration(d.degraded_s))
            } else {
                format!("{kind} {}", format_duration(d.down_s))
            }
        })
        .collect();
    parts.push(format!("nodes NotReady {} node-seconds", downtime.node_not_ready_s));
    parts.join(", ")
}

/// What the phase table's columns and the report's abbreviations mean, under the table (and
/// under the same table in `plan report`).
pub const LEGEND: &str = "
  placements   faults placed at every step boundary and mid-step point of the phase; each ends in one of:
  completed    the plan ran to its end
  recovered    the plan ran to its end after a wait, a renewal or a resume
  rolled-back  the phase was undone, or the run stopped after the cut-over with the cluster running
  went-on      the machines down for good were written off and the plan went on without them, to its
               end or to the step that needs them
  quorum       etcd quorum recovered from a surviving voter (RQ), the other new masters undone
  restored     restored from the newest etcd snapshot (RW): writes since it are lost
  stuck        no recovery gave back a working cluster: a violation, unless the fault is an
               exposure the cluster already has (listed under Exposures)
  violations   placements that broke an invariant (a placement may also count in a column above)
  RQ: quorum recovery with etcd --force-new-cluster, added by plan; RW: the worst case, restore from snapshot.
  twin: plan's model of the cluster, in which every placement ran; source plan: the hand-written plan this one follows.
";

fn text(r: &CheckReport, edited: bool, unverified: &[Unverified]) -> String {
    let f = &r.figures;
    let mut out = format!("plan check: scenario {}{}, depth {}\n", r.scenario, if edited { " (edited plan)" } else { "" }, r.depth);
    let _ = writeln!(
        out,
        "  {} states, {} transitions, {} fault placements explored ({} more skipped: same state, point and fault), rollback paths: {} proven, {} failed",
        f.states, f.transitions, f.fault_placements, f.deduplicated, f.rollback_paths_proven, f.rollback_paths_failed
    );
    let _ = writeln!(
        out,
        "  without faults: {} ({}), downtime: {}",
        r.no_fault.outcome.label(),
        format_duration(r.no_fault.duration_s),
        downtime_line(&r.no_fault.downtime)
    );
    write_phase_table(&mut out, r);
    out += LEGEND;
    write_violations(&mut out, r);
    write_warnings(&mut out, r);
    if !unverified.is_empty() {
        let _ = writeln!(
            out,
            "\n{} operations the twin does not model (it assumes they change nothing; verify them yourself):",
            output::warning()
        );
        for u in unverified {
            let _ = writeln!(out, "  {} {}: {}", u.step, u.op, u.what);
        }
    }
    if !r.exposures.is_empty() {
        let _ = writeln!(out, "\nExposures the cluster already has (the single master):");
        for e in &r.exposures {
            let _ = writeln!(out, "  {} (between {} and {}, {} placements): {}", e.fault, e.from_step, e.to_step, e.placements, e.why);
        }
    }
    let verdict = match r.verdict {
        Verdict::Pass => output::paint(output::GOOD, "PASS"),
        Verdict::Fail => format!("{} ({} violation(s))", output::paint(output::BAD, "FAIL"), r.violations.len()),
    };
    let _ = writeln!(out, "\nVerdict: {verdict}");
    out
}

fn write_phase_table(out: &mut String, r: &CheckReport) {
    let _ = writeln!(
        out,
        "\n  {:<6} {:>10} {:>9} {:>9} {:>11} {:>7} {:>8} {:>8} {:>6} {:>10}",
        "phase", "placements", "completed", "recovered", "rolled-back", "went-on", "quorum", "restored", "stuck", "violations"
    );
    for p in &r.phases {
        let [phase, counts @ ..] = phase_cells(p);
        let widths = [10, 9, 9, 11, 7, 8, 8, 6, 10];
        let counts: String = counts.iter().zip(widths).map(|(c, w)| format!(" {c:>w$}")).collect();
        let _ = writeln!(out, "  {phase:<6}{counts}");
    }
}

fn write_violations(out: &mut String, r: &CheckReport) {
    if r.violations.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nViolations ({}):", r.violations.len());
    for v in &r.violations {
        let name = output::paint(output::BAD, &format!("[{}] {}", class_name(v.class), v.invariant));
        let _ = writeln!(out, "  {name} at step {}, {} ({} schedule(s))", v.step, schedule(v), v.schedules);
        let _ = writeln!(out, "    {}", v.why);
        for line in &v.trace {
            let _ = writeln!(out, "      {line}");
        }
    }
}

/// `safety` or `availability`, as the report names an invariant's class.
pub fn class_name(class: plan_model::invariant::InvariantClass) -> &'static str {
    match class {
        plan_model::invariant::InvariantClass::Safety => "safety",
        plan_model::invariant::InvariantClass::Availability => "availability",
    }
}

/// The faults that lead to a violation, in order: `k8s-master-2 goes down at 2.5@1, then …`.
pub fn schedule(v: &plan_sim::explore::Violation) -> String {
    if v.schedule.is_empty() {
        "without any fault".to_string()
    } else {
        v.schedule.iter().map(|p| format!("{} at {}@{}", p.description, p.step, p.after_action)).collect::<Vec<_>>().join(", then ")
    }
}

/// Findings that pass the check but need a person's attention, each section labelled `warning:`.
fn write_warnings(out: &mut String, r: &CheckReport) {
    let warning = output::warning();
    if !r.findings.is_empty() {
        let _ = writeln!(out, "\n{warning} recovered only by a recovery the plan does not document:");
        for f in &r.findings {
            let _ = writeln!(
                out,
                "  {} (between {} and {}, {} placements): {}; halted on: {}",
                f.fault, f.from_step, f.to_step, f.placements, f.recovery, f.why
            );
        }
    }
    if !r.dominated_rollbacks.is_empty() {
        let _ = writeln!(out, "\n{warning} the plan's documented recovery is beaten by another (the twin takes the better one):");
        for d in &r.dominated_rollbacks {
            let _ = writeln!(out, "  {} (between {} and {}, {} placements):", d.fault, d.from_step, d.to_step, d.placements);
            let _ = writeln!(out, "    documented: {}: {}", d.documented, d.documented_cost);
            let _ = writeln!(out, "    better:     {}: {}", d.chosen, d.chosen_cost);
        }
    }
}
