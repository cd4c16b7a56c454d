//! `plan simulate`: one failure run through the plan, shown as a timeline.

use crate::cli::{ReportFormat, SimulateOptions};
use crate::input::{parse_duration, Loaded};
use crate::Failure;
use plan_model::fault::{Fault, FaultKind, NODE_REBOOT_S};
use plan_model::plan::{format_duration, Plan};
use plan_model::topology::Topology;
use plan_sim::run::{pre_existing, Engine, EventKind, Injection, Outcome, Point, Recording, RunResult};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The JSON document of `plan simulate --format json` (version 1).
#[derive(Serialize)]
struct SimulateDocument<'a> {
    /// Version of this document; bumped only for a breaking change (docs/json.md).
    simulate_format: u32,
    scenario: &'a str,
    fault: FaultDocument,
    fault_description: String,
    at: At,
    outcome: &'a Outcome,
    /// The fault's damage is one the cluster had before the migration.
    pre_existing: bool,
    /// Safety invariants this fault broke (those in `broken` that the plan keeps without it).
    broken_by_fault: Vec<&'static str>,
    #[serde(flatten)]
    run: &'a RunResult,
    /// Every placement of the fault, when no --at was given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    placements: Vec<PlacementSummary>,
}

/// The fault as the command line names it.
#[derive(Serialize)]
struct FaultDocument {
    /// The `--fault` kind: crash, reboot, partition, hypervisor-failure, lb-reload, ...
    kind: &'static str,
    /// The node it strikes, by inventory name.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hypervisor: Option<String>,
    /// How long it lasts; absent: for good (or not a lasting fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    lasts_s: Option<u32>,
}

impl FaultDocument {
    fn of(fault: Fault, t: &Topology) -> FaultDocument {
        let (node, hypervisor, lasts_s) = match fault {
            Fault::NodeDown { node, lasts_s } | Fault::Partition { node, lasts_s } => (Some(t.name(node).to_string()), None, lasts_s),
            Fault::HypervisorDown { hypervisor, lasts_s } => {
                (None, Some(t.scenario.hypervisors[hypervisor as usize].name.clone()), lasts_s)
            }
            Fault::LbDown { lasts_s } | Fault::OperatorAway { lasts_s } => (None, None, Some(lasts_s)),
            Fault::LbReload | Fault::StepFailsHalfway | Fault::ExecutorCrash => (None, None, None),
        };
        FaultDocument { kind: fault.kind().as_str(), node, hypervisor, lasts_s }
    }
}

#[derive(Serialize, Clone)]
struct At {
    step: String,
    after_action: u16,
    action: Option<String>,
}

#[derive(Serialize, Clone)]
struct PlacementSummary {
    from: String,
    to: String,
    outcome: String,
    count: usize,
}

