//! A no-fault rehearsal of the embedded homelab scenario, end to end on loopback: a private lab up
//! (real etcd, HAProxy, HTTPS apiserver stand-ins), the whole plan walked on it, the lab torn
//! down. Criterion reports the wall time; the client-visible downtime the VIP probe measured is
//! printed beside the twin's predicted downtime, once per rehearsal and as a summary.
//!
//! A second benchmark runs the whole embedded plan through the executor on fixture hosts
//! (`plan rehearse --via-execute`): wall time, executor run time and the probe's downtime beside
//! the twin's predicted downtime. Select one with criterion's filter (`-- executor`).
//!
//! Run with `cargo bench -p plan-lab --bench rehearse` (etcd-server, etcd-client and haproxy
//! installed; the executor's needs root and openssh-server too). Each rehearsal takes seconds, so the sampling is flat: one rehearsal per sample,
//! 10 samples. Under `cargo test --all-targets` (no `--bench` argument) it does nothing: a
//! rehearsal is not a unit test.

use criterion::{Criterion, SamplingMode};
use plan_lab::executor_rehearsal::rehearse_through_executor;
use plan_lab::lab::{check_binaries, Lab};
use plan_lab::rehearse::{rehearse, FidelityReport};
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::run::{Engine, Recording};
use std::time::{Duration, Instant};

const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");
/// Keys committed before the migration, as `plan rehearse` seeds.
const SEED_KEYS: u32 = 10;
/// Apart from `plan rehearse`'s default (21000), `plan lab up`'s (20000) and the tests' (30000+).
const BENCH_PORT_OFFSET: u16 = 22_000;
/// Criterion's minimum.
const SAMPLES: usize = 10;
/// Criterion's target for all samples. Flat sampling runs ceil(target / samples / one run)
/// rehearsals per sample: below 10 runs of 7-9 s it runs one each (and warns that the 10 samples
/// overrun the target, which is harmless); at 100 s it would run two each.
const MEASUREMENT_S: u64 = 60;
/// The same for the run through the executor (35-45 s each): one run per sample.
const EXECUTOR_MEASUREMENT_S: u64 = 300;

/// What one rehearsal measured besides its wall time.
struct Measured {
    walk_ms: u64,
    measured_downtime_ms: u64,
    twin_downtime_s: u32,
    twin_steps: Vec<String>,
    outcome: String,
    disagreements: usize,
}

impl Measured {
    fn of(report: &FidelityReport) -> Measured {
        let downtime = report.figures.vip_downtime.clone().unwrap_or_default();
        Measured {
            walk_ms: report.figures.walk_ms,
            measured_downtime_ms: downtime.measured_ms,
            twin_downtime_s: downtime.twin_down_s,
            twin_steps: downtime.twin_steps,
            outcome: report.lab_outcome.clone(),
            disagreements: report.disagreements().count(),
        }
    }
}

/// One rehearsal: lab up, walk, lab down. Panics (failing the bench) when the lab cannot run.
fn rehearse_once(t: &Topology, plan: &plan_model::plan::Plan) -> (Duration, Measured) {
    let start = Instant::now();
    let mut lab = Lab::private(t, BENCH_PORT_OFFSET, false, SEED_KEYS).unwrap_or_else(|e| panic!("the lab starts: {e}"));
    let report = rehearse(t, plan, &mut lab, None).unwrap_or_else(|e| panic!("the rehearsal runs: {e}"));
    drop(lab);
    let wall = start.elapsed();
    let measured = Measured::of(&report);
    eprintln!(
        "rehearse homelab (no fault): wall {} ms, walk {} ms; VIP downtime measured {} ms (wall clock) vs twin {} s (model clock) in {}; \
         outcome {}; {} disagreement(s)",
        wall.as_millis(),
        measured.walk_ms,
        measured.measured_downtime_ms,
        measured.twin_downtime_s,
        measured.twin_steps.join(", "),
        measured.outcome,
        measured.disagreements
    );
    (wall, measured)
}

fn percentiles(mut values: Vec<u64>) -> String {
    values.sort_unstable();
    match (values.first(), values.get(values.len() / 2), values.last()) {
        (Some(min), Some(median), Some(max)) => format!("min {min}, median {median}, max {max}"),
        _ => "none".to_string(),
    }
}

fn bench_rehearse(c: &mut Criterion) {
    let t = Topology::new(&parse_scenario(HOMELAB).expect("the embedded scenario is valid"));
    let plan = planner::generate(&t);
    let mut runs: Vec<Measured> = Vec::new();
    let mut group = c.benchmark_group("rehearse");
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(MEASUREMENT_S));
    group.bench_function("homelab_no_fault", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (wall, measured) = rehearse_once(&t, &plan);
                total += wall;
                runs.push(measured);
            }
            total
        })
    });
    group.finish();
    if runs.is_empty() {
        // Filtered out (`-- executor`): nothing to sum up.
        return;
    }
    let twin = runs.first().map(|m| format!("{} s (model clock) in {}", m.twin_downtime_s, m.twin_steps.join(", "))).unwrap_or_default();
    eprintln!(
        "\nrehearse homelab (no fault), {} rehearsals on {} cores (load average now {}):\n  walk ms: {}\n  VIP downtime measured ms: {}\n  \
         VIP downtime predicted by the twin: {twin}\n  rehearsals with a disagreement: {}",
        runs.len(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split(' ').next().map(str::to_string)).unwrap_or_default(),
        percentiles(runs.iter().map(|m| m.walk_ms).collect()),
        percentiles(runs.iter().map(|m| m.measured_downtime_ms).collect()),
        runs.iter().filter(|m| m.disagreements > 0).count()
    );
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
    if let Err(missing) = check_binaries(true) {
        eprintln!("rehearse: skipped: {missing}");
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_rehearse(&mut criterion);
    bench_through_the_executor(&mut criterion);
    criterion.final_summary();
}
