//! Properties of the planner and the twin over random valid inventories and random fault
//! schedules (proptest): the plan keeps its DAG, `plan check` terminates, a safety invariant the
//! twin breaks is always reported, and a counterexample shrinks to a short schedule.
//!
//! Inventories are the homelab scenario with every fact the planner reads redrawn: 1 existing
//! master -> 3, 5 or 7 masters, 0 to 20 workers, 1 to 3 hypervisors, 0 to 6 consumers of every
//! kind, Kubernetes 1.27 to 1.34 with each learner-mode setting, both LB health checks, both
//! config-stack shapes. Case counts keep the file under 30 s in a debug build on 2 cores.

use plan_model::action;
use plan_model::cluster::Cluster;
use plan_model::fault::Fault;
use plan_model::invariant::{InvariantClass, INVARIANTS};
use plan_model::plan::Plan;
use plan_model::scenario::{
    AddressRange, ConsumerKind, ConsumerSpec, HealthCheck, HypervisorSpec, LearnerModeSetting, NewMasterSpec, NodeRole, NodeSpec, Scenario,
    StackHosts,
};
use plan_model::topology::{learner_mode, Topology};
use plan_model::{planner, validate};
use plan_sim::explore::{self, CheckOptions, Verdict};
use plan_sim::run::{Engine, Injection, Point, Recording, RunResult};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

const HOMELAB: &str = include_str!("../scenarios/homelab.yaml");

