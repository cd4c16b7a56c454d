//! The exploration's memory: what a run does from a step boundary on is worked out once per
//! distinct configuration (state, plan position, pending faults) and shared by every placement
//! that reaches it; so are the recovery rankings made at a halt.
//!
//! A run here is the twin's run ([`crate::run`]), carried out by the same loop; what is shared
//! is its continuation, kept as a [`Tail`]: the first break of each safety invariant from there
//! on (with the state to explain it from: no message is built until one is reported), the
//! halts, the recoveries taken, the dominated documented recoveries, and how it ended.

use crate::policy::Dominated;
use crate::recovery::RecoveryKind;
use crate::run::{bits, Break, Cursor, Engine, Flow, Halt, Injection, Outcome, Point, Run, Track};
use plan_model::cluster::Cluster;
use plan_model::invariant::{InvariantClass, INVARIANTS};
use plan_model::topology::Topology;
use rustc_hash::FxHashMap;
use std::rc::Rc;

/// The recovery candidates ranked at a halt, by state and step: many placements halt in the
/// same state at the same step, and a ranking runs every candidate to its end.
#[derive(Default)]
pub struct Rankings {
    ranked: FxHashMap<(Cluster, usize), Rc<Vec<crate::search::Candidate>>>,
}

impl Rankings {
    /// The ranking at a halt in `step` in state `c`, made once.
    pub(crate) fn rank(&mut self, c: &Cluster, t: &Topology, plan: &plan_model::plan::Plan, step: usize) -> Vec<crate::search::Candidate> {
        let ranked = self.ranked.entry((*c, step)).or_insert_with(|| Rc::new(crate::search::rank(c, t, plan, step)));
        ranked.as_ref().clone()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub outcome: Outcome,
    /// Availability invariants broken in the final state (bits by index in `INVARIANTS`).
    pub unavailable: u32,
    /// The state their messages are built from (the no-fault run's end, for a run that
    /// rejoined it).
    pub explain_from: Cluster,
    /// The state the run ended in (where it rejoined the no-fault run, if it did).
    pub final_state: Cluster,
}

impl End {
    /// The availability invariants broken at the end, first by index.
    pub fn unavailable(&self) -> impl Iterator<Item = usize> {
        bits(self.unavailable)
    }

    /// Why availability invariant `index` is broken at the end, in words.
    pub fn why(&self, index: usize, t: &Topology) -> String {
        (INVARIANTS[index].explain)(&self.explain_from, t).expect("an invariant recorded broken at the end breaks there")
    }
}

/// What a run does from some configuration to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The first break of each safety invariant, in the order they broke.
    pub breaks: Vec<Break>,
    /// Every halt, with the id of the step it halted in; the first is the run's.
    pub halts: Vec<(String, Halt)>,
    pub recoveries: Vec<RecoveryKind>,
    pub dominated: Vec<Dominated>,
    pub transitions: u64,
    pub end: Rc<End>,
}

/// One run of a placement: the part it ran itself, then a continuation another run worked out.
#[derive(Debug, Clone)]
pub struct Summary {
    pub own: Tail,
    pub shared: Option<Rc<Tail>>,
}

impl Summary {
    /// The first break of each safety invariant in the whole run.
    pub fn breaks(&self) -> impl Iterator<Item = &Break> {
        let own = self.own.breaks.iter().fold(0u32, |m, b| m | 1 << b.invariant);
        self.own.breaks.iter().chain(self.shared.iter().flat_map(move |s| s.breaks.iter().filter(move |b| own & (1 << b.invariant) == 0)))
    }

    pub fn recoveries(&self) -> impl Iterator<Item = &RecoveryKind> + Clone {
        self.own.recoveries.iter().chain(self.shared.iter().flat_map(|s| s.recoveries.iter()))
    }

    pub fn has_recoveries(&self) -> bool {
        self.recoveries().next().is_some()
    }

    /// The run's first halt: the step id and why.
    pub fn halt(&self) -> Option<&(String, Halt)> {
        self.own.halts.first().or_else(|| self.shared.as_ref().and_then(|s| s.halts.first()))
    }

    pub fn dominated(&self) -> impl Iterator<Item = &Dominated> {
        self.own.dominated.iter().chain(self.shared.iter().flat_map(|s| s.dominated.iter()))
    }

    pub fn transitions(&self) -> u64 {
        self.own.transitions
    }

    pub fn end(&self) -> &End {
        &self.own.end
    }

    pub fn outcome(&self) -> &Outcome {
        &self.own.end.outcome
    }
}

