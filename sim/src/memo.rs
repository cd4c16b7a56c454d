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
use crate::run::{bits, Break, Cursor, Engine, Halt, Injection, Outcome, Point, Run, Track};
use plan_model::action::Action;
use plan_model::cluster::Cluster;
use plan_model::invariant::{InvariantClass, INVARIANTS};
use plan_model::topology::Topology;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

mod going_on;
mod kept;
use going_on::{GoingOnKept, GoingOnMade};
use kept::{Kept, Stop};

/// The recovery candidates ranked at a halt, by state and step: many placements halt in the
/// same state at the same step, and a ranking runs every candidate to its end.
#[derive(Default)]
pub struct Rankings {
    /// By the fingerprint of the state and the halted step's phase (a ranking reads the step
    /// for its phase only), and the step itself where a go-forward is weighed.
    ranked: FxHashMap<Fingerprint, Arc<[crate::search::Candidate]>>,
    /// The rankings every shard of the exploration made, where this one takes those another
    /// made before making its own (a third of them at depth 2 on the homelab).
    made: Option<Arc<RankingsMade>>,
    /// Model transitions applied to run the candidates of every ranking made.
    pub transitions: u64,
    /// What each phase does, classified once (it reads every step of the plan).
    kinds: FxHashMap<String, crate::recovery::PhaseKind>,
    /// The states candidates ended in, judged, by the state without its times.
    judged: FxHashMap<Fingerprint, crate::search::Judged>,
    /// The phase of every step, numbered in the order the plan reaches them: a ranking's key
    /// hashes the number, not the phase's name.
    phase_of_step: Vec<u32>,
    /// The plan going on without machines written off, by the machines (a go-forward's).
    going_on: FxHashMap<plan_model::topology::NodeSet, Option<Arc<plan_model::plan::Plan>>>,
    /// The rest of such a plan run from a step boundary, by the state and the step.
    rests: FxHashMap<Fingerprint, Arc<crate::search::Continuation>>,
}

impl Rankings {
    /// The ranking at a halt in `step` in state `c`, made once (by whichever shard meets it
    /// first, where the shards share what they made).
    pub(crate) fn rank(
        &mut self,
        c: &Cluster,
        t: &Topology,
        plan: &plan_model::plan::Plan,
        step: usize,
    ) -> Arc<[crate::search::Candidate]> {
        if self.phase_of_step.is_empty() {
            let mut phases: Vec<&str> = Vec::new();
            for s in &plan.steps {
                let index = phases.iter().position(|p| *p == s.phase).unwrap_or_else(|| {
                    phases.push(&s.phase);
                    phases.len() - 1
                });
                self.phase_of_step.push(index as u32);
            }
        }
        let phase = self.phase_of_step[step];
        // Every candidate but going forward reads the step for its phase alone: ranked once per
        // phase. Going forward (where a machine is down) runs the rest of the plan from the step
        // itself: that ranking is the phase's with it in its place, kept by the step too.
        let phase_hashed = Fingerprinting::of(c).and(&phase);
        let by_phase = phase_hashed.finish();
        if crate::recovery::to_write_off(c).is_empty() {
            return self.kept(by_phase, |me| me.make(c, t, plan, step));
        }
        // The key of `(c, phase, step)`, the state not hashed again.
        let by_step = phase_hashed.and(&(step as u32)).finish();
        if let Some(ranking) = self.ranked.get(&by_step) {
            return ranking.clone();
        }
        let ranking = self.kept(by_phase, |me| me.make(c, t, plan, step));
        self.kept(by_step, |me| me.with_go_forward(&ranking, c, t, plan, step))
    }

    /// The ranking kept under `key`, made by `make` where neither this shard nor another made it
    /// before: a ranking depends on its key alone, so one another shard made is the one this
    /// shard would make (only the work it took is not counted here).
    fn kept(
        &mut self,
        key: Fingerprint,
        make: impl FnOnce(&mut Self) -> Arc<[crate::search::Candidate]>,
    ) -> Arc<[crate::search::Candidate]> {
        if let Some(ranking) = self.ranked.get(&key) {
            return ranking.clone();
        }
        let made_elsewhere = self.made.as_ref().and_then(|made| made.get(&key));
        let ranking = made_elsewhere.unwrap_or_else(|| {
            let ranking = make(self);
            if let Some(made) = &self.made {
                made.put(key, &ranking);
            }
            ranking
        });
        self.ranked.insert(key, ranking.clone());
        ranking
    }

