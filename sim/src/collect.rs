//! What the exploration found, placement by placement: violations with their shortest
//! schedule, the table per phase, exposures, findings, dominated rollbacks and rollback paths.
//! Messages are built when an entry is made (or its schedule is replaced by a shorter one),
//! never for a placement that only adds to a count.

use crate::explore::{DominatedRollback, Exposure, Finding, PhaseSummary, Placed, Violation};
use crate::memo::Summary;
use crate::recovery::RecoveryKind;
use crate::run::{pre_existing, Injection, Outcome};
use plan_model::action::Action;
use plan_model::fault::Fault;
use plan_model::invariant::{InvariantClass, INVARIANTS};
use plan_model::plan::Plan;
use plan_model::topology::Topology;
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

/// A phase and the recoveries a run took in it.
type RollbackPath = (String, Vec<RecoveryKind>);

/// A [`RollbackPath`] with its phase numbered ([`Collector::phase_named`]).
type NumberedPath = (u32, Vec<RecoveryKind>);

pub(crate) struct Collector<'a> {
    t: &'a Topology,
    plan: &'a Plan,
    pub(crate) no_fault_broken: BTreeSet<&'static str>,
    pub(crate) violations: BTreeMap<String, Violation>,
    /// The table per phase, by index in the plan's phases (one look-up per placement: by
    /// index, not in a map), in that order.
    pub(crate) phases: Vec<Option<PhaseSummary>>,
    pub(crate) exposures: BTreeMap<String, Exposure>,
    pub(crate) findings: BTreeMap<String, Finding>,
    pub(crate) dominated: BTreeMap<String, DominatedRollback>,
    pub(crate) proven: BTreeSet<RollbackPath>,
    pub(crate) failed: BTreeSet<RollbackPath>,
    /// The (proven or failed) rollback paths already taken in, by a hash of the phase and the
    /// recoveries: most placements take one already known, and need not build it to find out.
    /// Each with its phase by [`Collector::phase_named`], compared as a number, not a name.
    paths_known: FxHashMap<(bool, u64), Vec<NumberedPath>>,
    /// The phase of every step, numbered by name in the order the plan reaches them (two
    /// steps have the same number if and only if their phases have the same name).
    phase_named: Vec<u32>,
    /// The plan re-uploads the control-plane certs after a join, so renewing expired ones is
    /// a recovery it documents; without such a step a renewal is the twin's own invention.
    renew_documented: bool,
    /// The phase of every step, by index in the plan's phases.
    phase_of_step: Vec<usize>,
    /// What each fault is, in words, and whether the cluster suffers it before the migration.
    faults: FxHashMap<Fault, (String, bool)>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(t: &'a Topology, plan: &'a Plan, no_fault_broken: BTreeSet<&'static str>) -> Collector<'a> {
        let phase_of_step = plan.steps.iter().map(|s| plan.phases.iter().position(|p| p.id == s.phase).unwrap_or(0)).collect();
        let mut names: Vec<&str> = Vec::new();
        let phase_named = plan
            .steps
            .iter()
            .map(|s| {
                let number = names.iter().position(|p| *p == s.phase).unwrap_or_else(|| {
                    names.push(&s.phase);
                    names.len() - 1
                });
                number as u32
            })
            .collect();
        let faults = Fault::all(t).into_iter().map(|f| (f, (f.describe(t), pre_existing(t, f)))).collect();
        Collector {
            paths_known: FxHashMap::default(),
            phase_named,
            phase_of_step,
            faults,
            t,
            plan,
            no_fault_broken,
            violations: BTreeMap::new(),
            phases: vec![None; plan.phases.len().max(1)],
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
    pub(crate) fn merge(&mut self, other: Collector<'_>, step_index: &FxHashMap<&str, usize>) {
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
        for (index, p) in other.phases.into_iter().enumerate().filter_map(|(index, p)| Some((index, p?))) {
            let entry = self.phases[index].get_or_insert_with(|| PhaseSummary { phase: p.phase.clone(), ..Default::default() });
            entry.placements += p.placements;
            entry.completed += p.completed;
            entry.completed_after_recovery += p.completed_after_recovery;
            entry.rolled_back += p.rolled_back;
            entry.went_on += p.went_on;
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
                description: self.describe(i.fault),
            })
            .collect()
    }

    fn describe(&self, fault: Fault) -> String {
        self.faults.get(&fault).map_or_else(|| fault.describe(self.t), |(words, _)| words.clone())
    }

    fn pre_existing(&self, fault: Fault) -> bool {
        self.faults.get(&fault).map_or_else(|| pre_existing(self.t, fault), |(_, inherited)| *inherited)
    }

    /// Counts a schedule against the violation `key`; the entry keeps the shortest schedule
    /// (the first found among equals), with the step and the reason (`why`, built only here).
    pub(crate) fn violation(
        &mut self,
        key: String,
        invariant: &str,
        class: InvariantClass,
        step: &str,
        why: impl FnOnce() -> String,
        schedule: &[Injection],
    ) {
        let shorter = match self.violations.get(&key) {
            None => true,
            Some(entry) => schedule.len() < entry.schedule.len(),
        };
        if !shorter {
            if let Some(entry) = self.violations.get_mut(&key) {
                entry.schedules += 1;
            }
            return;
        }
        let placed = self.placed(schedule);
        let why = why();
        let entry = self.violations.entry(key).or_insert_with(|| Violation {
            invariant: invariant.to_string(),
            class,
            step: String::new(),
            why: String::new(),
            schedule: Vec::new(),
            schedules: 0,
            trace: Vec::new(),
            injections: Vec::new(),
        });
        entry.schedules += 1;
        entry.schedule = placed;
        entry.injections = schedule.to_vec();
        entry.step = step.to_string();
        entry.why = why;
    }

    /// Takes in one placement's run (`inherited`: one of its faults is one the cluster suffers
    /// before the migration, as the caller worked out); returns whether it violated an invariant.
    pub(crate) fn record(&mut self, schedule: &[Injection], result: &Summary, inherited: bool) -> bool {
        debug_assert_eq!(inherited, schedule.iter().any(|i| self.pre_existing(i.fault)));
        let first = schedule[0].at;
        let phase_index = self.phase_of_step[first.step as usize];
        let t = self.t;
        let kinds = || schedule.iter().map(|i| i.fault.kind().as_str()).collect::<Vec<_>>().join("+");
        let mut violated = false;
        for b in result.breaks() {
            let invariant = b.invariant();
            if invariant.class == InvariantClass::Safety && !self.no_fault_broken.contains(invariant.name) {
                violated = true;
                let key = format!("{}|{}", invariant.name, kinds());
                self.violation(key, invariant.name, invariant.class, &b.step, || b.why(t), schedule);
            }
        }
        let end = result.end();
        let first_unavailable = end.unavailable().next();
        let halted_at = result.halt().map_or("end", |h| self.plan.steps[h.step].id.as_str());
        if let (Some(index), false) = (first_unavailable, inherited) {
            violated = true;
            let invariant = &INVARIANTS[index];
            let key = format!("{}|{}|not-restored", invariant.name, kinds());
            let why = || format!("not restored after {}: {}", end.outcome.label(), end.why(index, t));
            self.violation(key, invariant.name, invariant.class, halted_at, why, schedule);
        }
        if let Outcome::Stuck { why } = &end.outcome {
            if !inherited {
                violated = true;
                let key = format!("recovery|{}", schedule[0].fault.kind().as_str());
                self.violation(key, "recovery", InvariantClass::Availability, halted_at, || why.clone(), schedule);
            }
        }
        // A documented recovery that loses data or leaves the API down where another keeps
        // both is the plan's own fault, even after a fault the single master already suffers.
        for d in result.dominated().iter().filter(|d| d.harms) {
            violated = true;
            let key = format!("documented-recovery|{}|{}", d.documented.describe(), kinds());
            let why = || {
                format!(
                    "the plan documents {} here ({}); {} keeps the data and the API up ({})",
                    d.documented.describe(),
                    d.documented_cost,
                    d.chosen.describe(),
                    d.chosen_cost
                )
            };
            self.violation(key, "documented-recovery", InvariantClass::Availability, &d.step, why, schedule);
        }
        let step = &self.plan.steps[first.step as usize].id;
        if let (Some(index), true) = (first_unavailable, inherited) {
            // The fault in words, borrowed (not copied) for the look-up most placements end at.
            let fault: std::borrow::Cow<str> = match schedule.iter().find(|i| self.pre_existing(i.fault)) {
                Some(i) => self.faults.get(&i.fault).map_or_else(|| i.fault.describe(t).into(), |(words, _)| words.as_str().into()),
                None => "".into(),
            };
            match self.exposures.get_mut(fault.as_ref()) {
                Some(entry) => {
                    entry.placements += 1;
                    entry.to_step.clone_from(step);
                }
                None => {
                    let fault = fault.into_owned();
                    let why = end.why(index, t);
                    let exposure = Exposure { fault: fault.clone(), from_step: step.clone(), to_step: step.clone(), placements: 1, why };
                    self.exposures.insert(fault, exposure);
                }
            }
        }
        if schedule.len() == 1 {
            self.record_single(schedule[0], result, first_unavailable.is_some());
        }
        if result.has_recoveries() && !inherited {
            let failed = violated || matches!(end.outcome, Outcome::Stuck { .. });
            self.take_path(first.step as usize, failed, result);
        }
        let phase = &self.plan.steps[first.step as usize].phase;
        let summary = self.phases[phase_index].get_or_insert_with(|| PhaseSummary { phase: phase.clone(), ..Default::default() });
        summary.placements += 1;
        match &end.outcome {
            Outcome::Completed if !result.has_recoveries() => summary.completed += 1,
            Outcome::Completed => summary.completed_after_recovery += 1,
            Outcome::RolledBack { .. } | Outcome::Halted { .. } => summary.rolled_back += 1,
            Outcome::WentOn { .. } => summary.went_on += 1,
            Outcome::QuorumRecovered => summary.quorum_recovered += 1,
            Outcome::RestoredFromSnapshot { .. } => summary.restored_from_snapshot += 1,
            Outcome::Stuck { .. } => summary.stuck += 1,
        }
        if violated {
            summary.violations += 1;
        }
        violated
    }

    /// A single fault's findings (recovered only by a recovery the source plan lacks) and
    /// dominated documented recoveries.
    fn record_single(&mut self, injection: Injection, result: &Summary, unavailable: bool) {
        let end = result.end();
        let undocumented = if matches!(end.outcome, Outcome::QuorumRecovered) {
            Some(RecoveryKind::QuorumRecovery)
        } else if !self.renew_documented && result.recoveries().contains(&RecoveryKind::Renew) {
            Some(RecoveryKind::Renew)
        } else {
            None
        };
        let fault = self.describe(injection.fault);
        let step = self.plan.steps[injection.at.step as usize].id.clone();
        if let (Some(recovery), false) = (undocumented, unavailable) {
            // The halt is worded for the entry only (a refusal is kept unworded until then).
            let t = self.t;
            let entry = self.findings.entry(fault.clone()).or_insert_with(|| Finding {
                fault: fault.clone(),
                from_step: step.clone(),
                to_step: step.clone(),
                placements: 0,
                recovery: recovery.describe(),
                why: result.halt().map_or_else(String::new, |h| h.halt(t).to_string()),
            });
            entry.placements += 1;
            entry.to_step.clone_from(&step);
        }
        for d in result.dominated() {
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
            entry.to_step.clone_from(&step);
        }
    }

    /// Takes in the recovery sequence a placement took in its first fault's phase, as proven
    /// or failed; built only the first time it is seen.
    fn take_path(&mut self, step: usize, failed: bool, result: &Summary) {
        let phase_named = self.phase_named[step];
        let mut h = FxHasher::default();
        phase_named.hash(&mut h);
        for r in result.recoveries() {
            r.hash(&mut h);
        }
        let known = self.paths_known.entry((failed, h.finish())).or_default();
        if known.iter().any(|(p, rs)| *p == phase_named && rs.as_slice() == result.recoveries()) {
            return;
        }
        let recoveries: Vec<RecoveryKind> = result.recoveries().to_vec();
        known.push((phase_named, recoveries.clone()));
        let phase = self.plan.steps[step].phase.clone();
        if failed {
            self.failed.insert((phase, recoveries));
        } else {
            self.proven.insert((phase, recoveries));
        }
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

/// Whether the plan uploads the control-plane certs again after a master has joined.
pub(crate) fn renews_certs(plan: &Plan) -> bool {
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
