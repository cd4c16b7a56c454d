//! Runs a plan over the model with a fault schedule, the way the executor would.
//!
//! The executor applies each step's actions in order, checks before every step that reality
//! (liveness) matches the plan's expectation, and halts when a command is refused, a
//! verification fails or drift appears. On a halt it follows the executor's policy
//! ([`crate::policy`]): wait for a temporary fault and retry, renew expired credentials, the
//! phase's rollback, quorum recovery, and last the worst-case restore. Every recovery action is a
//! model transition too.

use crate::policy::{self, Dominated, Executor};
use crate::recovery::RecoveryKind;
use crate::step::{self, Place};
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

mod outcome;
pub use crate::cursor::{Cursor, Track};
pub(crate) use crate::step::{Flow, Position};

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

pub use outcome::{Broken, ClassDowntime, Downtime, Event, EventKind, Halt, Outcome, StoppedAt, Undeclared};

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
    /// Every drift in words, written once.
    drifts: policy::DriftWords,
    /// The kind of recovery taken at every halt ([`Engine::choosing`]); `None`: the search's best.
    chosen: Option<&'static str>,
}

pub(crate) struct Run<'e, 'a> {
    engine: &'e Engine<'a>,
    pub(crate) c: Cluster,
    pub(crate) pending: crate::cursor::Pending,
    events: Vec<Event>,
    broken: Vec<Broken>,
    downtime: Downtime,
    undeclared: Vec<Undeclared>,
    pub(crate) recoveries: crate::memo::Recoveries,
    pub(crate) transitions: u64,
    /// Every halt, in order, with the step it halted in (by index in the plan; the first is
    /// the run's).
    pub(crate) halts: crate::memo::Halts,
    /// Nodes a fault took down, for good or for a while: unlike a node the plan itself shut
    /// down, the operator cannot just boot them.
    pub(crate) struck: NodeSet,
    pub(crate) dominated: Vec<Dominated>,
    /// Messages deferred (the exploration): safety breaks are kept as [`Break`]s, with the
    /// state to explain them from, instead of as [`Broken`]s.
    lazy: bool,
    pub(crate) breaks: Vec<Break>,
    /// Safety invariants (bits by index in `INVARIANTS`) broken in the state now, and ever in
    /// this run.
    broken_now: u32,
    ever_broken: u32,
    /// The safety invariants whose breaks a lazy run keeps (the others the caller ignores).
    pub(crate) reported: u32,
    /// Rankings already made, for a run that shares them (the exploration).
    pub(crate) rankings: Option<&'e mut crate::memo::Rankings>,
    /// A lazy run's last refused action (left unworded), and at a halt on it, the action with
    /// the state it was refused in, to word the halt where it is reported.
    refused: Option<Action>,
    halt_refused: Option<std::rc::Rc<(Action, Cluster)>>,
}

/// A safety invariant going from holding to broken in a run, with the state it broke in: its
/// message is built from that state, and only when the break is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Index in `INVARIANTS`.
    pub invariant: usize,
    pub step: String,
    pub state: Cluster,
}

impl Break {
    pub fn invariant(&self) -> &'static invariant::Invariant {
        &INVARIANTS[self.invariant]
    }

    /// Why the invariant broke, in words.
    pub fn why(&self, t: &Topology) -> String {
        (self.invariant().explain)(&self.state, t).expect("a break is recorded on a state that breaks the invariant")
    }
}