/// Builds the fault from the command line.
fn fault_of(t: &Topology, options: &SimulateOptions) -> Result<Fault, Failure> {
    let lasts = options.lasts.as_deref().map(parse_duration).transpose()?;
    let kind = match &options.fault {
        Some(text) => FaultKind::parse(text).ok_or_else(|| {
            Failure::Input(format!(
                "unknown fault kind {text:?} (kinds: {})",
                FaultKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?,
        None if options.fail.is_some() => FaultKind::Crash,
        None => return Err(Failure::Input("nothing fails: give --fail NODE or --fault KIND".to_string())),
    };
    // A fault that strikes no node or lasts no time must not silently drop what was asked.
    if options.fail.is_some() && !kind.needs_node() {
        return Err(Failure::Input(format!("fault {} strikes no node: drop --fail", kind.as_str())));
    }
    if lasts.is_some() && matches!(kind, FaultKind::LbReload | FaultKind::StepFailsHalfway | FaultKind::ExecutorCrash) {
        return Err(Failure::Input(format!("fault {} has no duration: drop --for", kind.as_str())));
    }
    let node = |needed: bool| -> Result<Option<plan_model::topology::NodeIx>, Failure> {
        match &options.fail {
            Some(name) => t.resolve(name).map(Some).map_err(|e| Failure::Input(e.to_string())),
            None if needed => Err(Failure::Input(format!("fault {} needs --fail NODE", kind.as_str()))),
            None => Ok(None),
        }
    };
    Ok(match kind {
        FaultKind::Crash => Fault::NodeDown { node: node(true)?.expect("needed"), lasts_s: lasts },
        FaultKind::Reboot => Fault::NodeDown { node: node(true)?.expect("needed"), lasts_s: Some(lasts.unwrap_or(NODE_REBOOT_S)) },
        FaultKind::Partition => Fault::Partition { node: node(true)?.expect("needed"), lasts_s: Some(lasts.unwrap_or(300)) },
        FaultKind::HypervisorFailure => Fault::HypervisorDown { hypervisor: hypervisor(t, options.fail.as_deref())?, lasts_s: lasts },
        FaultKind::LbReload => Fault::LbReload,
        FaultKind::LbReboot => Fault::LbDown { lasts_s: lasts.unwrap_or(t.scenario.load_balancer.reboot_s) },
        FaultKind::OperatorAway => Fault::OperatorAway { lasts_s: lasts.unwrap_or(3 * 3600) },
        FaultKind::StepFailsHalfway => Fault::StepFailsHalfway,
        FaultKind::ExecutorCrash => Fault::ExecutorCrash,
    })
}

/// The hypervisor `--fail` names for a hypervisor failure: a hypervisor's name, or a node's (the
/// hypervisor it runs on); without it, the existing master's.
///
/// # Errors
/// A name that is neither.
pub fn hypervisor(t: &Topology, fail: Option<&str>) -> Result<u8, Failure> {
    let index = match fail {
        Some(name) => match t.scenario.hypervisors.iter().position(|h| h.name == name) {
            Some(h) => h,
            None => {
                let node = t.resolve(name).map_err(|e| {
                    let hypervisors: Vec<&str> = t.scenario.hypervisors.iter().map(|h| h.name.as_str()).collect();
                    Failure::Input(format!("{e}; or a hypervisor: {}", hypervisors.join(", ")))
                })?;
                t.node(node).hypervisor
            }
        },
        None => t.node(t.existing_master()).hypervisor,
    };
    Ok(index as u8)
}

/// Parses `2.5` (after the step's first action), `2.5@N` (after its N-th), `2.5@0` (its start).
pub fn parse_point(plan: &Plan, text: &str) -> Result<Point, Failure> {
    let (id, action) = match text.split_once('@') {
        Some((id, n)) => {
            (id, Some(n.parse::<u16>().map_err(|_| Failure::Input(format!("--at {text:?}: the part after @ is an action number")))?))
        }
        None => (text, None),
    };
    let Some(index) = plan.steps.iter().position(|s| s.id == id) else {
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        return Err(Failure::Input(format!("--at {text:?}: no step {id} in the plan (steps: {})", ids.join(", "))));
    };
    let len = plan.steps[index].actions.len() as u16;
    let action = match action {
        Some(n) if n >= len.max(1) => {
            return Err(Failure::Input(format!("--at {text:?}: step {id} has {len} action(s); use @0 to @{}", len.saturating_sub(1))));
        }
        Some(n) => n,
        None if len >= 2 => 1,
        None => 0,
    };
    Ok(Point { step: index as u16, action })
}

fn every_point(plan: &Plan, fault: Fault) -> Vec<Point> {
    let mut points = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let first = if matches!(fault.kind(), FaultKind::StepFailsHalfway | FaultKind::ExecutorCrash) { 1 } else { 0 };
        for k in first..step.actions.len().max(1) {
            points.push(Point { step: i as u16, action: k as u16 });
        }
    }
    points
}

/// How bad a run went, for picking the worst placement.
fn severity(result: &RunResult, baseline: &BTreeSet<&str>, inherited: bool) -> u32 {
    let new_break = result.broken.iter().any(|b| !baseline.contains(b.invariant));
    let unavailable = !result.final_unavailable.is_empty() && !inherited;
    let outcome = match &result.outcome {
        Outcome::Completed if result.recoveries.is_empty() => 0,
        Outcome::Completed => 1,
        Outcome::RolledBack { .. } | Outcome::Halted { .. } | Outcome::WentOn { .. } => 2,
        Outcome::QuorumRecovered => 3,
        Outcome::RestoredFromSnapshot { .. } => 4,
        Outcome::Stuck { .. } => 5,
    };
    outcome + if new_break || unavailable { 10 } else { 0 }
}

fn summary_label(result: &RunResult) -> String {
    let mut label = result.outcome.label();
    if !result.recoveries.is_empty() {
        label += &format!(" via {}", result.recoveries.iter().map(|r| r.describe()).collect::<Vec<_>>().join(" + "));
    }
    label
}

pub fn run(loaded: &Loaded, options: &SimulateOptions) -> Result<(), Failure> {
    if options.full && options.format == ReportFormat::Json {
        // The JSON document holds every event already: --full would change nothing.
        return Err(Failure::Input("--full widens the text timeline; the JSON document holds every event: drop --full".to_string()));
    }
    let t = &loaded.topology;
    let plan = &loaded.plan;
    let fault = fault_of(t, options)?;
    let engine = Engine::new(t, plan, Recording { events: true, downtime: true });
    let quick = Engine::new(t, plan, Recording::default());
    let baseline: BTreeSet<&str> = engine.run(&[]).broken.iter().map(|b| b.invariant).collect();
    let inherited = pre_existing(t, fault);
    let mut placements = Vec::new();
    let point = match &options.at {
        Some(text) => parse_point(plan, text)?,
        None => {
            let points = every_point(plan, fault);
            if points.is_empty() {
                return Err(Failure::Input("the plan has no point to place the fault at".to_string()));
            }
            if let Some(seed) = options.seed {
                points[(splitmix(seed) % points.len() as u64) as usize]
            } else {
                let mut worst = (0u32, points[0]);
                for p in &points {
                    let result = quick.run(&[Injection { at: *p, fault }]);
                    let label = summary_label(&result);
                    let id = plan.steps[p.step as usize].id.clone();
                    let at = format!("{id}@{}", p.action);
                    match placements.last_mut() {
                        Some(PlacementSummary { outcome, to, count, .. }) if *outcome == label => {
                            *to = at;
                            *count += 1;
                        }
                        _ => placements.push(PlacementSummary { from: at.clone(), to: at, outcome: label, count: 1 }),
                    }
                    let s = severity(&result, &baseline, inherited);
                    if s > worst.0 {
                        worst = (s, *p);
                    }
                }
                worst.1
            }
        }
    };
    let result = engine.run(&[Injection { at: point, fault }]);
    let step = &plan.steps[point.step as usize];
    let at = At {
        step: step.id.clone(),
        after_action: point.action,
        action: point.action.checked_sub(1).and_then(|i| step.actions.get(i as usize)).map(|a| a.describe(t)),
    };
    match options.format {
        ReportFormat::Json => {
            let doc = SimulateDocument {
                simulate_format: 1,
                scenario: &t.scenario.name,
                fault: FaultDocument::of(fault, t),
                broken_by_fault: result.broken.iter().filter(|b| !baseline.contains(b.invariant)).map(|b| b.invariant).collect(),
                fault_description: fault.describe(t),
                at,
                outcome: &result.outcome,
                pre_existing: inherited,
                run: &result,
                placements,
            };
            crate::output::print_json(&doc)?;
        }
        ReportFormat::Text => crate::output::print(&text(t, plan, fault, &at, &result, &placements, inherited, &baseline, options.full))?,
    }
    // Exit 1 when the run halted unsafe: it broke a safety invariant the plan keeps without the
    // fault (`plan check` reports the plan's own breaks), did not get the API back,
    // or needed a recovery beyond the plan's own rollbacks. Damage the single master would
    // have suffered anyway is not the plan's doing.
    let new_break = result.broken.iter().any(|b| !baseline.contains(b.invariant));
    let unsafe_halt = new_break
        || (!inherited
            && (!result.final_unavailable.is_empty()
                || matches!(result.outcome, Outcome::Stuck { .. } | Outcome::QuorumRecovered | Outcome::RestoredFromSnapshot { .. })));
    if unsafe_halt {
        return Err(Failure::Violation(format!("the run halted unsafe: {}", result.outcome.label())));
    }
    Ok(())
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn clock(seconds: u32) -> String {
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

#[allow(clippy::too_many_arguments)]
fn text(
    t: &Topology,
    plan: &Plan,
    fault: Fault,
    at: &At,
    result: &RunResult,
    placements: &[PlacementSummary],
    inherited: bool,
    baseline: &BTreeSet<&str>,
    full: bool,
) -> String {
    let mut out = format!(
        "plan simulate: scenario {}, {} at step {}{}\n",
        t.scenario.name,
        fault.describe(t),
        at.step,
        match &at.action {
            Some(a) => format!(" after action {} ({a})", at.after_action),
            None => " at its start".to_string(),
        }
    );
    if !placements.is_empty() {
        out += "\nEvery placement of this fault:\n";
        for p in placements {
            let range = if p.from == p.to { p.from.clone() } else { format!("{} .. {}", p.from, p.to) };
            let _ = writeln!(out, "  {range:<16} {} ({} point(s))", p.outcome, p.count);
        }
        out += "Showing the worst one.\n";
    }
    out += "\nTimeline:\n";
    let first_shown = if full { 0 } else { result.events.iter().position(|e| e.step == at.step).unwrap_or(0) };
    if first_shown > 0 {
        let first = &result.events[0];
        let before = &result.events[first_shown - 1];
        let steps = plan.steps.iter().position(|s| s.id == at.step).unwrap_or(0);
        let _ =
            writeln!(out, "  [{}] {} .. {}  as planned ({steps} steps; --full shows them)", clock(first.clock_s), first.step, before.step);
    }
    for e in &result.events[first_shown..] {
        let marker = match e.kind {
            EventKind::Fault | EventKind::Halt => "!!",
            EventKind::Recovery | EventKind::Skipped | EventKind::Wait | EventKind::Heal => "<-",
            EventKind::Action => "  ",
        };
        let _ = writeln!(out, "  [{}] {marker} {:<6} {}", clock(e.clock_s), e.step, e.what);
        for c in &e.changes {
            let _ = writeln!(out, "                    {c}");
        }
        for f in &e.flipped {
            let _ = writeln!(out, "                    ~ {f}");
        }
        if let Some((what, seconds)) = &e.transient {
            let _ = writeln!(out, "                    ~ for {}: {what}", format_duration(*seconds));
        }
        for b in &e.broke {
            let why = result.broken.iter().find(|x| x.invariant == b).map(|x| x.why.as_str()).unwrap_or("");
            let _ = writeln!(out, "                    {}: {why}", crate::output::paint(crate::output::BAD, &format!("BREAKS {b}")));
        }
    }
    let _ = writeln!(out, "\nOutcome: {}", result.outcome.label());
    if !result.recoveries.is_empty() {
        let _ = writeln!(out, "Recovery: {}", result.recoveries.iter().map(|r| r.describe()).collect::<Vec<_>>().join(", then "));
    }
    if let Some(h) = &result.halt {
        let _ = writeln!(out, "Halted at {}: {h}", result.halted_at.as_deref().unwrap_or("?"));
    }
    let new: Vec<_> = result.broken.iter().filter(|b| !baseline.contains(b.invariant)).collect();
    if new.is_empty() {
        out += "Safety invariants: none broken by this fault\n";
    } else {
        for b in new {
            let _ = writeln!(out, "Safety invariant broken: {} at step {}: {}", b.invariant, b.step, b.why);
        }
    }
    for b in result.broken.iter().filter(|b| baseline.contains(b.invariant)) {
        let _ = writeln!(out, "Also broken without any fault: {} at step {}", b.invariant, b.step);
    }
    if result.final_unavailable.is_empty() {
        out += "Afterwards: the API is available to every consumer\n";
    } else {
        for b in &result.final_unavailable {
            let _ = writeln!(
                out,
                "Afterwards: {} broken: {}{}",
                b.invariant,
                b.why,
                if inherited { " (as it would be before the migration: the single master)" } else { "" }
            );
        }
    }
    // The downtime is counted while the run lasts: where it ends with an availability invariant
    // broken, that goes on.
    let after = if result.final_unavailable.is_empty() { "" } else { " (while the run lasted; the breaks above go on after it)" };
    let _ = writeln!(out, "Client-visible downtime: {}{after}", crate::check::downtime_line(&result.downtime));
    out
}