/// The facts of an inventory that the generator draws.
#[derive(Debug, Clone)]
struct Shape {
    target: u32,
    workers: usize,
    hypervisors: usize,
    /// Hypervisor of each node, existing master first, then new masters, then workers (taken
    /// modulo `hypervisors`).
    placement: Vec<usize>,
    hypervisor_ram_gb: Vec<u32>,
    /// RAM already allocated on each hypervisor, in percent of its physical RAM: from roomy to
    /// full, so some inventories over-commit (the hypervisor-ram safety invariant).
    hypervisor_allocated_percent: Vec<u32>,
    new_master_ram_gb: u32,
    minor: u32,
    template_minor: u32,
    learner: LearnerModeSetting,
    health_check: HealthCheck,
    reset_to_declared_state: bool,
    stack_hosts: StackHosts,
    consumers: Vec<(ConsumerKind, bool)>,
    backup_pinned: bool,
    gate_quorum_check: bool,
    metallb_pool: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    let kinds = prop_oneof![
        Just(ConsumerKind::Kubeconfig),
        Just(ConsumerKind::CiPipeline),
        Just(ConsumerKind::UserPortal),
        Just(ConsumerKind::JoinCommand)
    ];
    let learner = prop_oneof![Just(LearnerModeSetting::Auto), Just(LearnerModeSetting::On), Just(LearnerModeSetting::Off)];
    (
        (prop_oneof![Just(3u32), Just(5), Just(7)], 0usize..=20, 1usize..=3, prop::collection::vec(0usize..3, 28)),
        (prop::collection::vec((32u32..=512, 0u32..=95), 3), 4u32..=32, 27u32..=34, 0u32..=7, learner),
        (prop_oneof![Just(HealthCheck::Tcp), Just(HealthCheck::HttpsReadyz)], any::<bool>(), any::<bool>()),
        (prop::collection::vec((kinds, any::<bool>()), 0..=6), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|(counts, versions, lb, rest)| {
            let (target, workers, hypervisors, placement) = counts;
            let (hypervisor_ram, new_master_ram_gb, minor, template_back, learner) = versions;
            let (health_check, reset_to_declared_state, list_hosts) = lb;
            let (consumers, backup_pinned, gate_quorum_check, metallb_pool) = rest;
            Shape {
                target,
                workers,
                hypervisors,
                placement,
                hypervisor_ram_gb: hypervisor_ram.iter().map(|(gb, _)| *gb).collect(),
                hypervisor_allocated_percent: hypervisor_ram.iter().map(|(_, percent)| *percent).collect(),
                new_master_ram_gb,
                minor,
                template_minor: minor.saturating_sub(template_back).max(27),
                learner,
                health_check,
                reset_to_declared_state,
                stack_hosts: if list_hosts { StackHosts::List } else { StackHosts::Single },
                consumers,
                backup_pinned,
                gate_quorum_check,
                metallb_pool,
            }
        })
}

/// The homelab scenario with the drawn facts in place of its own.
fn inventory(shape: &Shape) -> Scenario {
    let mut s: Scenario = validate::parse_scenario(HOMELAB).expect("the homelab scenario is valid");
    let hypervisor = |i: usize| format!("hv-{}", shape.placement[i] % shape.hypervisors);
    s.name = "generated".to_string();
    s.kubernetes.version = format!("1.{}", shape.minor);
    s.kubernetes.etcd_learner_mode = shape.learner;
    s.vm_template.as_mut().expect("the homelab declares a template").kubernetes_version = format!("1.{}", shape.template_minor);
    s.hypervisors = (0..shape.hypervisors)
        .map(|h| HypervisorSpec {
            name: format!("hv-{h}"),
            kind: Default::default(),
            ssh_user: "root".to_string(),
            address: Some(Ipv4Addr::new(192, 168, 50, h as u8 + 1)),
            ram_physical_gb: shape.hypervisor_ram_gb[h] as f64,
            ram_allocated_gb: (shape.hypervisor_ram_gb[h] * shape.hypervisor_allocated_percent[h] / 100) as f64,
            swap_used_gb: 0.0,
            cpus_physical: None,
            vcpu_allocated: None,
        })
        .collect();
    let master = Ipv4Addr::new(10, 9, 0, 10);
    let mut nodes = vec![NodeSpec {
        name: "cp-0".to_string(),
        role: NodeRole::ControlPlane,
        address: master,
        vmid: Some(100),
        hypervisor: hypervisor(0),
        vcpu: Some(4),
        ram_gb: Some(16.0),
        disk_gb: Some(64),
        ram_used_gb: Some(4.0),
    }];
    nodes.extend((0..shape.workers).map(|w| NodeSpec {
        name: format!("wk-{w}"),
        role: NodeRole::Worker,
        address: Ipv4Addr::new(10, 9, 1, w as u8 + 1),
        vmid: None,
        hypervisor: hypervisor(7 + w),
        vcpu: None,
        ram_gb: None,
        disk_gb: None,
        ram_used_gb: None,
    }));
    s.nodes = nodes;
    s.new_masters = (1..shape.target)
        .map(|k| NewMasterSpec {
            name: format!("cp-{k}"),
            address: Ipv4Addr::new(10, 9, 0, 10 + k as u8),
            vmid: Some(100 + k),
            hypervisor: hypervisor(k as usize),
            vcpu: 4,
            ram_gb: shape.new_master_ram_gb as f64,
            disk_gb: 64,
        })
        .collect();
    s.target.control_plane_count = shape.target;
    s.control_plane_endpoint.vip = Ipv4Addr::new(10, 9, 0, 5);
    s.load_balancer.address = Some(Ipv4Addr::new(10, 9, 0, 1));
    s.load_balancer.health_check = shape.health_check;
    s.load_balancer.reset_to_declared_state = shape.reset_to_declared_state;
    s.metallb_pool = shape.metallb_pool.then(|| AddressRange { first: Ipv4Addr::new(10, 9, 2, 0), last: Ipv4Addr::new(10, 9, 2, 50) });
    for record in &mut s.dns.records {
        record.address = master;
    }
    let server = format!("https://{master}:{}", s.control_plane_endpoint.port);
    s.consumers = shape
        .consumers
        .iter()
        .enumerate()
        .map(|(i, (kind, oidc))| ConsumerSpec {
            name: format!("c-{i}"),
            kind: *kind,
            path: format!("clients/c-{i}.yaml"),
            line: None,
            server: server.clone(),
            oidc: *oidc,
        })
        .collect();
    for job in &mut s.cronjobs {
        job.pinned_to = (shape.backup_pinned || !job.backup).then(|| "cp-0".to_string());
    }
    if let Some(chain) = &mut s.upgrade_chain {
        chain.masters = vec!["cp-0".to_string()];
    }
    s.config_stack.as_mut().expect("the homelab declares a config stack").hosts = shape.stack_hosts;
    if let Some(gate) = &mut s.reboot_gate {
        gate.control_plane_quorum_check = shape.gate_quorum_check;
    }
    s
}

/// A valid inventory's topology and the planner's plan for it.
fn planned(shape: &Shape) -> Result<(Topology, Plan), TestCaseError> {
    let scenario = inventory(shape);
    if let Err(problem) = validate::validate(&scenario) {
        return Err(TestCaseError::fail(format!("the generator drew an invalid inventory: {} ({})", problem.message, problem.path)));
    }
    let topology = Topology::new(&scenario);
    let plan = planner::generate(&topology);
    Ok((topology, plan))
}

/// Every point of the plan where a fault can strike: each step's start and each action boundary.
fn points(plan: &Plan) -> Vec<Point> {
    plan.steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| (0..s.actions.len().max(1)).map(move |k| Point { step: i as u16, action: k as u16 }))
        .collect()
}