impl<'e, 'a> Run<'e, 'a> {
    pub(crate) fn t(&self) -> &'a Topology {
        self.engine.t
    }

    pub(crate) fn plan(&self) -> &'a Plan {
        self.engine.plan
    }

    /// Checks the safety invariants on the state a run starts from, at the step it starts in.
    pub(crate) fn check_safety_at_start(&mut self, step: usize) {
        let plan = self.engine.plan;
        self.check_safety(plan.steps.get(step).map(|s| s.id.as_str()).unwrap_or("start"));
    }

    /// Safety invariants broken in the state now (bits by index in `INVARIANTS`).
    pub(crate) fn broken_now(&self) -> u32 {
        self.broken_now
    }

    /// The safety invariants a check reads (bits by index in `INVARIANTS`): a lazy run keeps
    /// breaks of the reported invariants only (and marks read no others), the rest are not
    /// evaluated at all.
    fn asked(&self) -> u32 {
        if self.lazy {
            SAFETY & self.reported
        } else {
            SAFETY
        }
    }

    /// Checks the safety invariants on the state now; returns the names of those broken for
    /// the first time in this run (for the timeline).
    fn check_safety(&mut self, step: &str) -> Vec<String> {
        let t = self.t();
        let now = invariant::safety_broken(&self.c, t, self.asked());
        let first = now & !self.ever_broken;
        let newly = now & !self.broken_now;
        self.ever_broken |= now;
        self.broken_now = now;
        if self.lazy {
            for i in bits(newly & self.reported) {
                self.breaks.push(Break { invariant: i, step: step.to_string(), state: self.c });
            }
            return Vec::new();
        }
        let mut names = Vec::new();
        for i in bits(first) {
            let inv = &INVARIANTS[i];
            let why = (inv.explain)(&self.c, t).expect("the invariant was just found broken");
            names.push(inv.name.to_string());
            self.broken.push(Broken { invariant: inv.name, class: inv.class, step: step.to_string(), clock_s: self.c.clock_s, why });
        }
        names
    }

    fn charge(&mut self, state: &Cluster, seconds: u32) {
        if !self.engine.recording.downtime || seconds == 0 {
            return;
        }
        let t = self.t();
        let mut worst: BTreeMap<&'static str, (bool, bool)> = BTreeMap::new();
        for (consumer, reach) in t.consumers.iter().zip(observe::consumers_reachability(state, t)) {
            let entry = worst.entry(consumer.kind.as_str()).or_default();
            entry.0 |= reach.is_down();
            entry.1 |= reach == observe::Reachability::Intermittent;
        }
        for (kind, (down, degraded)) in worst {
            let class = self.downtime.consumers.entry(kind.to_string()).or_default();
            if down {
                class.down_s += seconds;
            } else if degraded {
                class.degraded_s += seconds;
            }
        }
        let not_ready = state.joined.and(state.up).iter().filter(|n| observe::node_reachability(state, t, *n).is_down()).count() as u32;
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
        if !self.engine.recording.downtime && !self.engine.recording.events {
            // Nothing to charge or to show: the state before and the action's transient go unread,
            // and the state changes where it is. A lazy run words a refusal only if it reports it.
            if self.lazy {
                if let Err(refusal) = action::apply_in_place_unworded(&mut self.c, t, a) {
                    self.refused = Some(a);
                    return Err(refusal);
                }
            } else {
                action::apply_in_place(&mut self.c, t, a)?;
            }
            self.transitions += 1;
            // A verification moves only the clock, which no safety invariant reads: what was
            // broken before it still is, and nothing newly (a third of the transitions).
            if matches!(a, Action::Verify(_)) {
                debug_assert_eq!(invariant::safety_broken(&self.c, t, self.asked()), self.broken_now);
            } else {
                self.check_safety(step);
            }
            return Ok(());
        }
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
        self.struck = self.struck.or(fault.nodes_down(self.t()));
        if !self.engine.recording.downtime && !self.engine.recording.events {
            // Nothing to charge or to show: the state before and the transient go unread.
            let t = self.t();
            fault.strike_in_place(&mut self.c, t);
            if let (Some(lasts), false) = (fault.lasts_s(), matches!(fault, Fault::OperatorAway { .. })) {
                self.pending.push((fault, self.c.clock_s.saturating_add(lasts)));
            }
            self.check_safety(step);
            return;
        }
        let before = self.c;
        let transient = fault.transient(&before, self.t());
        if let (Some(tr), true) = (transient, self.engine.recording.downtime) {
            self.charge(&tr.during, tr.seconds);
        }
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
            self.record(step, EventKind::Fault, what, &before, broke, transient.map(|tr| (tr.what.to_string(), tr.seconds)));
        }
    }

    /// Ends the temporary faults whose time is over: asked at every pass of the executor's
    /// loop, where as a rule none is pending (kept small so the check is inlined there).
    #[inline]
    fn heal_due(&mut self, step: &str) {
        if !self.pending.is_empty() {
            self.heal_pending(step);
        }
    }

    fn heal_pending(&mut self, step: &str) {
        while let Some(i) = self.pending.iter().position(|(_, at)| *at <= self.c.clock_s) {
            let (fault, _) = self.pending.remove(i);
            self.heal(fault, step);
        }
    }

    fn heal(&mut self, fault: Fault, step: &str) {
        // The state before is read only by the timeline: not copied for nothing.
        let before = self.engine.recording.events.then_some(self.c);
        // A machine that failed for good meanwhile stays struck: it does not come back.
        self.struck = self.struck.minus(fault.nodes_down(self.t()).minus(self.c.broken));
        let t = self.t();
        fault.heal_in_place(&mut self.c, t);
        let broke = self.check_safety(step);
        if let Some(before) = before {
            let what = format!("fault over: {}", fault.describe(self.t()));
            self.record(step, EventKind::Heal, what, &before, broke, None);
        }
    }

    /// The part of a step's estimated duration its actions do not account for passes once the
    /// step is done ([`step::rest_of_step_s`]).
    fn finish_step_time(&mut self, s: &plan_model::plan::Step) {
        let rest = step::rest_of_step_s(s);
        if rest > 0 {
            if self.engine.recording.downtime {
                let state = self.c;
                self.charge(&state, rest);
            }
            self.c.clock_s = self.c.clock_s.saturating_add(rest);
        }
    }

    /// Waits until every temporary fault is over.
    fn wait_for_pending(&mut self, step: &str) {
        let until = self.pending.iter().map(|(_, at)| *at).max().unwrap_or(self.c.clock_s);
        let wait = until.saturating_sub(self.c.clock_s);
        if self.engine.recording.downtime {
            let state = self.c;
            self.charge(&state, wait);
        }
        self.c.clock_s = until.max(self.c.clock_s);
        if self.engine.recording.events {
            self.note(step, EventKind::Wait, format!("wait {} for the fault to clear", plan_model::plan::format_duration(wait)));
        }
        self.heal_due(step);
    }

    /// A run of `engine` from `cursor`, nothing recorded yet.
    pub(crate) fn start(engine: &'e Engine<'a>, cursor: &Cursor, lazy: bool) -> Self {
        Run {
            engine,
            c: cursor.c,
            // Copied as the slice it is (its faults are plain values), not cloned one by one.
            pending: crate::cursor::Pending::from_slice(&cursor.pending),
            events: Vec::new(),
            broken: Vec::new(),
            downtime: Downtime::default(),
            undeclared: Vec::new(),
            recoveries: crate::memo::Recoveries::new(),
            transitions: 0,
            halts: crate::memo::Halts::new(),
            struck: cursor.struck,
            dominated: Vec::new(),
            lazy,
            breaks: Vec::new(),
            broken_now: 0,
            ever_broken: 0,
            reported: u32::MAX,
            rankings: None,
            refused: None,
            halt_refused: None,
        }
    }

    /// One pass of the executor's loop at `pos` ([`step::iterate`]) on the model.
    pub(crate) fn iterate(&mut self, pos: &mut Position, schedule: &[Injection], fired: &mut [bool]) -> Flow {
        let (t, plan) = (self.engine.t, self.engine.plan);
        match step::iterate(self, t, plan, pos, schedule, fired) {
            Ok(flow) => flow,
            Err(never) => match never {},
        }
    }

    /// Availability broken between steps of a run without faults, outside a declared window.
    fn note_undeclared(&mut self, declared_window: bool, step: &str) {
        for inv in INVARIANTS.iter().filter(|i| i.class == InvariantClass::Availability) {
            if let Err(why) = inv.holds(&self.c, self.t()) {
                let already_noted = self.undeclared.iter().any(|u| u.step == step && u.invariant == inv.name);
                if !declared_window && !already_noted {
                    self.undeclared.push(Undeclared { step: step.to_string(), invariant: inv.name, why });
                }
            }
        }
    }

    /// Temporary faults still running end on their own: the final state is after them.
    pub(crate) fn settle(&mut self) {
        if !self.pending.is_empty() {
            let last = self.engine.plan.steps.last().map(|s| s.id.clone()).unwrap_or_default();
            self.wait_for_pending(&last);
        }
    }

    /// Availability invariants broken in the state now.
    pub(crate) fn unavailable(&self) -> Vec<Broken> {
        INVARIANTS
            .iter()
            .filter(|i| i.class == InvariantClass::Availability)
            .filter_map(|i| {
                i.holds(&self.c, self.t()).err().map(|why| Broken {
                    invariant: i.name,
                    class: i.class,
                    step: "end".to_string(),
                    clock_s: self.c.clock_s,
                    why,
                })
            })
            .collect()
    }
}

