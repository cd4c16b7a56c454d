//! The exploration's memory checked against the plain run: every single fault, and second
//! faults after it, give the same outcome, recoveries, halt, breaks (step and message),
//! availability at the end and dominated recoveries whether the run is carried out to its end
//! or takes a continuation another run worked out.

use plan_model::fault::{Fault, FaultKind};
use plan_model::invariant::{InvariantClass, INVARIANTS};
use plan_model::plan::Plan;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::memo::{Memo, StateHashed, Summary};
use plan_sim::run::{Cursor, Engine, Injection, Point, Recording, RunResult};

fn topology(text: &str) -> Topology {
    Topology::new(&parse_scenario(text).expect("the scenario is valid"))
}

/// Every safety invariant's breaks kept.
fn every_safety_invariant() -> u32 {
    INVARIANTS.iter().enumerate().filter(|(_, i)| i.class == InvariantClass::Safety).fold(0, |m, (i, _)| m | 1 << i)
}

fn assert_same(t: &Topology, plan: &Plan, plain: &RunResult, shared: &Summary, what: &str) {
    assert_eq!(&plain.outcome, shared.outcome(), "{what}: outcome");
    assert_eq!(plain.recoveries, shared.recoveries(), "{what}: recoveries");
    assert_eq!(plain.halted_at.as_ref(), shared.halt().map(|h| &plan.steps[h.step].id), "{what}: halted at");
    // A refusal the memory's run met is worded when asked for: in the words the plain run gave.
    assert_eq!(plain.halt, shared.halt().map(|h| h.halt(t)), "{what}: halt");
    assert_eq!(plain.dominated, shared.dominated(), "{what}: dominated");
    let breaks: Vec<(&str, String, String)> = shared.breaks().map(|b| (b.invariant().name, b.step.clone(), b.why(t))).collect();
    let broken: Vec<(&str, String, String)> = plain.broken.iter().map(|b| (b.invariant, b.step.clone(), b.why.clone())).collect();
    assert_eq!(broken, breaks, "{what}: breaks");
    let end = shared.end();
    let unavailable: Vec<(&str, String)> = end.unavailable().map(|i| (INVARIANTS[i].name, end.why(i, t))).collect();
    let final_unavailable: Vec<(&str, String)> = plain.final_unavailable.iter().map(|b| (b.invariant, b.why.clone())).collect();
    assert_eq!(final_unavailable, unavailable, "{what}: unavailable at the end");
    assert_eq!(StateHashed::of(&plain.final_state, t), end.state, "{what}: final state, as the exploration keys it");
    assert_eq!(plain.transitions, shared.transitions, "{what}: transitions");
}

fn faults_at(t: &Topology, point: Point) -> Vec<Fault> {
    Fault::all(t)
        .into_iter()
        .filter(|f| point.action > 0 || !matches!(f.kind(), FaultKind::StepFailsHalfway | FaultKind::ExecutorCrash))
        .collect()
}

#[test]
fn a_shared_continuation_gives_what_the_whole_run_gives() {
    let t = topology(include_str!("../../scenarios/homelab.yaml"));
    let plan = planner::generate(&t);
    let engine = Engine::new(&t, &plan, Recording::default());
    let (track, states) = engine.track();
    let mut memo = Memo::new(every_safety_invariant());
    let mut compared = 0;
    for (n, &(point, state)) in states.iter().enumerate() {
        for fault in faults_at(&t, point) {
            let first = [Injection { at: point, fault }];
            let mut snapshots = Vec::new();
            let plain = engine.run_cursor(Cursor::at(state, point), &first, Some(&track), Some(&mut snapshots));
            let (shared, skipped) = memo.run(&engine, &Cursor::at(state, point), &first, &track, None);
            assert_eq!(skipped, 0, "a run without a walk skips nothing");
            assert_same(&t, &plan, &plain, &shared, &format!("{} at {point:?}", fault.describe(&t)));
            compared += 1;
            // Second faults wherever the first run went on to: one point in five, one fault in
            // four, enough to meet many continuations again without a long test.
            if n % 5 != 0 {
                continue;
            }
            for cursor in snapshots.iter().step_by(3) {
                let at = Point { step: cursor.step as u16, action: cursor.action as u16 };
                for second in faults_at(&t, at).into_iter().step_by(4) {
                    let next = [Injection { at, fault: second }];
                    let plain = engine.run_cursor(cursor.clone(), &next, Some(&track), None);
                    let (shared, _) = memo.run(&engine, cursor, &next, &track, None);
                    assert_same(&t, &plan, &plain, &shared, &format!("{} then {} at {at:?}", fault.describe(&t), second.describe(&t)));
                    compared += 1;
                }
            }
        }
    }
    assert!(memo.hits > compared / 2, "the continuations were shared: {} hits in {compared} runs", memo.hits);
}