/// A schedule drawn as raw indices, resolved against a plan and its faults (so one strategy
/// serves every inventory, and shrinking moves toward early points and the first faults).
fn schedule_of(raw: &[(usize, usize)], points: &[Point], faults: &[Fault]) -> Vec<Injection> {
    raw.iter().map(|(p, f)| Injection { at: points[p % points.len()], fault: faults[f % faults.len()] }).collect()
}

/// The safety invariants broken along the run's prefix that needs no executor policy, found by
/// replaying it with the model's own functions: the plan's actions up to the first fault (or
/// to the first refusal), then that point's faults striking. Each with the step it first broke
/// at, as the engine reports it.
fn replayed_breaks(t: &Topology, plan: &Plan, schedule: &[Injection]) -> BTreeMap<&'static str, String> {
    let first = schedule.iter().map(|i| i.at).min();
    let mut c = Cluster::initial(t);
    let mut breaks = BTreeMap::new();
    let mut note = |c: &Cluster, step: &str| {
        for inv in INVARIANTS.iter().filter(|i| i.class == InvariantClass::Safety) {
            if (inv.broken)(c, t) {
                breaks.entry(inv.name).or_insert_with(|| step.to_string());
            }
        }
    };
    note(&c, &plan.steps[0].id);
    for (i, step) in plan.steps.iter().enumerate() {
        for k in 0..=step.actions.len() {
            let point = Point { step: i as u16, action: k as u16 };
            if first == Some(point) {
                for injection in schedule.iter().filter(|i| i.at == point) {
                    c = injection.fault.strike(&c, t);
                }
                note(&c, &step.id);
                return breaks;
            }
            let Some(&a) = step.actions.get(k) else { break };
            match action::apply(&c, t, a) {
                Ok(next) => c = next,
                Err(_) => return breaks,
            }
            note(&c, &step.id);
        }
    }
    breaks
}

fn safety_names(result: &RunResult) -> BTreeSet<&'static str> {
    result.broken.iter().filter(|b| b.class == InvariantClass::Safety).map(|b| b.invariant).collect()
}