/// Walking a run for the plan points where a further fault is placed.
pub struct Walk<'w> {
    /// Every point the run passes once its injections have struck, in order.
    pub snapshots: &'w mut Vec<Cursor>,
    /// Faults still to place after this run's.
    pub budget: u8,
    /// Placements a walk found already made: the rest of this walk had been walked before
    /// with the same budget, so every placement along it is a duplicate.
    pub skipped: usize,
    /// Placements along the walk from a point (how many faults each point takes).
    pub placements_at: &'w dyn Fn(Point) -> usize,
}

/// The configurations whose continuation is known, per exploration shard.
#[derive(Default)]
pub struct Memo {
    tails: FxHashMap<Cursor, Rc<Tail>>,
    /// Boundaries walked with a budget: the placements the walk from there made.
    walked: FxHashMap<(Cursor, u8), usize>,
    pub(crate) rankings: Rankings,
    /// Runs carried out to a boundary with a known continuation.
    pub hits: u64,
}

/// Where a run stood at a step boundary it passed: its lists' lengths then.
struct Mark {
    at: Cursor,
    breaks: usize,
    broken_now: u32,
    halts: usize,
    recoveries: usize,
    dominated: usize,
    transitions: u64,
    /// Placements the walk made from here on are counted from this snapshot on.
    snapshots: usize,
}

impl Memo {
    /// Runs `schedule` (every injection at the point of `entry`) from `entry`; from the first step
    /// boundary whose continuation is known on, that continuation is taken instead of running
    /// it. A `walk` records every point passed after the injections, up to a boundary already
    /// walked with the same budget; the placements along the rest of the walk are returned, as
    /// duplicates.
    pub fn run(
        &mut self,
        engine: &Engine<'_>,
        entry: &Cursor,
        schedule: &[Injection],
        track: &Track,
        mut walk: Option<Walk<'_>>,
    ) -> (Summary, usize) {
        debug_assert!(schedule.iter().all(|i| i.at == Point { step: entry.step as u16, action: entry.action as u16 }));
        let plan = engine.plan;
        let from = Point { step: entry.step as u16, action: entry.action as u16 };
        let mut r = Run::start(engine, entry, true);
        r.rankings = Some(&mut self.rankings);
        r.check_safety_at_start(entry.step);
        let mut fired = vec![false; schedule.len()];
        let mut pos = entry.position();
        let mut marks: Vec<Mark> = Vec::new();
        let mut shared: Option<Rc<Tail>> = None;
        let mut rejoined = false;
        let outcome = loop {
            if pos.step >= plan.steps.len() {
                break Some(Outcome::Completed);
            }
            let all_fired = fired.iter().all(|f| *f);
            if all_fired && pos.k == 0 {
                let at = Cursor::of(&r, &pos);
                // A walk is cut only past the injection's step: a re-run of that step comes back
                // to the injection's point, where no further fault is placed.
                let walkable = pos.step > from.step as usize;
                let walked = match &walk {
                    None => Some(0),
                    Some(w) if walkable => self.walked.get(&(at.clone(), w.budget)).copied(),
                    Some(_) => None,
                };
                if let (Some(tail), Some(skipped)) = (self.tails.get(&at), walked) {
                    self.hits += 1;
                    shared = Some(tail.clone());
                    if let Some(w) = walk.as_mut() {
                        w.skipped += skipped;
                    }
                    break None;
                }
                let snapshots = walk.as_ref().map_or(0, |w| w.snapshots.len());
                marks.push(r.mark(at, snapshots));
            }
            if all_fired && r.rejoins(&pos, Some(track)) {
                rejoined = true;
                break Some(track.outcome.clone());
            }
            if all_fired {
                if let Some(w) = walk.as_mut() {
                    w.snapshots.push(Cursor::of(&r, &pos));
                }
            }
            if let Flow::Stop(outcome) = r.iterate(&mut pos, schedule, &mut fired) {
                break Some(outcome);
            }
        };
        let end = match (outcome, &shared) {
            (Some(outcome), _) => {
                r.settle();
                Rc::new(if rejoined { track_end(track, outcome, r.c) } else { end_of(r.c, outcome, engine.t) })
            }
            (None, Some(tail)) => tail.end.clone(),
            (None, None) => unreachable!("a run stops with an outcome or at a known continuation"),
        };
        let transitions = r.transitions + shared.as_ref().map_or(0, |s| s.transitions);
        let whole = if marks.is_empty() { None } else { Some(Lists::of(&r, shared.as_deref())) };
        for mark in marks.iter().rev() {
            let Some(whole) = &whole else { break };
            let tail = Rc::new(whole.tail_from(mark, transitions, &end, plan));
            if let Some(w) = &walk {
                if mark.at.step > from.step as usize {
                    let placed: usize = w.snapshots[mark.snapshots..]
                        .iter()
                        .map(|c| (w.placements_at)(Point { step: c.step as u16, action: c.action as u16 }))
                        .sum();
                    self.walked.insert((mark.at.clone(), w.budget), placed + w.skipped);
                }
            }
            self.tails.insert(mark.at.clone(), tail);
        }
        let own = Tail {
            breaks: r.breaks.iter().filter(|b| first_of_its_invariant(&r.breaks, b)).cloned().collect(),
            halts: r.halts,
            recoveries: r.recoveries,
            dominated: r.dominated,
            transitions,
            end,
        };
        let skipped = walk.map_or(0, |w| w.skipped);
        (Summary { own, shared }, skipped)
    }
}

