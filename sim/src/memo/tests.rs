//! The memory's unit tests: its fingerprints, and the rankings it keeps.

use super::*;
use crate::run::{Engine, Recording};
use plan_model::fault::Fault;
use plan_model::planner;
use plan_model::validate::parse_scenario;

/// What the fingerprint's two words were first made of: two hashers fed the same words.
fn hashed_twice<T: Hash>(value: &T) -> Fingerprint {
    let (mut first, mut second) = (FxHasher::default(), FxHasher::default());
    SEED.hash(&mut second);
    value.hash(&mut first);
    value.hash(&mut second);
    Fingerprint(first.finish(), second.finish())
}

#[test]
fn the_second_word_is_what_a_second_hasher_gives() {
    let t = Topology::new(&parse_scenario(include_str!("../../../scenarios/homelab.yaml")).expect("the embedded scenario is valid"));
    let plan = planner::generate(&t);
    let engine = Engine::new(&t, &plan, Recording::default());
    let (_, states) = engine.track();
    let faults = Fault::all(&t);
    for (i, (point, state)) in states.iter().enumerate() {
        let mut cursor = Cursor::at(*state, *point);
        // Pending faults of every length a schedule makes, struck nodes, recoveries.
        for f in faults.iter().skip(i % 7).step_by(5).take(i % 4) {
            cursor.pending.push((*f, state.clock_s + 60));
        }
        cursor.struck = plan_model::topology::NodeSet(i as u64 % 5);
        cursor.recoveries = (i % 3) as u32;
        assert_eq!(Fingerprint::of(&cursor), hashed_twice(&cursor), "{point:?}");
        assert_eq!(Fingerprint::of(&(state, i as u32)), hashed_twice(&(state, i as u32)));
        let (phase, step) = (i as u32 % 7, i as u32);
        assert_eq!(Fingerprinting::of(state).and(&phase).and(&step).finish(), Fingerprint::of(&(state, phase, step)));
    }
    for value in ["", "a", "words of a halt"] {
        assert_eq!(Fingerprint::of(&value), hashed_twice(&value));
    }
    assert_eq!(Fingerprint::of(&(u128::MAX, 7u8, -3i64)), hashed_twice(&(u128::MAX, 7u8, -3i64)));
    assert_eq!(Fingerprint::of(&vec![1u8, 2, 3]), hashed_twice(&vec![1u8, 2, 3]));
}

/// A ranking the exploration keeps holds what its run reads of the whole ranking
/// ([`crate::search::rank`]): the best candidate that can be carried out, first, and the
/// documented one, each whole; nothing else. Checked on every third boundary of the no-fault
/// run struck by every fault, on three scenarios with other names, sizes and recoveries, the
/// rankings made in one memory as the exploration makes them (a phase's shared between its
/// steps, going forward put in its place where a machine is down).
#[test]
fn a_ranking_kept_holds_the_best_and_the_documented_recovery_of_the_whole_ranking() {
    for crate::testing::PlannedScenario { t, plan, boundaries } in crate::testing::three_scenarios() {
        let mut rankings = Rankings::default();
        let (mut dropped, mut went_on, mut apart) = (0, 0, 0);
        for (step, state) in boundaries {
            for fault in Fault::all(&t) {
                let c = fault.strike(&state, &t);
                let whole = crate::search::rank(&c, &t, &plan, step);
                let kept = rankings.rank(&c, &t, &plan, step);
                let label = format!("{} {} {}", t.scenario.name, plan.steps[step].id, fault.describe(&t));
                let best = whole.first().filter(|b| b.applicable());
                let documented = crate::search::documented(&whole);
                assert_eq!(kept.first().filter(|b| b.applicable()), best, "{label}: the best");
                assert_eq!(crate::search::documented(&kept), documented, "{label}: the documented");
                let read = usize::from(best.is_some()) + usize::from(documented.is_some_and(|d| Some(d) != best));
                assert_eq!(kept.len(), read, "{label}: only what the run reads");
                dropped += whole.len() - kept.len();
                went_on += usize::from(best.is_some_and(|b| b.kind == RecoveryKind::GoForward));
                apart += usize::from(documented.is_some_and(|d| Some(d) != best));
            }
        }
        assert!(dropped > 500 && went_on > 10 && apart > 10, "{}: {dropped} {went_on} {apart}", t.scenario.name);
    }
}

/// The candidates a kept ranking leaves unrun could have been neither the best nor the
/// documented one: a worst case while another candidate keeps every write, going forward while
/// the documented one leaves nothing broken ([`crate::search::Reading::BestAndDocumented`]).
/// Checked against the whole ranking on every third boundary of the no-fault run struck by every
/// pair of faults that leave a machine or a hypervisor down for good (where going forward and
/// quorum recovery are weighed), on three scenarios, with the plan as generated and without its
/// go-forward and quorum recovery procedures (the documented recovery is then the phase's
/// rollback or holding, which going forward can beat); and with the cluster's data restored from
/// a month-old snapshot before (not a state the check reaches: where every candidate has lost
/// writes, the worst case can be the best, and is then run).
#[test]
fn a_candidate_a_kept_ranking_leaves_unrun_could_not_have_been_read() {
    use plan_model::cluster::EtcdData;
    use plan_model::plan::Recovers;
    let (mut worst_cases_read, mut went_on_beyond_documented) = (0, 0);
    for crate::testing::PlannedScenario { t, plan, boundaries } in crate::testing::three_scenarios() {
        let lasting: Vec<Fault> = Fault::all(&t)
            .into_iter()
            .filter(|f| matches!(f, Fault::NodeDown { lasts_s: None, .. } | Fault::HypervisorDown { .. }))
            .collect();
        let mut undocumented = plan.clone();
        undocumented.rollbacks.retain(|r| !matches!(r.recovers, Some(Recovers::GoForward | Recovers::QuorumRecovery)));
        let mut weighed = 0;
        for plan in [&plan, &undocumented] {
            let mut rankings = Rankings::default();
            for &(step, state) in &boundaries {
                for (i, first) in lasting.iter().enumerate() {
                    for second in &lasting[i + 1..] {
                        for data in [EtcdData::Intact, EtcdData::RestoredFromSnapshot { lost_s: 30 * 86_400 }] {
                            let c = Cluster { etcd_data: data, ..second.strike(&first.strike(&state, &t), &t) };
                            let whole = crate::search::rank(&c, &t, plan, step);
                            let kept = rankings.rank(&c, &t, plan, step);
                            let label = format!(
                                "{} {} {}, {}, {data:?}",
                                t.scenario.name,
                                plan.steps[step].id,
                                first.describe(&t),
                                second.describe(&t)
                            );
                            let best = whole.first().filter(|b| b.applicable());
                            let documented = crate::search::documented(&whole);
                            assert_eq!(kept.first().filter(|b| b.applicable()), best, "{label}: the best");
                            assert_eq!(crate::search::documented(&kept), documented, "{label}: the documented");
                            weighed += 1;
                            worst_cases_read += usize::from(best.is_some_and(|b| b.kind == RecoveryKind::WorstCase));
                            let beyond = documented.is_some_and(|d| d.kind != RecoveryKind::GoForward);
                            went_on_beyond_documented += usize::from(beyond && best.is_some_and(|b| b.kind == RecoveryKind::GoForward));
                        }
                    }
                }
            }
        }
        assert!(weighed > 1000, "{}: {weighed} weighed", t.scenario.name);
    }
    let read = (worst_cases_read, went_on_beyond_documented);
    assert!(read.0 > 10 && read.1 > 10, "{read:?}: the worst case and going forward beyond the documented one read");
}
