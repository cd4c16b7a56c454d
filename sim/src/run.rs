//! Runs a plan over the model with a fault schedule, the way the executor would.
//!
//! The executor applies each step's actions in order, checks before every step that reality
//! (liveness) matches the plan's expectation, and halts when a command is refused, a
//! verification fails or drift appears. On a halt it follows the executor's policy
//! ([`crate::policy`]): wait for a temporary fault and retry, renew expired credentials, the
//! phase's rollback, quorum recovery, and last the worst-case restore. Every recovery action is a
//! model transition too.

use crate::policy::{self, Dominated, Executor, Next};
use crate::recovery::RecoveryKind;
use plan_model::action::{self, Action, Refusal};
use plan_model::cluster::Cluster;
use plan_model::diff;
use plan_model::fault::Fault;
use plan_model::invariant::{self, InvariantClass, INVARIANTS};
use plan_model::observe;
use plan_model::plan::Plan;
use plan_model::topology::{NodeSet, Topology};
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;

/// A place in the plan: before action `action` of step `step` (`action` 0 is the step boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Point {
    pub step: u16,
    pub action: u16,
}

/// A fault and where it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Injection {
    pub at: Point,
    pub fault: Fault,
}

/// Why the executor stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "why")]
pub enum Halt {
    Refused(Refusal),
    /// Reality differs from the plan's expectation before a step.
    Drift(String),
    /// The step stopped after part of its actions.
    HalfWay,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Halt::Refused(r) => write!(f, "{}", r.reason),
            Halt::Drift(why) => write!(f, "drift: {why}"),
            Halt::HalfWay => write!(f, "the step failed half-way"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Outcome {
    /// The plan ran to its end (perhaps after waits and retries).
    Completed,
    RolledBack {
        phase: String,
    },
    /// Stopped after the cut-over with nothing to undo: the cluster runs on (dead members removed).
    Halted {
        step: String,
    },
    /// Quorum recovered by force-new-cluster, then the migration undone.
    QuorumRecovered,
    /// Restored from the newest snapshot: writes lost.
    RestoredFromSnapshot {
        lost_s: u32,
    },
    /// No recovery restored a working cluster.
    Stuck {
        why: String,
    },
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Completed => "completed".to_string(),
            Outcome::RolledBack { phase } => format!("rolled back phase {phase}"),
            Outcome::Halted { step } => format!("halted at {step}, the cluster runs on"),
            Outcome::QuorumRecovered => "quorum recovered (RQ), migration undone".to_string(),
            Outcome::RestoredFromSnapshot { lost_s } => {
                format!("restored from snapshot, {} of writes lost", plan_model::plan::format_duration(*lost_s))
            }
            Outcome::Stuck { why } => format!("stuck: {why}"),
        }
    }
}

/// The first time an invariant broke in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub invariant: &'static str,
    pub class: InvariantClass,
    pub step: String,
    pub clock_s: u32,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Action,
    Fault,
    Heal,
    Halt,
    Recovery,
    Skipped,
    Wait,
}

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub clock_s: u32,
    pub step: String,
    pub kind: EventKind,
    pub what: String,
    /// State fields that changed.
    pub changes: Vec<String>,
    /// Observations that flipped.
    pub flipped: Vec<String>,
    /// Invariants this event broke.
    pub broke: Vec<String>,
    /// A short disruption inside the action, if any: what and seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transient: Option<(String, u32)>,
}

/// Seconds a class of clients could not use the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ClassDowntime {
    pub down_s: u32,
    /// Some requests failed (the LB spread them over backends that differ).
    pub degraded_s: u32,
}

/// Client-visible downtime per consumer class, and NotReady node-seconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Downtime {
    pub consumers: BTreeMap<String, ClassDowntime>,
    pub node_not_ready_s: u32,
}

/// An availability invariant broken between steps without a declared disruption, in a run
/// without faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undeclared {
    pub step: String,
    pub invariant: &'static str,
    pub why: String,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub outcome: Outcome,
    pub recoveries: Vec<RecoveryKind>,
    /// Step id where the executor first halted, if it did.
    pub halted_at: Option<String>,
    pub halt: Option<Halt>,
    pub broken: Vec<Broken>,
    /// Availability invariants broken in the final state.
    pub final_unavailable: Vec<Broken>,
    pub downtime: Downtime,
    pub undeclared: Vec<Undeclared>,
    pub events: Vec<Event>,
    #[serde(skip)]
    pub final_state: Cluster,
    pub transitions: u64,
    /// Injections that struck (a later one may never come if the run stopped first).
    pub fired: usize,
    pub duration_s: u32,
    /// The run rejoined the no-fault track and took its outcome from there.
    pub rejoined: bool,
    /// Halts where the plan's documented recovery was beaten by the one taken.
    pub dominated: Vec<Dominated>,
}