    /// What phase `step` belongs to, classified once.
    fn kind_of(&mut self, plan: &plan_model::plan::Plan, step: usize) -> crate::recovery::PhaseKind {
        let phase = &plan.steps[step].phase;
        match self.kinds.get(phase) {
            Some(kind) => *kind,
            None => *self.kinds.entry(phase.clone()).or_insert_with(|| crate::recovery::phase_kind(plan, phase)),
        }
    }

    /// Runs the candidate recoveries at a halt in `step` in state `c` but going forward
    /// ([`crate::search::rank_by_phase`]) that can be what the run reads, and ranks them.
    fn make(&mut self, c: &Cluster, t: &Topology, plan: &plan_model::plan::Plan, step: usize) -> Arc<[crate::search::Candidate]> {
        let kind = self.kind_of(plan, step);
        let judged = &mut self.judged;
        let reading = crate::search::Reading::BestAndDocumented;
        let ranking = crate::search::rank_by_phase(c, t, plan, step, kind, reading, &mut |end, downtime_s, duration_s| {
            judged_cost(judged, t, end, downtime_s, duration_s)
        });
        self.transitions += ranking.iter().map(|c| c.transitions as u64).sum::<u64>();
        read_by_the_run(ranking)
    }

    /// `ranking` (the phase's) with going forward from a halt in `step` in state `c` in its place;
    /// not run where it can be neither what the run carries out nor the documented recovery
    /// (see [`crate::search::go_forward_in`]).
    fn with_go_forward(
        &mut self,
        ranking: &[crate::search::Candidate],
        c: &Cluster,
        t: &Topology,
        plan: &plan_model::plan::Plan,
        step: usize,
    ) -> Arc<[crate::search::Candidate]> {
        let kind = self.kind_of(plan, step);
        let judged = &mut self.judged;
        let going_on = &mut GoingOnKept { made: self.made.clone(), plans: &mut self.going_on, rests: &mut self.rests };
        let judge = &mut |end: &Cluster, downtime_s, duration_s| judged_cost(judged, t, end, downtime_s, duration_s);
        // The phase's ranking is kept as the run reads it: its first candidate, where it can be
        // carried out, is the best of them.
        let best = ranking.first().filter(|b| b.applicable());
        match crate::search::go_forward_in(c, t, plan, step, kind, best, going_on, judge) {
            Some(candidate) => {
                self.transitions += u64::from(candidate.transitions);
                // Room for the phase's candidates and going forward: the copy is not grown.
                let mut with = Vec::with_capacity(ranking.len() + 1);
                with.extend_from_slice(ranking);
                read_by_the_run(crate::search::ranked_with(with, candidate))
            }
            None => ranking.into(),
        }
    }
}

/// What the exploration's run reads of a ranking ([`crate::policy::recover`] without a timeline,
/// where no candidate the model carries out is refused): the best candidate that can be carried
/// out, which it carries out, and the documented one, which it weighs against the best. The
/// others are dropped (one to four per ranking, each with its actions: a fifth of the peak
/// memory at depth 3 on the homelab, 1.09 → 0.87 GB). Adding going forward to a ranking kept
/// so ranks it as the whole ranking would: the best of the others stays ahead of every other
/// one, and the order is stable.
fn read_by_the_run(ranking: Vec<crate::search::Candidate>) -> Arc<[crate::search::Candidate]> {
    // Applicable candidates come first, best first.
    ranking.into_iter().enumerate().filter(|(i, c)| (*i == 0 && c.applicable()) || c.documented).map(|(_, c)| c).collect()
}

/// What a recovery ending in `end` costs, its end judged once: many candidates end alike (a
/// phase's rollback from anywhere in it), so each end is judged once, by the state without its
/// times (the judgment reads none).
fn judged_cost(
    judged: &mut FxHashMap<Fingerprint, crate::search::Judged>,
    t: &Topology,
    end: &Cluster,
    downtime_s: u32,
    duration_s: u32,
) -> crate::search::Cost {
    let timeless = Cluster { clock_s: 0, certs_uploaded_s: None, token_s: None, last_backup_s: 0, ..*end };
    judged.entry(Fingerprint::of(&timeless)).or_insert_with(|| crate::search::judge(end, t)).cost(downtime_s, duration_s)
}

