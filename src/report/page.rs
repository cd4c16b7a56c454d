//! The report page: one HTML document with its style inline, the drawings as inline SVG, no
//! script and no reference to anything outside it, so it reads the same offline and mailed.

use super::dag::{self, Execution, StepExecution};
use super::markup::escape;
use super::{findings, ram, timeline};
use plan_model::capacity::{gb, CapacityReport, CapacityVerdict};
use plan_model::plan::{format_duration, Plan};
use plan_model::topology::Topology;
use plan_sim::explore::{CheckReport, Verdict};
use std::fmt::Write;

/// Everything the page shows, computed by the library calls the other commands make.
pub struct Contents<'a> {
    pub topology: &'a Topology,
    pub plan: &'a Plan,
    /// The plan came from `--plan`.
    pub edited: bool,
    pub executions: &'a [StepExecution],
    pub check: &'a CheckReport,
    pub capacity: &'a CapacityReport,
}

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 24px 32px; color: #1f2328; background: #fff; font-size: 14px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 15px; margin-top: 20px; }
nav a { margin-right: 16px; color: #0b5cad; }
.summary { list-style: none; padding: 0; margin: 8px 0 12px; }
.summary li { margin: 2px 0; }
.scroll { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 4px; }
.legend-row { margin: 8px 0; font-size: 12px; }
.swatch { display: inline-block; width: 14px; height: 12px; vertical-align: middle; margin: 0 4px 0 12px; border: 1px solid #555; }
.swatch.executor { background: #dbe9f7; border-color: #3a6ea5; }
.swatch.by-hand { background: #fde6bf; border: 1px dashed #b26b00; }
.swatch.partly-by-hand { background: #fef3dc; border-color: #b26b00; }
.swatch.tolerance-0 { background: #d64541; } .swatch.tolerance-1 { background: #e8a33d; } .swatch.tolerance-2 { background: #3c9d5d; }
.swatch.master { background: #c0392b; } .swatch.load-balancer { background: #d35400; } .swatch.hypervisor { background: #7d3c98; } .swatch.worker { background: #5d6d7e; }
.swatch.within-limit { background: #4a8fcf; } .swatch.over-limit { background: #f0b45a; } .swatch.over-physical { background: #b03a2e; }
svg text { font-family: "DejaVu Sans", Arial, sans-serif; }
.lane-band { fill: #f6f8fa; } .lane-band.odd { fill: #eaeef2; }
.lane-label { font-weight: bold; font-size: 13px; fill: #1f2328; }
.lane-title { font-size: 10px; fill: #57606a; }
.step rect { fill: #dbe9f7; stroke: #3a6ea5; stroke-width: 1.2; }
.step.by-hand rect { fill: #fde6bf; stroke: #b26b00; stroke-dasharray: 4 2; }
.step.partly-by-hand rect { fill: #fef3dc; stroke: #b26b00; }
.step-id { font-weight: bold; font-size: 11px; fill: #1f2328; }
.step-title { font-size: 10px; fill: #1f2328; }
.hand-mark { font-size: 9px; font-style: italic; fill: #8a5200; text-anchor: end; }
.edge { fill: none; stroke: #6e7781; stroke-width: 1; opacity: 0.55; }
.arrow-head { fill: #6e7781; }
.gantt-row { fill: #fff; } .gantt-row.odd { fill: #f6f8fa; }
.row-label { font-size: 12px; fill: #1f2328; }
.tick { stroke: #d0d7de; stroke-width: 1; }
.tick-label { font-size: 10px; fill: #57606a; text-anchor: middle; }
.bar { stroke: #fff; stroke-width: 0.5; }
.phase-bar { fill: #8fa7bf; }
.bar.tolerance-0 { fill: #d64541; } .bar.tolerance-1 { fill: #e8a33d; } .bar.tolerance-2 { fill: #3c9d5d; }
.single-point.master { fill: #c0392b; } .single-point.load-balancer { fill: #d35400; } .single-point.hypervisor { fill: #7d3c98; } .single-point.worker { fill: #5d6d7e; }
.bar-label { font-size: 11px; fill: #fff; font-weight: bold; }
.hypervisor-name { font-size: 13px; font-weight: bold; fill: #1f2328; }
.ram.within-limit { fill: #4a8fcf; } .ram.over-limit { fill: #f0b45a; } .ram.over-physical { fill: #b03a2e; }
.limit { stroke: #b26b00; stroke-width: 1.5; stroke-dasharray: 5 3; } .physical { stroke: #1f2328; stroke-width: 1.5; }
.limit-label { font-size: 10px; fill: #8a5200; text-anchor: end; } .physical-label { font-size: 10px; fill: #1f2328; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.tolerance-0 { background: #f9d9d6; } td.tolerance-1 { background: #fbe9c8; } td.tolerance-2 { background: #d6eedd; }
.verdict { font-size: 16px; font-weight: bold; }
.pass, .verdict.pass { color: #1a7f37; }
.bad, .fail, .verdict.fail { color: #cf222e; }
.warning { color: #9a6700; }
.violation { border-left: 4px solid #cf222e; padding: 2px 12px; margin: 12px 0; background: #fff8f8; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
.muted { color: #57606a; font-size: 12px; }
"#;

fn swatch(class: &str, label: &str) -> String {
    format!("<span class=\"swatch {class}\"></span>{label}")
}

fn header(c: &Contents) -> String {
    let t = c.topology;
    let s = &t.scenario;
    let by_hand = c.executions.iter().filter(|e| e.execution == Execution::ByHand).count();
    let partly = c.executions.iter().filter(|e| e.execution == Execution::PartlyByHand).count();
    let check = match c.check.verdict {
        Verdict::Pass => "<span class=\"pass\">PASS</span>".to_string(),
        Verdict::Fail => format!("<span class=\"fail\">FAIL</span> ({} violation(s))", c.check.violations.len()),
    };
    let capacity = match c.capacity.verdict {
        CapacityVerdict::Fits => "<span class=\"pass\">FITS</span>",
        CapacityVerdict::OverCommitted => "<span class=\"fail\">OVER-COMMITTED</span>",
    };
    let mut out = format!(
        "<h1>Migration report: {}{}</h1>\n<ul class=\"summary\">\n",
        escape(&c.plan.scenario),
        if c.edited { " (edited plan)" } else { "" }
    );
    let _ = writeln!(
        out,
        "<li>{} &rarr; {} control-plane nodes behind {}:{}, Kubernetes {}, etcd learner mode {}</li>",
        c.capacity.masters_before,
        c.capacity.masters_after,
        s.control_plane_endpoint.vip,
        s.control_plane_endpoint.port,
        escape(&s.kubernetes.version),
        if t.learner_mode { "on" } else { "off" }
    );
    let _ = writeln!(
        out,
        "<li>{} steps in {} phases, about {}; {by_hand} by hand, {partly} partly by hand</li>",
        c.plan.steps.len(),
        c.plan.phases.len(),
        format_duration(c.plan.duration_s())
    );
    let _ = writeln!(out, "<li>check (depth {}): {check}</li>\n<li>capacity: {capacity}</li>\n</ul>", c.check.depth);
    out + "<nav><a href=\"#plan\">Plan</a><a href=\"#exposure\">Exposure</a><a href=\"#capacity\">RAM</a><a href=\"#check\">Check</a></nav>\n"
}

fn plan_section(c: &Contents) -> String {
    format!(
        "<section id=\"plan\"><h2>The plan</h2>\n<p>A lane per phase; a step stands one column right of the latest step it needs, so steps in one column could run side by side. Arrows point from a step to the steps that need it. Hover a step or an arrow for its details.</p>\n<p class=\"legend-row\">{}{}{}</p>\n<div class=\"scroll\">{}</div></section>\n",
        swatch("executor", "run by the executor"),
        swatch("by-hand", "by hand: every command is an instruction for a person"),
        swatch("partly-by-hand", "partly by hand"),
        dag::svg(c.plan, c.executions)
    )
}

fn exposure_section(c: &Contents) -> String {
    let e = &c.capacity.exposure;
    let timed: Vec<String> = e.single_point_time.iter().map(|s| format!("{} {}", s.machine, format_duration(s.duration_s))).collect();
    format!(
        "<section id=\"exposure\"><h2>Exposure along the plan</h2>\n<p>What one failure would stop, step by step, on the plan's clock (h:mm from its start): how many etcd voters may fail with quorum kept, and each machine whose loss alone stops part of the control plane (a bar while it is one). Hover a bar for the steps and the impact.</p>\n<p class=\"legend-row\">tolerates {}{}{} &nbsp; single point: {}{}{}{}</p>\n<div class=\"scroll\">{}</div>\n<p>Before: {} etcd voter(s), tolerates {}. After: {} etcd voters, tolerates {}. Time with an etcd that tolerates no failure: {} of {}. Time as a single point of failure: {}.</p>\n{}</section>\n",
        swatch("tolerance-0", "0"),
        swatch("tolerance-1", "1"),
        swatch("tolerance-2", "2 or more"),
        swatch("master", "master"),
        swatch("load-balancer", "load balancer"),
        swatch("hypervisor", "hypervisor"),
        swatch("worker", "worker"),
        timeline::svg(e),
        e.before.voters,
        e.before.tolerance,
        e.after.voters,
        e.after.tolerance,
        format_duration(e.tolerance_zero_s),
        format_duration(c.capacity.plan_duration_s),
        escape(&if timed.is_empty() { "none".to_string() } else { timed.join(", ") }),
        timeline::phase_table(e)
    )
}

fn capacity_section(c: &Contents) -> String {
    let r = c.capacity;
    let halted = r
        .plan_halted
        .as_ref()
        .map(|h| {
            format!(
                "<p class=\"warning\">The plan halts at step {} without any fault ({}): figures stop there.</p>",
                escape(&h.step),
                escape(&h.reason)
            )
        })
        .unwrap_or_default();
    format!(
        "<section id=\"capacity\"><h2>Hypervisor RAM</h2>\n<p>Committed RAM before the migration, at its peak and after, against the limit (physical RAM less {}% headroom) and physical RAM.</p>\n{halted}<p class=\"legend-row\">{}{}{}</p>\n{}</section>\n",
        gb(r.policy.ram_headroom_percent),
        swatch("within-limit", "within the limit"),
        swatch("over-limit", "over the limit, within physical RAM"),
        swatch("over-physical", "over physical RAM"),
        ram::svg(&r.hypervisors)
    )
}

/// The whole page.
pub fn page(c: &Contents) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Migration report: {}</title><style>{STYLE}</style></head><body>\n",
        escape(&c.plan.scenario)
    );
    out += &header(c);
    out += &plan_section(c);
    out += &exposure_section(c);
    out += &capacity_section(c);
    let _ = writeln!(out, "<section id=\"check\"><h2>The check</h2>\n{}</section>", findings::html(c.check));
    let _ = writeln!(out, "<p class=\"muted\">Written by plan {}.</p>\n</body></html>", env!("CARGO_PKG_VERSION"));
    out
}