/// What the engine records besides the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recording {
    /// Keep a timeline with state diffs and flipped observations (slow: for `simulate`).
    pub events: bool,
    /// Count client-visible downtime and undeclared outages.
    pub downtime: bool,
}

/// Runs plans over the model.
pub struct Engine<'a> {
    pub t: &'a Topology,
    pub plan: &'a Plan,
    pub recording: Recording,
}

struct Run<'e, 'a> {
    engine: &'e Engine<'a>,
    c: Cluster,
    pending: Vec<(Fault, u32)>,
    events: Vec<Event>,
    broken: Vec<Broken>,
    downtime: Downtime,
    undeclared: Vec<Undeclared>,
    recoveries: Vec<RecoveryKind>,
    transitions: u64,
    halted_at: Option<String>,
    halt: Option<Halt>,
    /// Nodes a fault took down, for good or for a while: unlike a node the plan itself shut
    /// down, the operator cannot just boot them.
    struck: NodeSet,
    dominated: Vec<Dominated>,
}

impl<'e, 'a> Run<'e, 'a> {
    fn t(&self) -> &'a Topology {
        self.engine.t
    }

    fn check_safety(&mut self, step: &str) -> Vec<String> {
        let mut now = Vec::new();
        for inv in INVARIANTS.iter().filter(|i| i.class == InvariantClass::Safety) {
            if self.broken.iter().any(|b| b.invariant == inv.name) {
                continue;
            }
            if let Err(why) = (inv.holds)(&self.c, self.t()) {
                now.push(inv.name.to_string());
                self.broken.push(Broken { invariant: inv.name, class: inv.class, step: step.to_string(), clock_s: self.c.clock_s, why });
            }
        }
        now
    }

    fn charge(&mut self, state: &Cluster, seconds: u32) {
        if !self.engine.recording.downtime || seconds == 0 {
            return;
        }
        let t = self.t();
        let mut worst: BTreeMap<&'static str, (bool, bool)> = BTreeMap::new();
        for (i, consumer) in t.consumers.iter().enumerate() {
            let reach = observe::consumer_reach(state, t, i);
            let entry = worst.entry(consumer.kind.as_str()).or_default();
            entry.0 |= reach.is_down();
            entry.1 |= matches!(reach, observe::Reach::Intermittent(_));
        }
        for (kind, (down, degraded)) in worst {
            let class = self.downtime.consumers.entry(kind.to_string()).or_default();
            if down {
                class.down_s += seconds;
            } else if degraded {
                class.degraded_s += seconds;
            }
        }
        let not_ready = state.joined.and(state.up).iter().filter(|n| observe::node_ready(state, t, *n).is_down()).count() as u32;
        self.downtime.node_not_ready_s += not_ready * seconds;
    }

    fn record(
        &mut self,
        step: &str,
        kind: EventKind,
        what: String,
        before: &Cluster,
        broke: Vec<String>,
        transient: Option<(String, u32)>,
    ) {
        if !self.engine.recording.events {
            return;
        }
        let t = self.t();
        self.events.push(Event {
            clock_s: before.clock_s,
            step: step.to_string(),
            kind,
            what,
            changes: diff::state_diff(before, &self.c, t),
            flipped: diff::flipped(before, &self.c, t),
            broke,
            transient,
        });
    }

    fn note(&mut self, step: &str, kind: EventKind, what: String) {
        if self.engine.recording.events {
            self.events.push(Event {
                clock_s: self.c.clock_s,
                step: step.to_string(),
                kind,
                what,
                changes: vec![],
                flipped: vec![],
                broke: vec![],
                transient: None,
            });
        }
    }

    fn apply(&mut self, a: Action, step: &str, kind: EventKind) -> Result<(), Refusal> {
        let t = self.t();
        let next = action::apply(&self.c, t, a)?;
        self.transitions += 1;
        let before = self.c;
        let transient = action::transient(&before, t, a);
        if self.engine.recording.downtime {
            self.charge(&before, a.duration_s());
            if let Some(tr) = transient {
                self.charge(&tr.during, tr.seconds);
            }
        }
        self.c = next;
        let broke = self.check_safety(step);
        if self.engine.recording.events {
            let what = a.describe(t);
            self.record(step, kind, what, &before, broke, transient.map(|tr| (tr.what.to_string(), tr.seconds)));
        }
        Ok(())
    }

    fn strike(&mut self, fault: Fault, step: &str) {
        let before = self.c;
        self.struck = self.struck.or(fault.nodes_down(self.t()));
        self.c = fault.strike(&self.c, self.t());
        if let Some(lasts) = fault.lasts_s() {
            if !matches!(fault, Fault::OperatorAway { .. }) {
                self.pending.push((fault, self.c.clock_s.saturating_add(lasts)));
            } else if self.engine.recording.downtime {
                self.charge(&before, lasts);
            }
        }
        let broke = self.check_safety(step);
        if self.engine.recording.events {
            let what = format!("FAULT: {}", fault.describe(self.t()));
            self.record(step, EventKind::Fault, what, &before, broke, None);
        }
    }

    fn heal_due(&mut self, step: &str) {
        while let Some(i) = self.pending.iter().position(|(_, at)| *at <= self.c.clock_s) {
            let (fault, _) = self.pending.remove(i);
            self.heal(fault, step);
        }
    }

    fn heal(&mut self, fault: Fault, step: &str) {
        let before = self.c;
        self.struck = self.struck.minus(fault.nodes_down(self.t()));
        self.c = fault.heal(&self.c, self.t());
        let broke = self.check_safety(step);
        if self.engine.recording.events {
            let what = format!("fault over: {}", fault.describe(self.t()));
            self.record(step, EventKind::Heal, what, &before, broke, None);
        }
    }

    /// The part of a step's estimated duration its actions do not account for (reading
    /// output, editing, waiting for pods) passes once the step is done, so the clock, the
    /// TTLs and the plan's total agree with `plan show`.
    fn finish_step_time(&mut self, s: &plan_model::plan::Step) {
        let actions_s: u32 = s.actions.iter().map(|a| a.duration_s()).sum();
        let rest = s.duration_s.saturating_sub(actions_s);
        if rest > 0 {
            let state = self.c;
            self.charge(&state, rest);
            self.c.clock_s = self.c.clock_s.saturating_add(rest);
        }
    }

    /// Waits until every temporary fault is over.
    fn wait_for_pending(&mut self, step: &str) {
        let until = self.pending.iter().map(|(_, at)| *at).max().unwrap_or(self.c.clock_s);
        let wait = until.saturating_sub(self.c.clock_s);
        let state = self.c;
        self.charge(&state, wait);
        self.c.clock_s = until.max(self.c.clock_s);
        self.note(step, EventKind::Wait, format!("wait {} for the fault to clear", plan_model::plan::format_duration(wait)));
        self.heal_due(step);
    }

    /// The halt is recorded (the first one is the run's), then the policy chooses.
    fn recover(&mut self, step: usize, halt: Halt, count: &mut u32) -> Next {
        let first = self.halted_at.is_none();
        if first {
            self.halted_at = Some(self.engine.plan.steps[step].id.clone());
        }
        let next = match policy::recover(self, self.engine.t, self.engine.plan, step, &halt, count) {
            Ok(next) => next,
            Err(never) => match never {},
        };
        if first {
            self.halt = Some(halt);
        }
        next
    }
}