/// Whether `b` is the first break of its invariant in `breaks`.
fn first_of_its_invariant(breaks: &[Break], b: &Break) -> bool {
    breaks.iter().find(|x| x.invariant == b.invariant).is_some_and(|x| std::ptr::eq(x, b))
}

/// The end of a run that rejoined the no-fault run at `state`: the no-fault run's outcome and
/// availability.
fn track_end(track: &Track, outcome: Outcome, state: Cluster) -> End {
    let unavailable =
        track.final_unavailable.iter().filter_map(|b| INVARIANTS.iter().position(|i| i.name == b.invariant)).fold(0u32, |m, i| m | 1 << i);
    End { outcome, unavailable, explain_from: track.final_state, final_state: state }
}

fn end_of(state: Cluster, outcome: Outcome, t: &Topology) -> End {
    let unavailable = INVARIANTS
        .iter()
        .enumerate()
        .filter(|(_, i)| i.class == InvariantClass::Availability && (i.broken)(&state, t))
        .fold(0u32, |m, (i, _)| m | 1 << i);
    End { outcome, unavailable, explain_from: state, final_state: state }
}

/// A whole run's lists: its own, then a shared continuation's.
struct Lists {
    breaks: Vec<Break>,
    halts: Vec<(String, Halt)>,
    recoveries: Vec<RecoveryKind>,
    dominated: Vec<Dominated>,
}

impl Lists {
    fn of(r: &Run<'_, '_>, shared: Option<&Tail>) -> Lists {
        let mut lists =
            Lists { breaks: r.breaks.clone(), halts: r.halts.clone(), recoveries: r.recoveries.clone(), dominated: r.dominated.clone() };
        if let Some(tail) = shared {
            lists.breaks.extend(tail.breaks.iter().cloned());
            lists.halts.extend(tail.halts.iter().cloned());
            lists.recoveries.extend(tail.recoveries.iter().cloned());
            lists.dominated.extend(tail.dominated.iter().cloned());
        }
        lists
    }

    /// The continuation from `mark`, as a run starting there would record it: invariants broken
    /// in its first state break at its step, the others where they first break after it.
    fn tail_from(&self, mark: &Mark, transitions: u64, end: &Rc<End>, plan: &plan_model::plan::Plan) -> Tail {
        let step = &plan.steps[mark.at.step].id;
        let mut breaks: Vec<Break> =
            bits(mark.broken_now).map(|invariant| Break { invariant, step: step.clone(), state: mark.at.c }).collect();
        let mut seen = mark.broken_now;
        for b in &self.breaks[mark.breaks..] {
            if seen & (1 << b.invariant) == 0 {
                seen |= 1 << b.invariant;
                breaks.push(b.clone());
            }
        }
        Tail {
            breaks,
            halts: self.halts[mark.halts..].to_vec(),
            recoveries: self.recoveries[mark.recoveries..].to_vec(),
            dominated: self.dominated[mark.dominated..].to_vec(),
            transitions: transitions - mark.transitions,
            end: end.clone(),
        }
    }
}

impl Run<'_, '_> {
    fn mark(&self, at: Cursor, snapshots: usize) -> Mark {
        Mark {
            at,
            breaks: self.breaks.len(),
            broken_now: self.broken_now(),
            halts: self.halts.len(),
            recoveries: self.recoveries.len(),
            dominated: self.dominated.len(),
            transitions: self.transitions,
            snapshots,
        }
    }
}
