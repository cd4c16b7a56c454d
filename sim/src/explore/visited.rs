//! The `states` figure: how many distinct (state, point, faults) the no-fault run and the shards
//! visited, counted once the shards are done, on threads of their own.

use super::keys::Keys;
use super::VISITED;
use rustc_hash::FxHashSet;

/// The threads the count takes (the shards' threads are done by then).
pub(super) const COUNTING_THREADS: usize = 2;

/// How many keys are looked up together: the first slot of each is read ahead in every earlier
/// shard's table, so the look-ups wait on memory together rather than one after the other.
const BATCH: usize = 32;

/// The distinct visited keys of the no-fault run (`no_fault`, each with its [`VISITED`] bit)
/// and of every shard (`shards`: its runs' ends, which count with the bit set, and its
/// placements, which count where they have it), counted without building their union (at depth
/// 3 on the homelab some 4 million keys, a table of 113 MB made and first touched for a count):
/// the few keys of the no-fault run and the ends are gathered, and each placement counts unless
/// it is one of them or an earlier shard made it. The placements' tables are gone through in
/// `threads` parts at once (at depth 3 on the homelab the count took 64 ms on one thread, after
/// the shards and before the report).
pub(super) fn states_visited(no_fault: &FxHashSet<u64>, shards: &[(&FxHashSet<u64>, &Keys)], threads: usize) -> usize {
    let mut no_fault_and_ends = no_fault.clone();
    for (ends, _) in shards {
        no_fault_and_ends.extend(ends.iter().map(|key| key | VISITED));
    }
    let no_fault_and_ends = &no_fault_and_ends;
    let threads = threads.max(1);
    let count_part = move |part: usize| -> usize {
        shards.iter().enumerate().map(|(i, (_, seen))| new_in(seen.part(part, threads), no_fault_and_ends, &shards[..i])).sum()
    };
    let counted: usize = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|part| scope.spawn(move || count_part(part))).collect();
        count_part(0) + helpers.into_iter().map(|h| h.join().expect("a thread counting the states panicked")).sum::<usize>()
    });
    no_fault_and_ends.len() + counted
}

/// How many of `keys` have the [`VISITED`] bit and are neither in `no_fault_and_ends` nor in any
/// of `earlier` shards' placements.
fn new_in(keys: impl Iterator<Item = u64>, no_fault_and_ends: &FxHashSet<u64>, earlier: &[(&FxHashSet<u64>, &Keys)]) -> usize {
    let mut batch = [0u64; BATCH];
    let mut in_batch = 0;
    let mut count = 0;
    let count_batch = |batch: &[u64]| {
        for (_, seen) in earlier {
            seen.touch(batch.iter().copied());
        }
        batch.iter().filter(|key| !no_fault_and_ends.contains(key) && !earlier.iter().any(|(_, seen)| seen.contains(key))).count()
    };
    for key in keys.filter(|key| key & VISITED != 0) {
        batch[in_batch] = key;
        in_batch += 1;
        if in_batch == BATCH {
            count += count_batch(&batch);
            in_batch = 0;
        }
    }
    count + count_batch(&batch[..in_batch])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The states counted are the keys of the union the count replaced, on tables that overlap
    /// every way they can: within a shard (ends kept with and without the bit, an end that is a
    /// placement too), across shards and with the no-fault run; placements without the bit
    /// are not counted. So on one thread and on several, on shards' tables of very different
    /// sizes (a key sits at another share of the slots in each), with batches full and partial.
    #[test]
    fn the_states_counted_are_the_union_of_the_visited_keys() {
        let mut draws = crate::testing::Draws::seeded(0x2545_f491_4f6c_dd1d);
        // Few distinct values, so tables meet.
        let mut next = move || draws.below(3000);
        for round in 0..30 {
            let no_fault: FxHashSet<u64> = (0..20).map(|_| next() | VISITED).collect();
            let sizes = [[20, 200, 2000], [2000, 20, 200], [200, 2000, 20]][round % 3];
            let shards: Vec<(FxHashSet<u64>, Keys)> =
                sizes[..1 + round % 3].iter().map(|&n| ((0..80).map(|_| next()).collect(), (0..n).map(|_| next()).collect())).collect();
            let mut union = no_fault.clone();
            for (ends, seen) in &shards {
                union.extend(ends.iter().map(|key| key | VISITED));
                union.extend(seen.iter().filter(|key| *key & VISITED != 0));
            }
            let tables: Vec<_> = shards.iter().map(|(e, s)| (e, s)).collect();
            for threads in [1, 2, 3] {
                assert_eq!(states_visited(&no_fault, &tables, threads), union.len(), "round {round}, {threads} threads");
            }
        }
    }
}
