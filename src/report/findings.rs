//! What `plan check` found, as HTML: the verdict, the figures, the table per phase, each
//! violation with its minimal trace, the warnings and the exposures the cluster already has.

use super::markup::escape;
use crate::check::{class_name, downtime_line, phase_cells, schedule, LEGEND};
use plan_model::plan::format_duration;
use plan_sim::explore::{CheckReport, Verdict};
use std::fmt::Write;

/// The check's report as HTML, to go inside its section.
pub fn html(r: &CheckReport) -> String {
    let mut out = String::new();
    let verdict = match r.verdict {
        Verdict::Pass => "<p class=\"verdict pass\" id=\"check-verdict\">Verdict: PASS</p>".to_string(),
        Verdict::Fail => format!("<p class=\"verdict fail\" id=\"check-verdict\">Verdict: FAIL ({} violation(s))</p>", r.violations.len()),
    };
    out += &verdict;
    let f = &r.figures;
    let _ = writeln!(
        out,
        "<p>Depth {}: {} states, {} transitions, {} fault placements explored ({} more skipped: same state, point and fault); rollback paths: {} proven, {} failed.</p>",
        r.depth, f.states, f.transitions, f.fault_placements, f.deduplicated, f.rollback_paths_proven, f.rollback_paths_failed
    );
    let _ = writeln!(
        out,
        "<p>Without faults: {} ({}), downtime: {}.</p>",
        escape(&r.no_fault.outcome.label()),
        format_duration(r.no_fault.duration_s),
        escape(&downtime_line(&r.no_fault.downtime))
    );
    phase_table(&mut out, r);
    let _ = writeln!(
        out,
        "<details><summary>What the columns mean</summary><pre class=\"legend\">{}</pre></details>",
        escape(LEGEND.trim_matches('\n'))
    );
    violations(&mut out, r);
    warnings(&mut out, r);
    exposures(&mut out, r);
    out
}

fn phase_table(out: &mut String, r: &CheckReport) {
    out.push_str("<table class=\"check-phases\" id=\"check-phases\"><thead><tr><th>phase</th><th>placements</th><th>completed</th><th>recovered</th><th>rolled-back</th><th>went-on</th><th>quorum</th><th>restored</th><th>stuck</th><th>violations</th></tr></thead><tbody>\n");
    for p in &r.phases {
        let [phase, counts @ .., violations] = phase_cells(p);
        let counts: String = counts.iter().map(|c| format!("<td>{c}</td>")).collect();
        let bad = if p.violations > 0 { " class=\"bad\"" } else { "" };
        let _ = writeln!(out, "<tr><td>{}</td>{counts}<td{bad}>{violations}</td></tr>", escape(&phase));
    }
    out.push_str("</tbody></table>\n");
}

fn violations(out: &mut String, r: &CheckReport) {
    if r.violations.is_empty() {
        out.push_str(
            "<p id=\"no-violations\">No violation: every fault at every point ends safe, and every rollback path taken is proven.</p>\n",
        );
        return;
    }
    let _ = writeln!(out, "<h3>Violations ({})</h3>", r.violations.len());
    for (i, v) in r.violations.iter().enumerate() {
        let _ = writeln!(
            out,
            "<div class=\"violation\" id=\"violation-{i}\"><p><span class=\"bad\">[{}] {}</span> at step {}, {} ({} schedule(s))</p><p class=\"why\">{}</p>",
            class_name(v.class),
            escape(&v.invariant),
            escape(&v.step),
            escape(&schedule(v)),
            v.schedules,
            escape(&v.why)
        );
        if v.trace.is_empty() {
            out.push_str(
                "<p class=\"trace-none\">Judged on the state the plan ends in: no single event breaks it, so there is no trace.</p>",
            );
        } else {
            let _ = write!(out, "<pre class=\"trace\" id=\"trace-{i}\">{}</pre>", escape(&v.trace.join("\n")));
        }
        out.push_str("</div>\n");
    }
}

fn warnings(out: &mut String, r: &CheckReport) {
    if !r.findings.is_empty() {
        out.push_str(
            "<h3><span class=\"warning\">warning:</span> recovered only by a recovery the plan does not document</h3><ul class=\"findings\">\n",
        );
        for f in &r.findings {
            let _ = writeln!(
                out,
                "<li>{} (between {} and {}, {} placements): {}; halted on: {}</li>",
                escape(&f.fault),
                escape(&f.from_step),
                escape(&f.to_step),
                f.placements,
                escape(&f.recovery),
                escape(&f.why)
            );
        }
        out.push_str("</ul>\n");
    }
    if !r.dominated_rollbacks.is_empty() {
        out.push_str("<h3><span class=\"warning\">warning:</span> the plan's documented recovery is beaten by another (the twin takes the better one)</h3><ul class=\"findings\">\n");
        for d in &r.dominated_rollbacks {
            let _ = writeln!(
                out,
                "<li>{} (between {} and {}, {} placements)<br>documented: {}: {}<br>better: {}: {}</li>",
                escape(&d.fault),
                escape(&d.from_step),
                escape(&d.to_step),
                d.placements,
                escape(&d.documented),
                escape(&d.documented_cost),
                escape(&d.chosen),
                escape(&d.chosen_cost)
            );
        }
        out.push_str("</ul>\n");
    }
}

fn exposures(out: &mut String, r: &CheckReport) {
    if r.exposures.is_empty() {
        return;
    }
    out.push_str("<h3>Exposures the cluster already has (the single master)</h3><ul class=\"exposures\">\n");
    for e in &r.exposures {
        let _ = writeln!(
            out,
            "<li>{} (between {} and {}, {} placements): {}</li>",
            escape(&e.fault),
            escape(&e.from_step),
            escape(&e.to_step),
            e.placements,
            escape(&e.why)
        );
    }
    out.push_str("</ul>\n");
}
