//! `plan check`: every fault at every point of the plan (and every pair at depth 2), explored
//! with state deduplication; every recovery it takes is proven or refuted.

use crate::recovery::RecoveryKind;
use crate::run::{pre_existing, Broken, Cursor, Engine, Injection, Outcome, Point, Recording, RunResult};
use plan_model::action::Action;
use plan_model::fault::{Fault, FaultKind};
use plan_model::invariant::InvariantClass;
use plan_model::plan::Plan;
use plan_model::topology::Topology;
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

/// The `step` of a violation judged on the state the plan ends in (`ha-reached`,
/// `join-secrets-removed`): no event breaks it, so it has no trace.
const END_STATE: &str = "end";

/// The most faults a schedule may hold in `plan check`.
pub const DEPTH_MAX: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// 1: every single fault; 2: every ordered pair of faults.
    pub depth: u8,
}

/// One fault of a violating schedule, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placed {
    pub step: String,
    /// 0: at the step's start; n: after the step's n-th action.
    pub after_action: u16,
    pub fault: FaultKind,
    pub description: String,
}

/// An invariant the check found broken, with the shortest schedule that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: String,
    pub class: InvariantClass,
    /// Step where it broke.
    pub step: String,
    pub why: String,
    /// The faults that lead there (empty: the plan breaks it without any fault).
    pub schedule: Vec<Placed>,
    /// How many explored schedules break it.
    pub schedules: usize,
    /// The shortest schedule's run, event by event, up to the break.
    pub trace: Vec<String>,
    #[serde(skip)]
    pub injections: Vec<Injection>,
}

/// A fault whose damage the cluster already suffers before the migration (the single master).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    pub fault: String,
    pub from_step: String,
    pub to_step: String,
    pub placements: usize,
    pub why: String,
}

/// Recovered, but only by a recovery the source plan does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub fault: String,
    pub from_step: String,
    pub to_step: String,
    pub placements: usize,
    pub recovery: String,
    pub why: String,
}

/// Halts where the recovery the plan documents (the phase's rollback, or holding after the
/// cut-over) leaves a worse cluster than the best recovery the twin found, which it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DominatedRollback {
    pub fault: String,
    pub from_step: String,
    pub to_step: String,
    pub placements: usize,
    /// The documented recovery and what it would leave (at the earliest placement).
    pub documented: String,
    pub documented_cost: String,
    /// The recovery the twin took instead and what it leaves.
    pub chosen: String,
    pub chosen_cost: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhaseSummary {
    pub phase: String,
    pub placements: usize,
    /// The fault did not stop the plan.
    pub completed: usize,
    /// Completed after waiting, renewing or resuming.
    pub completed_after_recovery: usize,
    pub rolled_back: usize,
    pub quorum_recovered: usize,
    pub restored_from_snapshot: usize,
    pub stuck: usize,
    pub violations: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Distinct (state, plan point) pairs visited.
    pub states: usize,
    pub transitions: u64,
    pub fault_placements: usize,
    /// Placements whose start was already explored (same state, point and fault).
    pub deduplicated: usize,
    /// Distinct (phase, recovery sequence) pairs whose sequence undoes or holds, every run of
    /// which ended safe and available.
    pub rollback_paths_proven: usize,
    /// Such pairs with at least one run that did not.
    pub rollback_paths_failed: usize,
    pub plan_duration_s: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoFault {
    pub outcome: Outcome,
    pub duration_s: u32,
    pub downtime: crate::run::Downtime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub scenario: String,
    pub depth: u8,
    pub verdict: Verdict,
    pub figures: Figures,
    pub no_fault: NoFault,
    pub phases: Vec<PhaseSummary>,
    pub violations: Vec<Violation>,
    pub findings: Vec<Finding>,
    pub exposures: Vec<Exposure>,
    pub dominated_rollbacks: Vec<DominatedRollback>,
}

fn fingerprint_hash(state: &plan_model::cluster::Cluster, point: Point, extra: u64, t: &Topology) -> u64 {
    let mut h = FxHasher::default();
    state.fingerprint(t).hash(&mut h);
    point.hash(&mut h);
    extra.hash(&mut h);
    h.finish()
}

/// The faults worth placing at a point.
fn faults_at(all: &[Fault], point: Point) -> impl Iterator<Item = Fault> + '_ {
    all.iter().copied().filter(move |f| match f.kind() {
        // A half-way failure or an executor crash only makes sense inside a step.
        FaultKind::StepFailsHalfway | FaultKind::ExecutorCrash => point.action > 0,
        _ => true,
    })
}