/// The indexes of the bits set in `mask`, lowest first.
pub(crate) fn bits(mask: u32) -> impl Iterator<Item = usize> {
    let mut rest = mask;
    std::iter::from_fn(move || {
        let i = rest.trailing_zeros() as usize;
        rest &= rest.wrapping_sub(1);
        (i < 32).then_some(i)
    })
}

/// The safety invariants (bits by index in `INVARIANTS`).
pub(crate) const SAFETY: u32 = {
    let mut mask = 0u32;
    let mut i = 0;
    while i < INVARIANTS.len() {
        if matches!(INVARIANTS[i].class, InvariantClass::Safety) {
            mask |= 1 << i;
        }
        i += 1;
    }
    mask
};

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

    fn timeline(&self) -> bool {
        self.engine.recording.events
    }

    fn chosen(&self) -> Option<&str> {
        self.engine.chosen
    }

    fn halt_words(&self, t: &Topology, halt: &Halt) -> String {
        match &self.halt_refused {
            Some(refused) => crate::memo::words(refused, t).reason,
            None => halt.to_string(),
        }
    }

    fn rank(&mut self, c: &Cluster, t: &Topology, plan: &Plan, step: usize) -> std::sync::Arc<[crate::search::Candidate]> {
        match self.rankings.as_deref_mut() {
            Some(rankings) => rankings.rank(c, t, plan, step),
            None => crate::search::rank(c, t, plan, step).into(),
        }
    }
}