/// The rankings made by every shard of one exploration, by the key [`Rankings`] keeps them by;
/// and what their go-forwards worked out (the plan without machines, the rest of it run).
#[derive(Default)]
pub struct RankingsMade(Mutex<FxHashMap<Fingerprint, Arc<[crate::search::Candidate]>>>, GoingOnMade);

impl RankingsMade {
    fn get(&self, key: &Fingerprint) -> Option<Arc<[crate::search::Candidate]>> {
        self.0.lock().expect("no shard panics holding the rankings").get(key).cloned()
    }

    fn put(&self, key: Fingerprint, ranking: &Arc<[crate::search::Candidate]>) {
        self.0.lock().expect("no shard panics holding the rankings").entry(key).or_insert_with(|| ranking.clone());
    }
}

/// A fingerprint of a configuration: two 64-bit words, what two `FxHasher`s give that hash it,
/// the second seeded with [`SEED`] first. Keys of the memory are fingerprints rather than whole
/// configurations (a cursor is some 400 bytes).
///
/// `FxHasher` adds each word it is fed and multiplies by a constant, so two of them fed the same
/// words differ by the seed times a power of the constant, whatever the words: the second word
/// holds no more than the first and the number of words fed. It is computed from those, not
/// hashed again ([`Fingerprint::of`]; a test holds it to the second hasher's). A key is thus 64
/// bits of hash and a count: with a million keys, the chance that two collide is about 10^-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64, u64);

/// The seed of a fingerprint's second hasher.
const SEED: u64 = 0x5851_f42d_4c95_7f2d;

/// `FxHasher`'s multiplier and the rotation its `finish` applies (rustc-hash 2, 64-bit).
const FX_K: u64 = 0xf135_7aea_2e62_a9c5;
const FX_ROTATE: u32 = 26;

impl Fingerprint {
    pub fn of<T: Hash>(value: &T) -> Fingerprint {
        Fingerprinting::of(value).finish()
    }
}

/// A fingerprint under way: values hashed one after the other, as the fields of a tuple are
/// (`Fingerprinting::of(&a).and(&b).finish()` is `Fingerprint::of(&(a, b))`), so two keys that
/// begin alike hash their beginning once.
#[derive(Clone)]
pub(crate) struct Fingerprinting(Counted);

impl Fingerprinting {
    pub(crate) fn of<T: Hash>(value: &T) -> Fingerprinting {
        Fingerprinting(Counted(FxHasher::default(), 0)).and(value)
    }

    pub(crate) fn and<T: Hash>(mut self, value: &T) -> Fingerprinting {
        value.hash(&mut self.0);
        self
    }

    pub(crate) fn finish(&self) -> Fingerprint {
        let first = self.0 .0.finish();
        // The second hasher: the seed (one word) and the same `self.0.1` words after it.
        let apart = SEED.wrapping_mul(FX_K.wrapping_pow(self.0 .1 + 1));
        Fingerprint(first, first.rotate_right(FX_ROTATE).wrapping_add(apart).rotate_left(FX_ROTATE))
    }
}

/// A hasher and the number of words it was fed (one per `FxHasher` multiplication).
#[derive(Clone)]
struct Counted(FxHasher, u32);

impl Hasher for Counted {
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
        self.1 += 1;
    }

    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
        self.1 += 1;
    }

    fn write_u16(&mut self, i: u16) {
        self.0.write_u16(i);
        self.1 += 1;
    }

    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i);
        self.1 += 1;
    }

    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
        self.1 += 1;
    }

    fn write_u128(&mut self, i: u128) {
        self.0.write_u128(i);
        self.1 += 2;
    }

    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
        self.1 += 1;
    }
}

/// A state hashed as the exploration keys the placements made in it: its fingerprint (time
/// abstracted), ready for the point ([`StateHashed::at`]). Two are equal when their hashes are.
#[derive(Clone)]
pub struct StateHashed(FxHasher);

impl StateHashed {
    pub fn of(state: &Cluster, t: &Topology) -> StateHashed {
        let mut h = FxHasher::default();
        state.fingerprint(t).hash(&mut h);
        StateHashed(h)
    }