struct Collector<'a> {
    t: &'a Topology,
    plan: &'a Plan,
    no_fault_broken: BTreeSet<&'static str>,
    violations: BTreeMap<String, Violation>,
    phases: BTreeMap<usize, PhaseSummary>,
    exposures: BTreeMap<String, Exposure>,
    findings: BTreeMap<String, Finding>,
    dominated: BTreeMap<String, DominatedRollback>,
    proven: BTreeSet<(String, Vec<RecoveryKind>)>,
    failed: BTreeSet<(String, Vec<RecoveryKind>)>,
    /// The plan re-uploads the control-plane certs after a join, so renewing expired ones is
    /// a recovery it documents; without such a step a renewal is the twin's own invention.
    renew_documented: bool,
}

impl<'a> Collector<'a> {
    fn new(t: &'a Topology, plan: &'a Plan, no_fault_broken: BTreeSet<&'static str>) -> Collector<'a> {
        Collector {
            t,
            plan,
            no_fault_broken,
            violations: BTreeMap::new(),
            phases: BTreeMap::new(),
            exposures: BTreeMap::new(),
            findings: BTreeMap::new(),
            dominated: BTreeMap::new(),
            proven: BTreeSet::new(),
            failed: BTreeSet::new(),
            renew_documented: renews_certs(plan),
        }
    }

    /// Takes in what a later shard found: counts add up, the shortest schedule wins, exposure
    /// and finding windows widen to cover both.
    fn merge(&mut self, other: Collector<'_>, step_index: &FxHashMap<&str, usize>) {
        let position = |id: &str| step_index.get(id).copied().unwrap_or(usize::MAX);
        for (key, v) in other.violations {
            match self.violations.get_mut(&key) {
                None => {
                    self.violations.insert(key, v);
                }
                Some(entry) => {
                    entry.schedules += v.schedules;
                    if v.schedule.len() < entry.schedule.len() {
                        entry.schedule = v.schedule;
                        entry.injections = v.injections;
                        entry.step = v.step;
                        entry.why = v.why;
                    }
                }
            }
        }
        for (index, p) in other.phases {
            let entry = self.phases.entry(index).or_insert_with(|| PhaseSummary { phase: p.phase.clone(), ..Default::default() });
            entry.placements += p.placements;
            entry.completed += p.completed;
            entry.completed_after_recovery += p.completed_after_recovery;
            entry.rolled_back += p.rolled_back;
            entry.quorum_recovered += p.quorum_recovered;
            entry.restored_from_snapshot += p.restored_from_snapshot;
            entry.stuck += p.stuck;
            entry.violations += p.violations;
        }
        merge_windows(&mut self.exposures, other.exposures, &position);
        merge_windows(&mut self.findings, other.findings, &position);
        merge_windows(&mut self.dominated, other.dominated, &position);
        self.proven.extend(other.proven);
        self.failed.extend(other.failed);
    }

    fn placed(&self, schedule: &[Injection]) -> Vec<Placed> {
        schedule
            .iter()
            .map(|i| Placed {
                step: self.plan.steps[i.at.step as usize].id.clone(),
                after_action: i.at.action,
                fault: i.fault.kind(),
                description: i.fault.describe(self.t),
            })
            .collect()
    }

    fn violation(&mut self, key: String, invariant: &str, class: InvariantClass, step: &str, why: &str, schedule: &[Injection]) {
        let placed = self.placed(schedule);
        let entry = self.violations.entry(key).or_insert_with(|| Violation {
            invariant: invariant.to_string(),
            class,
            step: step.to_string(),
            why: why.to_string(),
            schedule: placed.clone(),
            schedules: 0,
            trace: Vec::new(),
            injections: schedule.to_vec(),
        });
        entry.schedules += 1;
        // Keep the shortest schedule, then the earliest.
        let shorter = placed.len() < entry.schedule.len();
        if shorter {
            entry.schedule = placed;
            entry.injections = schedule.to_vec();
            entry.step = step.to_string();
            entry.why = why.to_string();
        }
    }

    fn record(&mut self, schedule: &[Injection], result: &RunResult) -> bool {
        let first = schedule[0].at;
        let phase_index = self.plan.phases.iter().position(|p| p.id == self.plan.steps[first.step as usize].phase).unwrap_or(0);
        let phase_id = self.plan.steps[first.step as usize].phase.clone();
        let mut violated = false;
        for b in &result.broken {
            if b.class == InvariantClass::Safety && !self.no_fault_broken.contains(b.invariant) {
                violated = true;
                let kinds: Vec<&str> = schedule.iter().map(|i| i.fault.kind().as_str()).collect();
                let key = format!("{}|{}", b.invariant, kinds.join("+"));
                self.violation(key, b.invariant, b.class, &b.step, &b.why, schedule);
            }
        }
        let inherited = schedule.iter().any(|i| pre_existing(self.t, i.fault));
        let unavailable = !result.final_unavailable.is_empty();
        if unavailable && !inherited {
            violated = true;
            let b: &Broken = &result.final_unavailable[0];
            let kinds: Vec<&str> = schedule.iter().map(|i| i.fault.kind().as_str()).collect();
            let key = format!("{}|{}|not-restored", b.invariant, kinds.join("+"));
            let why = format!("not restored after {}: {}", result.outcome.label(), b.why);
            self.violation(key, b.invariant, b.class, result.halted_at.as_deref().unwrap_or("end"), &why, schedule);
        }
        if let Outcome::Stuck { why } = &result.outcome {
            if !inherited {
                violated = true;
                let key = format!("recovery|{}", schedule[0].fault.kind().as_str());
                self.violation(key, "recovery", InvariantClass::Availability, result.halted_at.as_deref().unwrap_or("end"), why, schedule);
            }
        }
        if unavailable && inherited {
            let fault = schedule.iter().find(|i| pre_existing(self.t, i.fault)).map(|i| i.fault.describe(self.t)).unwrap_or_default();
            let step = self.plan.steps[first.step as usize].id.clone();
            let why = result.final_unavailable[0].why.clone();
            let entry = self.exposures.entry(fault.clone()).or_insert_with(|| Exposure {
                fault,
                from_step: step.clone(),
                to_step: step.clone(),
                placements: 0,
                why,
            });
            entry.placements += 1;
            entry.to_step = step;
        }
        let undocumented = if matches!(result.outcome, Outcome::QuorumRecovered) {
            Some(RecoveryKind::QuorumRecovery)
        } else if !self.renew_documented && result.recoveries.contains(&RecoveryKind::Renew) {
            Some(RecoveryKind::Renew)
        } else {
            None
        };
        if let (1, Some(recovery), false) = (schedule.len(), undocumented, unavailable) {
            let fault = schedule[0].fault.describe(self.t);
            let step = self.plan.steps[first.step as usize].id.clone();
            let why = match &result.halt {
                Some(h) => h.to_string(),
                None => String::new(),
            };
            let entry = self.findings.entry(fault.clone()).or_insert_with(|| Finding {
                fault,
                from_step: step.clone(),
                to_step: step.clone(),
                placements: 0,
                recovery: recovery.describe(),
                why,
            });
            entry.placements += 1;
            entry.to_step = step;
        }
        if schedule.len() == 1 {
            let fault = schedule[0].fault.describe(self.t);
            let step = self.plan.steps[first.step as usize].id.clone();
            for d in &result.dominated {
                let key = format!("{fault}|{}|{}", d.documented.describe(), d.chosen.describe());
                let entry = self.dominated.entry(key).or_insert_with(|| DominatedRollback {
                    fault: fault.clone(),
                    from_step: step.clone(),
                    to_step: step.clone(),
                    placements: 0,
                    documented: d.documented.describe(),
                    documented_cost: d.documented_cost.clone(),
                    chosen: d.chosen.describe(),
                    chosen_cost: d.chosen_cost.clone(),
                });
                entry.placements += 1;
                entry.to_step = step.clone();
            }
        }
        if !result.recoveries.is_empty() && !inherited {
            let path = (phase_id.clone(), result.recoveries.clone());
            if violated || matches!(result.outcome, Outcome::Stuck { .. }) {
                self.failed.insert(path);
            } else {
                self.proven.insert(path);
            }
        }
        let summary = self.phases.entry(phase_index).or_insert_with(|| PhaseSummary { phase: phase_id, ..Default::default() });
        summary.placements += 1;
        match &result.outcome {
            Outcome::Completed if result.recoveries.is_empty() => summary.completed += 1,
            Outcome::Completed => summary.completed_after_recovery += 1,
            Outcome::RolledBack { .. } | Outcome::Halted { .. } => summary.rolled_back += 1,
            Outcome::QuorumRecovered => summary.quorum_recovered += 1,
            Outcome::RestoredFromSnapshot { .. } => summary.restored_from_snapshot += 1,
            Outcome::Stuck { .. } => summary.stuck += 1,
        }
        if violated {
            summary.violations += 1;
        }
        violated
    }
}

/// Explores every fault placement of `plan` on `t`.
///
/// # Caveats
/// At depth 2 the second fault strikes at plan points after the first (or with it), not inside
/// a recovery procedure.
pub fn check(t: &Topology, plan: &Plan, options: CheckOptions) -> CheckReport {
    let depth = options.depth.clamp(1, DEPTH_MAX);
    let explorer = Engine::new(t, plan, Recording::default());
    let accountant = Engine::new(t, plan, Recording { events: false, downtime: true });
    let no_fault = accountant.run(&[]);
    let (track, states) = explorer.track();
    let faults = Fault::all(t);

    let mut collector = Collector::new(t, plan, no_fault.broken.iter().map(|b| b.invariant).collect());
    for b in &no_fault.broken {
        collector.violation(format!("{}|none", b.invariant), b.invariant, b.class, &b.step, &b.why, &[]);
    }
    for u in &no_fault.undeclared {
        let why = format!("{} (no disruption declared for step {})", u.why, u.step);
        collector.violation(
            format!("{}|undeclared|{}", u.invariant, u.step),
            u.invariant,
            InvariantClass::Availability,
            &u.step,
            &why,
            &[],
        );
    }
    // The plan must reach its goal on its own: without faults it needs no recovery, and the
    // cluster it leaves survives the loss of any one master.
    if matches!(no_fault.outcome, Outcome::Completed) {
        if !no_fault.recoveries.is_empty() {
            let step = no_fault.halted_at.clone().unwrap_or_default();
            let taken: Vec<String> = no_fault.recoveries.iter().map(|r| r.describe()).collect();
            let halt = no_fault.halt.as_ref().map(|h| h.to_string()).unwrap_or_default();
            let why = format!("without any fault the plan needs a recovery it does not hold ({}): {halt}", taken.join(", "));
            collector.violation("plan-completes|recovered".to_string(), "plan-completes", InvariantClass::Availability, &step, &why, &[]);
        }
        if let Err(why) = plan_model::invariant::survives_any_master_loss(&no_fault.final_state, t) {
            collector.violation("ha-reached|none".to_string(), "ha-reached", InvariantClass::Availability, END_STATE, &why, &[]);
        }
        // The join command (a 24 h token) and the certificate key are credentials to join the
        // control plane: a plan that ends with them on a host leaves them to whoever reads it.
        if let Err(why) = plan_model::action::Check::NoJoinSecrets.evaluate(&no_fault.final_state, t) {
            collector.violation(
                "join-secrets-removed|none".to_string(),
                "join-secrets-removed",
                InvariantClass::Safety,
                END_STATE,
                &why,
                &[],
            );
        }
    }
    if let Outcome::Stuck { why } | Outcome::RolledBack { phase: why } | Outcome::Halted { step: why } = &no_fault.outcome {
        let step = no_fault.halted_at.clone().unwrap_or_default();
        let reason = no_fault.halt.as_ref().map(|h| h.to_string()).unwrap_or_else(|| why.clone());
        collector.violation("plan-completes|none".to_string(), "plan-completes", InvariantClass::Availability, &step, &reason, &[]);
    }

    // The fault placements, in a fixed number of interleaved shards so the figures do not
    // depend on the machine: each shard explores on its own thread, then they merge in order.
    let step_index: FxHashMap<&str, usize> = plan.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let shards: Vec<Shard> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SHARDS)
            .map(|shard| {
                let (explorer, track, states, faults) = (&explorer, &track, &states, &faults);
                let no_fault_broken = collector.no_fault_broken.clone();
                scope.spawn(move || {
                    let points: Vec<&(Point, plan_model::cluster::Cluster)> = states.iter().skip(shard).step_by(SHARDS).collect();
                    explore_shard(t, plan, explorer, track, faults, &points, depth, no_fault_broken)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("an exploration shard panicked")).collect()
    });
    let mut visited: FxHashSet<u64> = FxHashSet::default();
    let mut transitions = no_fault.transitions;
    let mut placements = 0usize;
    let mut deduplicated = 0usize;
    for (point, state) in &states {
        visited.insert(fingerprint_hash(state, *point, 0, t));
    }
    for shard in shards {
        visited.extend(shard.visited);
        transitions += shard.transitions;
        placements += shard.placements;
        deduplicated += shard.deduplicated;
        collector.merge(shard.collector, &step_index);
    }

    let mut violations: Vec<Violation> = collector.violations.into_values().collect();
    let recorder = Engine::new(t, plan, Recording { events: true, downtime: false });
    for v in &mut violations {
        if v.step == END_STATE && v.injections.is_empty() {
            // A property of the end state, not of an event: the plan's whole run is no trace.
            continue;
        }
        let result = recorder.run(&v.injections);
        v.trace = trace_lines(&result, &v.injections, plan, &v.invariant);
    }
    // A rollback path is a recovery sequence that undoes or holds (not a plain wait or renewal);
    // it is proven when every run that took it in that phase ended safe and available.
    let undoes = |path: &&(String, Vec<RecoveryKind>)| {
        path.1.iter().any(|r| {
            matches!(r, RecoveryKind::Rollback { .. } | RecoveryKind::Hold | RecoveryKind::QuorumRecovery | RecoveryKind::WorstCase)
        })
    };
    let rollback_paths_failed = collector.failed.iter().filter(undoes).count();
    let rollback_paths_proven = collector.proven.difference(&collector.failed).filter(undoes).count();
    let verdict = if violations.is_empty() { Verdict::Pass } else { Verdict::Fail };
    CheckReport {
        scenario: t.scenario.name.clone(),
        depth,
        verdict,
        figures: Figures {
            states: visited.len(),
            transitions,
            fault_placements: placements,
            deduplicated,
            rollback_paths_proven,
            rollback_paths_failed,
            plan_duration_s: no_fault.duration_s,
        },
        no_fault: NoFault { outcome: no_fault.outcome, duration_s: no_fault.duration_s, downtime: no_fault.downtime },
        phases: collector.phases.into_values().collect(),
        violations,
        findings: collector.findings.into_values().collect(),
        exposures: collector.exposures.into_values().collect(),
        dominated_rollbacks: collector.dominated.into_values().collect(),
    }
}

/// A run of steps over which one fault had the same kind of result: an exposure or a finding.
trait StepWindow {
    /// From step, to step, placements, and why (as seen at the earliest placement).
    fn window(&mut self) -> (&mut String, &mut String, &mut usize, &mut String);
}

impl StepWindow for Exposure {
    fn window(&mut self) -> (&mut String, &mut String, &mut usize, &mut String) {
        (&mut self.from_step, &mut self.to_step, &mut self.placements, &mut self.why)
    }
}

impl StepWindow for DominatedRollback {
    fn window(&mut self) -> (&mut String, &mut String, &mut usize, &mut String) {
        (&mut self.from_step, &mut self.to_step, &mut self.placements, &mut self.documented_cost)
    }
}

impl StepWindow for Finding {
    fn window(&mut self) -> (&mut String, &mut String, &mut usize, &mut String) {
        (&mut self.from_step, &mut self.to_step, &mut self.placements, &mut self.why)
    }
}

/// Takes in the windows a later shard found: placements add up, the window widens to cover
/// both, and the reason is the earliest placement's.
fn merge_windows<W: StepWindow>(into: &mut BTreeMap<String, W>, from: BTreeMap<String, W>, position: &dyn Fn(&str) -> usize) {
    for (key, mut later) in from {
        let Some(entry) = into.get_mut(&key) else {
            into.insert(key, later);
            continue;
        };
        let (from_step, to_step, placements, why) = later.window();
        let (entry_from, entry_to, entry_placements, entry_why) = entry.window();
        *entry_placements += *placements;
        if position(from_step) < position(entry_from) {
            *entry_from = std::mem::take(from_step);
            *entry_why = std::mem::take(why);
        }
        if position(to_step) > position(entry_to) {
            *entry_to = std::mem::take(to_step);
        }
    }
}

/// Fault placements are explored in this many shards (threads), whatever the machine.
const SHARDS: usize = 2;

/// What one shard of the exploration found.
struct Shard<'a> {
    collector: Collector<'a>,
    visited: FxHashSet<u64>,
    transitions: u64,
    placements: usize,
    deduplicated: usize,
}

