//! A no-fault rehearsal of the embedded homelab scenario, end to end on loopback: the whole plan
//! through the executor on a fresh lab (`plan rehearse`: fixture hosts, real etcd and HAProxy,
//! apiserver and kubelet stand-ins), the lab torn down. Criterion reports the wall time; the
//! executor's run time and the probe's downtime through the VIP are printed beside the twin's
//! predicted downtime, once per rehearsal and as a summary.
//!
//! Run with `cargo bench -p plan-lab --bench rehearse` (root, openssh-server, etcd-server,
//! etcd-client and haproxy installed). Each rehearsal takes seconds, so the sampling is flat: one
//! rehearsal per sample, 10 samples. Under `cargo test --all-targets` (no `--bench` argument) it
//! does nothing: a rehearsal is not a unit test.

use criterion::{Criterion, SamplingMode};
use plan_lab::executor_rehearsal::rehearse_through_executor;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::run::{Engine, Recording};
use std::time::{Duration, Instant};

const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");
/// Criterion's minimum.
const SAMPLES: usize = 10;
/// Criterion's target for all samples. Flat sampling runs ceil(target / samples / one run)
/// rehearsals per sample: with runs of 18-45 s, one each.
const EXECUTOR_MEASUREMENT_S: u64 = 300;

fn percentiles(mut values: Vec<u64>) -> String {
    values.sort_unstable();
    match (values.first(), values.get(values.len() / 2), values.last()) {
        (Some(min), Some(median), Some(max)) => format!("min {min}, median {median}, max {max}"),
        _ => "none".to_string(),
    }
}

/// What one run of the whole plan through the executor measured besides its wall time.
struct ExecutorMeasured {
    run_ms: u64,
    downtime_ms: u64,
    outages: Vec<String>,
    disagreements: usize,
}

/// The whole embedded plan through the executor on fixture hosts (`plan rehearse --via-execute`):
/// wall time of the rehearsal (lab up, run, rows, lab down) and the VIP probe's downtime, beside the
/// twin's predicted client-visible downtime.
fn bench_through_the_executor(c: &mut Criterion) {
    if let Err(e) = plan_lab::host::usable() {
        eprintln!("rehearse via the executor: skipped: {e}");
        return;
    }
    let t = Topology::new(&parse_scenario(HOMELAB).expect("the embedded scenario is valid"));
    let plan = planner::generate(&t);
    let twin = Engine::new(&t, &plan, Recording { events: false, downtime: true }).run(&[]);
    let mut runs: Vec<ExecutorMeasured> = Vec::new();
    let mut group = c.benchmark_group("rehearse");
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(EXECUTOR_MEASUREMENT_S));
    group.bench_function("homelab_through_the_executor", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let report = rehearse_through_executor(&t, &plan, &["all".to_string()], None)
                    .unwrap_or_else(|e| panic!("the rehearsal through the executor runs: {e}"));
                let wall = start.elapsed();
                total += wall;
                let measured = ExecutorMeasured {
                    run_ms: report.run_ms,
                    downtime_ms: report.probe.downtime_ms,
                    outages: report.probe.outages.iter().map(|o| format!("{} ms in {}", o.lasted_ms, o.steps.join(","))).collect(),
                    disagreements: report.disagreements().count(),
                };
                eprintln!(
                    "rehearse homelab through the executor: wall {} ms, executor run {} ms; VIP downtime measured {} ms ({}); {} rows, {} disagree",
                    wall.as_millis(),
                    measured.run_ms,
                    measured.downtime_ms,
                    measured.outages.join("; "),
                    report.rows.len(),
                    measured.disagreements
                );
                runs.push(measured);
            }
            total
        })
    });
    group.finish();
    if runs.is_empty() {
        return;
    }
    let predicted: Vec<String> = twin.downtime.consumers.iter().map(|(class, d)| format!("{class} {} s", d.down_s)).collect();
    eprintln!(
        "\nrehearse homelab through the executor, {} runs on {} cores:\n  executor run ms: {}\n  VIP downtime measured ms: {}\n  \
         client-visible downtime predicted by the twin (model clock): {}\n  runs with a disagreement: {}",
        runs.len(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        percentiles(runs.iter().map(|m| m.run_ms).collect()),
        percentiles(runs.iter().map(|m| m.downtime_ms).collect()),
        predicted.join(", "),
        runs.iter().filter(|m| m.disagreements > 0).count()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("rehearse: a benchmark, not a test: run it with `cargo bench -p plan-lab --bench rehearse`");
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_through_the_executor(&mut criterion);
    criterion.final_summary();
}
