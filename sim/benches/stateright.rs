//! Side by side, in one run: the growth of the embedded homelab (each new master's phase: its
//! VM, the join that adds it as a learner, starts and promotes it, the LB pool; up to two masters crash, at any point; etcd quorum must hold)
//! checked by Stateright 0.31's breadth-first checker, and the same growth through `plan`'s
//! explorer (the twin's runs, continuations shared through the memory). Both on one thread, over the
//! same states and transitions: Stateright's model is `plan`'s model.
//! Prints the CPU per generated state of each and their ratio (goal: `plan` ≤ 1× Stateright).
//!
//! A generated state is, for Stateright, every successor state its checker generates
//! (`Checker::state_count`, duplicates included); for `plan`, every state a model transition
//! or a fault's strike produced, the runs of the candidate recoveries it ranks at a halt included
//! (Stateright's model has no recovery: a halt ends its run).
//!
//! Run with `cargo bench -p plan-sim --bench stateright`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use plan_model::action::apply;
use plan_model::cluster::Cluster;
use plan_model::fault::Fault;
use plan_model::invariant::{self, Invariant, InvariantClass, INVARIANTS};
use plan_model::observe;
use plan_model::plan::Plan;
use plan_model::planner;
use plan_model::topology::{NodeIx, Topology};
use plan_model::validate::parse_scenario;
use plan_sim::memo::{Memo, Walk};
use plan_sim::recovery::{phase_kind, PhaseKind};
use plan_sim::run::{Cursor, Engine, Injection, Point, Recording, Track};
use stateright::{Checker, Model, Property};
use std::hint::black_box;
use std::time::{Duration, Instant};

const FIVE_MASTERS: &str = include_str!("../../scenarios/five-masters.yaml");

/// Crashes placed in one schedule, in both checkers.
const CRASHES_MAX: u8 = 2;

/// A state of the growth: the twin's cluster, where the plan is, and the crashes so far.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Growth {
    cluster: Cluster,
    step: usize,
    action: usize,
    crashes: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Move {
    /// The plan's next action.
    Next,
    Crash(NodeIx),
}

/// The growth as a Stateright model over `plan`'s own state and transitions: from the no-fault
/// state where the growth begins, the plan's actions to its end, and a
/// crash of any master that is up (at most [`CRASHES_MAX`]). A refused action or a lost
/// quorum ends the run (the twin would halt and recover; Stateright has no recovery here).
struct EtcdGrowth<'a> {
    t: &'a Topology,
    reversible: &'static Invariant,
    plan: &'a Plan,
    start: Growth,
    end: usize,
}

fn quorum(s: &Growth) -> bool {
    observe::quorum(&s.cluster).holds()
}

impl Model for EtcdGrowth<'static> {
    type State = Growth;
    type Action = Move;

    fn init_states(&self) -> Vec<Growth> {
        vec![self.start.clone()]
    }

    fn actions(&self, s: &Growth, actions: &mut Vec<Move>) {
        if !quorum(s) || s.step >= self.end {
            return;
        }
        actions.push(Move::Next);
        if s.crashes < CRASHES_MAX {
            actions.extend(self.t.target_masters().and(s.cluster.up).iter().map(Move::Crash));
        }
    }

    fn next_state(&self, s: &Growth, action: Move) -> Option<Growth> {
        let mut n = s.clone();
        match action {
            Move::Next => match self.plan.steps[s.step].actions.get(s.action) {
                Some(&a) => {
                    n.cluster = apply(&s.cluster, self.t, a).ok()?;
                    n.action += 1;
                }
                None => {
                    n.step += 1;
                    n.action = 0;
                }
            },
            Move::Crash(node) => {
                n.cluster = Fault::NodeDown { node, lasts_s: None }.strike(&s.cluster, self.t);
                n.crashes += 1;
            }
        }
        Some(n)
    }

    /// The quorum, and the safety invariants the plan keeps without faults: the first is lost
    /// to crashes early, the others hold, so the checker visits every reachable state (it
    /// stops only once every property has a counterexample).
    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("etcd quorum", |_, s: &Growth| quorum(s)),
            Property::always("membership reversible", |m: &Self, s: &Growth| !(m.reversible.broken)(&s.cluster, m.t)),
        ]
    }
}

/// Stateright's check of the growth: states generated.
fn stateright_check(model: EtcdGrowth<'static>) -> usize {
    model.checker().threads(1).spawn_bfs().join().state_count()
}