proptest! {
    #![proptest_config(Config { cases: 64, ..Config::default() })]

    /// The plan for any valid inventory keeps its own DAG, names real steps and phases, has one
    /// phase per new master, and survives the plan-file round trip unchanged.
    #[test]
    fn the_planners_plan_satisfies_its_dag(shape in shape()) {
        let (t, plan) = planned(&shape)?;
        prop_assert_eq!(plan.check_order(), Ok(()));
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        for (i, step) in plan.steps.iter().enumerate() {
            prop_assert!(plan.phases.iter().any(|p| p.id == step.phase), "step {} in unknown phase {}", step.id, step.phase);
            for dep in &step.after {
                let at = ids.iter().position(|id| *id == dep.step);
                prop_assert!(at.is_some_and(|at| at < i), "step {} depends on {}, which is not an earlier step", step.id, dep.step);
            }
        }
        let master_phases = (0..t.new_masters().count()).map(planner::master_phase).filter(|id| plan.phases.iter().any(|p| &p.id == id)).count();
        prop_assert_eq!(master_phases, shape.target as usize - 1);
        prop_assert_eq!(t.learner_mode, learner_mode((1, shape.minor), shape.learner));
        let file: Plan = serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&plan).expect("a plan serializes")).expect("an exported plan loads");
        prop_assert_eq!(Plan::from_edited(&t, &plan, &file), Ok(plan.clone()));
    }

    /// Under any schedule of up to three faults, a safety invariant that breaks is never
    /// silent: it is in `broken` once, its timeline event names it, and nothing else is named;
    /// whatever the final state breaks is among them, and so is whatever an independent replay
    /// of the run's prefix breaks, at the same step.
    #[test]
    fn safety_breaks_are_never_silent(shape in shape(), raw in prop::collection::vec((any::<usize>(), any::<usize>()), 1..=3)) {
        let (t, plan) = planned(&shape)?;
        let schedule = schedule_of(&raw, &points(&plan), &Fault::all(&t));
        let result = Engine::new(&t, &plan, Recording { events: true, downtime: false }).run(&schedule);
        let broken = safety_names(&result);
        prop_assert_eq!(broken.len(), result.broken.iter().filter(|b| b.class == InvariantClass::Safety).count(), "an invariant reported twice");
        for inv in INVARIANTS.iter().filter(|i| i.class == InvariantClass::Safety) {
            if let Err(why) = inv.holds(&result.final_state, &t) {
                prop_assert!(broken.contains(inv.name), "the final state breaks {} ({why}) but the run does not report it", inv.name);
            }
        }
        for (name, step) in replayed_breaks(&t, &plan, &schedule) {
            let reported = result.broken.iter().find(|b| b.invariant == name);
            prop_assert!(reported.is_some_and(|b| b.step == step), "{name} breaks at step {step} in the replay; the run reports {reported:?}");
        }
        let in_timeline: Vec<&str> = result.events.iter().flat_map(|e| e.broke.iter().map(String::as_str)).collect();
        let named: BTreeSet<&str> = in_timeline.iter().copied().collect();
        prop_assert_eq!(in_timeline.len(), named.len(), "the timeline names a break twice");
        prop_assert_eq!(named, broken, "the timeline and the result disagree on what broke");
    }
}

proptest! {
    #![proptest_config(Config { cases: 6, ..Config::default() })]

    /// `plan check` at depth 1 terminates on any valid inventory with an honest verdict, and
    /// every safety invariant a single fault breaks in a plain run is among its violations.
    #[test]
    fn plan_check_terminates_and_misses_no_single_fault_break(
        shape in shape(),
        raw in prop::collection::vec((any::<usize>(), any::<usize>()), 16),
    ) {
        let (t, plan) = planned(&shape)?;
        let report = explore::check(&t, &plan, CheckOptions { depth: 1 });
        prop_assert_eq!(report.verdict == Verdict::Pass, report.violations.is_empty());
        prop_assert!(report.figures.fault_placements >= points(&plan).len(), "{:?}", report.figures);
        let engine = Engine::new(&t, &plan, Recording::default());
        let baseline = safety_names(&engine.run(&[]));
        let reported: BTreeSet<&str> = report.violations.iter().map(|v| v.invariant.as_str()).collect();
        prop_assert!(baseline.iter().all(|b| reported.contains(b)), "no-fault breaks {baseline:?}, reported {reported:?}");
        // The faults `plan check` places: a half-way failure or executor crash only inside a step.
        let placeable: Vec<Injection> = schedule_of(&raw, &points(&plan), &Fault::all(&t))
            .into_iter()
            .filter(|i| i.at.action > 0 || !matches!(i.fault, Fault::StepFailsHalfway | Fault::ExecutorCrash))
            .collect();
        for injection in placeable {
            for name in safety_names(&engine.run(&[injection])) {
                prop_assert!(reported.contains(name), "{} at {:?} breaks {name}, which plan check does not report", injection.fault.describe(&t), injection.at);
            }
        }
    }
}

