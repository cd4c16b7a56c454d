//! Which plan points each shard of the exploration places its first faults at: contiguous runs
//! of points, each with an equal share of the work expected from them.
//!
//! Two shards keep separate memories, so a configuration both reach is explored twice. Runs from
//! points far apart meet less often than runs from neighbours: a shard holding every other point
//! made some 15 % more placements than one shard alone at depth 2 on the homelab, 34 % at depth 3;
//! two halves of the points make 4 % and 14 % more. The halves are cut where the work is shared
//! evenly, as the points' single faults foretell it: the points each one's run passes that no
//! earlier run passed alike, where the further faults go ([`point_weights`]).

use super::faults_at;
use crate::memo::{Memo, RankingsMade, Walk};
use crate::run::{Cursor, Engine, Injection, Point, Track};
use plan_model::cluster::Cluster;
use plan_model::fault::Fault;
use std::ops::Range;
use std::sync::Arc;

/// The work expected from each point of the no-fault run (`states`). Its breadth: for each fault
/// placed there, one for its own run and one per point that run passes (where a second fault
/// goes) that no run before it on the same thread passed with the same configuration there: the
/// points are weighed in turn on `threads` threads, each taking every `threads`-th point with a
/// memory of its own, and a run stops counting at a step boundary its memory walked already
/// (`memo::Walk`), as a shard's runs stop walking there. So a point whose runs meet those of
/// earlier points weighs what is left to place from it (weighed with a fresh memory per point,
/// the homelab's late points weigh 2 to 5 times as much, and the cut falls at 63 of 108 points,
/// with 56 % of the placements before it). The threads share the exploration's `rankings` (a
/// ranking made here is not made again); the weights depend on `threads` (fixed: the shard
/// count), never on the machine. At depth 2 the work is about the breadth; each further fault
/// multiplies it about by the breadth again (measured on the homelab: a point with 9.4 times
/// another's placements at depth 2 has 128 times them at depth 3, 5.3 times had 18 times), so a
/// point weighs its breadth to the power of the faults placed after the first. With depth 1, each
/// point weighs as many faults as it takes.
pub(super) fn point_weights(
    engine: &Engine<'_>,
    track: &Track,
    states: &[(Point, Cluster)],
    faults: &[Fault],
    depth: u8,
    threads: usize,
    rankings: &Arc<RankingsMade>,
) -> Vec<usize> {
    if depth < 2 {
        return states.iter().map(|(point, _)| faults_at(faults, *point).count()).collect();
    }
    let mut weights = vec![0; states.len()];
    let weighed: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let rankings = rankings.clone();
                scope.spawn(move || {
                    let mut memo = Memo::new(0).sharing_rankings(rankings);
                    states
                        .iter()
                        .skip(thread)
                        .step_by(threads)
                        .map(|&(point, state)| weigh(&mut memo, engine, track, faults, point, state))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a thread weighing the points panicked")).collect()
    });
    for (thread, part) in weighed.into_iter().enumerate() {
        for (weight, slot) in part.into_iter().zip(weights.iter_mut().skip(thread).step_by(threads)) {
            *slot = weight.pow(u32::from(depth) - 1);
        }
    }
    weights
}

/// One for each fault placed at `point` (in `state`) and one for every point its run passes.
fn weigh(memo: &mut Memo, engine: &Engine<'_>, track: &Track, faults: &[Fault], point: Point, state: Cluster) -> usize {
    let placements_at = move |p: Point| faults_at(faults, p).count();
    let start = Cursor::at(state, point);
    let mut snapshots = Vec::new();
    faults_at(faults, point)
        .map(|(_, fault)| {
            snapshots.clear();
            let walk = Walk { snapshots: &mut snapshots, budget: 1, skipped: 0, placements_at: &placements_at };
            let _ = memo.run(engine, &start, &[Injection { at: point, fault }], track, Some(walk));
            1 + snapshots.len()
        })
        .sum()
}

/// The points, by index, cut into `shards` contiguous ranges in order, the `k`-th ending at the
/// first point where the weights so far reach `k / shards` of the whole. Every point is in one
/// range; a range is empty only where a heavy point reaches two shares at once, where there are
/// fewer points than shards, or where every weight is 0 (the last range then takes every point).
pub(super) fn shard_ranges(weights: &[usize], shards: usize) -> Vec<Range<usize>> {
    let total: usize = weights.iter().sum();
    // The weight of the first `i` points, for every `i` from none to all.
    let so_far: Vec<usize> = std::iter::once(0)
        .chain(weights.iter().scan(0, |sum, w| {
            *sum += w;
            Some(*sum)
        }))
        .collect();
    let mut start = 0;
    (1..=shards)
        .map(|k| {
            let end = if k == shards { weights.len() } else { so_far.partition_point(|w| w * shards < k * total) };
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On random weights (zeros, and one point outweighing the rest, included), the ranges are
    /// contiguous, in order, cover every point once, and each ends at the first point where its
    /// share of the whole is reached: without its last point a range falls short of its share.
    #[test]
    fn the_ranges_cover_the_points_and_end_where_their_share_is_reached() {
        let mut draws = crate::testing::Draws::seeded(0x9e37_79b9_7f4a_7c15);
        let mut next = move |below: u64| draws.below(below);
        for round in 0..2000 {
            let n = next(40) as usize;
            let shards = 1 + next(4) as usize;
            let mut weights: Vec<usize> = (0..n).map(|_| next(if round % 5 == 0 { 3 } else { 500 }) as usize).collect();
            if round % 7 == 0 && n > 0 {
                let heavy = next(n as u64) as usize;
                weights[heavy] = 100_000;
            }
            let total: usize = weights.iter().sum();
            let ranges = shard_ranges(&weights, shards);
            assert_eq!(ranges.len(), shards, "{weights:?}");
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(n));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "{ranges:?}");
            }
            for (k, range) in ranges.iter().enumerate().take(shards - 1) {
                let reached: usize = weights[..range.end].iter().sum();
                assert!(reached * shards >= (k + 1) * total, "round {round}: {ranges:?} of {weights:?}");
                if range.end > 0 {
                    let short: usize = weights[..range.end - 1].iter().sum();
                    assert!(short * shards < (k + 1) * total, "round {round}: range {k} {ranges:?} of {weights:?}");
                }
            }
        }
    }

    /// Two shards on even weights take half the points each; one shard takes them all.
    #[test]
    fn even_weights_are_halved() {
        assert_eq!(shard_ranges(&[3; 10], 2), vec![0..5, 5..10]);
        assert_eq!(shard_ranges(&[1, 1, 1, 9], 2), vec![0..4, 4..4]);
        assert_eq!(shard_ranges(&[9, 1, 1, 1], 2), vec![0..1, 1..4]);
        assert_eq!(shard_ranges(&[2; 7], 1), vec![0..7]);
    }
}