/// The twin's loop runs on the model alone.
impl Place for Run<'_, '_> {
    fn strike(&mut self, fault: Fault, step: &str) -> Result<(), Infallible> {
        Run::strike(self, fault, step);
        Ok(())
    }

    fn heal_due(&mut self, step: &str) -> Result<(), Infallible> {
        Run::heal_due(self, step);
        Ok(())
    }

    fn act(&mut self, a: Action, step: &str, kind: EventKind) -> Result<Result<(), Refusal>, Infallible> {
        Ok(Run::apply(self, a, step, kind))
    }

    /// Found without words, worded from the engine's table.
    fn drift(&self, _t: &Topology, rebooting: NodeSet) -> Option<std::sync::Arc<str>> {
        policy::Drift::of(&self.c, rebooting).map(|drift| self.engine.drifts.of(drift).clone())
    }

    fn step_done(&mut self, s: &plan_model::plan::Step) -> Result<(), Infallible> {
        self.finish_step_time(s);
        Ok(())
    }

    fn action_done(&mut self, s: &plan_model::plan::Step, k: usize, no_fault: bool) {
        if self.engine.recording.downtime && no_fault {
            self.note_undeclared(k + 1 < s.actions.len() && s.disruption.is_some(), &s.id);
        }
    }

    /// A refusal a lazy run left unworded keeps what words it: the action, and the state now.
    fn halting(&mut self, _step: &str, halt: &Halt) -> Result<(), Infallible> {
        self.halt_refused = match (halt, self.refused.take()) {
            (Halt::Refused(_), Some(a)) if self.lazy => Some(std::rc::Rc::new((a, self.c))),
            _ => None,
        };
        Ok(())
    }

    /// The halt is recorded (the first one is the run's).
    fn halted(&mut self, step: usize, halt: Halt) {
        self.halts.push(crate::memo::Halted::new(step, halt, self.halt_refused.take()));
    }
}

impl<'a> Engine<'a> {
    pub fn new(t: &'a Topology, plan: &'a Plan, recording: Recording) -> Self {
        Engine { t, plan, recording, drifts: policy::DriftWords::new(t), chosen: None }
    }

    /// The engine taking, at every halt, the best recovery of `kind` ([`RecoveryKind::name`])
    /// rather than the best of all: the twin of an operator who picks with `--choose KIND`.
    pub fn choosing(self, kind: &'static str) -> Self {
        Engine { chosen: Some(kind), ..self }
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
        let mut r = Run::start(self, &cursor, false);
        let start_clock = cursor.c.clock_s;
        r.check_safety_at_start(cursor.step);
        let mut fired = vec![false; schedule.len()];
        let mut pos = Position { step: cursor.step, k: cursor.action, skip_done: cursor.skip_done, recoveries: cursor.recoveries };
        let mut rejoined = false;
        let outcome = loop {
            if pos.step >= plan.steps.len() {
                break Outcome::Completed;
            }
            let all_fired = fired.iter().all(|f| *f);
            if all_fired && r.rejoins(&pos, track) {
                rejoined = true;
                break track.map(|t| t.outcome.clone()).unwrap_or(Outcome::Completed);
            }
            if all_fired && !schedule.is_empty() {
                if let Some(out) = snapshots.as_deref_mut() {
                    out.push(Cursor::of(&r, &pos));
                }
            }
            if let Flow::Stop(outcome) = r.iterate(&mut pos, schedule, &mut fired) {
                break outcome;
            }
        };
        r.settle();
        let final_unavailable = match (rejoined, track) {
            (true, Some(track)) => track.final_unavailable.clone(),
            _ => r.unavailable(),
        };
        let (halted_at, halt) = match r.halts.first() {
            Some(halted) => (Some(plan.steps[halted.step].id.clone()), Some(halted.halt(self.t))),
            None => (None, None),
        };
        RunResult {
            outcome,
            recoveries: r.recoveries.into_vec(),
            halted_at,
            halt,
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