/// A deliberately broken plan: the homelab (right-sized) with k8s-master-2 declared in the LB's
/// pool at the end of its join (2.5) instead of in 2.8, so before 2.6 gives it the apiserver
/// flags. Without faults nothing breaks (the pool is deployed in 2.8, after the flags); an LB
/// reload or reboot in between makes the declared pool live. Proptest finds it among random
/// schedules of up to four faults and shrinks it to the one fault that matters.
#[test]
fn a_counterexample_shrinks_to_a_one_fault_schedule() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/homelab-rightsized.yaml")).expect("scenario reads");
    let t = Topology::new(&validate::parse_scenario(&text).expect("scenario is valid"));
    let mut plan = planner::generate(&t);
    let master_2 = t.resolve("master-2").expect("k8s-master-2 exists");
    let pool = plan_model::topology::NodeSet::of(t.existing_master()).with(master_2);
    let declare = plan_model::action::Action::DeclareLbPool(pool);
    let pool_step = plan.steps.iter().position(|s| s.id == "2.8").expect("step 2.8");
    let join_step = plan.steps.iter().position(|s| s.id == "2.5").expect("step 2.5");
    assert_eq!(plan.steps[pool_step].actions.first(), Some(&declare), "2.8 starts by declaring the backend");
    plan.steps[pool_step].actions.remove(0);
    plan.steps[join_step].actions.push(declare);

    let engine = Engine::new(&t, &plan, Recording::default());
    assert!(safety_names(&engine.run(&[])).is_empty(), "the broken plan must be safe without faults");
    let points = points(&plan);
    let faults = Fault::all(&t);
    // A fixed seed: the search and its shrinking are the same on every run.
    let config = Config { cases: 4000, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let schedules = prop::collection::vec((0..points.len(), 0..faults.len()), 1..=4);
    let outcome = runner.run(&schedules, |raw| {
        let broken = safety_names(&engine.run(&schedule_of(&raw, &points, &faults)));
        prop_assert!(broken.is_empty(), "broke {broken:?}");
        Ok(())
    });
    let Err(TestError::Fail(_, minimal)) = outcome else { panic!("proptest did not find the LB-reload hazard: {outcome:?}") };
    let schedule = schedule_of(&minimal, &points, &faults);
    assert_eq!(schedule.len(), 1, "shrunk to one fault: {schedule:?}");
    let fault = schedule[0].fault;
    assert!(matches!(fault, Fault::LbReload | Fault::LbDown { .. }), "the fault that makes the declared pool live: {}", fault.describe(&t));
    let at = &plan.steps[schedule[0].at.step as usize].id;
    assert!(at == "2.5" || at == "2.6", "in the window between the declaration and the flags: {at}");

    // The shrunk schedule's trace is short and names the break.
    let recorded = Engine::new(&t, &plan, Recording { events: true, downtime: false }).run(&schedule);
    let trace = explore::trace_lines(&recorded, &schedule, &plan, "lb-backends-uniform");
    assert!(trace.len() <= 8, "a short trace: {trace:#?}");
    assert!(trace.last().is_some_and(|l| l.contains("BREAKS lb-backends-uniform")), "{trace:#?}");
    let why = &recorded.broken.iter().find(|b| b.invariant == "lb-backends-uniform").expect("reported").why;
    assert!(why.contains("k8s-master-2 is in the VIP pool without the apiserver flags"), "{why}");

    // `plan check` finds the same hazard exhaustively, with a one-fault schedule too.
    let report = explore::check(&t, &plan, CheckOptions { depth: 1 });
    let found = report.violations.iter().find(|v| v.invariant == "lb-backends-uniform").expect("plan check reports the hazard");
    assert_eq!(found.schedule.len(), 1, "{found:?}");
}