/// The twin carries recovery actions out on the model alone: nothing underneath can fail.
impl Executor for Run<'_, '_> {
    type Error = Infallible;

    fn cluster(&self) -> &Cluster {
        &self.c
    }

    fn struck(&self) -> NodeSet {
        self.struck
    }

    fn fault_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn wait_for_pending(&mut self, step: &str) -> Result<(), Infallible> {
        Run::wait_for_pending(self, step);
        Ok(())
    }

    fn apply(&mut self, action: Action, step: &str) -> Result<Result<(), Refusal>, Infallible> {
        Ok(Run::apply(self, action, step, EventKind::Recovery))
    }

    fn took(&mut self, kind: RecoveryKind) {
        self.recoveries.push(kind);
    }

    fn note(&mut self, step: &str, kind: EventKind, what: String) {
        Run::note(self, step, kind, what);
    }

    fn dominated(&mut self, dominated: Dominated) {
        self.dominated.push(dominated);
    }
}

impl<'a> Engine<'a> {
    pub fn new(t: &'a Topology, plan: &'a Plan, recording: Recording) -> Self {
        Engine { t, plan, recording }
    }

    /// Runs the plan from the scenario's initial state with `schedule`.
    pub fn run(&self, schedule: &[Injection]) -> RunResult {
        self.run_cursor(Cursor::start(Cluster::initial(self.t)), schedule, None, None)
    }