#[allow(clippy::too_many_arguments)]
fn explore_shard<'a>(
    t: &'a Topology,
    plan: &'a Plan,
    explorer: &Engine<'_>,
    track: &crate::run::Track,
    faults: &[Fault],
    points: &[&(Point, plan_model::cluster::Cluster)],
    depth: u8,
    no_fault_broken: BTreeSet<&'static str>,
) -> Shard<'a> {
    let mut collector = Collector::new(t, plan, no_fault_broken);
    let mut visited: FxHashSet<u64> = FxHashSet::with_capacity_and_hasher(1 << 17, Default::default());
    let mut seen: FxHashSet<u64> = FxHashSet::with_capacity_and_hasher(1 << 18, Default::default());
    let (mut transitions, mut placements, mut deduplicated) = (0u64, 0usize, 0usize);
    for &&(point, state) in points {
        for fault in faults_at(faults, point) {
            let first = Injection { at: point, fault };
            let mut snapshots = Vec::new();
            let result = explorer.run_cursor(Cursor::at(state, point), &[first], Some(track), (depth > 1).then_some(&mut snapshots));
            transitions += result.transitions;
            placements += 1;
            visited.insert(fingerprint_hash(&result.final_state, point, fault_key(fault), t));
            collector.record(&[first], &result);
            if depth < 2 {
                continue;
            }
            // Pairs: a second fault at the same point, or wherever the first run went on to.
            for second in faults_at(faults, point) {
                if second == fault {
                    continue;
                }
                let pair = [first, Injection { at: point, fault: second }];
                let key = fingerprint_hash(&state, point, fault_key(fault) ^ fault_key(second).rotate_left(17), t);
                if !seen.insert(key) {
                    deduplicated += 1;
                    continue;
                }
                let result = explorer.run_cursor(Cursor::at(state, point), &pair, Some(track), None);
                transitions += result.transitions;
                placements += 1;
                collector.record(&pair, &result);
            }
            for cursor in snapshots {
                let at = Point { step: cursor.step as u16, action: cursor.action as u16 };
                if at == point {
                    continue;
                }
                let pending: u64 = cursor.pending.iter().fold(0, |h, (f, until)| h ^ fault_key(*f) ^ (*until as u64).rotate_left(32));
                for second in faults_at(faults, at) {
                    let key = fingerprint_hash(
                        &cursor.c,
                        at,
                        fault_key(second)
                            ^ pending.rotate_left(7)
                            ^ cursor.struck.minus(cursor.c.up).0.rotate_left(23)
                            ^ cursor.recoveries as u64
                            ^ ((cursor.skip_done as u64) << 63),
                        t,
                    );
                    visited.insert(key);
                    if !seen.insert(key) {
                        deduplicated += 1;
                        continue;
                    }
                    let schedule = [first, Injection { at, fault: second }];
                    let result = explorer.run_cursor(cursor.clone(), &schedule[1..], Some(track), None);
                    transitions += result.transitions;
                    placements += 1;
                    collector.record(&schedule, &result);
                }
            }
        }
    }
    Shard { collector, visited, transitions, placements, deduplicated }
}

