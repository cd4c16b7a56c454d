//! How long a deep check is expected to take, worked out before it starts from the depth-1 check
//! of the same plan, timed on this machine now: its placements give the number a deeper check
//! makes, its time per placement what each costs under the machine's present load.

use crate::explore::{check, CheckOptions};
use plan_model::plan::Plan;
use plan_model::topology::Topology;
use std::time::Instant;

/// Placements of a depth-2 check per depth-1 placement: 75 to 119 on the scenarios in
/// `scenarios/` (100 on the homelab).
const PAIRS_PER_PLACEMENT: f64 = 100.0;

/// Placements of a depth-3 check per squared depth-1 placement: 0.93 to 1.5 on the scenarios in
/// `scenarios/` (0.94 on the homelab, 5.35 million from 2,382): each of the n placements' runs
/// offers some n further configurations, most of them met before.
const TRIPLES_PER_SQUARE: f64 = 1.0;

/// The wall time of a depth-3 placement against that of a depth-1 placement, both timed as a
/// whole check on two threads: a deep placement mostly takes a continuation known already, a
/// depth-1 placement carries its run out and the check has costs of its own (the no-fault run,
/// the traces). Measured on the homelab, 2026-12-04, five runs: 0.14 to 0.22 (the depth-1 check
/// takes 8 to 12 ms, timed to the millisecond; 0.45 before the memory's cuts of that day, which
/// made every estimate some twice the time taken).
const COST_RATIO: [f64; 4] = [1.0, 1.0, 0.6, 0.2];

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
