//! How long a deep check is expected to take, worked out before it starts from the depth-1 check
//! of the same plan, timed on this machine now: its placements give the number a deeper check
//! makes, its time per placement what each costs under the machine's present load.

use crate::explore::{check, CheckOptions};
use plan_model::plan::Plan;
use plan_model::topology::Topology;
use std::time::Instant;

/// Placements of a depth-2 check per depth-1 placement: 70 to 107 on the scenarios in
/// `scenarios/` (93 on the homelab).
const PAIRS_PER_PLACEMENT: f64 = 90.0;

/// Placements of a depth-3 check per squared depth-1 placement: 0.66 to 1.24 on the scenarios in
/// `scenarios/` (0.79 on the homelab, 4.49 million from 2,382): each of the n placements' runs
/// offers some n further configurations, most of them met before.
const TRIPLES_PER_SQUARE: f64 = 0.8;

/// The wall time of a deeper placement against that of a depth-1 placement, both timed as a
/// whole check on two threads: a deep placement mostly takes a continuation known already, a
/// depth-1 placement carries its run out and the check has costs of its own (the no-fault run,
/// the traces). Measured on the homelab, 2026-12-04 18:30 UTC, three runs each: 0.11 to 0.20 at
/// depth 3, 0.1 to 0.25 at depth 2 (the depth-1 check takes 6 to 11 ms, timed to the
/// millisecond); the upper end is kept, so the estimate errs long rather than short (with 0.15 it
/// fell 1.2 to 1.6 times short at load 1.4 to 1.9).
const COST_RATIO: [f64; 4] = [1.0, 1.0, 0.25, 0.2];

/// What a check is expected to make and take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub placements: u64,
    /// Seconds of wall time, at the load the depth-1 check ran under.
    pub wall_s: f64,
    /// The depth-1 check it is worked out from: its placements and its wall time in seconds.
    pub depth_one_placements: usize,
    pub depth_one_s: f64,
}

/// What `plan check --depth depth` is expected to make and take on `plan`, from its depth-1 check
/// run (and timed) now.
pub fn expect(t: &Topology, plan: &Plan, depth: u8) -> Expected {
    let start = Instant::now();
    let one = check(t, plan, CheckOptions { depth: 1 });
    let depth_one_s = start.elapsed().as_secs_f64();
    let n = one.figures.fault_placements as f64;
    let placements = match depth {
        0 | 1 => n,
        2 => PAIRS_PER_PLACEMENT * n,
        _ => TRIPLES_PER_SQUARE * n * n,
    };
    let per_placement = depth_one_s / n.max(1.0);
    let ratio = COST_RATIO[(depth as usize).min(COST_RATIO.len() - 1)];
    Expected {
        placements: placements as u64,
        wall_s: placements * per_placement * ratio,
        depth_one_placements: one.figures.fault_placements,
        depth_one_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The placements expected at depth 2 are within a third of those made, on three scenarios
    /// of other sizes (the homelab, five masters, the loopback lab).
    #[test]
    fn the_placements_expected_at_depth_two_are_near_those_made() {
        for crate::testing::PlannedScenario { t, plan, .. } in crate::testing::three_scenarios() {
            let expected = expect(&t, &plan, 2).placements as f64;
            let made = check(&t, &plan, CheckOptions { depth: 2 }).figures.fault_placements as f64;
            assert!(expected >= 0.75 * made && expected <= 1.33 * made, "{}: expected {expected}, made {made}", t.scenario.name);
        }
    }
}