    /// The hash of the state at `point`, to key every placement there from.
    pub fn at(&self, point: Point) -> FxHasher {
        let mut h = self.0.clone();
        point.hash(&mut h);
        h
    }
}

impl PartialEq for StateHashed {
    fn eq(&self, other: &StateHashed) -> bool {
        // `finish` rotates the hasher's one word: equal finishes, equal hashers.
        self.0.finish() == other.0.finish()
    }
}

impl Eq for StateHashed {}

impl std::fmt::Debug for StateHashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateHashed({:#018x})", self.0.finish())
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub outcome: Outcome,
    /// Availability invariants broken in the final state (bits by index in `INVARIANTS`).
    pub unavailable: u32,
    /// The state the run ended in (where it rejoined the no-fault run, if it did), hashed: all
    /// the exploration reads of it but the messages.
    pub state: StateHashed,
    /// The state the messages are built from: for a run that rejoined the no-fault run, that
    /// run's end (one copy per memory, shared by every such end); for one that stopped on its own
    /// with an availability invariant broken, its own end; none where nothing is broken, nothing
    /// to explain (most ends: an end is kept for every run that stops on its own, hundreds of
    /// thousands at depth 3).
    explain: Option<Rc<Cluster>>,
}

impl End {
    /// The availability invariants broken at the end, first by index.
    pub fn unavailable(&self) -> impl Iterator<Item = usize> {
        bits(self.unavailable)
    }

    /// Why availability invariant `index` is broken at the end, in words.
    pub fn why(&self, index: usize, t: &Topology) -> String {
        let state = self.explain.as_deref().expect("an end with an availability invariant broken keeps its state");
        (INVARIANTS[index].explain)(state, t).expect("an invariant recorded broken at the end breaks there")
    }
}

/// A run's halts (with the step each was in), recoveries and dominated documented recoveries,
/// in order: the continuations from the boundaries it passed share them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lists {
    halts: Halts,
    recoveries: Recoveries,
    dominated: Vec<Dominated>,
}

/// A run's halts, with the step each was in: one as a rule, kept inline so most runs' lists are
/// one allocation (some 130,000 runs keep theirs at depth 2 on the homelab); a second halt
/// spills them to the heap.
pub(crate) type Halts = smallvec::SmallVec<[Halted; 1]>;

/// A halt, with the step it halted in (by index in the plan). A refusal the exploration's run
/// met is kept unworded, with the action refused and the state it was refused in: it is worded
/// only where it is reported ([`Halted::halt`]), most halts never are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halted {
    pub step: usize,
    halt: Halt,
    refused: Option<Rc<(Action, Cluster)>>,
}

impl Halted {
    /// `halt` in step `step`; `refused`: the action and state that word it, if it is unworded.
    pub(crate) fn new(step: usize, halt: Halt, refused: Option<Rc<(Action, Cluster)>>) -> Halted {
        Halted { step, halt, refused }
    }

    /// The halt, in words.
    pub fn halt(&self, t: &Topology) -> Halt {
        match &self.refused {
            None => self.halt.clone(),
            Some(refused) => Halt::Refused(words(refused, t)),
        }
    }
}

/// The refusal of `action` in `state` (a refusal met there without its words), worded.
pub(crate) fn words((action, state): &(Action, Cluster), t: &Topology) -> plan_model::action::Refusal {
    match plan_model::action::apply(state, t, *action) {
        Err(refusal) => refusal,
        Ok(_) => unreachable!("an action refused in a state is refused there again"),
    }
}

/// A run's recoveries: one as a rule, kept inline as its halts are.
pub(crate) type Recoveries = smallvec::SmallVec<[RecoveryKind; 1]>;

/// Where a continuation starts in its run's [`Lists`]: counts of 32 bits (a run's lists hold a
/// few entries, and a memory keeps hundreds of thousands of tails).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Since {
    halts: u32,
    recoveries: u32,
    dominated: u32,
}

/// What a run does from some configuration to its end: a placement's whole run, or the
/// continuation every run reaching a boundary shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The first break of each reported safety invariant, in the order they broke (a boxed
    /// slice, a word smaller than a vector: most tails have none).
    pub breaks: Box<[Break]>,
    lists: Rc<Lists>,
    since: Since,
    /// Model transitions from here to the end.
    pub transitions: u64,
    pub end: Rc<End>,
}