    /// Runs the plan from `cursor` with `schedule`. With a `track` (the no-fault run), a run that
    /// rejoins it (same fingerprint at the same point, nothing pending) ends there with the
    /// track's outcome. With `snapshots`, every plan point passed after the last injection
    /// struck is recorded, for placing a further fault there.
    pub fn run_cursor(
        &self,
        cursor: Cursor,
        schedule: &[Injection],
        track: Option<&Track>,
        mut snapshots: Option<&mut Vec<Cursor>>,
    ) -> RunResult {
        let plan = self.plan;
        let mut r = Run {
            engine: self,
            c: cursor.c,
            pending: cursor.pending,
            events: Vec::new(),
            broken: Vec::new(),
            downtime: Downtime::default(),
            undeclared: Vec::new(),
            recoveries: Vec::new(),
            transitions: 0,
            halted_at: None,
            halt: None,
            struck: cursor.struck,
            dominated: Vec::new(),
        };
        let start_clock = cursor.c.clock_s;
        r.check_safety(plan.steps.get(cursor.step).map(|s| s.id.as_str()).unwrap_or("start"));
        let mut fired = vec![false; schedule.len()];
        let mut step = cursor.step;
        let mut k = cursor.action;
        let mut skip_done = cursor.skip_done;
        let mut recoveries = cursor.recoveries;
        let mut rejoined = false;
        let outcome = 'plan: loop {
            let Some(s) = plan.steps.get(step) else {
                break Outcome::Completed;
            };
            let halt = loop {
                let point = Point { step: step as u16, action: k as u16 };
                let all_fired = fired.iter().all(|f| *f);
                if all_fired && r.pending.is_empty() && !skip_done {
                    if let Some(track) = track {
                        if track.fingerprints.get(&point) == Some(&r.c.fingerprint(self.t)) {
                            rejoined = true;
                            break 'plan track.outcome.clone();
                        }
                    }
                }
                if all_fired && !schedule.is_empty() {
                    if let Some(out) = snapshots.as_deref_mut() {
                        out.push(Cursor { c: r.c, pending: r.pending.clone(), step, action: k, skip_done, recoveries, struck: r.struck });
                    }
                }
                let mut halfway = false;
                let mut crashed = false;
                for (i, injection) in schedule.iter().enumerate() {
                    if !fired[i] && injection.at == point {
                        fired[i] = true;
                        match injection.fault {
                            Fault::StepFailsHalfway => halfway = true,
                            Fault::ExecutorCrash => crashed = true,
                            fault => r.strike(fault, &s.id),
                        }
                    }
                }
                r.heal_due(&s.id);
                if crashed {
                    r.note(&s.id, EventKind::Fault, "FAULT: executor crashes; on restart it resumes the step from its journal".to_string());
                    r.recoveries.push(RecoveryKind::Resume);
                    k = 0;
                    skip_done = true;
                    continue;
                }
                if halfway {
                    r.note(&s.id, EventKind::Fault, "FAULT: the step fails half-way".to_string());
                    break Some(Halt::HalfWay);
                }
                if k == 0 {
                    if let Some(why) = policy::drift(&r.c, self.t) {
                        break Some(Halt::Drift(why));
                    }
                }
                let Some(&a) = s.actions.get(k) else {
                    break None;
                };
                if skip_done && action::already_done(&r.c, a) {
                    k += 1;
                    continue;
                }
                if let Err(refusal) = r.apply(a, &s.id, EventKind::Action) {
                    break Some(Halt::Refused(refusal));
                }
                if self.recording.downtime && schedule.is_empty() {
                    let mid = k + 1 < s.actions.len();
                    for inv in INVARIANTS.iter().filter(|i| i.class == InvariantClass::Availability) {
                        if let Err(why) = (inv.holds)(&r.c, self.t) {
                            let declared_window = mid && s.disruption.is_some();
                            let already_noted = r.undeclared.iter().any(|u| u.step == s.id && u.invariant == inv.name);
                            if !declared_window && !already_noted {
                                r.undeclared.push(Undeclared { step: s.id.clone(), invariant: inv.name, why });
                            }
                        }
                    }
                }
                k += 1;
            };
            match halt {
                None => {
                    r.finish_step_time(s);
                    step += 1;
                    k = 0;
                    skip_done = false;
                }
                Some(halt) => match r.recover(step, halt, &mut recoveries) {
                    Next::Retry => {
                        skip_done = true;
                        k = 0;
                    }
                    Next::Stop(outcome) => break outcome,
                },
            }
        };
        // Temporary faults still running end on their own; the final state is after them.
        if !r.pending.is_empty() {
            let last = plan.steps.last().map(|s| s.id.clone()).unwrap_or_default();
            r.wait_for_pending(&last);
        }
        let final_unavailable = match (rejoined, track) {
            (true, Some(track)) => track.final_unavailable.clone(),
            _ => INVARIANTS
                .iter()
                .filter(|i| i.class == InvariantClass::Availability)
                .filter_map(|i| {
                    (i.holds)(&r.c, self.t).err().map(|why| Broken {
                        invariant: i.name,
                        class: i.class,
                        step: "end".to_string(),
                        clock_s: r.c.clock_s,
                        why,
                    })
                })
                .collect(),
        };
        RunResult {
            outcome,
            recoveries: r.recoveries,
            halted_at: r.halted_at,
            halt: r.halt,
            broken: r.broken,
            final_unavailable,
            downtime: r.downtime,
            undeclared: r.undeclared,
            events: r.events,
            final_state: r.c,
            transitions: r.transitions,
            fired: fired.iter().filter(|f| **f).count(),
            duration_s: r.c.clock_s - start_clock,
            rejoined,
            dominated: r.dominated,
        }
    }

    /// The no-fault run as a track: its fingerprint at every point, its outcome.
    pub fn track(&self) -> (Track, Vec<(Point, Cluster)>) {
        let mut c = Cluster::initial(self.t);
        let mut fingerprints = rustc_hash::FxHashMap::default();
        let mut states = Vec::new();
        'steps: for (i, s) in self.plan.steps.iter().enumerate() {
            for k in 0..s.actions.len().max(1) {
                let point = Point { step: i as u16, action: k as u16 };
                fingerprints.insert(point, c.fingerprint(self.t));
                states.push((point, c));
                let Some(&a) = s.actions.get(k) else { continue };
                match action::apply(&c, self.t, a) {
                    Ok(next) => c = next,
                    Err(_) => break 'steps,
                }
            }
        }
        let result = self.run(&[]);
        let complete = matches!(result.outcome, Outcome::Completed);
        (
            Track {
                fingerprints: if complete { fingerprints } else { Default::default() },
                outcome: result.outcome,
                final_unavailable: result.final_unavailable,
            },
            states,
        )
    }
}