/// `plan check --depth 3` with its memories against the plain exploration (every placement's
/// run carried out to its end, nothing remembered) on the homelab plan's first steps: the same
/// report, counts, violations, schedules and traces included; only the transitions applied
/// differ, as the plain run applies every one.
#[test]
fn depth_three_with_its_memories_is_the_plain_exploration() {
    use plan_sim::explore::{check, check_plain, CheckOptions};
    let t = topology(include_str!("../../scenarios/homelab.yaml"));
    let mut plan = planner::generate(&t);
    // 0.1 and 0.2: some 87,000 placements (320,000 more skipped as made already).
    plan.steps.truncate(2);
    let options = CheckOptions { depth: 3 };
    let remembered = check(&t, &plan, options);
    let mut plain = check_plain(&t, &plan, options);
    assert_eq!(remembered.depth, 3);
    assert!(remembered.figures.fault_placements > 50_000, "{:?}", remembered.figures);
    assert!(
        plain.figures.transitions > remembered.figures.transitions,
        "the plain exploration applies every transition: {} against {}",
        plain.figures.transitions,
        remembered.figures.transitions
    );
    plain.figures.transitions = remembered.figures.transitions;
    assert_eq!(plain, remembered);
    // Depth 3 holds depth 2's schedules and more.
    let two = check(&t, &plan, CheckOptions { depth: 2 });
    assert!(remembered.figures.fault_placements > two.figures.fault_placements);
}

/// Time is part of a continuation's key: the same state later on the clock is not the same
/// configuration. Its backup is older (a restore loses more, the pre-flight's backup check may
/// fail), its join token and certificate key are older (a join may be refused as expired), so
/// a memory keyed by the state without its times would hand it an earlier state's continuation.
/// Every point of the plan, its state first as the no-fault run reaches it and then hours later,
/// with no fault and with every third fault: the later run through the memory gives what its
/// plain run gives, and some of them end otherwise than the earlier ones (time mattered).
#[test]
fn a_continuation_is_not_shared_by_a_state_later_on_the_clock() {
    let t = topology(include_str!("../../scenarios/homelab.yaml"));
    let plan = planner::generate(&t);
    let engine = Engine::new(&t, &plan, Recording::default());
    let (track, states) = engine.track();
    let mut memo = Memo::new(every_safety_invariant());
    let mut time_mattered = 0;
    for &(point, state) in &states {
        // 3 h: the homelab's 24 h backup goes past its 26 h limit, an upload of the
        // certificate key (2 h) expires; 25 h: the join token (24 h) too.
        for shift_s in [3 * 3600, 25 * 3600] {
            let later = plan_model::cluster::Cluster { clock_s: state.clock_s + shift_s, ..state };
            let schedules = std::iter::once(Vec::new())
                .chain(faults_at(&t, point).into_iter().step_by(3).map(|fault| vec![Injection { at: point, fault }]));
            for schedule in schedules {
                let (earlier, _) = memo.run(&engine, &Cursor::at(state, point), &schedule, &track, None);
                let (shared, _) = memo.run(&engine, &Cursor::at(later, point), &schedule, &track, None);
                let plain = engine.run_cursor(Cursor::at(later, point), &schedule, Some(&track), None);
                let what = format!("{schedule:?} at {point:?}, {} h later", shift_s / 3600);
                assert_same(&t, &plan, &plain, &shared, &what);
                let worded = |s: &Summary| s.halt().map(|h| (h.step, h.halt(&t)));
                if earlier.outcome() != shared.outcome() || worded(&earlier) != worded(&shared) {
                    time_mattered += 1;
                }
            }
        }
    }
    assert!(time_mattered > 0, "no shift in time changed a run: this test could not see a continuation shared wrongly");
}