impl Tail {
    /// Appends the continuation's lists and breaks to a run's that took it.
    fn append_to(&self, lists: &mut Lists, breaks: &mut Vec<Break>) {
        lists.halts.extend(self.halts().iter().cloned());
        lists.recoveries.extend(self.recoveries().iter().cloned());
        lists.dominated.extend_from_slice(self.dominated());
        breaks.extend(self.breaks.iter().cloned());
    }

    pub fn breaks(&self) -> impl Iterator<Item = &Break> {
        self.breaks.iter()
    }

    pub fn recoveries(&self) -> &[RecoveryKind] {
        &self.lists.recoveries[self.since.recoveries as usize..]
    }

    pub fn has_recoveries(&self) -> bool {
        !self.recoveries().is_empty()
    }

    /// Every halt, with the step it halted in (by index in the plan); the first is the run's.
    pub fn halts(&self) -> &[Halted] {
        &self.lists.halts[self.since.halts as usize..]
    }

    /// The run's first halt: the step (by index in the plan) and why.
    pub fn halt(&self) -> Option<&Halted> {
        self.halts().first()
    }

    pub fn dominated(&self) -> &[Dominated] {
        &self.lists.dominated[self.since.dominated as usize..]
    }

    pub fn end(&self) -> &End {
        &self.end
    }

    pub fn outcome(&self) -> &Outcome {
        &self.end.outcome
    }
}

/// A placement's run, with the model transitions it applied itself (the rest it shared).
#[derive(Debug, Clone)]
pub struct Summary {
    pub run: Tail,
    pub applied: u64,
}

impl std::ops::Deref for Summary {
    type Target = Tail;