/// Where a run is: enough to continue it.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub c: Cluster,
    pub pending: Vec<(Fault, u32)>,
    pub step: usize,
    pub action: usize,
    pub skip_done: bool,
    pub recoveries: u32,
    /// Nodes faults have taken down so far.
    pub struck: NodeSet,
}

impl Cursor {
    pub fn start(c: Cluster) -> Cursor {
        Cursor { c, pending: Vec::new(), step: 0, action: 0, skip_done: false, recoveries: 0, struck: NodeSet::EMPTY }
    }

    pub fn at(c: Cluster, point: Point) -> Cursor {
        Cursor {
            c,
            pending: Vec::new(),
            step: point.step as usize,
            action: point.action as usize,
            skip_done: false,
            recoveries: 0,
            struck: NodeSet::EMPTY,
        }
    }
}

/// The no-fault run, for runs to rejoin.
#[derive(Debug, Clone)]
pub struct Track {
    pub fingerprints: rustc_hash::FxHashMap<Point, Cluster>,
    pub outcome: Outcome,
    pub final_unavailable: Vec<Broken>,
}

/// Whether `fault` would break availability on the cluster before any migration: an exposure
/// the migration inherits (the single master), not one it adds.
pub fn pre_existing(t: &Topology, fault: Fault) -> bool {
    let before = Cluster::initial(t);
    let struck = fault.strike(&before, t);
    let settled = if fault.lasts_s().is_some() { fault.heal(&struck, t) } else { struck };
    invariant::first_broken(&struck, t, InvariantClass::Availability).is_some()
        && invariant::first_broken(&settled, t, InvariantClass::Availability).is_some()
}