/// Whether the plan uploads the control-plane certs again after a master has joined.
fn renews_certs(plan: &Plan) -> bool {
    let mut joined = false;
    for step in &plan.steps {
        for action in &step.actions {
            match action {
                Action::ControlPlaneUp(_) => joined = true,
                Action::UploadCerts if joined => return true,
                _ => {}
            }
        }
    }
    false
}

fn fault_key(fault: Fault) -> u64 {
    let mut h = FxHasher::default();
    fault.hash(&mut h);
    h.finish()
}

/// The events of a run as short lines, from the first fault's step (or the break, without
/// faults) up to the event that broke `invariant` (or the end).
pub fn trace_lines(result: &RunResult, schedule: &[Injection], plan: &Plan, invariant: &str) -> Vec<String> {
    let from = match schedule.first() {
        Some(first) => plan.steps[first.at.step as usize].id.clone(),
        None => result.broken.iter().find(|b| b.invariant == invariant).map(|b| b.step.clone()).unwrap_or_default(),
    };
    let start = result.events.iter().position(|e| e.step == from).unwrap_or(0);
    let mut lines = Vec::new();
    for event in &result.events[start..] {
        let mut line = format!("{:<6} {}", event.step, event.what);
        let mut detail: Vec<String> = event.changes.clone();
        detail.extend(event.flipped.iter().cloned());
        if !detail.is_empty() {
            line += &format!(" => {}", detail.join("; "));
        }
        if !event.broke.is_empty() {
            line += &format!("  BREAKS {}", event.broke.join(", "));
        }
        lines.push(line);
        if event.broke.iter().any(|b| b == invariant) {
            break;
        }
    }
    lines
}