    fn deref(&self) -> &Tail {
        &self.run
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
pub struct Memo {
    /// The safety invariants whose breaks are kept (by index in `INVARIANTS`).
    reported: u32,
    kept: Kept,
    pub rankings: Rankings,
    /// Availability at the end, by the end state without its times.
    judged: FxHashMap<Fingerprint, u32>,
    /// Runs carried out to a boundary with a known continuation.
    pub hits: u64,
    /// No continuation is kept: every run is carried out to its end (the plain run, to compare).
    forget: bool,
    /// The boundaries the run under way passed (kept for its allocation).
    marks: Vec<Mark>,
    /// The no-fault run's end and the availability it breaks there, shared by the ends of the
    /// runs that rejoin it.
    track_end: Option<(Rc<Cluster>, u32)>,
}

/// Where a run stood at a step boundary it passed: its lists' lengths then.
struct Mark {
    /// The boundary's step, and the state there where a reported invariant is broken in it
    /// (its breaks are explained from it; a mark is made at every boundary a run passes, and
    /// almost none has one: no copy of the state for the others).
    step: usize,
    state: Option<Box<Cluster>>,
    key: Fingerprint,
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
    /// A memory for an exploration that reports breaks of the safety invariants in `reported`
    /// (bits by index in `INVARIANTS`) and ignores the others.
    pub fn new(reported: u32) -> Memo {
        Memo {
            reported,
            kept: Kept::default(),
            rankings: Rankings::default(),
            judged: FxHashMap::default(),
            hits: 0,
            forget: false,
            marks: Vec::new(),
            track_end: None,
        }
    }

    /// Lets go of the rankings other shards share (this memory's own are kept).
    pub fn stop_sharing_rankings(&mut self) {
        self.rankings.made = None;
    }

    /// A memory that keeps no continuation (rankings only): every run is carried out to its end.
    pub fn plain(reported: u32) -> Memo {
        Memo { forget: true, ..Memo::new(reported) }
    }

    /// Takes the rankings other shards of the exploration made, and gives them the ones this
    /// memory makes.
    pub fn sharing_rankings(mut self, made: Arc<RankingsMade>) -> Memo {
        self.rankings.made = Some(made);
        self
    }

    /// Runs `schedule` (every injection at the point of `entry`) from `entry`; from the first step
    /// boundary whose continuation is known on, that continuation is taken instead of running
    /// it. A `walk` records every point passed after the injections, up to a boundary already
    /// walked with the same budget; the placements along the rest of the walk are returned, as
    /// duplicates. A memory serves one exploration: every run is given the same no-fault run
    /// (`track`), whose end the ends of the runs that rejoin it share; its engine records no
    /// timeline and takes the best recovery, not one chosen by kind.
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
        // The rankings kept hold only what a run without a timeline or an operator's choice
        // reads of them ([`read_by_the_run`]).
        debug_assert!(
            !crate::policy::Executor::timeline(&r) && crate::policy::Executor::chosen(&r).is_none(),
            "a memory serves the exploration's runs: no timeline, no recovery chosen by kind"
        );
        r.rankings = Some(&mut self.rankings);
        r.reported = self.reported;
        r.check_safety_at_start(entry.step);
        // The boundaries passed, in a list kept from run to run (one allocation per shard).
        let mut marks = std::mem::take(&mut self.marks);
        marks.clear();
        let (end, shared) = match self.kept.carry_out(&mut r, entry, schedule, track, &mut walk, &mut marks) {
            Stop::End { outcome, rejoined } => {
                r.settle();
                let end = if rejoined {
                    track_end(&mut self.track_end, track, outcome, &r.c, engine.t)
                } else {
                    end_of(&r.c, outcome, engine.t, &mut self.judged)
                };
                (Rc::new(end), None)
            }
            Stop::Known(tail) => {
                self.hits += 1;
                (tail.end.clone(), Some(tail))
            }
        };
        let applied = r.transitions;
        let transitions = applied + shared.as_ref().map_or(0, |s| s.transitions);
        let own_lists = r.halts.is_empty() && r.recoveries.is_empty() && r.dominated.is_empty();
        if own_lists && r.breaks.is_empty() && marks.is_empty() {
            if let Some(tail) = shared {
                self.marks = marks;
                // Most placements add nothing of their own before a known continuation: theirs
                // is that continuation's, its lists shared as they are rather than copied.
                let run = Tail { transitions, ..tail };
                let skipped = walk.map_or(0, |w| w.skipped);
                return (Summary { run, applied }, skipped);
            }
        }
        let mut lists = Lists {
            halts: std::mem::take(&mut r.halts),
            recoveries: std::mem::take(&mut r.recoveries),
            dominated: std::mem::take(&mut r.dominated),
        };
        let mut breaks = r.breaks;
        if let Some(tail) = &shared {
            tail.append_to(&mut lists, &mut breaks);
        }
        let ran = Ran { lists: Rc::new(lists), breaks, applied, transitions, end };
        self.summarize(ran, marks, walk, from, plan)
    }

    /// The summary of a run that made lists or breaks of its own, or passed a boundary (`ran`,
    /// with the known continuation it took, if any): its continuation from every boundary it
    /// passed (`marks`) remembered, the first break of each invariant kept.
    fn summarize(
        &mut self,
        ran: Ran,
        marks: Vec<Mark>,
        walk: Option<Walk<'_>>,
        from: Point,
        plan: &plan_model::plan::Plan,
    ) -> (Summary, usize) {
        let Ran { lists, mut breaks, applied, transitions, end } = ran;
        self.remember(&marks, &breaks, &lists, transitions, &end, walk.as_ref(), from, plan);
        self.marks = marks;
        let mut seen = 0u32;
        breaks.retain(|b| {
            let first = seen & (1 << b.invariant) == 0;
            seen |= 1 << b.invariant;
            first
        });
        let run = Tail { breaks: breaks.into_boxed_slice(), lists, since: Since::default(), transitions, end };
        let skipped = walk.map_or(0, |w| w.skipped);
        (Summary { run, applied }, skipped)
    }
}

/// What a run made, its own lists and breaks followed by those of the known continuation it
/// took. The lists are shared from here: a run's are held inline and large, not to be copied.
struct Ran {
    lists: Rc<Lists>,
    breaks: Vec<Break>,
    /// Transitions the run applied itself, and with those of the continuation it took.
    applied: u64,
    transitions: u64,
    end: Rc<End>,
}

impl Memo {
    /// Keeps the continuation of a run from every boundary it passed (`marks`), and for a walk
    /// past the injection's step, the placements it made from there on.
    #[allow(clippy::too_many_arguments)]
    fn remember(
        &mut self,
        marks: &[Mark],
        breaks: &[Break],
        lists: &Rc<Lists>,
        transitions: u64,
        end: &Rc<End>,
        walk: Option<&Walk<'_>>,
        from: Point,
        plan: &plan_model::plan::Plan,
    ) {
        if self.forget {
            return;
        }
        for mark in marks.iter().rev() {
            let tail = tail_from(breaks, lists, mark, transitions, end, plan);
            if let Some(w) = walk {
                if mark.step > from.step as usize {
                    let placed: usize = w.snapshots[mark.snapshots..]
                        .iter()
                        .map(|c| (w.placements_at)(Point { step: c.step as u16, action: c.action as u16 }))
                        .sum();
                    self.kept.walked.insert((mark.key, w.budget), placed + w.skipped);
                }
            }
            self.kept.tails.insert(mark.key, tail);
        }
    }
}

/// The continuation from `mark` of a run with `breaks` and `lists`, as a run starting there
/// would record it: invariants broken in its first state break at its step, the others where
/// they first break after it.
fn tail_from(breaks: &[Break], lists: &Rc<Lists>, mark: &Mark, transitions: u64, end: &Rc<End>, plan: &plan_model::plan::Plan) -> Tail {
    let step = &plan.steps[mark.step].id;
    let mut first: Vec<Break> = match mark.state.as_deref() {
        Some(state) => bits(mark.broken_now).map(|invariant| Break { invariant, step: step.clone(), state: *state }).collect(),
        None => Vec::new(),
    };
    let mut seen = mark.broken_now;
    for b in &breaks[mark.breaks..] {
        if seen & (1 << b.invariant) == 0 {
            seen |= 1 << b.invariant;
            first.push(b.clone());
        }
    }
    Tail {
        breaks: first.into_boxed_slice(),
        lists: lists.clone(),
        since: Since { halts: mark.halts as u32, recoveries: mark.recoveries as u32, dominated: mark.dominated as u32 },
        transitions: transitions - mark.transitions,
        end: end.clone(),
    }
}

/// The end of a run that rejoined the no-fault run at `state`: the no-fault run's outcome and
/// availability, its end shared from `kept` (made from `track` the first time).
fn track_end(kept: &mut Option<(Rc<Cluster>, u32)>, track: &Track, outcome: Outcome, state: &Cluster, t: &Topology) -> End {
    let (end, unavailable) = kept.get_or_insert_with(|| {
        let unavailable = track
            .final_unavailable
            .iter()
            .filter_map(|b| INVARIANTS.iter().position(|i| i.name == b.invariant))
            .fold(0u32, |m, i| m | 1 << i);
        (Rc::new(track.final_state), unavailable)
    });
    debug_assert_eq!(**end, track.final_state, "a memory serves one exploration, of one no-fault run");
    End { outcome, unavailable: *unavailable, state: StateHashed::of(state, t), explain: Some(end.clone()) }
}

/// The end of a run that stopped in `state`; the availability invariants it breaks are judged
/// once per state (`judged`, by the state without its times: none of them reads a time).
fn end_of(state: &Cluster, outcome: Outcome, t: &Topology, judged: &mut FxHashMap<Fingerprint, u32>) -> End {
    let timeless = Cluster { clock_s: 0, certs_uploaded_s: None, token_s: None, last_backup_s: 0, ..*state };
    let unavailable = *judged.entry(Fingerprint::of(&timeless)).or_insert_with(|| {
        INVARIANTS
            .iter()
            .enumerate()
            .filter(|(_, i)| i.class == InvariantClass::Availability && (i.broken)(state, t))
            .fold(0u32, |m, (i, _)| m | 1 << i)
    });
    let explain = (unavailable != 0).then(|| Rc::new(*state));
    End { outcome, unavailable, state: StateHashed::of(state, t), explain }
}

impl Run<'_, '_> {
    fn mark(&self, step: usize, key: Fingerprint, snapshots: usize) -> Mark {
        let broken_now = self.broken_now() & self.reported;
        Mark {
            step,
            state: (broken_now != 0).then(|| Box::new(self.c)),
            key,
            breaks: self.breaks.len(),
            broken_now,
            halts: self.halts.len(),
            recoveries: self.recoveries.len(),
            dominated: self.dominated.len(),
            transitions: self.transitions,
            snapshots,
        }
    }
}

#[cfg(test)]
mod tests;
