//! `plan check --depth 2` on the embedded homelab (goal: under 1 s on the 2-core machine) and
//! raw model transitions per second (goal: at least 1 million per core).
//!
//! Run with `cargo bench -p plan-sim --bench check`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use plan_model::action::apply;
use plan_model::cluster::Cluster;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::explore::{check, CheckOptions};
use std::hint::black_box;

const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");

fn homelab() -> Topology {
    Topology::new(&parse_scenario(HOMELAB).expect("the embedded scenario is valid"))
}

fn check_depths(c: &mut Criterion) {
    let t = homelab();
    let plan = planner::generate(&t);
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    for depth in [1u8, 2] {
        let transitions = check(&t, &plan, CheckOptions { depth }).figures.transitions;
        group.throughput(Throughput::Elements(transitions));
        group.bench_function(format!("homelab_depth_{depth}"), |b| b.iter(|| black_box(check(&t, &plan, CheckOptions { depth }))));
    }
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

criterion_group!(benches, check_depths, raw_transitions);
criterion_main!(benches);
