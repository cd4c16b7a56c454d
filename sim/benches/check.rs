//! `plan check` on the embedded homelab at depths 1, 2 and 3 and on five masters at depth 2 (goals
//! on the 2-core machine: homelab depth 2 ≤ 50 ms, five masters depth 2 ≤ 100 ms, depth 3 ≤ 2 s),
//! and raw model transitions per second (goal: at least 1 million per core). Depth 3 takes some
//! 2–3 s a check and its group some 70 s: alone it is `cargo bench -p plan-sim --bench check -- depth_3`.
//!
//! Run with `cargo bench -p plan-sim --bench check`. The checks allocate as the binary does, with
//! mimalloc (allocator/) on small pages unless `MIMALLOC_ALLOW_THP` is set, so the figures are
//! those of `plan check` less its start and report.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use plan_model::action::apply;
use plan_model::cluster::Cluster;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::explore::{check, CheckOptions};
use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: plan_allocator::Allocator = plan_allocator::Allocator;

const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");
const FIVE_MASTERS: &str = include_str!("../../scenarios/five-masters.yaml");

fn homelab() -> Topology {
    Topology::new(&parse_scenario(HOMELAB).expect("the embedded scenario is valid"))
}

fn check_depths(c: &mut Criterion) {
    // As the binary does first thing: small pages unless MIMALLOC_ALLOW_THP is set.
    plan_allocator::small_pages_unless_asked();
    let five_masters = Topology::new(&parse_scenario(FIVE_MASTERS).expect("the scenario is valid"));
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    for (name, t, depth) in [("homelab", homelab(), 1u8), ("homelab", homelab(), 2), ("five_masters", five_masters, 2)] {
        let plan = planner::generate(&t);
        // Throughput in fault placements: each one a whole run judged, most of it shared.
        let placements = check(&t, &plan, CheckOptions { depth }).figures.fault_placements;
        group.throughput(Throughput::Elements(placements as u64));
        group.bench_function(format!("{name}_depth_{depth}"), |b| b.iter(|| black_box(check(&t, &plan, CheckOptions { depth }))));
    }
    group.finish();
}

/// The homelab at depth 3: ten checks of 4.53 million placements each, one after another.
fn check_depth_three(c: &mut Criterion) {
    plan_allocator::small_pages_unless_asked();
    let t = homelab();
    let plan = planner::generate(&t);
    let mut group = c.benchmark_group("check_deep");
    group.sample_size(10);
    group.sampling_mode(criterion::SamplingMode::Flat);
    group.measurement_time(std::time::Duration::from_secs(60));
    group.bench_function("homelab_depth_3", |b| b.iter(|| black_box(check(&t, &plan, CheckOptions { depth: 3 }))));
    group.finish();
}

/// The plan's actions applied one after another from the initial state: the raw speed of the
/// model's transition function, with no exploration bookkeeping.
fn raw_transitions(c: &mut Criterion) {
    let t = homelab();
    let plan = planner::generate(&t);
    let actions: Vec<_> = plan.steps.iter().flat_map(|s| s.actions.iter().copied()).collect();
    let initial = Cluster::initial(&t);
    let mut group = c.benchmark_group("transitions");
    group.throughput(Throughput::Elements(actions.len() as u64));
    group.bench_function("homelab_plan_actions", |b| {
        b.iter_batched(
            || initial,
            |mut state| {
                for &action in &actions {
                    // Refusals are transitions too (the precondition is evaluated); keep going.
                    if let Ok(next) = apply(&state, &t, black_box(action)) {
                        state = next;
                    }
                }
                black_box(state)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, check_depths, check_depth_three, raw_transitions);
criterion_main!(benches);