/// The growth through `plan`'s explorer: every master's crash at every point of the growth,
/// and a second crash wherever each run goes on to within it; states generated.
fn plan_check(t: &Topology, engine: &Engine<'_>, track: &Track, points: &[(Point, Cluster)], end: usize) -> u64 {
    let crashes: Vec<Fault> = t.target_masters().iter().map(|node| Fault::NodeDown { node, lasts_s: None }).collect();
    let reported = INVARIANTS.iter().enumerate().filter(|(_, i)| i.class == InvariantClass::Safety).fold(0, |m, (i, _)| m | 1 << i);
    let mut memo = Memo::new(reported);
    let placements_at = |_: Point| crashes.len();
    let mut generated = 0u64;
    for &(point, state) in points {
        for &crash in &crashes {
            let mut snapshots = Vec::new();
            let walk = Walk { snapshots: &mut snapshots, budget: 1, skipped: 0, placements_at: &placements_at };
            let (run, _) = memo.run(engine, &Cursor::at(state, point), &[Injection { at: point, fault: crash }], track, Some(walk));
            generated += run.applied + 1;
            for cursor in snapshots.iter().filter(|c| c.step < end) {
                let at = Point { step: cursor.step as u16, action: cursor.action as u16 };
                for &second in &crashes {
                    let (run, _) = memo.run(engine, cursor, &[Injection { at, fault: second }], track, None);
                    generated += run.applied + 1;
                }
            }
        }
    }
    generated + memo.rankings.transitions
}

/// The steps of the phases that add a master (VM, join: `member add` as a learner, start,
/// `member promote`, LB pool): from the first to the one after the last.
fn growth(engine: &Engine<'_>) -> std::ops::Range<usize> {
    let plan = engine.plan;
    let adds = |s: &&plan_model::plan::Step| matches!(phase_kind(plan, &s.phase), PhaseKind::Master(_));
    let start = plan.steps.iter().position(|s| adds(&s)).unwrap_or(0);
    let end = plan.steps.iter().rposition(|s| adds(&s)).map_or(0, |i| i + 1);
    start..end
}

/// The points of the no-fault run in the growth.
fn growth_points(engine: &Engine<'_>, states: &[(Point, Cluster)]) -> Vec<(Point, Cluster)> {
    let steps = growth(engine);
    states.iter().copied().filter(|(p, _)| steps.contains(&(p.step as usize))).collect()
}

/// Seconds per generated state over `runs` runs of `check`.
fn per_state(runs: u32, check: &mut dyn FnMut() -> u64) -> (f64, u64) {
    let started = Instant::now();
    let mut generated = 0;
    for _ in 0..runs {
        generated = black_box(check());
    }
    (started.elapsed().as_secs_f64() / runs as f64 / generated as f64, generated)
}

fn side_by_side(c: &mut Criterion) {
    // Stateright's model is 'static: the scenario and the plan live for the whole benchmark.
    let t: &'static Topology = Box::leak(Box::new(Topology::new(&parse_scenario(FIVE_MASTERS).expect("the embedded scenario is valid"))));
    let plan: &'static Plan = Box::leak(Box::new(planner::generate(t)));
    let engine = Engine::new(t, plan, Recording::default());
    let (track, states) = engine.track();
    let points = growth_points(&engine, &states);
    let (first, cluster) = points[0];
    let start = Growth { cluster, step: first.step as usize, action: first.action as usize, crashes: 0 };
    let reversible = invariant::by_name("membership-reversible").expect("a named invariant");
    let end = growth(&engine).end;
    let model = || EtcdGrowth { t, reversible, plan, start: start.clone(), end };

    let (plan_s, plan_states) = per_state(10, &mut || plan_check(t, &engine, &track, &points, end));
    let (stateright_s, stateright_states) = per_state(10, &mut || stateright_check(model()) as u64);
    println!(
        "side by side, five masters. growth ({} plan points), up to {CRASHES_MAX} crashes, one thread: \
         plan {plan_states} states, {:.0} ns/state; Stateright {stateright_states} states, {:.0} ns/state; \
         plan/Stateright CPU per generated state: {:.2}",
        points.len(),
        plan_s * 1e9,
        stateright_s * 1e9,
        plan_s / stateright_s
    );

    let mut group = c.benchmark_group("side_by_side");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(plan_states));
    group.bench_function("plan_explorer", |b| b.iter(|| black_box(plan_check(t, &engine, &track, &points, end))));
    group.throughput(Throughput::Elements(stateright_states));
    group.bench_function("stateright_bfs", |b| b.iter(|| black_box(stateright_check(model()))));
    group.finish();
}

criterion_group!(benches, side_by_side);
criterion_main!(benches);
